"""Chart builders: plain functions ``frame in -> go.Figure out`` that tests can call.

Each figure is written as plotly's own JSON layout (traces and layout as dicts) and wrapped in a
``plotly.graph_objects.Figure`` without plotly's per-property checks: ~0.3 ms a figure where
building it through the graph-object API costs 5-15 ms (plotly.express ~24 ms, MEASURED.md),
which a slider move pays on every chart. tests/test_views.py validates every figure with
plotly's checks. The template "none" leaves the look to Streamlit's theme and keeps plotly's
default template (~6 KB) out of the JSON sent on every rerun. Labels come in through ``lang``;
no Streamlit here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from calc.light import GRADE_ORDER
from calc.segments import TIER_ORDER
from ui.formats import money_ticks, short_money, with_unit
from ui.i18n import t

__all__ = ["waterfall_figure", "pay_pool_figure", "grade_figure", "ranking_figure", "pay_histogram_figure", "whale_figure", "tier_figure",
           "relationship_figure", "ltv_figure", "radar_figure", "pay_by_line_figure", "slope_figure", "grade_history_figure",
           "history_figure", "BRANCH_COLORS"]

BRANCH_COLORS = ["#B22222", "#1F77B4", "#2CA02C", "#FF7F0E", "#9467BD", "#8C564B", "#E377C2", "#17BECF"]
GRADE_COLORS = {"senior": "#1B5E20", "advanced": "#43A047", "manager": "#FBC02D", "assistant": "#FB8C00",
                "unrated": "#9E9E9E"}
RANK_BARS = 20      # a ranking chart shows every manager up to 2 x this many, else the best and worst this many


def _list(values) -> list:
    """Plain Python numbers or text for the JSON (numpy and pandas values as lists)."""
    return np.asarray(values).tolist()


def _figure(traces: list, title: str | dict, height: int = 380, **layout) -> go.Figure:
    """A figure from plain trace and layout dicts (``title``: its text, or its layout dict)."""
    spec = {"title": title if isinstance(title, dict) else {"text": title}, "height": height, "margin": {"l": 60, "r": 20, "t": 60, "b": 40},
            "template": "none", "legend": {"orientation": "h", "y": -0.15}, **layout}
    for axis in ("xaxis", "yaxis"):
        spec.setdefault(axis, {}).setdefault("automargin", True)     # long tick labels never cut off
    empty = not any(len(tr.get("x", tr.get("r", tr.get("y", ()))) or ()) for tr in traces)
    if empty:                                                        # a clear empty state, not blank axes
        spec["annotations"] = [*spec.get("annotations", []), {
            "text": t("no_data", spec.pop("_lang", "zh")), "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5,
            "showarrow": False, "font": {"size": 16, "color": "#888"}}]
        spec["xaxis"]["visible"] = spec["yaxis"]["visible"] = False
    spec.pop("_lang", None)
    return go.Figure({"data": traces, "layout": spec}, _validate=False)


def _money_axis(values, label: str, lang: str, **more) -> dict:
    """A money axis: its title with the unit (元 / yuan) and round ticks in 万 / 亿 (K / M / B)."""
    return {"title": {"text": with_unit(label, "yuan", lang)}, **money_ticks(values, lang), **more}


def _count_axis(label: str, unit: str, lang: str, **more) -> dict:
    """A count axis: whole numbers only, titled with its unit."""
    return {"title": {"text": with_unit(label, unit, lang)}, "tickformat": ",d", "rangemode": "tozero", **more}


def _vline(x: float, dash: str = "dash", color: str = "#555", text: str | None = None) -> tuple[dict, list]:
    """A vertical line across the plot (shape) and its label (annotation)."""
    shape = {"type": "line", "xref": "x", "yref": "paper", "x0": x, "x1": x, "y0": 0, "y1": 1,
             "line": {"dash": dash, "color": color}}
    notes = [{"x": x, "xref": "x", "y": 1, "yref": "paper", "text": text, "showarrow": False, "xanchor": "left",
              "yanchor": "top"}] if text else []
    return shape, notes


def _hline(y: float, dash: str = "solid", color: str = "#999", text: str | None = None) -> tuple[dict, list]:
    """A horizontal line across the plot (shape) and its label (annotation)."""
    shape = {"type": "line", "xref": "paper", "yref": "y", "x0": 0, "x1": 1, "y0": y, "y1": y,
             "line": {"dash": dash, "color": color}}
    notes = [{"x": 1, "xref": "paper", "y": y, "yref": "y", "text": text, "showarrow": False, "xanchor": "right",
              "yanchor": "bottom"}] if text else []
    return shape, notes


def waterfall_figure(totals: dict, lang: str = "zh") -> go.Figure:
    """Contribution by line, summed, then split into attributed and unattributed (yuan)."""
    lines = ["asset", "liability", "intermediate", "risk"]
    x = [t(k, lang) for k in lines] + [t("total_contribution", lang), t("attributed", lang), t("unattributed", lang)]
    y = [float(totals[f"contribution_{k}"]) for k in lines] + [float(totals["contribution"]), float(totals["attributed"]),
                                                               float(totals["unattributed"])]
    measure = ["relative"] * 4 + ["total", "absolute", "absolute"]
    running = np.cumsum(y[:4]).tolist() + y[4:]
    return _figure([{"type": "waterfall", "x": x, "y": y, "measure": measure, "text": [short_money(v, lang) for v in y],
                     "textposition": "outside", "connector": {"line": {"color": "#999"}}}],
                   t("contribution_waterfall", lang), _lang=lang,
                   yaxis=_money_axis([0, *running, *y], t("total_contribution", lang), lang))


def pay_pool_figure(totals: dict, lang: str = "zh") -> go.Figure:
    """Factor-method pay total and points-method pay total against the pool (yuan)."""
    x = [t("total_pay", lang), t("points_pay_total", lang), t("pool_label", lang)]
    y = [float(totals["pay"]), float(totals["points_pay"]), float(totals["pool"])]
    return _figure([{"type": "bar", "x": x, "y": y, "text": [short_money(v, lang) for v in y], "textposition": "outside",
                     "marker": {"color": ["#B22222", "#1F77B4", "#BBBBBB"]}}], t("pay_vs_pool", lang), _lang=lang,
                   yaxis=_money_axis([0, *y], t("total_pay", lang), lang))


def grade_figure(managers: pd.DataFrame, lang: str = "zh") -> go.Figure:
    """Number of managers per grade, best grade first."""
    counts = _list(managers["grade"].value_counts().reindex(GRADE_ORDER, fill_value=0))
    return _figure([{"type": "bar", "x": [t(f"grade_{g}", lang) for g in GRADE_ORDER], "y": counts,
                     "marker": {"color": [GRADE_COLORS[g] for g in GRADE_ORDER]}, "text": counts,
                     "textposition": "outside"}], t("grade_distribution", lang), _lang=lang,
                   yaxis=_count_axis(t("managers_n", lang), "people", lang))


def grade_history_figure(history: pd.DataFrame, lang: str = "zh") -> go.Figure:
    """Managers per grade in each published period (stacked, best grade first)."""
    counts = (history.groupby(["period", "grade"]).size().unstack(fill_value=0)
              .reindex(columns=list(GRADE_ORDER), fill_value=0))
    traces = [{"type": "bar", "x": _list(counts.index.astype(str)), "y": _list(counts[g]), "name": t(f"grade_{g}", lang),
               "marker": {"color": GRADE_COLORS[g]}} for g in GRADE_ORDER]
    return _figure(traces, t("branch_over_time", lang), height=360, barmode="stack", _lang=lang,
                   xaxis={"type": "category", "title": {"text": t("period_axis", lang)}},
                   yaxis=_count_axis(t("managers_n", lang), "people", lang),
                   legend={"orientation": "h", "y": 1.12, "x": 0})


def ranking_figure(managers: pd.DataFrame, value: str = "pay", lang: str = "zh", n: int = RANK_BARS) -> go.Figure:
    """One bar per manager (best first), coloured by branch; with more than ``2 n`` managers only
    the best ``n`` and the worst ``n`` (a dotted line between them), so 6,000 managers stay
    readable and the figure small. :func:`pay_histogram_figure` shows everyone's distribution."""
    v = managers[value].to_numpy(dtype=float)
    many = len(v) > 2 * n

    def take(column: str, rows: np.ndarray) -> np.ndarray:     # text of some rows, not the whole column
        return np.asarray(managers[column].array.take(rows), dtype=object).astype(str)

    def ranked(rows: np.ndarray) -> np.ndarray:         # best first, ties by manager id
        return rows[np.lexsort((take("manager_id", rows), -v[rows]))]

    if many:         # sort only the candidates: values at or beyond the n-th best and the n-th worst
        top = ranked(np.flatnonzero(v >= np.partition(v, len(v) - n)[len(v) - n]))[:n]
        bottom = ranked(np.flatnonzero(v <= np.partition(v, n - 1)[n - 1]))[-n:]
        order = np.concatenate([top, bottom])
    else:
        order = ranked(np.arange(len(v)))
    labels = np.char.add(np.char.add(take("name", order), " "), take("manager_id", order)).astype(object)
    values, branches = v[order], take("branch", order)
    every = sorted(str(b) for b in managers["branch"].unique())       # a branch keeps its colour move after move
    if len(every) <= len(BRANCH_COLORS):
        traces = [{"type": "bar", "x": _list(labels[branches == b]), "y": _list(values[branches == b]), "name": b,
                   "marker": {"color": BRANCH_COLORS[i]}} for i, b in enumerate(every) if (branches == b).any()]
    else:          # more branches than colours: one trace, the branch in the hover text
        traces = [{"type": "bar", "x": _list(labels), "y": _list(values), "hovertext": _list(branches),
                   "name": t("branch", lang), "marker": {"color": BRANCH_COLORS[0]}}]
    # the legend above the plot (up to three rows of branches in half a page), under the title pinned
    # to the top, and the names at 45 degrees with their own margin: never on top of each other
    layout = {"xaxis": {"categoryorder": "array", "categoryarray": _list(labels), "tickangle": -45,
                        "automargin": True},
              "yaxis": _money_axis([0, *values], t(f"pay_method_{'points' if value == 'points_pay' else 'factor'}",
                                                   lang), lang),
              "legend": {"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0, "title": {"text": t("branch", lang)}},
              "margin": {"l": 60, "r": 20, "t": 150, "b": 40}}
    title = t("ranking_chart", lang)
    if many:
        title = t("ranking_chart_top_bottom", lang, n=n, total=f"{len(managers):,}")
        layout["shapes"] = [_vline(n - 0.5, dash="dot", color="#888")[0]]
    title = {"text": title, "yref": "container", "y": 1, "yanchor": "top", "pad": {"t": 26}}     # under the toolbar
    return _figure(traces, title, height=520, _lang=lang, **layout)


def pay_histogram_figure(managers: pd.DataFrame, value: str = "pay", lang: str = "zh", bins: int = 40) -> go.Figure:
    """How many managers earn how much: ``value`` binned (``bins`` bars whatever the bank's size)."""
    v = managers[value].to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    if len(v):
        lo, hi = float(v.min()), float(v.max())
        counts, edges = np.histogram(v, bins=bins, range=(lo, hi if hi > lo else lo + 1))
    else:
        counts, edges = np.zeros(0, dtype=int), np.zeros(1)
    axis = t(f"pay_method_{'points' if value == 'points_pay' else 'factor'}", lang)
    return _figure([{"type": "bar", "x": _list((edges[:-1] + edges[1:]) / 2), "y": _list(counts),
                     "width": _list(np.diff(edges)), "marker": {"color": "#1F77B4"}, "name": t("managers_n", lang)}],
                   t("pay_distribution", lang), height=420, _lang=lang, xaxis=_money_axis(edges, axis, lang),
                   yaxis=_count_axis(t("managers_n", lang), "people", lang))


def whale_figure(curve: pd.DataFrame, whale: dict, lang: str = "zh") -> go.Figure:
    """Cumulative profit share against customer share, with the 20 % / 80 % / 30 % marks."""
    marks = [_vline(0.2, "dash", "#555", "20%"), _vline(0.7, "dot", "#555", "30% ↘"),
             _hline(0.8, "dash", "#999", "80%"), _hline(1.0, "solid", "#CCC")]
    return _figure([{"type": "scatter", "x": _list(curve["customer_share"]), "y": _list(curve["profit_share"]),
                     "mode": "lines", "name": t("whale_curve", lang), "line": {"color": "#B22222", "width": 3}}],
                   t("whale_curve", lang), height=420, shapes=[m[0] for m in marks],
                   annotations=[a for m in marks for a in m[1]],
                   xaxis={"title": {"text": t("customers_axis", lang)}, "tickformat": ".0%"},
                   yaxis={"title": {"text": t("profit_axis", lang)}, "tickformat": ".0%"})


def tier_figure(customers: pd.DataFrame, lang: str = "zh") -> go.Figure:
    """Customers and contribution per value tier."""
    g = customers.groupby("tier")["total"].agg(["count", "sum"]).reindex(TIER_ORDER, fill_value=0)
    labels = [t(f"tier_{k}", lang) for k in TIER_ORDER]
    return _figure([{"type": "bar", "x": labels, "y": _list(g["count"]), "name": t("customers_n", lang), "yaxis": "y"},
                    {"type": "scatter", "x": labels, "y": _list(g["sum"]), "name": t("total_contribution", lang),
                     "yaxis": "y2", "mode": "lines+markers"}],
                   t("value_tiers", lang), _lang=lang, yaxis=_count_axis(t("customers_n", lang), "customers", lang),
                   yaxis2=_money_axis([0, *_list(g["sum"])], t("total_contribution", lang), lang,
                                      overlaying="y", side="right", showgrid=False))


def relationship_figure(customers: pd.DataFrame, lang: str = "zh") -> go.Figure:
    """Customers per relationship level (1 potential ... 5 dependent)."""
    counts = customers["relationship_level"].value_counts().reindex([1, 2, 3, 4, 5], fill_value=0)
    y = _list(counts)
    return _figure([{"type": "bar", "x": [f"{k} {t(f'rel_{k}', lang)}" for k in counts.index], "y": y,
                     "marker": {"color": "#1F77B4"}, "text": y, "textposition": "outside"}],
                   t("relationship_levels", lang), _lang=lang, yaxis=_count_axis(t("customers_n", lang), "customers", lang))


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
    shape, notes = _vline(float(acquisition_cost), "dash", "#555", t("acquisition_cost", lang))
    return _figure([{"type": "bar", "x": _list(mids), "y": _list(counts), "marker": {"color": colors},
                     "name": t("customers_n", lang)}], t("ltv_title", lang), shapes=[shape], annotations=notes, _lang=lang,
                   xaxis=_money_axis(edges, t("ltv_axis", lang), lang),
                   yaxis=_count_axis(t("customers_n", lang), "customers", lang))


def radar_figure(perspectives: dict, branch_avg: dict, name: str, lang: str = "zh",
                 weights: dict | None = None) -> go.Figure:
    """Each balanced-scorecard perspective as a percentage of its weight (the points it can give),
    manager against the branch average, so a perspective worth 50 points is not a spike beside one
    worth 15. A perspective without weight is left out; without ``weights``, raw points."""
    keys = [k for k in ("financial", "customer", "internal", "learning") if weights is None or weights.get(k, 0) > 0]

    def share(d: dict) -> list:
        if weights is None:
            return [float(d[k]) for k in keys + keys[:1]]
        return [100.0 * float(d[k]) / float(weights[k]) for k in keys + keys[:1]]

    theta = [t(f"persp_{k}", lang) for k in keys]
    mine, avg = share(perspectives), share(branch_avg)
    top = max([100.0, *mine, *avg]) if weights is not None else None
    polar = {"radialaxis": {"range": [0, top], "ticksuffix": "%"}} if top else {}
    return _figure([
        {"type": "scatterpolar", "r": mine, "theta": theta + theta[:1], "fill": "toself", "name": name},
        {"type": "scatterpolar", "r": avg, "theta": theta + theta[:1], "fill": "toself",
         "name": t("branch_average", lang), "opacity": 0.5},
    ], t("radar_title_pct" if weights is not None else "radar_title", lang), height=420, _lang=lang, polar=polar,
        legend={"orientation": "h", "y": -0.1})


def pay_by_line_figure(lines: pd.DataFrame, lang: str = "zh") -> go.Figure:
    """One manager's pay built up from each line: the ``lines`` of
    :func:`calc.explain.manager_chain` (``line``, ``pay`` = factor × attributed contribution, yuan)."""
    vals = [float(v) for v in lines["pay"]]
    y = vals + [sum(vals)]
    return _figure([{"type": "waterfall", "x": [t(k, lang) for k in lines["line"]] + [t("total", lang)], "y": y,
                     "measure": ["relative"] * len(vals) + ["total"], "text": [f"{v:,.2f}" for v in y],
                     "textposition": "outside"}], t("pay_by_line", lang), height=340, _lang=lang,
                   yaxis=_money_axis([0, *np.cumsum(vals).tolist(), sum(vals)], t("pay_method_factor", lang), lang))


def slope_figure(a: pd.DataFrame, b: pd.DataFrame, label_a: str, label_b: str, lang: str = "zh",
                 limit: int = 60) -> go.Figure:
    """Rank in A against rank in B for the ``limit`` managers who move most (ties: best rank in
    A first): one line each, green up, red down, grey level. One trace per colour, its lines
    split by gaps, so a move builds three traces, not sixty."""
    ids_a, ids_b = a["manager_id"].to_numpy(), b["manager_id"].to_numpy()
    if len(ids_a) == len(ids_b) and np.array_equal(ids_a, ids_b):   # one dataset: the same rows, no join
        names, ra, rb = a["name"], a["rank"].to_numpy(dtype=np.int64), b["rank"].to_numpy(dtype=np.int64)
    else:
        m = a[["manager_id", "name", "rank"]].merge(b[["manager_id", "rank"]], on="manager_id", suffixes=("_a", "_b"))
        names, ra, rb = m["name"], m["rank_a"].to_numpy(dtype=np.int64), m["rank_b"].to_numpy(dtype=np.int64)
    top = np.lexsort((ra, -np.abs(ra - rb)))[:limit]            # the largest moves, then the best in A
    names = np.asarray(names.to_numpy(dtype=object)[top], dtype=str)
    ra, rb = ra[top], rb[top]
    hover = [f"{name}: {x} → {y}" for name, x, y in zip(names.tolist(), ra.tolist(), rb.tolist())]
    traces = []
    for color, rows in (("#2CA02C", np.flatnonzero(rb < ra)), ("#B22222", np.flatnonzero(rb > ra)),
                        ("#BBBBBB", np.flatnonzero(rb == ra))):
        if not len(rows):
            continue
        traces.append({"type": "scatter", "mode": "lines+markers", "line": {"color": color}, "showlegend": False,
                       "x": [v for _ in rows for v in (label_a, label_b, None)],
                       "y": [v for i in rows.tolist() for v in (int(ra[i]), int(rb[i]), None)],
                       "text": [v for i in rows.tolist() for v in (hover[i], hover[i], None)],
                       "hovertemplate": "%{text}<extra></extra>"})
    return _figure(traces, t("slope_title", lang), height=480, _lang=lang,
                   yaxis={"autorange": "reversed", "title": {"text": t("rank_axis", lang)}, "tickformat": ",d"})


_HISTORY_TITLES = {"rank": "page_rankings", "pay": "pay_method_factor", "score": "score"}


def history_figure(history: pd.DataFrame, value: str, lang: str = "zh") -> go.Figure:
    """One manager's ``value`` (rank, pay, score) across published periods: ranks on whole-number
    ticks (best at the top), pay in yuan with 万 ticks, scores in points."""
    label = t(_HISTORY_TITLES.get(value, value), lang)
    y = _list(history[value])
    if value == "rank":
        top = int(max(y)) if len(y) else 1
        yaxis = {"autorange": "reversed", "tickformat": ",d", "title": {"text": t("rank_axis", lang)},
                 **({"dtick": 1} if top <= 12 else {})}
    elif value == "pay":
        yaxis = _money_axis([0, *y], label, lang)
    else:
        yaxis = {"title": {"text": with_unit(label, "points", lang)}}
    return _figure([{"type": "scatter", "x": _list(history["period"].astype(str)), "y": y, "mode": "lines+markers",
                     "name": label}], label, height=320, _lang=lang, yaxis=yaxis,
                   xaxis={"type": "category", "title": {"text": t("period_axis", lang)}})
