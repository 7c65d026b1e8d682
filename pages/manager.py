"""Manager 客户经理: one manager's chain, pay <- lines <- customers <- accounts, and the statement.

The customers and accounts of the chain (coefficients, contributions) move with the coefficient
levers only, so they are built once per coefficient setting; the pay-link factors, the pool and
the rank basis change only the summary and the pay per line, which are read from the what-if.
"""

import streamlit as st

from calc.explain import manager_chain
from calc.whatif import chain as pay_chain
from data.export import statement_workbook
from ui import charts, state, views
from ui import published
from ui.why import show_chain
from ui.formats import money
from ui.i18n import value_word
from ui.frame import COEFFICIENT_LEVERS, frame, whatif

ctx = frame("page_manager")
published.serve(ctx, published.statement)   # branch heads and managers: published results only


def draw(ctx):
    """What the what-if panel changes: the page below the frame."""
    manager = views.pick_manager(ctx, "chain_manager")
    base = state.base_for(ctx.dataset, ctx.scenario)
    kept = ctx.memo_on(COEFFICIENT_LEVERS, ("chain", manager),
                       lambda: manager_chain(base, ctx.result, ctx.scenario, manager))
    m = ctx.result.managers
    summary = m.loc[m["manager_id"] == manager, list(kept["summary"].columns)].reset_index(drop=True)
    lines = kept["lines"].copy()
    lines["factor"] = [ctx.scenario.pay_factor[x] for x in lines["line"]]
    lines["pay"] = lines["factor"] * lines["contribution"]         # as manager_chain writes it (DOMAIN 1, per line)
    # every figure with its arithmetic: 中间业务贡献 82,373.00 × 挂钩系数 0.16 = 13,179.68
    lines["formula"] = [ctx.t("formula_line", line=value_word("line", x, ctx.lang), contribution=money(c),
                              factor=f"{f:g}", pay=money(p))
                        for x, c, f, p in zip(lines["line"], lines["contribution"], lines["factor"], lines["pay"])]
    chain = {**kept, "summary": summary, "lines": lines}
    s = summary.iloc[0]

    k = views.side_by_side(5)
    k[0].metric(ctx.t("pay_method_factor"), f"{s['pay']:,.2f}")
    k[1].metric(ctx.t("pay_method_points"), f"{s['points_pay']:,.2f}")
    k[2].metric(ctx.t("score"), f"{s['score']:.2f}")
    k[3].metric(ctx.t("grade"), ctx.t(f"grade_{s['grade']}"))
    k[4].metric(ctx.t("page_rankings"), f"{s['rank']} ({s['branch']} {s['branch_rank']})")

    st.subheader(ctx.t("chain"))
    st.plotly_chart(charts.pay_by_line_figure(lines, ctx.lang), key="pay_by_line")
    line_words = views.words({x: ctx.t(x) for x in ("asset", "liability", "intermediate", "risk")})
    views.show(lines, ctx.lang, key="chain_lines", labels={"line": line_words}, extra={"formula": "formula_col"})
    floor_note = ctx.t("formula_floor") if float(s["pay_raw"]) < 0 and ctx.scenario.floor_at_zero else ""
    terms = "".join((money(p) if i == 0 else f" + {money(p)}" if p >= 0 else f" − {money(-p)}")
                    for i, p in enumerate(lines["pay"]))
    st.caption(ctx.t("formula_total", parts=terms, pay=money(s["pay"])) + floor_note)

    st.subheader(ctx.t("customers_of"))
    if chain["customers"].empty:
        st.info(ctx.t("no_customers"))
    else:
        # both move with the coefficient levers only: shown pages are kept across the other moves
        kept = lambda name, build: ctx.memo_on(COEFFICIENT_LEVERS, ("chain_shown", manager, name), build)
        views.show(chain["customers"], ctx.lang, key="chain_customers", kept=kept)
        st.subheader(ctx.t("accounts_of"))
        views.show(chain["accounts"], ctx.lang, key="chain_accounts", labels={"line": line_words},
                   search=("account_id", "customer_id", "product"), kept=kept)
    # -- why pay changed: baseline -> what-if by chain substitution (连环替代法, DOMAIN 11.2) ------------
    steps, per_line = ctx.memo(("why", manager), lambda: pay_chain(
        (state.base_for(ctx.dataset, ctx.baseline), ctx.baseline_result, ctx.baseline),
        (base, ctx.result, ctx.scenario), managers=[manager]))
    why = (steps, per_line, ctx.t("why_pay_a"), ctx.t("why_pay_b"))
    st.download_button(ctx.t("statement"), lambda chain=chain: statement_workbook(chain, ctx.scenario, ctx.lang, why),
                       f"statement_{manager}.xlsx", key="statement_download")
    st.subheader(ctx.t("why_title"))
    st.caption(ctx.t("why_help"))
    show_chain(ctx, steps, per_line, "why", ("why_pay_a", "why_pay_b"))


whatif(ctx, draw)
