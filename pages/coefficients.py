"""Coefficients 关联度调整: tune one customer's relevance coefficients, add, remove or move a manager.

Every change is a coefficient edit of the what-if (DOMAIN 11.1): kept with a saved scenario,
listed in the scenario diff, cleared by "reset to baseline". An edit set that would make a
customer's given coefficients sum above 1 is refused as a whole, naming the customer and the sum.
"""

import numpy as np
import pandas as pd
import streamlit as st

from calc.scenario import ROLES
from calc.whatif import EditError, edited
from data.edits import edit_message
from ui import state, views
from ui.frame import COEFFICIENT_LEVERS, EDITS_KEY, frame, set_whatif_edits, whatif_edits, whatif

ctx = frame("page_coefficients")


def draw(ctx):
    """What the what-if panel changes: the page below the frame."""
    lang, ss = ctx.lang, st.session_state
    # what this page reads of the customers (ids, names, contribution) no lever changes: taken
    # once per dataset and baseline, not rebuilt from the what-if's customer table on every move
    customers, position = ctx.memo_on((), "coef_customers", lambda: (
        ctx.result.customers[["customer_id", "name", "total"]].reset_index(drop=True),
        pd.Index(ctx.result.customers["customer_id"])))
    managers = ctx.result.managers
    names = ctx.memo_on((), "manager_names_all", lambda: dict(zip(managers["manager_id"], managers["name"])))

    # -- pick a customer: search by id or name, then choose among the first matches ------------------
    LIMIT = 50
    text = st.text_input(ctx.t("coef_search"), key="coef_search", placeholder=ctx.t("coef_search_hint")).strip()
    if text:
        hit = views._search(customers, text, ("customer_id", "name"))
        rows = np.flatnonzero(hit)[:LIMIT]
    else:                                   # the largest contributors first
        rows = ctx.memo_on((), "coef_top_customers",
                           lambda: np.argsort(-customers["total"].to_numpy(), kind="stable")[:LIMIT])
    if not len(rows):
        st.info(ctx.t("coef_no_match"))
        st.stop()
    shown = customers.iloc[rows]
    options = dict(zip(shown["customer_id"].to_numpy(dtype=object), shown["name"].to_numpy(dtype=object)))
    if ss.get("coef_customer") not in options:
        ss["coef_customer"] = next(iter(options))
    cid = st.selectbox(ctx.t("coef_customer"), list(options), key="coef_customer",
                       format_func=lambda i: f"{i} {options[i]}")

    crow = customers.iloc[position.get_loc(cid)]
    # the customer's assignment rows: where they are is fixed per dataset, baseline and edits;
    # their coefficients move with the role weights and the stock factor only
    at = ctx.memo_on((), "coef_rows_of", lambda: ctx.result.assignments.groupby("customer_id", sort=False).indices)
    mine = ctx.memo_on(COEFFICIENT_LEVERS, ("coef_rows", cid),
                       lambda: ctx.result.assignments.iloc[at.get(cid, np.zeros(0, dtype=np.int64))])
    table = pd.DataFrame({
        "manager_id": mine["manager_id"].to_numpy(dtype=object),
        "name": [names.get(m, "") for m in mine["manager_id"]],
        "role": mine["role"].to_numpy(dtype=object),
        "coefficient_used": mine["coefficient_used"].to_numpy(dtype=float),
        "coefficient_source": mine["coefficient_source"].to_numpy(dtype=object),
    })
    table["attributed"] = table["coefficient_used"] * float(crow["total"])
    left = max(0.0, 1.0 - float(table["coefficient_used"].sum()))
    k = views.side_by_side(3)
    k[0].metric(ctx.t("coef_contribution"), f"{float(crow['total']):,.2f}")
    k[1].metric(ctx.t("coef_unattributed_share"), f"{left:.4f}")
    k[2].metric(ctx.t("coef_unattributed_amount"), f"{left * float(crow['total']):,.2f}")
    role_words = views.words({r: ctx.t(f"role_weight_{r}") for r in ROLES})
    source_words = views.words({"given": ctx.t("coef_given"), "derived": ctx.t("coef_derived")})
    views.show(table, lang, key="coef_managers", labels={"role": role_words, "coefficient_source": source_words},
               extra={"coefficient_used": "coef_used", "coefficient_source": "coef_source", "attributed": "coef_attributed"})

    def apply(new_edits: list[dict]) -> None:
        """Add ``new_edits`` to the what-if's edits, or say why they are refused (nothing changes)."""
        edits = [*whatif_edits(ctx.baseline), *new_edits]
        try:
            trial = ctx.baseline.replace(edits=edits)
            edited(state.base_for(ctx.dataset, ctx.baseline.replace(edits=[])), trial)
        except EditError as e:
            ss["_coef_error"] = edit_message(e, lang)
            return
        except ValueError as e:
            ss["_coef_error"] = str(e)
            return
        set_whatif_edits(edits)
        ss["_coef_changed"] = (cid, tuple(table["manager_id"]) + tuple(e["manager_id"] for e in new_edits))

    here = list(table["manager_id"])
    # the managers an edit can add or move the customer to: every other manager in a small bank;
    # in a larger one those of one branch, chosen first (never a list cut short, nor thousands of
    # names sent on every move). Kept per customer, branch and edits: no lever changes them.
    target_branch = None
    if len(managers) > views.PICK_LIMIT:
        target_branch = views.branch_box(ctx, "coef_target_branch", ctx.t("coef_target_branch"),
                                         here[0] if here else None, views.branch_options(ctx)[0])

    def targets() -> dict:
        ids = managers["manager_id"].to_numpy(dtype=object)
        if target_branch is not None:
            ids = ids[managers["branch"].to_numpy(dtype=object) == target_branch]
        ids = ids[~np.isin(ids.astype(str), np.asarray(here, dtype=str))]
        return {m: f"{m} {names.get(m, '')}" for m in ids}

    others = ctx.memo_on((), ("coef_targets", cid, target_branch, tuple(here)), targets)
    tabs = st.tabs([ctx.t("coef_set"), ctx.t("coef_add"), ctx.t("coef_remove"), ctx.t("coef_move")])
    with tabs[0]:
        if here:
            with st.form("coef_set_form"):
                m = st.selectbox(ctx.t("choose_manager"), here, format_func=lambda i: f"{i} {names.get(i, '')}",
                                 key="coef_set_manager")
                value = st.number_input(ctx.t("coef_value"), min_value=0.0001, max_value=1.0, value=0.5, step=0.05,
                                        format="%.4f", key="coef_set_value")
                a, b = st.columns(2)
                if a.form_submit_button(ctx.t("coef_set_button"), type="primary", key="coef_set_submit"):
                    apply([{"action": "set", "customer_id": cid, "manager_id": m, "coefficient": float(value)}])
                if b.form_submit_button(ctx.t("coef_derive_button"), key="coef_derive_submit"):
                    apply([{"action": "derive", "customer_id": cid, "manager_id": m}])
    with tabs[1]:
        with st.form("coef_add_form"):
            m = st.selectbox(ctx.t("choose_manager"), list(others), format_func=others.get, key="coef_add_manager")
            role = st.selectbox(ctx.t("coef_role"), ROLES, format_func=lambda r: ctx.t(f"role_weight_{r}"),
                                key="coef_add_role")
            given = st.number_input(ctx.t("coef_value_optional"), min_value=0.0, max_value=1.0, value=0.0, step=0.05,
                                    format="%.4f", key="coef_add_value", help=ctx.t("coef_value_optional_help"))
            if st.form_submit_button(ctx.t("coef_add_button"), type="primary", key="coef_add_submit") and m:
                edit = {"action": "add", "customer_id": cid, "manager_id": m, "role": role}
                if given > 0:
                    edit["coefficient"] = float(given)
                apply([edit])
    with tabs[2]:
        if here:
            with st.form("coef_remove_form"):
                m = st.selectbox(ctx.t("choose_manager"), here, format_func=lambda i: f"{i} {names.get(i, '')}",
                                 key="coef_remove_manager")
                if st.form_submit_button(ctx.t("coef_remove_button"), key="coef_remove_submit"):
                    apply([{"action": "remove", "customer_id": cid, "manager_id": m}])
    with tabs[3]:
        if here:
            with st.form("coef_move_form"):
                src = st.selectbox(ctx.t("coef_move_from"), here, format_func=lambda i: f"{i} {names.get(i, '')}",
                                   key="coef_move_from")
                dst = st.selectbox(ctx.t("coef_move_to"), list(others), format_func=others.get, key="coef_move_to")
                if st.form_submit_button(ctx.t("coef_move_button"), type="primary", key="coef_move_submit") and dst:
                    row = mine[mine["manager_id"] == src].iloc[0]
                    # DOMAIN 11.1: remove (X, A) plus add (X, B) with A's role and given coefficient
                    edit = {"action": "add", "customer_id": cid, "manager_id": dst, "role": str(row["role"])}
                    if row["coefficient_source"] == "given":
                        edit["coefficient"] = float(row["coefficient_used"])
                    apply([{"action": "remove", "customer_id": cid, "manager_id": src}, edit])

    if ss.get("_coef_error"):
        st.error(ctx.t("coef_refused", err=views.md_text(ss.pop("_coef_error"))))
    if ss.pop("_coef_changed", None) is not None:
        st.rerun()                             # the what-if (and this page's tables) with the new edits

    # -- the effect on the managers involved: baseline -> what-if ------------------------------------
    edits = whatif_edits(ctx.baseline)
    if edits:
        st.subheader(ctx.t("coef_effect"))
        involved = sorted({e["manager_id"] for e in edits})
        a = ctx.baseline_result.managers.set_index("manager_id")
        b = managers.set_index("manager_id")
        effect = pd.DataFrame({"manager_id": involved, "name": [names.get(m, "") for m in involved]})
        for col in ("total", "pay", "rank"):
            effect[f"{col}_a"] = a[col].reindex(involved).to_numpy()
            effect[f"{col}_b"] = b[col].reindex(involved).to_numpy()
        effect["pay_delta"] = effect["pay_b"] - effect["pay_a"]
        effect["rank_change"] = effect["rank_a"] - effect["rank_b"]
        views.show(effect, lang, key="coef_effect_table",
                   extra={"total_a": "coef_total_a", "total_b": "coef_total_b", "pay_a": "pay_a_label",
                          "pay_b": "pay_b_label", "rank_a": "rank_a_label", "rank_b": "rank_b_label",
                          "pay_delta": "pay_change", "rank_change": "rank_change"})
        st.subheader(ctx.t("coef_edits"))
        shown = pd.DataFrame([{"action": ctx.t(f"coef_action_{e['action']}"), "customer_id": e["customer_id"],
                               "manager_id": e["manager_id"],
                               "role": ctx.t(f"role_weight_{e['role']}") if e.get("role") else "",
                               "coefficient": e.get("coefficient")} for e in edits])
        views.show(shown, lang, key="coef_edit_list", extra={"action": "coef_action", "coefficient": "coef_used"})
        if st.button(ctx.t("coef_clear"), key="coef_clear"):
            set_whatif_edits(ctx.baseline.edits)
            ss.pop(EDITS_KEY, None)
            st.rerun()
    else:
        st.caption(ctx.t("coef_none"))


whatif(ctx, draw)
