"""The heavy stage on Spark (local mode) gives the embedded engine's numbers, from the same SQL.

Spark runs the text of :mod:`calc.formulas` unchanged (:mod:`calc.spark`); these tests check
that a bank gets the same pay to 0.01 yuan whichever engine computed it: the hand-computed
formula cases (``tests/test_formulas.py`` runs each of them on Spark too), random small banks, the
sample bank, an unseen Chinese-header workbook under a non-default scenario through
``cli.py evaluate --engine spark``, and an extract read from warehouse tables (``spark:DB``),
validated by the same rules with the same row-level report.

Spark needs Java and pyspark: locally the tests skip when either is missing; in CI they fail.
"""

from __future__ import annotations

import json
import uuid

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings

from calc.heavy import build_base
from calc.light import evaluate
from calc.scenario import Scenario
from spark_support import require_spark
from test_engines import _bank, assert_same_customers
from test_properties import datasets

pytestmark = pytest.mark.spark

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample" / "sample_bank.xlsx"

# One scenario far from the defaults on every account-level and light parameter the heavy stage
# and the pay read: period and day basis, tax, costs, capital, risk weights, pay-link factors,
# roles and the stock factor.
OTHER_SCENARIO = """
name = "2026Q4 中间业务加码"
days = 92
day_basis = 365
tax_rate = 0.05
capital_ratio = 0.12
cost_of_capital = 0.08
risk_weight_default = 1.2
stock_factor = 0.6

[unit_cost]
asset = 250
liability = 15
intermediate = 5

[cost_rate]
asset = 0.005
liability = 0.0015

[pay_factor]
asset = 0.05
liability = 0.04
intermediate = 0.2
risk = 0.1

[role_weight]
primary = 0.6
secondary = 0.3
support = 0.1
"""


@pytest.fixture(scope="module", autouse=True)
def spark():
    require_spark()
    from calc.spark import session

    return session()


def _same_numbers(a, b, path="", tol=0.01):
    """Every number of two result documents within ``tol`` (yuan), everything else equal; the
    largest difference found."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        return max([_same_numbers(a[k], b[k], f"{path}.{k}", tol) for k in a] or [0.0])
    if isinstance(a, list):
        assert len(a) == len(b), path
        return max([_same_numbers(x, y, f"{path}[{i}]", tol) for i, (x, y) in enumerate(zip(a, b))] or [0.0])
    if isinstance(a, float) or isinstance(b, float):
        assert b == pytest.approx(a, abs=tol), path
        return abs(a - b)
    assert a == b, path
    return 0.0


def _assert_same_base(a, b):
    assert_same_customers(a, b, atol=1e-6)
    assert b.accounts_total == pytest.approx(a.accounts_total, rel=1e-12, abs=1e-6)


@pytest.mark.parametrize("scenario", [Scenario(), Scenario(days=10, day_basis=365, risk_weight_default=1.5)])
def test_spark_gives_the_embedded_heavy_stage(scenario):
    frames = _bank()
    a = build_base(frames, scenario)
    b = build_base(frames, scenario, engine="spark")
    _assert_same_base(a, b)
    # hand-computed (tests/test_engines.py's bank): C1 holds a deposit and a loan, C2 an intermediate
    # account, an asset account with a blank product (its line counts) and a deposit; C3 nothing
    assert b.customers["products"].tolist() == [2, 3, 0]
    assert b.customers["accounts"].tolist() == [2, 3, 0]
    # the daily averages Spark brought back (DOMAIN 4), scenario D = 90 ending 2024-01-06:
    # L1 100 for Jan 3-5 (3 days), 200 for Jan 6 -> (300 + 200) / 90; A2 50 from Dec 25 -> 13 days x 50 / 90
    if scenario.days == 90:
        avg = b.daily_avg.set_index("account_id")["avg_balance"]
        assert avg["L1"] == pytest.approx(500 / 90)
        assert avg["A2"] == pytest.approx(13 * 50 / 90)
    # the drill-down's account terms are computed from the rows at hand, as on the embedded engine
    assert np.allclose(b.accounts["contribution"], a.accounts["contribution"], rtol=1e-12, atol=1e-9)


def test_an_unknown_customer_is_refused_as_on_the_embedded_engine():
    frames = _bank()
    acc = frames["accounts"].copy()
    acc.loc[0, "customer_id"] = "C9"
    frames["accounts"] = acc
    with pytest.raises(ValueError, match="C9"):
        build_base(frames, Scenario(), engine="spark")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(datasets())
def test_random_small_banks_get_the_same_pay_on_both_engines(data):
    frames, scenario = data
    a = evaluate(build_base(frames, scenario), scenario)
    b = evaluate(build_base(frames, scenario, engine="spark"), scenario)
    cols = ["total_contribution", "pay", "points_pay", "score", "deposit_avg", "loan_increase"]
    x = a.managers.set_index("manager_id")[cols]
    y = b.managers.set_index("manager_id").loc[x.index, cols]
    assert np.allclose(x.to_numpy(float), y.to_numpy(float), rtol=1e-9, atol=0.01)
    for key in ("contribution", "attributed", "unattributed", "pay", "points_pay"):
        assert b.totals[key] == pytest.approx(a.totals[key], abs=0.01), key


def _evaluate(args, capsys):
    """``cli.py evaluate`` in this process (where the Spark session and its catalog live)."""
    import cli

    rc = cli.main(["evaluate", *map(str, args)])
    return rc, capsys.readouterr()


def test_the_sample_bank_gives_the_same_document_on_spark(tmp_path, capsys):
    rc, out = _evaluate([SAMPLE, "--json", tmp_path / "d.json"], capsys)
    assert rc == 0, out.err
    rc, out = _evaluate([SAMPLE, "--engine", "spark", "--json", tmp_path / "s.json"], capsys)
    assert rc == 0, out.err
    a, b = (json.loads((tmp_path / f).read_text(encoding="utf-8")) for f in ("d.json", "s.json"))
    assert len(a["managers"]) == 40 and len(a["customers"]) == 2000
    assert _same_numbers(a, b) < 1e-6       # far below the fen: only the order of additions differs


def test_an_unseen_chinese_workbook_under_another_scenario_gives_the_same_numbers(tmp_path, capsys):
    from data.sample.generate import generate, write_workbook

    frames = generate(seed=913, n_branches=3, n_managers=17, n_customers=700, n_accounts=2300, daily_accounts=40)
    book = tmp_path / "二季度提数.xlsx"
    write_workbook(frames, book, lang="zh")       # Chinese sheet names, headers and values
    scen = tmp_path / "scenario.toml"
    scen.write_text(OTHER_SCENARIO, encoding="utf-8")
    docs = []
    for engine in ("duckdb", "spark"):
        out = tmp_path / f"{engine}.json"
        rc, got = _evaluate([book, "--scenario", scen, "--engine", engine, "--json", out], capsys)
        assert rc == 0, got.err
        docs.append(json.loads(out.read_text(encoding="utf-8")))
    rc, got = _evaluate([book, "--json", tmp_path / "default.json"], capsys)
    assert rc == 0, got.err
    default = json.loads((tmp_path / "default.json").read_text(encoding="utf-8"))
    a, b = docs
    assert len(a["managers"]) == 17
    assert abs(a["totals"]["contribution"] - default["totals"]["contribution"]) > 1_000   # the scenario applied
    assert _same_numbers(a, b) < 1e-6
    assert a["totals"]["pay"] == pytest.approx(b["totals"]["pay"], abs=0.01)


def _warehouse(spark, frames: dict[str, pd.DataFrame], broken: dict | None = None) -> str:
    """A Spark database holding ``frames`` as one table per sheet, with the schema's English
    names (as a bank's warehouse would), the cells as the sample's workbook holds them."""
    import pyarrow as pa

    from calc.spark import _to_spark
    from data.sample.generate import _localised

    name = f"jixiao_test_{uuid.uuid4().hex[:8]}"
    spark.sql(f"CREATE DATABASE {name}")
    for key, frame in frames.items():
        table = _localised(key, frame, "en")
        if broken and key in broken:
            row, col, value = broken[key]
            table.loc[table.index[row], col] = value
        cols = {}
        for col in table.columns:
            values = [None if isinstance(v, float) and v != v else v for v in table[col].tolist()]   # NULL
            try:
                cols[col] = pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError):     # mixed cells (a rate as "1.5%") stay text
                cols[col] = pa.array([None if v is None else str(v) for v in values], pa.string())
        # one file per table, so that Spark reads the rows back in the order written (the report's
        # row numbers are positions in the order Spark reads a table)
        _to_spark(spark, pa.table(cols)).coalesce(1).write.saveAsTable(f"{name}.{key}")
    return name


def test_warehouse_tables_are_validated_and_give_the_files_numbers(spark, tmp_path, capsys):
    from data.sample.generate import generate, write_workbook

    frames = generate(seed=77, n_branches=2, n_managers=9, n_customers=300, n_accounts=900, daily_accounts=20)
    book = tmp_path / "extract.xlsx"
    write_workbook(frames, book, lang="zh")
    db = _warehouse(spark, frames)
    try:
        rc, got = _evaluate([book, "--json", tmp_path / "file.json"], capsys)
        assert rc == 0, got.err
        rc, got = _evaluate([f"spark:{db}", "--engine", "spark", "--json", tmp_path / "wh.json"], capsys)
        assert rc == 0, got.err
        a, b = (json.loads((tmp_path / f).read_text(encoding="utf-8")) for f in ("file.json", "wh.json"))
        assert len(b["managers"]) == 9 and len(b["customers"]) == 300
        assert [c["customer_id"] for c in b["customers"]] == [c["customer_id"] for c in a["customers"]]
        assert _same_numbers(a, b) < 1e-6
    finally:
        spark.sql(f"DROP DATABASE {db} CASCADE")


def test_a_bad_warehouse_row_gets_the_row_level_report(spark, tmp_path, capsys):
    from data.sample.generate import generate

    frames = generate(seed=78, n_branches=2, n_managers=5, n_customers=60, n_accounts=150, daily_accounts=0)
    db = _warehouse(spark, frames, broken={"accounts": (41, "line", "mortgage")})   # table row 42
    try:
        rc, got = _evaluate([f"spark:{db}", "--engine", "spark", "--json", tmp_path / "wh.json"], capsys)
        assert rc != 0
        assert not (tmp_path / "wh.json").exists()
        assert "Traceback" not in got.err
        report = got.err
        assert "mortgage" in report and "accounts" in report
        assert "43" in report          # the header is row 1: table row 42 is row 43, as in a sheet
    finally:
        spark.sql(f"DROP DATABASE {db} CASCADE")


def test_a_missing_warehouse_database_is_a_clear_message(capsys):
    rc, got = _evaluate(["spark:no_such_db_here", "--engine", "spark"], capsys)
    assert rc != 0
    assert "no_such_db_here" in got.err and "Traceback" not in got.err


def test_an_admin_reads_a_warehouse_period_on_the_upload_page_and_spark_computes_it(spark, tmp_path, monkeypatch):
    """With ``engine = "spark"`` configured, the Upload page reads a warehouse database as an
    extract (validated as a file), stores it, and the period's heavy stage runs on Spark."""
    from data.auth import Principal, Users
    from data.sample.generate import generate
    from data.store import Store
    from streamlit.testing.v1 import AppTest
    from ui import state

    url = f"sqlite:///{tmp_path / 'pages.db'}"
    monkeypatch.setenv("JIXIAO_DATABASE_URL", url)
    monkeypatch.setenv("JIXIAO_ENGINE", "spark")
    Users(Store.open(url)).create("boss", "boss-password-1", "admin", actor="t", first_admin=True)
    frames = generate(seed=79, n_branches=2, n_managers=6, n_customers=80, n_accounts=240, daily_accounts=10)
    db = _warehouse(spark, frames)
    try:
        at = AppTest.from_file(str(ROOT / "pages" / "upload.py"), default_timeout=120)
        at.session_state["lang"] = "zh"
        at.session_state["_who"] = Principal("boss", "admin")
        at.session_state["_last_seen"] = __import__("time").time()
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert any("从数据仓库读取" in e.label for e in at.expander)
        at.text_input(key="warehouse_db").set_value(db).run()
        at.button(key="warehouse_read").click().run()
        assert not at.exception, [e.value for e in at.exception]
        assert not at.error, [e.value for e in at.error]
        assert any(s.value.startswith("校验通过") and "accounts 240" in s.value for s in at.success), \
            [s.value for s in at.success]
        at.text_input(key="upload_period").set_value("2031Q3").run()
        at.button(key="accept_dataset").click().run()
        assert not at.exception, [e.value for e in at.exception]
        [info] = Store.open(url).datasets()
        assert info.period == "2031Q3" and info.label == f"2031Q3 v1 (spark:{db})"
        assert info.row_counts["accounts"] == 240
        bases = [b for b in state._bases.values() if b.customers["customer_id"].isin(frames["customers"]["customer_id"]).all()
                 and len(b.customers) == 80]
        assert bases and all(b.engine == "spark" for b in bases)     # the upload's heavy stage ran on Spark
        # publishing computes on the embedded engine (docs/RULES.md), so verify reproduces the hash
        store = Store.open(url)
        pub = store.publish("2031Q3", Scenario(), "first", "boss")
        assert store.verify(int(pub["id"]))["how"] == "hash"
    finally:
        spark.sql(f"DROP DATABASE {db} CASCADE")
