"""Who sees what: role filtering where data is read, the login gate on every page, lockout, idle."""

from __future__ import annotations

import glob
import json
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from calc.scenario import Scenario
from data.access import Access
from data.auth import LOCK_MINUTES, MAX_FAILURES, AuthError, Principal, Users
from data.ingest import load_extract
from data.store import Store
from tests.apptest import app

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["app.py"] + sorted(str(Path(p).relative_to(ROOT)) for p in glob.glob(str(ROOT / "pages" / "*.py")))


# ------------------------------------------------------------------ the read layer, on both backends

@pytest.fixture
def published_store(store_url):
    store = Store.open(store_url)
    frames = load_extract(ROOT / "data" / "sample" / "sample_bank.xlsx")[0].frames
    store.save_dataset("2026Q3", "sample.xlsx", "sha", frames, "t")
    pub = store.publish("2026Q3", Scenario(), "", "t")
    return store, pub["id"]


def test_every_row_a_branch_head_or_manager_gets_is_theirs(published_store):
    store, pub_id = published_store
    everyone = store.published_managers(pub_id)
    branches = sorted(everyone["branch"].unique())
    managers = sorted(everyone["manager_id"].unique())

    principals = st.one_of(
        st.builds(lambda b: Principal("bh", "branch_head", b), st.sampled_from(branches + ["不存在支行"])),
        st.builds(lambda m: Principal("m", "manager", "x", m), st.sampled_from(managers + ["RM9999"])),
    )
    queries = st.sampled_from(["managers", "customers", "history", "statement"])

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(who=principals, query=queries, target=st.sampled_from(managers))
    def check(who, query, target):
        access = Access(store, who)
        try:
            if query == "managers":
                rows = access.managers(pub_id)
            elif query == "customers":
                rows = access.customers(pub_id)
            elif query == "history":
                rows = access.history()
            else:
                chain = access.statement(pub_id, target)
                rows = chain["summary"]
        except PermissionError:
            # refused: a manager asking for customers, or anyone asking for a statement outside their scope
            assert query in ("customers", "statement")
            if query == "statement" and who.role == "branch_head":
                assert everyone.loc[everyone["manager_id"] == target, "branch"].iloc[0] != who.branch
            if query == "statement" and who.role == "manager":
                assert target != who.manager_id
            return
        if who.role == "branch_head":
            assert (rows["branch"] == who.branch).all()
            mine = set(everyone.loc[everyone["branch"] == who.branch, "manager_id"])
        else:
            assert (rows["manager_id"] == who.manager_id).all()
            assert query != "customers"
            mine = {who.manager_id} & set(managers)
        # and not an empty answer: a principal who has rows gets them (all of them, for managers)
        if query == "managers":
            assert set(rows["manager_id"]) == mine
        elif query in ("history", "customers"):
            assert (len(rows) > 0) == bool(mine), (query, who)

    check()


def test_postgresql_row_security_is_a_second_wall(published_store):
    """Inside a scope the database itself returns one branch or one manager, even to unfiltered queries."""
    from data.db import row_security_enforced, scoped

    store, pub_id = published_store
    if store.engine.dialect.name != "postgresql":
        assert not row_security_enforced(store.engine)          # SQLite: data.access is the only wall
        return
    assert row_security_enforced(store.engine), "the app's role must be bound by the policies"
    everyone = store.published_managers(pub_id)
    branch = everyone["branch"].iloc[0]
    target = everyone["manager_id"].iloc[-1]
    with scoped(branch=branch):                                  # the store's own filters are not used here
        mine = store.published_managers(pub_id)
        customers = store.published_customers(pub_id)
        history = store.history()
    assert len(mine) == (everyone["branch"] == branch).sum() > 0 and set(mine["branch"]) == {branch}
    assert len(customers) > 0 and set(customers["branch"]) == {branch}
    assert set(history["branch"]) == {branch}
    with scoped(manager_id=target):
        assert list(store.published_managers(pub_id)["manager_id"]) == [target]
        assert store.published_customers(pub_id).empty             # a manager reads no customer list
    with scoped(branch="不存在支行"):
        assert store.published_managers(pub_id).empty
    assert len(store.published_managers(pub_id)) == len(everyone)   # outside a scope: everything (admins)


def test_admin_and_analyst_see_every_branch(published_store):
    store, pub_id = published_store
    for role in ("admin", "analyst"):
        rows = Access(store, Principal("x", role)).managers(pub_id)
        assert len(rows) == 40 and rows["branch"].nunique() == 4


def test_actions_are_checked_by_role(published_store):
    store, _ = published_store
    assert Access(store, Principal("a", "admin")).can("publish")
    for role in ("analyst", "branch_head", "manager"):
        with pytest.raises(PermissionError):
            Access(store, Principal("x", role, "b", "m")).require("publish")
    assert not Access(store, Principal("x", "analyst")).can("upload")


# ------------------------------------------------------------------ accounts

def test_passwords_are_salted_hashes_and_lockout_after_five(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'u.db'}")
    users = Users(store)
    users.create("wang", "correct-horse-1", "branch_head", actor="t", branch="城东支行")
    users.create("li", "correct-horse-1", "analyst", actor="t")
    with store.engine.connect() as conn:
        hashes = [r[0] for r in conn.exec_driver_sql("SELECT password_hash FROM users")]
    assert all(h.startswith("$argon2id$") and "correct-horse-1" not in h for h in hashes)
    assert hashes[0] != hashes[1]                                  # salted: same password, different hash
    assert users.authenticate("wang", "correct-horse-1").branch == "城东支行"
    for _ in range(MAX_FAILURES - 1):
        with pytest.raises(AuthError) as e:
            users.authenticate("wang", "wrong")
        assert e.value.reason == "password"
    with pytest.raises(AuthError) as e:
        users.authenticate("wang", "wrong")
    assert e.value.reason == "locked" and f"try again in {LOCK_MINUTES} min" in str(e.value)
    with pytest.raises(AuthError) as e:                            # even the right password now
        users.authenticate("wang", "correct-horse-1")
    assert e.value.reason == "locked" and "min" in str(e.value)
    users.update("wang", "admin", unlock=True)
    assert users.authenticate("wang", "correct-horse-1").role == "branch_head"
    log = store.audit_log()
    assert {"login", "login_failed", "lockout", "user_add", "user_change"} <= set(log["action"])
    assert not log["after"].fillna("").str.contains("correct-horse").any()       # never logged


def test_user_rules(tmp_path):
    users = Users(Store.open(f"sqlite:///{tmp_path / 'u.db'}"))
    with pytest.raises(ValueError, match="at least 10"):
        users.create("a", "short", "admin", actor="t")
    with pytest.raises(ValueError, match="needs a branch"):
        users.create("b", "long-enough-1", "branch_head", actor="t")
    users.create("boss", "long-enough-1", "admin", actor="t", first_admin=True)
    with pytest.raises(ValueError, match="already exists"):
        users.create("boss2", "long-enough-1", "admin", actor="t", first_admin=True)
    with pytest.raises(ValueError, match="last active administrator"):
        users.update("boss", "boss", active=False)


def _claims(sub, email=None, verified=None, exp_in=3600):
    c = {"sub": sub, "exp": time.time() + exp_in, "is_logged_in": True}
    if email:
        c["email"] = email
    if verified is not None:
        c["email_verified"] = verified
    return c


def test_sso_identity_maps_to_an_account_or_to_nothing(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    users = Users(store)
    users.create("wang", None, "branch_head", actor="t", branch="城东支行", oidc_subject="sub-wang")
    users.create("li@bank.example", None, "manager", actor="t", branch="城西支行", manager_id="RM1")
    users.create("zhao", "long-enough-1", "analyst", actor="t", oidc_subject="sub-zhao")

    assert users.principal_for_sso(_claims("sub-wang", "someone@else")) == Principal("wang", "branch_head", "城东支行")
    assert users.principal_for_sso(_claims("nobody", "nobody@bank.example")) is None          # unknown: no access
    assert users.principal_for_sso(_claims("sub-wang", exp_in=-60)) is None                   # expired ID token
    # e-mail match (any case) binds the provider's subject to the account ...
    assert users.principal_for_sso(_claims("sub-li", "LI@bank.example", verified=True)).manager_id == "RM1"
    assert users.list().set_index("username").loc["li@bank.example", "oidc_subject"] == "sub-li"
    # ... so another identity that later carries the same e-mail gets nothing
    assert users.principal_for_sso(_claims("sub-intruder", "li@bank.example", verified=True)) is None
    assert users.principal_for_sso(_claims("sub-li")).username == "li@bank.example"           # no e-mail needed now
    # an e-mail the provider does not say is verified maps to nothing (false, "false" or no claim)
    users.create("qian@bank.example", None, "analyst", actor="t")
    for verified in (False, "false", None):
        assert users.principal_for_sso(_claims("sub-qian", "qian@bank.example", verified=verified)) is None
    assert users.principal_for_sso(_claims("sub-qian", "qian@bank.example", verified="true")).role == "analyst"
    users.update("wang", "admin", active=False)
    assert users.principal_for_sso(_claims("sub-wang")) is None                              # deactivated
    with pytest.raises(AuthError):                                       # an SSO-only account has no password
        users.authenticate("wang", "")
    log = store.audit_log()
    reasons = [json.loads(a or "{}").get("reason") for a in log.loc[log["action"] == "login_failed", "after"]]
    assert {"unknown identity", "expired token", "account bound to another identity", "unverified e-mail",
            "inactive"} <= set(reasons)
    assert (log.loc[log["action"] == "login", "after"].str.contains('"sso"')).sum() == 4


def test_sso_subject_rules(tmp_path):
    users = Users(Store.open(f"sqlite:///{tmp_path / 's.db'}"))
    with pytest.raises(ValueError, match="password is required"):
        users.create("nopass", None, "analyst", actor="t")                # neither a password nor an SSO identity
    users.create("a", None, "analyst", actor="t", oidc_subject="s1")
    with pytest.raises(ValueError, match="already bound"):
        users.create("b", "long-enough-1", "analyst", actor="t", oidc_subject="s1")
    users.create("b", "long-enough-1", "analyst", actor="t")
    with pytest.raises(ValueError, match="already bound to 'a'"):
        users.update("b", "admin", oidc_subject="s1")
    users.update("a", "admin", oidc_subject="")                          # blank unbinds
    users.update("b", "admin", oidc_subject=" s1 ")
    assert users.principal_for_sso(_claims("s1")).username == "b"


def test_an_overlong_user_name_is_refused_like_any_other(store_url):
    store = Store.open(store_url)
    with pytest.raises(AuthError) as e:
        Users(store).authenticate("x" * 150, "whatever-password")
    assert e.value.reason == "unknown"
    row = store.audit_log(1).iloc[0]                                 # audited, cut to the column's size
    assert row["action"] == "login_failed" and row["actor"] == "x" * 100


def test_cli_user_add_reads_the_password_from_stdin(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "JIXIAO_DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}"}
    p = subprocess.run([sys.executable, "cli.py", "user", "add", "zhang", "--role", "branch_head", "--branch", "城西支行"],
                       input="a-long-password-9\n", capture_output=True, text=True, env=env, timeout=60, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    listed = subprocess.run([sys.executable, "cli.py", "user", "list"], capture_output=True, text=True, env=env,
                            timeout=60, cwd=ROOT).stdout
    assert "zhang" in listed and "branch_head" in listed and "城西支行" in listed
    assert "a-long-password-9" not in listed
    users = Users(Store.open(env["JIXIAO_DATABASE_URL"]))
    assert users.authenticate("zhang", "a-long-password-9").branch == "城西支行"


# ------------------------------------------------------------------ the app

@pytest.fixture
def users(seeded_store):
    return seeded_store


def run_page(page, who: str | None = None, lang="zh", **state):
    return app(page, lang, who, **state).run()


def shows_login_form_only(at) -> bool:
    keys = {w.key for w in at.text_input}
    return ({"login_username", "login_password"} <= keys and not at.dataframe and not at.slider
            and not at.get("plotly_chart") and not at.metric)


@pytest.mark.parametrize("page", PAGES)
def test_no_session_shows_the_login_form_and_nothing_else(users, page):
    at = run_page(page)
    assert not at.exception, [e.value for e in at.exception]
    assert shows_login_form_only(at), page
    assert at.button(key="login_submit").label


def test_login_through_the_form(users):
    at = run_page("pages/rankings.py")
    at.text_input(key="login_username").input("bh_east")
    at.text_input(key="login_password").input("branch-pass-123")
    at.button(key="login_submit").click().run()
    assert not at.exception
    ranking = at.dataframe[0].value
    assert set(ranking["所属机构"]) == {"城东支行"}


def test_wrong_password_is_refused_without_saying_which_part(users):
    at = run_page("app.py", lang="en")
    at.text_input(key="login_username").input("bh_east")
    at.text_input(key="login_password").input("nope-nope-nope")
    at.button(key="login_submit").click().run()
    assert len(at.error) == 1 and at.error[0].value.startswith("Wrong user name or password")
    assert shows_login_form_only(at)


def test_branch_head_sees_only_their_branch(users):
    pub = users.publications().iloc[0]
    managers = users.published_managers(int(pub["id"]))
    east = set(managers.loc[managers["branch"] == "城东支行", "manager_id"])
    for page in ("pages/rankings.py", "pages/customers.py", "app.py", "pages/history.py"):
        at = run_page(page, "branch_head")
        assert not at.exception, (page, [e.value for e in at.exception])
        assert at.dataframe, f"{page}: shows no table at all"
        for d in at.dataframe:
            frame = d.value
            if "所属机构" in frame.columns:
                assert set(frame["所属机构"]) == {"城东支行"}, page
            if "客户经理编号" in frame.columns:                    # tables without a branch column too
                assert set(frame["客户经理编号"]) <= east, page
        assert not at.slider, "no what-if panel for a branch head"


def test_the_login_form_does_not_tell_which_user_names_exist(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'enum.db'}"
    monkeypatch.setenv("JIXIAO_DATABASE_URL", url)
    Users(Store.open(url)).create("wang", "wang-password-1", "analyst", actor="t")
    seen = {}
    for name in ("wang", "no-such-user"):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
        at.session_state["lang"] = "en"
        at.run()
        for _ in range(MAX_FAILURES + 1):                            # the real account is locked by now
            at.text_input(key="login_username").input(name)
            at.text_input(key="login_password").input("wrong-password")
            at.button(key="login_submit").click().run()
            seen.setdefault(name, set()).add(at.error[0].value)
    assert seen["wang"] == seen["no-such-user"] and len(seen["wang"]) == 1
    log = Store.open(url).audit_log()
    assert ((log["actor"] == "wang") & (log["action"] == "lockout")).any()   # the audit log keeps the reason


def test_branch_head_query_parameters_reach_nothing_else(users):
    at = AppTest.from_file(str(ROOT / "pages/rankings.py"), default_timeout=60)
    at.query_params["pay_factor_asset"] = "0.5"
    at.query_params["branch"] = "城西支行"
    from conftest import TEST_USERS

    name, _, branch, _ = TEST_USERS["branch_head"]
    at.session_state["_who"] = Principal(name, "branch_head", branch)
    at.session_state["_last_seen"] = time.time()
    at.run()
    assert set(at.dataframe[0].value["所属机构"]) == {"城东支行"}


def test_manager_sees_only_their_own_row_and_statement(users):
    at = run_page("pages/rankings.py", "manager")
    assert list(at.dataframe[0].value["客户经理编号"]) == ["RM2447"]
    at = run_page("pages/manager.py", "manager")
    assert not at.exception
    assert not at.selectbox or all(w.key != "pub_manager" for w in at.selectbox)   # nobody else to choose


@pytest.mark.parametrize("who, page", [("analyst", "pages/admin.py"), ("manager", "pages/admin.py"),
                                       ("analyst", "pages/upload.py"), ("branch_head", "pages/scenarios.py"),
                                       ("manager", "pages/customers.py")])
def test_roles_refused_on_pages_they_may_not_open(users, who, page):
    at = run_page(page, who, lang="en")
    assert [e.value for e in at.error] == ["Your role may not open this page."]
    assert not at.dataframe and not at.file_uploader and not at.slider


def test_idle_session_ends(users, seeded_store):
    at = run_page("pages/rankings.py", "analyst", _last_seen=time.time() - 31 * 60)
    assert shows_login_form_only(at)
    assert "idle_timeout" in set(seeded_store.audit_log(50)["action"])


def test_first_visit_on_an_empty_store_creates_the_administrator(tmp_path, monkeypatch):
    """A store without any user (the sample bank loaded, as `make run` or `cli.py seed` does:
    the app itself never seeds) asks for the first administrator, once."""
    from data.seed import seed

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    monkeypatch.setenv("JIXIAO_DATABASE_URL", url)
    assert seed(Store.open(url), force=True)
    at = AppTest.from_file(str(ROOT / "pages/rankings.py"), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    assert {w.key for w in at.text_input} == {"first_admin_username", "first_admin_password", "first_admin_password2"}
    assert not at.dataframe
    at.text_input(key="first_admin_username").input("boss")
    at.text_input(key="first_admin_password").input("first-admin-pw-1")
    at.text_input(key="first_admin_password2").input("first-admin-pw-1")
    at.button(key="first_admin_submit").click().run()
    assert not at.exception
    assert at.dataframe, "the administrator lands on the page"
    again = AppTest.from_file(str(ROOT / "pages/rankings.py"), default_timeout=60).run()
    assert "first_admin_username" not in {w.key for w in again.text_input}      # one time only
    assert "login_username" in {w.key for w in again.text_input}


def test_the_app_never_seeds_a_configured_store(tmp_path, monkeypatch):
    """A configured database stays empty until someone uploads: the app's first visit (and the
    first administrator's) loads no sample bank into it."""
    url = f"sqlite:///{tmp_path / 'configured.db'}"
    monkeypatch.setenv("JIXIAO_DATABASE_URL", url)
    at = AppTest.from_file(str(ROOT / "pages/rankings.py"), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "first_admin_username" in {w.key for w in at.text_input}
    assert Store.open(url).datasets() == []
    at.text_input(key="first_admin_username").input("boss")
    at.text_input(key="first_admin_password").input("first-admin-pw-1")
    at.text_input(key="first_admin_password2").input("first-admin-pw-1")
    at.button(key="first_admin_submit").click().run()
    store = Store.open(url)
    assert store.datasets() == [] and store.publications().empty
    assert Users(store).count() == 1


# ------------------------------------------------------------------ single sign-on in the app (AppTest)
# The full browser flow against a mock OIDC provider is in tests/test_sso.py.

AUTH = {"redirect_uri": "http://127.0.0.1:8501/oauth2callback", "cookie_secret": "x" * 32, "client_id": "c",
        "client_secret": "s", "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration"}


def sso_page(page, claims, **state):
    at = AppTest.from_file(str(ROOT / page), default_timeout=60)
    at.secrets["auth"] = AUTH
    at.user = claims
    at.session_state["lang"] = "en"
    for k, v in state.items():
        at.session_state[k] = v
    return at.run()


@pytest.fixture
def sso_user(seeded_store):
    users = Users(seeded_store)
    if "bh_sso_apptest" not in set(users.list()["username"]):
        users.create("bh_sso_apptest", None, "branch_head", actor="tests", branch="开发区支行",
                     oidc_subject="apptest-sub-1")
    return "apptest-sub-1"


def test_sso_identity_opens_its_branch_only(sso_user):
    at = sso_page("pages/rankings.py", _claims(sso_user))
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["_who"] == Principal("bh_sso_apptest", "branch_head", "开发区支行")
    shown = at.dataframe[0].value
    assert set(shown["Branch"]) == {"开发区支行"}


def test_sso_unknown_or_expired_identity_gets_no_data(sso_user):
    for claims, box in ((_claims("not-a-user"), "error"), (_claims(sso_user, exp_in=-5), "warning")):
        at = sso_page("pages/rankings.py", claims)
        assert not at.exception
        assert not at.dataframe and not at.metric and not at.slider and not at.get("plotly_chart")
        assert "_who" not in at.session_state
        assert getattr(at, box), box
    assert "login_sso" in {b.key for b in at.button}                      # expired: sign in again


def test_sso_idle_session_ends_the_sso_login_too(sso_user, seeded_store):
    at = sso_page("pages/rankings.py", _claims(sso_user),
                  _who=Principal("bh_sso_apptest", "branch_head", "开发区支行"), _last_seen=time.time() - 31 * 60)
    assert not at.exception
    assert at.user == {"is_logged_in": False}           # st.logout() ran: the cookie cannot log it straight back in
    assert not at.dataframe and "_who" not in at.session_state
    log = seeded_store.audit_log(20)
    assert ((log["actor"] == "bh_sso_apptest") & (log["action"] == "idle_timeout")).any()


def test_admin_page_adds_changes_unlocks_and_deactivates_users(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'admin.db'}"
    monkeypatch.setenv("JIXIAO_DATABASE_URL", url)
    users = Users(Store.open(url))
    users.create("boss", "boss-password-1", "admin", actor="t", first_admin=True)
    users.create("wang", "wang-password-1", "branch_head", actor="t", branch="城东支行")
    for _ in range(MAX_FAILURES):
        with pytest.raises(AuthError):
            users.authenticate("wang", "wrong")

    def page():
        at = AppTest.from_file(str(ROOT / "pages/admin.py"), default_timeout=60)
        at.session_state["lang"] = "en"
        at.session_state["_who"] = Principal("boss", "admin")
        at.session_state["_last_seen"] = time.time()
        return at.run()

    at = page()
    assert not at.exception, [e.value for e in at.exception]
    assert {"User name", "SSO subject", "Failed attempts"} <= set(at.dataframe[0].value.columns)
    # add a single-sign-on-only analyst (no password, a subject)
    at.text_input(key="new_username").input("li")
    at.selectbox(key="new_role").set_value("analyst")
    at.text_input(key="new_oidc_subject").input("sub-li-42")
    at.button(key="add_user_submit").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert users.principal_for_sso(_claims("sub-li-42")) == Principal("li", "analyst")
    # move wang to another branch, unlock, then deactivate
    at = page()
    at.selectbox(key="edit_username").set_value("wang").run()
    at.text_input(key="edit_branch").input("城西支行")
    at.checkbox(key="edit_unlock").check()
    at.button(key="change_user_submit").click().run()
    assert not at.error, [e.value for e in at.error]
    assert users.authenticate("wang", "wang-password-1") == Principal("wang", "branch_head", "城西支行")
    at = page()
    at.selectbox(key="edit_username").set_value("wang").run()
    at.checkbox(key="edit_active").uncheck()
    at.button(key="change_user_submit").click().run()
    with pytest.raises(AuthError) as e:
        users.authenticate("wang", "wang-password-1")
    assert e.value.reason == "inactive"
    # the last administrator cannot be deactivated: the page says why
    at = page()
    at.selectbox(key="edit_username").set_value("boss").run()
    at.checkbox(key="edit_active").uncheck()
    at.button(key="change_user_submit").click().run()
    assert "last active administrator" in at.error[0].value
    log = Store.open(url).audit_log()
    assert (log["action"] == "user_change").sum() >= 2 and (log["action"] == "user_add").sum() == 3


def test_sso_misconfigured_says_so_and_the_password_form_still_works(users):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.secrets["auth"] = {"client_id": "c"}                      # no redirect_uri, cookie_secret or metadata URL
    at.session_state["lang"] = "en"
    at.run()
    at.button(key="login_sso").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "misconfigured" in at.error[0].value
    assert {"login_username", "login_password"} <= {w.key for w in at.text_input}


def test_logout_ends_the_session_and_returns_to_the_overview(users, seeded_store):
    at = run_page("pages/customers.py", "analyst")
    assert at.dataframe
    at.sidebar.button(key="logout").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert shows_login_form_only(at) and "_who" not in at.session_state
    assert at.title[0].value == "登录 · 绩效"
    log = seeded_store.audit_log(20)
    assert ((log["actor"] == "ana1") & (log["action"] == "logout")).any()
