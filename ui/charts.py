"""Chart builders: plain functions ``frame in -> go.Figure out`` that tests can call.

Built with ``plotly.graph_objects`` (about 8x cheaper than plotly.express per figure,
MEASURED.md). Labels come in through ``lang``; no Streamlit here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from calc.light import GRADE_ORDER
from calc.segments import TIER_ORDER
from ui.i18n import t

__all__ = ["waterfall_figure", "pay_pool_figure", "grade_figure", "ranking_figure", "whale_figure", "tier_figure",
           "relationship_figure", "ltv_figure", "radar_figure", "pay_by_line_figure", "slope_figure", "grade_history_figure",
           "history_figure", "BRANCH_COLORS"]

BRANCH_COLORS = ["#B22222", "#1F77B4", "#2CA02C", "#FF7F0E", "#9467BD", "#8C564B", "#E377C2", "#17BECF"]
GRADE_COLORS = {"senior": "#1B5E20", "advanced": "#43A047", "manager": "#FBC02D", "assistant": "#FB8C00",
                "unrated": "#9E9E9E"}


def _layout(fig: go.Figure, title: str, height: int = 380) -> go.Figure:
    fig.update_layout(title=title, height=height, margin=dict(l=40, r=20, t=50, b=40), template="plotly_white",
                      legend=dict(orientation="h", y=-0.15))
    return fig


def waterfall_figure(totals: dict, lang: str = "zh") -> go.Figure:
    """Contribution by line, summed, then split into attributed and unattributed (yuan)."""
    lines = ["asset", "liability", "intermediate", "risk"]
    x = [t(k, lang) for k in lines] + [t("total_contribution", lang), t("attributed", lang), t("unattributed", lang)]
    y = [totals[f"contribution_{k}"] for k in lines] + [totals["contribution"], totals["attributed"],
                                                        totals["unattributed"]]
    measure = ["relative"] * 4 + ["total", "absolute", "absolute"]
    fig = go.Figure(go.Waterfall(x=x, y=y, measure=measure, text=[f"{v:,.0f}" for v in y], textposition="outside",
                                 connector={"line": {"color": "#999"}}))
    return _layout(fig, t("contribution_waterfall", lang))


def pay_pool_figure(totals: dict, lang: str = "zh") -> go.Figure:
    """Factor-method pay total and points-method pay total against the pool (yuan)."""
    x = [t("total_pay", lang), t("points_pay_total", lang), t("pool_label", lang)]
    y = [totals["pay"], totals["points_pay"], totals["pool"]]
    fig = go.Figure(go.Bar(x=x, y=y, text=[f"{v:,.0f}" for v in y], textposition="outside",
                           marker_color=["#B22222", "#1F77B4", "#BBBBBB"]))
    return _layout(fig, t("pay_vs_pool", lang))


def grade_figure(managers: pd.DataFrame, lang: str = "zh") -> go.Figure:
    """Number of managers per grade, best grade first."""
    counts = managers["grade"].value_counts().reindex(GRADE_ORDER, fill_value=0)
    fig = go.Figure(go.Bar(x=[t(f"grade_{g}", lang) for g in GRADE_ORDER], y=counts.to_numpy(),
                           marker_color=[GRADE_COLORS[g] for g in GRADE_ORDER], text=counts.to_numpy(),
                           textposition="outside"))
    return _layout(fig, t("grade_distribution", lang))


def grade_history_figure(history: pd.DataFrame, lang: str = "zh") -> go.Figure:
    """Managers per grade in each published period (stacked, best grade first)."""
    counts = (history.groupby(["period", "grade"]).size().unstack(fill_value=0)
              .reindex(columns=list(GRADE_ORDER), fill_value=0))
    fig = go.Figure([go.Bar(x=counts.index, y=counts[g], name=t(f"grade_{g}", lang), marker_color=GRADE_COLORS[g])
                     for g in GRADE_ORDER])
    fig.update_layout(barmode="stack", height=360, template="plotly_white")
    return fig


def ranking_figure(managers: pd.DataFrame, value: str = "pay", lang: str = "zh") -> go.Figure:
    """One bar per manager (best first), coloured by branch."""
    m = managers.sort_values([value, "manager_id"], ascending=[False, True])
    fig = go.Figure()
    for i, (branch, part) in enumerate(m.groupby("branch", sort=True)):
        fig.add_trace(go.Bar(x=part["name"] + " " + part["manager_id"], y=part[value], name=str(branch),
                             marker_color=BRANCH_COLORS[i % len(BRANCH_COLORS)]))
    fig.update_xaxes(categoryorder="array", categoryarray=list(m["name"] + " " + m["manager_id"]))
    return _layout(fig, t("ranking_chart", lang), height=420)


def whale_figure(curve: pd.DataFrame, whale: dict, lang: str = "zh") -> go.Figure:
    """Cumulative profit share against customer share, with the 20 % / 80 % / 30 % marks."""
    fig = go.Figure(go.Scatter(x=curve["customer_share"], y=curve["profit_share"], mode="lines",
                               name=t("whale_curve", lang), line=dict(color="#B22222", width=3)))
    fig.add_vline(x=0.2, line_dash="dash", line_color="#555", annotation_text="20%")
    fig.add_vline(x=0.7, line_dash="dot", line_color="#555", annotation_text="30% ↘")
    fig.add_hline(y=0.8, line_dash="dash", line_color="#999", annotation_text="80%")
    fig.add_hline(y=1.0, line_color="#CCC")
    fig.update_xaxes(title=t("customers_axis", lang), tickformat=".0%")
    fig.update_yaxes(title=t("profit_axis", lang), tickformat=".0%")
    return _layout(fig, t("whale_curve", lang), height=420)


def tier_figure(customers: pd.DataFrame, lang: str = "zh") -> go.Figure:
    """Customers and contribution per value tier."""
    g = customers.groupby("tier")["total"].agg(["count", "sum"]).reindex(TIER_ORDER, fill_value=0)
    labels = [t(f"tier_{k}", lang) for k in TIER_ORDER]
    fig = go.Figure([go.Bar(x=labels, y=g["count"], name=t("customers_n", lang), yaxis="y"),
                     go.Scatter(x=labels, y=g["sum"], name=t("total_contribution", lang), yaxis="y2",
                                mode="lines+markers")])
    fig.update_layout(yaxis2=dict(overlaying="y", side="right", showgrid=False))
    return _layout(fig, t("value_tiers", lang))


def relationship_figure(customers: pd.DataFrame, lang: str = "zh") -> go.Figure:
    """Customers per relationship level (1 potential ... 5 dependent)."""
    counts = customers["relationship_level"].value_counts().reindex([1, 2, 3, 4, 5], fill_value=0)
    fig = go.Figure(go.Bar(x=[f"{k} {t(f'rel_{k}', lang)}" for k in counts.index], y=counts.to_numpy(),
                           marker_color="#1F77B4", text=counts.to_numpy(), textposition="outside"))
    return _layout(fig, t("relationship_levels", lang))


def ltv_figure(customers: pd.DataFrame, acquisition_cost: float, lang: str = "zh", bins: int = 40) -> go.Figure:
    """Distribution of customer lifetime value (binned, so the payload stays small) and the cost line."""
    v = customers["ltv"].to_numpy(dtype=float)
    if len(v):
        lo, hi = np.percentile(v, [1, 99])
        lo, hi = min(lo, acquisition_cost), max(hi, acquisition_cost)
        counts, edges = np.histogram(np.clip(v, lo, hi), bins=bins, range=(lo, hi if hi > lo else lo + 1))
    else:
        counts, edges = np.zeros(0), np.zeros(1)
    mids = (edges[:-1] + edges[1:]) / 2
    colors = ["#2CA02C" if m >= acquisition_cost else "#B22222" for m in mids]
    fig = go.Figure(go.Bar(x=mids, y=counts, marker_color=colors, name=t("customers_n", lang)))
    fig.add_vline(x=acquisition_cost, line_dash="dash", annotation_text=t("acquisition_cost", lang))
    return _layout(fig, t("ltv_title", lang))


def radar_figure(perspectives: dict, branch_avg: dict, name: str, lang: str = "zh") -> go.Figure:
    """Points per balanced-scorecard perspective, manager against the branch average."""
    keys = ["financial", "customer", "internal", "learning"]
    theta = [t(f"persp_{k}", lang) for k in keys]
    fig = go.Figure([
        go.Scatterpolar(r=[perspectives[k] for k in keys] + [perspectives[keys[0]]], theta=theta + theta[:1],
                        fill="toself", name=name),
        go.Scatterpolar(r=[branch_avg[k] for k in keys] + [branch_avg[keys[0]]], theta=theta + theta[:1],
                        fill="toself", name=t("branch_average", lang), opacity=0.5),
    ])
    return _layout(fig, t("radar_title", lang), height=420)


def pay_by_line_figure(lines: pd.DataFrame, lang: str = "zh") -> go.Figure:
    """One manager's pay built up from each line: the ``lines`` of
    :func:`calc.explain.manager_chain` (``line``, ``pay`` = factor × attributed contribution, yuan)."""
    vals = [float(v) for v in lines["pay"]]
    fig = go.Figure(go.Waterfall(x=[t(k, lang) for k in lines["line"]] + [t("total", lang)], y=vals + [sum(vals)],
                                 measure=["relative"] * 4 + ["total"], text=[f"{v:,.2f}" for v in vals + [sum(vals)]],
                                 textposition="outside"))
    return _layout(fig, t("pay_by_line", lang), height=340)


def slope_figure(a: pd.DataFrame, b: pd.DataFrame, label_a: str, label_b: str, lang: str = "zh",
                 limit: int = 60) -> go.Figure:
    """Rank in A against rank in B for every manager (lines for those who move)."""
    m = a[["manager_id", "name", "rank"]].merge(b[["manager_id", "rank"]], on="manager_id", suffixes=("_a", "_b"))
    m["move"] = (m["rank_a"] - m["rank_b"]).abs()
    m = m.sort_values(["move", "rank_a"], ascending=[False, True]).head(limit)
    fig = go.Figure()
    for _, r in m.iterrows():
        color = "#2CA02C" if r["rank_b"] < r["rank_a"] else "#B22222" if r["rank_b"] > r["rank_a"] else "#BBBBBB"
        fig.add_trace(go.Scatter(x=[label_a, label_b], y=[r["rank_a"], r["rank_b"]], mode="lines+markers",
                                 line=dict(color=color), name=f"{r['name']} {r['manager_id']}", showlegend=False,
                                 hovertemplate=f"{r['name']}: {r['rank_a']} → {r['rank_b']}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title=t("page_rankings", lang))
    return _layout(fig, t("slope_title", lang), height=480)


def history_figure(history: pd.DataFrame, value: str, lang: str = "zh") -> go.Figure:
    """One manager's ``value`` (rank, pay, score) across published periods."""
    fig = go.Figure(go.Scatter(x=history["period"], y=history[value], mode="lines+markers"))
    if value == "rank":
        fig.update_yaxes(autorange="reversed")
    return _layout(fig, value, height=320)
