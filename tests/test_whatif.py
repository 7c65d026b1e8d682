"""DOMAIN 11: coefficient edits and reassignment, chain substitution, budget-neutral scaling and
rank sensitivity. Every expected number is worked out by hand in a comment.

The cases use fee-only intermediate accounts (and recovery-only asset accounts for the risk
line) under a scenario without tax or unit cost, so a customer's contribution is exactly its fee
(or its recovery): pay = factor x coefficient x fee.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calc.light import evaluate
from calc.pipeline import run
from calc.scenario import Scenario
from calc.whatif import Edit, EditError, apply_edits, chain, reassign, scale_to_budget, sensitivity
from factories import make_frames

approx = pytest.approx
PLAIN = Scenario().replace(tax_rate=0.0, unit_cost={"asset": 0.0, "liability": 0.0, "intermediate": 0.0})


def _frames(customers, assignments, managers=None):
    """``customers``: {id: (fee, recovery)}; ``assignments``: [(customer, manager, role, c)]."""
    managers = managers or sorted({a[1] for a in assignments})
    accounts = []
    for cid, (fee, recovery) in customers.items():
        if fee:
            accounts.append({"account_id": f"I{cid}", "customer_id": cid, "line": "intermediate", "fee_income": fee})
        if recovery:
            accounts.append({"account_id": f"R{cid}", "customer_id": cid, "line": "asset", "recovery": recovery})
    return make_frames(
        managers=[{"manager_id": m} for m in managers],
        customers=[{"customer_id": c, "is_new": True} for c in customers],
        accounts=accounts,
        assignments=[{"customer_id": c, "manager_id": m, "role": r, "coefficient": k} for c, m, r, k in assignments],
    )


def _pay(result, manager_id):
    m = result.managers.set_index("manager_id")
    return float(m.loc[manager_id, "pay"])


def _coef(result, customer_id, manager_id):
    a = result.assignments
    hit = a[(a["customer_id"] == customer_id) & (a["manager_id"] == manager_id)]
    return float(hit["coefficient_used"].iloc[0])


# --------------------------------------------------------------------------------------------
# 11.1 edits and reassignment

@pytest.fixture
def shared():
    """C1 (fee 1,000) shared by M1 (primary, blank) and M2 (secondary, blank); M3 has none."""
    frames = _frames({"C1": (1_000, 0), "C2": (500, 0)},
                     [("C1", "M1", "primary", None), ("C1", "M2", "secondary", None), ("C2", "M3", "primary", None)])
    return run(frames, PLAIN)[0]


def test_set_makes_a_given_coefficient_and_the_blank_ones_share_the_rest(shared):
    res = evaluate(apply_edits(shared, [Edit("set", "C1", "M2", coefficient=0.5)]), PLAIN)
    # M2 given 0.5; M1 (the only blank one) gets what is left: 1 - 0.5 = 0.5
    assert _coef(res, "C1", "M2") == approx(0.5)
    assert _coef(res, "C1", "M1") == approx(0.5)
    assert _pay(res, "M1") == approx(50.0)          # 0.10 x 0.5 x 1,000


def test_derive_makes_a_given_coefficient_blank_again(shared):
    edited = apply_edits(shared, [Edit("set", "C1", "M1", coefficient=0.6)])
    back = evaluate(apply_edits(edited, [Edit("derive", "C1", "M1")]), PLAIN)
    # both blank again: 0.7 / (0.7 + 0.3) = 0.7 and 0.3
    assert _coef(back, "C1", "M1") == approx(0.7)
    assert _coef(back, "C1", "M2") == approx(0.3)


def test_add_and_remove_a_manager(shared):
    added = evaluate(apply_edits(shared, [Edit("add", "C1", "M3", role="support")]), PLAIN)
    # weights 0.7 + 0.3 + 0.1 = 1.1: M3 gets 0.1 / 1.1 of 1,000 = 90.909...; pay 9.0909...
    assert _coef(added, "C1", "M3") == approx(0.1 / 1.1)
    assert _pay(added, "M3") == approx(0.10 * 500 + 0.10 * 1_000 * 0.1 / 1.1)   # C2 too: 50 + 9.0909
    removed = evaluate(apply_edits(shared, [Edit("remove", "C1", "M2")]), PLAIN)
    # M1 alone on C1 takes everything: pay 0.10 x 1,000 = 100; M2 has no customer left
    assert _pay(removed, "M1") == approx(100.0)
    assert _pay(removed, "M2") == 0.0
    assert len(removed.assignments) == 2


def test_reassignment_moves_the_customer_with_its_role_and_coefficient(shared):
    edits = reassign(shared, "C1", "M2", "M3")
    assert edits == [Edit("remove", "C1", "M2"), Edit("add", "C1", "M3", role="secondary", coefficient=None)]
    res = evaluate(apply_edits(shared, edits), PLAIN)
    # M3 now secondary on C1: 0.3 x 1,000 = 300 plus its own C2 500: pay 0.10 x 800 = 80
    assert _pay(res, "M3") == approx(80.0)
    assert _pay(res, "M2") == 0.0
    assert _pay(res, "M1") == approx(70.0)           # unchanged: 0.10 x 0.7 x 1,000


def test_an_edit_set_breaking_the_sum_is_refused_as_a_whole_naming_the_customer(shared):
    edits = [Edit("set", "C1", "M1", coefficient=0.8), Edit("set", "C1", "M2", coefficient=0.5)]
    with pytest.raises(EditError, match=r"customer C1: given coefficients sum to 1\.3") as e:
        apply_edits(shared, edits)
    assert e.value.customer_id == "C1"
    # nothing was applied: the Base still derives 0.7 / 0.3
    assert _coef(evaluate(shared, PLAIN), "C1", "M1") == approx(0.7)


@pytest.mark.parametrize("edit, message", [
    (Edit("set", "C9", "M1", coefficient=0.5), "customer 'C9' is not in this dataset"),
    (Edit("set", "C1", "M9", coefficient=0.5), "manager 'M9' is not in this dataset"),
    (Edit("add", "C1", "M1", role="primary"), "customer C1 already has manager M1"),
    (Edit("remove", "C2", "M1"), "customer C2 has no manager M1 to remove"),
    (Edit("set", "C1", "M1"), "set needs a coefficient"),
    (Edit("set", "C1", "M1", coefficient=1.5), "coefficient 1.5 must be a number with 0 < c <= 1"),
    (Edit("add", "C1", "M3"), "add needs a role"),
    (Edit("move", "C1", "M3"), "action 'move' must be one of"),
])
def test_a_bad_edit_is_named(shared, edit, message):
    with pytest.raises(EditError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        apply_edits(shared, [Edit("set", "C2", "M3", coefficient=1.0), edit])
    assert str(e.value).startswith("edit 2: ")
    assert e.value.index == 1


# --------------------------------------------------------------------------------------------
# 11.2 chain substitution

def test_chain_substitution_between_two_periods():
    a_frames = _frames({"C1": (1_000, 0), "C3": (300, 0), "C5": (-500, 0)},
                       [("C1", "M1", "primary", 1.0), ("C3", "M2", "primary", 1.0), ("C5", "M4", "primary", 1.0)])
    b_frames = _frames({"C1": (2_000, 0), "C2": (500, 0), "C4": (400, 0), "C5": (1_000, 0)},
                       [("C1", "M1", "primary", 0.5), ("C2", "M1", "primary", 1.0), ("C4", "M3", "primary", 1.0),
                        ("C5", "M4", "primary", 1.0)])
    sb = PLAIN.replace(pay_factor={"intermediate": 0.12})
    A, B = run(a_frames, PLAIN), run(b_frames, sb)
    managers, lines = chain((*A, PLAIN), (*B, sb))
    m = managers.set_index("manager_id")
    # M1: pay A = 0.10 x 1 x 1,000 = 100; step 1 (B's contribution, A's coefficients; C2 absent
    # in A so c = 0) = 0.10 x 2,000 = 200; step 2 (B's coefficients) = 0.10 x (0.5 x 2,000 + 500)
    # = 150; pay B = 0.12 x 1,500 = 180. Effects 100, -50, +30; sum 80 = 180 - 100.
    assert m.loc["M1", ["pay_a", "step1", "step2", "pay_b"]].tolist() == approx([100, 200, 150, 180])
    assert m.loc["M1", ["contribution_effect", "attribution_effect", "factor_effect", "change"]].tolist() \
        == approx([100, -50, 30, 80])
    # M2: C3 (300) only in A: pay A 30; C3 absent in B has C = 0: contribution effect -30; M2 is
    # absent from B: pay B 0
    assert m.loc["M2", ["pay_a", "contribution_effect", "attribution_effect", "factor_effect", "pay_b"]].tolist() \
        == approx([30, -30, 0, 0, 0])
    # M3 only in B: 0, 0, attribution 0.10 x 400 = 40, factor 0.02 x 400 = 8; pay B 48
    assert m.loc["M3", ["pay_a", "step1", "step2", "pay_b"]].tolist() == approx([0, 0, 40, 48])
    # M4 floored in A (0.10 x -500 = -50 -> 0); step 1 = 0.10 x 1,000 = 100; pay B 120
    assert m.loc["M4", ["pay_a", "contribution_effect", "attribution_effect", "factor_effect"]].tolist() \
        == approx([0, 100, 0, 20])
    assert bool(m.loc["M4", "floored"]) and not bool(m.loc["M1", "floored"])
    # the arithmetic per line: M1 intermediate 0.10 x (2,000 - 1,000) = 100 ...
    row = lines[(lines["manager_id"] == "M1") & (lines["line"] == "intermediate")].iloc[0]
    assert [row["ca_Ca"], row["ca_Cb"], row["cb_Cb"], row["f_a"], row["f_b"]] == approx([1_000, 2_000, 1_500, 0.10, 0.12])
    assert [row["contribution_effect"], row["attribution_effect"], row["factor_effect"]] == approx([100, -50, 30])
    # pay A and pay B are the states' own pay
    assert m.loc["M1", "pay_a"] == approx(_pay(A[1], "M1")) and m.loc["M1", "pay_b"] == approx(_pay(B[1], "M1"))


# --------------------------------------------------------------------------------------------
# 11.3 budget-neutral scaling

@pytest.fixture
def two_lines():
    """M1: fee 1,000 and recovery 500 (risk); M2: fee 3,000. Pay 0.10 x 1,000 + 0.08 x 500 = 140
    and 300: total 440."""
    frames = _frames({"C1": (1_000, 500), "C2": (3_000, 0)}, [("C1", "M1", "primary", 1.0), ("C2", "M2", "primary", 1.0)])
    return run(frames, PLAIN)[1]


def test_scaling_with_no_lock_is_exact(two_lines):
    b = scale_to_budget(two_lines, PLAIN, 880.0)
    # k = 880 / 440 = 2: intermediate 0.20, risk 0.16
    assert b.reached and b.k == approx(2.0)
    assert b.pay_factor["intermediate"] == approx(0.20) and b.pay_factor["risk"] == approx(0.16)
    assert b.total == approx(880.0)


def test_scaling_with_a_locked_line(two_lines):
    b = scale_to_budget(two_lines, PLAIN, 880.0, locked=["risk"])
    # risk keeps 0.08 x 500 = 40; 40 + k x (100 + 300) = 880 -> k = 2.1; intermediate 0.21
    assert b.reached and b.k == approx(2.1, abs=1e-3)
    assert b.pay_factor["risk"] == 0.08 and b.pay_factor["intermediate"] == approx(0.21, abs=1e-4)
    assert abs(b.total - 880.0) <= 1.0


def test_locked_lines_that_already_exceed_the_budget(two_lines):
    b = scale_to_budget(two_lines, PLAIN, 100.0, locked=["intermediate"])
    # intermediate alone pays 400 > 100 at k = 0: cannot; the nearest total is 400
    assert not b.reached and b.reason == "locked_exceed"
    assert b.k == 0.0 and b.total == approx(400.0)


def test_scaling_with_a_floored_manager():
    frames = _frames({"C1": (1_000, 500), "C2": (3_000, 0), "C3": (-2_000, 1_000)},
                     [("C1", "M1", "primary", 1.0), ("C2", "M2", "primary", 1.0), ("C3", "M3", "primary", 1.0)])
    res = run(frames, PLAIN)[1]
    # M3: raw 0.10 x -2,000 + 0.08 x 1,000 = -120 -> floored to 0. Lock risk, budget 160:
    # M1 40 + 100k, M2 300k, M3 max(80 - 200k, 0): for k < 0.4, 120 + 200k = 160 -> k = 0.2
    b = scale_to_budget(res, PLAIN, 160.0, locked=["risk"])
    assert b.reached and b.k == approx(0.2, abs=1e-3)
    assert abs(b.total - 160.0) <= 1.0


def test_a_budget_that_needs_a_factor_above_1_says_so(two_lines):
    b = scale_to_budget(two_lines, PLAIN, 10_000_000.0)
    # factors cap at 1: k at most 1 / 0.10 = 10 (risk 0.8); total 10 x 440 = 4,400
    assert not b.reached and b.reason == "factor_cap"
    assert b.k == approx(10.0) and b.total == approx(4_400.0)


def test_a_bad_budget_is_refused(two_lines):
    with pytest.raises(ValueError, match="budget"):
        scale_to_budget(two_lines, PLAIN, -1.0)
    with pytest.raises(ValueError, match="locked line 'fees'"):
        scale_to_budget(two_lines, PLAIN, 100.0, locked=["fees"])


# --------------------------------------------------------------------------------------------
# 11.4 rank sensitivity

def test_rank_sensitivity_puts_the_reshuffling_levers_first():
    frames = _frames({"C1": (1_000, 0), "C2": (900, 120), "C3": (2_000, 0)},
                     [("C1", "M1", "primary", 1.0), ("C2", "M2", "primary", 1.0), ("C3", "M3", "primary", 1.0)])
    base, res = run(frames, PLAIN)
    # pay: M1 100, M2 90 + 0.08 x 120 = 99.6, M3 200: ranks M3, M1, M2.
    # intermediate -10%: M1 90, M2 81 + 9.6 = 90.6 -> M1 and M2 swap; pay -0.01 x 3,900 = -39
    # risk +10%: M2 90 + 0.088 x 120 = 100.56 > 100 -> swap; pay +0.008 x 120 = 0.96
    # intermediate +10%: M1 110, M2 108.6; risk -10%: 98.64: no change. Asset and liability
    # lines are 0; given coefficients do not move with role weights or the stock factor.
    table = sensitivity(base, PLAIN, res)
    top = table.head(2)
    assert set(zip(top["key"], top["direction"])) == {("intermediate", -1), ("risk", 1)}
    assert top["managers_moved"].tolist() == [2, 2] and top["largest_move"].tolist() == [1, 1]
    got = table.set_index(["key", "direction"])
    assert got.loc[("intermediate", -1), "pay_change"] == approx(-39.0)
    assert got.loc[("risk", 1), "pay_change"] == approx(0.96)
    assert (table["managers_moved"].iloc[2:] == 0).all()
    stock_up = table[(table["lever"] == "stock_factor") & (table["direction"] == 1)].iloc[0]
    assert stock_up["tried"] == 1.0 and stock_up["value"] == 1.0           # clipped to its range


# --------------------------------------------------------------------------------------------
# properties

@st.composite
def _banks(draw):
    n_c = draw(st.integers(1, 5))
    fees = [draw(st.floats(-5_000, 50_000, allow_nan=False)) for _ in range(n_c)]
    rec = [draw(st.floats(0, 5_000, allow_nan=False)) for _ in range(n_c)]
    asg = []
    for i in range(n_c):
        left = 20
        for m in draw(st.lists(st.sampled_from(["M1", "M2", "M3"]), min_size=1, max_size=3, unique=True)):
            k = draw(st.one_of(st.none(), st.integers(1, max(left, 1))))
            if k is not None and left >= k:
                left -= k
                asg.append((f"C{i}", m, draw(st.sampled_from(["primary", "secondary", "support"])), k / 20))
            else:
                asg.append((f"C{i}", m, draw(st.sampled_from(["primary", "secondary", "support"])), None))
    customers = {f"C{i}": (fees[i], rec[i]) for i in range(n_c)}
    return _frames(customers, asg, managers=["M1", "M2", "M3"])


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(_banks(), _banks(), st.floats(0.01, 0.5), st.booleans())
def test_the_three_effects_sum_to_the_change(fa, fb, factor, floor):
    sa = PLAIN.replace(floor_at_zero=floor)
    sb = PLAIN.replace(pay_factor={"risk": factor}, floor_at_zero=floor)
    A, B = run(fa, sa), run(fb, sb)
    m, _ = chain((*A, sa), (*B, sb))
    effects = m["contribution_effect"] + m["attribution_effect"] + m["factor_effect"]
    np.testing.assert_allclose(effects, m["pay_b"] - m["pay_a"], atol=1e-6)
    pays = B[1].managers.set_index("manager_id")["pay"]
    np.testing.assert_allclose(m.set_index("manager_id")["pay_b"].reindex(pays.index), pays, atol=1e-6)


@SETTINGS
@given(_banks(), st.floats(0, 100_000))
def test_scaling_with_no_lock_meets_any_reachable_budget(frames, budget):
    res = run(frames, PLAIN)[1]
    b = scale_to_budget(res, PLAIN, budget)
    check = evaluate(run(frames, PLAIN.replace(pay_factor=b.pay_factor))[0], PLAIN.replace(pay_factor=b.pay_factor)) \
        if b.reason != "nothing_to_scale" else res
    if b.reached:
        assert abs(float(check.managers["pay"].sum()) - budget) <= 1.0
    else:
        assert b.reason in ("factor_cap", "nothing_to_scale")


@SETTINGS
@given(_banks(), st.lists(st.tuples(st.sampled_from(["set", "derive", "add", "remove"]),
                                    st.sampled_from(["C0", "C1", "C2"]), st.sampled_from(["M1", "M2", "M3"]),
                                    st.integers(1, 20)), max_size=4))
def test_an_accepted_edit_set_never_breaks_the_sum(frames, raw):
    base = run(frames, PLAIN)[0]
    edits = [Edit(a, c, m, role="support" if a == "add" else None, coefficient=k / 20 if a in ("set", "add") else None)
             for a, c, m, k in raw]
    try:
        edited = apply_edits(base, edits)
    except EditError:
        return
    res = evaluate(edited, PLAIN)
    sums = res.assignments.groupby("customer_id")["coefficient_used"].sum()
    assert (sums <= 1 + 1e-9).all()


# --------------------------------------------------------------------------------------------
# edits kept with a scenario

def test_a_scenario_keeps_its_edits_through_toml_and_every_evaluation(shared):
    s = PLAIN.replace(edits=[{"action": "set", "customer_id": "C1", "manager_id": "M2", "coefficient": 0.5},
                             {"action": "add", "customer_id": "C2", "manager_id": "M1", "role": "secondary"}])
    back = Scenario.from_toml(s.to_toml())
    assert back.edits == s.edits and "edits = [" in s.to_toml()
    assert "edits" not in PLAIN.to_toml()                          # a scenario without edits writes none
    frames = _frames({"C1": (1_000, 0), "C2": (500, 0)},
                     [("C1", "M1", "primary", None), ("C1", "M2", "secondary", None), ("C2", "M3", "primary", None)])
    _, res = run(frames, back)
    # C1: M2 given 0.5, M1 the rest 0.5 -> M1 50; C2: M3 primary 0.7 / M1 secondary 0.3 of 500
    # (new customer) -> M1 + 0.10 x 150 = 15: pay 65
    assert _pay(res, "M1") == approx(65.0)
    # the plain Base refuses a scenario with edits (they would be silently ignored)
    with pytest.raises(ValueError, match="coefficient edits"):
        evaluate(shared, back)


def test_a_scenario_with_a_bad_edit_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"edits\[1\]\.coefficient = 1\.7 must be <= 1"):
        PLAIN.replace(edits=[{"action": "derive", "customer_id": "C1", "manager_id": "M1"},
                             {"action": "set", "customer_id": "C1", "manager_id": "M2", "coefficient": 1.7}])
    with pytest.raises(ValueError, match=r"edits\[0\]\.action 'move'"):
        Scenario.from_toml('[[edits]]\naction = "move"\ncustomer_id = "C1"\nmanager_id = "M1"\n')


def test_the_chain_of_one_manager_equals_its_row_of_the_full_chain():
    a_frames = _frames({"C1": (1_000, 0), "C2": (500, 200)},
                       [("C1", "M1", "primary", None), ("C1", "M2", "secondary", None), ("C2", "M2", "primary", 1.0)])
    sb = PLAIN.replace(role_weight={"secondary": 0.5}, pay_factor={"risk": 0.2})
    A, B = run(a_frames, PLAIN), run(a_frames, sb)
    full, _ = chain((*A, PLAIN), (*B, sb))
    one, lines = chain((*A, PLAIN), (*B, sb), managers=["M2"])
    assert list(one["manager_id"]) == ["M2"] and set(lines["manager_id"]) == {"M2"}
    cols = ["pay_a", "contribution_effect", "attribution_effect", "factor_effect", "pay_b"]
    assert one[cols].iloc[0].tolist() == approx(full.set_index("manager_id").loc["M2", cols].tolist())
    # M2: secondary 0.3 -> 0.5 / 1.2 of C1 (1,000): attribution 0.10 x (0.41667 - 0.3) x 1,000 = 11.667;
    # factor: risk 0.08 -> 0.2 on C2's recovery 200: 0.12 x 200 = 24
    assert one["attribution_effect"].iloc[0] == approx(0.10 * (0.5 / 1.2 - 0.3) * 1_000)
    assert one["factor_effect"].iloc[0] == approx(24.0)


def test_the_chain_from_published_rows_equals_the_chain_from_results():
    from calc.whatif import chain_states, frozen_state

    a_frames = _frames({"C1": (1_000, 0), "C3": (300, 0)}, [("C1", "M1", "primary", 1.0), ("C3", "M2", "primary", 1.0)])
    b_frames = _frames({"C1": (2_000, 0), "C2": (500, 0)}, [("C1", "M1", "primary", 0.5), ("C2", "M1", "primary", 1.0)])
    sb = PLAIN.replace(pay_factor={"intermediate": 0.12})
    A, B = run(a_frames, PLAIN), run(b_frames, sb)

    def frozen(base, result, s):
        return frozen_state(result.customers, result.assignments, s.pay_factor, s.floor_at_zero, base.managers)

    got, _ = chain_states(frozen(*A, PLAIN), frozen(*B, sb))
    want, _ = chain((*A, PLAIN), (*B, sb))
    cols = ["pay_a", "step1", "step2", "pay_b"]
    np.testing.assert_allclose(got.set_index("manager_id")[cols].sort_index().to_numpy(),
                               want.set_index("manager_id")[cols].sort_index().to_numpy(), atol=1e-9)
    # M1 by hand (as in the two-period case above): 100 -> 200 -> 150 -> 180
    assert got.set_index("manager_id").loc["M1", cols].tolist() == approx([100, 200, 150, 180])
