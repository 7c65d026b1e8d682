"""Published views for branch heads and managers: frozen rows read through :class:`data.access.Access`.

Nothing here computes a what-if; every number comes from a publication, filtered by the
principal's role, branch and manager in :mod:`data.access`.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from data import access as _access
from data import store as _store
from data.export import branch_statements_workbook, statement_workbook, statements_html, write_workbook
from ui import charts, views
from ui.i18n import STRINGS, t
from ui.why import show_chain

__all__ = ["serve", "pick_publication", "overview", "rankings", "customers", "statement", "scorecard",
           "warning_text"]

# The statement warnings the store and Access produce (one bilingual text each), and their i18n keys.
# Looked up by name: a producer that renames or drops one leaves the others translated.
_WARNINGS = {getattr(module, name): key for module, name, key in (
    (_store, "NOT_FROZEN", "warning_not_frozen"),
    (_access, "ACCOUNTS_RECOMPUTED", "warning_accounts_recomputed"),
) if hasattr(module, name)}


def warning_text(warning: str, lang: str) -> str:
    """A statement warning in ``lang``: a known one (or its code, the i18n key) translated, any other as
    received, made inert for markdown."""
    key = _WARNINGS.get(warning, warning if str(warning).startswith("warning_") and warning in STRINGS else None)
    return t(key, lang) if key else views.md_text(warning)


def serve(ctx, view) -> None:
    """For branch heads and managers (no what-if): draw ``view`` of a publication and stop the page.

    Does nothing for admins and analysts, whose page goes on with the live what-if.
    """
    if ctx.live:
        return
    pub = pick_publication(ctx)
    if pub is not None:
        view(ctx, pub)
    st.stop()


def pick_publication(ctx) -> pd.Series | None:
    """Choose a published period (newest first); None when nothing is published."""
    pubs = ctx.access.store.latest_publications()
    if pubs.empty:
        st.info(ctx.t("no_publication"))
        return None
    pubs = pubs.sort_values("period", ascending=False)
    periods = list(pubs["period"])
    period = st.selectbox(ctx.t("period"), periods, key="pub_period")
    pub = pubs[pubs["period"] == period].iloc[0]
    own = ctx.who.branch or ctx.who.manager_id
    scope = views.md_text(own) if own else ctx.t("all_branches_scope")
    st.caption(ctx.t("published_view", period=pub["period"], version=int(pub["version"]), scope=scope))
    return pub


def _grades(m: pd.DataFrame, lang: str) -> pd.DataFrame:
    return m.assign(grade=views.grade_label(m["grade"], lang))


def overview(ctx, pub) -> None:
    """Totals, grade distribution and top managers within the principal's scope."""
    m = ctx.access.managers(int(pub["id"]))
    c = st.columns(4)
    c[0].metric(ctx.t("attributed"), f"{m['total'].sum():,.0f}")
    c[1].metric(ctx.t("total_pay"), f"{m['pay'].sum():,.0f}")
    c[2].metric(ctx.t("managers_n"), f"{len(m)}")
    c[3].metric(ctx.t("score"), f"{m['score'].mean():.1f}" if len(m) else "—")
    left, right = st.columns(2)
    left.plotly_chart(charts.grade_figure(m, ctx.lang), key="pub_grades")
    with right:
        st.subheader(ctx.t("top_managers"))
        views.show(_grades(m, ctx.lang)[["rank", "branch_rank", "manager_id", "name", "pay", "score", "grade"]].head(5),
                   ctx.lang)


def rankings(ctx, pub) -> None:
    """The frozen ranking table of the principal's scope, with its download."""
    m = ctx.access.managers(int(pub["id"]))
    cols = ["rank", "branch_rank", "manager_id", "name", "branch", "pay", "points_pay", "score", "grade", "asset",
            "liability", "intermediate", "risk", "total"]
    table = _grades(m, ctx.lang)[cols]
    views.show(table, ctx.lang, key="pub_ranking")
    st.download_button(ctx.t("download_xlsx"), lambda table=table: write_workbook({ctx.t("page_rankings"): views.label_columns(table, ctx.lang)}),
                       f"rankings_{pub['period']}.xlsx", key="pub_rank_download")
    if len(m):
        st.plotly_chart(charts.ranking_figure(m, "pay", ctx.lang), key="pub_ranking_chart")


def customers(ctx, pub) -> None:
    """Frozen customer rows of the principal's branch."""
    c = ctx.access.customers(int(pub["id"]))
    k = st.columns(3)
    k[0].metric(ctx.t("customers_n"), f"{len(c):,}")
    k[1].metric(ctx.t("total_contribution"), f"{c['total'].sum():,.0f}")
    k[2].metric(ctx.t("unattributed"), f"{c['unattributed'].sum():,.0f}")
    if len(c):
        left, right = st.columns(2)
        left.plotly_chart(charts.tier_figure(c, ctx.lang), key="pub_tiers")
        right.plotly_chart(charts.relationship_figure(c, ctx.lang), key="pub_rel")
    views.show(c.drop(columns=["publication_id"]).assign(tier=views.tier_label(c["tier"], ctx.lang)), ctx.lang,
               key="pub_customers")


def _manager_choice(ctx, pub) -> str | None:
    m = ctx.access.managers(int(pub["id"]))
    if m.empty:
        st.info(ctx.t("no_customers"))
        return None
    names = dict(zip(m["manager_id"], m["name"] + " · " + m["branch"]))
    if len(names) == 1:
        return next(iter(names))
    return st.selectbox(ctx.t("choose_manager"), list(names), key="pub_manager", format_func=lambda i: f"{i} {names[i]}")


def _chosen_chain(ctx, pub) -> tuple[str, dict] | None:
    """The manager chosen (or the only one) and their published chain, read through Access."""
    manager = _manager_choice(ctx, pub)
    if manager is None:
        return None
    return manager, ctx.access.statement(int(pub["id"]), manager)


def statement(ctx, pub) -> None:
    """One manager's published statement (the principal's own, or one of their branch)."""
    chosen = _chosen_chain(ctx, pub)
    if chosen is None:
        return
    manager, chain = chosen
    for warning in chain.get("warnings", ()):        # e.g. published before statements were frozen
        st.warning(warning_text(warning, ctx.lang))
    s = chain["summary"].iloc[0]
    k = st.columns(4)
    k[0].metric(ctx.t("pay_method_factor"), f"{float(s['pay']):,.2f}")
    k[1].metric(ctx.t("score"), f"{float(s['score']):.2f}")
    k[2].metric(ctx.t("grade"), ctx.t(f"grade_{s['grade']}"))
    k[3].metric(ctx.t("page_rankings"), f"{int(s['rank'])} ({s['branch']} {int(s['branch_rank'])})")
    views.show(chain["lines"].assign(line=chain["lines"]["line"].map(ctx.t)), ctx.lang, key="pub_lines")
    st.subheader(ctx.t("customers_of"))
    views.show(chain["customers"], ctx.lang, key="pub_chain_customers")
    st.subheader(ctx.t("accounts_of"))
    views.show(chain["accounts"].assign(line=chain["accounts"]["line"].map(ctx.t)), ctx.lang, key="pub_chain_accounts")
    def workbook(chain=chain) -> bytes:                 # with why pay changed since the period before, if any
        pubs = ctx.access.store.latest_publications()
        earlier = pubs[pubs["period"] < pub["period"]].sort_values("period", ascending=False)
        why = None
        if len(earlier):
            steps, per_line = ctx.access.pay_change(int(earlier.iloc[0]["id"]), int(pub["id"]), manager)
            why = (steps, per_line, f"{earlier.iloc[0]['period']} {ctx.t('why_pay_earlier')}",
                   f"{pub['period']} {ctx.t('why_pay_this')}")
        return statement_workbook(chain, chain["scenario"], ctx.lang, why)

    st.download_button(ctx.t("statement"), workbook, f"statement_{manager}_{pub['period']}.xlsx",
                       key="pub_statement_download")
    st.download_button(ctx.t("statement_print"), lambda chain=chain: statements_html(
        [chain], str(pub["period"]), str(chain["summary"].iloc[0]["branch"]), ctx.lang).encode("utf-8"),
        f"statement_{manager}_{pub['period']}.html", mime="text/html", key="pub_statement_print",
        help=ctx.t("statement_print_help"))
    if ctx.who.role == "branch_head":
        branch_statements(ctx, pub)
    pay_change(ctx, pub, manager)


def pay_change(ctx, pub, manager: str) -> None:
    """Why this manager's pay changed since an earlier published period (frozen rows only)."""
    pubs = ctx.access.store.latest_publications()
    earlier = pubs[pubs["period"] < pub["period"]].sort_values("period", ascending=False)
    st.subheader(ctx.t("why_title_published"))
    if earlier.empty:
        st.caption(ctx.t("why_no_earlier"))
        return
    periods = list(earlier["period"])
    other = st.selectbox(ctx.t("why_compare_with"), periods, key="pub_why_period")
    a = int(earlier[earlier["period"] == other].iloc[0]["id"])
    steps, per_line = ctx.access.pay_change(a, int(pub["id"]), manager)
    st.caption(ctx.t("why_help_published", a=other, b=pub["period"]))
    show_chain(ctx, steps, per_line, "pub_why", ("why_pay_earlier", "why_pay_this"))


def branch_statements(ctx, pub) -> None:
    """All statements of the branch head's branch: one workbook, and one printable file (a page
    each, signature lines), built when clicked (read through Access: the branch's managers only)."""
    pid, period, branch = int(pub["id"]), str(pub["period"]), ctx.who.branch or ""

    def chains() -> list:
        ids = ctx.access.managers(pid).sort_values(["branch_rank", "manager_id"])["manager_id"]
        return [ctx.access.statement(pid, m) for m in ids]

    st.subheader(ctx.t("branch_statements", branch=views.md_text(branch)))
    left, right = st.columns(2)
    left.download_button(ctx.t("branch_statements_xlsx"), lambda: branch_statements_workbook(chains(), period, ctx.lang),
                         f"statements_{branch}_{period}.xlsx", key="pub_branch_statements")
    right.download_button(ctx.t("branch_statements_print"),
                          lambda: statements_html(chains(), period, branch, ctx.lang).encode("utf-8"),
                          f"statements_{branch}_{period}.html", mime="text/html", key="pub_branch_print",
                          help=ctx.t("statement_print_help"))


def scorecard(ctx, pub) -> None:
    """One manager's published KPI detail."""
    chosen = _chosen_chain(ctx, pub)
    if chosen is None:
        return
    _, chain = chosen
    s = chain["summary"].iloc[0]
    st.metric(ctx.t("score"), f"{float(s['score']):.2f}", help=ctx.t(f"grade_{s['grade']}"))
    views.show(chain["kpi"][["kpi", "perspective", "kind", "weight", "actual", "target", "points"]], ctx.lang,
               key="pub_kpi")
