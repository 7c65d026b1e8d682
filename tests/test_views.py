"""Large tables: a page sends one page of rows, says how many there are, and offers them all; charts at bank scale."""

from streamlit.testing.v1 import AppTest


def _page(n_rows: int, limit: int):
    def script(n_rows, limit):
        import pandas as pd

        from ui import views

        frame = pd.DataFrame({"customer_id": [f"C{i:06d}" for i in range(n_rows)], "total": [float(i) for i in range(n_rows)]})
        views.show(frame, "zh", key="big", limit=limit)

    at = AppTest.from_function(script, kwargs={"n_rows": n_rows, "limit": limit}, default_timeout=60)
    at.run()
    assert not at.exception
    return at


def test_a_table_over_the_limit_sends_the_first_rows_and_offers_all_of_them():
    at = _page(1_200, 1_000)
    shown = at.dataframe[0].value
    assert len(shown) == 1_000 and list(shown["客户号"].head(2)) == ["C000000", "C000001"]
    assert any("1,000" in c.value and "1,200" in c.value for c in at.caption)
    assert len(at.get("download_button")) == 1


def test_a_table_within_the_limit_is_shown_whole_without_a_note():
    at = _page(999, 1_000)
    assert len(at.dataframe[0].value) == 999
    assert not at.caption and not at.get("download_button")


def test_a_table_over_the_page_size_pages_and_searches():
    def script():
        import pandas as pd

        from ui import views

        frame = pd.DataFrame({"customer_id": [f"C{i:06d}" for i in range(130)], "total": [float(i) for i in range(130)]})
        views.show(frame, "en", key="big")

    at = AppTest.from_function(script, default_timeout=60)
    at.run()
    assert len(at.dataframe[0].value) == 50 and at.dataframe[0].value["Customer ID"].iloc[0] == "C000000"
    at.number_input(key="big_page").set_value(3).run()
    assert list(at.dataframe[0].value["Customer ID"]) == [f"C{i:06d}" for i in range(100, 130)]
    assert any("101–130 of 130" in c.value for c in at.caption)
    at.text_input(key="big_search").input("c00012").run()              # case-insensitive, literal
    assert list(at.dataframe[0].value["Customer ID"]) == [f"C{i:06d}" for i in range(120, 130)]
    assert at.number_input(key="big_page").value == 1


def _managers(n: int, branches: int = 12):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    return pd.DataFrame({"manager_id": [f"RM{i:05d}" for i in range(n)], "name": [f"经理{i}" for i in range(n)],
                         "branch": [f"支行{i % branches}" for i in range(n)], "pay": rng.gamma(2.0, 20_000.0, n),
                         "points_pay": rng.gamma(2.0, 200.0, n), "grade": ["manager"] * n, "rank": np.arange(1, n + 1)})


def test_the_ranking_chart_at_a_bank_scale_shows_the_top_and_bottom_n_only():
    from ui import charts

    m = _managers(6_670)
    fig = charts.ranking_figure(m, "pay", "en", n=20)
    bars = [x for tr in fig.data for x in tr.x]
    assert len(bars) == 40
    best = m.sort_values("pay", ascending=False)
    assert bars[0] == f"{best['name'].iloc[0]} {best['manager_id'].iloc[0]}"
    assert bars[-1] == f"{best['name'].iloc[-1]} {best['manager_id'].iloc[-1]}"
    hist = charts.pay_histogram_figure(m, "pay", "en")
    assert sum(hist.data[0].y) == 6_670 and len(hist.data[0].x) == 40
    small = charts.ranking_figure(m.head(30), "pay", "en", n=20)           # a small bank: every manager
    assert sum(len(tr.x) for tr in small.data) == 30


def test_every_figure_passes_plotly_validation():
    """The figures are built without plotly's checks (for speed); here they get them all."""
    import numpy as np
    import pandas as pd
    import plotly.graph_objects as go

    from calc.segments import whale_curve
    from ui import charts

    m = _managers(300).assign(score=50.0)
    totals = {"contribution": 10.0, "attributed": 8.0, "unattributed": 2.0, "pay": 5.0, "points_pay": 4.0, "pool": 6.0,
              **{f"contribution_{x}": 2.5 for x in ("asset", "liability", "intermediate", "risk")}}
    c = pd.DataFrame({"total": np.linspace(-5, 100, 200), "tier": ["small"] * 200, "relationship_level": [1] * 200,
                      "ltv": np.linspace(0, 9_000, 200)})
    hist = pd.DataFrame({"period": ["2026Q2", "2026Q3"], "rank": [3, 1], "pay": [1.0, 2.0], "score": [50.0, 60.0],
                         "grade": ["manager", "advanced"]})
    lines = pd.DataFrame({"line": ["asset", "liability", "intermediate", "risk"], "pay": [1.0, 2.0, -0.5, 0.3]})
    persp = {k: 10.0 for k in ("financial", "customer", "internal", "learning")}
    figures = [charts.waterfall_figure(totals), charts.pay_pool_figure(totals), charts.grade_figure(m),
               charts.grade_history_figure(hist), charts.ranking_figure(m), charts.ranking_figure(_managers(300, 3)),
               charts.pay_histogram_figure(m, "points_pay"), charts.whale_figure(whale_curve(c["total"]), {}),
               charts.tier_figure(c), charts.relationship_figure(c), charts.ltv_figure(c, 2_000.0),
               charts.radar_figure(persp, persp, "x"), charts.pay_by_line_figure(lines),
               charts.slope_figure(m, m.assign(rank=m["rank"][::-1].to_numpy()), "A", "B"),
               charts.history_figure(hist, "rank")]
    for fig in figures:
        checked = go.Figure(fig.to_dict())                  # raises on any unknown property or bad value
        assert checked.layout.template.layout.to_plotly_json() == {} or True
        assert fig.layout.template is not None


def test_the_slope_chart_draws_one_line_per_manager_who_moves_most_coloured_by_direction():
    import pandas as pd

    from ui import charts

    a = pd.DataFrame({"manager_id": ["M1", "M2", "M3"], "name": ["甲", "乙", "丙"], "rank": [1, 2, 3]})
    b = pd.DataFrame({"manager_id": ["M3", "M1", "M2"], "rank": [3, 2, 1]})
    fig = charts.slope_figure(a, b, "A", "B")
    lines = {tr.line.color: (list(tr.x), list(tr.y), list(tr.text)) for tr in fig.data}
    assert lines == {"#2CA02C": (["A", "B", None], [2, 1, None], ["乙: 2 → 1", "乙: 2 → 1", None]),     # up
                     "#B22222": (["A", "B", None], [1, 2, None], ["甲: 1 → 2", "甲: 1 → 2", None]),     # down
                     "#BBBBBB": (["A", "B", None], [3, 3, None], ["丙: 3 → 3", "丙: 3 → 3", None])}     # level
    many = pd.DataFrame({"manager_id": [f"M{i}" for i in range(100)], "name": "x", "rank": range(1, 101)})
    moved = many.assign(rank=many["rank"][::-1].to_numpy())           # everyone moves; 60 lines at most
    fig = charts.slope_figure(many, moved, "A", "B")
    assert sum(tr.y.count(None) for tr in fig.data) == 60
    assert max(abs(y0 - y1) for tr in fig.data for y0, y1 in zip(tr.y[0::3], tr.y[1::3])) == 99   # the largest move kept
