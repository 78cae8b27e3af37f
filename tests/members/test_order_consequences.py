"""What recording an order writes in its own transaction (tier first, then points at the new
tier's multiplier; a failure anywhere leaves nothing), and ``members.events``: the after-commit
events that tell the higher apps."""

import logging

import pytest
from django.db import connection, transaction

from members.events import DomainEvent, order_recorded
from members.models import Member, Order, PointsAccount, PointsEntry, PointsLot, Store, TierChange
from members.services import orders as orders_service
from tests.factories import MemberFactory, record_order

pytestmark = pytest.mark.django_db


class HandlerFailed(Exception):
    pass


@pytest.fixture
def event():
    return DomainEvent("x", "doc")


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


# --- DomainEvent -----------------------------------------------------------------------------


def test_handlers_get_the_payload_once_committed(event, django_capture_on_commit_callbacks):
    # given
    after_commit = []
    event.subscribe(lambda **kwargs: after_commit.append(kwargs))
    # when
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        event.publish(order_id=1)
        before_commit = list(after_commit)
    # then
    assert before_commit == []
    assert after_commit == [{"order_id": 1}]


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
def test_an_event_runs_its_handlers_at_once_outside_a_transaction(event):
    # given
    seen = []
    event.subscribe(lambda **kwargs: seen.append(kwargs))
    # when
    event.publish(order_id=1)
    # then
    assert seen == [{"order_id": 1}]


def test_unsubscribe_removes_a_handler(event, django_capture_on_commit_callbacks):
    # given a handler subscribed as a decorator, and again (no effect)
    calls = []

    @event.subscribe
    def handler(**kwargs):
        calls.append(kwargs)

    event.subscribe(handler)
    assert event.handlers == (handler,)
    # when
    event.unsubscribe(handler)
    event.unsubscribe(handler)  # a second time is harmless
    # then
    assert event.handlers == ()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        event.publish(order_id=1)
    assert calls == []
    assert callbacks == []


# --- an order's consequences: in the order's transaction -------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_failure_after_the_tier_and_the_points_leaves_no_order_and_tells_nobody(ladder, monkeypatch):
    # given: the last step of recording an order fails, after the tier and the points were written
    member = MemberFactory(tier=ladder["entry"])
    written_before_failing = []
    after_commit = []
    earn = orders_service.points_earn_for_new_order

    def earn_then_fail(*, order):
        earn(order=order)
        written_before_failing.append(
            (
                PointsEntry.objects.filter(order_id=order.pk).count(),
                TierChange.objects.filter(order_id=order.pk).count(),
            )
        )
        raise HandlerFailed

    monkeypatch.setattr(orders_service, "points_earn_for_new_order", earn_then_fail)
    order_recorded.subscribe(listener := lambda **kwargs: after_commit.append(kwargs))
    try:
        # when
        with pytest.raises(HandlerFailed):
            record_order(member, "600.00")
    finally:
        order_recorded.unsubscribe(listener)
    # then nothing the order wrote is left, and no higher app heard of it
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
    # when an order above the gold threshold (¥1000 in 365 days) is recorded
    order = record_order(member, "1000.00").order
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
        2000,
    )
    assert PointsAccount.objects.get(member=member).balance == 2000
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
    order = record_order(member, "100.00").order
    # then
    assert Member.objects.get(pk=member.pk).tier == ladder["entry"]
    assert not TierChange.objects.exists()
    earn = PointsEntry.objects.get(idempotency_key=f"order:{order.pk}:earn")
    assert (earn.kind, earn.points) == (PointsEntry.Kind.EARN, 100)
