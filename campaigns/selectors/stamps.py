"""Reads of stamp cards: a member's progress on each card they can collect on, in three queries
whatever their history (the cards, their unused stamps, their completions; one without a card)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from campaigns.models import Stamp, StampCard, StampCompletion
from segmentation.models import MemberRfm

__all__ = ["StampProgress", "member_stamp_cards"]

COMPLETIONS_PER_CARD = 10


@dataclass
class StampProgress:
    card: StampCard  # with its coupon template
    stamps: int  # unused stamps still in the window
    oldest_expires_at: dt.datetime | None  # when the oldest of them stops counting
    completions: list[StampCompletion] = field(default_factory=list)  # newest first, with coupon and points

    @property
    def required(self) -> int:
        return self.card.stamps_required


def member_stamp_cards(*, member_id: int, now: dt.datetime | None = None) -> list[StampProgress]:
    """The active cards running now that the member can collect on (no segments, or the member is in
    one of them), plus any active card on which they hold stamps, each with their progress and
    their completed rewards."""
    now = now or timezone.now()
    # One query: the member's segment and stamps are subqueries.
    in_segment = MemberRfm.objects.filter(member_id=member_id).values("segment_id")
    holds_stamps = Exists(Stamp.objects.filter(card_id=OuterRef("pk"), member_id=member_id))
    eligible = Q(segments__isnull=True) | Q(segments__in=in_segment) | Q(holds_stamps)
    running = (Q(starts_at__isnull=True) | Q(starts_at__lte=now)) & (Q(ends_at__isnull=True) | Q(ends_at__gt=now))
    card_ids = StampCard.objects.filter(running, eligible, is_active=True).values("pk")
    cards = list(StampCard.objects.filter(pk__in=card_ids).select_related("coupon_template").order_by("name", "id"))
    if not cards:
        return []
    progress = {card.pk: StampProgress(card=card, stamps=0, oldest_expires_at=None) for card in cards}
    longest = max(card.window_days for card in cards)
    unused = Stamp.objects.filter(
        member_id=member_id,
        card_id__in=list(progress),
        void_at__isnull=True,
        completion__isnull=True,
        paid_at__gt=now - dt.timedelta(days=longest),
    ).values_list("card_id", "paid_at")
    for card_id, paid_at in unused:
        entry = progress[card_id]
        expires_at = paid_at + dt.timedelta(days=entry.card.window_days)
        if expires_at <= now:
            continue
        entry.stamps += 1
        if entry.oldest_expires_at is None or expires_at < entry.oldest_expires_at:
            entry.oldest_expires_at = expires_at
    completions = (
        StampCompletion.objects.filter(member_id=member_id, card_id__in=list(progress))
        .select_related("coupon", "points_entry")
        .order_by("-completed_at", "-id")
    )
    for completion in completions[: COMPLETIONS_PER_CARD * len(cards)]:
        entry = progress[completion.card_id]
        if len(entry.completions) < COMPLETIONS_PER_CARD:
            entry.completions.append(completion)
    return list(progress.values())
