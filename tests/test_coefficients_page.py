"""The Coefficients page (issue 14, DOMAIN 11.1) through AppTest on the seeded sample bank.

Customers used (data/sample/sample_bank.xlsx): 003884, a new customer with two blank
coefficients, RM2930 primary and RM0432 secondary (0.7 / 0.3 by the default role weights);
001365, whose coefficients are given: RM0432 0.6 and RM2930 0.2 (0.2 unattributed).
"""

from __future__ import annotations

import pytest

from tests.apptest import app, table_with


@pytest.fixture(autouse=True)
def _store(seeded_store):
    return seeded_store


def _coefficients(at) -> dict:
    t = table_with(at, "Manager ID", "Coefficient")
    return dict(zip(t["Manager ID"], t["Coefficient"]))


def _open(customer: str):
    at = app("pages/coefficients.py", "en", coef_search=customer).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="coef_customer").value == customer
    return at


def test_setting_a_coefficient_rederives_the_other_and_shows_the_effect():
    at = _open("003884")
    assert _coefficients(at) == pytest.approx({"RM2930": 0.7, "RM0432": 0.3})
    at.selectbox(key="coef_set_manager").set_value("RM0432")
    at.number_input(key="coef_set_value").set_value(0.5)
    at.button(key="coef_set_submit").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    # RM0432 given 0.5; RM2930, the only blank one left, takes the rest: 1 - 0.5 = 0.5
    assert _coefficients(at) == pytest.approx({"RM2930": 0.5, "RM0432": 0.5})
    effect = table_with(at, "Baseline contribution", "What-if contribution")
    assert set(effect["Manager ID"]) == {"RM0432"}
    row = effect.iloc[0]
    assert row["What-if contribution"] > row["Baseline contribution"]        # 0.3 -> 0.5 of a positive customer
    edits = table_with(at, "Action", "Customer ID")
    assert list(edits["Action"]) == ["set"] and list(edits["Coefficient"]) == [0.5]


def test_an_edit_breaking_the_sum_is_refused_naming_customer_and_sum():
    at = _open("001365")
    assert _coefficients(at) == pytest.approx({"RM0432": 0.6, "RM2930": 0.2})
    at.selectbox(key="coef_set_manager").set_value("RM2930")
    at.number_input(key="coef_set_value").set_value(0.6)
    at.button(key="coef_set_submit").click().run()
    errors = [e.value.replace("\\", "") for e in at.error]          # markdown escapes removed, as shown
    assert any("001365" in e and "sum to 1.2" in e for e in errors), errors
    assert _coefficients(at) == pytest.approx({"RM0432": 0.6, "RM2930": 0.2})     # nothing applied
    assert not any("Action" in d.value.columns for d in at.dataframe)


def test_moving_a_customer_keeps_role_and_reset_clears_the_edits():
    at = _open("003884")
    at.selectbox(key="coef_move_from").set_value("RM0432")
    at.selectbox(key="coef_move_to").set_value("RM1664")
    at.button(key="coef_move_submit").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    # RM1664 takes RM0432's place as the blank secondary: 0.3; RM2930 keeps 0.7
    assert _coefficients(at) == pytest.approx({"RM2930": 0.7, "RM1664": 0.3})
    t = table_with(at, "Manager ID", "Role")
    assert dict(zip(t["Manager ID"], t["Role"]))["RM1664"] == "Secondary"
    at.button(key="whatif_reset").click().run()
    assert _coefficients(at) == pytest.approx({"RM2930": 0.7, "RM0432": 0.3})


def test_edits_are_saved_with_the_scenario():
    at = _open("003884")
    at.selectbox(key="coef_remove_manager").set_value("RM0432")
    at.button(key="coef_remove_submit").click().run()
    assert _coefficients(at) == pytest.approx({"RM2930": 1.0})       # the only manager left takes all
    edits = at.session_state["_coef_edits"]
    # the Scenarios page saves the what-if of the same session (its edits included)
    at = app("pages/scenarios.py", "en", _coef_edits=edits).run()
    assert not at.exception, [e.value for e in at.exception]
    at.text_input(key="scenario_name").set_value("one manager for 003884")
    submit = [b for b in at.button if b.label == "Save"]
    assert submit, [(b.key, b.label) for b in at.button]
    submit[0].click().run()
    from ui import state

    found = [s for s in state.saved_scenarios().values() if s.name == "one manager for 003884"]
    assert found and found[0].edits == ({"action": "remove", "customer_id": "003884", "manager_id": "RM0432"},)


def test_the_manager_page_explains_a_pay_change_by_chain_substitution():
    # RM0432 loses customer 003884 (0.3 of its contribution) and the intermediate factor moves:
    # the attribution and factor effects appear, and the steps add up to the change
    edits = ({"action": "remove", "customer_id": "003884", "manager_id": "RM0432"},)
    at = app("pages/manager.py", "en", _coef_edits=edits, chain_manager="RM0432",
             _keep={"pay_factor_intermediate": 0.2}).run()
    assert not at.exception, [e.value for e in at.exception]
    walk = table_with(at, "Step", "Effect (yuan)")
    steps = dict(zip(walk["Step"], walk["Effect (yuan)"]))
    assert steps["Contribution effect"] == pytest.approx(0.0, abs=0.01)      # one dataset: C does not move
    assert steps["Attribution effect"] < 0 and steps["Factor effect"] != 0
    assert steps["Contribution effect"] + steps["Attribution effect"] + steps["Factor effect"] == \
        pytest.approx(steps["What-if pay"], abs=0.02)
    pays = dict(zip(walk["Step"], walk["Pay (yuan)"]))
    assert pays["What-if pay"] - pays["Baseline pay"] == pytest.approx(steps["What-if pay"], abs=0.02)


def test_the_manager_page_writes_each_lines_arithmetic():
    at = app("pages/manager.py", "zh", chain_manager="RM0432").run()
    assert not at.exception, [e.value for e in at.exception]
    lines = table_with(at, "算式", "贡献", "挂钩系数", "绩效工资")
    for line, c, f, p, text in lines[["业务条线", "贡献", "挂钩系数", "绩效工资", "算式"]].itertuples(index=False):
        assert p == pytest.approx(c * f, abs=0.01)              # the row's own arithmetic holds
        assert text == f"{line}贡献 {c:,.2f} × 挂钩系数 {f:g} = {p:,.2f}"
    total = [c.value for c in at.caption if c.value.startswith("绩效工资 = ")]
    pays = list(lines["绩效工资"])
    expected = f"{pays[0]:,.2f}" + "".join(f" + {p:,.2f}" if p >= 0 else f" − {-p:,.2f}" for p in pays[1:])
    assert total == [f"绩效工资 = {expected} = {sum(pays):,.2f} 元"]


def test_the_manager_pages_customer_and_account_tables_follow_the_role_weights_only():
    """RM0432 is secondary on 003884 (new, both coefficients blank): 0.3 / (0.7 + 0.3) = 0.3 of it
    by the default weights; with the secondary weight at 0.5, 0.5 / (0.7 + 0.5) = 0.416667. Its
    given 0.6 on 001365 never moves. The tables are kept across a pay-link factor move (which
    changes neither) and follow every role-weight move, back to the baseline too."""
    def shown(at):
        customers = table_with(at, "Customer ID", "Coefficient source", "Coefficient")
        accounts = table_with(at, "Account", "Customer ID", "Coefficient")
        mine = dict(zip(customers["Customer ID"], customers["Coefficient"]))
        per_account = accounts.groupby("Customer ID")["Coefficient"].unique()
        return mine["003884"], mine["001365"], list(per_account["003884"]), list(per_account["001365"])

    at = app("pages/manager.py", "en", chain_manager="RM0432").run()
    assert not at.exception, [e.value for e in at.exception]
    assert shown(at) == (pytest.approx(0.3), pytest.approx(0.6), [pytest.approx(0.3)], [pytest.approx(0.6)])
    at.slider(key="role_weight_secondary").set_value(0.5).run()
    moved = (pytest.approx(0.416667, abs=1e-6), pytest.approx(0.6), [pytest.approx(0.416667, abs=1e-6)],
             [pytest.approx(0.6)])
    assert shown(at) == moved
    at.slider(key="pay_factor_intermediate").set_value(0.2).run()
    assert shown(at) == moved
    at.slider(key="role_weight_secondary").set_value(0.3).run()
    assert not at.exception, [e.value for e in at.exception]
    assert shown(at) == (pytest.approx(0.3), pytest.approx(0.6), [pytest.approx(0.3)], [pytest.approx(0.6)])


def test_a_large_bank_picks_the_target_managers_branch_first_and_lists_all_of_it(monkeypatch):
    """Above views.PICK_LIMIT managers, the managers to add or move to are one branch's (the
    first manager's branch at first), every one of them but those already on the customer, and
    a customer can be moved to any branch's manager: none is cut off a long list."""
    from ui import views

    from pathlib import Path

    from data.ingest import load_extract

    monkeypatch.setattr(views, "PICK_LIMIT", 10)           # the sample's 40 managers count as many
    sample = Path(__file__).resolve().parents[1] / "data" / "sample" / "sample_bank.xlsx"
    managers = load_extract(sample)[0].frames["managers"]
    branch_of = dict(zip(managers["manager_id"], managers["branch"]))
    at = _open("003884")                                     # RM2930 (primary) and RM0432 (secondary)
    on_customer = set(_coefficients(at))
    first = branch_of[table_with(at, "Manager ID", "Role")["Manager ID"].iloc[0]]
    assert at.selectbox(key="coef_target_branch").value == first

    def listed(key):
        return set(at.selectbox(key=key).options)

    def of(branch):
        return {f"{m} {n}" for m, n, b in zip(managers["manager_id"], managers["name"], managers["branch"])
                if b == branch and m not in on_customer}

    assert listed("coef_add_manager") == listed("coef_move_to") == of(first)
    other = sorted(set(managers["branch"]) - {first})[-1]
    at.selectbox(key="coef_target_branch").set_value(other).run()
    assert listed("coef_move_to") == of(other)
    target = sorted(m for m, b in branch_of.items() if b == other and m not in on_customer)[-1]
    at.selectbox(key="coef_move_from").set_value("RM0432")
    at.selectbox(key="coef_move_to").set_value(target)
    at.button(key="coef_move_submit").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert _coefficients(at) == pytest.approx({"RM2930": 0.7, target: 0.3})
