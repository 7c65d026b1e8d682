"""Users 用户管理 (admins only): add users, change roles and branches, unlock, deactivate; audit log."""

import streamlit as st

from data.auth import ROLES, Users
from data.export import write_workbook
from ui import views
from ui.frame import frame

ctx = frame("page_admin")
ctx.access.require("manage_users")          # the frame already refused other roles; this is the second wall
users = Users(ctx.access.store)

st.subheader(ctx.t("users"))
table = users.list()
views.show(table, ctx.lang, key="users_table")

left, right = st.columns(2)
with left, st.form("add_user", clear_on_submit=True):
    st.markdown(f"**{ctx.t('add_user')}**")
    name = st.text_input(ctx.t("username"), key="new_username")
    pw = st.text_input(ctx.t("password"), type="password", key="new_password")
    role = st.selectbox(ctx.t("role"), ROLES, key="new_role", format_func=lambda r: ctx.t(f"role_{r}"))
    branch = st.text_input(ctx.t("branch"), key="new_branch")
    manager_id = st.text_input(ctx.t("manager_id"), key="new_manager_id")
    if st.form_submit_button(ctx.t("add_user"), key="add_user_submit"):
        try:
            users.create(name, pw, role, actor=ctx.user, branch=branch or None, manager_id=manager_id or None)
            st.success(ctx.t("done"))
            st.rerun()
        except ValueError as e:
            st.error(str(e))
with right, st.form("change_user"):
    st.markdown(f"**{ctx.t('change_user')}**")
    who = st.selectbox(ctx.t("username"), list(table["username"]), key="edit_username")
    row = table[table["username"] == who].iloc[0] if len(table) else None
    role = st.selectbox(ctx.t("role"), ROLES, key="edit_role", format_func=lambda r: ctx.t(f"role_{r}"),
                        index=ROLES.index(row["role"]) if row is not None else 0)
    branch = st.text_input(ctx.t("branch"), value=(row["branch"] or "") if row is not None else "", key="edit_branch")
    manager_id = st.text_input(ctx.t("manager_id"), value=(row["manager_id"] or "") if row is not None else "",
                               key="edit_manager_id")
    active = st.checkbox(ctx.t("active"), value=bool(row["active"]) if row is not None else True, key="edit_active")
    unlock = st.checkbox(ctx.t("unlock"), key="edit_unlock")
    new_pw = st.text_input(ctx.t("new_password"), type="password", key="edit_password")
    if st.form_submit_button(ctx.t("apply"), key="change_user_submit") and row is not None:
        changes = dict(role=role, branch=branch or None, manager_id=manager_id or None, active=active, unlock=unlock)
        if new_pw:
            changes["password"] = new_pw
        try:
            users.update(who, ctx.user, **changes)
            st.success(ctx.t("done"))
            st.rerun()
        except ValueError as e:
            st.error(str(e))

st.subheader(ctx.t("audit_log"))
ctx.access.require("read_audit")
log = ctx.access.store.audit_log(1000)
views.show(log, ctx.lang, key="audit_table")
st.download_button(ctx.t("download_audit"), lambda log=log: write_workbook({"audit": log.assign(at=log["at"].astype(str))}),
                   "audit_log.xlsx", key="download_audit")
