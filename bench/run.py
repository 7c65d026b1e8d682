"""``make bench``: timing figures for ingest, the heavy and light stages and Streamlit reruns.

Prints figures and ratios, and writes them to ``bench/RESULTS.md`` (not with ``--quick`` or
``--no-write``). The 1-minute load average is printed too: other work on the machine slows
every figure.
It never asserts a wall-clock time: machines differ; the figures are for reading, and the
ratios compare them with ``../shared/MEASURED.md`` (measured on this machine kind).

Sections
--------
1. Ingest: read + validate (:func:`data.ingest.load_extract`) the committed sample workbook,
   and a generated 100k-account extract written as xlsx and as a folder of CSV files (timed as
   its two halves, :func:`data.readers.read_input` and :func:`data.ingest.parse_book`).
2. Heavy stage (:func:`calc.heavy.build_base`) on the sample (6k accounts), on 100k and on
   1M accounts (the 1M frames are the typed 100k frames tiled 10x with new ids).
3. Light stage per slider move on each of those bases, per lever (pay-link factor, role weight,
   stock factor, pool, KPI weight), on the app's incremental :func:`calc.light.live`, with the
   reference :func:`calc.light.evaluate` beside it (:mod:`bench.whatif`).
4. Streamlit server-side time per slider move with AppTest (no websocket, no browser), on a
   throwaway SQLite store seeded with the sample and logged in as an admin; AppTest never runs
   the post-script GC, so one full ``gc.collect()`` is timed beside it. Then (``whatif``)
   AppTest per move on every page with the what-if panel on stores holding the sample, a
   generated 100k- and a 1M-account bank; and headless Chromium (Playwright) pressing an arrow
   key on a slider, key press -> last websocket frame, on Rankings (sample and 1M) and on a
   one-slider app, interleaved (:mod:`bench.whatif`).
5. Bank scale, on CSV folders written by :mod:`bench.gen` under ``/tmp/jixiao-bank/`` (generated
   on demand; ``JIXIAO_BANK_DIR`` moves them): 1M and 5M accounts (20M with ``--big``; 20k with
   ``--quick``). Each command runs as a child process, timed with its peak RSS
   (``getrusage(RUSAGE_CHILDREN)`` in a fresh wrapper process): ``cli.py evaluate FOLDER --json``
   beside the plain DuckDB SQL evaluation of :mod:`bench.reference` (ratio, and the largest
   difference between the two documents in yuan); ``cli.py load``, ``publish`` and ``verify``
   of the smallest size into a throwaway SQLite store, each against the DuckDB time; reading the
   same bank as one xlsx workbook with :func:`data.readers.read_input` (written once, column-wise,
   and cached beside the folder) beside fastexcel alone on its accounts sheet; the heavy stage
   :func:`calc.heavy.build_base` beside the same stage in plain DuckDB SQL and in polars lazy
   (:func:`bench.reference.duckdb_heavy`, :func:`bench.reference.polars_heavy`) on the same
   typed frames, interleaved run by run, with the memory each adds.

Every time is the median of several runs of ``time.perf_counter``. Peak memory is the
process's resident set size sampled every 2 ms during one extra (untimed) run, so the sampler
cannot slow the timed runs.

Usage::

    python -m bench.run [--quick] [--no-write] [--big] [--only SECTION ...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import platform
import resource
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from calc.heavy import build_base  # noqa: E402
from calc.pipeline import require_valid  # noqa: E402
from calc.scenario import Scenario  # noqa: E402
from data.ingest import load_extract, parse_book  # noqa: E402
from data.readers import read_input  # noqa: E402
from data.sample.generate import generate, write_workbook  # noqa: E402

SAMPLE = ROOT / "data" / "sample" / "sample_bank.xlsx"
BANK = Path(os.environ.get("JIXIAO_BANK_DIR", "/tmp/jixiao-bank"))
BANK_SIZES = {"20k": 20_000, "100k": 100_000, "1M": 1_000_000, "5M": 5_000_000, "20M": 20_000_000}
# targets of the bank-scale issue (figures to read, never asserted)
TARGET_EVAL_RATIO = 1.0             # cli.py evaluate / plain DuckDB SQL evaluation
TARGET_STORE_RATIO = 2.0            # cli.py load or publish / plain DuckDB SQL evaluation
TARGET_XLSX_1M_S = 6.0              # one 1M-row sheet
TARGET_5M_PEAK_GB = 2.5
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"

# ../shared/MEASURED.md (2 cores, 24 GiB, November 2026)
MEASURED_HEAVY_1M_S = 0.72          # pandas, accounts -> customer x line -> manager x role x line
MEASURED_HEAVY_1M_GB = 0.5
MEASURED_CALAMINE_100K_S = 1.6      # xlsx, 100k rows x 10 columns, python-calamine
MEASURED_MOVE_MS = 31               # websocket slider move, runner.postScriptGC = false
MEASURED_MOVE_GC_MS = 123           # the same with the default post-script GC

# pay_factor_intermediate values for the slider moves (slider step 0.005, range 0..0.5)
MOVES = (0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.05, 0.1)
ID_COLUMNS = {
    "managers": ("manager_id",), "customers": ("customer_id",), "accounts": ("account_id", "customer_id"),
    "assignments": ("customer_id", "manager_id"), "daily_balances": ("account_id",),
    "targets": ("manager_id",), "kpis": ("manager_id",),
}


# --------------------------------------------------------------------------------------------
# measuring

def _rss_bytes() -> int:
    """Current resident set size (Linux /proc; elsewhere the peak so far)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakRSS:
    """Context manager: peak RSS while the block runs, sampled every ``interval`` seconds."""

    def __init__(self, interval: float = 0.002):
        self.interval = interval
        self.before = self.peak = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakRSS":
        gc.collect()
        self.before = self.peak = _rss_bytes()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())

    @property
    def added(self) -> int:
        return self.peak - self.before


def timed(fn, runs: int, warmup: int = 0):
    """Median seconds of ``runs`` calls of ``fn`` (after ``warmup`` untimed calls) and the last result."""
    out = None
    for _ in range(warmup):
        out = fn()
    times = []
    for _ in range(runs):
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, out


def gb(n: int) -> str:
    return f"{n / 2**30:.2f} GB"


def mb(n: int) -> str:
    return f"{n / 2**20:,.0f} MB"


def load() -> str:
    """The 1-minute load average: other work on the machine makes every figure slower."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "n/a"


def ms(s: float) -> str:
    return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"


class Table:
    """The figures, printed as they come and again as a compact table at the end."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str]] = []

    def add(self, what: str, figure: str, note: str = "") -> None:
        self.rows.append((what, figure, note))
        print(f"  {what}: {figure}" + (f"  ({note})" if note else ""), flush=True)

    def text(self) -> str:
        w = max(len(r[0]) for r in self.rows)
        return "\n".join(f"{a:<{w}}  {b}" + (f"  ({c})" if c else "") for a, b, c in self.rows)

    def markdown(self) -> str:
        lines = ["| what | figure | notes |", "|---|---|---|"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in self.rows]
        return "\n".join(lines)


def section(title: str) -> None:
    print(f"\n== {title}", flush=True)


# --------------------------------------------------------------------------------------------
# data

def write_csv_folder(frames: dict[str, pd.DataFrame], folder: Path) -> None:
    """The generated frames as one CSV per sheet, with the same Chinese names and cells as the xlsx."""
    from data.sample.generate import _localised  # the same localisation write_workbook uses
    from data.schema import sheet_by_key

    folder.mkdir(parents=True, exist_ok=True)
    for key, frame in frames.items():
        _localised(key, frame, "zh").to_csv(folder / f"{sheet_by_key(key).zh}.csv", index=False)


def tile(frames: dict[str, pd.DataFrame], k: int) -> dict[str, pd.DataFrame]:
    """``k`` copies of typed frames, copy ``i`` with ``-i`` appended to every id (a bank ``k`` times bigger)."""
    out = {}
    for key, frame in frames.items():
        parts = []
        for i in range(k):
            part = frame.copy()
            if i:
                for col in ID_COLUMNS.get(key, ()):
                    part[col] = part[col] + f"-{i}"
            parts.append(part)
        df = pd.concat(parts, ignore_index=True)
        if "_row" in df:
            df["_row"] = np.arange(2, len(df) + 2, dtype=np.int64)
        out[key] = df
    return out


def total_rows(frames: dict[str, pd.DataFrame]) -> int:
    return sum(len(v) for v in frames.values())


# --------------------------------------------------------------------------------------------
# sections

def read_and_check(path):
    """Seconds of :func:`data.readers.read_input` and of :func:`data.ingest.parse_book` on ``path``,
    and the extract; stops the bench when the generated extract does not validate."""
    t0 = time.perf_counter()
    book = read_input(path)
    t1 = time.perf_counter()
    extract, report = parse_book(book)
    t2 = time.perf_counter()
    if not report.ok:
        raise SystemExit(f"the generated extract {path} does not validate: {report.issues[:3]}")
    return t1 - t0, t2 - t1, extract


def bench_ingest(tab: Table, tmp: Path, quick: bool) -> dict[str, dict]:
    section("1. Ingest: read + validate (data.ingest.load_extract)")
    runs = 3 if quick else 5
    med, _, (extract, _) = timed(lambda: load_extract(SAMPLE), runs, warmup=1)
    n = total_rows(extract.frames)
    tab.add("ingest sample xlsx (6k accounts)", f"{ms(med)}",
            f"{n:,} rows in 7 sheets, {n / med:,.0f} rows/s")
    typed = {"sample (6k)": require_valid(extract.frames)}

    t0 = time.perf_counter()
    gen = generate(2026, 5, 667, 33_333, 100_000, 1_000)     # the sample's proportions x 16.7
    t_gen = time.perf_counter() - t0
    xlsx, csv_dir = tmp / "bank_100k.xlsx", tmp / "bank_100k_csv"
    t0 = time.perf_counter()
    write_workbook(gen, xlsx)
    t_write = time.perf_counter() - t0
    write_csv_folder(gen, csv_dir)
    n = total_rows(gen)
    print(f"  (generated 100k accounts in {t_gen:.1f} s, {n:,} rows in all sheets; "
          f"xlsx {xlsx.stat().st_size / 2**20:.1f} MB written in {t_write:.1f} s; "
          f"csv {sum(f.stat().st_size for f in csv_dir.iterdir()) / 2**20:.1f} MB)")
    del gen


    runs = 2 if quick else 3
    figures = {}
    for kind, path in (("xlsx", xlsx), ("csv", csv_dir)):
        results = [read_and_check(path) for _ in range(runs)]
        read = statistics.median(r[0] for r in results)
        parse = statistics.median(r[1] for r in results)
        total = statistics.median(r[0] + r[1] for r in results)
        figures[kind] = (read, parse, total)
        ext = results[-1][2]
        tab.add(f"ingest 100k accounts {kind}", f"{total:.2f} s",
                f"read {read:.2f} s + validate {parse:.2f} s; {n / total:,.0f} rows/s, {100_000 / total:,.0f} accounts/s")
    typed["100k"] = require_valid(ext.frames)
    xr, xp, xt = figures["xlsx"]
    cr, cp, ct = figures["csv"]
    tab.add("ingest 100k xlsx / csv", f"ratio {xt / ct:.2f}", f"reading alone {xr / cr:.2f}, validating alone {xp / cp:.2f}")
    tab.add("ingest 100k-account xlsx, read + validate", f"{xt:.2f} s",
            f"{n:,} rows in 7 sheets (read_input may only open the workbook and leave the sheet bodies to "
            f"parse_book, so the sum is the figure); MEASURED python-calamine read alone, 100k rows x 10 cols "
            f"{MEASURED_CALAMINE_100K_S} s: ratio {xt / MEASURED_CALAMINE_100K_S:.2f}")
    return typed


def bench_stages(tab: Table, typed: dict[str, dict], quick: bool) -> None:
    scenario = Scenario()
    if not quick:
        t0 = time.perf_counter()
        typed["1M"] = tile(typed["100k"], 10)
        print(f"  (1M accounts: the typed 100k frames tiled 10x with new ids in {time.perf_counter() - t0:.1f} s: "
              + ", ".join(f"{k} {len(v):,}" for k, v in typed["1M"].items()) + ")")

    section("2. Heavy stage (calc.heavy.build_base)")
    bases, heavy = {}, {}
    for label, frames in typed.items():
        runs = {"sample (6k)": 7, "100k": 5, "1M": 3}[label] if not quick else 3
        with PeakRSS() as mem:
            bases[label] = build_base(frames, scenario)
        med, _, _ = timed(lambda f=frames: build_base(f, scenario), runs)
        heavy[label] = med
        note = (f"RSS +{mb(mem.added)} during the call (a lower bound: memory freed earlier is reused), "
                f"process peak {gb(mem.peak)}; "
                f"{len(frames['accounts']) / med:,.0f} accounts/s")
        if label == "1M":
            note += (f"; MEASURED pandas {MEASURED_HEAVY_1M_S} s ({MEASURED_HEAVY_1M_GB} GB): "
                     f"ratio {med / MEASURED_HEAVY_1M_S:.2f}")
        tab.add(f"heavy {label} accounts", ms(med), note)
    if "1M" in heavy:
        tab.add("heavy scaling 100k -> 1M", f"x{heavy['1M'] / heavy['100k']:.1f} time for x10 accounts")

    section("3. Light stage per slider move, per lever (calc.light.live; the reference evaluate beside it)")
    from bench.whatif import light_per_lever

    for label, base in bases.items():
        runs = {"sample (6k)": 21, "100k": 11, "1M": 9}[label] if not quick else 5
        light_per_lever(tab, label, base, runs)
    bases.clear()
    typed.pop("1M", None)


def logged_in_store(tmp: Path):
    """A throwaway SQLite store seeded with the sample bank and one admin; the admin's principal.

    The app reads its data from the store named by ``JIXIAO_DATABASE_URL`` and draws a login
    gate first; the bench, like tests/test_app.py, logs in by putting the principal in the session.
    """
    os.environ["JIXIAO_DATABASE_URL"] = f"sqlite:///{tmp / 'bench.db'}"
    try:
        from data.auth import Users
        from data.seed import seed
        from data.store import Store
    except ImportError:      # a version of the app without a store or login
        return None
    store = Store.open(os.environ["JIXIAO_DATABASE_URL"])
    seed(store, force=True)
    users = Users(store)
    users.create("bench", "bench-pass-123", "admin", actor="bench")
    return users.principal("bench")


def bench_whatif(tab: Table, tmp: Path, quick: bool) -> None:
    """AppTest per page with the panel (sample, 100k, 1M stores) and the browser measurement."""
    from bench import whatif

    section("4b. Live what-if: AppTest per move on every page with the panel (sample, 100k, 1M accounts)")
    os.chdir(ROOT)
    stores = {"sample": whatif.sample_store(tmp / "sample.db")}
    for label in (("100k",) if quick else ("100k", "1M")):
        t0 = time.perf_counter()
        stores[label] = whatif.bank_store(bank_folder(label), tmp / f"{label}.db")
        print(f"  ({label} store loaded by cli.py load in {time.perf_counter() - t0:.1f} s)", flush=True)
    for label, url in stores.items():
        whatif.apptest_pages(tab, label, url)
    section("4c. Live what-if in the browser: Rankings vs a one-slider app (Chromium, key press -> last frame)")
    why = whatif.browser_missing()
    if why:
        print(f"  skipped: {why}")
        tab.add("browser Rankings per move", "skipped", why)
        return
    whatif.browser_moves(tab, {k: v for k, v in stores.items() if k in ("sample", "1M")})


def bench_app(tab: Table, tmp: Path) -> None:
    section("4. Streamlit server side per slider move (AppTest, sample bank)")
    import logging

    os.chdir(ROOT)   # .streamlit/config.toml is read from the working directory
    from streamlit import config
    from streamlit.testing.v1 import AppTest

    gc_on = bool(config.get_option("runner.postScriptGC"))   # parses the config (and resets log levels)
    # AppTest's setup touches session state outside a script run; streamlit warns, harmlessly
    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").setLevel(logging.ERROR)
    print(f"  AppTest runs the page in this process: no websocket, no browser rendering, plus AppTest's own "
          f"polling and element-tree parsing. MEASURED.md: ~{MEASURED_MOVE_MS} ms per move over the websocket with "
          f"runner.postScriptGC=false (set in .streamlit/config.toml; here {str(gc_on).lower()}), "
          f"~{MEASURED_MOVE_GC_MS} ms with the default full GC after every rerun (a 2,000-row table + 2,000-bar "
          f"chart page). AppTest's script runner never runs that post-script GC, whatever the setting, so its "
          f"cost is shown separately below as one full gc.collect().")

    def move(at, v: float, key: str = "pay_factor_intermediate") -> float:
        at.slider(key=key).set_value(v)
        t0 = time.perf_counter()
        at.run()
        took = time.perf_counter() - t0
        if at.exception:
            raise SystemExit(f"the page raised: {[e.value for e in at.exception]}")
        return took

    t0 = time.perf_counter()
    who = logged_in_store(tmp)
    if who is not None:
        print(f"  (throwaway SQLite store seeded with the sample bank and an admin in {time.perf_counter() - t0:.1f} s; "
              "every rerun also passes the login gate: one user look-up in the store)")
    for n, page in enumerate(("pages/rankings.py", "app.py")):
        at = AppTest.from_file(str(ROOT / page), default_timeout=120)
        at.session_state["lang"] = "zh"
        if who is not None:
            at.session_state["_who"] = who
            at.session_state["_last_seen"] = time.time()
        t0 = time.perf_counter()
        at.run()
        first = time.perf_counter() - t0
        if at.exception:
            raise SystemExit(f"{page} raised: {[e.value for e in at.exception]}")
        med = statistics.median([move(at, v) for v in MOVES])
        tab.add(f"AppTest {page} per move", ms(med),
                f"first run {ms(first)}"
                + (" (cold: imports, opens the store, loads the sample, runs the heavy stage into st.cache_resource)"
                   if n == 0 else "")
                + f"; MEASURED websocket ~{MEASURED_MOVE_MS} ms with postScriptGC=false")
    gc.collect()
    full = timed(gc.collect, 5)[0]
    tab.add("one full gc.collect() in this process", ms(full),
            f"{len(gc.get_objects()):,} tracked objects: what runner.postScriptGC=true would add to every move "
            f"on a server with this heap; MEASURED ~80 ms")


# --------------------------------------------------------------------------------------------
# 5. bank scale: child processes on bench.gen folders

_CHILD = """
import json, resource, subprocess, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
t0 = time.perf_counter()
p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
took = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
with open(out, "w") as fh:
    json.dump({"rc": p.returncode, "seconds": took, "peak": peak,
               "stderr": p.stderr.decode("utf-8", "replace")[-1500:]}, fh)
"""


def run_child(cmd: list[str], env: dict | None = None) -> dict:
    """Run ``cmd`` from a fresh wrapper process: wall seconds, the child's peak RSS (bytes), exit code."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out = fh.name
    try:
        subprocess.run([sys.executable, "-c", _CHILD, out, *cmd], cwd=ROOT, env={**os.environ, **(env or {})},
                       check=True)
        return json.loads(Path(out).read_text())
    finally:
        os.unlink(out)


def bank_folder(label: str) -> Path:
    """The bench.gen CSV folder of ``label`` accounts, generated (once) when it is missing."""
    folder = BANK / label.lower()
    if not (folder / "DONE").exists():
        print(f"  (generating {label} accounts into {folder} ...)", flush=True)
        shutil.rmtree(folder, ignore_errors=True)
        res = run_child([sys.executable, "-m", "bench.gen", "--accounts", str(BANK_SIZES[label]), "--out", str(folder)])
        if res["rc"]:
            raise SystemExit(f"bench.gen failed: {res['stderr']}")
        (folder / "DONE").touch()
    return folder


def bank_workbook(label: str, folder: Path) -> Path:
    """The same bank as one xlsx workbook, written once (bench.gen.write_workbook) and cached."""
    from bench.gen import read_folder, write_workbook

    path = BANK / f"{label.lower()}.xlsx"
    if not path.exists():
        t0 = time.perf_counter()
        write_workbook(read_folder(folder), path)
        print(f"  (wrote {path}, {path.stat().st_size / 2**20:.0f} MB, in {time.perf_counter() - t0:.1f} s)", flush=True)
    return path


def _failed(res: dict) -> str:
    tail = " ".join(res["stderr"].strip().splitlines()[-2:])[:300]
    return f"FAILED (exit {res['rc']} after {res['seconds']:.1f} s): {tail}"


def bench_bank_eval(tab: Table, labels: list[str], out_dir: Path) -> dict[str, float]:
    """cli.py evaluate beside the plain DuckDB SQL evaluation; returns the DuckDB seconds per size."""
    from bench.reference import compare, summary

    section("5a. Bank scale: cli.py evaluate vs plain DuckDB SQL (bench.reference), child processes")
    ref_seconds = {}
    for label in labels:
        folder = bank_folder(label)
        ref_json, cli_json = out_dir / f"{label}.duckdb.json", out_dir / f"{label}.cli.json"
        runs = 3 if BANK_SIZES[label] <= 5_000_000 else 1      # interleaved: the host's load hits both alike
        refs, clis = [], []
        for _ in range(runs):
            refs.append(run_child([sys.executable, "-m", "bench.reference", "duckdb", str(folder), str(ref_json)]))
            clis.append(run_child([sys.executable, "cli.py", "evaluate", str(folder), "--json", str(cli_json)]))
        if any(r["rc"] for r in refs):
            tab.add(f"duckdb SQL evaluate {label}", _failed(next(r for r in refs if r["rc"])))
            continue
        if any(c["rc"] for c in clis):
            tab.add(f"cli.py evaluate {label}", _failed(next(c for c in clis if c["rc"])))
            continue
        ref_s = statistics.median(r["seconds"] for r in refs)
        cli_s = statistics.median(c["seconds"] for c in clis)
        ref_peak, cli_peak = max(r["peak"] for r in refs), max(c["peak"] for c in clis)
        spread = lambda xs: f"median of {len(xs)} interleaved runs, {min(xs):.2f}-{max(xs):.2f} s; " if len(xs) > 1 else ""
        ref_seconds[label] = ref_s
        tab.add(f"duckdb SQL evaluate {label}", f"{ref_s:.2f} s",
                f"{spread([r['seconds'] for r in refs])}peak {gb(ref_peak)}")
        note = f"{spread([c['seconds'] for c in clis])}peak {gb(cli_peak)}"
        if label == "5M":
            note += f" (target < {TARGET_5M_PEAK_GB} GB)"
        tab.add(f"cli.py evaluate {label}", f"{cli_s:.2f} s", note)
        diff = compare(cli_json, ref_json)
        tab.add(f"cli / duckdb evaluate {label}", f"ratio {cli_s / ref_s:.2f}",
                f"target <= {TARGET_EVAL_RATIO}; peak ratio {cli_peak / ref_peak:.2f}; "
                f"{'same numbers' if diff['ok'] else 'DIFFERENT NUMBERS'}: {summary(diff)}")
        for p in (ref_json, cli_json):
            p.unlink(missing_ok=True)
    return ref_seconds


def bench_bank_store(tab: Table, label: str, ref_seconds: float | None, tmp: Path) -> None:
    section(f"5b. Bank scale: cli.py load / publish / verify of {label} accounts into a throwaway SQLite store")
    folder = bank_folder(label)
    env = {"JIXIAO_DATABASE_URL": f"sqlite:///{tmp / 'bank.db'}"}
    steps = (("load", ["load", str(folder), "--period", "2026Q3"]), ("publish", ["publish", "--period", "2026Q3"]),
             ("verify", ["verify", "--period", "2026Q3"]))
    for name, args in steps:
        res = run_child([sys.executable, "cli.py", *args], env=env)
        if res["rc"]:
            tab.add(f"cli.py {name} {label}", _failed(res))
            break
        note = f"peak {gb(res['peak'])}"
        if ref_seconds:
            note += f"; / duckdb SQL evaluate {ref_seconds:.2f} s: ratio {res['seconds'] / ref_seconds:.2f}"
            if name in ("load", "publish"):
                note += f" (target <= {TARGET_STORE_RATIO})"
        tab.add(f"cli.py {name} {label}", f"{res['seconds']:.2f} s", note)
    size = sum(f.stat().st_size for f in tmp.glob("bank.db*"))
    print(f"  (store file {size / 2**20:,.0f} MB)")


def bench_bank_xlsx(tab: Table, label: str, quick: bool) -> None:
    section(f"5c. Bank scale: the {label}-account bank as one xlsx workbook: read_input + parse_book")
    import fastexcel

    folder = bank_folder(label)
    path = bank_workbook(label, folder)
    runs = 3 if quick else 1            # one run at scale: the whole ingest of a large workbook is slow

    with PeakRSS() as mem:              # the first run is timed too (the sampler costs little)
        first = read_and_check(path)     # read_input may only open the workbook: bodies load lazily
    n_rows = total_rows(first[2].frames)
    results = [first[:2]]
    del first
    gc.collect()
    results += [read_and_check(path)[:2] for _ in range(runs - 1)]
    read = statistics.median(r[0] for r in results)
    parse = statistics.median(r[1] for r in results)
    total = statistics.median(r[0] + r[1] for r in results)

    def floor():                        # the sheet alone, typed as the reader loads a body
        reader = fastexcel.read_excel(str(path))
        return reader.load_sheet("账户", header_row=0, schema_sample_rows=None, dtype_coercion="coerce",
                                          eager=True)

    fmed, _, batch = timed(floor, max(runs, 2))
    acc_rows = batch.num_rows
    del batch
    tab.add(f"ingest {label} xlsx workbook", f"{total:.2f} s",
            f"read_input {read:.2f} s + parse_book {parse:.2f} s; {path.stat().st_size / 2**20:.0f} MB, "
            f"{n_rows:,} rows in 6 sheets; RSS +{mb(mem.added)}, process peak {gb(mem.peak)}")
    tab.add(f"fastexcel alone, {label} accounts sheet (typed, eager)", f"{fmed:.2f} s",
            f"{acc_rows:,} rows x 13 columns"
            + (f"; target 1M-row sheet <= {TARGET_XLSX_1M_S:.0f} s" if label == "1M" else "")
            + f"; whole ingest / this: ratio {total / fmed:.2f}")


def typed_frames(label: str) -> tuple[dict[str, pd.DataFrame], str]:
    """Typed frames of a bank folder through the public ingest (data.ingest.load_extract)."""
    folder = bank_folder(label)
    t0 = time.perf_counter()
    extract, _ = load_extract(folder)
    return require_valid(extract.frames), f"load_extract {time.perf_counter() - t0:.1f} s"


def bench_bank_heavy(tab: Table, labels: list[str], quick: bool) -> None:
    from bench.reference import duckdb_heavy, polars_heavy

    section("5d. Bank scale: heavy stage, calc.heavy.build_base vs plain DuckDB SQL vs polars lazy (same frames)")
    scenario = Scenario()
    engines = {
        "build_base": lambda f: build_base(f, scenario),
        "duckdb SQL": lambda f: duckdb_heavy(f["accounts"], f["customers"], f["assignments"]),
        "polars lazy": lambda f: polars_heavy(f["accounts"], f["customers"], f["assignments"]),
    }
    for label in labels:
        try:
            frames, how = typed_frames(label)
        except Exception as e:        # the ingest under rewrite: report, do not stop the bench
            tab.add(f"heavy {label}", f"SKIPPED: load_extract failed: {type(e).__name__}: {str(e)[:200]}")
            continue
        print(f"  ({label}: typed frames by {how}: " + ", ".join(f"{k} {len(v):,}" for k, v in frames.items()) + ")")
        mem = {}
        for name, fn in engines.items():      # one untimed run each, with the memory it adds
            with PeakRSS() as m:
                out = fn(frames)
            mem[name] = m
            del out
            gc.collect()
        runs = 3 if (quick or BANK_SIZES[label] <= 1_000_000) else 2
        times: dict[str, list[float]] = {name: [] for name in engines}
        for _ in range(runs):                 # interleaved: the machine's load hits every engine alike
            for name, fn in engines.items():
                gc.collect()
                t0 = time.perf_counter()
                out = fn(frames)
                times[name].append(time.perf_counter() - t0)
                del out
        med = {name: statistics.median(v) for name, v in times.items()}
        for name in engines:
            note = f"RSS +{mb(mem[name].added)}, process peak {gb(mem[name].peak)}"
            if name != "build_base":
                note += f"; build_base / this: ratio {med['build_base'] / med[name]:.2f}"
            tab.add(f"heavy {label} {name}", ms(med[name]), note)
        del frames
        gc.collect()


def bench_bank(tab: Table, quick: bool, big: bool, sizes: list[str] | None = None) -> None:
    labels = sizes or (["20k"] if quick else ["1M", "5M"] + (["20M"] if big else []))
    BANK.mkdir(parents=True, exist_ok=True)
    out_dir = BANK / "bench-out"
    out_dir.mkdir(exist_ok=True)
    ref = bench_bank_eval(tab, labels, out_dir)
    with tempfile.TemporaryDirectory(prefix="jixiao-bench-bank-") as tmp:
        bench_bank_store(tab, labels[0], ref.get(labels[0]), Path(tmp))
    bench_bank_xlsx(tab, labels[0], quick)
    gc.collect()
    bench_bank_heavy(tab, labels[:2], quick)


def bench_spark(tab: Table, labels: list[str], quick: bool) -> None:
    """The warehouse engine (issue 15): the same heavy stage on Spark ``local[2]`` beside the
    embedded engine, through ``cli.py evaluate`` (child processes, JVM start included) and as
    ``build_base`` alone on a warm session (same typed frames, interleaved)."""
    from bench.reference import compare, summary
    from calc.spark import master, unavailable

    section(f"6. Warehouse engine: the heavy stage on Spark {master()} vs the embedded engine (same SQL text)")
    why = unavailable()
    if why:
        tab.add("spark", f"SKIPPED: {why}")
        return
    out_dir = BANK / "bench-out"
    out_dir.mkdir(parents=True, exist_ok=True)
    for label in labels:
        folder = bank_folder(label)
        emb_json, spark_json = out_dir / f"{label}.embedded.json", out_dir / f"{label}.spark.json"
        runs = 1 if (quick or BANK_SIZES[label] > 1_000_000) else 2
        embs, sparks = [], []
        for _ in range(runs):               # interleaved: the host's load hits both alike
            embs.append(run_child([sys.executable, "cli.py", "evaluate", str(folder), "--json", str(emb_json)]))
            sparks.append(run_child([sys.executable, "cli.py", "evaluate", str(folder), "--engine", "spark",
                                     "--json", str(spark_json)]))
        if any(r["rc"] for r in embs + sparks):
            tab.add(f"spark evaluate {label}", _failed(next(r for r in embs + sparks if r["rc"])))
            continue
        emb_s = statistics.median(r["seconds"] for r in embs)
        spark_s = statistics.median(r["seconds"] for r in sparks)
        diff = compare(spark_json, emb_json)
        tab.add(f"cli.py evaluate {label} (embedded)", f"{emb_s:.2f} s", f"peak {gb(max(r['peak'] for r in embs))}")
        tab.add(f"cli.py evaluate {label} --engine spark", f"{spark_s:.2f} s",
                f"spark / embedded: ratio {spark_s / emb_s:.2f} (JVM start included); Python process peak "
                f"{gb(max(r['peak'] for r in sparks))} (the JVM's own memory is not counted; its driver is capped "
                f"at JIXIAO_SPARK_DRIVER_MEMORY, default 4g); "
                f"{'same numbers' if diff['ok'] else 'DIFFERENT NUMBERS'}: {summary(diff)}")
        for p in (emb_json, spark_json):
            p.unlink(missing_ok=True)
    label = labels[0]
    frames, _ = typed_frames(label)
    scenario = Scenario()
    build_base(frames, scenario, engine="spark")          # the session started and the JIT warm
    times: dict[str, list[float]] = {"duckdb": [], "spark": []}
    for _ in range(1 if quick else 3):
        for engine in times:
            gc.collect()
            t0 = time.perf_counter()
            out = build_base(frames, scenario, engine=engine)
            times[engine].append(time.perf_counter() - t0)
            del out
    med = {k: statistics.median(v) for k, v in times.items()}
    tab.add(f"heavy {label} build_base duckdb", ms(med["duckdb"]), "same typed frames, interleaved")
    tab.add(f"heavy {label} build_base spark (warm session)", ms(med["spark"]),
            f"spark / duckdb: ratio {med['spark'] / med['duckdb']:.2f}; the frames go to the JVM as Arrow each run")
    del frames
    gc.collect()


# --------------------------------------------------------------------------------------------

def versions() -> str:
    import streamlit

    return (f"Python {platform.python_version()}, pandas {pd.__version__}, numpy {np.__version__}, "
            f"streamlit {streamlit.__version__}")


SPARK_NOTES = """
## Section 6: how the Spark heavy stage scales out

On one machine Spark is slower, as expected: local mode pays for a JVM, for copying the rows from
Python into it and for task scheduling, and the embedded engine already uses both cores. The
"heavy ... spark (warm session)" row is mostly that copy, which a `spark:DB` input does not make.

The heavy stage is one scan of the accounts (plus a window over the daily balances) and one hash
aggregation by customer: every account row is read once, on whichever executor holds its
partition, and only per-customer partial sums cross the network (at most one row per customer per
partition). With the extract read from the warehouse (`spark:DB`) the rows never pass through
Python. With `E` executors of `c` cores the scan takes roughly the single-core time over `E x c`;
the shuffle is bounded by customers, not accounts. Size `spark.sql.shuffle.partitions` to about
2-3 x the cluster's cores (the local default here is 4; Spark's own 200 suits ~64-100 cores) and
let the accounts table's file layout set the scan's parallelism. One row per customer comes back
to the driver (200k rows for 1M accounts, ~20 MB), so the light stage does not grow with the
accounts. Validation of a `spark:DB` extract still runs on the driver (docs/RULES.md): that, not the
heavy stage, bounds its size today. The Python peak of a Spark run does not count the JVM (its
driver is capped at `JIXIAO_SPARK_DRIVER_MEMORY`, default 4g).
"""


def write_results(tab: Table, elapsed: float, peak: int, loads: str) -> None:
    text = f"""# Benchmark results (`make bench`)

Written by `python -m bench.run` (bench/run.py); medians of several runs of `time.perf_counter`.
Compare with `../shared/MEASURED.md`. AppTest times are server side only (no websocket, no browser).

- Date: {dt.date.today().isoformat()}
- Machine: {os.cpu_count()} cores, {platform.machine()}, {versions()}
- Whole run: {elapsed:.0f} s, peak RSS {gb(peak)}; 1-minute load average at start / end: {loads}

{tab.markdown()}
{SPARK_NOTES}"""
    RESULTS.write_text(text, encoding="utf-8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, no 1M-account stages, no RESULTS.md")
    parser.add_argument("--no-write", action="store_true", help=f"do not write {RESULTS.relative_to(ROOT)}")
    parser.add_argument("--big", action="store_true", help="also 20M accounts in the bank-scale section")
    parser.add_argument("--only", nargs="+", choices=("ingest", "stages", "app", "whatif", "bank", "spark"),
                        help="run only these sections (never writes RESULTS.md)")
    parser.add_argument("--bank-sizes", nargs="+", choices=tuple(BANK_SIZES),
                        help="bank-scale sizes instead of the default (never writes RESULTS.md); the first also "
                             "runs load / publish / verify and the xlsx read")
    args = parser.parse_args(argv)
    only = set(args.only or ("ingest", "stages", "app", "whatif", "bank", "spark"))

    t_start = time.perf_counter()
    load_start = load()
    print(f"Jixiao bench: {dt.date.today().isoformat()}, {os.cpu_count()} cores, {versions()}; load average {load()}")
    tab = Table()
    if only & {"ingest", "stages"}:
        with tempfile.TemporaryDirectory(prefix="jixiao-bench-") as tmp:
            typed = bench_ingest(tab, Path(tmp), args.quick)
        if "stages" in only:
            bench_stages(tab, typed, args.quick)
        del typed
        gc.collect()
    if "app" in only:
        with tempfile.TemporaryDirectory(prefix="jixiao-bench-store-") as tmp:
            bench_app(tab, Path(tmp))
    if "whatif" in only:
        with tempfile.TemporaryDirectory(prefix="jixiao-bench-whatif-") as tmp:
            bench_whatif(tab, Path(tmp), args.quick)
    if "bank" in only:
        bench_bank(tab, args.quick, args.big, args.bank_sizes)
    if "spark" in only:
        bench_spark(tab, args.bank_sizes or (["20k"] if args.quick else ["1M", "5M"]), args.quick)

    elapsed = time.perf_counter() - t_start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    section(f"Summary ({elapsed:.0f} s, peak RSS {gb(peak)}, load average now {load()}; "
            "times are figures, not assertions)")
    print(tab.text())
    if not args.no_write and not args.quick and not args.only and not args.bank_sizes:
        write_results(tab, elapsed, peak, f"{load_start} / {load()}")
        print(f"\nwrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
