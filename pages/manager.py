"""Manager 客户经理: one manager's chain, pay <- lines <- customers <- accounts, and the statement."""

import streamlit as st

from calc.explain import manager_chain
from data.export import statement_workbook
from ui import charts, state, views
from ui import published
from ui.frame import frame

ctx = frame("page_manager")
published.serve(ctx, published.statement)   # branch heads and managers: published results only
manager = views.pick_manager(ctx, "chain_manager")
base = state.base_for(ctx.dataset, ctx.scenario)
chain = manager_chain(base, ctx.result, ctx.scenario, manager)
s = chain["summary"].iloc[0]

k = st.columns(5)
k[0].metric(ctx.t("pay_method_factor"), f"{s['pay']:,.2f}")
k[1].metric(ctx.t("pay_method_points"), f"{s['points_pay']:,.2f}")
k[2].metric(ctx.t("score"), f"{s['score']:.2f}")
k[3].metric(ctx.t("grade"), ctx.t(f"grade_{s['grade']}"))
k[4].metric(ctx.t("page_rankings"), f"{s['rank']} ({s['branch']} {s['branch_rank']})")

st.subheader(ctx.t("chain"))
st.plotly_chart(charts.pay_by_line_figure(chain["lines"], ctx.lang), key="pay_by_line")
views.show(chain["lines"].assign(line=chain["lines"]["line"].map(ctx.t)), ctx.lang, key="chain_lines")

st.subheader(ctx.t("customers_of"))
if chain["customers"].empty:
    st.info(ctx.t("no_customers"))
else:
    views.show(chain["customers"], ctx.lang, key="chain_customers")
    st.subheader(ctx.t("accounts_of"))
    views.show(chain["accounts"].assign(line=chain["accounts"]["line"].map(ctx.t)), ctx.lang, key="chain_accounts")
st.download_button(ctx.t("statement"), lambda chain=chain: statement_workbook(chain, ctx.scenario, ctx.lang), f"statement_{manager}.xlsx",
                   key="statement_download")
