"""Single sign-on in a real browser: `st.login()` against a mock OIDC provider on 127.0.0.1.

The app is served with an ``[auth]`` secrets file pointing at the mock provider; Chromium walks
the whole authorisation-code flow (app -> provider's authorise page -> /oauth2callback -> app).
"""

from __future__ import annotations

import io

import pytest

from tests.browser import errors_on, free_port, oidc_provider, require_browser, set_oidc_claims, settle, streamlit_server

pytestmark = pytest.mark.browser

BRANCH = "城西支行"          # not the password-form branch head's branch (城东支行)
BH_SUBJECT = "sso-bh-west-0001"
ANALYST_EMAIL = "sso.analyst@bank.example"


def require_sso() -> None:
    require_browser()
    try:
        import authlib  # noqa: F401
        import oidc_provider_mock  # noqa: F401
    except ImportError as e:                       # both are in the requirements files: CI has them
        pytest.fail(f"single sign-on tests need {e.name} (make test installs requirements-dev.txt)")


@pytest.fixture(scope="module")
def sso(seeded_store, tmp_path_factory):
    """(app URL, provider URL): the app configured for SSO with the mock provider, and SSO users."""
    require_sso()
    from data.auth import Users

    users = Users(seeded_store)
    known = set(users.list()["username"])
    if "bh_west_sso" not in known:
        users.create("bh_west_sso", None, "branch_head", actor="tests", branch=BRANCH, oidc_subject=BH_SUBJECT)
    if ANALYST_EMAIL not in known:
        users.create(ANALYST_EMAIL, None, "analyst", actor="tests")
    with oidc_provider() as provider:
        port = free_port()
        secrets = tmp_path_factory.mktemp("sso") / "secrets.toml"
        secrets.write_text(f"""[auth]
redirect_uri = "http://127.0.0.1:{port}/oauth2callback"
cookie_secret = "a-test-cookie-secret-of-enough-length"
client_id = "jixiao-test"
client_secret = "jixiao-test-secret"
server_metadata_url = "{provider}/.well-known/openid-configuration"
""", encoding="utf-8")
        with streamlit_server(port=port, secrets=secrets) as url:
            yield url, provider


def sso_login(browser, sso, sub: str):
    """A new browser context that logs in through the provider as ``sub``; returns the page."""
    url, provider = sso
    page = browser.new_context(viewport={"width": 1440, "height": 1000}, locale="zh-CN").new_page()
    page.goto(url)
    page.locator(".st-key-login_sso button").wait_for(timeout=30_000)
    page.locator(".st-key-login_sso button").click()
    page.wait_for_url(f"{provider}/oauth2/authorize**", timeout=30_000, wait_until="commit")
    page.locator("input[name=sub]").fill(sub)
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{url}/**", timeout=30_000, wait_until="commit")
    settle(page)
    return page


def branches_in_first_table(page) -> set[str]:
    header = page.locator("table").first.locator("thead th")
    header.first.wait_for(state="attached", timeout=15_000)
    names = [header.nth(i).inner_text() for i in range(header.count())]
    cells = page.locator("table").first.locator(f'td[aria-colindex="{names.index("所属机构") + 1}"]')
    return {cells.nth(i).inner_text() for i in range(cells.count())}


def test_branch_head_through_sso_sees_one_branch_on_every_url(sso, browser, seeded_store):
    url, _ = sso
    page = sso_login(browser, sso, BH_SUBJECT)
    assert not errors_on(page)
    assert "bh_west_sso" in page.locator('[data-testid="stSidebar"]').inner_text()
    assert page.locator("input[type=range]").count() == 0             # no live what-if for a branch head
    page.goto(f"{url}/rankings")           # a new session: the SSO cookie logs it in again, as the same account
    settle(page)
    assert branches_in_first_table(page) == {BRANCH}
    with page.expect_download(timeout=30_000) as dl:
        page.locator(".st-key-pub_rank_download button").click()
    import openpyxl

    ws = openpyxl.load_workbook(io.BytesIO(dl.value.path().read_bytes())).active
    header = [c.value for c in ws[1]]
    assert {r[header.index("所属机构")] for r in ws.iter_rows(min_row=2, values_only=True)} == {BRANCH}
    page.goto(f"{url}/customers?branch=城东支行&dataset=1")             # query parameters reach nothing else
    settle(page)
    assert branches_in_first_table(page) == {BRANCH}
    for path in ("admin", "upload", "scenarios"):
        page.goto(f"{url}/{path}")
        settle(page)
        assert "无权访问" in page.locator('[data-testid="stAlertContentError"]').first.inner_text(), path
        assert page.locator('[data-testid="stDataFrame"], [data-testid="stFileUploader"]').count() == 0, path
    log = seeded_store.audit_log(200)
    assert ((log["actor"] == "bh_west_sso") & (log["action"] == "login")
            & log["after"].fillna("").str.contains('"sso"')).any()
    page.context.close()


def test_unknown_identity_gets_no_access(sso, browser):
    url, _ = sso
    page = sso_login(browser, sso, "stranger-9999")
    for path in ("", "rankings", "manager"):
        if path:
            page.goto(f"{url}/{path}")
            settle(page)
        assert "未在本系统开通" in page.locator('[data-testid="stAlertContentError"]').first.inner_text(), path
        assert page.locator('[data-testid="stDataFrame"], .stPlotlyChart, [data-testid="stMetric"], table').count() == 0
        assert page.locator('[data-testid="stPageLink"]').count() == 0, path
    page.context.close()


def test_sso_by_verified_email_then_logout_ends_the_sso_session(sso, browser, seeded_store):
    url, provider = sso
    set_oidc_claims(provider, "sso-ana-7", {"email": ANALYST_EMAIL, "email_verified": True, "name": "SSO Analyst"})
    page = sso_login(browser, sso, "sso-ana-7")
    assert ANALYST_EMAIL in page.locator('[data-testid="stSidebar"]').inner_text()
    # an analyst gets the what-if panel (waited for: the run after the provider's redirect may still
    # be drawing it when the page first looks settled; a clean-clone CI run once counted none there)
    page.locator("input[type=range]").first.wait_for(state="attached", timeout=30_000)
    assert page.locator("input[type=range]").count() == 8
    assert seeded_store.audit_log(200).query("action == 'user_change'")["after"].str.contains("sso-ana-7").any()
    page.locator(".st-key-logout button").click()
    page.wait_for_url(f"{provider}/oauth2/end_session**", timeout=30_000, wait_until="commit")   # the provider's logout
    page.goto(url)
    page.locator(".st-key-login_username input").wait_for(timeout=30_000)   # not logged straight back in
    settle(page)
    assert page.locator('[data-testid="stSidebar"]').count() == 0 or \
        ANALYST_EMAIL not in page.locator('[data-testid="stSidebar"]').inner_text()
    page.context.close()
