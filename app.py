"""Overview 总览: the landing page. `make run` serves this file; pages/ holds the other screens."""

import streamlit as st

_starting = st.empty()           # the first start imports the calculation (~5 s): say so, not a blank page
_starting.info("正在启动绩效 Jixiao，请稍候… / Starting Jixiao, one moment…")

from ui import published  # noqa: E402  (after the message: these imports are the wait)
from ui.formats import money, with_unit  # noqa: E402
from ui.frame import COEFFICIENT_LEVERS, frame, whatif  # noqa: E402
from ui import charts, views  # noqa: E402

_starting.empty()
ctx = frame("page_overview")
published.serve(ctx, published.overview)   # branch heads and managers: published results only


def draw(ctx):
    """What the what-if panel changes: the page below the frame."""
    r, tot = ctx.result, ctx.result.totals

    c = views.side_by_side(5)
    wan = lambda key: with_unit(ctx.t(key), "wan", ctx.lang)        # large totals in 万元, to the hundred yuan
    c[0].metric(wan("total_contribution"), money(tot["contribution"], unit="wan"), help=money(tot["contribution"]) + " 元")
    c[1].metric(wan("attributed"), money(tot["attributed"], unit="wan"), help=money(tot["attributed"]) + " 元")
    c[2].metric(wan("unattributed"), money(tot["unattributed"], unit="wan"), help=money(tot["unattributed"]) + " 元")
    pay_delta = tot["pay"] - ctx.baseline_result.totals["pay"]
    c[3].metric(with_unit(ctx.t("total_pay"), "yuan", ctx.lang), money(tot["pay"]),
                delta=money(pay_delta) if abs(pay_delta) >= 0.005 else None)
    c[4].metric(ctx.t("managers_n"), f"{len(r.managers):,}", help=f"{ctx.t('customers_n')}: {r.whale['n']:,}")
    if views.reconciles(ctx):
        st.caption(ctx.t("reconciles"))

    left, right = views.side_by_side(2)
    # contribution and attribution move with the coefficient levers only; pay with every lever
    left.plotly_chart(ctx.memo_on(COEFFICIENT_LEVERS, ("waterfall", ctx.lang), lambda: charts.waterfall_figure(tot, ctx.lang)),
                      key="waterfall")
    right.plotly_chart(ctx.memo(("paypool", ctx.lang), lambda: charts.pay_pool_figure(tot, ctx.lang)), key="paypool")
    left, right = st.columns(2)
    left.plotly_chart(ctx.memo_on(COEFFICIENT_LEVERS, ("grades", ctx.lang), lambda: charts.grade_figure(r.managers, ctx.lang)),
                      key="grades")
    with right:
        top, bottom = views.top_bottom(ctx, 5)
        grades = {"grade": lambda g: views.grade_label(g, ctx.lang)}
        st.subheader(ctx.t("top_managers"))
        views.show(r.managers, ctx.lang, order=top, columns=views.TOP_COLUMNS, labels=grades)
        st.subheader(ctx.t("bottom_managers"))
        views.show(r.managers, ctx.lang, order=bottom, columns=views.TOP_COLUMNS, labels=grades)


whatif(ctx, draw)
