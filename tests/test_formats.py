"""Number formats in one place (ui.formats) and the charts that use them (issue 13)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from calc.scenario import Scenario, perspective_weights
from ui import charts
from ui.formats import integer, money, money_ticks, percent, short_money, with_unit


def test_money_rates_and_counts_read_as_a_bank_writes_them():
    assert money(63718.149) == "63,718.15"
    assert money(7049245.3697) == "7,049,245.37"
    assert money(-0.0000000002) == "0.00"                 # float noise is never "-0.00"
    assert money(1_234_567, unit="wan") == "123.46"       # 万元
    assert percent(0.0152) == "1.52%" and percent(0.0029) == "0.29%"   # a customer rate keeps its precision
    assert integer(1.0) == "1" and integer(12345) == "12,345"           # ranks and counts are integers
    assert money(float("nan")) == percent(None) == "—"


def test_large_amounts_on_axes_read_in_wan_and_yi():
    assert short_money(7_049_245.37) == "705万"                # three significant digits on a label
    assert short_money(123_456_789) == "1.23亿"
    assert short_money(350_000) == "35万" and short_money(8_000) == "8,000"
    assert short_money(2_000_000, "en") == "2M"
    ticks = money_ticks([0, 7_049_245])
    assert ticks["tickvals"] == [0, 2e6, 4e6, 6e6, 8e6]
    assert ticks["ticktext"] == ["0", "200万", "400万", "600万", "800万"]
    assert with_unit("工资", "yuan") == "工资（元）" and with_unit("Pay", "yuan", "en") == "Pay (yuan)"


def test_the_radar_shows_each_perspective_as_a_share_of_its_weight():
    # default plan: financial KPIs weigh 30 + 20 + 15 + 15 + 10 = 90, customer 5 + 5 = 10; the
    # internal one is a deduction (no points to reach), learning has none: both left out
    w = perspective_weights(Scenario().kpi)
    assert w == {"financial": 90.0, "customer": 10.0, "internal": 0.0, "learning": 0.0}
    fig = charts.radar_figure({"financial": 45.0, "customer": 10.0, "internal": -5.0, "learning": 0.0},
                              {"financial": 72.0, "customer": 5.0, "internal": 0.0, "learning": 0.0}, "王芳", "zh", w)
    assert list(fig.data[0].r) == [50.0, 100.0, 50.0]      # 45 / 90, 10 / 10, closed back to the first
    assert list(fig.data[1].r) == [80.0, 50.0, 80.0]
    assert list(fig.data[0].theta) == ["财务", "客户", "财务"]
    assert fig.layout.polar.radialaxis.ticksuffix == "%"


def test_rank_axes_are_whole_numbers_and_money_axes_carry_their_unit():
    hist = pd.DataFrame({"period": ["2026Q2", "2026Q3"], "rank": [3, 1], "pay": [12_000.0, 2_500_000.0],
                         "score": [50.0, 60.0], "grade": ["manager", "advanced"]})
    rank = charts.history_figure(hist, "rank", "zh")
    assert rank.layout.yaxis.tickformat == ",d" and rank.layout.yaxis.dtick == 1
    assert rank.layout.yaxis.autorange == "reversed"
    pay = charts.history_figure(hist, "pay", "zh")
    # 0 .. 2,500,000 in about 5 round steps: 0, 100万, 200万, 300万 (the top tick above the largest pay)
    assert pay.layout.yaxis.title.text == "系数法工资（元）"
    assert list(pay.layout.yaxis.ticktext) == ["0", "100万", "200万", "300万"]


def test_the_ranking_legend_sits_above_the_rotated_names():
    m = pd.DataFrame({"manager_id": [f"RM{i}" for i in range(12)], "name": [f"经理{i}" for i in range(12)],
                      "branch": ["城东支行", "城西支行"] * 6, "pay": np.arange(12) * 1000.0})
    fig = charts.ranking_figure(m, "pay", "zh")
    assert fig.layout.legend.y >= 1 and fig.layout.xaxis.tickangle == -45
    assert fig.layout.yaxis.title.text == "系数法工资（元）"


def test_an_empty_chart_says_there_is_no_data():
    fig = charts.history_figure(pd.DataFrame({"period": [], "rank": []}), "rank", "zh")
    assert [a.text for a in fig.layout.annotations] == ["暂无数据"]


def test_kpi_weights_not_adding_to_100_are_warned_about(seeded_store):
    from tests.apptest import app

    ok = app("pages/scorecard.py", "zh").run()
    assert not ok.exception and not ok.warning                           # the default plan: 90 + 10 = 100
    table = [{"code": "deposit_avg", "perspective": "financial", "weight": 110.0, "kind": "ratio", "cap": 1.2}]
    at = app("pages/scorecard.py", "zh", _kpi_table=table).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("当前为 110" in w.value for w in at.warning), [w.value for w in at.warning]


def test_every_slider_explains_its_term(seeded_store):
    from tests.apptest import app

    at = app("pages/rankings.py", "zh").run()
    helps = {s.key: s.help for s in at.slider}
    assert "挂钩系数" in helps["pay_factor_intermediate"] and "100,000" in helps["pay_factor_intermediate"]
    assert "角色权重" in helps["role_weight_secondary"] and "存量客户" in helps["stock_factor"]
    assert "积分" in at.number_input(key="pool").help


def test_tables_keep_a_rates_precision_as_a_percentage():
    from ui.views import _display

    frame = pd.DataFrame({"rate": [0.0152, 0.0029], "coefficient_used": [0.123456, 0.7], "pay": [63718.149, 1.0],
                          "rank": [1, 2]})
    table, config = _display(frame, "zh", None)
    cols = table.to_pydict()
    assert cols["客户利率"] == [1.52, 0.29]                 # shown as 1.52% and 0.29%, never 0.02 and 0
    assert config["客户利率"]["type_config"]["format"] == "%.2f%%"
    assert cols["关联度系数"][0] == 0.123456 and config["关联度系数"]["type_config"]["format"] == "%.4f"
    assert cols["绩效工资"][0] == 63718.15 and config["绩效工资"]["type_config"]["format"] == "localized"
    assert config["排名"]["type_config"]["format"] == "%d"


def test_xlsx_exports_format_rates_as_percent_and_ranks_as_integers(tmp_path):
    import openpyxl

    from data.export import labelled, write_workbook

    frame = labelled(pd.DataFrame({"rate": [0.0152], "coefficient_used": [0.7], "pay": [63718.149], "rank": [1]}))
    path = tmp_path / "x.xlsx"
    write_workbook({"s": frame}, path)
    ws = openpyxl.load_workbook(path).active
    cells = {ws.cell(1, c).value: ws.cell(2, c) for c in range(1, 5)}  # 客户利率, 关联度系数, 绩效工资, 排名
    assert cells["客户利率"].value == 0.0152 and cells["客户利率"].number_format == "0.00%"
    assert cells["关联度系数"].number_format == "0.0000"
    assert cells["绩效工资"].number_format == "#,##0.00"
    assert cells["排名"].value == 1 and cells["排名"].number_format == "#,##0"


def test_the_users_page_picks_branches_and_managers_from_the_data(seeded_store):
    from tests.apptest import app

    at = app("pages/admin.py", "zh").run()
    assert not at.exception, [e.value for e in at.exception]
    branches = at.selectbox(key="new_branch").options
    # the sample bank's branches, nothing typed by hand (城东 alone is not one of them)
    assert "城东支行" in branches and "城东" not in branches
    assert any(o.startswith("RM2447 ") for o in at.selectbox(key="new_manager_id").options)
