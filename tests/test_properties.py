"""Property tests on random small datasets (hypothesis).

Each example is a valid extract: unique ids, every foreign key resolvable, given coefficients of
a customer summing to at most 1, plus a random scenario of light and account-level parameters.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calc.heavy import build_base
from calc.light import evaluate, live
from calc.pipeline import run
from calc.rules import CoefficientError
from calc.scenario import PAY_LINES, KpiDef, Scenario
from factories import make_frames

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

LINES = ("asset", "liability", "intermediate")
ROLES = ("primary", "secondary", "support")
CLASSES = (None, "normal", "special", "substandard", "doubtful", "loss")
PRODUCTS = (None, "", "P1", "P2", "P3", "P4", "P5")
UPLOADED = ("compliance_points", "complaints", "training_hours")

money = st.floats(0, 50_000_000, allow_nan=False, allow_infinity=False)
signed_money = st.floats(-1_000_000, 1_000_000, allow_nan=False, allow_infinity=False)
rates = st.floats(0, 0.2, allow_nan=False, allow_infinity=False)


@st.composite
def datasets(draw):
    """(frames, scenario) for a random small bank."""
    n_mgr = draw(st.integers(1, 5))
    n_cust = draw(st.integers(1, 6))
    managers = [{"manager_id": f"{i:03d}", "branch": draw(st.sampled_from(("B1", "B2", "B3")))}
                for i in range(n_mgr)]
    customers = [{"customer_id": f"C{i:04d}", "is_new": draw(st.booleans()),
                  "branch": draw(st.sampled_from(("B1", "B2")))} for i in range(n_cust)]
    accounts = []
    for c in customers:
        for _ in range(draw(st.integers(0, 3))):
            line = draw(st.sampled_from(LINES))
            accounts.append({
                "account_id": f"A{len(accounts):05d}", "customer_id": c["customer_id"], "line": line,
                "product": draw(st.sampled_from(PRODUCTS)),
                "avg_balance": draw(money), "base_avg_balance": draw(money),
                "rate": draw(rates), "ftp_rate": draw(rates),
                "fee_income": draw(signed_money) if line == "intermediate" else 0.0,
                "provision": draw(st.floats(0, 1_000_000)) if line == "asset" else 0.0,
                "recovery": draw(st.floats(0, 1_000_000)) if line == "asset" else 0.0,
                "risk_weight": draw(st.one_of(st.none(), st.floats(0, 2))),
                "classification": draw(st.sampled_from(CLASSES)) if line == "asset" else None,
            })
    assignments = []
    for c in customers:
        chosen = draw(st.lists(st.integers(0, n_mgr - 1), unique=True, max_size=min(3, n_mgr)))
        left = 20  # given coefficients in twentieths; their sum stays <= 1
        for m in chosen:
            coef = None
            if left > 0 and draw(st.booleans()):
                k = draw(st.integers(1, left))
                left -= k
                coef = k / 20
            assignments.append({"customer_id": c["customer_id"], "manager_id": managers[m]["manager_id"],
                                "role": draw(st.sampled_from(ROLES)), "coefficient": coef})
    kpis = []
    for m in managers:
        for code in UPLOADED:
            if draw(st.booleans()):
                kpis.append({"manager_id": m["manager_id"], "kpi": code, "value": draw(st.integers(0, 10))})
    targets = []
    for m in managers:
        if draw(st.booleans()):
            targets.append({"manager_id": m["manager_id"], "kpi": "deposit_avg",
                            "target": float(draw(st.integers(-1_000, 10_000_000)))})
    daily = []
    if accounts and draw(st.booleans()):
        for a in accounts[:3]:
            for day in sorted(draw(st.lists(st.integers(0, 40), unique=True, max_size=4))):
                daily.append({"account_id": a["account_id"], "date": pd.Timestamp("2024-01-01") + pd.Timedelta(days=day),
                              "balance": draw(money)})
    frames = make_frames(managers=managers, customers=customers, accounts=accounts, assignments=assignments,
                         targets=targets, kpis=kpis, daily=daily)
    scenario = Scenario().replace(
        days=draw(st.sampled_from((30, 90, 92))),
        stock_factor=draw(st.floats(0, 1)),
        floor_at_zero=draw(st.booleans()),
        pool=draw(st.sampled_from((0.0, 1.0, 1_000_000.0))),
        pay_method=draw(st.sampled_from(("factor", "points"))),
        role_weight={r: draw(st.floats(0, 1)) for r in ROLES},
        kpi=[KpiDef("deposit_avg", "financial", 40, "ratio"), KpiDef("loan_avg", "financial", 20, "ratio"),
             KpiDef("cross_sell", "customer", 10, "ratio"), KpiDef("new_customers", "customer", 5, "ratio"),
             KpiDef("complaints", "customer", 5, "inverse"), KpiDef("training_hours", "learning", 20, "ratio"),
             KpiDef("compliance_points", "internal", 5, "deduction")],
    )
    return frames, scenario


def close(a, b, scale=1.0):
    """a == b to 1e-6 relative (to the larger of |a|, |b| and ``scale``)."""
    return abs(a - b) <= 1e-6 * max(abs(a), abs(b), scale, 1.0)


def _shuffle(frames, rng):
    return {k: v.sample(frac=1.0, random_state=rng).reset_index(drop=True) for k, v in frames.items()}


@SETTINGS
@given(datasets())
def test_contribution_is_attributed_plus_unattributed(data):
    frames, scenario = data
    _, res = run(frames, scenario)
    t = res.totals
    scale = float(res.customers[list(PAY_LINES)].abs().to_numpy().sum())
    assert close(t["contribution"], t["attributed"] + t["unattributed"], scale), t
    for line in PAY_LINES:
        assert close(t[f"contribution_{line}"], t[f"attributed_{line}"] + t[f"unattributed_{line}"], scale), line
    # per customer, from the assignment rows: attributed = (sum of the coefficients used) x total
    c = res.customers.set_index("customer_id")
    used = res.assignments.groupby("customer_id")["coefficient_used"].sum().reindex(c.index, fill_value=0.0)
    for cid, tot, att in zip(c.index, c["total"], c["attributed"]):
        assert close(att, used[cid] * tot, abs(tot)), cid


@SETTINGS
@given(datasets())
def test_points_pay_shares_out_the_pool(data):
    frames, scenario = data
    _, res = run(frames, scenario)
    m = res.managers
    assert (m["points_pay"] >= 0).all()
    if (m["pay_raw"] > 0).any():
        assert close(float(m["points_pay"].sum()), scenario.pool, scenario.pool)
    else:
        assert float(m["points_pay"].sum()) == 0.0
    assert (m.loc[m["pay_raw"] <= 0, "points_pay"] == 0).all()


@SETTINGS
@given(datasets(), st.integers(0, 2**31 - 1))
def test_row_order_changes_nothing(data, seed):
    frames, scenario = data
    _, a = run(frames, scenario)
    _, b = run(_shuffle(frames, np.random.RandomState(seed)), scenario)
    ma, mb = a.managers.set_index("manager_id"), b.managers.set_index("manager_id").loc[a.managers["manager_id"]]
    for col in (*PAY_LINES, "total", "deposit_avg", "deposit_increase", "loan_avg", "pay_raw", "pay",
                "points_pay", "score", "customers", "cross_sell", "new_customers"):
        scale = float(ma[col].abs().max())
        for mid, x, y in zip(ma.index, ma[col], mb[col]):
            assert close(x, y, scale), (col, mid, x, y)
    for col in ("rank", "branch_rank", "grade"):
        assert list(ma[col]) == list(mb[col]), col
    ca, cb = a.customers.set_index("customer_id"), b.customers.set_index("customer_id").loc[a.customers["customer_id"]]
    for col in (*PAY_LINES, "total", "attributed", "unattributed", "coef_sum", "volume", "ltv"):
        for cid, x, y in zip(ca.index, ca[col], cb[col]):
            assert close(x, y, abs(x)), (col, cid, x, y)
    for col in ("tier", "relationship_level", "products"):
        assert list(ca[col]) == list(cb[col]), col
    for k in ("contribution", "attributed", "unattributed", "pay", "points_pay"):
        assert close(a.totals[k], b.totals[k], abs(a.totals["contribution"]) + abs(a.totals["pay"])), k


def _snapshot(frames):
    return {k: v.copy(deep=True) for k, v in frames.items()}


def _assert_same(before, after):
    assert before.keys() == after.keys()
    for k in before:
        pd.testing.assert_frame_equal(before[k], after[k], check_exact=True, obj=k)


@SETTINGS
@given(datasets())
def test_no_calc_function_mutates_its_inputs(data):
    frames, scenario = data
    before = _snapshot(frames)
    scenario_before = copy.deepcopy(scenario)
    base = build_base(frames, scenario)
    _assert_same(before, frames)
    base_before = {k: getattr(base, k).copy(deep=True)
                   for k in ("customers", "managers", "assignments", "targets", "kpis", "accounts")}
    evaluate(base, scenario)
    _assert_same(base_before, {k: getattr(base, k) for k in base_before})
    _assert_same(before, frames)
    assert scenario == scenario_before


@SETTINGS
@given(datasets())
def test_coefficients_of_a_customer_sum_to_at_most_one(data):
    frames, scenario = data
    _, res = run(frames, scenario)
    a = res.assignments
    assert (a["coefficient_used"] >= 0).all()
    sums = a.groupby("customer_id")["coefficient_used"].sum()
    assert (sums <= 1 + 1e-9).all(), sums[sums > 1 + 1e-9]
    assert (res.customers["coef_sum"] <= 1 + 1e-9).all()
    # given coefficients are used as they are
    g = a[a["coefficient"].notna()]
    assert (g["coefficient_used"] == g["coefficient"]).all()


@SETTINGS
@given(datasets())
def test_pay_is_never_negative_when_floored(data):
    frames, scenario = data
    s = scenario.replace(floor_at_zero=True)
    base, res = run(frames, s)
    assert (res.managers["pay"] >= 0).all()
    assert res.totals["pay"] >= 0
    off = evaluate(base, s.replace(floor_at_zero=False))
    pos = off.managers["pay_raw"] > 0
    # where pay_raw > 0 the floor changes nothing
    assert np.allclose(res.managers.loc[pos, "pay"], off.managers.loc[pos, "pay"], rtol=1e-12, atol=0)


@st.composite
def lever_moves(draw, frames):
    """1-4 successive what-if moves: each changes some of the levers a slider or editor moves."""
    pairs = list(zip(frames["assignments"]["customer_id"], frames["assignments"]["manager_id"]))
    moves = []
    for _ in range(draw(st.integers(1, 4))):
        change = {}
        if draw(st.booleans()):
            change["pay_factor"] = {x: draw(st.sampled_from((0.0, 0.005, 0.1, 0.37, 0.5))) for x in PAY_LINES}
        if draw(st.booleans()):
            change["role_weight"] = {r: draw(st.sampled_from((0.0, 0.05, 0.3, 0.7, 1.0))) for r in ROLES}
        if draw(st.booleans()):
            change["stock_factor"] = draw(st.sampled_from((0.0, 0.35, 1.0)))
        if draw(st.booleans()):
            change["pool"] = draw(st.sampled_from((0.0, 500_000.0, 2_000_000.0)))
            change["pay_method"] = draw(st.sampled_from(("factor", "points")))
            change["floor_at_zero"] = draw(st.booleans())
        if draw(st.booleans()):
            change["kpi"] = [KpiDef("deposit_avg", "financial", draw(st.sampled_from((0, 15, 40))), "ratio"),
                             KpiDef("npl_ratio", "financial", 10, "inverse"),
                             KpiDef("customers", "customer", draw(st.sampled_from((0, 5))), "ratio"),
                             KpiDef("complaints", "customer", 5, "inverse"),
                             KpiDef("compliance_points", "internal", 5, "deduction")]
        if draw(st.booleans()):
            change["grades"] = {"senior": 60.0, "advanced": 40.0, "manager": 20.0, "assistant": 0.0}
        overrides = {}
        if pairs and draw(st.booleans()):
            for pair in draw(st.lists(st.sampled_from(pairs), max_size=3)):
                overrides[pair] = draw(st.sampled_from((0.05, 0.5, 1.0)))
            if draw(st.booleans()):
                overrides[("no such customer", "no such manager")] = 0.5
        moves.append((change, overrides or None))
    return moves


def _same_frame(a: pd.DataFrame, b: pd.DataFrame, what: str) -> None:
    """Same columns in the same order, same rows; floats to 1e-9 of the column's largest value."""
    assert list(a.columns) == list(b.columns), what
    assert len(a) == len(b), what
    for col in a.columns:
        x, y = a[col].to_numpy(), b[col].to_numpy()
        if a[col].dtype.kind == "f":
            scale = max(float(np.nanmax(np.abs(x), initial=0.0)), 1.0)
            assert np.array_equal(np.isnan(x), np.isnan(y)), (what, col)
            assert np.nanmax(np.abs(x - y), initial=0.0) <= 1e-9 * scale, (what, col, x, y)
        else:
            assert list(x) == list(y), (what, col, x, y)


@pytest.mark.parametrize("dense", [4, 0], ids=["class-blocks", "group-sums"])
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_live_what_if_equals_a_full_evaluation(dense, data):
    """The app's incremental light stage (``live``) gives what the reference ``evaluate`` gives,
    move after move on one Base (its kept intermediate results included), by either of its two
    ways of summing derived coefficients per manager (dense blocks per class, or per group)."""
    from unittest import mock

    import calc.light

    with mock.patch.object(calc.light, "_DENSE_CLASSES", dense):
        _live_equals_full(data)


def _live_equals_full(data):
    frames, scenario = data.draw(datasets())
    # levers as a slider or number box sets them: 0 or at least 0.001 (a subnormal stock factor
    # underflows in one order of the products and not in the other, and a ratio of two such
    # near-zero balances, npl_ratio, is then 0 on one side and 1 on the other)
    lever = st.one_of(st.just(0.0), st.floats(1e-3, 1))
    scenario = scenario.replace(stock_factor=data.draw(lever), role_weight={r: data.draw(lever) for r in ROLES})
    base = build_base(frames, scenario)
    model = live(base)
    for change, overrides in data.draw(lever_moves(frames)):
        s = scenario.replace(**change)
        try:
            want = evaluate(base, s, overrides)
        except CoefficientError as e:              # edits that break DOMAIN 5: refused alike
            with pytest.raises(CoefficientError) as got_error:
                model.evaluate(s, overrides)
            assert str(got_error.value).split(":")[1] == str(e).split(":")[1]    # the same customer
            continue
        got = model.evaluate(s, overrides)
        _same_frame(want.managers, got.managers, "managers")
        for key, value in want.totals.items():
            assert close(value, got.totals[key], abs(want.totals["contribution"]) + abs(want.totals["pay"])), key
        assert got.totals.keys() == want.totals.keys()
        assert got.whale == want.whale
        _same_frame(want.customers, got.customers, "customers")
        _same_frame(want.assignments, got.assignments, "assignments")
        _same_frame(want.kpi, got.kpi, "kpi")
