import datetime as dt
import itertools
import threading
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from members.lock_objects import points_account_lock
from members.models import LoyaltyProgram, MemberPointsMultiplier, PointsAccount, PointsEntry, PointsLot, Tier
from members.services.orders import IdempotencyConflict, refund_record
from members.services.points import (
    points_adjust,
    points_clawback_for_refund,
    points_earn_for_order,
    points_expire,
    points_expire_due_locked,
    points_grant,
    points_redeem,
    points_reverse,
)
from members.services.referrals import referral_complete_for_order, referral_register
from members.tasks import points_expire_task
from tests.factories import MemberFactory, OrderFactory

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")
Kind = PointsEntry.Kind
_refund_ids = itertools.count(1)


def earn(member, amount, paid_at=None):
    order = OrderFactory(member=member, amount=Decimal(amount), paid_at=paid_at or timezone.now())
    return order, points_earn_for_order(order_id=order.pk)


def refund(order, amount, refunded_at=None):
    recorded = refund_record(
        external_id=f"R-{next(_refund_ids)}-{order.pk}", order=order, amount=amount, refunded_at=refunded_at
    )
    return recorded.refund


def account_of(member) -> PointsAccount:
    return PointsAccount.objects.get(member=member)


def assert_books_balance(member):
    account = account_of(member)
    ledger = PointsEntry.objects.filter(member=member).aggregate(s=Sum("points"))["s"] or 0
    lots = PointsLot.objects.filter(member=member).aggregate(s=Sum("remaining"))["s"] or 0
    assert account.balance == ledger == lots
    assert account.balance >= 0 and account.debt >= 0
    assert account.debt == 0 or account.balance == 0  # debt is repaid before anything is spendable
    return account


def clawed_back(order) -> int:
    """Points the order's refunds took back: from the balance plus what they added to the debt."""
    total = 0
    for entry in PointsEntry.objects.filter(order=order, kind=Kind.REFUND_CLAWBACK):
        before = PointsEntry.objects.filter(member_id=entry.member_id, id__lt=entry.pk).order_by("-id").first()
        total += -entry.points + entry.debt_after - (before.debt_after if before else 0)
    return total


def adjuster(django_user_model, *, allowed=True, name="clerk"):
    user = django_user_model.objects.create_user(name, f"{name}@example.com", "pw-clerk-1", is_staff=True)
    if allowed:
        user.user_permissions.add(Permission.objects.get(codename="adjust_points"))
        user = django_user_model.objects.get(pk=user.pk)  # fresh permission cache
    return user


# --- earning ---------------------------------------------------------------------------------


def test_an_order_earns_its_points_once_in_a_lot_that_lives_twelve_months():
    # given
    member = MemberFactory()
    paid_at = timezone.now() - dt.timedelta(days=3)
    # when
    order, first = earn(member, "38.50", paid_at)
    again = points_earn_for_order(order_id=order.pk)
    # then
    assert first.points == 38 and first.kind == Kind.EARN and first.order_id == order.pk
    assert again.pk == first.pk
    lot = PointsLot.objects.get(member=member)
    assert (lot.points, lot.remaining) == (38, 38)
    local = paid_at.astimezone(SHANGHAI)
    assert lot.expires_at == local.replace(year=local.year + 1)
    assert assert_books_balance(member).balance == 38


def test_points_can_live_until_the_end_of_the_next_year():
    # given
    program = LoyaltyProgram.current()
    program.points_life_policy = LoyaltyProgram.PointsLife.END_OF_NEXT_YEAR
    program.save()
    member = MemberFactory()
    # when
    earn(member, "10.00", dt.datetime(2026, 3, 5, 9, 0, tzinfo=SHANGHAI))
    # then
    assert PointsLot.objects.get(member=member).expires_at == dt.datetime(2028, 1, 1, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("birthday", "expected"),
    [
        # 33.33 × 1.5 (tier) = 49.995 → 49
        (dt.date(1990, 5, 20), 49),
        # paid 2026-05-20 17:00 UTC is 05-21 01:00 in Shanghai: 33.33 × 1.5 × 2 = 99.99 → 99 (not 2 × 49)
        (dt.date(1990, 5, 21), 99),
    ],
)
def test_tier_and_birthday_multipliers_apply_and_round_down_once(birthday, expected):
    # given
    gold = Tier.objects.create(
        code="gold", name="Gold", rank=3, points_multiplier=Decimal("1.5"), birthday_points_multiplier=Decimal("2")
    )
    member = MemberFactory(tier=gold, birthday=birthday)
    # when
    _order, entry = earn(member, "33.33", dt.datetime(2026, 5, 20, 17, 0, tzinfo=dt.UTC))
    # then
    assert entry.points == expected
    assert account_of(member).balance == expected


def test_extra_multipliers_multiply_with_the_rest():
    # given: a champion holds double points (a campaign's grant: a row earning reads)
    champion = MemberFactory()
    ordinary = MemberFactory()
    now = timezone.now()
    MemberPointsMultiplier.objects.create(
        member=champion,
        multiplier=Decimal("2.00"),
        starts_at=now - dt.timedelta(days=400),
        ends_at=now + dt.timedelta(days=1),
        idempotency_key="double",
    )
    # when
    _o1, champion_entry = earn(champion, "12.75")
    _o2, ordinary_entry = earn(ordinary, "12.75")
    # then
    assert (champion_entry.points, ordinary_entry.points) == (25, 12)


# --- redeeming and expiry --------------------------------------------------------------------


def test_redemptions_take_the_lots_that_expire_first_and_never_go_below_zero():
    # given: the lot created first expires last
    member = MemberFactory()
    now = timezone.now()
    _o1, late = earn(member, "100.00", now - dt.timedelta(days=5))
    _o2, early = earn(member, "50.00", now - dt.timedelta(days=40))
    # when
    entry = points_redeem(member=member, points=120, idempotency_key="pos-1", reason="Tea voucher")
    retried = points_redeem(member=member, points=120, idempotency_key="pos-1", reason="Tea voucher")
    # then
    assert retried.pk == entry.pk and entry.points == -120
    assert PointsLot.objects.get(source_entry=early).remaining == 0
    assert PointsLot.objects.get(source_entry=late).remaining == 30
    with pytest.raises(ValidationError) as refused:
        points_redeem(member=member, points=31, idempotency_key="pos-2", reason="Cake")
    assert refused.value.error_dict["points"][0].code == "insufficient_points"
    assert "Insufficient points" in str(refused.value)
    with pytest.raises(IdempotencyConflict):
        points_redeem(member=member, points=5, idempotency_key="pos-1", reason="Same key, other amount")
    assert assert_books_balance(member).balance == 30


def test_expiry_takes_what_is_left_of_due_lots_and_a_second_run_changes_nothing():
    # given
    member = MemberFactory()
    paid = timezone.now() - dt.timedelta(days=2)
    _o1, first = earn(member, "80.00", paid)
    _o2, second = earn(member, "30.00", paid + dt.timedelta(days=1))
    points_redeem(member=member, points=50, idempotency_key="k1", reason="Gift")
    first_lot = PointsLot.objects.get(source_entry=first)
    as_of = first_lot.expires_at  # the first lot is due, the second a day later
    # when
    expired = points_expire(as_of=as_of)
    entries_after_first_run = PointsEntry.objects.count()
    expired_again = points_expire_task(as_of=as_of.isoformat())
    # then
    assert (expired, expired_again) == (30, 0)
    assert PointsEntry.objects.count() == entries_after_first_run
    expire_entry = PointsEntry.objects.get(member=member, kind=Kind.EXPIRE)
    assert expire_entry.points == -30 and expire_entry.idempotency_key == f"lot:{first_lot.pk}:expire"
    assert PointsLot.objects.get(source_entry=second).remaining == 30
    assert assert_books_balance(member).balance == 30


def test_points_past_their_expiry_cannot_be_spent_before_the_daily_run():
    # given: a lot from an order paid 13 months ago, not yet expired by the job
    member = MemberFactory()
    earn(member, "60.00", timezone.now() - dt.timedelta(days=400))
    earn(member, "10.00")
    # when / then
    with pytest.raises(ValidationError):
        points_redeem(member=member, points=20, idempotency_key="late", reason="Gift")
    entry = points_redeem(member=member, points=10, idempotency_key="ok", reason="Gift")
    assert entry.balance_after == 0
    assert PointsEntry.objects.filter(member=member, kind=Kind.EXPIRE).get().points == -60
    assert_books_balance(member)


def test_a_caller_deciding_on_the_balance_sees_it_without_the_points_past_their_expiry():
    # given: 60 points from an order paid 13 months ago (due, not yet swept) and 10 fresh ones
    member = MemberFactory()
    earn(member, "60.00", timezone.now() - dt.timedelta(days=400))
    earn(member, "10.00")
    assert account_of(member).balance == 70
    # when: a campaign about to take points back expires the due lots under the account lock
    with transaction.atomic():
        account = points_account_lock(member_id=member.pk)
        expired = points_expire_due_locked(account=account)
        seen = account.balance
        again = points_expire_due_locked(account=account)
    # then
    assert (expired, seen, again) == (60, 10, 0)
    assert assert_books_balance(member).balance == 10
    assert PointsEntry.objects.filter(member=member, kind=Kind.EXPIRE).get().points == -60


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_redemptions_never_overdraw():
    # given: 100 points, two tills each redeeming 60 at the same moment
    member = MemberFactory()
    earn(member, "100.00")
    barrier = threading.Barrier(2)
    outcomes = []

    def redeem(key):
        try:
            barrier.wait(timeout=10)
            points_redeem(member=member, points=60, idempotency_key=key, reason="Voucher")
            outcomes.append("ok")
        except ValidationError:
            outcomes.append("refused")
        finally:
            connection.close()

    # when
    threads = [threading.Thread(target=redeem, args=(f"till-{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # then
    assert sorted(outcomes) == ["ok", "refused"]
    assert assert_books_balance(member).balance == 40


# --- refunds ---------------------------------------------------------------------------------


def test_partial_refunds_take_back_their_share_and_add_up_to_all_that_was_earned():
    # given: 99.99 × 3 points per yuan = 299 points
    program = LoyaltyProgram.current()
    program.points_per_yuan = Decimal("3")
    program.save()
    member = MemberFactory()
    order, earned = earn(member, "99.99")
    assert earned.points == 299
    # when
    first = refund(order, "33.33")
    first_clawback = points_clawback_for_refund(refund_id=first.pk)
    second = refund(order, "66.66")
    second_clawback = points_clawback_for_refund(refund_id=second.pk)
    twice = points_clawback_for_refund(refund_id=second.pk)
    # then: floor(299 × 1/3) = 99, then the rest
    assert (first_clawback.points, second_clawback.points) == (-99, -200)
    assert twice.pk == second_clawback.pk
    assert PointsEntry.objects.filter(kind=Kind.REFUND_CLAWBACK).count() == 2
    assert assert_books_balance(member).balance == 0


def test_a_refund_of_spent_points_becomes_debt_that_the_next_earnings_repay():
    # given
    member = MemberFactory()
    order, _ = earn(member, "100.00")
    points_redeem(member=member, points=80, idempotency_key="spent", reason="Gift")
    # when: the order is refunded in full
    clawback = points_clawback_for_refund(refund_id=refund(order, "100.00").pk)
    # then
    account = assert_books_balance(member)
    assert clawback.points == -20 and clawback.debt_after == 80
    assert (account.balance, account.debt) == (0, 80)
    # when: the next orders earn 50, then 100
    earn(member, "50.00")
    account = assert_books_balance(member)
    assert (account.balance, account.debt) == (0, 30)
    earn(member, "100.00")
    # then
    account = assert_books_balance(member)
    assert (account.balance, account.debt) == (70, 0)
    repayments = PointsEntry.objects.filter(member=member, kind=Kind.DEBT_REPAYMENT).order_by("id")
    assert [e.points for e in repayments] == [-50, -30]


def test_a_refund_recorded_before_the_points_were_earned_is_applied_by_the_earning():
    # given
    member = MemberFactory()
    order = OrderFactory(member=member, amount=Decimal("40.00"))
    early = refund(order, "10.00")
    # when
    nothing_yet = points_clawback_for_refund(refund_id=early.pk)
    points_earn_for_order(order_id=order.pk)
    later = points_clawback_for_refund(refund_id=early.pk)
    # then
    assert nothing_yet is None
    assert later.points == -10
    assert assert_books_balance(member).balance == 30


# --- staff adjustments, grants and reversals -------------------------------------------------


def test_a_staff_adjustment_needs_the_permission_and_a_reason(django_user_model):
    # given
    member = MemberFactory()
    clerk = adjuster(django_user_model, allowed=False)
    supervisor = adjuster(django_user_model, name="supervisor")
    # when / then
    with pytest.raises(PermissionDenied):
        points_adjust(member=member, points=50, reason="Goodwill", actor=clerk, idempotency_key="a1")
    with pytest.raises(ValidationError) as no_reason:
        points_adjust(member=member, points=50, reason="  ", actor=supervisor, idempotency_key="a1")
    assert "reason" in no_reason.value.error_dict
    added = points_adjust(member=member, points=50, reason="Goodwill", actor=supervisor, idempotency_key="a1")
    with pytest.raises(ValidationError):
        points_adjust(member=member, points=-51, reason="Typo", actor=supervisor, idempotency_key="a2")
    taken = points_adjust(member=member, points=-20, reason="Typo", actor=supervisor, idempotency_key="a3")
    # then
    assert (added.actor, added.reason, added.kind) == (supervisor, "Goodwill", Kind.ADJUST)
    assert taken.points == -20 and taken.actor == supervisor
    assert assert_books_balance(member).balance == 30


def test_a_reversed_grant_takes_back_what_is_left_and_the_rest_becomes_debt():
    # given
    member = MemberFactory()
    granted = points_grant(
        member=member, points=200, kind=Kind.REFERRAL_REWARD, reason="Referral", idempotency_key="g1"
    )
    points_redeem(member=member, points=150, idempotency_key="r1", reason="Gift")
    # when
    reversal = points_reverse(entry=granted, idempotency_key="g1:rev", reason="Fraud")
    again = points_reverse(entry=granted, idempotency_key="g1:rev-2", reason="Fraud")
    # then
    assert again.pk == reversal.pk and reversal.reverses_id == granted.pk
    account = assert_books_balance(member)
    assert (reversal.points, account.balance, account.debt) == (-50, 0, 150)
    with pytest.raises(ValidationError):
        points_grant(member=member, points=10, kind=Kind.EARN, reason="Not a reward", idempotency_key="g2")


# --- the books always balance (stateful) -----------------------------------------------------


class PointsLedgerMachine(RuleBasedStateMachine):
    """Earn, redeem, refund (partial and full), expire and let time pass for one fresh member."""

    @initialize()
    def new_member(self):
        self.member = MemberFactory()
        self.clock = timezone.now()
        self.orders = []
        self.keys = itertools.count()

    @rule(cents=st.integers(min_value=1, max_value=40_000))
    def earn(self, cents):
        order = OrderFactory(member=self.member, amount=Decimal(cents) / 100, paid_at=self.clock)
        points_earn_for_order(order_id=order.pk)
        self.orders.append(order)

    @rule(points=st.integers(min_value=1, max_value=500))
    def redeem(self, points):
        balance = account_of(self.member).balance if PointsAccount.objects.filter(member=self.member).exists() else 0
        try:
            points_redeem(
                member=self.member, points=points, idempotency_key=f"m{self.member.pk}-{next(self.keys)}", reason="r"
            )
        except ValidationError:
            assert points > balance
        else:
            assert points <= balance

    @precondition(lambda self: any(o.refunded_amount < o.amount for o in self.orders))
    @rule(data=st.data())
    def refund(self, data):
        order = data.draw(st.sampled_from([o for o in self.orders if o.refunded_amount < o.amount]))
        left = int((order.amount - order.refunded_amount) * 100)
        cents = left if data.draw(st.booleans(), label="full") else data.draw(st.integers(1, left), label="cents")
        with time_machine.travel(self.clock, tick=False):  # refunds are never in the future: go there
            recorded = refund(order, Decimal(cents) / 100, refunded_at=self.clock)
        points_clawback_for_refund(refund_id=recorded.pk)
        if order.refunded_amount == order.amount:
            # a full refund has taken back exactly what was earned: from the balance, or as debt
            earned = PointsEntry.objects.filter(order=order, kind=Kind.EARN).aggregate(s=Sum("points"))["s"] or 0
            assert clawed_back(order) == earned

    @rule(days=st.integers(min_value=1, max_value=400))
    def advance_clock(self, days):
        self.clock += dt.timedelta(days=days)
        points_expire(as_of=self.clock)

    @rule()
    def expire_again(self):
        before = PointsEntry.objects.count()
        assert points_expire(as_of=self.clock) == 0
        assert PointsEntry.objects.count() == before

    @invariant()
    def books_balance(self):
        if PointsAccount.objects.filter(member=self.member).exists():
            assert_books_balance(self.member)


def test_the_points_books_balance_whatever_happens():
    run_state_machine_as_test(
        PointsLedgerMachine,
        settings=settings(
            max_examples=30,
            stateful_step_count=15,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


# --- admin -----------------------------------------------------------------------------------


def test_the_points_admin_pages_render_for_a_superuser(staff_client, django_assert_max_num_queries):
    # given
    for _ in range(3):
        member = MemberFactory()
        _order, _entry = earn(member, "20.00")
        points_redeem(member=member, points=5, idempotency_key=f"adm-{member.pk}", reason="Gift")
        referee = MemberFactory(registered_at=timezone.now())
        referral_register(referee=referee, code=member.referral_code)
        referral_complete_for_order(order_id=OrderFactory(member=referee, amount=Decimal("20.00")).pk)
    pages = [
        reverse("admin:members_pointsentry_changelist"),
        reverse("admin:members_pointsentry_changelist") + "?kind=earn",
        reverse("admin:members_pointsentry_changelist") + f"?q={member.mobile}",
        reverse("admin:members_pointslot_changelist"),
        reverse("admin:members_pointsaccount_changelist"),
        reverse("admin:members_referral_changelist"),
        reverse("admin:members_pointsentry_change", args=[PointsEntry.objects.first().pk]),
        reverse("admin:members_points_adjust"),
    ]
    # when / then
    for url in pages:
        with django_assert_max_num_queries(6):  # no query per row
            response = staff_client.get(url)
        assert response.status_code == 200, url
    program_page = staff_client.get(reverse("admin:members_loyaltyprogram_changelist"), follow=True)
    assert program_page.status_code == 200
    assert b"points_per_yuan" in program_page.content
    assert staff_client.get(reverse("admin:members_loyaltyprogram_add")).status_code == 403
    assert staff_client.get(reverse("admin:members_loyaltyprogram_delete", args=[1])).status_code == 403


def test_the_adjust_view_refuses_staff_without_the_permission(client, django_user_model):
    # given
    member = MemberFactory()
    client.force_login(adjuster(django_user_model, allowed=False))
    form = {"member": member.mobile, "points": "50", "reason": "Goodwill", "idempotency_key": "k"}
    # when
    shown = client.get(reverse("admin:members_points_adjust"))
    posted = client.post(reverse("admin:members_points_adjust"), form)
    # then
    assert (shown.status_code, posted.status_code) == (403, 403)
    assert not PointsEntry.objects.exists()


def test_the_adjust_view_adjusts_once_with_the_staff_user_and_reason(client, django_user_model):
    # given
    member = MemberFactory()
    supervisor = adjuster(django_user_model, name="supervisor")
    client.force_login(supervisor)
    form = {"member": f"+86 {member.mobile}", "points": "50", "reason": "Lost receipt", "idempotency_key": "k-1"}
    # when: the form is sent twice (a double click)
    first = client.post(reverse("admin:members_points_adjust"), form)
    second = client.post(reverse("admin:members_points_adjust"), form)
    no_reason = client.post(reverse("admin:members_points_adjust"), {**form, "reason": "", "idempotency_key": "k-2"})
    # then
    assert first.status_code == second.status_code == 302
    assert no_reason.status_code == 200 and b"This field is required" in no_reason.content
    entry = PointsEntry.objects.get(member=member)
    assert (entry.points, entry.actor, entry.reason) == (50, supervisor, "Lost receipt")


@pytest.mark.django_db
def test_reversing_an_earning_takes_back_only_what_refunds_left():
    # given: 100 points earned, half the order refunded (50 points taken back)
    member = MemberFactory()
    order, earned = earn(member, "100.00")
    points_clawback_for_refund(refund_id=refund(order, Decimal("50.00")).pk)
    assert account_of(member).balance == 50
    # when
    reversal = points_reverse(entry=earned, idempotency_key="fix-1", reason="recorded by mistake")
    # then: 50 more, not 100 — no debt appears
    assert reversal.points == -50
    account = assert_books_balance(member)
    assert (account.balance, account.debt) == (0, 0)
    # and once the whole order is refunded there is nothing left to reverse
    other, other_earned = earn(member, "10.00")
    points_clawback_for_refund(refund_id=refund(other, Decimal("10.00")).pk)
    with pytest.raises(ValidationError):
        points_reverse(entry=other_earned, idempotency_key="fix-2", reason="again")
