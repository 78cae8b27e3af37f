"""Offers for me: the top-up offers a member can use (``GET /me/offers``) and the points
multipliers campaigns and offers gave them (``GET /me/points/multipliers``).

Members see benefits, never the segment behind them: an offer is shown by its id, name,
description and terms — not by its code (operators name codes after segments, e.g. the seed's
``champions-1000-150``) nor by the segments it is for. A multiplier is shown without its source.

Topping up with an offer (``POST /me/top-ups`` with ``offer``) is checked by
``campaigns.services.offers.top_up_offer_resolve`` and credited at payment by
``campaigns.services.offers.top_up_offer_credit`` (both registered in ``campaigns.hooks``).
"""

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from campaigns.models import MemberPointsMultiplier
from campaigns.models import TopUpOffer as Offer
from campaigns.services.offers import member_top_up_offers
from members.apis.base import MemberListApi
from members.apis.me import MoneyOut


def member_points_multipliers(*, member_id: int) -> QuerySet[MemberPointsMultiplier]:
    """The member's points multipliers that have not ended, soonest first."""
    return MemberPointsMultiplier.objects.filter(member_id=member_id, ends_at__gt=timezone.now()).order_by(
        "starts_at", "id"
    )


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
