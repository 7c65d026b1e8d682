"""Issue 14 acceptance: on an unseen pair of generated banks and a non-default scenario,
`cli.py evaluate --edits`, `--budget` (with and without `--lock`) and `cli.py compare` match an
independent calculation to 0.01 yuan.

The independent calculation is :mod:`bench.reference` (plain DuckDB SQL written from DOMAIN.md,
importing nothing of calc or data): edits are applied to the CSV files themselves, budgets are
solved from the reference document's per-line contributions, and the chain substitution is
written here again from DOMAIN 11.2 on the reference's own coefficients and contributions.
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from bench import gen
from bench.reference import DEFAULTS, _coefficients_sql, _customer_measures_sql, _read_csv, duckdb_evaluate
from tests.test_cli import cli

LINES = ("asset", "liability", "intermediate", "risk")
# the non-default scenario, for the CLI (TOML) and the reference (params)
PARAMS = {"stock_factor": 0.6, "role_weight": {"primary": 0.7, "secondary": 0.4, "support": 0.1},
          "pay_factor": {"asset": 0.06, "liability": 0.05, "intermediate": 0.12, "risk": 0.08}}
TOML = ("name = \"acceptance\"\nstock_factor = 0.6\n[role_weight]\nsecondary = 0.4\n"
        "[pay_factor]\nintermediate = 0.12\n")


@pytest.fixture(scope="module")
def banks(tmp_path_factory):
    root = tmp_path_factory.mktemp("whatif_acceptance")
    out = {}
    for name, seed in (("a", 11), ("b", 12)):
        gen.write_folder(gen.generate(3000, seed=seed), root / name)
        out[name] = root / name
    (root / "s.toml").write_text(TOML, encoding="utf-8")
    out["scenario"] = root / "s.toml"
    out["root"] = root
    return out


def _pays(path) -> dict:
    return {m["manager_id"]: m["pay"] for m in json.loads(path.read_text(encoding="utf-8"))["managers"]}


def _reference(folder, out, params=None) -> dict:
    duckdb_evaluate(folder, out, {**PARAMS, **(params or {})})
    return json.loads(out.read_text(encoding="utf-8"))


def _close(a: dict, b: dict, tol=0.01):
    assert set(a) == set(b)
    worst = max(abs(a[k] - b[k]) for k in a)
    assert worst <= tol, worst


def test_edits_match_the_reference_on_an_edited_extract(banks, tmp_path):
    asg = pl.read_csv(banks["a"] / "assignments.csv", infer_schema_length=0)
    asg = asg.with_columns(pl.col("关联度系数").cast(pl.Float64, strict=False))
    per = asg.group_by("客户号").agg(pl.len().alias("n"), pl.col("关联度系数").null_count().alias("blank"))
    two_blank = per.filter((pl.col("n") == 2) & (pl.col("blank") == 2)).sort("客户号")["客户号"].to_list()
    one_blank = per.filter((pl.col("n") == 1) & (pl.col("blank") == 1)).sort("客户号")["客户号"].to_list()
    managers = sorted(pl.read_csv(banks["a"] / "managers.csv", infer_schema_length=0)["客户经理编号"].to_list())
    x, y = two_blank[0], two_blank[1]
    z = one_blank[0]
    x_mgr = asg.filter(pl.col("客户号") == x).sort("客户经理编号")["客户经理编号"].to_list()
    y_mgr = asg.filter(pl.col("客户号") == y).sort("客户经理编号")["客户经理编号"].to_list()
    z_mgr = asg.filter(pl.col("客户号") == z)["客户经理编号"].to_list()[0]
    newcomer = next(m for m in managers if m != z_mgr)
    edits = tmp_path / "edits.csv"
    edits.write_text("操作,客户号,客户经理编号,角色,关联度系数\n"
                     f"设置,{x},{x_mgr[0]},,0.55\n"
                     f"删除,{y},{y_mgr[1]},,\n"
                     f"新增,{z},{newcomer},协办,\n", encoding="utf-8")
    out = tmp_path / "cli.json"
    p = cli("evaluate", banks["a"], "--scenario", banks["scenario"], "--edits", edits, "--json", out)
    assert p.returncode == 0, p.stderr
    # the same edits made to the extract itself, then the independent evaluation
    edited = asg.with_columns(
        pl.when((pl.col("客户号") == x) & (pl.col("客户经理编号") == x_mgr[0])).then(0.55)
        .otherwise(pl.col("关联度系数")).alias("关联度系数"))
    edited = edited.filter(~((pl.col("客户号") == y) & (pl.col("客户经理编号") == y_mgr[1])))
    edited = pl.concat([edited, pl.DataFrame({"客户号": [z], "客户经理编号": [newcomer], "角色": ["协办"],
                                              "关联度系数": [None]}, schema=edited.schema)])
    folder = tmp_path / "edited"
    folder.mkdir()
    for f in banks["a"].iterdir():
        if f.name != "assignments.csv":
            (folder / f.name).write_bytes(f.read_bytes())
    edited.write_csv(folder / "assignments.csv")
    ref = _reference(folder, tmp_path / "ref.json")
    _close(_pays(out), {m["manager_id"]: m["pay"] for m in ref["managers"]})
    assert _pays(out) != _pays_plain(banks, tmp_path)          # the edits changed something


def _pays_plain(banks, tmp_path) -> dict:
    out = tmp_path / "plain.json"
    assert cli("evaluate", banks["a"], "--scenario", banks["scenario"], "--json", out).returncode == 0
    return _pays(out)


def _line_pay(ref: dict) -> tuple[np.ndarray, list]:
    """Per manager (rows) and line (columns): attributed contribution from a reference document."""
    ids = [m["manager_id"] for m in ref["managers"]]
    return np.array([[m["contribution"][x] for x in LINES] for m in ref["managers"]]), ids


def _solve(S: np.ndarray, f: np.ndarray, free: np.ndarray, budget: float) -> float:
    """k with sum_m max(S_m . (f * (k if free else 1)), 0) = budget: bisection to the last bit."""
    fixed, scaled = S @ np.where(free, 0, f), S @ np.where(free, f, 0)
    total = lambda k: np.clip(fixed + k * scaled, 0, None).sum()
    lo, hi = 0.0, 1.0
    while total(hi) < budget:
        hi *= 2
    for _ in range(300):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if total(mid) < budget else (lo, mid)
    return (lo + hi) / 2


@pytest.mark.parametrize("lock", [None, "risk"])
def test_budget_matches_the_reference(banks, tmp_path, lock):
    ref = _reference(banks["a"], tmp_path / "ref.json")
    S, ids = _line_pay(ref)
    f = np.array([PARAMS["pay_factor"][x] for x in LINES])
    free = np.array([x != lock for x in LINES])
    budget = round(1.25 * sum(m["pay"] for m in ref["managers"]), 2)
    k = _solve(S, f, free, budget)
    scaled = {x: float(f[i] * (k if free[i] else 1.0)) for i, x in enumerate(LINES)}
    expected = _reference(banks["a"], tmp_path / "ref_scaled.json", {"pay_factor": scaled})
    out = tmp_path / "cli.json"
    args = ["evaluate", banks["a"], "--scenario", banks["scenario"], "--budget", str(budget), "--json", out]
    p = cli(*args, *(["--lock", lock] if lock else []))
    assert p.returncode == 0, p.stderr
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["scaled"]["k"] == pytest.approx(k, rel=1e-9)
    _close(_pays(out), {m["manager_id"]: m["pay"] for m in expected["managers"]})
    assert abs(sum(_pays(out).values()) - budget) <= 1.0


def _reference_state(folder, params) -> tuple[dict, dict, dict]:
    """(C per customer per line, c per (customer, manager), pay per manager) by the reference SQL."""
    import duckdb

    p = {**DEFAULTS, **params}
    con = duckdb.connect()
    for name in ("accounts", "customers", "assignments"):
        con.execute(f"CREATE TEMP TABLE {name}_raw AS {_read_csv(folder, name)}")
    con.execute("CREATE TEMP VIEW customers AS SELECT * REPLACE (is_new = 'yes' AS is_new) FROM customers_raw")
    C = {r[0]: np.array(r[1:], dtype=float) for r in con.execute(
        f"SELECT customer_id, {', '.join(f'COALESCE({x}, 0)' for x in LINES)} "
        f"FROM ({_customer_measures_sql(p, 'accounts_raw')})").fetchall()}
    c = {(r[0], r[1]): float(r[2]) for r in con.execute(
        f"SELECT customer_id, manager_id, c FROM ({_coefficients_sql(p, 'assignments_raw', 'customers')})").fetchall()}
    return C, c, p


def _P(C: dict, c: dict, f: np.ndarray) -> dict:
    out: dict = {}
    for (cust, mgr), k in c.items():
        out[mgr] = out.get(mgr, 0.0) + k * float(C.get(cust, np.zeros(4)) @ f)
    return {m: max(v, 0.0) for m, v in out.items()}


def test_compare_matches_a_chain_substitution_written_from_the_domain(banks, tmp_path):
    scen_b = banks["root"] / "s_b.toml"
    scen_b.write_text("stock_factor = 0.9\n[pay_factor]\nrisk = 0.1\nintermediate = 0.08\n", encoding="utf-8")
    out = tmp_path / "why.json"
    p = cli("compare", banks["a"], banks["b"], "--scenario-a", banks["scenario"], "--scenario-b", scen_b,
            "--json", out)
    assert p.returncode == 0, p.stderr
    got = {r["manager_id"]: r for r in json.loads(out.read_text(encoding="utf-8"))["managers"]}
    CA, cA, pa = _reference_state(banks["a"], PARAMS)
    CB, cB, pb = _reference_state(banks["b"], {"stock_factor": 0.9, "pay_factor": {
        "asset": 0.06, "liability": 0.05, "intermediate": 0.08, "risk": 0.1}})
    fA = np.array([pa["pay_factor"][x] for x in LINES])
    fB = np.array([pb["pay_factor"][x] for x in LINES])
    steps = [_P(CA, cA, fA), _P(CB, cA, fA), _P(CB, cB, fA), _P(CB, cB, fB)]
    managers = set().union(*steps)
    managers |= set(pl.read_csv(banks["a"] / "managers.csv", infer_schema_length=0)["客户经理编号"])
    managers |= set(pl.read_csv(banks["b"] / "managers.csv", infer_schema_length=0)["客户经理编号"])
    assert set(got) == managers
    for m in managers:
        s = [st.get(m, 0.0) for st in steps]
        r = got[m]
        assert [r["pay_a"], r["contribution_effect"], r["attribution_effect"], r["factor_effect"], r["pay_b"]] == \
            pytest.approx([s[0], s[1] - s[0], s[2] - s[1], s[3] - s[2], s[3]], abs=0.01), m
