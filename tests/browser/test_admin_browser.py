"""Staff use the admin in a real browser: log in, find a member by phone, import a file.

Headless Debian Chromium driven by Playwright against pytest-django's live server (which serves
the static files through ``StaticFilesHandler``, so the admin's CSS loads without ``DEBUG``).
"""

import datetime as dt
from decimal import Decimal

import pytest

from members.models import Member
from tests.browser.conftest import BROWSER_TEST, TIMEOUT_MS
from tests.browser.conftest import log_in as log_in_as
from tests.factories import MemberFactory, OrderFactory, StoreFactory

PASSWORD = "pw-browser-1"

pytestmark = BROWSER_TEST


@pytest.fixture
def page(browser, live_server, django_user_model):
    django_user_model.objects.create_superuser("staff", "staff@example.com", PASSWORD)
    context = browser.new_context(locale="en-US", base_url=live_server.url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


def log_in(page) -> list:
    """Log in through the admin's login form; return the responses of its stylesheets."""
    stylesheets = []
    page.on("response", lambda r: stylesheets.append(r) if r.url.endswith(".css") else None)
    log_in_as(page, "staff", PASSWORD)
    return stylesheets


def test_staff_find_a_member_by_phone_and_see_their_recent_orders(page):
    # given
    store = StoreFactory(code="SH01", name="静安店")
    member = MemberFactory(mobile="13800138000", name="张三", home_store=store)
    MemberFactory(mobile="13800138001", name="李四", home_store=store)
    paid_at = dt.datetime(2024, 5, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    for i in range(3):
        OrderFactory(member=member, store=store, external_id=f"WEB-{i}", paid_at=paid_at, amount=Decimal("38.00"))
    # when
    stylesheets = log_in(page)
    page.goto("/admin/members/member/")
    page.fill("#searchbar", "+86 138-0013-8000")
    page.press("#searchbar", "Enter")
    page.wait_for_url("**q=*")
    rows = page.locator("#result_list tbody tr")
    # then
    assert rows.count() == 1
    assert "张三" in rows.first.inner_text()
    assert any(r.url.endswith("/static/unfold/css/styles.css") and r.ok for r in stylesheets)
    # when
    rows.first.locator("th a").click()
    page.wait_for_selector("#member-orders")
    orders = page.locator("#member-orders")
    # then
    text = orders.inner_text()
    assert all(f"WEB-{i}" in text for i in range(3))
    assert "114.00" in text
    assert orders.locator("a.all-orders").inner_text().startswith("all 3 orders")


def test_the_import_page_previews_the_file_before_anything_is_imported(page):
    # given
    StoreFactory(code="S001")
    csv = "mobile,name,registered_at,store_code\n+86 139-0013-9000,王芳,2023-01-02,S001\n"
    log_in(page)
    # when
    page.goto("/admin/members/member/import/")
    page.set_input_files("#id_import_file", {"name": "members.csv", "mimeType": "text/csv", "buffer": csv.encode()})
    page.click("input[type=submit]")
    preview = page.locator("table.import-preview")
    preview.wait_for()
    # then: the preview lists the normalised number, nothing is stored yet
    assert "13900139000" in preview.inner_text()
    assert "New" in preview.inner_text()
    assert Member.objects.count() == 0
    # when: imported (in the worker, eagerly here), the job's page shows the result
    page.click("button[name=confirm]")
    page.wait_for_selector('#import-job[data-phase="import"][data-status="succeeded"]')
    # then
    assert "Import finished" in page.locator("#import-job .import-summary").inner_text()
    assert Member.objects.filter(mobile="13900139000", name="王芳").exists()
