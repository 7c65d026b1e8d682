"""Budget-neutral scaling in the what-if panel (issue 14, DOMAIN 11.3), through AppTest."""

from __future__ import annotations

import pytest

from tests.apptest import app


@pytest.fixture(autouse=True)
def _store(seeded_store):
    return seeded_store


LINES = ("asset", "liability", "intermediate", "risk")


def _open():
    at = app("app.py", "en").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _total_pay(at) -> float:
    from ui.frame import NOW_KEY

    return float(at.session_state[NOW_KEY].result.totals["pay"])


def test_the_budget_button_scales_every_factor_to_meet_the_budget():
    at = _open()
    before = {x: at.slider(key=f"pay_factor_{x}").value for x in LINES}
    pay = _total_pay(at)
    # with no locked line and pay floored at 0, total pay is proportional to k: 1.5 x pay needs k = 1.5
    at.number_input(key="budget_amount").set_value(round(1.5 * pay, 2))
    at.button(key="budget_apply").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert abs(_total_pay(at) - 1.5 * pay) <= 1.0
    for x in LINES:
        assert at.slider(key=f"pay_factor_{x}").value == pytest.approx(1.5 * before[x], abs=1e-6)
    assert any("k = 1.5000" in s.value for s in at.sidebar.success), [s.value for s in at.sidebar.success]


def test_locked_lines_that_exceed_the_budget_are_named_and_nothing_moves():
    at = _open()
    before = {x: at.slider(key=f"pay_factor_{x}").value for x in LINES}
    at.number_input(key="budget_amount").set_value(1.0)
    at.multiselect(key="budget_lock").set_value(["liability"])
    at.button(key="budget_apply").click().run()
    assert not at.exception, [e.value for e in at.exception]
    warnings = [w.value for w in at.sidebar.warning]
    assert any("locked lines alone pay more" in w for w in warnings), warnings
    assert {x: at.slider(key=f"pay_factor_{x}").value for x in LINES} == before


def test_rankings_lists_the_levers_by_how_many_managers_they_move():
    at = app("pages/rankings.py", "zh").run()
    assert not at.exception
    at.toggle(key="sensitivity_show").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    from tests.apptest import table_with

    t = table_with(at, "参数", "名次变化人数")
    # 4 pay-link factors, 3 role weights and the stock factor, each -10% and +10%
    assert len(t) == 16
    moved = t["名次变化人数"].tolist()
    assert moved == sorted(moved, reverse=True) and moved[0] > 0
    assert set(t["方向"]) == {"+10%", "−10%"}
    assert "中间业务" in set(t["参数"]) and "存量客户系数" in set(t["参数"])
