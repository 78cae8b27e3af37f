"""The member 360's favourite categories in a real browser (Debian Chromium, Playwright): the top
three by net spend with their share, in English and Chinese. Screenshots are saved under
``var/test-artifacts/`` (not committed) for people to look at."""

from decimal import Decimal

import pytest

from members.models import Order
from tests.browser.conftest import BROWSER_TEST, TIMEOUT_MS, log_in
from tests.browser.test_workspace_browser import ARTIFACTS, TABLET, member_360
from tests.factories import OrderLineFactory, ProductFactory, install_default_scheme
from tests.workspace.builders import PASSWORD, role_user, segment_with_orders, two_stores

pytestmark = BROWSER_TEST


@pytest.fixture
def member(transactional_db):
    stores = two_stores()
    install_default_scheme()
    member = stores.our_member
    segment_with_orders(member)  # four orders of ¥205
    tea, fruit, coffee, cake = (
        ProductFactory(sku="MT-001", name="珍珠奶茶", category="奶茶"),
        ProductFactory(sku="FT-001", name="满杯百香果", category="果茶", tags=["唤醒商品"]),
        ProductFactory(sku="CF-001", name="生椰拿铁", category="咖啡"),
        ProductFactory(sku="DS-001", name="芝士蛋糕", category="甜点"),
    )
    for order, lines in zip(
        Order.objects.filter(member=member).order_by("paid_at"),
        [
            [(tea, "120.00"), (cake, "40.00")],
            [(tea, "100.00"), (fruit, "60.00")],
            [(coffee, "80.00")],
            [(tea, "90.00")],
        ],
        strict=True,
    ):
        for product, amount in lines:
            OrderLineFactory(order=order, product=product, quantity=2, amount=Decimal(amount))
    role_user("staff", stores.ours, username="clerk")
    return member


def test_the_360_shows_the_members_favourite_categories(browser, live_server, member):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(locale="en-US", base_url=live_server.url, viewport=TABLET)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    log_in(page, "clerk", PASSWORD)
    # when
    page.goto(member_360(member))
    box = page.locator("#member-top-categories")
    # then: tea ¥310 of ¥490 (63.3%), coffee ¥80 (16.3%), fruit tea ¥60 (12.2%); cakes (¥40) fourth
    assert box.locator(".category").all_inner_texts() == ["奶茶", "咖啡", "果茶"]
    assert box.locator(".share").all_inner_texts() == ["63.3%", "16.3%", "12.2%"]
    box.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "member-360-categories-en.png"), full_page=True)
    # and in Chinese
    page.goto(f"/zh-hans{member_360(member)}")
    assert "偏好品类" in page.locator("#member-top-categories h3").inner_text()
    page.screenshot(path=str(ARTIFACTS / "member-360-categories-zh-hans.png"), full_page=True)
    context.close()
