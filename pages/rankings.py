"""Rankings 排名: the ranking table with moves against the baseline, and the bar chart."""

import streamlit as st

from data.export import write_workbook
from ui import charts, views
from ui import published
from ui.frame import frame

ctx = frame("page_rankings")
published.serve(ctx, published.rankings)   # branch heads and managers: published results only
lang = ctx.lang
options = [""] + views.branch_options(ctx)
branch = st.selectbox(ctx.t("branch_filter"), options, key="rank_branch",
                      format_func=lambda b: b or ctx.t("all_branches"))

movers = views.movement(ctx)                     # once per rerun: baseline against what-if
moves = movers.set_index("manager_id")
m = ctx.result.managers.sort_values(["rank", "manager_id"]).copy()
if branch:
    m = m[m["branch"] == branch]
m["rank_change"] = m["manager_id"].map(moves["rank_change"])
m["baseline_rank"] = m["manager_id"].map(moves["rank_a"])
crossed = m["manager_id"].map(moves["grade_crossed"]).fillna(False).to_numpy()
cols = ["rank", "branch_rank", "rank_change", "manager_id", "name", "branch", "pay", "points_pay", "score", "grade",
        "asset", "liability", "intermediate", "risk", "total"]
table = m[cols].assign(grade=views.grade_label(m["grade"], lang)).reset_index(drop=True)
shown = views.label_columns(table, lang, {"rank_change": "rank_change"})
styled = shown.style.apply(lambda row: ["background-color: #FFF3CD" if crossed[row.name] else "" for _ in row],
                           axis=1).format(precision=2, thousands=",")
st.caption(ctx.t("moved_note"))
st.dataframe(styled, hide_index=True, key="ranking_table", height=min(36 * (len(shown) + 1), 640))
st.download_button(ctx.t("download_xlsx"), lambda shown=shown: write_workbook({ctx.t("page_rankings"): shown}), "rankings.xlsx",
                   key="rank_download")
st.plotly_chart(charts.ranking_figure(m, "points_pay" if ctx.scenario.pay_method == "points" else "pay", lang),
                key="ranking_chart")

st.subheader(ctx.t("who_moves"))
movers = movers[(movers["rank_change"] != 0) | movers["grade_crossed"]]
if branch:
    movers = movers[movers["branch"] == branch]
if movers.empty:
    st.info(ctx.t("no_moves"))
else:
    why = movers[["manager_id", "name", "rank_a", "rank_b", "rank_change", "pay_delta", "grade_a", "grade_b",
                  "driver", "cause"]].copy()
    why["driver"] = why["driver"].map(lambda d: ctx.t(d) if d else "")
    why["grade_a"] = views.grade_label(why["grade_a"], lang)
    why["grade_b"] = views.grade_label(why["grade_b"], lang)
    st.dataframe(why, hide_index=True, key="movers")
