"""Referrals (推荐): registering with a code, completing on the first qualifying order, reversing.

Rules
    * A new member registers with another member's referral code (case-insensitive). Refused: an
      unknown code, one's own code, a referee who was a member before (registered more than
      ``REGISTRATION_GRACE`` ago, or who already has orders), a referee already referred, and a
      cycle (the referee is found walking up the referrer's chain of referrers).
      ``Member.referrer`` is set with the referral and always agrees with it.
    * The referral completes on the referee's first paid order of at least
      ``LoyaltyProgram.referral_min_order_amount``; both sides are rewarded once, even when two first
      orders arrive together, with the program's referral points
      (``LoyaltyProgram.referral_referrer_points`` / ``referral_referee_points``). Completing is a
      step of ``order_record``, in the order's transaction.
    * A full refund of the qualifying order within ``referral_reversal_days`` of completion takes both
      rewards back (``points_reverse``: the spent part becomes debt) and marks the referral reversed
      — a step of ``refund_record``, in the refund's transaction.
    * ``referral_completed`` and ``referral_reversed`` tell the higher apps, after commit: campaigns
      adds its segment-dependent rewards (coupons, extra points) and takes them back.

Locks: the points accounts of both members (member-id order), then the referral row; its status is
read again under the lock, so a referral is paid and reversed at most once.
"""

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _g
from django.utils.translation import gettext_lazy as _

from members import rows
from members.events import referral_completed, referral_reversed
from members.lock_objects import member_lock, points_accounts_lock, referral_lock
from members.models import LoyaltyProgram, Member, Order, PointsEntry, Referral, Refund
from members.referral_codes import normalize_referral_code
from members.services.points import points_grant_locked, points_reverse_locked

REGISTRATION_GRACE = timedelta(days=1)

__all__ = [
    "REGISTRATION_GRACE",
    "referral_complete_for_order",
    "referral_complete_in_order",
    "referral_completed_on",
    "referral_register",
    "referral_reverse_for_refund",
    "referral_reverse_locked",
]


def _refused(message, code: str) -> ValidationError:
    return ValidationError({"code": ValidationError(message, code=code)})


def referral_register(*, referee: Member, code: str) -> Referral:
    """Record that the new member ``referee`` registered with ``code``; sets ``referee.referrer``."""
    normalized = normalize_referral_code(code)
    if not normalized:
        raise _refused(_("Enter a referral code."), "required")
    referrer = Member.objects.filter(referral_code=normalized).only("id").first()
    if referrer is None:
        raise _refused(_("This referral code does not exist."), "unknown_code")
    if referrer.pk == referee.pk:
        raise _refused(_("You cannot use your own referral code."), "self_referral")
    try:
        with transaction.atomic():
            # Both members locked (id order), so two members cannot refer each other at once.
            locked = {pk: member_lock(member_id=pk) for pk in sorted((referrer.pk, referee.pk))}
            fresh = locked[referee.pk]
            if fresh.registered_at < timezone.now() - REGISTRATION_GRACE or Order.objects.filter(member=fresh).exists():
                raise _refused(_("Referral codes are for new members only."), "existing_member")
            if Referral.objects.filter(referee=fresh).exists() or fresh.referrer_id not in (None, referrer.pk):
                raise _refused(_("This member was already referred."), "already_referred")
            if _in_referrer_chain(start_id=referrer.pk, member_id=referee.pk):
                raise _refused(_("Members cannot refer each other in a circle."), "cycle")
            referral = Referral.objects.create(referrer_id=referrer.pk, referee_id=fresh.pk, code=normalized)
            if fresh.referrer_id != referrer.pk:
                fresh.referrer_id = referrer.pk
                fresh.save(update_fields=["referrer", "updated_at"])
    except IntegrityError:
        if Referral.objects.filter(referee_id=referee.pk).exists():
            raise _refused(_("This member was already referred."), "already_referred") from None
        raise
    referee.referrer_id = referrer.pk
    return referral


def _in_referrer_chain(*, start_id: int, member_id: int) -> bool:
    """Whether ``member_id`` is ``start_id`` or one of its referrers, its referrers' referrers…"""
    table = connection.ops.quote_name(Member._meta.db_table)
    sql = f"""
        WITH RECURSIVE chain(id) AS (
            SELECT CAST(%s AS BIGINT)
            UNION
            SELECT m.referrer_id FROM {table} m JOIN chain c ON m.id = c.id WHERE m.referrer_id IS NOT NULL
        )
        SELECT 1 FROM chain WHERE id = %s LIMIT 1
    """  # noqa: S608 (the table name comes from the model, values are parameters)
    with connection.cursor() as cursor:
        cursor.execute(sql, [start_id, member_id])
        return cursor.fetchone() is not None


def referral_pending_for(*, member_id: int) -> bool:
    """Whether ``member_id`` was referred and the referral still waits for a qualifying order.
    Asked after every order: one short statement."""
    table = connection.ops.quote_name(Referral._meta.db_table)
    found = rows.fetch_prepared(
        f"SELECT 1 FROM {table} WHERE referee_id = %s AND status = %s LIMIT 1",  # noqa: S608
        [member_id, Referral.Status.PENDING.value],
    )
    return bool(found)


def referral_complete_for_order(*, order_id: int) -> Referral | None:
    """Complete the referee's pending referral if the order qualifies and reward both sides — for
    an order recorded before (``order_record`` does this itself for a new order, in its transaction).

    Returns the referral when this call completed it, else ``None`` (no referral, not qualifying,
    or completed already — by this order or a concurrent one).
    """
    order = Order.objects.get(pk=order_id)
    with transaction.atomic(durable=True):
        return referral_complete_in_order(order=order)


def referral_complete_in_order(*, order: Order) -> Referral | None:
    """``referral_complete_for_order`` inside the caller's transaction (``order_record``'s, after
    the tier and before the points: the points accounts of both members are locked here in
    member-id order, so the order's own earning finds its account locked already)."""
    if not referral_pending_for(member_id=order.member_id):
        return None
    referral = Referral.objects.filter(referee_id=order.member_id, status=Referral.Status.PENDING).first()
    if referral is None:
        return None
    program = LoyaltyProgram.current()
    if order.amount < program.referral_min_order_amount or order.status == Order.Status.REFUNDED:
        return None
    with transaction.atomic(savepoint=False):
        accounts = points_accounts_lock(member_ids=[referral.referrer_id, referral.referee_id])
        referral = referral_lock(referral_id=referral.pk)
        if referral.status != Referral.Status.PENDING:
            return None
        reference = f"referral:{referral.pk}"
        reason = _g("Referral of member %(referee)s by member %(referrer)s") % {
            "referee": referral.referee_id,
            "referrer": referral.referrer_id,
        }
        for side, member_id, points in (
            ("referrer", referral.referrer_id, program.referral_referrer_points),
            ("referee", referral.referee_id, program.referral_referee_points),
        ):
            if points > 0:
                entry = points_grant_locked(
                    account=accounts[member_id],
                    points=points,
                    kind=PointsEntry.Kind.REFERRAL_REWARD,
                    reason=reason,
                    idempotency_key=f"{reference}:{side}",
                    reference=reference,
                )
                setattr(referral, f"{side}_entry", entry)
        referral.status = Referral.Status.COMPLETED
        referral.qualifying_order = order
        referral.completed_at = timezone.now()
        referral.save(
            update_fields=[
                "status",
                "qualifying_order",
                "completed_at",
                "referrer_entry",
                "referee_entry",
                "updated_at",
            ]
        )
    referral_completed.publish(referral_id=referral.pk)
    return referral


def referral_completed_on(*, order_id: int) -> Referral | None:
    """The completed referral ``order_id`` qualified, if any (read without a lock)."""
    return Referral.objects.filter(qualifying_order_id=order_id, status=Referral.Status.COMPLETED).first()


def referral_reverse_for_refund(*, refund_id: int) -> Referral | None:
    """Reverse a completed referral whose qualifying order is now refunded in full within the period
    — for a refund recorded before (``refund_record`` does this itself, in its transaction).

    Returns the referral when this call reversed it, else ``None``.
    """
    refund = Refund.objects.select_related("order").get(pk=refund_id)
    referral = referral_completed_on(order_id=refund.order_id)
    if referral is None:
        return None
    with transaction.atomic(durable=True):
        accounts = points_accounts_lock(member_ids=[referral.referrer_id, referral.referee_id])
        return referral_reverse_locked(referral_id=referral.pk, order=refund.order, accounts=accounts)


def referral_reverse_locked(*, referral_id: int, order: Order, accounts: dict) -> Referral | None:
    """Reverse the referral inside the caller's transaction, the points ``accounts`` of both
    members locked (``refund_record`` locks them before the order, in the lock order)."""
    if order.refunded_amount < order.amount:
        return None
    referral = referral_lock(referral_id=referral_id)
    if referral.status != Referral.Status.COMPLETED:
        return None
    fully_refunded_at = Refund.objects.filter(order_id=order.pk).aggregate(at=Max("refunded_at"))["at"]
    period = timedelta(days=LoyaltyProgram.current().referral_reversal_days)
    if fully_refunded_at > referral.completed_at + period:
        return None
    with transaction.atomic(savepoint=False):
        reason = _g("Order %(order)s of a referral was refunded in full") % {"order": order.external_id}
        for side, member_id in (("referrer", referral.referrer_id), ("referee", referral.referee_id)):
            entry_id = getattr(referral, f"{side}_entry_id")
            if entry_id is not None:
                points_reverse_locked(
                    account=accounts[member_id],
                    entry=PointsEntry.objects.get(pk=entry_id),
                    idempotency_key=f"referral:{referral.pk}:{side}:reversal",
                    reason=reason,
                )
        referral.status = Referral.Status.REVERSED
        referral.reversed_at = timezone.now()
        referral.save(update_fields=["status", "reversed_at", "updated_at"])
    referral_reversed.publish(referral_id=referral.pk)
    return referral
