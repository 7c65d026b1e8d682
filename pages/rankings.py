"""Rankings 排名: what a move changed on the first screen (how many moved, the biggest rise and
fall, pay against the baseline, then every move with its cause, biggest first, five a page), the
whole ranking below (a page of rows at a time, all of it as a download), and the top and bottom
of the bar chart beside the pay distribution.

A move costs what the managers' count costs once (the comparison with the baseline, one sort);
the rows shown are shaped (rank change, grade change, words) a page at a time.
"""

import numpy as np
import pandas as pd
import streamlit as st

from calc.light import GRADE_ORDER
from calc.scenario import PAY_LINES
from calc.explain import COMPARED_COLUMNS, compare
from data.export import write_workbook
from ui import charts, published, state, views
from ui.frame import frame, whatif

ctx = frame("page_rankings")
published.serve(ctx, published.rankings)   # branch heads and managers: published results only


def draw(ctx):
    """What the panel changes: the whole page below the frame."""
    lang = ctx.lang
    value = "points_pay" if ctx.scenario.pay_method == "points" else "pay"
    m, mb = ctx.result.managers, ctx.baseline_result.managers
    if not m.index.equals(pd.RangeIndex(len(m))):    # row labels are row positions below
        m = m.reset_index(drop=True)
    MOVE_COLS = {"rank_a": "baseline_rank", "rank_b": "whatif_rank", "rank_change": "rank_change", "pay_delta": "pay_change",
                 "grade_change": "grade_change", "driver": "driver_col", "cause": "cause_col"}
    GRADE = {g: ctx.t(f"grade_{g}") for g in GRADE_ORDER}
    MOVE_WORDS = {"grade_change": views.words({f"{a}>{b}": f"{GRADE[a]} → {GRADE[b]}" for a in GRADE for b in GRADE}),
                  "driver": views.words({x: ctx.t(x) for x in PAY_LINES}),
                  "cause": views.words({c: ctx.t(f"cause_{c}") for c in ("factor", "coefficients", "both", "none")})}


    def baseline_rows():
        """Per what-if manager row: the baseline's row position, rank and grade (once per dataset and baseline)."""
        where = pd.Series(np.arange(len(mb)), index=mb["manager_id"].to_numpy()).reindex(m["manager_id"].to_numpy())
        pos = where.to_numpy()
        found = ~np.isnan(pos)
        pos = np.where(found, pos, 0).astype(np.int64)
        rank = np.where(found, mb["rank"].to_numpy()[pos], 0)          # a manager new in the what-if: 0, as compare says
        grade = np.where(found, mb["grade"].to_numpy(dtype=object)[pos], "")
        return pos, found, rank, grade, pd.array(grade.astype(str), dtype=m["grade"].dtype)


    base_pos, base_found, rank_a, grade_a, grade_a_text = ctx.memo_on((), "baseline_rows", baseline_rows)
    rank_b = m["rank"].to_numpy()
    change = rank_a - rank_b                                                     # + = moved up
    crossed = np.asarray(m["grade"].array != grade_a_text, dtype=bool)
    by_move = np.lexsort((rank_b, -np.abs(change)))                             # biggest move first, then by rank
    moved = by_move[((change != 0) | crossed)[by_move]]


    compared = [m.columns.get_loc(c) for c in COMPARED_COLUMNS]        # what compare reads: a page of rows
    compared_b = [mb.columns.get_loc(c) for c in COMPARED_COLUMNS]     # of these


    def explained(rows: pd.DataFrame) -> pd.DataFrame:
        """The what-if rows of some movers, explained against the baseline by :func:`calc.explain.compare`
        (pay change per line, driver line, cause), in the rows' order: compare runs on the rows shown
        only, not on every manager at every move."""
        pos = rows.index.to_numpy()
        both = base_found[pos]
        diff = compare(ctx.baseline_result.replace(managers=mb.iloc[base_pos[pos[both]], compared_b]),
                       ctx.result.replace(managers=m.iloc[pos, compared]), ctx.baseline, ctx.scenario)
        at = pd.Index(diff["manager_id"].to_numpy()).get_indexer(rows["manager_id"].to_numpy())   # rows' order
        got = at >= 0
        at = np.where(got, at, 0)

        def column(c, missing):          # compare's column in the rows' order; ``missing`` where it has no row
            return np.where(got, diff[c].to_numpy()[at], missing)

        grade_change = np.where(column("grade_crossed", False).astype(bool),
                                column("grade_a", "").astype(object) + ">" + column("grade_b", "").astype(object), "")
        cols = {"manager_id": rows["manager_id"].array, "name": rows["name"].array, "branch": rows["branch"].array}
        cols.update({c: column(c, np.nan) for c in ("rank_a", "rank_b", "rank_change", "pay_delta")})
        cols.update(grade_change=grade_change, driver=column("driver", None), cause=column("cause", None))
        return pd.DataFrame(cols, copy=False)


    # -- the first screen: how many moved, who moved most, what pay did ------------------------
    k = views.side_by_side(4)
    k[0].metric(ctx.t("moved_n"), f"{int((change != 0).sum()):,} / {len(m):,}")
    for col, label, pick in ((k[1], "biggest_up", by_move[0] if len(m) and change[by_move[0]] > 0 else None),
                             (k[2], "biggest_down", change.argmin() if len(m) and change.min() < 0 else None)):
        if pick is None:
            col.metric(ctx.t(label), ctx.t("nobody_moved"))
        else:
            r = m.iloc[int(pick)]
            col.metric(ctx.t(label), f"{r['name']} {rank_a[pick]}→{rank_b[pick]}", delta=f"{int(change[pick]):+d}",
                       help=f"{r['manager_id']} · {r['branch']}")
    pay_now, pay_base = ctx.result.totals["pay"], ctx.baseline_result.totals["pay"]
    k[3].metric(ctx.t("pay_vs_baseline"), f"{pay_now:,.0f}",
                delta=f"{pay_now - pay_base:+,.0f}" if abs(pay_now - pay_base) >= 0.5 else None)

    st.markdown(f"**{ctx.t('who_moves')}**")
    if not len(moved):
        st.info(ctx.t("no_moves"))
    else:                        # the biggest moves first, five a page; every move with its cause in the download
        with st.container(key="top_moves"):
            views.show(m, lang, key="movers", order=moved, columns=["manager_id", "name", "branch"], shape=explained,
                       extra=MOVE_COLS, labels=MOVE_WORDS, limit=5)

    # -- the whole ranking ------------------------------------------------------------------------
    st.subheader(ctx.t("ranking_table"))
    options = [""] + views.branch_options(ctx)
    branch = st.selectbox(ctx.t("branch_filter"), options, key="rank_branch",
                          format_func=lambda b: b or ctx.t("all_branches"))
    in_branch = None if not branch else (m["branch"] == branch).to_numpy()


    ids = ctx.memo_on((), "manager_ids", lambda: m["manager_id"].to_numpy(dtype=object).astype(str))


    def by_rank() -> np.ndarray:
        """Row positions of the managers (of the branch chosen) in rank order, ties by manager id."""
        keep = np.arange(len(m)) if in_branch is None else np.flatnonzero(in_branch)
        return keep[np.lexsort((ids[keep], rank_b[keep]))]


    RANK_COLS = {"rank_change": "rank_change", "grade_change": "grade_change"}
    RANK_WORDS = {"grade": views.words(GRADE), "grade_change": views.words({f"← {g}": f"← {w}" for g, w in GRADE.items()})}


    RANKING_COLS = ["rank", "branch_rank", "manager_id", "name", "branch", "pay", "points_pay", "score", "grade", "asset",
                    "liability", "intermediate", "risk", "total"]


    def ranked(rows: pd.DataFrame) -> pd.DataFrame:
        """Ranking rows as shown: rank change and the grade before when it crossed a boundary."""
        pos = rows.index.to_numpy()
        cols = {c: rows[c].array for c in ("rank", "branch_rank")}
        cols["rank_change"] = change[pos]
        cols.update({c: rows[c].array for c in ("manager_id", "name", "branch", "pay", "points_pay", "score", "grade")})
        cols["grade_change"] = np.where(crossed[pos] & base_found[pos], "← " + grade_a[pos].astype(object), "")
        cols.update({c: rows[c].array for c in ("asset", "liability", "intermediate", "risk", "total")})
        return pd.DataFrame(cols, copy=False)


    order = ctx.memo(("by_rank", branch), by_rank)
    st.caption(ctx.t("moved_note"))
    with st.container(key="ranking"):                # .st-key-ranking in the browser
        views.show(m, lang, key="ranking_table", order=order, columns=RANKING_COLS, shape=ranked, extra=RANK_COLS,
                   labels=RANK_WORDS, download=False)
    st.download_button(ctx.t("download_xlsx"),
                       lambda: write_workbook({ctx.t("page_rankings"): views.label_columns(
                           views.with_labels(ranked(m.iloc[order]), RANK_WORDS), lang, RANK_COLS)}),
                       "rankings.xlsx", key="rank_download")

    left, right = views.side_by_side(2)
    shown = m if in_branch is None else m[in_branch]
    left.plotly_chart(charts.ranking_figure(shown, value, lang), key="ranking_chart")
    right.plotly_chart(charts.pay_histogram_figure(shown, value, lang), key="pay_histogram")


    # -- which lever reshuffles the ranking (DOMAIN 11.4): on request, 16 light-stage runs ------------
    st.subheader(ctx.t("sensitivity_title"))
    if st.toggle(ctx.t("sensitivity_show"), key="sensitivity_show"):
        from calc.whatif import sensitivity

        table = ctx.memo("sensitivity", lambda: sensitivity(state.base_for(ctx.dataset, ctx.scenario), ctx.scenario,
                                                            ctx.result))
        lever_name = lambda r: ctx.t("stock_factor") if r["lever"] == "stock_factor" else ctx.t(f"{r['lever']}_{r['key']}")
        shown = pd.DataFrame({
            "lever": [lever_name(r) for r in table.to_dict("records")],
            "direction": np.where(table["direction"] > 0, "+10%", "−10%"),
            "value": table["value"], "tried": table["tried"], "managers_moved": table["managers_moved"],
            "largest_move": table["largest_move"], "pay_change": table["pay_change"]})
        views.show(shown, lang, key="sensitivity_table",
                   extra={"lever": "sensitivity_lever", "direction": "sensitivity_direction", "value": "sensitivity_value",
                          "tried": "sensitivity_tried", "managers_moved": "sensitivity_moved",
                          "largest_move": "sensitivity_largest", "pay_change": "sensitivity_pay"})


whatif(ctx, draw)
