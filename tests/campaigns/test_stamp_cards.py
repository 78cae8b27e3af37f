"""Stamp cards (seed 001: 满5次送1次): orders stamp the cards they count for once, the N-th stamp
gives the reward once, refunds take stamps (and unused rewards) back, and the member sees progress
in the 360 and the mini-program."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import connection, connections
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from campaigns import tasks as campaigns_tasks
from campaigns.models import Coupon, Stamp, StampCard, StampCompletion
from campaigns.selectors.stamps import member_stamp_cards
from campaigns.services import stamps as stamps_service
from campaigns.services.coupons import coupon_redeem
from campaigns.services.stamps import (
    forget_active_stamp_cards,
    stamps_collect_for_order,
    stamps_reverse_for_order,
)
from campaigns.tasks import stamp_order_task
from members.models import PointsAccount, PointsEntry, PointsLot
from members.services.orders import order_record, refund_record
from members.services.points import points_expire, points_grant, points_redeem
from members.services.products import LineIn
from tests.api.conftest import member_client
from tests.campaigns.conftest import run_in_threads
from tests.factories import CouponTemplateFactory, MemberFactory, OrderFactory, ProductFactory, StoreFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_card_cache():
    forget_active_stamp_cards()
    yield
    forget_active_stamp_cards()


def make_card(*, segments=(), **fields) -> StampCard:
    values = {
        "name": "满5次送1次",
        "slug": f"card-{StampCard.objects.count() + 1}",
        "stamps_required": 5,
        "window_days": 90,
        "coupon_template": CouponTemplateFactory(kind="gift_item", amount=None, gift_description="一杯"),
        "is_active": True,
    }
    values.update(fields)
    card = StampCard.objects.create(**values)
    card.segments.set(segments)
    forget_active_stamp_cards()
    return card


_numbers = iter(range(1, 10_000))


def buy(capture, member, *, amount="38.00", paid_at=None, lines=None, external_id=None):
    """An order recorded the way the POS records it, its after-commit events run."""
    with capture(execute=True):
        return order_record(
            external_id=external_id or f"STAMP-{next(_numbers)}",
            member=member,
            store=member.home_store,
            paid_at=paid_at or timezone.now() - dt.timedelta(minutes=5),
            amount=amount,
            lines=lines,
        ).order


def refund(capture, order, amount=None, lines=None):
    with capture(execute=True):
        return refund_record(
            external_id=f"R-{next(_numbers)}", order=order, amount=amount or order.amount, lines=lines
        ).refund


def progress(member, card) -> int:
    return next(p.stamps for p in member_stamp_cards(member_id=member.pk) if p.card.pk == card.pk)


# --- collecting and completing ------------------------------------------------------------------


def test_five_orders_give_one_reward_and_the_sixth_starts_a_new_card(django_capture_on_commit_callbacks):
    # given: 满5次送1次 with a gift coupon and 100 打卡积分
    card = make_card(bonus_points=100)
    member = MemberFactory()
    # when
    for _ in range(4):
        buy(django_capture_on_commit_callbacks, member)
    before = progress(member, card)
    buy(django_capture_on_commit_callbacks, member)
    buy(django_capture_on_commit_callbacks, member)
    # then
    completion = StampCompletion.objects.get(member=member)
    assert before == 4
    assert completion.coupon.template == card.coupon_template and completion.coupon.status == Coupon.Status.ISSUED
    assert completion.points_entry.points == 100
    assert PointsAccount.objects.get(member=member).balance >= 100
    assert completion.stamps.count() == 5
    assert progress(member, card) == 1


def test_an_order_is_stamped_once_however_often_it_is_sent_or_processed(django_capture_on_commit_callbacks):
    # given
    card = make_card()
    member = MemberFactory()
    paid_at = timezone.now() - dt.timedelta(minutes=3)
    order = buy(django_capture_on_commit_callbacks, member, external_id="POS-1", paid_at=paid_at)
    # when: the till re-sends it, the task runs again
    buy(django_capture_on_commit_callbacks, member, external_id="POS-1", paid_at=paid_at)
    stamps_collect_for_order(order_id=order.pk)
    stamps_collect_for_order(order_id=order.pk)
    # then
    assert Stamp.objects.filter(card=card, order=order).count() == 1


def test_a_retried_completion_gives_the_reward_once(django_capture_on_commit_callbacks):
    card = make_card(stamps_required=2, bonus_points=10)
    member = MemberFactory()
    buy(django_capture_on_commit_callbacks, member)
    last = buy(django_capture_on_commit_callbacks, member)

    stamps_collect_for_order(order_id=last.pk)

    assert StampCompletion.objects.filter(card=card).count() == 1
    assert Coupon.objects.filter(member=member).count() == 1
    assert PointsEntry.objects.filter(member=member, kind=PointsEntry.Kind.CAMPAIGN_REWARD).count() == 1


def test_no_active_card_no_stamp_and_no_query_beyond_the_cache(django_capture_on_commit_callbacks):
    # given: only an inactive card
    make_card(is_active=False)
    order = OrderFactory()
    # when
    with CaptureQueriesContext(connection) as queries:
        made = stamps_collect_for_order(order_id=order.pk)
    # then: the (uncached in tests) load of the active cards, nothing else
    assert made == [] and not Stamp.objects.exists()
    assert len(queries) == 1


def test_only_orders_with_a_line_of_the_category_count(django_capture_on_commit_callbacks):
    # given: a coffee card; a tea product and a coffee product
    card = make_card(category="咖啡")
    ProductFactory(sku="TEA", category="奶茶")
    ProductFactory(sku="LATTE", category="咖啡")
    member = MemberFactory()
    # when
    tea = buy(django_capture_on_commit_callbacks, member, lines=[LineIn("TEA", 1, Decimal("38.00"))])
    plain = buy(django_capture_on_commit_callbacks, member)
    mixed = buy(
        django_capture_on_commit_callbacks,
        member,
        lines=[LineIn("TEA", 1, Decimal("18.00")), LineIn("LATTE", 1, Decimal("20.00"))],
    )
    # then
    assert set(Stamp.objects.filter(card=card).values_list("order_id", flat=True)) == {mixed.pk}
    assert tea.pk and plain.pk


def test_orders_under_the_minimum_amount_do_not_count(django_capture_on_commit_callbacks):
    card = make_card(min_order_amount=Decimal("30.00"))
    member = MemberFactory()

    small = buy(django_capture_on_commit_callbacks, member, amount="29.99")
    big = buy(django_capture_on_commit_callbacks, member, amount="30.00")

    assert list(Stamp.objects.filter(card=card).values_list("order_id", flat=True)) == [big.pk]
    assert small.pk


def test_stamps_older_than_the_window_do_not_count(django_capture_on_commit_callbacks):
    # given: a 30-day card; four orders 20 days ago, and one 40 days ago (outside the window)
    card = make_card(window_days=30)
    member = MemberFactory()
    now = timezone.now()
    old = buy(django_capture_on_commit_callbacks, member, paid_at=now - dt.timedelta(days=40))
    for _ in range(4):
        buy(django_capture_on_commit_callbacks, member, paid_at=now - dt.timedelta(days=20))
    latest = OrderFactory(member=member, paid_at=now)
    # when: the fifth order is stamped 15 days later — the four are 35 days old by then
    later = now + dt.timedelta(days=15)
    made = stamps_collect_for_order(order_id=latest.pk, now=later)
    # then
    assert not Stamp.objects.filter(order=old).exists()
    assert made == [] and not StampCompletion.objects.exists()
    shown = member_stamp_cards(member_id=member.pk, now=later)[0]
    assert (shown.stamps, shown.required) == (1, 5)
    assert shown.oldest_expires_at == latest.paid_at + dt.timedelta(days=30)
    assert card.pk == shown.card.pk


def test_only_members_of_the_cards_segments_collect(segments, place):
    # given: a card for 重要发展用户
    card = make_card(segments=[segments["big_spenders"]])
    grower, lost, unscored = MemberFactory(), MemberFactory(), MemberFactory()
    place(grower, "big_spenders")
    place(lost, "lost")
    orders = {member: OrderFactory(member=member) for member in (grower, lost, unscored)}
    # when
    for order in orders.values():
        stamps_collect_for_order(order_id=order.pk)
    # then
    assert list(Stamp.objects.filter(card=card).values_list("member_id", flat=True)) == [grower.pk]
    assert [p.card for p in member_stamp_cards(member_id=grower.pk)] == [card]
    assert member_stamp_cards(member_id=lost.pk) == []


# --- refunds ------------------------------------------------------------------------------------


def test_a_full_refund_voids_the_stamp_before_completion(django_capture_on_commit_callbacks):
    card = make_card()
    member = MemberFactory()
    orders = [buy(django_capture_on_commit_callbacks, member) for _ in range(3)]

    refund(django_capture_on_commit_callbacks, orders[1])

    assert Stamp.objects.get(order=orders[1]).void_at is not None
    assert progress(member, card) == 2


def test_a_partial_refund_voids_only_when_the_order_falls_under_the_minimum(django_capture_on_commit_callbacks):
    make_card(min_order_amount=Decimal("30.00"))
    member = MemberFactory()
    order = buy(django_capture_on_commit_callbacks, member, amount="50.00")

    refund(django_capture_on_commit_callbacks, order, amount=Decimal("10.00"))
    kept = Stamp.objects.get(order=order).void_at is None
    refund(django_capture_on_commit_callbacks, order, amount=Decimal("15.00"))

    assert kept and Stamp.objects.get(order=order).void_at is not None


def test_refunding_the_only_lines_of_the_category_voids_the_stamp(django_capture_on_commit_callbacks):
    # given: a coffee card; two orders of a latte and a tea
    card = make_card(category="咖啡")
    ProductFactory(sku="TEA", category="奶茶")
    ProductFactory(sku="LATTE", category="咖啡")
    member = MemberFactory()
    both = [LineIn("TEA", 1, Decimal("18.00")), LineIn("LATTE", 1, Decimal("20.00"))]
    first = buy(django_capture_on_commit_callbacks, member, lines=both)
    second = buy(django_capture_on_commit_callbacks, member, lines=both)
    # when: the first order's tea is given back, and the second order's latte
    refund(django_capture_on_commit_callbacks, first, amount=Decimal("18.00"), lines=[both[0]])
    refund(django_capture_on_commit_callbacks, second, amount=Decimal("20.00"), lines=[both[1]])
    # then: the first still has its coffee, the second none
    assert Stamp.objects.get(order=first).void_at is None
    assert Stamp.objects.get(order=second).void_at is not None
    assert progress(member, card) == 1


def test_a_refund_after_completion_revokes_the_unused_reward_and_gives_the_stamps_back(
    django_capture_on_commit_callbacks,
):
    # given: a completed card (coupon and points unused)
    card = make_card(bonus_points=100)
    member = MemberFactory()
    orders = [buy(django_capture_on_commit_callbacks, member) for _ in range(5)]
    completion = StampCompletion.objects.get()
    balance = PointsAccount.objects.get(member=member).balance
    # when: the third order is refunded in full
    refund(django_capture_on_commit_callbacks, orders[2])
    # then
    completion.refresh_from_db()
    assert completion.status == StampCompletion.Status.REVERSED
    assert Coupon.objects.get(pk=completion.coupon_id).status == Coupon.Status.REVOKED
    assert PointsAccount.objects.get(member=member).balance < balance
    assert progress(member, card) == 4
    # and the next order completes the card again
    buy(django_capture_on_commit_callbacks, member)
    assert StampCompletion.objects.filter(status=StampCompletion.Status.REWARDED).count() == 1
    assert progress(member, card) == 0


def test_a_refund_after_the_reward_was_used_keeps_it(django_capture_on_commit_callbacks):
    # given: a completed card whose coupon was used at the till
    card = make_card()
    member = MemberFactory()
    orders = [buy(django_capture_on_commit_callbacks, member) for _ in range(5)]
    completion = StampCompletion.objects.get()
    coupon_redeem(member=member, idempotency_key="use-it", coupon=completion.coupon, amount=Decimal("20.00"))
    # when
    refund(django_capture_on_commit_callbacks, orders[0])
    # then: the reward stays, recorded as kept; the other stamps stay used
    completion.refresh_from_db()
    assert completion.status == StampCompletion.Status.KEPT and completion.note
    assert Coupon.objects.get(pk=completion.coupon_id).status == Coupon.Status.REDEEMED
    assert progress(member, card) == 0
    assert Stamp.objects.filter(completion=completion, void_at__isnull=True).count() == 4


def test_spent_reward_points_are_kept_never_a_negative_balance(django_capture_on_commit_callbacks):
    make_card(coupon_template=None, bonus_points=500, stamps_required=2)
    member = MemberFactory()
    orders = [buy(django_capture_on_commit_callbacks, member, amount="1.00") for _ in range(2)]
    account = PointsAccount.objects.get(member=member)
    points_redeem(member=member, points=account.balance, idempotency_key="spend-all", reason="gift")

    refund(django_capture_on_commit_callbacks, orders[1])

    completion = StampCompletion.objects.get()
    assert completion.status == StampCompletion.Status.KEPT
    account.refresh_from_db()
    # the order's own earned point is clawed back as members does (debt); the reward is not taken back
    assert account.balance == 0 and account.debt <= 1
    assert not PointsEntry.objects.filter(reverses=completion.points_entry).exists()


def test_reward_points_expired_before_the_refund_task_are_not_taken_back_as_debt(django_capture_on_commit_callbacks):
    # given: 满2次送100积分, completed by two orders
    make_card(coupon_template=None, bonus_points=100, stamps_required=2)
    member = MemberFactory()
    orders = [buy(django_capture_on_commit_callbacks, member) for _ in range(2)]
    completion = StampCompletion.objects.get()
    # when: the second order is refunded in full; before its stamp task runs, the 100 points reach
    # their end (the nightly expiry has not swept them yet: the balance still counts them)
    with django_capture_on_commit_callbacks() as events:
        refund_record(external_id=f"R-{next(_numbers)}", order=orders[1], amount=orders[1].amount)
    PointsLot.objects.filter(source_entry=completion.points_entry).update(
        expires_at=timezone.now() - dt.timedelta(minutes=1)
    )
    before = PointsAccount.objects.get(member=member)
    assert before.balance >= 100  # what the check used to read
    for event in events:
        event()
    points_expire(as_of=timezone.now())
    # then: the expired points are not "in the balance": the reward is kept, with a note, and the
    # member owes nothing; what the first order earned is still there
    completion.refresh_from_db()
    assert completion.status == StampCompletion.Status.KEPT and completion.note
    assert not PointsEntry.objects.filter(reverses=completion.points_entry).exists()
    account = PointsAccount.objects.get(member=member)
    first_earned = PointsEntry.objects.get(order=orders[0], kind=PointsEntry.Kind.EARN).points
    assert (account.balance, account.debt) == (first_earned, 0)
    lots = PointsLot.objects.filter(member=member).aggregate(total=Sum("remaining"))["total"]
    entries = PointsEntry.objects.filter(member=member).aggregate(total=Sum("points"))["total"]
    assert account.balance == lots == entries


def test_reward_points_expired_but_covered_by_other_points_are_taken_back_without_debt(
    django_capture_on_commit_callbacks,
):
    # given: a completed 满2次送100积分 card whose 100 points expired unswept, and 150 other points
    make_card(coupon_template=None, bonus_points=100, stamps_required=2)
    member = MemberFactory()
    orders = [buy(django_capture_on_commit_callbacks, member) for _ in range(2)]
    completion = StampCompletion.objects.get()
    PointsLot.objects.filter(source_entry=completion.points_entry).update(
        expires_at=timezone.now() - dt.timedelta(minutes=1)
    )
    points_grant(
        member=member, points=150, kind=PointsEntry.Kind.CAMPAIGN_REWARD, reason="gift", idempotency_key="gift-150"
    )
    # when
    refund(django_capture_on_commit_callbacks, orders[1])
    # then: the reward is taken back from the points still valid; nothing is owed
    completion.refresh_from_db()
    assert completion.status == StampCompletion.Status.REVERSED
    account = PointsAccount.objects.get(member=member)
    first_earned = PointsEntry.objects.get(order=orders[0], kind=PointsEntry.Kind.EARN).points
    assert (account.balance, account.debt) == (first_earned + 150 - 100, 0)


def test_reversing_twice_changes_nothing(django_capture_on_commit_callbacks):
    make_card(stamps_required=2)
    member = MemberFactory()
    orders = [buy(django_capture_on_commit_callbacks, member) for _ in range(2)]
    refund(django_capture_on_commit_callbacks, orders[0])

    again = stamps_reverse_for_order(order_id=orders[0].pk)

    assert again == 0
    assert StampCompletion.objects.get().status == StampCompletion.Status.REVERSED


# --- concurrency ----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_orders_completing_the_card_at_once_give_one_reward():
    # given: four stamps; two tills record the member's fifth and sixth orders at the same moment
    card = make_card()
    store = StoreFactory()
    member = MemberFactory(home_store=store)
    for i in range(4):
        order = OrderFactory(member=member, store=store, external_id=f"PRE-{i}")
        stamps_collect_for_order(order_id=order.pk)

    def work(index: int):
        return order_record(
            external_id=f"RACE-{index}",
            member=member,
            store=store,
            paid_at=timezone.now() - dt.timedelta(minutes=1),
            amount="38.00",
        ).order.pk

    # when
    results = run_in_threads(2, work)
    # then
    assert all(isinstance(result, int) for result in results), results
    assert Stamp.objects.filter(card=card, member=member).count() == 6
    assert StampCompletion.objects.filter(card=card, member=member).count() == 1
    assert Coupon.objects.filter(member=member).count() == 1
    assert progress(member, card) == 1


# --- progress: the mini-program and the 360 -------------------------------------------------------

ME = "/api/v1/me/stamp-cards"


def test_my_stamp_cards_show_progress_and_completed_rewards(
    django_capture_on_commit_callbacks, django_assert_max_num_queries
):
    # given: one card completed once and collecting again, one card with nothing yet; another member's
    card = make_card(stamps_required=2, bonus_points=20)
    other = make_card(name="咖啡卡", category="咖啡")
    member, stranger = MemberFactory(), MemberFactory()
    for _ in range(3):
        buy(django_capture_on_commit_callbacks, member)
    buy(django_capture_on_commit_callbacks, stranger)
    client = member_client(member)
    # when
    with django_assert_max_num_queries(8):
        response = client.get(ME)
    # then
    assert response.status_code == 200
    rows = {row["id"]: row for row in response.json()}
    assert set(rows) == {card.pk, other.pk}
    mine = rows[card.pk]
    assert (mine["stamps"], mine["required"], mine["reward_points"]) == (1, 2, 20)
    assert mine["oldest_expires_at"]
    assert len(mine["completions"]) == 1
    assert mine["completions"][0]["coupon_status"] == "available" and mine["completions"][0]["points"] == 20
    assert (rows[other.pk]["stamps"], rows[other.pk]["completions"]) == (0, [])


def test_my_stamp_cards_cost_the_same_queries_for_a_long_history(django_capture_on_commit_callbacks):
    make_card(stamps_required=2)
    make_card(name="第二张", stamps_required=3)
    short, long = MemberFactory(), MemberFactory()
    buy(django_capture_on_commit_callbacks, short)
    for _ in range(12):
        buy(django_capture_on_commit_callbacks, long)
    counts = []
    for member in (short, long):
        client = member_client(member)
        client.get(ME)
        with CaptureQueriesContext(connection) as queries:
            assert client.get(ME).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_the_360_shows_each_card_with_stamps_and_when_the_oldest_expires(
    django_capture_on_commit_callbacks, client, django_user_model
):
    # given
    card = make_card(window_days=30)
    member = MemberFactory()
    first = buy(django_capture_on_commit_callbacks, member)
    buy(django_capture_on_commit_callbacks, member)
    client.force_login(django_user_model.objects.create_superuser("boss", "boss@example.com", "pw"))
    # when
    html = client.get(reverse("admin:members_member_change", args=[member.pk])).content.decode()
    # then
    assert 'id="member-stamp-cards"' in html
    assert card.name in html and "2/5" in html
    assert timezone.localtime(first.paid_at + dt.timedelta(days=30)).strftime("%Y-%m-%d") in html


def test_the_stamp_card_admin_lists_and_the_completions_are_read_only(client, django_user_model):
    make_card()
    client.force_login(django_user_model.objects.create_superuser("boss", "boss@example.com", "pw"))

    assert client.get(reverse("admin:campaigns_stampcard_changelist")).status_code == 200
    assert client.get(reverse("admin:campaigns_stampcard_add")).status_code == 200
    assert client.get(reverse("admin:campaigns_stampcompletion_changelist")).status_code == 200
    assert client.get(reverse("admin:campaigns_stampcompletion_add")).status_code == 403


# --- a refund racing the stamp task ---------------------------------------------------------------


def test_an_order_refunded_before_its_stamp_task_runs_is_not_stamped(django_capture_on_commit_callbacks):
    # given: an order whose stamp task has not run yet (a busy worker)
    card = make_card()
    member = MemberFactory()
    order = OrderFactory(member=member, store=member.home_store)
    # when: the till refunds it in full, and only then the stamp task runs
    refund(django_capture_on_commit_callbacks, order)
    made = stamps_collect_for_order(order_id=order.pk)
    # then
    assert made == []
    assert not Stamp.objects.filter(card=card, order=order).exists()
    assert progress(member, card) == 0


def _race_refund_with_stamp_task(monkeypatch, *, pause_at: str, card: StampCard, order, **refund_fields):
    """Run the order's stamp task in a thread that stops at ``pause_at`` (a name in the stamps
    service); meanwhile the till records the refund in another thread, its events run (the refund
    task in that thread). The stamp task goes on once the refund task has started — or, when no
    refund task comes, once the refund has committed."""
    paused, resume = threading.Event(), threading.Event()
    original = getattr(stamps_service, pause_at)

    def pausing(*args, **kwargs):
        if threading.current_thread().name == "stamp-task" and not paused.is_set():
            paused.set()
            resume.wait(timeout=10)
        return original(*args, **kwargs)

    reverse = campaigns_tasks.stamps_reverse_for_order

    def reversing(**kwargs):
        resume.set()
        return reverse(**kwargs)

    monkeypatch.setattr(stamps_service, pause_at, pausing)
    monkeypatch.setattr(campaigns_tasks, "stamps_reverse_for_order", reversing)
    outcome = {}

    def stamp_task():
        try:
            outcome["stamp"] = stamp_order_task(order.pk)
        finally:
            connections.close_all()

    def till():
        try:
            outcome["refund"] = refund_record(external_id=f"R-{next(_numbers)}", order=order, **refund_fields).refund
        finally:
            connections.close_all()

    stamping = threading.Thread(target=stamp_task, name="stamp-task")
    stamping.start()
    assert paused.wait(timeout=10)
    refunding = threading.Thread(target=till, name="till")
    refunding.start()
    refunding.join(timeout=10)  # with the fix it waits for the stamp task's member lock: released below
    resume.set()
    stamping.join(timeout=30)
    refunding.join(timeout=30)
    assert not stamping.is_alive() and not refunding.is_alive()
    assert "stamp" in outcome and "refund" in outcome, outcome


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "pause_at",
    [
        "member_lock",  # the task has read the order (it qualified) and is about to lock the member
        "_complete_full_cards",  # the task has written the stamp and not committed yet
    ],
)
def test_a_refund_while_the_stamp_task_runs_leaves_no_stamp(monkeypatch, pause_at):
    # given: a 满2次 card with one stamp; a second order whose stamp task is running
    card = make_card(stamps_required=2, bonus_points=50)
    store = StoreFactory()
    member = MemberFactory(home_store=store)
    first = OrderFactory(member=member, store=store, external_id="FIRST")
    stamps_collect_for_order(order_id=first.pk)
    order = OrderFactory(member=member, store=store, external_id="RACED", amount=Decimal("38.00"))
    # when: the second order is refunded in full while its stamp task runs
    _race_refund_with_stamp_task(monkeypatch, pause_at=pause_at, card=card, order=order, amount=Decimal("38.00"))
    # then: the refunded order holds no valid stamp, nothing completed, and the card shows 1/2
    assert not Stamp.objects.filter(order=order, void_at__isnull=True).exists()
    assert not StampCompletion.objects.filter(status=StampCompletion.Status.REWARDED).exists()
    assert not Coupon.objects.filter(member=member, status=Coupon.Status.ISSUED).exists()
    assert progress(member, card) == 1


@pytest.mark.django_db(transaction=True)
def test_a_partial_refund_under_the_minimum_racing_the_stamp_task_leaves_no_stamp(monkeypatch):
    card = make_card(min_order_amount=Decimal("30.00"))
    store = StoreFactory()
    member = MemberFactory(home_store=store)
    order = OrderFactory(member=member, store=store, amount=Decimal("35.00"))

    _race_refund_with_stamp_task(
        monkeypatch, pause_at="_complete_full_cards", card=card, order=order, amount=Decimal("10.00")
    )

    assert not Stamp.objects.filter(order=order, void_at__isnull=True).exists()
    assert progress(member, card) == 0


@pytest.mark.django_db(transaction=True)
def test_stamp_tasks_and_refunds_released_together_leave_no_refunded_order_stamped():
    # given: six orders, none stamped yet
    card = make_card(stamps_required=3)
    store = StoreFactory()
    member = MemberFactory(home_store=store)
    orders = [OrderFactory(member=member, store=store, external_id=f"ORD-{i}") for i in range(6)]
    # when: each order's stamp task and its full refund start at the same moment
    for order in orders:
        results = run_in_threads(
            2,
            lambda index, order=order: (
                stamps_collect_for_order(order_id=order.pk)
                if index == 0
                else refund_record(external_id=f"R-{order.external_id}", order=order, amount=order.amount).refund.pk
            ),
        )
        assert not any(isinstance(result, Exception) for result in results), results
    # then
    assert not Stamp.objects.filter(card=card, void_at__isnull=True).exists()
    assert not StampCompletion.objects.filter(status=StampCompletion.Status.REWARDED).exists()
