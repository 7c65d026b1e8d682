"""One small case per formula of DOMAIN.md sections 3 to 7, plus the scenario file (section 9).

Every expected number is worked out by hand and written as a literal with its derivation in a
comment; none is computed by the code under test or by a re-implementation of it.

Default scenario used unless said otherwise: D = 90, B = 360 so t = 0.25; tax_rate 0.0672;
unit_cost asset 300 / liability 20 / intermediate 10; cost_rate asset 0.004 / liability 0.002;
capital_ratio 0.105; cost_of_capital 0.10; pay_factor asset 0.06 / liability 0.05 /
intermediate 0.10 / risk 0.08.
"""

from __future__ import annotations


import functools

import numpy as np
import pytest

from calc.heavy import account_results, build_base, daily_average
import calc.heavy
import calc.light
import calc.pipeline
from calc.light import evaluate, grade_of, live, rank_desc
from calc.pipeline import run
from calc.scenario import KpiDef, Scenario, default_kpis
from calc.segments import whale_shares
from factories import make_frame, make_frames

approx = pytest.approx


def mgr(result, manager_id):
    """One manager's result row by id."""
    return result.managers.set_index("manager_id").loc[manager_id]


def cust(result, customer_id):
    """One customer's result row by id."""
    return result.customers.set_index("customer_id").loc[customer_id]


def one_customer(accounts, *, is_new=False, coefficient=None):
    """One manager M1 with coefficient (blank = derived) on one customer C1 holding ``accounts``."""
    return make_frames(
        managers=[{"manager_id": "M1"}],
        customers=[{"customer_id": "C1", "is_new": is_new}],
        accounts=[{"customer_id": "C1", **a} for a in accounts],
        assignments=[{"customer_id": "C1", "manager_id": "M1", "coefficient": coefficient}],
    )


# (Scenario(...) takes whole tables; Scenario().replace(...) merges a partial table into the defaults.)
# A scenario where an intermediate account's contribution is exactly its fee income:
# fee * (1 - 0) - 0 = fee; pay_raw = 0.10 * fee. Used to engineer pay exactly.
FEE_ONLY = dict(tax_rate=0.0, unit_cost={"intermediate": 0.0})


# --------------------------------------------------------------------------------------------
# DOMAIN 3: account results per line

def test_liability_account():
    frames = one_customer([{"account_id": "L1", "line": "liability", "avg_balance": 1_000_000,
                            "rate": 0.01, "ftp_rate": 0.03}])
    base, res = run(frames)
    acc = base.accounts.set_index("account_id").loc["L1"]
    # margin: 1,000,000 * (0.03 - 0.01) * 90/360 = 5,000
    assert acc["margin"] == approx(5_000.0)
    # balance cost: 1,000,000 * 0.002 * 0.25 = 500; unit cost 20
    assert acc["balance_cost"] == approx(500.0)
    assert acc["unit_cost"] == approx(20.0)
    # 5,000 - 20 - 500 = 4,480
    assert acc["contribution"] == approx(4_480.0)
    c = cust(res, "C1")
    assert c["liability"] == approx(4_480.0)
    assert c["asset"] == approx(0.0) and c["intermediate"] == approx(0.0) and c["risk"] == approx(0.0)
    assert c["total"] == approx(4_480.0)
    # pay = 0.05 * 4,480 = 224
    assert mgr(res, "M1")["pay"] == approx(224.0)


def test_asset_account_tax_capital_and_default_risk_weight():
    frames = one_customer([{"account_id": "A1", "line": "asset", "avg_balance": 2_000_000,
                            "rate": 0.05, "ftp_rate": 0.03}])  # risk_weight blank -> default 1.0
    base, res = run(frames)
    acc = base.accounts.set_index("account_id").loc["A1"]
    # margin: 2,000,000 * (0.05 - 0.03) * 0.25 = 10,000
    assert acc["margin"] == approx(10_000.0)
    # tax: 0.0672 * 2,000,000 * 0.05 * 0.25 = 0.0672 * 25,000 = 1,680
    assert acc["tax"] == approx(1_680.0)
    # balance cost: 2,000,000 * 0.004 * 0.25 = 2,000
    assert acc["balance_cost"] == approx(2_000.0)
    # capital charge: 2,000,000 * 1.0 * 0.105 * 0.10 * 0.25 = 5,250
    assert acc["capital_charge"] == approx(5_250.0)
    # 10,000 - 1,680 - 300 - 2,000 - 5,250 = 770
    assert acc["contribution"] == approx(770.0)
    assert cust(res, "C1")["asset"] == approx(770.0)
    # pay = 0.06 * 770 = 46.2
    assert mgr(res, "M1")["pay"] == approx(46.2)


def test_asset_account_given_risk_weight():
    frames = one_customer([{"account_id": "A1", "line": "asset", "avg_balance": 2_000_000,
                            "rate": 0.05, "ftp_rate": 0.03, "risk_weight": 0.5}])
    base, res = run(frames)
    # capital charge: 2,000,000 * 0.5 * 0.105 * 0.10 * 0.25 = 2,625
    assert base.accounts.loc[0, "capital_charge"] == approx(2_625.0)
    # 10,000 - 1,680 - 300 - 2,000 - 2,625 = 3,395
    assert cust(res, "C1")["asset"] == approx(3_395.0)


def test_risk_weight_default_parameter():
    s = Scenario(risk_weight_default=1.5)
    acc = make_frame("accounts", [{"account_id": "A1", "customer_id": "C1", "line": "asset",
                                   "avg_balance": 2_000_000, "rate": 0.05, "ftp_rate": 0.03}])
    out = account_results(acc, s)
    # capital charge: 2,000,000 * 1.5 * 0.105 * 0.10 * 0.25 = 7,875
    assert out.loc[0, "capital_charge"] == approx(7_875.0)


def test_risk_is_recovery_minus_provision_on_asset_accounts_only():
    frames = one_customer([
        {"account_id": "A1", "line": "asset", "recovery": 5_000, "provision": 12_000},
        # provision / recovery on a liability account are not read (DOMAIN 2)
        {"account_id": "L1", "line": "liability", "recovery": 999, "provision": 1},
    ])
    base, res = run(frames)
    c = cust(res, "C1")
    # risk = 5,000 - 12,000 = -7,000
    assert c["risk"] == approx(-7_000.0)
    # asset line: zero balance -> only the unit cost: -300; liability: -20
    assert c["asset"] == approx(-300.0)
    assert c["liability"] == approx(-20.0)
    # total = -300 - 20 + 0 - 7,000 = -7,320
    assert c["total"] == approx(-7_320.0)
    # pay_raw = 0.06 * -300 + 0.05 * -20 + 0.08 * -7,000 = -18 - 1 - 560 = -579
    assert mgr(res, "M1")["pay_raw"] == approx(-579.0)


def test_intermediate_account():
    frames = one_customer([{"account_id": "I1", "line": "intermediate", "fee_income": 10_000,
                            "avg_balance": 5_000_000, "rate": 0.05, "ftp_rate": 0.01}])
    base, res = run(frames)
    # 10,000 * (1 - 0.0672) - 10 = 9,328 - 10 = 9,318 (balance and rates are not read)
    assert cust(res, "C1")["intermediate"] == approx(9_318.0)
    # pay = 0.10 * 9,318 = 931.8
    assert mgr(res, "M1")["pay"] == approx(931.8)


def test_period_length_and_day_basis():
    s = Scenario(days=30, day_basis=365)
    frames = one_customer([{"account_id": "L1", "line": "liability", "avg_balance": 3_650_000,
                            "rate": 0.01, "ftp_rate": 0.03}])
    _, res = run(frames, s)
    # t = 30/365; margin 3,650,000 * 0.02 * 30/365 = 6,000; balance cost 3,650,000 * 0.002 * 30/365 = 600
    # 6,000 - 20 - 600 = 5,380
    assert cust(res, "C1")["liability"] == approx(5_380.0)


def test_customer_contribution_sums_accounts_and_missing_numbers_count_zero():
    frames = one_customer([
        {"account_id": "L1", "line": "liability", "avg_balance": 1_000_000, "rate": 0.01, "ftp_rate": 0.03},
        {"account_id": "L2", "line": "liability"},  # every number missing -> 0, only the unit cost
        {"account_id": "I1", "line": "intermediate", "fee_income": 10_000},
    ])
    _, res = run(frames)
    c = cust(res, "C1")
    # 4,480 + (0 - 20 - 0) = 4,460
    assert c["liability"] == approx(4_460.0)
    # 4,460 + 9,318 = 13,778
    assert c["total"] == approx(13_778.0)


# --------------------------------------------------------------------------------------------
# DOMAIN 4: balances

@pytest.fixture(autouse=True, params=["evaluate", "live", "spark"])
def light_stage(request, monkeypatch):
    """Every hand-computed case runs three times: on the reference light stage (command line,
    publications), on the app's incremental what-if (:func:`calc.light.live`), and with the heavy
    stage on Spark (:mod:`calc.spark`, local mode; skipped locally without Java or pyspark)."""
    if request.param == "spark":
        from spark_support import require_spark

        require_spark()
        on_spark = functools.partial(calc.heavy.build_base, engine="spark")
        monkeypatch.setitem(globals(), "build_base", on_spark)
        monkeypatch.setattr(calc.pipeline, "build_base", on_spark)
    if request.param == "live":
        def incremental(base, scenario, overrides=None):
            return live(base).evaluate(scenario, overrides)

        monkeypatch.setitem(globals(), "evaluate", incremental)
        monkeypatch.setattr(calc.pipeline, "evaluate", incremental)
    return request.param


def _daily_rows():
    return [
        # A: first row 2024-01-03 -> Jan 1-2 count 0; 100 for Jan 3-5; 200 for Jan 6-10
        {"account_id": "A", "date": "2024-01-03", "balance": 100},
        {"account_id": "A", "date": "2024-01-06", "balance": 200},
        {"account_id": "A", "date": "2024-01-10", "balance": 200},
        # B: a row before the period carries forward into it: 50 for Jan 1-7, 80 for Jan 8-10
        {"account_id": "B", "date": "2023-12-25", "balance": 50},
        {"account_id": "B", "date": "2024-01-08", "balance": 80},
        # C: one row on Jan 2 carried forward to the latest date of the sheet (Jan 10)
        {"account_id": "C", "date": "2024-01-02", "balance": 10},
    ]


def test_daily_average_from_daily_balances():
    daily = make_frame("daily_balances", _daily_rows())
    avg = daily_average(daily, 10)  # period: the 10 days 2024-01-01 .. 2024-01-10
    # A: (2*0 + 3*100 + 5*200) / 10 = 1,300 / 10 = 130
    assert avg["A"] == approx(130.0)
    # B: (7*50 + 3*80) / 10 = 590 / 10 = 59
    assert avg["B"] == approx(59.0)
    # C: (1*0 + 9*10) / 10 = 9
    assert avg["C"] == approx(9.0)


def test_daily_average_replaces_avg_balance_in_build_base():
    s = Scenario(days=10)
    frames = make_frames(
        managers=[{"manager_id": "M1"}],
        customers=[{"customer_id": "C1"}],
        accounts=[{"account_id": "A", "customer_id": "C1", "line": "liability", "avg_balance": 999_999},
                  {"account_id": "B", "customer_id": "C1", "line": "liability"},
                  {"account_id": "C", "customer_id": "C1", "line": "asset"}],
        assignments=[{"customer_id": "C1", "manager_id": "M1", "coefficient": 1.0}],
        daily=_daily_rows(),
    )
    base, res = run(frames, s)
    c = base.customers.set_index("customer_id").loc["C1"]
    # liability average 130 + 59 = 189; asset average 9
    assert c["liability_avg"] == approx(189.0)
    assert c["asset_avg"] == approx(9.0)
    # deposit_avg = 1.0 * 189
    assert mgr(res, "M1")["deposit_avg"] == approx(189.0)


def test_manager_balances_and_increase():
    frames = make_frames(
        managers=[{"manager_id": "M1"}, {"manager_id": "M2"}],
        customers=[{"customer_id": "C1", "is_new": True}, {"customer_id": "C2"}],
        accounts=[
            {"account_id": "L1", "customer_id": "C1", "line": "liability", "avg_balance": 1_000_000,
             "base_avg_balance": 600_000},
            {"account_id": "A1", "customer_id": "C1", "line": "asset", "avg_balance": 500_000,
             "base_avg_balance": 700_000},
            {"account_id": "L2", "customer_id": "C2", "line": "liability", "avg_balance": 200_000},
        ],
        assignments=[
            {"customer_id": "C1", "manager_id": "M1", "coefficient": 0.6},
            {"customer_id": "C1", "manager_id": "M2", "coefficient": 0.4},
            {"customer_id": "C2", "manager_id": "M1", "coefficient": 0.5},
        ],
    )
    _, res = run(frames)
    m1, m2 = mgr(res, "M1"), mgr(res, "M2")
    # deposit_avg M1 = 0.6 * 1,000,000 + 0.5 * 200,000 = 700,000; M2 = 0.4 * 1,000,000 = 400,000
    assert m1["deposit_avg"] == approx(700_000.0)
    assert m2["deposit_avg"] == approx(400_000.0)
    # deposit_increase M1 = 0.6 * (1,000,000 - 600,000) + 0.5 * (200,000 - 0) = 240,000 + 100,000 = 340,000
    assert m1["deposit_increase"] == approx(340_000.0)
    # loan_avg M1 = 0.6 * 500,000 = 300,000; M2 = 0.4 * 500,000 = 200,000
    assert m1["loan_avg"] == approx(300_000.0)
    assert m2["loan_avg"] == approx(200_000.0)
    # new_customers: sum of c over new customers; M1 = 0.6 (C2 is not new), M2 = 0.4
    assert m1["new_customers"] == approx(0.6)
    assert m2["new_customers"] == approx(0.4)


# --------------------------------------------------------------------------------------------
# DOMAIN 5: relevance coefficients

def _coef_frames(assignments, *, is_new=True):
    managers = sorted({a["manager_id"] for a in assignments})
    return make_frames(
        managers=[{"manager_id": m} for m in managers],
        customers=[{"customer_id": "C1", "is_new": is_new}],
        accounts=[{"account_id": "L1", "customer_id": "C1", "line": "liability", "avg_balance": 1_000_000,
                   "rate": 0.01, "ftp_rate": 0.03}],  # contribution 4,480 (see test_liability_account)
        assignments=[{"customer_id": "C1", **a} for a in assignments],
    )


def _used(result):
    a = result.assignments
    return dict(zip(a["manager_id"], a["coefficient_used"]))


def test_coefficient_rule_holds_for_app_edits():
    """Edits in the app (overrides) go through the same DOMAIN 5 rule as the upload."""
    from calc.rules import CoefficientError

    frames = _coef_frames([{"manager_id": "M1", "role": "primary", "coefficient": 0.6},
                           {"manager_id": "M2", "role": "secondary"}])
    base = build_base(frames, Scenario())
    # 0.6 given + 1.1 set for M2 = 1.7 > 1 -- and 1.1 is itself above 1
    with pytest.raises(CoefficientError, match=r"customer C1: given coefficients sum to 1\.7, more than 1") as e:
        evaluate(base, Scenario(), overrides={("C1", "M2"): 1.1})
    assert set(e.value.problems["rule"]) == {"sum", "range"}
    with pytest.raises(CoefficientError, match=r"customer C1, manager M2: coefficient -0\.2 is outside \(0, 1\]"):
        evaluate(base, Scenario(), overrides={("C1", "M2"): -0.2})
    # 0.6 + 0.4 = 1 holds: M2 gets 0.4 (given), nothing is left unattributed
    res = evaluate(base, Scenario(), overrides={("C1", "M2"): 0.4})
    assert _used(res) == {"M1": approx(0.6), "M2": approx(0.4)}


def test_coefficient_rule_holds_for_frames_that_skipped_the_validator():
    """A caller handing frames straight to the calculation cannot get pay on a broken set."""
    from calc.rules import CoefficientError

    frames = _coef_frames([{"manager_id": "M1", "role": "primary", "coefficient": 0.7},
                           {"manager_id": "M2", "role": "secondary", "coefficient": 0.5}])
    with pytest.raises(CoefficientError, match=r"assignments: customer C1: given coefficients sum to 1\.2"):
        build_base(frames, Scenario())


def test_primary_alone_gets_everything():
    _, res = run(_coef_frames([{"manager_id": "M1", "role": "primary"}]))
    assert _used(res) == {"M1": approx(1.0)}
    assert cust(res, "C1")["unattributed"] == approx(0.0)


def test_secondary_alone_gets_everything():
    # the blank ones share 1 - 0 in proportion to their weights: 0.3 / 0.3 = 1
    _, res = run(_coef_frames([{"manager_id": "M1", "role": "secondary"}]))
    assert _used(res) == {"M1": approx(1.0)}


def test_primary_and_secondary_share_07_03():
    _, res = run(_coef_frames([{"manager_id": "M1", "role": "primary"},
                               {"manager_id": "M2", "role": "secondary"}]))
    assert _used(res) == {"M1": approx(0.7), "M2": approx(0.3)}
    # M1 liability = 0.7 * 4,480 = 3,136; M2 = 0.3 * 4,480 = 1,344
    assert mgr(res, "M1")["liability"] == approx(3_136.0)
    assert mgr(res, "M2")["liability"] == approx(1_344.0)


def test_three_roles_share_in_proportion():
    _, res = run(_coef_frames([{"manager_id": "M1", "role": "primary"},
                               {"manager_id": "M2", "role": "secondary"},
                               {"manager_id": "M3", "role": "support"}]))
    # weights 0.7 + 0.3 + 0.1 = 1.1 -> 0.7/1.1, 0.3/1.1, 0.1/1.1
    assert _used(res) == {"M1": approx(0.7 / 1.1), "M2": approx(0.3 / 1.1), "M3": approx(0.1 / 1.1)}
    assert cust(res, "C1")["coef_sum"] == approx(1.0)


def test_role_weight_sliders_rederive_blank_coefficients():
    s = Scenario().replace(role_weight={"primary": 0.6, "secondary": 0.2})
    _, res = run(_coef_frames([{"manager_id": "M1", "role": "primary"},
                               {"manager_id": "M2", "role": "secondary"}]), s)
    # 0.6 / (0.6 + 0.2) = 0.75; 0.2 / 0.8 = 0.25
    assert _used(res) == {"M1": approx(0.75), "M2": approx(0.25)}


def test_given_and_blank_coefficients_mixed_within_one_customer():
    _, res = run(_coef_frames([{"manager_id": "M1", "role": "support", "coefficient": 0.4},
                               {"manager_id": "M2", "role": "primary"},
                               {"manager_id": "M3", "role": "secondary"}]))
    # given 0.4 kept; blanks share 1 - 0.4 = 0.6: M2 0.6 * 0.7/1.0 = 0.42, M3 0.6 * 0.3/1.0 = 0.18
    assert _used(res) == {"M1": approx(0.4), "M2": approx(0.42), "M3": approx(0.18)}
    src = dict(zip(res.assignments["manager_id"], res.assignments["coefficient_source"]))
    assert src == {"M1": "given", "M2": "derived", "M3": "derived"}


def test_given_coefficients_leave_unattributed():
    _, res = run(_coef_frames([{"manager_id": "M1", "role": "primary", "coefficient": 0.6}]))
    c = cust(res, "C1")
    # attributed 0.6 * 4,480 = 2,688; unattributed (1 - 0.6) * 4,480 = 1,792
    assert c["attributed"] == approx(2_688.0)
    assert c["unattributed"] == approx(1_792.0)
    assert mgr(res, "M1")["total"] == approx(2_688.0)
    assert res.totals["unattributed"] == approx(1_792.0)
    assert res.totals["unattributed_liability"] == approx(1_792.0)
    assert res.totals["contribution"] == approx(4_480.0)


def test_stock_factor_applies_to_derived_coefficients_of_non_new_customers_only():
    s = Scenario(stock_factor=0.8)
    frames = make_frames(
        managers=[{"manager_id": "M1"}, {"manager_id": "M2"}],
        customers=[{"customer_id": "OLD", "is_new": False}, {"customer_id": "NEW", "is_new": True},
                   {"customer_id": "OLDG", "is_new": False}],
        accounts=[{"account_id": "L1", "customer_id": "OLD", "line": "liability", "avg_balance": 1_000_000,
                   "rate": 0.01, "ftp_rate": 0.03}],
        assignments=[
            {"customer_id": "OLD", "manager_id": "M1", "role": "primary"},
            {"customer_id": "OLD", "manager_id": "M2", "role": "secondary"},
            {"customer_id": "NEW", "manager_id": "M1", "role": "primary"},
            {"customer_id": "OLDG", "manager_id": "M1", "role": "primary", "coefficient": 0.5},
            {"customer_id": "OLDG", "manager_id": "M2", "role": "primary"},
        ],
    )
    _, res = run(frames, s)
    used = {(a, b): c for a, b, c in zip(res.assignments["customer_id"], res.assignments["manager_id"],
                                          res.assignments["coefficient_used"])}
    # non-new: 0.7 * 0.8 = 0.56, 0.3 * 0.8 = 0.24
    assert used[("OLD", "M1")] == approx(0.56)
    assert used[("OLD", "M2")] == approx(0.24)
    # new customer: not scaled
    assert used[("NEW", "M1")] == approx(1.0)
    # given coefficient not scaled; the blank one gets (1 - 0.5) * 0.8 = 0.4
    assert used[("OLDG", "M1")] == approx(0.5)
    assert used[("OLDG", "M2")] == approx(0.4)
    # OLD unattributed = (1 - 0.8) * 4,480 = 896
    assert cust(res, "OLD")["unattributed"] == approx(896.0)


def test_override_table_sets_a_given_coefficient():
    frames = _coef_frames([{"manager_id": "M1", "role": "primary"},
                           {"manager_id": "M2", "role": "secondary"}])
    base = build_base(frames, Scenario())
    res = evaluate(base, Scenario(), overrides={("C1", "M2"): 0.5})
    # M2 given 0.5; M1 the only blank gets 1 - 0.5 = 0.5
    assert _used(res) == {"M1": approx(0.5), "M2": approx(0.5)}


# --------------------------------------------------------------------------------------------
# DOMAIN 1: pay, floor, points method

def _fee_frames(fees, branches=None):
    """Managers M1..Mn each alone (given c = 1) on customer Cn holding one fee account."""
    n = len(fees)
    branches = branches or ["B1"] * n
    return make_frames(
        managers=[{"manager_id": f"M{i + 1}", "branch": branches[i]} for i in range(n)],
        customers=[{"customer_id": f"C{i + 1}"} for i in range(n)],
        accounts=[{"account_id": f"I{i + 1}", "customer_id": f"C{i + 1}", "line": "intermediate",
                   "fee_income": f} for i, f in enumerate(fees)],
        assignments=[{"customer_id": f"C{i + 1}", "manager_id": f"M{i + 1}", "coefficient": 1.0}
                     for i in range(n)],
    )


def test_pay_link_factors_sum_over_lines():
    frames = one_customer([
        {"account_id": "L1", "line": "liability", "avg_balance": 1_000_000, "rate": 0.01, "ftp_rate": 0.03},
        {"account_id": "A1", "line": "asset", "avg_balance": 2_000_000, "rate": 0.05, "ftp_rate": 0.03},
        {"account_id": "I1", "line": "intermediate", "fee_income": 10_000},
        {"account_id": "A2", "line": "asset", "recovery": 1_000},
    ], coefficient=0.5)
    _, res = run(frames)
    m = mgr(res, "M1")
    # asset = 0.5 * (770 - 300) = 235; liability = 0.5 * 4,480 = 2,240;
    # intermediate = 0.5 * 9,318 = 4,659; risk = 0.5 * 1,000 = 500
    assert m["asset"] == approx(235.0)
    assert m["liability"] == approx(2_240.0)
    assert m["intermediate"] == approx(4_659.0)
    assert m["risk"] == approx(500.0)
    # pay = 0.06*235 + 0.05*2,240 + 0.10*4,659 + 0.08*500 = 14.1 + 112 + 465.9 + 40 = 632
    assert m["pay"] == approx(632.0)


def test_floor_at_zero_on_and_off():
    s_on = Scenario().replace(**FEE_ONLY)
    s_off = Scenario().replace(**FEE_ONLY, floor_at_zero=False)
    frames = _fee_frames([1_000, -500])
    _, on = run(frames, s_on)
    _, off = run(frames, s_off)
    # pay_raw = 0.10 * 1,000 = 100 and 0.10 * -500 = -50
    assert mgr(on, "M1")["pay"] == approx(100.0)
    assert mgr(on, "M2")["pay_raw"] == approx(-50.0)
    assert mgr(on, "M2")["pay"] == 0.0
    assert mgr(off, "M2")["pay"] == approx(-50.0)
    assert off.totals["pay"] == approx(50.0)  # 100 - 50
    assert on.totals["pay"] == approx(100.0)


def test_points_method_shares_pool_over_positive_points():
    s = Scenario().replace(**FEE_ONLY, pool=1_000.0)
    _, res = run(_fee_frames([3_000, 1_000, -500]), s)
    # points 300, 100, -50; positive sum 400: 1,000 * 300/400 = 750; 1,000 * 100/400 = 250; 0
    assert mgr(res, "M1")["points_pay"] == approx(750.0)
    assert mgr(res, "M2")["points_pay"] == approx(250.0)
    assert mgr(res, "M3")["points_pay"] == 0.0
    assert res.totals["points_pay"] == approx(1_000.0)
    # same whether the factor floor is on or off
    _, off = run(_fee_frames([3_000, 1_000, -500]), s.replace(floor_at_zero=False))
    assert mgr(off, "M1")["points_pay"] == approx(750.0)


# --------------------------------------------------------------------------------------------
# DOMAIN 6: score, grade, rank

def _kpi_frames(kpis=None, targets=None, n=3):
    """Managers M1..Mn, one empty customer; uploaded KPI values and targets as given."""
    return make_frames(
        managers=[{"manager_id": f"M{i + 1}"} for i in range(n)],
        customers=[{"customer_id": "C1"}],
        assignments=[{"customer_id": "C1", "manager_id": "M1"}],
        kpis=kpis, targets=targets,
    )


def _points(result, kpi):
    k = result.kpi[result.kpi["kpi"] == kpi]
    return dict(zip(k["manager_id"], k["points"]))


def test_ratio_kpi_with_cap():
    s = Scenario(kpi=(KpiDef("training_hours", "learning", 10, "ratio", 1.2),))
    frames = _kpi_frames(
        kpis=[{"manager_id": "M1", "kpi": "training_hours", "value": 50},
              {"manager_id": "M2", "kpi": "training_hours", "value": 150},
              {"manager_id": "M3", "kpi": "training_hours", "value": -10}],
        targets=[{"manager_id": m, "kpi": "training_hours", "target": 100} for m in ("M1", "M2", "M3")])
    _, res = run(frames, s)
    # 10 * 50/100 = 5; 10 * min(150/100, 1.2) = 12; 10 * max(-10/100, 0) = 0
    assert _points(res, "training_hours") == {"M1": approx(5.0), "M2": approx(12.0), "M3": approx(0.0)}
    assert mgr(res, "M2")["score"] == approx(12.0)
    assert mgr(res, "M2")["score_learning"] == approx(12.0)


def test_inverse_kpi_with_cap_and_nonpositive_actual():
    s = Scenario(kpi=(KpiDef("complaints", "customer", 5, "inverse", 1.2),))
    frames = _kpi_frames(
        kpis=[{"manager_id": "M1", "kpi": "complaints", "value": 4},
              {"manager_id": "M2", "kpi": "complaints", "value": 1},
              {"manager_id": "M3", "kpi": "complaints", "value": 0}],
        targets=[{"manager_id": m, "kpi": "complaints", "target": 2} for m in ("M1", "M2", "M3")])
    _, res = run(frames, s)
    # 5 * 2/4 = 2.5; 5 * min(2/1, 1.2) = 6; actual 0 <= 0 -> cap: 5 * 1.2 = 6
    assert _points(res, "complaints") == {"M1": approx(2.5), "M2": approx(6.0), "M3": approx(6.0)}


def test_inverse_kpi_negative_actual_scores_cap():
    s = Scenario(kpi=(KpiDef("complaints", "customer", 5, "inverse", 1.5),))
    frames = _kpi_frames(kpis=[{"manager_id": "M1", "kpi": "complaints", "value": -3}],
                         targets=[{"manager_id": "M1", "kpi": "complaints", "target": 2}], n=1)
    _, res = run(frames, s)
    # actual -3 <= 0 -> 5 * 1.5 = 7.5
    assert _points(res, "complaints") == {"M1": approx(7.5)}


def test_deduction_kpi_and_missing_value_counts_zero():
    s = Scenario(kpi=(KpiDef("compliance_points", "internal", 5, "deduction"),))
    frames = _kpi_frames(kpis=[{"manager_id": "M1", "kpi": "compliance_points", "value": 2},
                               {"manager_id": "M3", "kpi": "compliance_points", "value": 0.5}])
    _, res = run(frames, s)
    # -5 * 2 = -10; M2 has no value -> -5 * 0 = 0; -5 * 0.5 = -2.5
    assert _points(res, "compliance_points") == {"M1": approx(-10.0), "M2": approx(0.0), "M3": approx(-2.5)}
    assert mgr(res, "M1")["score"] == approx(-10.0)
    assert mgr(res, "M1")["score_internal"] == approx(-10.0)


def test_target_falls_back_to_mean_over_all_managers():
    s = Scenario(kpi=(KpiDef("training_hours", "learning", 10, "ratio", 1.2),))
    frames = _kpi_frames(kpis=[{"manager_id": "M1", "kpi": "training_hours", "value": 10},
                               {"manager_id": "M2", "kpi": "training_hours", "value": 20},
                               {"manager_id": "M3", "kpi": "training_hours", "value": 30}])
    _, res = run(frames, s)
    # mean = (10 + 20 + 30) / 3 = 20: 10 * 10/20 = 5; 10 * 20/20 = 10; 10 * min(30/20, 1.2) = 12
    assert _points(res, "training_hours") == {"M1": approx(5.0), "M2": approx(10.0), "M3": approx(12.0)}
    k = res.kpi.set_index("manager_id")
    assert k.loc["M1", "target"] == approx(20.0)
    assert set(k["target_source"]) == {"mean"}


def test_target_sheet_for_some_managers_mean_for_the_others():
    s = Scenario(kpi=(KpiDef("training_hours", "learning", 10, "ratio", 1.2),))
    frames = _kpi_frames(kpis=[{"manager_id": "M1", "kpi": "training_hours", "value": 10},
                               {"manager_id": "M2", "kpi": "training_hours", "value": 20},
                               {"manager_id": "M3", "kpi": "training_hours", "value": 30}],
                         targets=[{"manager_id": "M1", "kpi": "training_hours", "target": 8}])
    _, res = run(frames, s)
    # M1: target 8 -> 10 * min(10/8, 1.2) = 12; M2: mean 20 -> 10; M3: mean 20 -> 12
    assert _points(res, "training_hours") == {"M1": approx(12.0), "M2": approx(10.0), "M3": approx(12.0)}
    src = dict(zip(res.kpi["manager_id"], res.kpi["target_source"]))
    assert src == {"M1": "targets", "M2": "mean", "M3": "mean"}


def test_computed_kpi_target_mean():
    # deposit_avg computed; mean over managers: (1,000,000 + 0) / 2 = 500,000
    s = Scenario(kpi=(KpiDef("deposit_avg", "financial", 30, "ratio", 1.2),))
    frames = make_frames(
        managers=[{"manager_id": "M1"}, {"manager_id": "M2"}],
        customers=[{"customer_id": "C1"}],
        accounts=[{"account_id": "L1", "customer_id": "C1", "line": "liability", "avg_balance": 1_000_000}],
        assignments=[{"customer_id": "C1", "manager_id": "M1"}],
    )
    _, res = run(frames, s)
    # M1: 30 * min(1,000,000 / 500,000, 1.2) = 36; M2: 30 * 0 = 0
    assert _points(res, "deposit_avg") == {"M1": approx(36.0), "M2": approx(0.0)}


@pytest.mark.parametrize("target, actuals, expected", [
    # target 0: actual >= 0 scores the weight (10), below 0 scores 0
    (0, {"M1": 0, "M2": 5, "M3": -1}, {"M1": 10.0, "M2": 10.0, "M3": 0.0}),
    # target -10: -5 >= -10 -> 10; -20 < -10 -> 0; -10 >= -10 -> 10
    (-10, {"M1": -5, "M2": -20, "M3": -10}, {"M1": 10.0, "M2": 0.0, "M3": 10.0}),
])
def test_ratio_target_not_positive(target, actuals, expected):
    s = Scenario(kpi=(KpiDef("x", "learning", 10, "ratio", 1.2),))
    frames = _kpi_frames(kpis=[{"manager_id": m, "kpi": "x", "value": v} for m, v in actuals.items()],
                         targets=[{"manager_id": m, "kpi": "x", "target": target} for m in actuals])
    _, res = run(frames, s)
    assert _points(res, "x") == {m: approx(v) for m, v in expected.items()}


@pytest.mark.parametrize("target, actuals, expected", [
    # target 0: actual <= 0 scores the weight (10), above 0 scores 0
    (0, {"M1": 0, "M2": 3, "M3": -1}, {"M1": 10.0, "M2": 0.0, "M3": 10.0}),
    # target -2: -3 <= -2 -> 10; -2 <= -2 -> 10; 1 > -2 -> 0
    (-2, {"M1": -3, "M2": -2, "M3": 1}, {"M1": 10.0, "M2": 10.0, "M3": 0.0}),
])
def test_inverse_target_not_positive(target, actuals, expected):
    s = Scenario(kpi=(KpiDef("x", "internal", 10, "inverse", 1.2),))
    frames = _kpi_frames(kpis=[{"manager_id": m, "kpi": "x", "value": v} for m, v in actuals.items()],
                         targets=[{"manager_id": m, "kpi": "x", "target": target} for m in actuals])
    _, res = run(frames, s)
    assert _points(res, "x") == {m: approx(v) for m, v in expected.items()}


def test_cross_sell_is_coefficient_weighted_products():
    s = Scenario(kpi=(KpiDef("cross_sell", "customer", 5, "ratio"),))
    frames = make_frames(
        managers=[{"manager_id": "M1"}],
        customers=[{"customer_id": "C1"}, {"customer_id": "C2"}],
        accounts=[
            {"account_id": "a1", "customer_id": "C1", "line": "liability", "product": "current"},
            {"account_id": "a2", "customer_id": "C1", "line": "asset", "product": "mortgage"},
            {"account_id": "b1", "customer_id": "C2", "line": "liability", "product": "P1"},
            {"account_id": "b2", "customer_id": "C2", "line": "liability", "product": "P2"},
            {"account_id": "b3", "customer_id": "C2", "line": "asset", "product": "P3"},
            {"account_id": "b4", "customer_id": "C2", "line": "intermediate"},  # blank -> "intermediate"
        ],
        assignments=[{"customer_id": "C1", "manager_id": "M1", "coefficient": 1.0},
                     {"customer_id": "C2", "manager_id": "M1", "coefficient": 0.5}],
    )
    _, res = run(frames, s)
    # (1.0 * 2 + 0.5 * 4) / (1.0 + 0.5) = 4 / 1.5 = 2.6667
    assert mgr(res, "M1")["cross_sell"] == approx(4 / 1.5)


def test_default_scheme_is_the_100_point_plan():
    k = {x.code: x for x in default_kpis()}
    assert {c: (x.perspective, x.weight, x.kind) for c, x in k.items()} == {
        "deposit_avg": ("financial", 30, "ratio"),
        "deposit_increase": ("financial", 20, "ratio"),
        "loan_avg": ("financial", 15, "ratio"),
        "asset_contribution": ("financial", 15, "ratio"),
        "intermediate_contribution": ("financial", 10, "ratio"),
        "new_customers": ("customer", 5, "ratio"),
        "cross_sell": ("customer", 5, "ratio"),
        "compliance_points": ("internal", 5, "deduction"),
    }
    assert all(x.cap == 1.2 for x in k.values())
    # liability 30 + 20 = 50, asset 15 + 15 = 30, supplementary 10 + 5 + 5 = 20 -> 100
    assert sum(x.weight for x in k.values() if x.kind != "deduction") == 100


def test_grade_bounds_exactly():
    grades = {"senior": 85, "advanced": 70, "manager": 50, "assistant": 20}
    scores = [100, 85, 84.999, 70, 69.999, 50, 49.999, 20, 19.999, -5]
    assert list(grade_of(np.array(scores), grades)) == [
        "senior", "senior", "advanced", "advanced", "manager", "manager", "assistant", "assistant",
        "unrated", "unrated"]


def test_grade_from_scores_in_evaluate():
    # one ratio KPI of weight 100 and cap 1.0; target 100 each; score = 100 * actual / 100 = actual
    s = Scenario(kpi=(KpiDef("x", "learning", 100, "ratio", 1.0),))
    values = {"M1": 85, "M2": 70, "M3": 50, "M4": 20, "M5": 19}
    frames = _kpi_frames(kpis=[{"manager_id": m, "kpi": "x", "value": v} for m, v in values.items()],
                         targets=[{"manager_id": m, "kpi": "x", "target": 100} for m in values], n=5)
    _, res = run(frames, s)
    got = dict(zip(res.managers["manager_id"], res.managers["grade"]))
    assert got == {"M1": "senior", "M2": "advanced", "M3": "manager", "M4": "assistant", "M5": "unrated"}


def test_rank_ties_share_the_lower_number_and_branch_rank():
    s = Scenario().replace(**FEE_ONLY)
    # pay = 0.10 * fee: 300, 200, 200, 100
    frames = _fee_frames([3_000, 2_000, 2_000, 1_000], branches=["B1", "B1", "B2", "B1"])
    _, res = run(frames, s)
    rank = dict(zip(res.managers["manager_id"], res.managers["rank"]))
    branch_rank = dict(zip(res.managers["manager_id"], res.managers["branch_rank"]))
    assert rank == {"M1": 1, "M2": 2, "M3": 2, "M4": 4}
    # B1: 300 -> 1, 200 -> 2, 100 -> 3; B2: 200 -> 1
    assert branch_rank == {"M1": 1, "M2": 2, "M3": 1, "M4": 3}


def test_rank_desc_ties_within_branches():
    ranks = rank_desc([5, 7, 7, 1, 7, 5], groups=["a", "a", "a", "b", "b", "b"])
    # a: 7, 7 -> 1, 1; 5 -> 3.  b: 7 -> 1, 5 -> 2, 1 -> 3
    assert list(ranks) == [3, 1, 1, 3, 1, 2]
    assert list(rank_desc([10, 20, 20, 30])) == [4, 2, 2, 1]


def test_rank_by_floored_pay_ties_at_zero():
    s = Scenario().replace(**FEE_ONLY)
    _, res = run(_fee_frames([1_000, -500, -2_000]), s)
    # pay 100, 0, 0 (floored) -> 1, 2, 2
    assert dict(zip(res.managers["manager_id"], res.managers["rank"])) == {"M1": 1, "M2": 2, "M3": 2}


# --------------------------------------------------------------------------------------------
# DOMAIN 7: segmentation

def test_value_tiers_at_exact_thresholds():
    vols = {"W": 30_000_000, "B": 29_999_999.99, "B2": 10_000_000, "M": 9_999_999,
            "M2": 1_000_000, "S": 999_999.99, "Z": 0}
    accounts = [{"account_id": f"L{c}", "customer_id": c, "line": "liability", "avg_balance": v}
                for c, v in vols.items()]
    accounts += [
        # volume = asset + liability averages: 20,000,000 + 10,000,000 = 30,000,000 -> world class
        {"account_id": "AX", "customer_id": "X", "line": "asset", "avg_balance": 20_000_000},
        {"account_id": "LX", "customer_id": "X", "line": "liability", "avg_balance": 10_000_000},
        # an intermediate account's balance is not business volume: 500,000 -> small
        {"account_id": "LY", "customer_id": "Y", "line": "liability", "avg_balance": 500_000},
        {"account_id": "IY", "customer_id": "Y", "line": "intermediate", "avg_balance": 600_000},
    ]
    ids = list(vols) + ["X", "Y"]
    frames = make_frames(managers=[{"manager_id": "M1"}], customers=[{"customer_id": c} for c in ids],
                         accounts=accounts, assignments=[{"customer_id": "W", "manager_id": "M1"}])
    _, res = run(frames)
    tiers = dict(zip(res.customers["customer_id"], res.customers["tier"]))
    assert tiers == {"W": "world_class", "B": "blue_chip", "B2": "blue_chip", "M": "mid_size",
                     "M2": "mid_size", "S": "small", "Z": "small", "X": "world_class", "Y": "small"}


def test_value_tier_thresholds_editable():
    s = Scenario(tiers={"world_class": 300, "blue_chip": 200, "mid_size": 100})
    frames = make_frames(
        managers=[{"manager_id": "M1"}],
        customers=[{"customer_id": c} for c in ("a", "b", "c", "d")],
        accounts=[{"account_id": c, "customer_id": c, "line": "liability", "avg_balance": v}
                  for c, v in (("a", 300), ("b", 250), ("c", 100), ("d", 99))],
        assignments=[{"customer_id": "a", "manager_id": "M1"}])
    _, res = run(frames, s)
    assert list(res.customers["tier"]) == ["world_class", "blue_chip", "mid_size", "small"]


def test_relationship_levels():
    accounts = [
        # P1: no accounts -> 0 products -> level 1
        # P2: two blank-product liability accounts count as one product "liability" -> level 2
        {"account_id": "b1", "customer_id": "P2", "line": "liability"},
        {"account_id": "b2", "customer_id": "P2", "line": "liability", "product": "  "},
        # P3: product "X" twice + a blank asset product (counts as "asset") -> 2 -> level 3
        {"account_id": "c1", "customer_id": "P3", "line": "liability", "product": "X"},
        {"account_id": "c2", "customer_id": "P3", "line": "liability", "product": "X"},
        {"account_id": "c3", "customer_id": "P3", "line": "asset"},
        # P4: three distinct -> level 4
        {"account_id": "d1", "customer_id": "P4", "line": "liability", "product": "X"},
        {"account_id": "d2", "customer_id": "P4", "line": "asset", "product": "Y"},
        {"account_id": "d3", "customer_id": "P4", "line": "intermediate", "product": "Z"},
    ]
    # P5: six distinct products -> 1 + min(4, 6) = 5
    accounts += [{"account_id": f"e{i}", "customer_id": "P5", "line": "liability", "product": f"Q{i}"}
                 for i in range(6)]
    # P6: exactly four -> 1 + 4 = 5
    accounts += [{"account_id": f"f{i}", "customer_id": "P6", "line": "liability", "product": f"Q{i}"}
                 for i in range(4)]
    ids = ["P1", "P2", "P3", "P4", "P5", "P6"]
    frames = make_frames(managers=[{"manager_id": "M1"}], customers=[{"customer_id": c} for c in ids],
                         accounts=accounts, assignments=[{"customer_id": "P1", "manager_id": "M1"}])
    _, res = run(frames)
    levels = dict(zip(res.customers["customer_id"], res.customers["relationship_level"]))
    assert levels == {"P1": 1, "P2": 2, "P3": 3, "P4": 4, "P5": 5, "P6": 5}
    products = dict(zip(res.customers["customer_id"], res.customers["products"]))
    assert products == {"P1": 0, "P2": 1, "P3": 2, "P4": 3, "P5": 6, "P6": 4}


def test_whale_shares():
    totals = [100, 50, 30, 20, 10, 5, 0, -5, -10, -20]  # sum = 180
    w = whale_shares(totals)
    # top 20% = top 2 = 100 + 50 = 150 -> 150 / 180 = 0.8333
    assert w["top20_share"] == approx(150 / 180)
    # bottom 30% = lowest 3 = -5 - 10 - 20 = -35 -> -35 / 180 = -0.1944
    assert w["bottom30_share"] == approx(-35 / 180)


def test_whale_shares_in_evaluate():
    s = Scenario().replace(**FEE_ONLY)
    fees = [100, 50, 30, 20, 10, 5, 0, -5, -10, -20]  # contribution = fee, shuffled order below
    order = [3, 7, 0, 9, 5, 1, 8, 2, 6, 4]
    _, res = run(_fee_frames([fees[i] for i in order]), s)
    assert res.whale["top20_share"] == approx(150 / 180)
    assert res.whale["bottom30_share"] == approx(-35 / 180)


def test_lifetime_value():
    frames = one_customer([{"account_id": "L1", "line": "liability", "avg_balance": 1_000_000,
                            "rate": 0.01, "ftp_rate": 0.03}])
    _, res = run(frames)
    c = cust(res, "C1")
    # 4,480 * 360/90 * 2 = 35,840; net of acquisition cost 2,000 = 33,840
    assert c["ltv"] == approx(35_840.0)
    assert c["ltv_net"] == approx(33_840.0)
    _, res3 = run(frames, Scenario(loyalty_years=3, acquisition_cost=5_000))
    # 4,480 * 4 * 3 = 53,760; - 5,000 = 48,760
    assert cust(res3, "C1")["ltv"] == approx(53_760.0)
    assert cust(res3, "C1")["ltv_net"] == approx(48_760.0)


def test_unattributed_remainder_per_customer_and_line():
    frames = make_frames(
        managers=[{"manager_id": "M1"}, {"manager_id": "M2"}],
        customers=[{"customer_id": "C1"}, {"customer_id": "C2"}, {"customer_id": "C3"}],
        accounts=[
            {"account_id": "L1", "customer_id": "C1", "line": "liability", "avg_balance": 1_000_000,
             "rate": 0.01, "ftp_rate": 0.03},
            {"account_id": "I1", "customer_id": "C1", "line": "intermediate", "fee_income": 10_000},
            {"account_id": "L3", "customer_id": "C3", "line": "liability", "avg_balance": 1_000_000,
             "rate": 0.01, "ftp_rate": 0.03},
        ],
        assignments=[{"customer_id": "C1", "manager_id": "M1", "coefficient": 0.5},
                     {"customer_id": "C1", "manager_id": "M2", "coefficient": 0.2},
                     {"customer_id": "C2", "manager_id": "M1"}],
        # C3 has no manager at all: everything stays with the branch
    )
    _, res = run(frames)
    # C1 total 4,480 + 9,318 = 13,798; unattributed (1 - 0.7) * 13,798 = 4,139.4
    assert cust(res, "C1")["unattributed"] == approx(4_139.4)
    assert cust(res, "C2")["unattributed"] == approx(0.0)
    assert cust(res, "C3")["unattributed"] == approx(4_480.0)
    t = res.totals
    # contribution 13,798 + 4,480 = 18,278; unattributed 4,139.4 + 4,480 = 8,619.4; attributed 9,658.6
    assert t["contribution"] == approx(18_278.0)
    assert t["unattributed"] == approx(8_619.4)
    assert t["attributed"] == approx(9_658.6)
    # liability line: unattributed 0.3 * 4,480 + 4,480 = 1,344 + 4,480 = 5,824
    assert t["unattributed_liability"] == approx(5_824.0)
    # intermediate line: 0.3 * 9,318 = 2,795.4
    assert t["unattributed_intermediate"] == approx(2_795.4)


# --------------------------------------------------------------------------------------------
# DOMAIN 9: scenario TOML

def test_empty_toml_gives_defaults():
    s = Scenario.from_toml("")
    assert s == Scenario()
    assert (s.days, s.day_basis, s.tax_rate, s.capital_ratio, s.cost_of_capital) == (90, 360, 0.0672, 0.105, 0.10)
    assert s.unit_cost == {"asset": 300, "liability": 20, "intermediate": 10}
    assert s.cost_rate == {"asset": 0.004, "liability": 0.002, "intermediate": 0.0}
    assert s.role_weight == {"primary": 0.7, "secondary": 0.3, "support": 0.1}
    assert s.pay_factor == {"asset": 0.06, "liability": 0.05, "intermediate": 0.10, "risk": 0.08}
    assert s.grades == {"senior": 85, "advanced": 70, "manager": 50, "assistant": 20}
    assert s.tiers == {"world_class": 30_000_000, "blue_chip": 10_000_000, "mid_size": 1_000_000}
    assert (s.stock_factor, s.floor_at_zero, s.pool, s.loyalty_years, s.acquisition_cost, s.risk_weight_default) \
        == (1.0, True, 1_000_000, 2, 2_000, 1.0)
    assert s.kpi == default_kpis()


def test_missing_keys_keep_defaults_within_tables():
    s = Scenario.from_toml('name = "q3"\ndays = 30\n[unit_cost]\nasset = 100\n')
    assert s.name == "q3" and s.days == 30
    assert s.unit_cost == {"asset": 100, "liability": 20, "intermediate": 10}
    assert s.day_basis == 360 and s.kpi == default_kpis()


@pytest.mark.parametrize("text", [
    "foo = 1",
    "[unit_cost]\nbogus = 1",
    "[pay_factor]\nfees = 0.1",
    '[[kpi]]\ncode = "x"\nbogus = 1',
    "[grade]\nsenior = 80",
])
def test_unknown_key_is_an_error(text):
    with pytest.raises(ValueError):
        Scenario.from_toml(text)


@pytest.mark.parametrize("text", [
    "days = 0",
    "days = 90.5",
    "tax_rate = 1.5",
    "tax_rate = -0.01",
    "stock_factor = 1.2",
    "pool = -1",
    "floor_at_zero = 1",
    "risk_weight_default = -1",
    "[cost_rate]\nasset = 2",
    "[unit_cost]\nasset = -300",
    "[role_weight]\nprimary = -0.1",
    "[grades]\nsenior = 60",           # below advanced = 70: bounds must go down
    "[tiers]\nmid_size = 50_000_000",  # above blue_chip
    '[[kpi]]\ncode = "x"\nkind = "bogus"',
    '[[kpi]]\ncode = "x"\nperspective = "bogus"',
    '[[kpi]]\ncode = "x"\ncap = 0',
    '[[kpi]]\ncode = "x"\nweight = -5',
    '[[kpi]]\ncode = "x"\n[[kpi]]\ncode = "x"',
    "days = [1",                       # not TOML
])
def test_out_of_range_or_invalid_is_an_error(text):
    with pytest.raises(ValueError):
        Scenario.from_toml(text)


def test_toml_round_trip():
    s = Scenario(name="2026Q3 what-if", days=92, day_basis=365, tax_rate=0.05, stock_factor=0.8,
                 floor_at_zero=False, pool=2_500_000.0, pay_method="points",
                 unit_cost={"asset": 250.0, "liability": 15.0, "intermediate": 5.0},
                 role_weight={"primary": 0.6, "secondary": 0.4, "support": 0.05},
                 kpi=(KpiDef("deposit_avg", "financial", 60, "ratio", 1.5),
                      KpiDef("complaints", "customer", 40, "inverse", 1.1))).validate()
    back = Scenario.from_toml(s.to_toml())
    assert back == s
    assert Scenario.from_toml(Scenario().to_toml()) == Scenario()


def test_kpi_array_replaces_the_whole_table():
    s = Scenario.from_toml('[[kpi]]\ncode = "deposit_avg"\nperspective = "financial"\nweight = 30\nkind = "ratio"\n')
    assert s.kpi == (KpiDef("deposit_avg", "financial", 30, "ratio", 1.2),)  # cap defaults to 1.2


def test_domain_example_file_parses():
    text = '''
name = "2026Q3 official"
days = 90
day_basis = 360
tax_rate = 0.0672
capital_ratio = 0.105
cost_of_capital = 0.10
risk_weight_default = 1.0
stock_factor = 1.0
floor_at_zero = true
pool = 1_000_000
loyalty_years = 2
acquisition_cost = 2_000

[unit_cost]
asset = 300
liability = 20
intermediate = 10

[cost_rate]
asset = 0.004
liability = 0.002
intermediate = 0.0

[role_weight]
primary = 0.7
secondary = 0.3
support = 0.1

[pay_factor]
asset = 0.06
liability = 0.05
intermediate = 0.10
risk = 0.08

[grades]
senior = 85
advanced = 70
manager = 50
assistant = 20

[tiers]
world_class = 30_000_000
blue_chip = 10_000_000
mid_size = 1_000_000

[[kpi]]
code = "deposit_avg"
perspective = "financial"
weight = 30
kind = "ratio"
cap = 1.2
'''
    s = Scenario.from_toml(text)
    assert s.name == "2026Q3 official"
    assert s.account_key() == Scenario().account_key()
    assert len(s.kpi) == 1


# --------------------------------------------------------------------------------------------
# heavy / light contract

def test_evaluate_refuses_base_built_with_other_account_parameters():
    frames = one_customer([{"account_id": "L1", "line": "liability", "avg_balance": 1_000}])
    base = build_base(frames, Scenario())
    for change in ({"days": 30}, {"day_basis": 365}, {"tax_rate": 0.06}, {"capital_ratio": 0.08},
                   {"cost_of_capital": 0.12}, {"risk_weight_default": 0.5}, {"unit_cost": {"asset": 1.0}},
                   {"cost_rate": {"liability": 0.001}}):
        with pytest.raises(ValueError):
            evaluate(base, Scenario().replace(**change))
    # light parameters need no rebuild
    for change in ({"stock_factor": 0.5}, {"pool": 10.0}, {"pay_factor": {"asset": 0.1}},
                   {"role_weight": {"primary": 0.5}}, {"floor_at_zero": False}):
        evaluate(base, Scenario().replace(**change))


def test_run_refuses_rows_with_errors_instead_of_dropping_them_silently():
    # customer C1 has an error (e.g. is_new = "maybe"); its account and assignment are valid rows.
    frames = make_frames(
        managers=[{"manager_id": "M1"}],
        customers=[{"customer_id": "C1", "_error": True}, {"customer_id": "C2"}],
        accounts=[{"account_id": "L1", "customer_id": "C1", "line": "liability", "avg_balance": 100},
                  {"account_id": "L2", "customer_id": "C2", "line": "liability", "avg_balance": 100}],
        assignments=[{"customer_id": "C1", "manager_id": "M1"}, {"customer_id": "C2", "manager_id": "M1"}],
    )
    with pytest.raises(ValueError, match="customers hold rows with errors"):
        run(frames)


def test_valid_rows_only_leaves_the_customer_and_its_dependants_out():
    from data.ingest import Extract
    from data.quarantine import split_valid
    from data.report import Issue, Report

    frames = make_frames(
        managers=[{"manager_id": "M1"}],
        customers=[{"customer_id": "C1", "_error": True}, {"customer_id": "C2"}],
        accounts=[{"account_id": "L1", "customer_id": "C1", "line": "liability", "avg_balance": 100},
                  {"account_id": "L2", "customer_id": "C2", "line": "liability", "avg_balance": 100}],
        assignments=[{"customer_id": "C1", "manager_id": "M1"}, {"customer_id": "C2", "manager_id": "M1"}],
    )
    report = Report([Issue("unknown_value", sheet="customers", row=int(frames["customers"]["_row"][0]),
                           column="is_new", value="maybe", params={"choices": "yes/no"})])
    valid, quarantine = split_valid(Extract(frames=frames, sheet_names={k: k for k in frames}), report)
    _, res = run(valid)
    # C2 alone: liability contribution 0 - 20 (unit cost) - 0.05 (balance cost: 100 * 0.002 * 0.25)
    assert list(res.customers["customer_id"]) == ["C2"]
    assert mgr(res, "M1")["liability"] == approx(-20.05)
    assert sorted(quarantine["sheet"]) == ["accounts", "assignments", "customers"]


def test_build_base_refuses_orphans_with_a_clear_message():
    frames = make_frames(
        managers=[{"manager_id": "M1"}],
        customers=[{"customer_id": "C2"}],
        accounts=[{"account_id": "L1", "customer_id": "C9", "line": "liability", "avg_balance": 100}],
        assignments=[{"customer_id": "C2", "manager_id": "M1"}],
    )
    with pytest.raises(ValueError, match=r"accounts.customer_id refers to ids that are not in the extract \(C9\)"):
        run(frames)


# --------------------------------------------------------------------------------------------
# DOMAIN 11: who moves, and why (calc.explain.compare)

def test_compare_names_who_moves_and_why():
    from calc.explain import compare

    frames = make_frames(
        managers=[{"manager_id": f"M{i}"} for i in (1, 2, 3)],
        customers=[{"customer_id": f"C{i}"} for i in (1, 2, 3)],
        accounts=[{"account_id": "I1", "customer_id": "C1", "line": "intermediate", "fee_income": 3_000},
                  {"account_id": "I2", "customer_id": "C2", "line": "intermediate", "fee_income": 2_000},
                  {"account_id": "A3", "customer_id": "C3", "line": "asset", "recovery": 1_000}],
        assignments=[{"customer_id": f"C{i}", "manager_id": f"M{i}", "coefficient": 1.0} for i in (1, 2, 3)],
    )
    sa = Scenario().replace(tax_rate=0.0, unit_cost={"asset": 0.0, "liability": 0.0, "intermediate": 0.0})
    sb = sa.replace(pay_factor={**sa.pay_factor, "risk": 0.25})
    base = build_base(frames, sa)
    a = evaluate(base, sa)
    b = evaluate(base, sb, overrides={("C2", "M2"): 0.5})
    # A: pay M1 0.10 * 3,000 = 300, M2 0.10 * 2,000 = 200, M3 0.08 * 1,000 (risk) = 80
    # B: M1 300, M2 0.10 * 0.5 * 2,000 = 100, M3 0.25 * 1,000 = 250
    c = compare(a, b, sa, sb)
    assert list(c["manager_id"]) == ["M3", "M2", "M1"]        # the largest rank moves first, then by rank
    r = c.set_index("manager_id")
    assert list(r.loc[["M1", "M2", "M3"], "rank_a"]) == [1, 2, 3]
    assert list(r.loc[["M1", "M2", "M3"], "rank_b"]) == [1, 3, 2]
    assert list(r.loc[["M1", "M2", "M3"], "rank_change"]) == [0, -1, 1]
    assert r.loc["M3", "pay_delta"] == approx(170.0)
    assert r.loc["M2", "pay_delta"] == approx(-100.0)
    assert r.loc["M3", "delta_risk"] == approx(170.0)
    assert (r.loc["M3", "driver"], r.loc["M3", "cause"]) == ("risk", "factor")
    assert (r.loc["M2", "driver"], r.loc["M2", "cause"]) == ("intermediate", "coefficients")
    assert (r.loc["M1", "driver"], r.loc["M1", "cause"]) == ("", "none")
    assert not r["grade_crossed"].any()
    assert (r["grade_move"] == 0).all()
