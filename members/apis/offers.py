"""Offers for me: the top-up offers a member can use (``GET /me/offers``), the points multipliers
campaigns and offers gave them (``GET /me/points/multipliers``), and topping up with an offer.

Members see benefits, never the segment behind them: an offer is shown by its id, name,
description and terms — not by its code (operators name codes after segments, e.g. the seed's
``champions-1000-150``) nor by the segments it is for. A multiplier is shown without its source.

Topping up with an offer (``POST /me/top-ups`` with ``offer``): ``members.services.top_ups`` asks
its registered offer resolvers for the bonus when it stores the intent, and the payment callback
credits that bonus with the principal. ``requested_top_up_offer_resolve`` is that resolver
(registered in ``campaigns.hooks.connect``); it answers only inside ``top_up_offer_requested(id)``,
the block in which the API creates the intent, and checks again, on the server, that the member
qualifies for the offer now (segment or campaign grant, active, in its window), that the amount
reaches its minimum, and that a use is left — counting the member's paid and still payable
top-up intents with the offer as uses, so one offer cannot be put on several intents.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db.models import Count, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from campaigns.models import MemberPointsMultiplier
from campaigns.models import TopUpOffer as Offer
from campaigns.services.offers import offers_for_member
from members.apis.base import MemberListApi
from members.apis.me import MoneyOut
from members.models import Member, TopUpIntent
from members.services.top_ups import TopUpOffer

_requested_offer: ContextVar[int | None] = ContextVar("requested_top_up_offer", default=None)


# --- reads -----------------------------------------------------------------------------------------------


def _intent_uses(*, member_id: int, codes: list[str]) -> dict[str, int]:
    """Top-up intents of the member carrying each offer that are paid or can still be paid."""
    if not codes:
        return {}
    rows = (
        TopUpIntent.objects.filter(member_id=member_id, offer_code__in=codes)
        .filter(Q(status=TopUpIntent.Status.PAID) | Q(status=TopUpIntent.Status.PENDING, expires_at__gt=timezone.now()))
        .order_by()
        .values("offer_code")
        .annotate(n=Count("pk"))
    )
    return {row["offer_code"]: row["n"] for row in rows}


def member_points_multipliers(*, member_id: int) -> QuerySet[MemberPointsMultiplier]:
    """The member's points multipliers that have not ended, soonest first."""
    return MemberPointsMultiplier.objects.filter(member_id=member_id, ends_at__gt=timezone.now()).order_by(
        "starts_at", "id"
    )


def member_top_up_offers(*, member_id: int) -> list[Offer]:
    """The top-up offers the member can use now, each with ``uses_left`` (None: no limit). Three queries."""
    offers = offers_for_member(member=Member(pk=member_id))  # reads only the primary key
    reserved = _intent_uses(member_id=member_id, codes=[offer.code for offer in offers])
    usable = []
    for offer in offers:
        if offer.per_member_limit is None:
            offer.uses_left = None
        else:
            offer.uses_left = offer.per_member_limit - offer.used - reserved.get(offer.code, 0)
            if offer.uses_left <= 0:
                continue
        usable.append(offer)
    return usable


# --- topping up with an offer --------------------------------------------------------------------------


@contextmanager
def top_up_offer_requested(offer_id: int | None) -> Iterator[None]:
    """Inside this block, ``requested_top_up_offer_resolve`` grants the bonus of offer ``offer_id``."""
    token = _requested_offer.set(offer_id)
    try:
        yield
    finally:
        _requested_offer.reset(token)


def _refused(field: str, message, code: str) -> ValidationError:
    return ValidationError({field: ValidationError(message, code=code)})


def requested_top_up_offer_resolve(*, member: Member, amount: Decimal) -> TopUpOffer | None:
    """The bonus of the offer the member asked for, checked now; None when they asked for none."""
    offer_id = _requested_offer.get()
    if offer_id is None:
        return None
    offer = next((offer for offer in member_top_up_offers(member_id=member.pk) if offer.pk == offer_id), None)
    if offer is None:
        raise _refused("offer", _("This offer is not available to you."), "not_eligible")
    if amount < offer.min_amount:
        raise _refused(
            "amount",
            _("This offer needs a top-up of at least ¥%(min)s.") % {"min": offer.min_amount},
            "below_minimum",
        )
    return TopUpOffer(bonus=offer.bonus_amount, offer_code=offer.code)


# --- views -----------------------------------------------------------------------------------------------


class MemberOfferListApi(MemberListApi):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField(help_text=_("Send it as `offer` when starting a top-up."))
        name = serializers.CharField()
        description = serializers.CharField()
        min_amount = MoneyOut(help_text=_("Top up at least this much…"))
        bonus_amount = MoneyOut(help_text=_("…and get this bonus on top."))
        points_multiplier = serializers.DecimalField(
            max_digits=4, decimal_places=2, allow_null=True, help_text=_("Points on orders multiplied by this…")
        )
        multiplier_days = serializers.IntegerField(allow_null=True, help_text=_("…for this many days."))
        restriction_note = serializers.CharField(help_text=_("What the bonus can be used for, if limited."))
        valid_from = serializers.DateTimeField(allow_null=True)
        valid_until = serializers.DateTimeField(allow_null=True)
        uses_left = serializers.IntegerField(allow_null=True, help_text=_("How often I can still use it; null: any."))

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Offer.objects.none()
        return member_top_up_offers(member_id=self.principal.member_id)

    @extend_schema(
        operation_id="me_offers_list",
        responses={200: OutputSerializer(many=True)},
        tags=["me"],
        summary="Top-up offers for me",
        description=_("The stored-value offers I can use now, smallest top-up first."),
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class MemberPointsMultiplierListApi(MemberListApi):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        multiplier = serializers.DecimalField(max_digits=4, decimal_places=2, help_text=_("2.00: double points."))
        starts_at = serializers.DateTimeField()
        ends_at = serializers.DateTimeField(help_text=_("Orders paid before this earn the multiplied points."))

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return MemberPointsMultiplier.objects.none()
        return member_points_multipliers(member_id=self.principal.member_id)

    @extend_schema(
        operation_id="me_points_multipliers_list",
        responses={200: OutputSerializer(many=True)},
        tags=["me"],
        summary="My current and coming points multipliers",
        description=_("Extra points a campaign or a top-up offer gave me; the highest one applies."),
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)
