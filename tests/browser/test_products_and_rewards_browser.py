"""Products, rewards and the counter in a real browser (Debian Chromium, Playwright), in Chinese:
the member 360 shows the ¥50 bonus that pays only for 唤醒商品, the stamp card's progress and the
products to recommend, and a clerk tags the member there; operators reach the points catalogue and
stamp cards from the sidebar. Screenshots are saved under ``var/test-artifacts/`` (not committed)
for people to look at."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from campaigns.models import Reward, Stamp, StampCard
from members.models import Order, Restriction
from members.services.wallet import wallet_top_up
from segmentation.services.products import product_preferences_recompute
from tests.browser.conftest import BROWSER_TEST, TIMEOUT_MS, log_in
from tests.browser.test_workspace_browser import ARTIFACTS, TABLET, member_360
from tests.factories import (
    CouponTemplateFactory,
    MemberFactory,
    OrderFactory,
    OrderLineFactory,
    ProductFactory,
    install_default_scheme,
)
from tests.workspace.builders import PASSWORD, role_user, segment_with_orders, two_stores

pytestmark = BROWSER_TEST


@pytest.fixture
def member(transactional_db):
    stores = two_stores()
    install_default_scheme()
    member = stores.our_member
    segment_with_orders(member)  # four orders
    tea = ProductFactory(sku="MT-001", name="珍珠奶茶", category="奶茶")
    fruit = ProductFactory(sku="FT-001", name="满杯百香果", category="果茶", tags=["唤醒商品"])
    cake = ProductFactory(sku="DS-001", name="芝士蛋糕", category="甜点")
    for order in Order.objects.filter(member=member):
        OrderLineFactory(order=order, product=tea, amount=Decimal("30.00"))
    # three other members bought tea with cake: cake is related to tea
    for _ in range(3):
        other = MemberFactory(home_store=stores.ours)
        order = OrderFactory(member=other, store=stores.ours, amount=Decimal("60.00"))
        OrderLineFactory(order=order, product=tea, amount=Decimal("30.00"))
        OrderLineFactory(order=order, product=cake, amount=Decimal("30.00"))
    product_preferences_recompute()
    wallet_top_up(
        member=member,
        amount_paid="300.00",
        bonus="50.00",
        restriction=Restriction(tags=("唤醒商品",)),
        idempotency_key="browser-restricted",
    )
    card = StampCard.objects.create(
        name="满5次送1次",
        name_en="Buy 5, get 1",
        slug="buy-5",
        stamps_required=5,
        window_days=365,
        bonus_points=100,
        is_active=True,
    )
    for order in Order.objects.filter(member=member)[:3]:
        Stamp.objects.create(card=card, member=member, order=order, paid_at=order.paid_at)
    Reward.objects.create(
        name="500 积分兑 ¥20 券",
        name_en="¥20 off for 500 points",
        slug="coupon-20",
        coupon_template=CouponTemplateFactory(name="¥20 券", slug="twenty", amount=Decimal("20.00")),
        points_price=500,
        starts_at=timezone.now() - dt.timedelta(days=1),
    )
    assert fruit.pk
    role_user("staff", stores.ours, username="clerk")
    role_user("operator", stores.ours, username="operator")
    return member


def test_the_360_shows_restricted_bonus_stamps_and_recommendations_in_chinese(browser, live_server, member):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(locale="zh-CN", base_url=live_server.url, viewport=TABLET)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    log_in(page, "clerk", PASSWORD)
    page.goto(member_360(member))
    bonus = page.locator(".restricted-bonuses")
    assert "¥50.00" in bonus.inner_text() and "唤醒商品" in bonus.inner_text()
    stamps = page.locator("#member-stamp-cards")
    assert "满5次送1次 3/5" in stamps.inner_text()
    assert "芝士蛋糕" in page.locator("#member-recommended-products").inner_text()
    # and the clerk tags the member
    page.fill("#member-tags input[name=tag]", "爱喝少糖")
    page.click("#member-tags .member-tag-add button")
    page.wait_for_url("**#member-tags")
    assert "爱喝少糖" in page.locator("#member-tags .member-tag").inner_text()
    page.screenshot(path=str(ARTIFACTS / "member-360-products-rewards-zh-hans.png"), full_page=True)
    context.close()


def test_operators_reach_the_points_catalogue_and_stamp_cards(browser, live_server, member):
    context = browser.new_context(locale="zh-CN", base_url=live_server.url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    log_in(page, "operator", PASSWORD)
    page.goto("/admin/campaigns/reward/")
    assert "500 积分兑 ¥20 券" in page.locator("#result_list").inner_text()
    page.screenshot(path=str(ARTIFACTS / "rewards-zh-hans.png"), full_page=True)
    page.goto("/admin/campaigns/stampcard/")
    assert "满5次送1次" in page.locator("#result_list").inner_text()
    page.screenshot(path=str(ARTIFACTS / "stamp-cards-zh-hans.png"), full_page=True)
    page.goto("/admin/campaigns/topupoffer/add/")
    assert page.locator("#id_product_tags").is_visible() and page.locator("#id_product_categories").is_visible()
    page.screenshot(path=str(ARTIFACTS / "top-up-offer-restriction-zh-hans.png"), full_page=True)
    context.close()
