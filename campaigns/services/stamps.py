"""Stamp cards: stamping orders, completing cards, and reversing stamps when orders are refunded.

Stamping (``stamps_collect_for_order``)
    ``order_recorded`` → ``campaigns.subscribers.on_order_recorded_collect_stamps``, which does
    nothing unless a card is active (``active_stamp_cards``: a per-process cache of the active cards,
    watched and refreshed like the other settings caches) and otherwise queues ``stamp_order_task``.
    The service checks each active card against the order in three small queries (the order, its
    categories, the member's current segment) and, for the cards it qualifies for, in one
    transaction: locks the member (``member_lock``: a member's stamps and completions queue behind
    each other, so two orders completing a card at once give one reward), reads the order again
    (a refund may have committed since), inserts the stamps with ``ON CONFLICT DO NOTHING`` on
    ``(card, order)`` — a retried task or a re-sent order never stamps twice — and completes every
    card on which the member now holds N unused valid stamps.

    An order counts for a card when it was paid while the card ran (``starts_at``/``ends_at``) and
    within the card's window of today, its amount net of refunds is at least ``min_order_amount``,
    it has a line of ``category`` not refunded in full (when the card names one), and the member is
    in one of the card's segments when the order is stamped (a moment after it was recorded; the
    segment is the member's current one, ``MemberRfm``). Bulk-imported orders (``import_orders``)
    publish no per-order event and are not stamped: a historic order is not a visit made while the
    card ran. A card started today collects from the next order on.

Completing
    The N oldest unused stamps still in the window are tied to a new ``StampCompletion`` and the
    reward is issued with keys derived from it (``stamps:<id>:coupon``, ``stamps:<id>:points``), in
    the same transaction. A coupon that cannot be issued any more (template inactive, limit reached)
    is noted; if nothing at all could be given the completion is undone and the stamps wait.

Reversing (``stamps_reverse_for_order``)
    ``refund_recorded`` → ``stamp_refund_task`` (queued while a card is active even if the order has
    no stamp yet). The task locks the member before it reads the order's stamps, so a refund and the
    order's stamp task end the same in either order: the stamp task, run second, reads the refunded
    order under the lock and stamps nothing; run first, it commits its stamp before the refund task
    reads, and the refund task voids it. (The refund itself does not lock the member.)

    A stamp is voided when its order no longer qualifies for the card after the refund: refunded
    in full, or net amount below the card's minimum, or (category cards) every line of the
    category refunded in full. A voided stamp that was not used yet is just gone. A voided stamp
    already used for a completion undoes the completion if its reward can be taken back whole — the
    coupon unused (revoked) and the points still in the balance (reversed; the member's lots past
    their end are expired first, so points that expired but were not swept yet do not count) — and
    puts the completion's other stamps back; otherwise the reward is kept, and the completion says
    so (``kept``): a balance never goes negative, taking a reward back never leaves a debt, and a
    member never loses what they already used.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _g

from campaigns.models import Coupon, Stamp, StampCard, StampCompletion
from campaigns.services.coupons import CouponUnavailable, coupon_grant, coupon_revoke
from members.caching import ProcessCache
from members.lock_objects import member_lock, points_account_lock
from members.models import Order, OrderLine, PointsEntry
from members.services.points import points_expire_due_locked, points_grant_locked, points_reverse_locked
from segmentation.models import MemberRfm

__all__ = [
    "ActiveCard",
    "active_stamp_cards",
    "forget_active_stamp_cards",
    "stamps_collect_for_order",
    "stamps_reverse_for_order",
]


@dataclass(frozen=True)
class ActiveCard:
    id: int
    stamps_required: int
    category: str
    min_order_amount: Decimal | None
    window_days: int
    segment_ids: frozenset
    starts_at: dt.datetime | None
    ends_at: dt.datetime | None

    def window_start(self, now: dt.datetime) -> dt.datetime:
        return now - dt.timedelta(days=self.window_days)

    def ran_at(self, moment: dt.datetime) -> bool:
        return (self.starts_at is None or self.starts_at <= moment) and (self.ends_at is None or moment < self.ends_at)


def _load_active_cards() -> tuple[ActiveCard, ...]:
    cards = StampCard.objects.filter(is_active=True).prefetch_related("segments")
    return tuple(
        ActiveCard(
            id=card.pk,
            stamps_required=card.stamps_required,
            category=card.category,
            min_order_amount=card.min_order_amount,
            window_days=card.window_days,
            segment_ids=frozenset(segment.pk for segment in card.segments.all()),
            starts_at=card.starts_at,
            ends_at=card.ends_at,
        )
        for card in cards
    )


_cards = ProcessCache(_load_active_cards, watch=(StampCard, StampCard.segments.through))


def active_stamp_cards() -> tuple[ActiveCard, ...]:
    """The active cards (cached per process; a card saved here is seen at once, elsewhere within the TTL)."""
    return _cards.get()


def forget_active_stamp_cards() -> None:
    _cards.clear()


# --- which cards an order counts for -----------------------------------------------------------------


def _live_categories(order_id: int) -> set[str]:
    """Categories of the order's lines not refunded in full."""
    return set(
        OrderLine.objects.filter(order_id=order_id, amount__gt=F("refunded_amount")).values_list(
            "product__category", flat=True
        )
    )


def _order_counts(card: ActiveCard, order: Order, *, categories: set[str] | None) -> bool:
    """The order (as it stands, refunds included) still counts for ``card`` — segment aside."""
    if order.status == Order.Status.REFUNDED:
        return False
    if card.min_order_amount is not None and order.amount - order.refunded_amount < card.min_order_amount:
        return False
    return not card.category or (categories is not None and card.category in categories)


def _qualifying_cards(order: Order, cards: Iterable[ActiveCard], *, now: dt.datetime) -> list[ActiveCard]:
    cards = [card for card in cards if card.ran_at(order.paid_at) and order.paid_at > card.window_start(now)]
    if not cards:
        return []
    categories = _live_categories(order.pk) if any(card.category for card in cards) else None
    cards = [card for card in cards if _order_counts(card, order, categories=categories)]
    if any(card.segment_ids for card in cards):
        segment_id = MemberRfm.objects.filter(member_id=order.member_id).values_list("segment_id", flat=True).first()
        cards = [card for card in cards if not card.segment_ids or segment_id in card.segment_ids]
    return cards


def _still_counting(order_id: int, cards: list[ActiveCard]) -> list[ActiveCard]:
    """The ``cards`` the order still counts for, read again (the member locked): refunds aside,
    nothing that decided them changes."""
    order = Order.objects.get(pk=order_id)
    categories = _live_categories(order_id) if any(card.category for card in cards) else None
    return [card for card in cards if _order_counts(card, order, categories=categories)]


# --- stamping and completing -------------------------------------------------------------------------


def stamps_collect_for_order(*, order_id: int, now: dt.datetime | None = None) -> list[StampCompletion]:
    """Stamp ``order_id`` on every active card it counts for, once; complete the cards that are full.
    Returns the completions made. Safe to run twice."""
    cards = active_stamp_cards()
    if not cards:
        return []
    now = now or timezone.now()
    order = Order.objects.filter(pk=order_id).first()
    if order is None:
        return []
    cards = _qualifying_cards(order, cards, now=now)
    if not cards:
        return []
    with transaction.atomic():
        member_lock(member_id=order.member_id)
        # Again under the lock: a refund committed since the first read (its stamp reversal waits
        # for this lock and would find no stamp to void if it ran before this transaction).
        cards = _still_counting(order.pk, cards)
        if not cards:
            return []
        Stamp.objects.bulk_create(
            [
                Stamp(card_id=card.id, member_id=order.member_id, order_id=order.pk, paid_at=order.paid_at)
                for card in cards
            ],
            ignore_conflicts=True,
        )
        completions = []
        for card in cards:
            completions += _complete_full_cards(card_id=card.id, member_id=order.member_id, now=now)
    return completions


def _unused_stamps(*, card: StampCard, member_id: int, now: dt.datetime):
    return Stamp.objects.filter(
        card=card,
        member_id=member_id,
        void_at__isnull=True,
        completion__isnull=True,
        paid_at__gt=now - dt.timedelta(days=card.window_days),
    ).order_by("paid_at", "id")


def _complete_full_cards(*, card_id: int, member_id: int, now: dt.datetime) -> list[StampCompletion]:
    """Inside the caller's transaction, the member locked: turn every N unused valid stamps into a
    completion with its reward."""
    card = StampCard.objects.select_related("coupon_template").get(pk=card_id)
    if not card.is_active:  # switched off since: stamps given back by a refund wait
        return []
    made = []
    while True:
        stamp_ids = list(
            _unused_stamps(card=card, member_id=member_id, now=now).values_list("pk", flat=True)[: card.stamps_required]
        )
        if len(stamp_ids) < card.stamps_required:
            return made
        completion = _complete(card, member_id=member_id, stamp_ids=stamp_ids, now=now)
        if completion is None:
            return made
        made.append(completion)


def _complete(card: StampCard, *, member_id: int, stamp_ids: list[int], now: dt.datetime) -> StampCompletion | None:
    notes = []
    try:
        with transaction.atomic():
            # The points account before the coupon template, as campaign grants and rewards lock them.
            account = points_account_lock(member_id=member_id) if card.bonus_points else None
            completion = StampCompletion.objects.create(card=card, member_id=member_id, completed_at=now)
            Stamp.objects.filter(pk__in=stamp_ids).update(completion=completion, updated_at=now)
            reason = _g("Stamp card %(card)s completed") % {"card": card.name}
            if card.coupon_template_id is not None:
                try:
                    completion.coupon = coupon_grant(
                        template=card.coupon_template,
                        member=completion.member,
                        source=f"stamps:{card.slug}"[:100],
                        idempotency_key=f"stamps:{completion.pk}:coupon",
                    )
                except CouponUnavailable:
                    notes.append(_g("The coupon could not be issued any more."))
            if card.bonus_points:
                completion.points_entry = points_grant_locked(
                    account=account,
                    points=card.bonus_points,
                    kind=PointsEntry.Kind.CAMPAIGN_REWARD,
                    reason=reason,
                    idempotency_key=f"stamps:{completion.pk}:points",
                    reference=f"stamps:{completion.pk}",
                )
            if completion.coupon is None and completion.points_entry is None:
                raise _NothingGiven
            completion.note = "; ".join(notes)[:200]
            completion.save(update_fields=["coupon", "points_entry", "note", "updated_at"])
            return completion
    except _NothingGiven:
        return None


class _NothingGiven(Exception):
    """The reward could not be issued at all: the completion is rolled back, the stamps wait."""


# --- refunds -------------------------------------------------------------------------------------------


def stamps_reverse_for_order(*, order_id: int, now: dt.datetime | None = None) -> int:
    """After a refund of ``order_id``: void its stamps on the cards it no longer counts for and take
    back (or keep, when used) the rewards they went into. Returns how many stamps were voided.
    Safe to run twice."""
    now = now or timezone.now()
    member_id = Order.objects.filter(pk=order_id).values_list("member_id", flat=True).first()
    if member_id is None:
        return 0
    voided = 0
    with transaction.atomic():
        # The member first: a stamp task of this order still running commits its stamp before the
        # stamps and the order are read here.
        member_lock(member_id=member_id)
        stamps = list(Stamp.objects.filter(order_id=order_id, void_at__isnull=True).select_related("card"))
        if not stamps:
            return 0
        order = Order.objects.get(pk=order_id)
        categories = _live_categories(order_id) if any(stamp.card.category for stamp in stamps) else None
        for stamp in stamps:
            card = _as_active(stamp.card)
            if _order_counts(card, order, categories=categories):
                continue
            changed = Stamp.objects.filter(pk=stamp.pk, void_at__isnull=True).update(void_at=now, updated_at=now)
            if not changed:
                continue
            voided += 1
            stamp.refresh_from_db(fields=["completion"])
            if stamp.completion_id is not None:
                _undo_completion(stamp.completion_id, now=now)
    return voided


def _keep(completion: StampCompletion, what: str) -> None:
    completion.status = StampCompletion.Status.KEPT
    completion.note = (_g("An order was refunded, but %(what)s: the reward is kept.") % {"what": what})[:200]
    completion.save(update_fields=["status", "note", "updated_at"])


def _as_active(card: StampCard) -> ActiveCard:
    return ActiveCard(
        id=card.pk,
        stamps_required=card.stamps_required,
        category=card.category,
        min_order_amount=card.min_order_amount,
        window_days=card.window_days,
        segment_ids=frozenset(),
        starts_at=card.starts_at,
        ends_at=card.ends_at,
    )


def _undo_completion(completion_id: int, *, now: dt.datetime) -> None:
    """Inside the caller's transaction, the member locked."""
    completion = StampCompletion.objects.select_related("coupon", "points_entry", "card").get(pk=completion_id)
    if completion.status != StampCompletion.Status.REWARDED:
        return
    account = points_account_lock(member_id=completion.member_id) if completion.points_entry is not None else None
    if account is not None:
        # Points past their end are gone even before the nightly sweep: expire them first, so that
        # the balance compared is what the reversal can take (never a debt).
        points_expire_due_locked(account=account)
        if account.balance < completion.points_entry.points:
            return _keep(completion, _g("the points were spent or have expired"))
    reason = _g("An order of stamp card %(card)s was refunded") % {"card": completion.card.name}
    if completion.coupon is not None:
        # Conditional, like a redemption: of a revocation and a redemption at once, one wins.
        try:
            coupon_revoke(coupon=completion.coupon, reason=reason)
        except ValidationError:
            if Coupon.objects.filter(pk=completion.coupon_id, status=Coupon.Status.REDEEMED).exists():
                return _keep(completion, _g("the coupon was used"))
            # expired (or revoked by staff): nothing to take back
    if completion.points_entry is not None:
        points_reverse_locked(
            account=account,
            entry=completion.points_entry,
            idempotency_key=f"stamps:{completion.pk}:points:reversal",
            reason=reason,
        )
    completion.status = StampCompletion.Status.REVERSED
    completion.note = reason[:200]
    completion.save(update_fields=["status", "note", "updated_at"])
    # The completion's other stamps count again (those still in the window may complete anew).
    Stamp.objects.filter(completion=completion, void_at__isnull=True).update(completion=None, updated_at=now)
    _complete_full_cards(card_id=completion.card_id, member_id=completion.member_id, now=now)
