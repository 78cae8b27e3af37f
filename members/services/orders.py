"""Recording orders and refunds: the one way money enters the member's history.

An order's consequences, read top to bottom in ``order_record`` and all in the order's transaction
(an order never exists without them; a POS gets its answer after one commit):

1. the order row, inserted unless its external id is known (locking the member);
2. the member's tier (``tier_evaluate_for_new_order``) — first, so that the qualifying order earns
   at the new tier's multiplier;
3. a referred member's first qualifying order completes the referral (both sides rewarded);
4. the order's points (``points_earn_for_new_order``);
5. the order's lines, when the caller names them (``members.services.products``: known skus,
   each once, adding up to at most the order's amount) — one insert, and no query at all without;
6. ``order_recorded`` is published: after commit, segmentation refreshes the member's segment and
   campaigns fires its triggers. Events only tell the higher apps; they never wire this app's steps.

``refund_record`` likewise takes back the refunded share of the order's points and, for a full
refund within the period, reverses the referral it completed — in the refund's transaction, with
the locks in the app's order (points accounts, referral, then the order).

Both services are idempotent: re-sending the same external id with the same content returns the
row recorded the first time (``created=False``); the same external id with different content is
refused with ``IdempotencyConflict`` — the lines included: a resend must name the same lines (or
none, for an order recorded without lines). Times more than ``FUTURE_TOLERANCE`` ahead are refused.

External ids are unique within a store (``order_store_external_id``, ``refund_store_external_id``):
two stores' tills may both number an order 1001. Every lookup by external id names the store (the
order's, for a refund), so another store's id is simply not found — a new order of this store —
and a conflict only ever compares with the caller's own store's row.
"""

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from members import rows
from members.events import order_recorded, refund_recorded
from members.lock_objects import order_lock, points_accounts_lock, referral_lock
from members.models import Member, Order, OrderLine, Refund, Store
from members.money import to_money
from members.services.errors import IdempotencyConflict
from members.services.points import points_clawback_locked, points_earn_for_new_order
from members.services.products import (
    LineIn,
    order_lines_resolve,
    order_lines_same,
    refund_lines_apply,
    refund_lines_same,
)
from members.services.referrals import referral_complete_in_order, referral_completed_on, referral_reverse_locked
from members.services.tiers import tier_evaluate_for_new_order

FUTURE_TOLERANCE = timedelta(minutes=10)  # a till's clock may run a little fast; more is a mistake


__all__ = ["FUTURE_TOLERANCE", "IdempotencyConflict", "moment_check", "order_record", "refund_record"]


class OrderRecorded(NamedTuple):
    order: Order
    created: bool
    lines: Sequence[OrderLine] = ()  # the order's lines, products attached, when the caller named lines


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
    *,
    external_id: str,
    member: Member,
    store: Store,
    paid_at: datetime,
    amount: Decimal | str,
    lines: Sequence[LineIn] | None = None,
) -> OrderRecorded:
    external_id = (external_id or "").strip()
    if not external_id:
        raise ValidationError({"external_id": _("An external order id is required.")})
    amount = to_money(amount)
    paid_at = moment_check(paid_at, field="paid_at")
    stated_lines = order_lines_resolve(lines=lines, order_amount=amount) if lines else []

    order = Order(external_id=external_id, member=member, store=store, paid_at=paid_at, amount=amount)
    # No savepoint: the caller's transaction (if any) rolls back as a whole if anything here fails.
    # The insert locks the member first: a concurrent order of theirs waits, then its tier scan
    # counts this one (two orders that qualify only together still upgrade).
    with transaction.atomic(savepoint=False):
        if rows.insert(order, unless_conflict_on=("store", "external_id"), lock_parent="member"):
            tier_evaluate_for_new_order(order=order)  # also reads the member's referrer under the lock
            if order.member.referrer_id is not None:
                referral_complete_in_order(order=order)
            points_earn_for_new_order(order=order)
            if stated_lines:
                for line in stated_lines:
                    line.order = order
                OrderLine.objects.bulk_create(stated_lines)
            order_recorded.publish(order_id=order.pk, member_id=member.pk, store_id=store.pk)
            return OrderRecorded(order, True, stated_lines)
    # Recorded before — or by a concurrent retry, which the insert waited for.
    existing = Order.objects.get(store=store, external_id=external_id)
    order = _same_order_or_conflict(existing, member, paid_at, amount)
    if lines is None:
        return OrderRecorded(order, False)
    recorded_lines = list(OrderLine.objects.filter(order=order).select_related("product"))
    if not order_lines_same(recorded_lines, stated_lines):
        raise IdempotencyConflict(
            {
                "external_id": _(
                    "Order %(id)s was already recorded with different lines; send a new external id for a new order."
                )
                % {"id": order.external_id}
            },
            code="conflict",
        )
    return OrderRecorded(order, False, recorded_lines)


def _same_order_or_conflict(order: Order, member: Member, paid_at: datetime, amount: Decimal) -> Order:
    """``order`` (of the caller's store: found by store and external id) if the request says the
    same, else ``IdempotencyConflict`` naming the fields that differ — the store's own data only."""
    differences = [
        name
        for name, ours, theirs in (
            ("member", order.member_id, member.pk),
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
    lines: Sequence[LineIn] | None = None,
) -> RefundRecorded:
    """Record a refund of (part of) ``order``, and take back its consequences (see the module's doc).

    ``lines`` name what was given back of the order's lines (sku, quantity — 0 for a price
    correction — and amount): lines of this order, each once, within what each has left to refund,
    together at most the refund's amount. A retry naming lines must name the same lines."""
    external_id = (external_id or "").strip()
    if not external_id:
        raise ValidationError({"external_id": _("An external refund id is required.")})
    amount = to_money(amount)
    refunded_at = moment_check(refunded_at, field="refunded_at") if refunded_at is not None else timezone.now()

    try:
        with transaction.atomic():
            # Locks in the app's order: points accounts (the member's, and the referrer's when the
            # order completed a referral), the referral, then the order.
            referral = referral_completed_on(order_id=order.pk)
            accounts = points_accounts_lock(
                member_ids=[order.member_id, *([referral.referrer_id] if referral is not None else [])]
            )
            if referral is not None:
                referral_lock(referral_id=referral.pk)
            locked = order_lock(order_id=order.pk)
            # Read after the lock: a concurrent retry of this refund has committed by now.
            existing = Refund.objects.filter(store_id=locked.store_id, external_id=external_id).first()
            if existing is not None:
                return RefundRecorded(_same_refund_or_conflict(existing, locked, amount, lines), False)
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
                external_id=external_id,
                order=locked,
                store_id=locked.store_id,
                amount=amount,
                refunded_at=refunded_at,
                reason=reason,
            )
            if lines:
                refund_lines_apply(refund=refund, order=locked, lines=lines)
            locked.refunded_amount += amount
            locked.status = (
                Order.Status.REFUNDED if locked.refunded_amount == locked.amount else Order.Status.PARTIALLY_REFUNDED
            )
            locked.save(update_fields=["refunded_amount", "status", "updated_at"])
            points_clawback_locked(account=accounts[locked.member_id], refund=refund, order=locked)
            if referral is not None:
                referral_reverse_locked(referral_id=referral.pk, order=locked, accounts=accounts)
            refund_recorded.publish(refund_id=refund.pk, order_id=locked.pk, member_id=locked.member_id)
    except IntegrityError:
        existing = (
            Refund.objects.filter(store_id=order.store_id, external_id=external_id).select_related("order").first()
        )
        if existing is None:
            raise
        return RefundRecorded(_same_refund_or_conflict(existing, order, amount, lines), False)
    order.refunded_amount, order.status = locked.refunded_amount, locked.status
    return RefundRecorded(refund, True)


def _same_refund_or_conflict(
    refund: Refund, order: Order, amount: Decimal, lines: Sequence[LineIn] | None = None
) -> Refund:
    if refund.order_id != order.pk or refund.amount != amount or not refund_lines_same(refund=refund, lines=lines):
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
