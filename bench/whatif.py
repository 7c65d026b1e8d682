"""Live what-if figures (issue 11), called by :mod:`bench.run`.

- the light stage per slider move, per lever, on :func:`calc.light.live` (and the reference
  :func:`calc.light.evaluate` beside it);
- AppTest server time per move on every page with the what-if panel, on the sample bank and on
  stores holding a generated 100k- and 1M-account bank (``cli.py load``);
- a browser measurement: headless Chromium (Playwright) presses an arrow key on a slider, and the
  time from that key press to the last websocket frame of the rerun is taken in the page
  (``performance.now()``), on Rankings and on a one-slider app served the same way, interleaved,
  with the panel's own pattern (eight keyed slider-and-box fragments, no page) beside them: what
  a move costs before any page content. Beside each latency, the work of the page's main thread
  per move (Chromium's ``TaskDuration`` from the key press until the frames stop): a frame that
  arrives while the page is busy drawing the frames before it waits, so this work, not only the
  server's, sets the latency;
- what Rankings' two Plotly charts alone cost the browser per move (``Plotly.react`` on a bare page).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ONE_SLIDER_APP = ROOT / "bench" / "one_slider_app.py"
PANEL_FLOOR_APP = ROOT / "bench" / "panel_floor_app.py"   # the panel's keyed-fragment pattern, no page
SLIDER = "pay_factor_intermediate"
ADMIN = ("bench", "bench-pass-123")
TARGET_LIGHT_MS = 5.0
TARGET_APPTEST_MS = 35.0
TARGET_BROWSER = {"sample": 1.5, "1M": 2.0}

# One move per lever kind: the scenario changes a slider (or the KPI editor) makes.
def lever_moves(scenario):
    """``{lever: [scenarios]}``: successive values of one lever, each differing from the last."""
    from calc.scenario import KpiDef

    steps = [0.005 * i for i in range(2, 12)]
    kpis = list(scenario.kpi)

    def kpi_weight(i):
        first = kpis[0]
        return [KpiDef(first.code, first.perspective, first.weight + i, first.kind, first.cap), *kpis[1:]]

    return {
        "pay-link factor": [scenario.replace(pay_factor={**scenario.pay_factor, "intermediate": v}) for v in steps],
        "role weight": [scenario.replace(role_weight={**scenario.role_weight, "secondary": 0.05 + v}) for v in steps],
        "stock factor": [scenario.replace(stock_factor=0.5 + v) for v in steps],
        "pool (points method)": [scenario.replace(pay_method="points", pool=1_000_000 + 1e5 * v) for v in steps],
        "KPI weight": [scenario.replace(kpi=kpi_weight(i + 1)) for i in range(len(steps))],
    }


def light_per_lever(tab, label: str, base, runs: int) -> None:
    """Median ms per move of :meth:`calc.light.Live.evaluate`, per lever, on ``base``."""
    from calc.light import evaluate, live
    from calc.scenario import Scenario

    t0 = time.perf_counter()
    model = live(base)
    prep = time.perf_counter() - t0
    moves = lever_moves(Scenario())
    worst = 0.0
    for lever, scenarios in moves.items():
        model.evaluate(scenarios[0])                      # the lever's first value: kept results warm
        times = []
        for k in range(runs):
            s = scenarios[1 + k % (len(scenarios) - 1)]
            t = time.perf_counter()
            model.evaluate(s)
            times.append(time.perf_counter() - t)
        med = statistics.median(times) * 1000
        worst = max(worst, med)
        tab.add(f"light {label} per move: {lever}", f"{med:.2f} ms",
                f"live (incremental); target <= {TARGET_LIGHT_MS:g} ms at 1M" if label == "1M" else "live (incremental)")
    t = time.perf_counter()
    evaluate(base, moves["role weight"][3])
    full = (time.perf_counter() - t) * 1000
    tab.add(f"light {label}: reference evaluate per move", f"{full:.1f} ms",
            f"every step over every assignment (command line, publications); live / reference ratio "
            f"{worst / full:.3f} on the slowest lever; live set-up once per dataset {prep * 1000:,.0f} ms "
            f"({len(base.customers):,} customers, {len(base.managers):,} managers, "
            f"{len(base.assignments):,} assignments)")


# --------------------------------------------------------------------------------------------
# stores

def sample_store(path: Path) -> str:
    """A SQLite store at ``path`` with the sample bank and the bench admin; its URL."""
    from data.auth import Users
    from data.seed import seed
    from data.store import Store

    url = f"sqlite:///{path}"
    store = Store.open(url)
    seed(store, force=True)
    Users(store).create(*ADMIN, "admin", actor="bench")
    store.engine.dispose()
    return url


def bank_store(folder: Path, path: Path) -> str:
    """A SQLite store at ``path`` holding the bench.gen bank in ``folder`` (``cli.py load``) and the admin."""
    from data.auth import Users
    from data.store import Store

    url = f"sqlite:///{path}"
    subprocess.run([sys.executable, "cli.py", "load", str(folder), "--period", "2026Q3"], cwd=ROOT, check=True,
                   env={**os.environ, "JIXIAO_DATABASE_URL": url}, stdout=subprocess.DEVNULL)
    store = Store.open(url)
    Users(store).create(*ADMIN, "admin", actor="bench")
    store.engine.dispose()
    return url


# --------------------------------------------------------------------------------------------
# AppTest

def apptest_pages(tab, label: str, url: str, moves: int = 8) -> None:
    """AppTest server time per slider move on every page with the panel, on the store at ``url``."""
    import logging

    from streamlit.testing.v1 import AppTest

    from data.auth import Users
    from data.store import Store

    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").setLevel(logging.ERROR)
    os.environ["JIXIAO_DATABASE_URL"] = url
    # AppTest compiles the page script again on every run (a new ScriptCache per run: 1-4 ms a
    # page here); a server compiles it once and keeps the bytecode. Share one cache, as it does.
    from streamlit.runtime.scriptrunner.script_cache import ScriptCache
    from streamlit.testing.v1 import local_script_runner

    shared = ScriptCache()
    local_script_runner.ScriptCache = lambda: shared
    who = Users(Store.open(url)).principal(ADMIN[0])
    values = [0.10 + 0.005 * (i % 2) for i in range(moves + 1)]       # each move changes the value
    from ui.frame import PANEL_FILES

    for page in PANEL_FILES:
        at = AppTest.from_file(str(ROOT / page), default_timeout=300)
        at.session_state["lang"] = "zh"
        at.session_state["_who"] = who
        at.session_state["_last_seen"] = time.time()
        try:
            t0 = time.perf_counter()
            at.run()
            first = time.perf_counter() - t0
            if at.exception:
                raise RuntimeError(at.exception[0].value)
            if not any(s.key == SLIDER for s in at.slider):
                tab.add(f"AppTest {page} {label}", "no panel", "the page shows no what-if slider")
                continue
            times = []
            for v in values[1:]:
                at.slider(key=SLIDER).set_value(v)
                t0 = time.perf_counter()
                at.run()
                times.append(time.perf_counter() - t0)
                if at.exception:
                    raise RuntimeError(at.exception[0].value)
        except Exception as e:           # a page that fails is a figure too, not the end of the bench
            tab.add(f"AppTest {page} {label} per move", "FAILED", str(e)[:200])
            continue
        med = statistics.median(times) * 1000
        tab.add(f"AppTest {page} {label} per move", f"{med:.1f} ms",
                f"slowest of {moves} {max(times) * 1000:.1f} ms; first run {first * 1000:,.0f} ms; page bytecode "
                "kept as a server keeps it; "
                f"target <= {TARGET_APPTEST_MS:g} ms at 1M")


# --------------------------------------------------------------------------------------------
# browser

def browser_missing() -> str:
    """Why the browser measurement cannot run here ('' when it can)."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing (apt-get install chromium; .ci/run installs it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is missing (pip install -r requirements-dev.txt)"
    return ""


def serve(script: Path, env: dict | None = None, timeout: float = 120.0):
    """``streamlit run script`` on 127.0.0.1 (the project's .streamlit/config.toml applies), as the
    browser tests start it (:func:`tests.browser.streamlit_server`); its URL."""
    if str(ROOT / "tests") not in sys.path:
        sys.path.insert(0, str(ROOT / "tests"))
    from browser import streamlit_server

    return streamlit_server(env, timeout=timeout, script=script)


# every websocket message and the last key press, in page time (ms)
_RECORDER = """
window.__frames = [];
window.__press = null;
const Native = window.WebSocket;
class Recording extends Native {
  constructor(...args) {
    super(...args);
    this.addEventListener('message', () => window.__frames.push(performance.now()));
  }
}
window.WebSocket = Recording;
document.addEventListener('keydown', () => { window.__press = performance.now(); }, true);
"""


def _idle(page, timeout_ms: int = 120_000) -> None:
    page.wait_for_function("""() => !document.querySelector('[data-testid="stStatusWidget"]')
                              && !document.querySelector('[data-stale="true"]')""", timeout=timeout_ms)


# resolves when no websocket frame arrived for ``quiet`` ms (or none at all for 30 s): one call, so
# the wait adds no work of its own to the page's main thread beside a timer every 20 ms
_QUIET = """async (quiet) => {
  const start = performance.now();
  let n = -1, since = performance.now();
  while (true) {
    await new Promise(r => setTimeout(r, 20));
    const now = performance.now(), got = window.__frames.length;
    if (got !== n) { n = got; since = now; }
    else if (n && now - since > quiet) return true;
    else if (!n && now - start > 30000) return false;
  }
}"""


_CDP: dict = {}     # page -> its DevTools session (holds the page: pages live as long as the bench)


def _busy_ms(cdp) -> float:
    """The page's main thread: ms spent in tasks so far (Chromium's ``TaskDuration``)."""
    return next(m["value"] for m in cdp.send("Performance.getMetrics")["metrics"] if m["name"] == "TaskDuration") * 1000


def _move_ms(page, key: str, quiet_ms: int = 600) -> tuple[float, float]:
    """Press an arrow key on the slider ``key``; ms from the key press to the last websocket frame,
    and the ms the page's main thread worked from the press until the frames stopped (parsing
    the messages, React, layout, styles, Plotly; what the server does is not in it)."""
    handle = page.locator(f".st-key-{key} input[type=range]").first
    direction = "ArrowRight" if page.evaluate("(window.__dir = -(window.__dir || -1))") > 0 else "ArrowLeft"
    cdp = _CDP.get(page)
    if cdp is None:
        cdp = _CDP[page] = page.context.new_cdp_session(page)
        cdp.send("Performance.enable")
    page.evaluate("window.__frames = []")
    before = _busy_ms(cdp)
    handle.press(direction)
    if not page.evaluate(_QUIET, quiet_ms):
        raise RuntimeError(f"no rerun after a key press on {key}")
    busy = _busy_ms(cdp) - before
    return page.evaluate("Math.max(...window.__frames) - window.__press"), busy


def _open(browser, url: str, path: str = "", login: bool = False):
    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN")
    page = context.new_page()
    page.add_init_script(_RECORDER)
    page.goto(url + "/")
    page.wait_for_selector("h1, .st-key-login_username", timeout=120_000)
    if login:
        page.locator(".st-key-login_username input").fill(ADMIN[0])
        page.locator(".st-key-login_password input").fill(ADMIN[1])
        page.locator(".st-key-login_submit button").click()
        page.wait_for_function("() => !document.querySelector('.st-key-login_username')", timeout=120_000)
    if path:                          # through the app's own link: the session (and its login) stays
        _idle(page, 300_000)
        page.locator(f'[data-testid="stSidebar"] a[href="{path.lstrip("/")}"]').first.click()
        page.wait_for_url(f"**{path}", timeout=60_000)
    page.wait_for_selector("h1", timeout=300_000)
    page.wait_for_selector("input[type=range]", state="attached", timeout=300_000)
    _idle(page, 300_000)
    page.wait_for_timeout(500)
    return page


def _medians(moves: list[tuple[float, float]]) -> tuple[float, float]:
    """Medians of the moves' (latency, main-thread work), ms."""
    return statistics.median(m for m, _ in moves), statistics.median(b for _, b in moves)


def _spread(moves: list[tuple[float, float]]) -> str:
    return f"{min(m for m, _ in moves):.0f}-{max(m for m, _ in moves):.0f}"


def browser_moves(tab, stores: dict[str, str], moves: int = 7) -> None:
    """Rankings against the one-slider app, key press -> last websocket frame, per store label;
    beside them the panel's pattern with no page (:data:`PANEL_FLOOR_APP`), what a move costs
    before any of Rankings' content."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-quic"])
        try:
            with serve(ONE_SLIDER_APP) as one_url, serve(PANEL_FLOOR_APP) as floor_url:
                one = _open(browser, one_url)
                floor = _open(browser, floor_url)
                for label, url in stores.items():
                    with serve(ROOT / "app.py", {"JIXIAO_DATABASE_URL": url}) as app_url:
                        rank = _open(browser, app_url, "/rankings", login=True)
                        _move_ms(rank, SLIDER)                 # warm: the first move fills the caches
                        _move_ms(one, "x")
                        _move_ms(floor, "x")
                        ranks, ones, floors = [], [], []
                        for _ in range(moves):                 # interleaved: the host's load hits all three
                            ranks.append(_move_ms(rank, SLIDER))
                            ones.append(_move_ms(one, "x"))
                            floors.append(_move_ms(floor, "x"))
                        (r, rb), (o, ob), (f, fb) = (_medians(x) for x in (ranks, ones, floors))
                        tab.add(f"browser one-slider app per move ({label} run)", f"{o:.0f} ms",
                                f"key press -> last websocket frame, median of {moves}, {_spread(ones)} ms; "
                                f"the page's main thread worked {ob:.0f} ms a move")
                        tab.add(f"browser panel pattern, no page ({label} run)", f"{f:.0f} ms",
                                f"median of {moves}, {_spread(floors)} ms; ratio to the one-slider app {f / o:.2f}; "
                                f"main thread {fb:.0f} ms a move")
                        tab.add(f"browser Rankings per move, {label}", f"{r:.0f} ms",
                                f"median of {moves}, {_spread(ranks)} ms; ratio to the one-slider "
                                f"app {r / o:.2f} (target <= {TARGET_BROWSER.get(label, 2.0):g}); main thread "
                                f"{rb:.0f} ms a move")
                        rank.context.close()
            chart_render(tab, browser)
        finally:
            browser.close()


_REACT = """async ([a, b]) => {
  const d = document.getElementById('chart');
  await Plotly.newPlot(d, a.data, a.layout);
  const out = [];
  for (let i = 0; i < 16; i++) {          // each call a move: the other figure, as a fresh object
    const f = JSON.parse(JSON.stringify(i % 2 ? a : b));
    const t = performance.now();
    await Plotly.react(d, f.data, f.layout);
    await new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)));    // and its frame painted
    out.push(performance.now() - t);
  }
  Plotly.purge(d);
  return out;
}"""


def chart_render(tab, browser) -> None:
    """What Rankings' two charts alone cost the browser per move: ``Plotly.react`` of each figure
    (:func:`ui.charts.ranking_figure`, :func:`ui.charts.pay_histogram_figure`, sample bank, a
    pay-link factor moved back and forth) on a bare page, with the plotly.js of the ``plotly``
    package (Streamlit bundles its own build, not loadable alone)."""
    import json

    import plotly

    from calc.light import evaluate
    from calc.pipeline import run
    from calc.scenario import Scenario
    from data.ingest import load_extract
    from data.seed import SAMPLE
    from ui import charts

    extract, _ = load_extract(ROOT / SAMPLE)
    scenario = Scenario()
    base, result = run(extract.frames, scenario)
    moved = scenario.replace(pay_factor={**scenario.pay_factor, "intermediate": scenario.pay_factor["intermediate"] + 0.05})
    states = [result.managers, evaluate(base, moved).managers]
    js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    try:
        page.set_content("<div id='chart' style='width:640px;height:420px'></div>")
        page.add_script_tag(path=str(js))
        total = 0.0
        for name, draw in (("ranking bars", charts.ranking_figure), ("pay histogram", charts.pay_histogram_figure)):
            a, b = (json.loads(draw(m, "pay", "zh").to_json()) for m in states)
            ms = statistics.median(page.evaluate(_REACT, [a, b]))
            total += ms
            tab.add(f"browser Plotly.react, Rankings {name} (sample)", f"{ms:.1f} ms",
                    f"median of 16 on a bare page, plotly.js of plotly {plotly.__version__}: the chart's own "
                    "main-thread work per move, before any Streamlit")
        tab.add("browser Plotly.react, both Rankings charts", f"{total:.1f} ms", "what a move's charts alone cost")
    finally:
        page.close()
