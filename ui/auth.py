"""The login gate drawn by the shared frame: first administrator, login form, SSO, idle timeout.

Until a principal is established, the gate draws its form and stops the script, so a page
opened directly without a session shows the login form and nothing else.
"""

from __future__ import annotations

import json
import threading
import time

import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

from data.auth import IDLE_MINUTES, AuthError, Principal, Users
from ui import state
from ui.i18n import t

__all__ = ["login_gate", "logout_button", "sso_configured"]

WHO = "_who"
LAST_SEEN = "_last_seen"
TOKEN = "_session_token"      # (issued, seen) of the remembered login this session last set (Unix s)
FORGET = "_forget_cookie"     # set at logout: the next run clears the browser's cookie
CHECKED = "_who_checked"       # (principal, store generation, monotonic time) of the last look-up
# A change made on the Users page takes effect on the user's next click (it calls
# state.changed()); one made elsewhere (the command line, another server) within this many seconds.
RECHECK_SECONDS = 30.0


def sso_configured() -> bool:
    """True when ``[auth]`` is set in secrets.toml (the bank's OIDC provider)."""
    try:
        return "auth" in st.secrets
    except Exception:  # noqa: BLE001 - no secrets file at all
        return False


def _end_session(users: Users, reason: str) -> None:
    who = st.session_state.pop(WHO, None)
    st.session_state.pop(LAST_SEEN, None)
    st.session_state.pop(CHECKED, None)
    if st.session_state.pop(TOKEN, None) is not None:
        st.session_state[FORGET] = True
    if who is not None:
        users.logout(who.username, reason)


def _first_admin_form(users: Users, lang: str) -> None:
    st.title(t("first_admin_title", lang))
    st.info(t("first_admin_help", lang))
    with st.form("first_admin"):
        name = st.text_input(t("username", lang), key="first_admin_username")
        pw = st.text_input(t("password", lang), type="password", key="first_admin_password")
        pw2 = st.text_input(t("password_again", lang), type="password", key="first_admin_password2")
        if st.form_submit_button(t("create_admin", lang), key="first_admin_submit"):
            if pw != pw2:
                st.error(t("passwords_differ", lang))
            else:
                try:
                    who = users.create(name, pw, "admin", actor=name or "?", first_admin=True)
                except ValueError as e:
                    st.error(str(e))
                else:
                    st.session_state[WHO] = who
                    st.session_state[LAST_SEEN] = time.time()
                    users.store.audit(who.username, "login", f"user {who.username}", after={"via": "first admin"})
                    _remember(who, time.time(), new=True)
                    st.rerun()


def _start_sso(lang: str) -> None:
    """Send the browser to the provider; a misconfigured ``[auth]`` gets a message, not a stack trace."""
    try:
        st.login()
    except Exception as e:  # noqa: BLE001 - StreamlitAuthError and friends: say what is wrong with [auth]
        st.error(t("sso_misconfigured", lang, why=str(e)))


def _login_form(users: Users, lang: str) -> None:
    st.title(t("login_title", lang))
    if st.session_state.pop("_idle_notice", False):
        st.warning(t("idle_ended", lang, minutes=IDLE_MINUTES))
    if sso_configured():
        if st.button(t("login_sso", lang), key="login_sso"):
            _start_sso(lang)
    with st.form("login"):
        name = st.text_input(t("username", lang), key="login_username")
        pw = st.text_input(t("password", lang), type="password", key="login_password")
        if st.form_submit_button(t("login", lang), key="login_submit"):
            try:
                who = users.authenticate(name, pw)
            except AuthError:
                # one message whatever the reason (unknown, password, locked, inactive), so the form
                # does not tell which user names exist; the audit log keeps the reason
                st.error(t("login_failed", lang))
            else:
                st.session_state[WHO] = who
                st.session_state[LAST_SEEN] = time.time()
                _remember(who, time.time(), new=True)
                st.rerun()


def _sso_claims() -> dict | None:
    """The identity claims of a single-sign-on login in this browser, or None."""
    if not sso_configured():
        return None
    try:
        return st.user.to_dict() if st.user.is_logged_in else None
    except Exception:  # noqa: BLE001 - Authlib missing or [auth] incomplete: the login form still works
        return None


def _sso_principal(users: Users, lang: str) -> Principal | None:
    """Map a single-sign-on identity to its account; an unknown identity gets a refusal and nothing else."""
    claims = _sso_claims()
    if claims is None:
        return None
    key = (claims.get("sub"), claims.get("email"), claims.get("exp"))
    who = None if st.session_state.get("_sso_refused") == key else users.principal_for_sso(claims)
    if who is None:
        st.session_state["_sso_refused"] = key          # audited once per identity and session, not per rerun
        st.title(t("login_title", lang))
        exp = claims.get("exp")
        if isinstance(exp, (int, float)) and exp < time.time():
            st.warning(t("sso_expired", lang))
            if st.button(t("login_sso", lang), key="login_sso"):
                _start_sso(lang)
        else:
            st.error(t("sso_unknown", lang, who=claims.get("email") or claims.get("sub") or "?"))
        if st.button(t("logout", lang), key="sso_logout"):
            st.logout()
        st.stop()
    st.session_state.pop("_sso_refused", None)
    return who


def _sso_logout() -> bool:
    """End the single-sign-on identity too (its cookie would otherwise log the browser straight back in).

    Returns True when the browser is being sent to the provider's logout (the run must then stop,
    not rerun, or the redirect is lost).
    """
    if _sso_claims() is None:
        return False
    st.logout()
    return True


def login_gate(lang: str) -> Principal:
    """Return the session's principal, or draw the right form and stop the script."""
    _run.slot = st.sidebar.empty()            # where a cookie script goes (:func:`_emit`); empty most runs
    users = Users(state.store())
    who: Principal | None = st.session_state.get(WHO)
    now = time.time()
    if who is not None and now - st.session_state.get(LAST_SEEN, now) > IDLE_MINUTES * 60:
        _end_session(users, "idle_timeout")
        st.session_state["_idle_notice"] = True
        _sso_logout()
        who = None
    if who is not None and not _recently_checked(who):
        current = users.principal(who.username)        # role, branch or deactivation take effect
        if current is None:
            _end_session(users, "logout")
            who = None
        else:
            who = current
            st.session_state[WHO] = who
            st.session_state[CHECKED] = (who, state.generation(), time.monotonic())
    if who is None and not st.session_state.get(FORGET):
        who = _resumed(users, now)
    if who is None:
        who = _sso_principal(users, lang)
        if who is not None:
            st.session_state[WHO] = who
    if who is None:
        _forget()
        if users.count() == 0:
            _first_admin_form(users, lang)
        else:
            _login_form(users, lang)
        st.stop()
    st.session_state[LAST_SEEN] = now
    pending = st.session_state.pop("_cookie_pending", None)
    if pending is not None:                   # set at the login, whose run ended in a rerun
        _emit(pending)
    elif st.session_state.get(TOKEN) is not None:
        _remember(who, now)
    return who


# ---------------------------------------------------------------------------------------------
# Remembered logins (data.sessions): the cookie is set and cleared by a line of JavaScript,
# because a Streamlit script cannot send a Set-Cookie header; see docs/RULES.md for why the
# design is safe without HttpOnly.

def _cookie_script(value: str | None, max_age: int) -> str:
    """A script setting (or, with None, clearing) the session cookie for this site's path /."""
    from data.sessions import COOKIE

    if value is None:
        assign = f"{COOKIE}=; Path=/; Max-Age=0; SameSite=Strict"
    else:
        assign = f"{COOKIE}={value}; Path=/; Max-Age={int(max_age)}; SameSite=Strict"
    return ("<script>(function(){var c=" + json.dumps(assign) +
            ";if(location.protocol==='https:'){c+='; Secure';}document.cookie=c;})();</script>")


_run = threading.local()      # this script run's slot for the cookie script (runs of sessions are threads)


def _emit(script: str) -> None:
    """Run ``script`` in the browser, in the slot :func:`login_gate` keeps at the top of the
    sidebar on every run: the slot is there whether or not it holds a script, so the elements
    after it (the what-if panel's sliders) keep their places and a refresh never remounts them."""
    slot = getattr(_run, "slot", None)
    if slot is None:
        slot = _run.slot = st.sidebar.empty()
    slot.html(script, unsafe_allow_javascript=True, width="content")


def _remember(who: Principal, now: float, new: bool = False) -> None:
    """Set the browser's session cookie for ``who``: at a password login (``new``), and again
    when the page has been active for :data:`data.sessions.REFRESH_SECONDS` since it was set
    (the idle timeout counts from the last refresh). Single sign-on logins keep their own cookie."""
    from data.sessions import MAX_HOURS, REFRESH_SECONDS, issue

    held = st.session_state.get(TOKEN)
    if not new and held is not None and now - held[1] < REFRESH_SECONDS:
        return
    issued = now if new or held is None else held[0]
    token = issue(who, now, issued)
    st.session_state[TOKEN] = (issued, now)
    st.session_state.pop(FORGET, None)
    max_age = max(1, int(issued + MAX_HOURS * 3600 - now))
    if new:
        st.session_state["_cookie_pending"] = _cookie_script(token, max_age)     # emitted after the rerun
    else:
        _emit(_cookie_script(token, max_age))


def _resumed(users: Users, now: float) -> Principal | None:
    """The account this browser's session cookie resumes (a reload, a new tab), or None."""
    from data.sessions import COOKIE, resume

    try:
        token = st.context.cookies.get(COOKIE)
    except Exception:  # noqa: BLE001 - no browser context (AppTest, bare mode)
        return None
    if not token:
        return None
    who, payload, _why = resume(users, token, now)
    if who is None:
        st.session_state[FORGET] = True               # a refused cookie is cleared
        return None
    st.session_state[WHO] = who
    st.session_state[LAST_SEEN] = now
    st.session_state[CHECKED] = (who, state.generation(), time.monotonic())
    st.session_state[TOKEN] = (payload["iat"], payload["seen"])
    return who


def _forget() -> None:
    """Clear the browser's session cookie once after a logout or a refused cookie."""
    if st.session_state.pop(FORGET, False):
        _emit(_cookie_script(None, 0))


def _recently_checked(who: Principal) -> bool:
    """True when ``who`` was read from the store less than RECHECK_SECONDS ago and nothing was
    changed in the store by this process since (so a slider move costs no user query)."""
    seen = st.session_state.get(CHECKED)
    return (seen is not None and seen[0] == who and seen[1] == state.generation()
            and time.monotonic() - seen[2] < RECHECK_SECONDS)


def logout_button(who: Principal, lang: str) -> None:
    """Who is logged in, and the logout button (sidebar)."""
    st.sidebar.caption(t("logged_in_as", lang, user=who.username, role=t(f"role_{who.role}", lang),
                         scope=who.branch or who.manager_id or ""))
    if st.sidebar.button(t("logout", lang), key="logout"):
        users = Users(state.store())
        _end_session(users, "logout")
        if _sso_logout():
            st.stop()
        try:
            st.switch_page("app.py")             # the next person to log in starts at the Overview
        except StreamlitPageNotFoundError:       # a page file run alone (AppTest): stay, show the login form
            st.rerun()
