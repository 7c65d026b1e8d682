"""Live what-if figures (issue 11), called by :mod:`bench.run`.

- the light stage per slider move, per lever, on :func:`calc.light.live` (and the reference
  :func:`calc.light.evaluate` beside it);
- AppTest server time per move on every page with the what-if panel, on the sample bank and on
  stores holding a generated 100k- and 1M-account bank (``cli.py load``);
- a browser measurement: headless Chromium (Playwright) presses an arrow key on a slider, and the
  time from that key press to the last websocket frame of the rerun is taken in the page
  (``performance.now()``), on Rankings and on a one-slider app served the same way, interleaved,
  with the panel's own pattern (eight keyed slider-and-box fragments, no page) beside them: what
  a move costs before any page content.
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
                f"first run {first * 1000:,.0f} ms; page bytecode kept as a server keeps it; "
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


def _move_ms(page, key: str, quiet_ms: int = 600) -> float:
    """Press an arrow key on the slider ``key``; ms from the key press to the last websocket frame."""
    handle = page.locator(f".st-key-{key} input[type=range]").first
    direction = "ArrowRight" if page.evaluate("(window.__dir = -(window.__dir || -1))") > 0 else "ArrowLeft"
    page.evaluate("window.__frames = []")
    handle.press(direction)
    last, since = -1, time.monotonic()
    while True:                       # until no frame arrived for quiet_ms
        page.wait_for_timeout(50)
        n = page.evaluate("window.__frames.length")
        if n != last:
            last, since = n, time.monotonic()
        elif n and time.monotonic() - since > quiet_ms / 1000:
            break
        elif not n and time.monotonic() - since > 30:
            raise RuntimeError(f"no rerun after a key press on {key}")
    return page.evaluate("Math.max(...window.__frames) - window.__press")


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
                        r, o, f = statistics.median(ranks), statistics.median(ones), statistics.median(floors)
                        tab.add(f"browser one-slider app per move ({label} run)", f"{o:.0f} ms",
                                f"key press -> last websocket frame, median of {moves}, {min(ones):.0f}-{max(ones):.0f} ms")
                        tab.add(f"browser panel pattern, no page ({label} run)", f"{f:.0f} ms",
                                f"median of {moves}, {min(floors):.0f}-{max(floors):.0f} ms; ratio to the one-slider "
                                f"app {f / o:.2f}")
                        tab.add(f"browser Rankings per move, {label}", f"{r:.0f} ms",
                                f"median of {moves}, {min(ranks):.0f}-{max(ranks):.0f} ms; ratio to the one-slider "
                                f"app {r / o:.2f} (target <= {TARGET_BROWSER.get(label, 2.0):g})")
                        rank.context.close()
        finally:
            browser.close()
