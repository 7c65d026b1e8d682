"""Users 用户管理 (admins only): add users, change roles and branches, unlock, deactivate; audit log."""

import pandas as pd
import streamlit as st

from data.auth import ROLES, Users
from data.db import row_security_enforced
from data.export import write_workbook
from ui import state, views
from ui.formats import money
from ui.i18n import VALUE_WORDS, value_word
from ui.frame import frame

ctx = frame("page_admin")
ctx.access.require("manage_users")          # the frame already refused other roles; this is the second wall
users = Users(ctx.access.store)
engine = ctx.access.store.engine
if engine.dialect.name == "postgresql" and not row_security_enforced(engine):
    st.warning(ctx.t("rls_bypassed"))

# branches and managers come from the newest dataset, so a typo (城东 for 城东支行) cannot be stored
known = state.active_dataset()
if known is not None and "managers" in known.frames and len(known.frames["managers"]):
    mf = known.frames["managers"]
    BRANCHES = sorted(set(mf["branch"].astype(str)))
    MANAGERS = dict(zip(mf["manager_id"].astype(str), mf["name"].astype(str) + " · " + mf["branch"].astype(str)))
else:
    BRANCHES, MANAGERS = None, None


def pick(label: str, key: str, options, current: str = "", names: dict | None = None):
    """A select box of the dataset's branches or managers (blank allowed), or a text box without a
    dataset; a stored value no longer in the data stays choosable."""
    if options is None:
        return st.text_input(label, key=key)
    choices = ["", *options, *([current] if current and current not in options else [])]
    return st.selectbox(label, choices, key=key,
                        format_func=lambda v: "—" if not v else f"{v} {names[v]}" if names and v in names else v)


st.subheader(ctx.t("users"))
table = users.list()
views.show(table.assign(role=table["role"].map(lambda r: ctx.t(f"role_{r}"))), ctx.lang, key="users_table")

left, right = st.columns(2)
with left, st.form("add_user", clear_on_submit=True):
    st.markdown(f"**{ctx.t('add_user')}**")
    name = st.text_input(ctx.t("username"), key="new_username")
    pw = st.text_input(ctx.t("password"), type="password", key="new_password")
    role = st.selectbox(ctx.t("role"), ROLES, key="new_role", format_func=lambda r: ctx.t(f"role_{r}"))
    branch = pick(ctx.t("branch"), "new_branch", BRANCHES)
    manager_id = pick(ctx.t("manager_id"), "new_manager_id", list(MANAGERS) if MANAGERS else None, names=MANAGERS)
    subject = st.text_input(ctx.t("sso_subject"), key="new_oidc_subject")
    st.caption(ctx.t("sso_only_hint"))
    if st.form_submit_button(ctx.t("add_user"), key="add_user_submit"):
        try:
            users.create(name, pw or None, role, actor=ctx.user, branch=branch or None, manager_id=manager_id or None,
                         oidc_subject=subject.strip() or None)
            state.changed()                   # sessions check their principal again on their next click
            st.session_state["_admin_done"] = True
            st.rerun()
        except ValueError as e:
            st.error(str(e))
EDIT_KEYS = ("edit_role", "edit_branch", "edit_manager_id", "edit_oidc_subject", "edit_active", "edit_unlock",
             "edit_password")


def load_user(row) -> None:
    """Fill the change form with the chosen user's stored values (before its widgets are drawn)."""
    text = {k: "" if pd.isna(row[k]) else str(row[k]) for k in ("branch", "manager_id", "oidc_subject")}
    values = (row["role"], text["branch"], text["manager_id"], text["oidc_subject"], bool(row["active"]), False, "")
    st.session_state.update(dict(zip(EDIT_KEYS, values)))


with right:
    st.markdown(f"**{ctx.t('change_user')}**")
    # The user is chosen outside the form, so the form always shows that user's stored values:
    # a choice inside a form would only arrive on submit, with the previous user's role and branch.
    who = st.selectbox(ctx.t("username"), list(table["username"]), key="edit_username")
    row = table.set_index("username").loc[who] if who is not None else None
    if row is not None and st.session_state.get("_edit_for") != who:
        load_user(row)
        st.session_state["_edit_for"] = who
    with st.form("change_user"):
        role = st.selectbox(ctx.t("role"), ROLES, key="edit_role", format_func=lambda r: ctx.t(f"role_{r}"))
        branch = pick(ctx.t("branch"), "edit_branch", BRANCHES, st.session_state.get("edit_branch", ""))
        manager_id = pick(ctx.t("manager_id"), "edit_manager_id", list(MANAGERS) if MANAGERS else None,
                          st.session_state.get("edit_manager_id", ""), MANAGERS)
        subject = st.text_input(ctx.t("sso_subject"), key="edit_oidc_subject")
        active = st.checkbox(ctx.t("active"), key="edit_active")
        unlock = st.checkbox(ctx.t("unlock"), key="edit_unlock")
        new_pw = st.text_input(ctx.t("new_password"), type="password", key="edit_password")
        if st.form_submit_button(ctx.t("apply"), key="change_user_submit") and row is not None:
            changes = dict(role=role, branch=branch or None, manager_id=manager_id or None, active=active,
                           unlock=unlock, oidc_subject=subject)
            if new_pw:
                changes["password"] = new_pw
            try:
                users.update(who, ctx.user, **changes)
            except ValueError as e:
                st.error(str(e))
            else:
                state.changed()
                st.session_state["_edit_for"] = None          # reload the stored values, clear the password
                st.session_state["_admin_done"] = True
                st.rerun()
if st.session_state.pop("_admin_done", False):
    st.success(ctx.t("done"))

# the audit log as people read it: what was done to what, with its details in words (the stored
# rows stay as they are: codes and JSON, for the record and the download)
_AUDIT_KEYS = {"role": "audit_role", "branch": "branch", "manager_id": "manager_id", "sso": "audit_sso",
               "first_admin": "audit_first_admin", "dataset": "dataset", "scenario": "audit_scenario",
               "reason": "publish_reason", "result_hash": "audit_hash", "file": "audit_file", "sha256": "audit_hash",
               "rows": "audit_rows", "toml": "audit_scenario", "active": "active", "version": "audit_version",
               "period": "period_axis", "failures": "audit_failures", "until": "audit_until",
               "pay_total": "total_pay", "rejected": "audit_rejected"}


def audit_target(value, lang: str) -> str:
    """``period 2026Q3 v1`` -> ``期间 2026Q3 v1``; ``user wang`` -> ``用户 wang``."""
    if not isinstance(value, str) or " " not in value:
        return "" if value is None or (isinstance(value, float) and value != value) else str(value)
    head, rest = value.split(" ", 1)
    word = {"period": "period_axis", "user": "audit_user", "scenario": "audit_scenario", "dataset": "dataset"}.get(head)
    return f"{ctx.t(word) if word else head} {rest}"


def audit_details(value, lang: str) -> str:
    """An audit row's JSON details as ``角色：支行负责人；机构：城东支行`` (a scenario's TOML by its first line)."""
    import json

    if not isinstance(value, str) or not value.strip():
        return ""
    try:
        data = json.loads(value)
    except ValueError:
        return value
    if not isinstance(data, dict):
        return value
    parts = []
    for k, v in data.items():
        if v is None or v == "":
            continue
        if k == "role":
            v = ctx.t(f"role_{v}")
        elif k == "reason" and v in VALUE_WORDS["reason"]:
            v = value_word("reason", v, lang)
        elif isinstance(v, bool):
            v = ctx.t("value_true" if v else "value_false")
        elif k == "toml":
            v = str(v).splitlines()[0] if str(v) else ""
        elif k in ("result_hash", "sha256"):
            v = str(v)[:12] + "…"
        elif isinstance(v, float):
            v = money(v)
        elif isinstance(v, dict):
            v = "、".join(f"{views.value_word_of(kk, lang)} {vv:,}" if isinstance(vv, int) else f"{kk} {vv}"
                         for kk, vv in v.items())
        key = ctx.t(_AUDIT_KEYS[k]) if k in _AUDIT_KEYS else k
        parts.append(f"{key}：{v}" if lang == "zh" else f"{key}: {v}")
    return "；".join(parts) if lang == "zh" else "; ".join(parts)


st.subheader(ctx.t("audit_log"))
ctx.access.require("read_audit")
log = ctx.access.store.audit_log(1000)
shown_log = log.assign(actor=log["actor"].map(lambda v: ctx.t("audit_system") if v == "system" else v),
                       target=log["target"].map(lambda v: audit_target(v, ctx.lang)),
                       before=log["before"].map(lambda v: audit_details(v, ctx.lang)),
                       after=log["after"].map(lambda v: audit_details(v, ctx.lang)))
views.show(shown_log, ctx.lang, key="audit_table", extra={"target": "audit_target"})
st.download_button(ctx.t("download_audit"), lambda log=log: write_workbook({"audit": log.assign(at=log["at"].astype(str))}),
                   "audit_log.xlsx", key="download_audit")
