"""An order recorded through ``order_record`` earns its points in the order's transaction, by one
statement when the member's account exists and owes nothing (``points._earn_at_once``) and by the
general path otherwise. Both must write the same ledger."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from members.models import PointsEntry, PointsLot
from members.services.orders import refund_record
from members.services.points import points_clawback_for_refund, points_earn_for_order, points_redeem
from tests.factories import MemberFactory, OrderFactory, record_order
from tests.members.test_points import assert_books_balance

pytestmark = pytest.mark.django_db

Kind = PointsEntry.Kind
AMOUNTS = ("38.50", "120.00", "9.90", "260.00")


def ledger(member) -> list[tuple]:
    entries = PointsEntry.objects.filter(member=member).order_by("id")
    return [(e.kind, e.points, e.balance_after, e.debt_after, e.reason[:5]) for e in entries]


def lots(member) -> list[tuple]:
    return list(
        PointsLot.objects.filter(member=member)
        .order_by("id")
        .values_list("points", "remaining", "earned_at", "expires_at", "source_entry__order__amount")
    )


def test_orders_earn_the_same_ledger_by_one_statement_as_by_the_general_path():
    # given two members: one buys at the till, the other's identical orders are earned the general way
    paid_at = timezone.now() - dt.timedelta(hours=1)
    at_till, general = MemberFactory(), MemberFactory()
    # when
    for index, amount in enumerate(AMOUNTS):
        record_order(at_till, amount, paid_at + dt.timedelta(minutes=index))
        order = OrderFactory(member=general, amount=Decimal(amount), paid_at=paid_at + dt.timedelta(minutes=index))
        points_earn_for_order(order_id=order.pk)
    # then the entries and lots are the same, and the books balance
    assert [row[1:4] for row in ledger(at_till)] == [row[1:4] for row in ledger(general)]
    assert [(kind, points) for kind, points, *_ in ledger(at_till)] == [
        (Kind.EARN, 38),
        (Kind.EARN, 120),
        (Kind.EARN, 9),
        (Kind.EARN, 260),
    ]
    assert lots(at_till) == lots(general)
    assert assert_books_balance(at_till).balance == 427
    earn = PointsEntry.objects.filter(member=at_till).order_by("id").last()
    assert earn.idempotency_key == f"order:{earn.order_id}:earn" and earn.reference == f"order:{earn.order_id}"


def test_an_order_of_a_member_who_owes_points_repays_the_debt_first():
    # given a member who spent points that a refund then took back: 80 owed
    member = MemberFactory()
    first = record_order(member, "100.00", timezone.now() - dt.timedelta(days=1)).order
    points_redeem(member=member, points=80, idempotency_key="spent", reason="Gift")
    refund = refund_record(external_id="R-debt", order=first, amount="100.00").refund
    points_clawback_for_refund(refund_id=refund.pk)
    assert assert_books_balance(member).debt == 80
    # when the next order earns 50
    record_order(member, "50.00", timezone.now())
    # then it repays 50 of the debt and nothing becomes spendable yet
    account = assert_books_balance(member)
    assert (account.balance, account.debt) == (0, 30)
    last_two = list(PointsEntry.objects.filter(member=member).order_by("-id")[:2])
    assert [(e.kind, e.points) for e in reversed(last_two)] == [(Kind.EARN, 50), (Kind.DEBT_REPAYMENT, -50)]
