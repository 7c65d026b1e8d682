"""Overview 总览: the landing page. `make run` serves this file; pages/ holds the other screens."""

import streamlit as st

from ui import published
from ui.frame import COEFFICIENT_LEVERS, frame
from ui import charts, views

ctx = frame("page_overview")
published.serve(ctx, published.overview)   # branch heads and managers: published results only
r, tot = ctx.result, ctx.result.totals

c = st.columns(5)
c[0].metric(ctx.t("total_contribution"), f"{tot['contribution']:,.0f}")
c[1].metric(ctx.t("attributed"), f"{tot['attributed']:,.0f}")
c[2].metric(ctx.t("unattributed"), f"{tot['unattributed']:,.0f}")
pay_delta = tot["pay"] - ctx.baseline_result.totals["pay"]
c[3].metric(ctx.t("total_pay"), f"{tot['pay']:,.0f}", delta=f"{pay_delta:,.0f}" if abs(pay_delta) >= 0.5 else None)
c[4].metric(ctx.t("managers_n"), f"{len(r.managers):,}", help=f"{ctx.t('customers_n')}: {r.whale['n']:,}")
if views.reconciles(ctx):
    st.caption(ctx.t("reconciles"))

left, right = st.columns(2)
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
