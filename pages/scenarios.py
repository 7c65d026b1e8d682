"""Scenarios 方案: save the what-if, load one, compare two, import and export TOML, publish one."""

import pandas as pd
import streamlit as st

from calc.explain import compare
from calc.scenario import Scenario
from data.store import sha256_bytes
from ui import charts, publish, state, views
from ui.frame import clear_whatif, frame, whatif

ctx = frame("page_scenarios")


def draw(ctx):
    """What the what-if panel changes: the page below the frame."""
    saved = state.saved_scenarios()

    st.subheader(ctx.t("save_as"))
    with st.form("save_form"):
        name = st.text_input(ctx.t("scenario_name"), key="scenario_name", max_chars=publish.NAME_CHARS)
        if st.form_submit_button(ctx.t("save")) and name.strip():
            try:
                _, version = state.save_scenario(ctx.scenario.replace(name=name.strip()), ctx.user)
            except (ValueError, *publish.BUSY) as e:       # refused by the store: said in the user's language
                publish.say_refusal(ctx, e, "save_refused")
            else:
                st.success(ctx.t("saved", name=views.md_text(f"{name.strip()} v{version}")))

    current_label = ctx.t("current_whatif")
    choices = {current_label: ctx.scenario, ctx.baseline.name + " *": ctx.baseline}
    choices.update(saved)
    if saved:
        pick = st.selectbox(ctx.t("load"), list(saved), key="scenario_load_pick")
        if st.button(ctx.t("load"), key="scenario_load"):
            state.set_baseline(saved[pick])
            clear_whatif()
            st.rerun()

    st.subheader(ctx.t("compare"))
    names = list(choices)
    a_col, b_col = st.columns(2)
    a = a_col.selectbox(ctx.t("scenario_a"), names, index=1, key="compare_a")
    b = b_col.selectbox(ctx.t("scenario_b"), names, index=0, key="compare_b")
    # the what-if and its baseline are already evaluated by the frame; only saved scenarios run here
    ready = {current_label: ctx.result, ctx.baseline.name + " *": ctx.baseline_result}
    ra, rb = (ready.get(x) or state.light(ctx.dataset, choices[x], cache=True, key=("saved", x))
              for x in (a, b))
    diff = ctx.memo(("compare", a, b), lambda: compare(ra, rb, choices[a], choices[b]))
    totals = pd.DataFrame({"A": ra.totals, "B": rb.totals})
    totals["B − A"] = totals["B"] - totals["A"]
    left, right = st.columns([3, 2])
    left.plotly_chart(ctx.memo(("slope", a, b, ctx.lang), lambda: charts.slope_figure(ra.managers, rb.managers, a, b, ctx.lang)),
                      key="slope")
    right.dataframe(totals.loc[list(publish.TOTAL_ITEMS)].rename(index=lambda k: ctx.t(publish.TOTAL_LABELS[k])).round(2),
                    key="compare_totals",        # yuan to the fen, with separators
                    column_config={c: st.column_config.NumberColumn(c, format="localized") for c in ("A", "B", "B − A")})
    st.subheader(ctx.t("pay_delta"))
    views.show(diff[["manager_id", "name", "branch", "rank_a", "rank_b", "rank_change", "pay_a", "pay_b", "pay_delta",
                     "grade_a", "grade_b", "driver", "cause"]], ctx.lang, key="compare_table",
               labels={"grade_a": lambda g: views.grade_label(g, ctx.lang), "grade_b": lambda g: views.grade_label(g, ctx.lang),
                       "driver": lambda d: d.map(lambda x: ctx.t(x) if x else ""),
                       "cause": lambda c: c.map(lambda x: ctx.t(f"cause_{x}"))},
               extra={"rank_a": "rank_a_label", "rank_b": "rank_b_label", "rank_change": "rank_change",
                      "pay_a": "pay_a_label", "pay_b": "pay_b_label", "pay_delta": "pay_change", "grade_a": "grade_a_label",
                      "grade_b": "grade_b_label", "driver": "driver_col", "cause": "cause_col"})

    st.subheader(ctx.t("import_toml"))
    up = st.file_uploader(ctx.t("import_toml"), type=["toml"], key="scenario_upload", label_visibility="collapsed")
    if up is not None and st.session_state.get("_scenario_import_digest") != sha256_bytes(up.getvalue()):
        # the uploader keeps its file across reruns: import it once, not again on every slider move
        st.session_state["_scenario_import_digest"] = sha256_bytes(up.getvalue())
        try:
            imported = Scenario.from_toml(up.getvalue().decode("utf-8-sig"))
            state.save_scenario(imported, ctx.user)
            st.success(ctx.t("imported", name=views.md_text(imported.name)))
        except (ValueError, UnicodeDecodeError) as e:
            st.error(ctx.t("scenario_error", err=views.md_text(e)))
    st.download_button(ctx.t("export_toml"), ctx.scenario.to_toml(), "scenario.toml", mime="application/toml",
                       key="scenario_export")

    if ctx.access.can("publish"):
        publish.section(ctx)          # a saved scenario (or the named what-if), its differences, then confirm


whatif(ctx, draw)
