"""History 历史: a manager's rank, pay, score and grade across published periods; branch grades over time."""

import streamlit as st

from ui import charts, views
from ui.frame import frame

ctx = frame("page_history")
hist = ctx.access.history()          # filtered to the principal's branch or own rows
if hist.empty:
    st.info(ctx.t("no_publication"))
    st.stop()

st.subheader(ctx.t("history_title"))
names = dict(zip(hist["manager_id"], hist["name"] + " · " + hist["branch"]))
manager = st.selectbox(ctx.t("choose_manager"), sorted(names), key="history_manager",
                       format_func=lambda i: f"{i} {names[i]}")
mine = hist[hist["manager_id"] == manager].sort_values("period")
cols = st.columns(3)
for col, value in zip(cols, ("rank", "pay", "score")):
    col.plotly_chart(charts.history_figure(mine, value, ctx.lang), key=f"history_{value}")
views.show(mine[["period", "rank", "branch_rank", "pay", "points_pay", "score", "grade", "total"]]
           .assign(grade=views.grade_label(mine["grade"], ctx.lang)), ctx.lang, key="history_table")

st.subheader(ctx.t("branch_over_time"))
st.plotly_chart(charts.grade_history_figure(hist, ctx.lang), key="history_grades")
