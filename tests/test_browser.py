"""The app in a real browser: `streamlit run` on 127.0.0.1, Chromium driven by Playwright."""

from __future__ import annotations

import pytest

from tests.browser import errors_on, require_browser, screenshot_dir, settle, streamlit_server

pytestmark = pytest.mark.browser

PAGES = ["rankings", "customers", "scorecard", "manager", "coefficients", "history", "scenarios", "upload", "admin", ""]
NO_PANEL = {"history", "upload", "admin"}          # pages no lever of the what-if panel changes


@pytest.fixture(scope="module")
def server(seeded_store):
    """A fresh server on the test store (users of every role already exist)."""
    require_browser()
    with streamlit_server() as url:
        yield url


def login(page, role: str = "admin") -> None:
    """Fill the login form as the test user of ``role``."""
    from conftest import TEST_USERS

    name, password, _, _ = TEST_USERS[role]
    page.locator(".st-key-login_username input").fill(name)
    page.locator(".st-key-login_password input").fill(password)
    page.locator(".st-key-login_submit button").click()
    page.wait_for_function("() => !document.querySelector('.st-key-login_username')", timeout=30_000)
    settle(page)


def new_page(browser, lang="zh"):
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, locale="zh-CN" if lang == "zh" else "en-US")
    return context.new_page()


def test_every_page_url_without_login_shows_the_login_form_only(server, browser, tmp_path):
    for path in PAGES:                               # /rankings is the fresh server's first request
        page = new_page(browser)
        page.goto(f"{server}/{path}")
        page.locator(".st-key-login_username input").wait_for(timeout=30_000)
        settle(page)
        assert page.locator("h1").inner_text().strip() == "登录 · 绩效", path
        assert page.locator('[data-testid="stDataFrame"], .stPlotlyChart, [data-testid="stMetric"]').count() == 0
        assert page.locator("input[type=range]").count() == 0, f"/{path}: the what-if panel leaked"
        if not path:
            page.screenshot(path=str(screenshot_dir(tmp_path) / "00_login.png"))
        page.context.close()


def test_every_page_by_direct_url_after_login(server, browser, tmp_path):
    shots = screenshot_dir(tmp_path)
    for i, path in enumerate(PAGES):
        page = new_page(browser)                      # a new session each time, straight to the URL
        page.goto(f"{server}/{path}")
        login(page, "admin")
        assert not errors_on(page), (path, errors_on(page))
        nav = page.locator('[data-testid="stPageLink"]')
        nav.nth(9).wait_for(timeout=15_000)               # the shared frame's ten links for an admin
        assert nav.count() == 10, f"/{path}: the shared frame's navigation is missing"
        if path in NO_PANEL:
            settle(page)
            assert page.locator("input[type=range]").count() == 0, f"/{path}: no lever acts here, no panel"
        else:
            page.locator(".st-key-pay_factor_intermediate input[type=range]").wait_for(state="attached", timeout=15_000)
            settle(page)
        assert not errors_on(page), (path, errors_on(page))
        page.screenshot(path=str(shots / f"{i + 1:02d}_{path or 'overview'}.png"), full_page=False)
        page.context.close()


def test_branch_head_logs_in_and_sees_one_branch(server, browser, tmp_path):
    page = new_page(browser)
    page.goto(f"{server}/rankings")
    login(page, "branch_head")
    assert not errors_on(page)
    assert page.locator("input[type=range]").count() == 0
    header = page.locator("table").first.locator("thead th")
    header.first.wait_for(state="attached", timeout=15_000)
    names = [header.nth(i).inner_text() for i in range(header.count())]
    col = names.index("所属机构")
    cells = page.locator("table").first.locator(f'td[aria-colindex="{col + 1}"]')
    values = {cells.nth(i).inner_text() for i in range(cells.count())}
    assert values == {"城东支行"}
    assert page.locator('[data-testid="stPageLink"]').count() == 6       # no scenarios, upload or users pages
    with page.expect_download(timeout=30_000) as dl:                     # the workbook is built on click
        page.locator(".st-key-pub_rank_download button").click()
    import io

    import openpyxl

    assert dl.value.suggested_filename == "rankings_2026Q3.xlsx"
    ws = openpyxl.load_workbook(io.BytesIO(dl.value.path().read_bytes())).active
    header = [c.value for c in ws[1]]
    assert {r[header.index("所属机构")] for r in ws.iter_rows(min_row=2, values_only=True)} == {"城东支行"}
    page.screenshot(path=str(screenshot_dir(tmp_path) / "20_branch_head.png"))
    page.goto(f"{server}/admin")             # typing another URL reloads: a new session, the login remembered
    page.locator('[data-testid="stAlertContentError"]').first.wait_for(timeout=30_000)
    assert page.locator(".st-key-login_username input").count() == 0
    assert "无权访问" in page.locator('[data-testid="stAlertContentError"]').first.inner_text()
    assert page.locator('[data-testid="stDataFrame"]').count() == 0
    page.context.close()


def test_logout_returns_to_the_overview_login(server, browser):
    page = new_page(browser)
    page.goto(f"{server}/admin")
    login(page, "admin")
    page.locator(".st-key-logout button").click()
    page.locator(".st-key-login_username input").wait_for(timeout=30_000)
    settle(page)
    assert page.url.rstrip("/") == server          # the next person does not land on the Users page
    assert page.locator('[data-testid="stDataFrame"], [data-testid="stPageLink"]').count() == 0
    page.context.close()


def test_english_switch(server, browser):
    page = new_page(browser)
    page.goto(f"{server}/rankings?lang=en")
    page.locator(".st-key-login_username input").wait_for(timeout=30_000)
    assert page.locator("h1").inner_text().strip() == "Log in · Jixiao"
    login(page, "analyst")
    assert page.locator("h1").inner_text().strip() == "Rankings"
    assert not errors_on(page)
    page.context.close()


def _slider(page, key):
    return page.locator(f".st-key-{key} input[type=range]")


RANKING = ".st-key-ranking"       # the ranking table (the biggest moves are a table above it)


def _first_row_pay(page) -> str:
    page.locator(f"{RANKING} table thead th", has_text="绩效工资").first.wait_for(state="attached", timeout=15_000)
    header = page.locator(f"{RANKING} table").first.locator("thead th")
    names = [header.nth(i).inner_text() for i in range(header.count())]
    col = names.index("绩效工资")
    return page.locator(f"{RANKING} table").first.locator(f'[data-testid="glide-cell-{col}-0"]').inner_text()


def test_slider_moves_the_table_and_survives_a_page_switch(server, browser, tmp_path):
    page = new_page(browser)
    page.goto(f"{server}/rankings")
    login(page, "admin")
    before = _first_row_pay(page)
    slider = _slider(page, "pay_factor_intermediate")
    assert slider.get_attribute("value") == "0.1"
    slider.focus()
    for _ in range(20):                                # up from 0.100 in steps of 0.005
        page.keyboard.press("ArrowRight")
        page.wait_for_timeout(30)
    page.wait_for_function(
        """() => parseFloat(document.querySelector('.st-key-pay_factor_intermediate input[type=range]').value) > 0.1""")
    page.wait_for_timeout(500)
    settle(page)
    moved = _slider(page, "pay_factor_intermediate").get_attribute("value")
    assert moved == "0.2"                              # every press counted
    page.wait_for_function(f"""(before) => {{
        const table = document.querySelector('{RANKING} table');
        const cells = [...table.querySelectorAll('thead th')].map(h => h.innerText);
        const col = cells.indexOf('绩效工资');
        const cell = table.querySelector(`[data-testid="glide-cell-${{col}}-0"]`);
        return cell && cell.innerText !== before; }}""", arg=before)
    assert _first_row_pay(page) != before
    page.screenshot(path=str(screenshot_dir(tmp_path) / "10_rankings_after_move.png"))

    page.locator('[data-testid="stSidebar"]').get_by_role("link", name="客户", exact=True).click()
    page.wait_for_url("**/customers*")
    settle(page)
    assert page.locator("h1").inner_text().strip() == "客户"
    assert _slider(page, "pay_factor_intermediate").get_attribute("value") == moved
    assert not errors_on(page)
    page.context.close()


def test_rapid_presses_on_two_sliders_all_count_and_each_box_agrees(server, browser):
    """Arrow presses 15 ms apart, alternating between two sliders: every press counts (none is
    overwritten by the server's answer to an earlier one, or by a number box's value sent before
    that answer arrived), and each box, the URL and the page's parameters agree with its slider."""
    page = new_page(browser)
    page.goto(f"{server}/rankings")
    login(page, "admin")
    for _ in range(6):                 # 0.1 + 6 x 0.005 and 0.3 + 6 x 0.05
        for key in ("pay_factor_intermediate", "role_weight_secondary"):
            _slider(page, key).focus()
            page.keyboard.press("ArrowRight")
            page.wait_for_timeout(15)
    settle(page)
    page.wait_for_timeout(1_000)
    settle(page)
    got = {key: (_slider(page, key).get_attribute("value"), page.locator(f".st-key-{key}_box input").input_value())
           for key in ("pay_factor_intermediate", "role_weight_secondary")}
    assert got == {"pay_factor_intermediate": ("0.13", "0.1300"), "role_weight_secondary": ("0.6", "0.600")}
    assert page.url.endswith("?pay_factor_intermediate=0.13&role_weight_secondary=0.6")
    assert "已修改 2 项参数" in page.locator('[data-testid="stSidebar"]').inner_text()
    assert not errors_on(page)
    page.context.close()


def test_a_number_box_moves_the_slider_and_who_moves_is_on_the_first_screen(server, browser, tmp_path):
    """At 1366 x 768, after a move the summary and the biggest moves are visible without scrolling."""
    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN")
    page = context.new_page()
    page.goto(f"{server}/rankings")
    login(page, "admin")
    box = page.locator(".st-key-pay_factor_intermediate_box input")
    box.fill("0.2")
    box.press("Enter")
    page.wait_for_function(
        """() => document.querySelector('.st-key-pay_factor_intermediate input[type=range]').value === '0.2'""",
        timeout=30_000)
    page.locator(".st-key-top_moves table").first.wait_for(state="attached", timeout=30_000)
    settle(page)
    assert not errors_on(page)
    moved = page.locator('[data-testid="stMetric"]').first
    assert "名次变化人数" in moved.inner_text() and not moved.inner_text().strip().endswith("0 / 40")
    rows = page.locator(".st-key-top_moves [data-testid='stDataFrame']").first.bounding_box()
    assert rows is not None and rows["y"] + rows["height"] <= 768, rows        # no scrolling needed
    page.screenshot(path=str(screenshot_dir(tmp_path) / "11_rankings_who_moves_1366.png"))
    context.close()
