"""The member 360: what it shows in what order, its forms, and a query count that does not grow."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from campaigns.models import Coupon, FollowUpTask
from members.models import PointsAccount, PointsEntry, Restriction
from members.services.wallet import wallet_top_up
from tests.factories import (
    CouponFactory,
    FollowUpTaskFactory,
    MemberFactory,
    OrderFactory,
    OrderLineFactory,
    OutboxMessageFactory,
    PointsAccountFactory,
    PointsEntryFactory,
    PointsLotFactory,
    ReferralFactory,
    TopUpOfferFactory,
    WalletFactory,
    record_order,
)
from tests.workspace.builders import segment_with_orders

pytestmark = pytest.mark.django_db

SECTIONS = (
    "member-who",
    "member-value",
    "member-segment",
    "member-benefits",
    "member-orders",
    "member-referrals",
    "member-messages",
    "member-tasks",
)


def member_url(member, view: str = "change", *args) -> str:
    return reverse(f"admin:members_member_{view}", args=[member.pk, *args])


@pytest.fixture
def rich_member(stores, ladder, default_scheme):
    """Our store's member with a bit of everything: silver, four orders of ¥205 (R 45 days), points
    expiring soon, stored value, a coupon, an offer, a referral, a message and an open task."""
    member = stores.our_member
    member.tier = ladder["silver"]
    member.save(update_fields=["tier"])
    segment_with_orders(member)
    PointsAccountFactory(member=member, balance=300)
    lot = PointsLotFactory(source_entry=PointsEntryFactory(member=member, points=120))
    lot.expires_at = timezone.now() + dt.timedelta(days=10)
    lot.save(update_fields=["expires_at"])
    WalletFactory(member=member, principal=Decimal("90.00"), bonus=Decimal("9.00"))
    CouponFactory(member=member, template__name="¥10 off", code="USEME0000001")
    CouponFactory(member=member, template__name="Spent", status=Coupon.Status.REVOKED, code="GONE00000001")
    TopUpOfferFactory(name="Top up ¥100, get ¥10")
    ReferralFactory(referrer=member, referee=MemberFactory(mobile="13700001111", name="李雷", home_store=stores.ours))
    OutboxMessageFactory(member=member, template="birthday_greeting")
    FollowUpTaskFactory(member=member, reason="Ask why they stopped coming")
    return member


def test_the_360_shows_every_section_in_the_order_a_clerk_needs(client, make_user, stores, rich_member):
    # given
    client.force_login(make_user("staff", stores.ours))
    # when
    response = client.get(member_url(rich_member))
    # then
    html = response.content.decode()
    assert response.status_code == 200
    positions = [html.index(f'id="{section}"') for section in SECTIONS]
    assert positions == sorted(positions)
    assert "138****2213" in html and "13800002213" not in html
    assert "王芳" in html and "银卡" in html and "静安店" in html
    # the tier rules' figures: gold is ¥1000 in 365 days or 10 orders in 180 days
    assert "¥820 of ¥1000 spent in 365 days, ¥180 to go" in html
    assert "4 of 10 orders in 180 days" in html
    assert '<td class="points-balance">300</td>' in html
    assert '<td class="points-expiring">120</td>' in html
    assert '<td class="wallet-principal">90.00</td>' in html and '<td class="wallet-bonus">9.00</td>' in html
    assert response.context["segment_sentence"] == "R = 45 days > 30, F = 4 ≥ 3, M = ¥820 ≥ ¥500 → Loyal at risk"
    assert "USEME0000001" in html and "GONE00000001" not in html
    assert "Top up ¥100, get ¥10" in html
    assert "137****1111 李雷" in html and "13700001111" not in html
    assert "birthday_greeting" in html
    assert "Ask why they stopped coming" in html
    assert 'name="mobile"' not in html


def test_the_segment_explanation_reads_in_chinese(client, make_user, stores, rich_member):
    # given
    client.force_login(make_user("staff", stores.ours))
    # when
    with translation.override("zh-hans"):
        response = client.get(member_url(rich_member), HTTP_ACCEPT_LANGUAGE="zh-hans", follow=True)
    # then
    assert response.context["segment_sentence"] == "R = 45 天 > 30，F = 4 ≥ 3，M = ¥820 ≥ ¥500 → 重要保持用户"
    assert "积分" in response.content.decode()


def test_the_segment_history_is_a_timeline_newest_first(client, make_user, stores, rich_member):
    # given: a second run after the member came back yesterday (R 1 day: champions)
    OrderFactory(member=rich_member, paid_at=timezone.now() - dt.timedelta(days=1), amount="10.00")
    segment_with_orders(rich_member, days_ago=())
    client.force_login(make_user("staff", stores.ours))
    # when
    response = client.get(member_url(rich_member))
    # then
    steps = [(step["from_name"], step["to_name"]) for step in response.context["segment_history"]]
    assert steps[0] == ("Loyal at risk", "Champions")
    assert steps[-1][1] == "Loyal at risk"


def test_a_member_never_computed_says_so(client, make_user, stores):
    client.force_login(make_user("staff", stores.ours))
    response = client.get(member_url(stores.our_member))
    assert response.status_code == 200
    assert "Not computed yet" in response.context["segment_sentence"]
    assert "No orders yet." in response.content.decode()


# --- follow-up outcome and points ---------------------------------------------------------------


def test_staff_record_what_came_of_a_follow_up_task(client, make_user, stores):
    # given
    user = make_user("staff", stores.ours)
    task = FollowUpTaskFactory(member=stores.our_member)
    client.force_login(user)
    page = client.get(member_url(stores.our_member))
    assert f'action="{member_url(stores.our_member, "followup_done", task.pk)}"' in page.content.decode()
    # when
    response = client.post(
        member_url(stores.our_member, "followup_done", task.pk),
        {f"task{task.pk}-result": "reached", f"task{task.pk}-note": "comes by on Saturday"},
    )
    # then
    assert response.status_code == 302
    assert response["Location"].endswith(member_url(stores.our_member) + "#member-tasks")
    task.refresh_from_db()
    assert (task.status, task.outcome, task.completed_by) == (
        FollowUpTask.Status.DONE,
        "Reached: comes by on Saturday",
        user,
    )
    assert "Ask why" not in client.get(member_url(stores.our_member)).content.decode()


def test_an_outcome_without_a_result_shows_the_form_again(client, make_user, stores):
    # given
    task = FollowUpTaskFactory(member=stores.our_member)
    client.force_login(make_user("staff", stores.ours))
    # when
    response = client.post(member_url(stores.our_member, "followup_done", task.pk), {f"task{task.pk}-note": "hm"})
    # then
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    task.refresh_from_db()
    assert task.status == FollowUpTask.Status.OPEN


def test_another_members_task_cannot_be_completed_through_this_member(client, make_user, stores):
    # given
    other = FollowUpTaskFactory(member=MemberFactory(home_store=stores.ours))
    client.force_login(make_user("staff", stores.ours))
    # when
    response = client.post(
        member_url(stores.our_member, "followup_done", other.pk), {f"task{other.pk}-result": "reached"}
    )
    # then
    assert response.status_code == 404
    other.refresh_from_db()
    assert other.status == FollowUpTask.Status.OPEN


def test_a_manager_adjusts_points_from_the_360_staff_may_not(client, make_user, stores):
    # given
    manager = make_user("manager", stores.ours)
    client.force_login(make_user("staff", stores.ours, username="clerk"))
    staff_page = client.get(member_url(stores.our_member)).content.decode()
    staff_post = client.post(
        member_url(stores.our_member, "adjust_points"),
        {"adjust-points": "50", "adjust-reason": "goodwill", "adjust-idempotency_key": "k1"},
    )
    client.force_login(manager)
    # when
    response = client.post(
        member_url(stores.our_member, "adjust_points"),
        {"adjust-points": "50", "adjust-reason": "goodwill", "adjust-idempotency_key": "k1"},
    )
    # then
    assert 'id="adjust-points"' not in staff_page
    assert staff_post.status_code == 403
    assert response.status_code == 302
    entry = PointsEntry.objects.get(member=stores.our_member)
    assert (entry.points, entry.reason, entry.actor) == (50, "goodwill", manager)


def test_a_manager_records_a_refund_from_the_360_once_staff_may_not(client, make_user, stores):
    # given: an order of 100.00 that earned 100 points
    order = record_order(stores.our_member, "100.00", timezone.now() - dt.timedelta(days=1)).order
    manager = make_user("manager", stores.ours)
    client.force_login(make_user("staff", stores.ours, username="clerk"))
    staff_page = client.get(member_url(stores.our_member)).content.decode()
    body = {"refund-order": order.pk, "refund-amount": "40.00", "refund-reason": "冷了", "refund-idempotency_key": "r1"}
    staff_post = client.post(member_url(stores.our_member, "refund"), body)
    client.force_login(manager)
    assert 'id="record-refund"' in client.get(member_url(stores.our_member)).content.decode()
    # when: the manager records it, and the browser sends it again
    first = client.post(member_url(stores.our_member, "refund"), body)
    again = client.post(member_url(stores.our_member, "refund"), body)
    # then: one refund, its share of the points taken back; staff saw no form and were refused
    assert 'id="record-refund"' not in staff_page
    assert staff_post.status_code == 403
    assert (first.status_code, again.status_code) == (302, 302)
    order.refresh_from_db()
    assert (order.refunded_amount, order.refunds.get().reason) == (Decimal("40.00"), "冷了")
    assert PointsAccount.objects.get(member=stores.our_member).balance == 60


def test_a_refund_larger_than_what_is_left_is_refused_on_the_360(client, make_user, stores):
    order = record_order(stores.our_member, "30.00", timezone.now() - dt.timedelta(days=1)).order
    client.force_login(make_user("manager", stores.ours))
    body = {"refund-order": order.pk, "refund-amount": "31.00", "refund-reason": "x", "refund-idempotency_key": "r2"}
    response = client.post(member_url(stores.our_member, "refund"), body)
    assert response.status_code == 200
    assert "exceed" in response.content.decode()
    assert not order.refunds.exists()


def test_the_links_of_the_360_open_their_lists(client, make_user, stores, rich_member):
    # given
    client.force_login(make_user("operator"))
    links = client.get(member_url(rich_member)).context["links"]
    # when
    pages = {name: client.get(url) for name, url in links.items() if name != "top_up"}
    # then: no "?e=1" redirect (a lookup the list refuses)
    assert {name: page.status_code for name, page in pages.items()} == dict.fromkeys(pages, 200)
    assert {"orders", "points", "wallet", "tiers", "coupons", "tasks", "edit"} <= set(pages)
    assert "messages" not in pages  # the outbox is a technical table, for superusers only
    assert len(pages["orders"].context["cl"].result_list) == 4


# --- queries ------------------------------------------------------------------------------------


def _history(member, count: int, store) -> None:
    for i in range(count):
        order = OrderFactory(member=member, store=store, paid_at=timezone.now() - dt.timedelta(days=i + 1))
        OrderLineFactory(order=order, product__category=f"品类{i % 5}", amount=Decimal("10.00"))
        CouponFactory(member=member)
        OutboxMessageFactory(member=member)
        ReferralFactory(referrer=member, referee=MemberFactory(home_store=store))
        FollowUpTaskFactory(member=member, store=store)


def test_the_360_costs_the_same_queries_for_a_long_history(
    client, make_user, stores, ladder, default_scheme, django_assert_max_num_queries
):
    # given: one member with one of everything, another with thirty
    short, long = MemberFactory(home_store=stores.ours), MemberFactory(home_store=stores.ours)
    _history(short, 1, stores.ours)
    _history(long, 30, stores.ours)
    TopUpOfferFactory()
    segment_with_orders(short, days_ago=())
    client.force_login(make_user("staff", stores.ours))
    client.get(member_url(short))  # sessions, permissions: warm
    # when
    counts = {}
    for member in (short, long):
        with CaptureQueriesContext(connection) as queries:
            assert client.get(member_url(member)).status_code == 200
        counts[member.pk] = len(queries)
    # then
    assert counts[short.pk] == counts[long.pk]
    # session, user, permissions, scope, the 360 (with its CLV scores, the top categories, the
    # nightly favourite categories, the products to recommend and the member's tags)
    with django_assert_max_num_queries(27):
        client.get(member_url(long))


# --- favourite categories -----------------------------------------------------------------------


def test_the_360_shows_the_top_three_categories_by_net_spend_with_their_share(client, make_user, stores):
    # given: tea ¥60 (an order refunded by half: ¥30 net), coffee ¥40, cakes ¥20, bread ¥10; an old order
    member = MemberFactory(home_store=stores.ours)
    now = timezone.now()
    half_refunded = OrderFactory(member=member, store=stores.ours, amount=Decimal("60.00"), paid_at=now)
    half_refunded.refunded_amount = Decimal("30.00")
    half_refunded.save(update_fields=["refunded_amount"])
    OrderLineFactory(order=half_refunded, product__category="奶茶", amount=Decimal("60.00"))
    order = OrderFactory(member=member, store=stores.ours, amount=Decimal("100.00"), paid_at=now)
    OrderLineFactory(order=order, product__category="咖啡", amount=Decimal("40.00"))
    OrderLineFactory(order=order, product__category="蛋糕", amount=Decimal("20.00"))
    OrderLineFactory(order=order, product__category="面包", amount=Decimal("10.00"))
    old = OrderFactory(member=member, store=stores.ours, paid_at=now - dt.timedelta(days=400))
    OrderLineFactory(order=old, product__category="面包", amount=Decimal("38.00"))
    client.force_login(make_user("staff", stores.ours))
    # when
    page = client.get(member_url(member)).content.decode()
    # then: coffee 40/100, tea 30/100, cakes 20/100; bread (10, and the old order) is fourth
    section = page[page.index('id="member-top-categories"') :]
    section = section[: section.index("</ol>")]
    assert section.count("<li>") == 3
    assert section.index("咖啡") < section.index("奶茶") < section.index("蛋糕")
    assert "40.0%" in section and "30.0%" in section and "20.0%" in section
    assert "面包" not in section


def test_a_member_whose_orders_have_no_lines_shows_no_categories(client, make_user, stores):
    # given
    member = MemberFactory(home_store=stores.ours)
    OrderFactory(member=member, store=stores.ours)
    client.force_login(make_user("staff", stores.ours))
    # when
    page = client.get(member_url(member)).content.decode()
    # then
    assert "member-top-categories" not in page


def test_the_360_shows_the_bonus_that_pays_only_for_some_products(client, make_user, stores):
    # given: ¥50 bonus for wake-up products from a top-up offer
    member = MemberFactory(mobile="13800002299", home_store=stores.ours)
    wallet_top_up(
        member=member,
        amount_paid="300.00",
        bonus="50.00",
        restriction=Restriction(tags=("唤醒商品",)),
        idempotency_key="restricted",
    )
    client.force_login(make_user("staff", stores.ours))
    # when
    with translation.override("zh-hans"):
        html = client.get(member_url(member), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    # then
    assert '<td class="wallet-bonus">50.00</td>' in html
    assert "¥50.00" in html and "唤醒商品" in html
