"""Recording orders and refunds: the one way money enters the member's history.

Both services are idempotent: re-sending the same external id with the same content returns the
row recorded the first time (``created=False``); the same external id with different content is
refused with ``IdempotencyConflict``. New rows publish ``order_recorded`` / ``refund_recorded``
in the order's transaction (tier and points) and after commit (referrals, segments, triggers).
"""

from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from members import rows
from members.events import order_recorded, refund_recorded
from members.lock_objects import order_lock
from members.models import Member, Order, Refund, Store
from members.money import to_money

FUTURE_TOLERANCE = timedelta(minutes=10)  # a till's clock may run a little fast; more is a mistake


class IdempotencyConflict(ValidationError):
    """The external id was used before for different content."""


class OrderRecorded(NamedTuple):
    order: Order
    created: bool


class RefundRecorded(NamedTuple):
    refund: Refund
    created: bool


def _aware(value: datetime, field: str) -> datetime:
    if not isinstance(value, datetime):
        raise ValidationError({field: _("A date and time is required.")})
    if timezone.is_naive(value):
        return timezone.make_aware(value)
    return value


def moment_check(value: datetime, *, field: str = "paid_at", now: datetime | None = None) -> datetime:
    """``value`` as an aware datetime, refused when it lies more than ``FUTURE_TOLERANCE`` ahead of
    ``now``: an order or refund from the future would count in RFM and tiers before it happened.
    The one rule for every way orders come in (POS, imports, the admin, the demo)."""
    value = _aware(value, field)
    if value > (now or timezone.now()) + FUTURE_TOLERANCE:
        raise ValidationError({field: ValidationError(_("This time is in the future."), code="future")})
    return value


def order_record(
    *, external_id: str, member: Member, store: Store, paid_at: datetime, amount: Decimal | str
) -> OrderRecorded:
    external_id = (external_id or "").strip()
    if not external_id:
        raise ValidationError({"external_id": _("An external order id is required.")})
    amount = to_money(amount)
    paid_at = _aware(paid_at, "paid_at")

    order = Order(external_id=external_id, member=member, store=store, paid_at=paid_at, amount=amount)
    # No savepoint: the caller's transaction (if any) rolls back as a whole if anything here fails.
    # The insert locks the member first: a concurrent order of theirs waits, then its tier scan
    # counts this one (two orders that qualify only together still upgrade).
    with transaction.atomic(savepoint=False):
        if rows.insert(order, unless_conflict_on=("external_id",), lock_parent="member"):
            order_recorded.publish(instance=order, order_id=order.pk, member_id=member.pk, store_id=store.pk)
            return OrderRecorded(order, True)
    # Recorded before — or by a concurrent retry, which the insert waited for.
    existing = Order.objects.get(external_id=external_id)
    return OrderRecorded(_same_order_or_conflict(existing, member, store, paid_at, amount), False)


def _same_order_or_conflict(order: Order, member: Member, store: Store, paid_at: datetime, amount: Decimal) -> Order:
    differences = [
        name
        for name, ours, theirs in (
            ("member", order.member_id, member.pk),
            ("store", order.store_id, store.pk),
            ("paid_at", order.paid_at, paid_at),
            ("amount", order.amount, amount),
        )
        if ours != theirs
    ]
    if differences:
        raise IdempotencyConflict(
            {
                "external_id": _(
                    "Order %(id)s was already recorded with a different %(fields)s; "
                    "send a new external id for a new order."
                )
                % {"id": order.external_id, "fields": ", ".join(differences)}
            },
            code="conflict",
        )
    return order


def refund_record(
    *,
    external_id: str,
    order: Order,
    amount: Decimal | str,
    refunded_at: datetime | None = None,
    reason: str = "",
) -> RefundRecorded:
    external_id = (external_id or "").strip()
    if not external_id:
        raise ValidationError({"external_id": _("An external refund id is required.")})
    amount = to_money(amount)
    refunded_at = _aware(refunded_at, "refunded_at") if refunded_at is not None else timezone.now()

    try:
        with transaction.atomic():
            locked = order_lock(order_id=order.pk)
            # Read after the lock: a concurrent retry of this refund has committed by now.
            existing = Refund.objects.filter(external_id=external_id).first()
            if existing is not None:
                return RefundRecorded(_same_refund_or_conflict(existing, locked, amount), False)
            if locked.refunded_amount + amount > locked.amount:
                raise ValidationError(
                    {
                        "amount": _(
                            "Refunds of order %(order)s would exceed what was paid: paid %(paid)s, "
                            "already refunded %(refunded)s, this refund %(amount)s."
                        )
                        % {
                            "order": locked.external_id,
                            "paid": locked.amount,
                            "refunded": locked.refunded_amount,
                            "amount": amount,
                        }
                    },
                    code="over_refund",
                )
            refund = Refund.objects.create(
                external_id=external_id, order=locked, amount=amount, refunded_at=refunded_at, reason=reason
            )
            locked.refunded_amount += amount
            locked.status = (
                Order.Status.REFUNDED if locked.refunded_amount == locked.amount else Order.Status.PARTIALLY_REFUNDED
            )
            locked.save(update_fields=["refunded_amount", "status", "updated_at"])
            refund_recorded.publish(refund_id=refund.pk, order_id=locked.pk, member_id=locked.member_id)
    except IntegrityError:
        existing = Refund.objects.filter(external_id=external_id).select_related("order").first()
        if existing is None:
            raise
        return RefundRecorded(_same_refund_or_conflict(existing, order, amount), False)
    order.refunded_amount, order.status = locked.refunded_amount, locked.status
    return RefundRecorded(refund, True)


def _same_refund_or_conflict(refund: Refund, order: Order, amount: Decimal) -> Refund:
    if refund.order_id != order.pk or refund.amount != amount:
        raise IdempotencyConflict(
            {
                "external_id": _(
                    "Refund %(id)s was already recorded for a different order or amount; "
                    "send a new external id for a new refund."
                )
                % {"id": refund.external_id}
            },
            code="conflict",
        )
    return refund
