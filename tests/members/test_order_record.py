import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection

from members.events import order_recorded, refund_recorded
from members.models import Order, Refund
from members.services.orders import IdempotencyConflict, order_record, refund_record
from tests.factories import MemberFactory, OrderFactory

pytestmark = pytest.mark.django_db

PAID_AT = dt.datetime(2026, 11, 1, 12, 30, tzinfo=dt.UTC)


@pytest.fixture
def captured():
    """Collect the events published after commit."""
    seen = []

    def on_order(**payload):
        seen.append(("order", payload))

    def on_refund(**payload):
        seen.append(("refund", payload))

    order_recorded.subscribe(on_order)
    refund_recorded.subscribe(on_refund)
    yield seen
    order_recorded.unsubscribe(on_order)
    refund_recorded.unsubscribe(on_refund)


def test_an_order_is_recorded_once_and_the_event_fires_after_commit(django_capture_on_commit_callbacks, captured):
    # given
    member = MemberFactory()
    # when
    with django_capture_on_commit_callbacks(execute=True):
        first = order_record(
            external_id="POS-1", member=member, store=member.home_store, paid_at=PAID_AT, amount="38.50"
        )
    with django_capture_on_commit_callbacks(execute=True):
        again = order_record(
            external_id="POS-1", member=member, store=member.home_store, paid_at=PAID_AT, amount=Decimal("38.5")
        )
    # then
    assert first.created and not again.created
    assert again.order.pk == first.order.pk
    assert Order.objects.count() == 1
    assert first.order.amount == Decimal("38.50")
    assert captured == [
        ("order", {"order_id": first.order.pk, "member_id": member.pk, "store_id": member.home_store_id})
    ]


@pytest.mark.parametrize(
    "change",
    [
        {"amount": "38.51"},
        {"paid_at": PAID_AT + dt.timedelta(minutes=1)},
        {"member": "other"},  # another store's order with this id is another order (test_external_ids_per_store)
    ],
)
def test_a_resend_with_different_content_is_refused(change):
    # given
    member = MemberFactory()
    order_record(external_id="POS-1", member=member, store=member.home_store, paid_at=PAID_AT, amount="38.50")
    kwargs = {"member": member, "store": member.home_store, "paid_at": PAID_AT, "amount": "38.50", **change}
    if kwargs["member"] == "other":
        kwargs["member"] = MemberFactory()
    # when / then
    with pytest.raises(IdempotencyConflict) as excinfo:
        order_record(external_id="POS-1", **kwargs)
    assert "external_id" in excinfo.value.message_dict
    assert Order.objects.get().amount == Decimal("38.50")


@pytest.mark.parametrize("amount", ["0", "-1", "NaN", "Infinity", "1.001", "abc", 1.5])
def test_bad_amounts_are_refused_with_a_field_error(amount):
    member = MemberFactory()
    with pytest.raises(ValidationError) as excinfo:
        order_record(external_id="POS-9", member=member, store=member.home_store, paid_at=PAID_AT, amount=amount)
    assert "amount" in excinfo.value.message_dict
    assert not Order.objects.exists()


def test_the_database_refuses_a_non_positive_order_amount():
    order = OrderFactory()
    with pytest.raises(IntegrityError):
        Order.objects.filter(pk=order.pk).update(amount=Decimal("0"))


def test_partial_refunds_add_up_and_the_status_follows(django_capture_on_commit_callbacks, captured):
    # given
    order = OrderFactory(amount=Decimal("100.00"))
    # when
    with django_capture_on_commit_callbacks(execute=True):
        refund_record(external_id="R-1", order=order, amount="30.00")
    order.refresh_from_db()
    assert order.status == Order.Status.PARTIALLY_REFUNDED
    assert order.refunded_amount == Decimal("30.00")
    with django_capture_on_commit_callbacks(execute=True):
        refund_record(external_id="R-2", order=order, amount="70.00")
    # then
    order.refresh_from_db()
    assert order.status == Order.Status.REFUNDED
    assert order.net_amount == Decimal("0.00")
    assert [kind for kind, _ in captured] == ["refund", "refund"]


def test_refunds_never_exceed_what_was_paid():
    # given
    order = OrderFactory(amount=Decimal("100.00"))
    refund_record(external_id="R-1", order=order, amount="60.00")
    # when / then
    with pytest.raises(ValidationError) as excinfo:
        refund_record(external_id="R-2", order=order, amount="40.01")
    assert "amount" in excinfo.value.message_dict
    order.refresh_from_db()
    assert order.refunded_amount == Decimal("60.00")
    assert Refund.objects.count() == 1


def test_the_database_refuses_refunded_amount_above_the_order_amount():
    order = OrderFactory(amount=Decimal("10.00"))
    with pytest.raises(IntegrityError):
        Order.objects.filter(pk=order.pk).update(refunded_amount=Decimal("10.01"))


def test_a_refund_resend_returns_the_first_and_a_conflicting_one_is_refused():
    # given
    order = OrderFactory(amount=Decimal("100.00"))
    first = refund_record(external_id="R-1", order=order, amount="30.00")
    # when
    again = refund_record(external_id="R-1", order=order, amount="30.00")
    # then
    assert again.refund.pk == first.refund.pk and not again.created
    with pytest.raises(IdempotencyConflict):
        refund_record(external_id="R-1", order=order, amount="31.00")
    order.refresh_from_db()
    assert order.refunded_amount == Decimal("30.00")


@pytest.mark.django_db(transaction=True)
def test_concurrent_refunds_never_exceed_the_order():
    # given: ten different refunds of 15 yuan racing on a 100-yuan order
    order = OrderFactory(amount=Decimal("100.00"))
    barrier = threading.Barrier(10)
    outcomes = []

    def refund(index):
        try:
            barrier.wait()
            refund_record(external_id=f"R-{index}", order=Order.objects.get(pk=order.pk), amount="15.00")
            outcomes.append("ok")
        except ValidationError:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=refund, args=(i,)) for i in range(10)]
    # when
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then: 6 × 15 = 90 fits, a 7th would exceed 100
    order.refresh_from_db()
    assert outcomes.count("ok") == 6
    assert order.refunded_amount == Decimal("90.00")
    assert sum(r.amount for r in order.refunds.all()) == Decimal("90.00")


@pytest.mark.django_db(transaction=True)
def test_concurrent_resends_of_one_order_record_it_once():
    member = MemberFactory()
    barrier = threading.Barrier(8)
    created = []

    def send():
        try:
            barrier.wait()
            result = order_record(
                external_id="POS-RACE", member=member, store=member.home_store, paid_at=PAID_AT, amount="12.00"
            )
            created.append(result.created)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(created) == [False] * 7 + [True]
    assert Order.objects.filter(external_id="POS-RACE").count() == 1
