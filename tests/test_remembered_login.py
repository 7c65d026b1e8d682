"""A password login survives reloads and new tabs, and ends when it should (issue 13).

The token (data.sessions) is checked here directly, and the whole behaviour in a real browser:
``streamlit run`` on 127.0.0.1 driven by Playwright, on a store of this module's own.
"""

from __future__ import annotations

import time

import pytest

from data.auth import IDLE_MINUTES, Principal

BOSS = ("boss", "boss-password-1")
HEAD = ("east_head", "east-password-1")


# ------------------------------------------------------------------ the token

def test_a_token_reads_back_only_unchanged_and_in_time():
    from data.sessions import MAX_HOURS, issue, read

    who = Principal("boss", "admin")
    now = 1_800_000_000.0
    token = issue(who, now)
    payload, why = read(token, now + 60)
    assert why == "ok" and payload["u"] == "boss" and payload["r"] == "admin" and payload["iat"] == now
    body, sig = token.split(".")
    assert read(body + "." + sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB"), now)[1] == "signature"
    other = issue(Principal("mallory", "admin"), now).split(".")[0]      # another payload, boss's signature
    assert other != body and read(other + "." + sig, now)[1] == "signature"
    assert read("x", now)[1] == "malformed" and read(None, now)[1] == "absent"
    # idle: the browser was last seen IDLE_MINUTES (30) minutes and one second ago
    assert read(token, now + IDLE_MINUTES * 60 + 1)[1] == "idle"
    assert read(token, now + IDLE_MINUTES * 60 - 1)[1] == "ok"
    # a token refreshed while active lives at most MAX_HOURS (12) hours after its login
    late = issue(who, now + MAX_HOURS * 3600 + 1, issued=now)
    assert read(late, now + MAX_HOURS * 3600 + 2)[1] == "expired"
    assert read(issue(who, now + MAX_HOURS * 3600 - 10, issued=now), now + MAX_HOURS * 3600 - 5)[1] == "ok"
    # a token "seen" in the future (a forged clock) is refused
    assert read(issue(who, now + 3600, issued=now), now)[1] == "expired"


# ------------------------------------------------------------------ in the browser


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A server on a store of this module with an administrator and a branch head."""
    from tests.browser import require_browser, streamlit_server

    require_browser()
    from data.auth import Users
    from data.store import Store

    url = f"sqlite:///{tmp_path_factory.mktemp('remember') / 'store.db'}"
    users = Users(Store.open(url))
    users.create(*BOSS, "admin", actor="t", first_admin=True)
    users.create(*HEAD, "branch_head", actor="t", branch="城东支行")
    with streamlit_server(env={"JIXIAO_DATABASE_URL": url}) as base:
        yield base, users


def _login(page, name: str, password: str) -> None:
    from tests.browser import settle

    page.wait_for_selector(".st-key-login_username input", timeout=30_000)
    page.locator(".st-key-login_username input").fill(name)
    page.locator(".st-key-login_password input").fill(password)
    page.locator(".st-key-login_submit button").click()
    page.wait_for_selector(".st-key-logout button", timeout=30_000)
    settle(page)


def _state(page) -> str:
    """``"in"`` when the page shows the logout button, ``"form"`` when it asks for the password."""
    page.wait_for_selector(".st-key-logout button, .st-key-login_username input", timeout=30_000)
    page.wait_for_timeout(500)                  # the run may still replace a first frame
    page.wait_for_selector(".st-key-logout button, .st-key-login_username input", timeout=30_000)
    return "in" if page.locator(".st-key-logout button").count() else "form"


def _cookie(context) -> str | None:
    from data.sessions import COOKIE

    found = [c["value"] for c in context.cookies() if c["name"] == COOKIE and c["value"]]
    return found[0] if found else None


@pytest.mark.browser
def test_reload_and_a_second_tab_keep_the_login_and_logout_ends_it(site, browser):
    base, _ = site
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    page.goto(base + "/")
    _login(page, *BOSS)
    token = _cookie(context)
    assert token, "the login sets the session cookie"
    page.reload()
    assert _state(page) == "in"
    second = context.new_page()
    second.goto(base + "/rankings")
    assert _state(second) == "in"
    second.close()
    page.locator(".st-key-logout button").click()
    assert _state(page) == "form"
    page.wait_for_function("() => !document.cookie.includes('jixiao_session=ey')", timeout=10_000)
    page.reload()
    assert _state(page) == "form"
    # the old cookie, kept by a browser (or a copy of it), no longer logs anyone in
    context.add_cookies([{"name": "jixiao_session", "value": token, "url": base}])
    page.reload()
    assert _state(page) == "form"
    context.close()


@pytest.mark.browser
def test_idle_expired_forged_and_changed_accounts_are_refused(site, browser):
    from data.sessions import issue

    base, users = site
    head = Principal(HEAD[0], "branch_head", "城东支行")

    def opens_with(token: str) -> str:
        context = browser.new_context(locale="zh-CN")
        context.add_cookies([{"name": "jixiao_session", "value": token, "url": base}])
        page = context.new_page()
        page.goto(base + "/")
        got = _state(page)
        context.close()
        return got

    now = time.time()
    assert opens_with(issue(head, now)) == "in"                                   # the control case
    assert opens_with(issue(head, now - IDLE_MINUTES * 60 - 5)) == "form"          # idle past 30 minutes
    assert opens_with(issue(head, now - 60, issued=now - 13 * 3600)) == "form"     # issued 13 hours ago
    good = issue(head, now)
    body, sig = good.split(".")
    assert opens_with(issue(Principal(HEAD[0], "admin"), now).split(".")[0] + "." + sig) == "form"   # forged
    users.update(HEAD[0], "t", branch="城西支行")                                   # moved to another branch
    assert opens_with(good) == "form"
    users.update(HEAD[0], "t", branch="城东支行")
    time.sleep(1.1)                  # tokens issued after the change are good again
    assert opens_with(issue(head, time.time())) == "in"
    users.update(HEAD[0], "t", active=False)                                      # deactivated
    assert opens_with(issue(head, time.time())) == "form"
