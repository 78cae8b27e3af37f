import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from members.events import referral_completed
from members.models import LoyaltyProgram, PointsAccount, PointsEntry, PointsLot, Referral
from members.services.members import member_register
from members.services.orders import order_record, refund_record
from members.services.points import points_redeem
from members.services.referrals import (
    referral_complete_for_order,
    referral_register,
    referral_reverse_for_refund,
)
from tests.factories import MemberFactory, OrderFactory

Kind = PointsEntry.Kind


def new_member(**kwargs):
    return MemberFactory(registered_at=timezone.now(), **kwargs)


def balance(member) -> int:
    account = PointsAccount.objects.filter(member=member).first()
    return account.balance if account else 0


def refusal_code(excinfo) -> str:
    return excinfo.value.error_dict["code"][0].code


def referred_pair():
    referrer = MemberFactory()
    referee = new_member()
    return referrer, referee, referral_register(referee=referee, code=referrer.referral_code.lower())


@pytest.mark.django_db
def test_a_referral_completes_on_the_first_qualifying_order_and_rewards_both_once():
    # given: registered with the code typed in lower case
    referrer, referee, referral = referred_pair()
    referee.refresh_from_db()
    assert referee.referrer_id == referrer.pk and referral.status == Referral.Status.PENDING
    order = OrderFactory(member=referee, amount=Decimal("10.00"))
    second = OrderFactory(member=referee, amount=Decimal("99.00"))
    # when
    completed = referral_complete_for_order(order_id=order.pk)
    again = referral_complete_for_order(order_id=order.pk)
    later = referral_complete_for_order(order_id=second.pk)
    # then
    assert completed.status == Referral.Status.COMPLETED and completed.qualifying_order_id == order.pk
    assert again is None and later is None
    assert (balance(referrer), balance(referee)) == (200, 100)
    assert PointsEntry.objects.filter(kind=Kind.REFERRAL_REWARD).count() == 2


@pytest.mark.django_db
def test_a_first_order_below_the_minimum_does_not_complete_the_referral():
    # given
    referrer, referee, referral = referred_pair()
    small = OrderFactory(member=referee, amount=Decimal("9.99"))
    # when
    result = referral_complete_for_order(order_id=small.pk)
    # then
    referral.refresh_from_db()
    assert result is None and referral.status == Referral.Status.PENDING
    assert (balance(referrer), balance(referee)) == (0, 0)


@pytest.mark.django_db
def test_recording_the_first_order_completes_the_referral_and_tells_the_higher_apps(
    django_capture_on_commit_callbacks,
):
    # given: someone listening for completed referrals (campaigns does)
    referrer, referee, referral = referred_pair()
    heard = []
    referral_completed.subscribe(listener := lambda **payload: heard.append(payload))
    try:
        # when: the POS records the referee's first order
        with django_capture_on_commit_callbacks(execute=True):
            order_record(
                external_id="FIRST-1", member=referee, store=referee.home_store, paid_at=timezone.now(), amount="50.00"
            )
    finally:
        referral_completed.unsubscribe(listener)
    # then: the referral completed in the order's transaction, with the program's points, and was announced
    referral.refresh_from_db()
    assert referral.status == Referral.Status.COMPLETED
    assert (balance(referrer), balance(referee)) == (200, 100 + 50)  # the referee also earned the order's points
    assert heard == [{"referral_id": referral.pk}]


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_first_orders_pay_the_reward_once():
    # given
    referrer, referee, referral = referred_pair()
    orders = [OrderFactory(member=referee, amount=Decimal("30.00")) for _ in range(2)]
    barrier = threading.Barrier(2)
    results, errors = [], []

    def complete(order_id):
        try:
            barrier.wait(timeout=10)
            results.append(referral_complete_for_order(order_id=order_id))
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    # when
    threads = [threading.Thread(target=complete, args=(o.pk,)) for o in orders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # then
    assert errors == []
    assert sum(r is not None for r in results) == 1
    referral.refresh_from_db()
    assert referral.status == Referral.Status.COMPLETED
    assert (balance(referrer), balance(referee)) == (200, 100)
    assert PointsEntry.objects.filter(kind=Kind.REFERRAL_REWARD).count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize("case", ["self", "unknown", "existing_member", "has_orders", "already_referred", "cycle"])
def test_bad_referrals_are_refused(case):
    # given
    referrer = new_member()
    referee = new_member()
    code = referrer.referral_code
    expected = {
        "self": "self_referral",
        "unknown": "unknown_code",
        "existing_member": "existing_member",
        "has_orders": "existing_member",
        "already_referred": "already_referred",
        "cycle": "cycle",
    }[case]
    if case == "self":
        referee = referrer
    elif case == "unknown":
        code = "NOPE2345"
    elif case == "existing_member":
        referee.registered_at = timezone.now() - dt.timedelta(days=2)
        referee.save()
    elif case == "has_orders":
        OrderFactory(member=referee)
    elif case == "already_referred":
        referral_register(referee=referee, code=new_member().referral_code)
    elif case == "cycle":
        # the referee already brought in someone who brought in the referrer: referee → middle → referrer
        middle = new_member()
        referral_register(referee=middle, code=referee.referral_code)
        referral_register(referee=referrer, code=middle.referral_code)
    referrals_before = Referral.objects.count()
    # when
    with pytest.raises(ValidationError) as refused:
        referral_register(referee=referee, code=code)
    # then
    assert refusal_code(refused) == expected
    assert Referral.objects.count() == referrals_before
    referee.refresh_from_db()
    assert referee.referrer_id is None or case == "already_referred"


def complete_then_refund(*, refund_after: dt.timedelta, spend: int = 0):
    referrer, referee, referral = referred_pair()
    order = OrderFactory(member=referee, amount=Decimal("30.00"))
    referral = referral_complete_for_order(order_id=order.pk)
    if spend:
        points_redeem(member=referrer, points=spend, idempotency_key="spend", reason="Gift")
    # the referral completed ``refund_after`` before the refund (refunds are never in the future)
    referral.completed_at -= refund_after
    referral.save(update_fields=["completed_at"])
    refund = refund_record(external_id="REFUND-1", order=order, amount="30.00").refund
    return referrer, referee, referral, refund


@pytest.mark.django_db
def test_a_full_refund_within_the_period_reverses_both_rewards_once():
    # given: the referrer already spent 150 of the 200 points
    # when: the qualifying order is refunded in full (the refund reverses the referral in its transaction)
    referrer, referee, referral, refund = complete_then_refund(refund_after=dt.timedelta(days=29), spend=150)
    again = referral_reverse_for_refund(refund_id=refund.pk)
    # then
    referral.refresh_from_db()
    assert referral.status == Referral.Status.REVERSED and again is None
    referrer_account = PointsAccount.objects.get(member=referrer)
    assert (referrer_account.balance, referrer_account.debt) == (0, 150)
    assert balance(referee) == 0
    assert PointsEntry.objects.filter(kind=Kind.REVERSAL).count() == 2
    for member in (referrer, referee):
        ledger = PointsEntry.objects.filter(member=member).aggregate(s=Sum("points"))["s"]
        lots = PointsLot.objects.filter(member=member).aggregate(s=Sum("remaining"))["s"]
        assert ledger == lots == balance(member)


@pytest.mark.django_db
def test_a_full_refund_after_the_period_keeps_the_rewards():
    # given
    program = LoyaltyProgram.current()
    assert program.referral_reversal_days == 30
    referrer, referee, referral, refund = complete_then_refund(refund_after=dt.timedelta(days=30, minutes=1))
    # when
    result = referral_reverse_for_refund(refund_id=refund.pk)
    # then
    referral.refresh_from_db()
    assert result is None and referral.status == Referral.Status.COMPLETED
    assert (balance(referrer), balance(referee)) == (200, 100)


@pytest.mark.django_db
def test_a_partial_refund_keeps_the_rewards():
    # given
    referrer, referee, _referral = referred_pair()
    order = OrderFactory(member=referee, amount=Decimal("30.00"))
    referral_complete_for_order(order_id=order.pk)
    refund = refund_record(external_id="PARTIAL-1", order=order, amount="29.99").refund
    # when
    result = referral_reverse_for_refund(refund_id=refund.pk)
    # then
    assert result is None
    assert (balance(referrer), balance(referee)) == (200, 100)


@pytest.mark.django_db
def test_a_member_registered_with_a_referrer_gets_the_matching_referral_and_no_other():
    # given
    referrer = MemberFactory()
    referee = member_register(mobile="13912345678", referrer=referrer)
    # when
    referral = referral_register(referee=referee, code=f" {referrer.referral_code} ")
    # then
    assert (referral.referrer_id, referral.referee_id) == (referrer.pk, referee.pk)
    other = member_register(mobile="13912345679", referrer=referrer)
    with pytest.raises(ValidationError) as refused:
        referral_register(referee=other, code=MemberFactory().referral_code)
    assert refusal_code(refused) == "already_referred"


@pytest.mark.django_db
def test_recording_the_referees_order_completes_the_referral_after_commit(django_capture_on_commit_callbacks):
    # given a referee whose member object was loaded before the referral (as a POS would hold it)
    from django.test.utils import CaptureQueriesContext

    from members.services.orders import order_record

    referrer, referee, _referral = referred_pair()
    stale = type(referee).objects.get(pk=referee.pk)
    stale.referrer_id = None  # the tier lock reads the row again: what counts is the database
    bystander = new_member()
    # when both buy
    with django_capture_on_commit_callbacks(execute=True):
        order_record(external_id="REF-1", member=stale, store=stale.home_store, paid_at=timezone.now(), amount="10.00")
    with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks(execute=True):
        order_record(
            external_id="REF-2", member=bystander, store=bystander.home_store, paid_at=timezone.now(), amount="10.00"
        )
    # then the referral completed and rewarded both, and the bystander's order asked nothing about referrals
    assert Referral.objects.get(referee=referee).status == Referral.Status.COMPLETED
    assert (balance(referrer), balance(referee)) == (200, 110)
    assert not [q for q in queries.captured_queries if "members_referral" in q["sql"]]
