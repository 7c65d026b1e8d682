"""Customers 客户: whale curve, value tiers, relationship levels, lifetime value, unattributed.

Only the coefficient levers (role weights, stock factor) change this page, and only its
unattributed figures; the segments come from the data. So the charts are built once per
dataset and baseline, and the unattributed table once per coefficient setting.
"""

import math

import numpy as np

import streamlit as st

from calc.segments import whale_curve
from ui import charts, views
from ui import published
from ui.formats import money
from ui.frame import COEFFICIENT_LEVERS, frame, whatif

ctx = frame("page_customers")
published.serve(ctx, published.customers)   # branch heads and managers: published results only


def draw(ctx):
    """What the what-if panel changes: the page below the frame."""
    w, lang = ctx.result.whale, ctx.lang

    k = views.side_by_side(4)
    pct = lambda x: "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.0%}"
    k[0].metric(ctx.t("top20_share"), pct(w["top20_share"]), help=ctx.t("help_top20"))
    k[1].metric(ctx.t("bottom30_share"), pct(w["bottom30_share"]), help=ctx.t("help_bottom30"))
    k[2].metric(ctx.t("loss_makers"), f"{w['loss_makers']:,}", help=ctx.t("help_loss_makers"))
    k[3].metric(ctx.t("unattributed"), money(ctx.result.totals["unattributed"]), help=ctx.t("help_unattributed"))


    def segment_figures():
        c = ctx.baseline_result.customers          # tiers, levels, lifetime value: the same in every what-if
        return (charts.whale_figure(whale_curve(c["total"]), w, lang), charts.tier_figure(c, lang),
                charts.relationship_figure(c, lang), charts.ltv_figure(c, ctx.scenario.acquisition_cost, lang))


    whale, tiers, relationship, ltv = ctx.memo_on((), ("customer_figures", lang), segment_figures)
    st.plotly_chart(whale, key="whale")
    left, right = views.side_by_side(2)
    left.plotly_chart(tiers, key="tiers")
    right.plotly_chart(relationship, key="relationship")
    st.plotly_chart(ltv, key="ltv")


    def unattributed():
        """Positions of the customers with unattributed contribution, the largest (in absolute yuan) first."""
        c = ctx.result.customers
        rows = np.flatnonzero(c["coef_sum"].to_numpy() < 1 - 1e-9)
        size = np.abs(c["unattributed"].to_numpy()[rows])
        return c, rows[np.argsort(-size, kind="stable")]


    st.subheader(ctx.t("unattributed_customers"))
    customers, order = ctx.memo_on(COEFFICIENT_LEVERS, "unattributed_customers", unattributed)
    COLS = ["customer_id", "name", "branch", "total", "coef_sum", "attributed", "unattributed", "tier"]
    views.show(customers, lang, key="unattributed_table", order=order, columns=COLS,
               labels={"tier": lambda s: views.tier_label(s, lang)}, search=("customer_id", "name", "branch"))


whatif(ctx, draw)
