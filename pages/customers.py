"""Customers 客户: whale curve, value tiers, relationship levels, lifetime value, unattributed."""

import math

import streamlit as st

from calc.segments import whale_curve
from ui import charts, views
from ui import published
from ui.frame import frame

ctx = frame("page_customers")
published.serve(ctx, published.customers)   # branch heads and managers: published results only
c, w = ctx.result.customers, ctx.result.whale

k = st.columns(4)
pct = lambda x: "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.0%}"
k[0].metric(ctx.t("top20_share"), pct(w["top20_share"]))
k[1].metric(ctx.t("bottom30_share"), pct(w["bottom30_share"]))
k[2].metric(ctx.t("loss_makers"), f"{w['loss_makers']:,}")
k[3].metric(ctx.t("unattributed"), f"{ctx.result.totals['unattributed']:,.0f}")

st.plotly_chart(charts.whale_figure(whale_curve(c["total"]), w, ctx.lang), key="whale")
left, right = st.columns(2)
left.plotly_chart(charts.tier_figure(c, ctx.lang), key="tiers")
right.plotly_chart(charts.relationship_figure(c, ctx.lang), key="relationship")
st.plotly_chart(charts.ltv_figure(c, ctx.scenario.acquisition_cost, ctx.lang), key="ltv")

st.subheader(ctx.t("unattributed_customers"))
un = c[c["coef_sum"] < 1 - 1e-9].sort_values("unattributed", key=abs, ascending=False)
cols = ["customer_id", "name", "branch", "total", "coef_sum", "attributed", "unattributed", "tier"]
views.show(un[cols].assign(tier=views.tier_label(un["tier"], ctx.lang)), ctx.lang, key="unattributed_table")
