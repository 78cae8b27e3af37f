"""members.events: in-transaction handlers of a DomainEvent, and what recording an order writes in
its own transaction (tier first, then points at the new tier's multiplier)."""

import datetime as dt
import logging
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.utils import timezone

from members.events import DomainEvent, order_recorded
from members.models import Member, Order, PointsAccount, PointsEntry, PointsLot, Store, Tier, TierChange, TierRule
from members.services.orders import order_record
from tests.concurrency import in_another_connection
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db


class HandlerFailed(Exception):
    pass


@pytest.fixture
def event():
    return DomainEvent("x", "doc")


@pytest.fixture
def subscribe_for_the_test():
    """Subscribe handlers to the app's events for one test; they are unsubscribed afterwards."""
    subscribed = []

    def subscribe(event, handler, *, in_transaction):
        event.subscribe(handler, in_transaction=in_transaction)
        subscribed.append((event, handler))
        return handler

    yield subscribe
    for event, handler in subscribed:
        event.unsubscribe(handler)


@pytest.fixture
def ladder():
    """普通 (entry, ×1) < 金卡 (¥500 in 365 days, earns ×2)."""
    entry = Tier.objects.create(code="basic", name="普通会员", rank=0)
    gold = Tier.objects.create(code="gold", name="金卡", rank=1, points_multiplier=Decimal("2.00"))
    TierRule.objects.create(tier=gold, window_days=365, min_spend=Decimal("500.00"))
    return {"entry": entry, "gold": gold}


def writing_transaction(model, pk) -> str:
    """The id of the transaction that last wrote the row (PostgreSQL's ``xmin``)."""
    meta = model._meta
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT xmin::text FROM {quote(meta.db_table)} WHERE {quote(meta.pk.column)} = %s",
            [pk],
        )
        return cursor.fetchone()[0]


def record(member, external_id="POS-1", amount="600.00"):
    return order_record(
        external_id=external_id,
        member=member,
        store=member.home_store,
        paid_at=timezone.now() - dt.timedelta(minutes=5),
        amount=amount,
    )


# --- DomainEvent -----------------------------------------------------------------------------


def test_an_in_transaction_handler_runs_at_once_with_the_instance_and_the_payload(event):
    # given
    seen = []
    event.subscribe(lambda **kwargs: seen.append(kwargs), in_transaction=True)
    thing = object()
    # when
    with transaction.atomic():
        event.publish(instance=thing, order_id=1, member_id=2)
        during = list(seen)
    # then
    assert during == [{"instance": thing, "order_id": 1, "member_id": 2}]


def test_after_commit_handlers_get_the_payload_without_the_instance_once_committed(
    event, django_capture_on_commit_callbacks
):
    # given a handler of each phase
    in_transaction, after_commit = [], []
    event.subscribe(lambda **kwargs: in_transaction.append(kwargs), in_transaction=True)
    event.subscribe(lambda **kwargs: after_commit.append(kwargs))
    thing = object()
    # when
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        event.publish(instance=thing, order_id=1)
        before_commit = list(after_commit)
    # then
    assert before_commit == []
    assert after_commit == [{"order_id": 1}]
    assert in_transaction == [{"instance": thing, "order_id": 1}]


def test_a_failing_after_commit_handler_is_logged_and_the_next_one_still_runs(
    event, django_capture_on_commit_callbacks, caplog
):
    # given
    seen = []

    def fail(**_payload):
        raise HandlerFailed

    event.subscribe(fail)
    event.subscribe(lambda **kwargs: seen.append(kwargs))
    # when
    with caplog.at_level(logging.ERROR, logger="members.events"), django_capture_on_commit_callbacks(execute=True):
        event.publish(order_id=1)
    # then
    assert seen == [{"order_id": 1}]
    assert any("x handler" in message and "failed" in message for message in caplog.messages)


@pytest.mark.django_db(transaction=True)
def test_publishing_an_event_with_in_transaction_handlers_outside_a_transaction_is_refused(event):
    # given
    in_transaction, after_commit = [], []
    event.subscribe(lambda **kwargs: in_transaction.append(kwargs), in_transaction=True)
    event.subscribe(lambda **kwargs: after_commit.append(kwargs))
    assert not connection.in_atomic_block
    # when / then
    with pytest.raises(RuntimeError, match="x has in-transaction handlers"):
        event.publish(instance=object(), order_id=1)
    assert in_transaction == []
    assert after_commit == []


@pytest.mark.django_db(transaction=True)
def test_an_event_with_only_after_commit_handlers_runs_them_at_once_outside_a_transaction(event):
    # given
    seen = []
    event.subscribe(lambda **kwargs: seen.append(kwargs))
    # when
    event.publish(instance=object(), order_id=1)
    # then
    assert seen == [{"order_id": 1}]


def test_unsubscribe_removes_a_handler_from_both_phases(event, django_capture_on_commit_callbacks):
    # given a handler subscribed to both phases (twice to one: no effect), once as a decorator
    calls = []

    @event.subscribe(in_transaction=True)
    def handler(**kwargs):
        calls.append(kwargs)

    event.subscribe(handler)
    event.subscribe(handler)
    assert event.in_transaction_handlers == (handler,)
    assert event.handlers == (handler,)
    # when
    event.unsubscribe(handler)
    event.unsubscribe(handler)  # a second time is harmless
    # then
    assert event.in_transaction_handlers == ()
    assert event.handlers == ()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        event.publish(instance=object(), order_id=1)
    assert calls == []
    assert callbacks == []


# --- order_recorded: in the order's transaction ------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_in_transaction_handler_of_an_order_sees_it_before_anyone_else_does(subscribe_for_the_test):
    # given a handler that looks for the order here and from another connection
    seen = {}

    def look(*, instance, order_id, **_payload):
        seen["instance"] = instance
        seen["here"] = Order.objects.filter(pk=order_id).exists()
        seen["elsewhere"] = in_another_connection(lambda: Order.objects.filter(pk=order_id).exists())["value"]

    subscribe_for_the_test(order_recorded, look, in_transaction=True)
    member = MemberFactory()
    # when
    recorded = record(member, amount="38.00")
    # then the handler ran inside the order's uncommitted transaction, with the order itself
    assert seen["instance"] is recorded.order
    assert seen["here"] is True
    assert seen["elsewhere"] is False
    assert in_another_connection(lambda: Order.objects.filter(pk=recorded.order.pk).exists())["value"] is True


@pytest.mark.django_db(transaction=True)
def test_a_failing_in_transaction_handler_leaves_no_order_and_no_points(ladder, subscribe_for_the_test):
    # given a handler that fails after the tier and the points were written
    member = MemberFactory(tier=ladder["entry"])
    written_before_failing = []
    after_commit = []

    def fail(*, instance, **_payload):
        written_before_failing.append(
            (
                PointsEntry.objects.filter(order_id=instance.pk).count(),
                TierChange.objects.filter(order_id=instance.pk).count(),
            )
        )
        raise HandlerFailed

    subscribe_for_the_test(order_recorded, fail, in_transaction=True)
    subscribe_for_the_test(order_recorded, lambda **kwargs: after_commit.append(kwargs), in_transaction=False)
    # when
    with pytest.raises(HandlerFailed):
        record(member, amount="600.00")
    # then nothing the order wrote is left, and nobody heard of it after commit
    assert written_before_failing == [(1, 1)]
    assert not Order.objects.exists()
    assert not PointsEntry.objects.exists()
    assert not PointsLot.objects.exists()
    assert not PointsAccount.objects.exists()
    assert not TierChange.objects.exists()
    assert Member.objects.get(pk=member.pk).tier == ladder["entry"]
    assert after_commit == []


@pytest.mark.django_db(transaction=True)
def test_an_order_upgrades_the_member_and_earns_at_the_new_multiplier_in_one_transaction(ladder):
    # given an entry-level member
    member = MemberFactory(tier=ladder["entry"])
    # when an order above the gold threshold is recorded
    order = record(member, amount="600.00").order
    # then the member is gold, and the order earned at gold's ×2
    assert Member.objects.get(pk=member.pk).tier == ladder["gold"]
    change = TierChange.objects.get(member=member)
    assert (change.from_tier, change.to_tier, change.reason, change.order_id) == (
        ladder["entry"],
        ladder["gold"],
        TierChange.Reason.UPGRADE_ON_ORDER,
        order.pk,
    )
    earn = PointsEntry.objects.get(member=member)
    assert (earn.kind, earn.idempotency_key, earn.order_id, earn.points) == (
        PointsEntry.Kind.EARN,
        f"order:{order.pk}:earn",
        order.pk,
        1200,
    )
    assert PointsAccount.objects.get(member=member).balance == 1200
    # and every row the order wrote was written by one transaction, not the one before it
    transactions = {
        writing_transaction(Order, order.pk),
        writing_transaction(Member, member.pk),
        writing_transaction(TierChange, change.pk),
        writing_transaction(PointsEntry, earn.pk),
        writing_transaction(PointsAccount, member.pk),
    }
    assert len(transactions) == 1
    assert writing_transaction(Store, member.home_store_id) not in transactions


def test_an_order_below_the_threshold_earns_at_the_current_tier(ladder):
    # given
    member = MemberFactory(tier=ladder["entry"])
    # when
    order = record(member, amount="100.00").order
    # then
    assert Member.objects.get(pk=member.pk).tier == ladder["entry"]
    assert not TierChange.objects.exists()
    earn = PointsEntry.objects.get(idempotency_key=f"order:{order.pk}:earn")
    assert (earn.kind, earn.points) == (PointsEntry.Kind.EARN, 100)
