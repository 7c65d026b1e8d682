"""Scorecard 计分卡: per manager radar against the branch average, KPI detail, editable weights."""

from dataclasses import asdict

import pandas as pd
import streamlit as st

from calc.explain import branch_perspective_average, perspective_scores
from calc.scenario import KPI_KINDS, PERSPECTIVES, PRESETS, perspective_weights
from calc.light import COMPUTED_KPIS
from ui import charts, state, views
from ui.i18n import value_word
from ui import published
from ui.frame import COEFFICIENT_LEVERS, frame, whatif

ctx = frame("page_scorecard")
published.serve(ctx, published.scorecard)   # branch heads and managers: published results only


def draw(ctx):
    """What the what-if panel changes: the page below the frame."""
    m = ctx.result.managers
    manager = views.pick_manager(ctx, "score_manager")
    row = m.iloc[ctx.memo_on((), "manager_position", lambda: dict(zip(m["manager_id"], range(len(m)))))[manager]]

    a, b, c = views.side_by_side(3)
    a.metric(ctx.t("score"), f"{row['score']:.2f}")
    b.metric(ctx.t("grade"), ctx.t(f"grade_{row['grade']}"))
    c.metric(ctx.t("page_rankings"), f"{row['rank']} / {len(m)}")
    left, right = st.columns([1, 1])
    # scores and KPI actuals move with the coefficient levers and the KPI table only, not with pay
    left.plotly_chart(charts.radar_figure(perspective_scores(ctx.result, manager),
                                          ctx.memo_on(COEFFICIENT_LEVERS, ("branch_average", row["branch"]),
                                                      lambda: branch_perspective_average(ctx.result, row["branch"])),
                                          row["name"], ctx.lang, weights=perspective_weights(ctx.scenario.kpi)), key="radar")


    def kpi_rows():
        kpi = ctx.result.kpi[["manager_id", "kpi", "perspective", "kind", "weight", "actual", "target", "points"]]
        return kpi, kpi.groupby("manager_id", sort=False).indices


    with right:
        st.subheader(ctx.t("kpi_table"))
        kpi, where = ctx.memo_on(COEFFICIENT_LEVERS, "kpi_by_manager", kpi_rows)
        views.show(kpi.iloc[where.get(manager, [])].drop(columns="manager_id"), ctx.lang, key="kpi_detail")

    st.subheader(ctx.t("kpi_weights"))
    ss = st.session_state
    preset = st.radio(ctx.t("kpi_preset"), ["", *PRESETS], horizontal=True, key="kpi_preset",
                      format_func=lambda p: "—" if not p else ctx.t(f"preset_{p}"))
    if preset and ss.get("_kpi_preset_applied") != preset:
        ss["_kpi_table"] = [asdict(k) for k in PRESETS[preset]()]
        ss["_kpi_preset_applied"] = preset
        ss.pop("kpi_editor", None)
        ss.pop("_kpi_editor_base", None)
        st.rerun()
    current = [asdict(k) for k in ctx.scenario.kpi]
    if "kpi_editor" not in ss or "_kpi_editor_base" not in ss:
        ss["_kpi_editor_base"] = current        # the editor edits a fixed table; its output is the what-if
    kpi_codes = list(dict.fromkeys([*COMPUTED_KPIS, *state.base_for(ctx.dataset, ctx.scenario).kpis.columns,
                                     *(r["code"] for r in ss["_kpi_editor_base"])]))
    edited = st.data_editor(
        pd.DataFrame(ss["_kpi_editor_base"]), key="kpi_editor", num_rows="dynamic", hide_index=True,
        column_config={
            # codes stay codes in the scenario; the editor shows their names (KPI_NAMES) and offers
            # every computed KPI, every KPI uploaded with the dataset and those already in the table
            "code": st.column_config.SelectboxColumn(ctx.t("kpi_name"), options=kpi_codes, required=True,
                                                     format_func=lambda c: value_word("kpi", c, ctx.lang)),
            "perspective": st.column_config.SelectboxColumn(ctx.t("kpi_perspective"), options=list(PERSPECTIVES),
                                                            required=True,
                                                            format_func=lambda c: value_word("perspective", c, ctx.lang)),
            "kind": st.column_config.SelectboxColumn(ctx.t("kpi_kind"), options=list(KPI_KINDS), required=True,
                                                     format_func=lambda c: value_word("kind", c, ctx.lang)),
            "weight": st.column_config.NumberColumn(ctx.t("kpi_weight"), min_value=0.0, max_value=1000.0, step=1.0,
                                                    required=True),
            "cap": st.column_config.NumberColumn(ctx.t("kpi_cap"), min_value=0.01, max_value=100.0, step=0.1,
                                                 required=True, help=ctx.t("kpi_cap_help")),
        })
    rows = [{k: (float(v) if k in ("weight", "cap") else v) for k, v in r.items()}
            for r in edited.dropna(subset=["code"]).to_dict("records")]
    if rows != current:
        try:
            ctx.scenario.replace(kpi=rows)            # validate before the what-if takes it
            ss["_kpi_table"] = rows
            st.rerun()
        except (ValueError, TypeError) as e:
            st.error(ctx.t("scenario_error", err=views.md_text(e)))
    total_weight = sum(r['weight'] for r in current if r.get('kind') != 'deduction')
    st.caption(f"Σ {ctx.t('score')}: {total_weight:g}")
    if abs(total_weight - 100.0) > 1e-9:                # a 100-point plan (百分制) whose weights do not add up
        st.warning(ctx.t("kpi_weights_not_100", total=f"{total_weight:g}"))


whatif(ctx, draw)
