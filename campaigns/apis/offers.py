"""Offers for me: the top-up offers a member can use (``GET /me/offers``) and the points
multipliers campaigns and offers gave them (``GET /me/points/multipliers``).

Members see benefits, never the segment behind them: an offer is shown by its id, name,
description and terms — not by its code (operators name codes after segments, e.g. the seed's
``champions-1000-150``) nor by the segments it is for. A multiplier is shown without its source.

Starting a top-up (``POST /me/top-ups``), with or without an offer, is here: the offer is checked
now and written on the intent (``campaigns.services.offers.offer_top_up_intent_create``); WeChat
Pay's callback (``members.apis.payments``) credits what the intent says.
"""

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from campaigns.models import TopUpOffer as Offer
from campaigns.services.offers import member_top_up_offers, offer_top_up_intent_create
from members import wechat, wechatpay
from members.apis.base import MemberApi, MemberListApi, MoneyField, StrictSerializer
from members.apis.errors import ServiceUnavailable
from members.apis.me import MoneyOut
from members.apis.payments import PayParamsSerializer, TopUpIntentSerializer
from members.models import MemberPointsMultiplier


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


class TopUpIntentCreateApi(MemberApi):
    throttle_scope = "member_money"
    extra_error_statuses = (404, 503)

    class InputSerializer(StrictSerializer):
        amount = MoneyField(help_text=_('What the member pays, in yuan, e.g. "200.00".'))
        offer = serializers.IntegerField(
            required=False,
            min_value=1,
            max_value=2**31 - 1,
            help_text=_("The id of one of my offers (GET /me/offers): its bonus is credited with the payment."),
        )

    class OutputSerializer(TopUpIntentSerializer):
        payment = PayParamsSerializer(
            allow_null=True,
            help_text=_("Pass to wx.requestPayment; null when WeChat Pay is not configured or no openid is bound."),
        )

    @extend_schema(
        operation_id="me_top_ups_create",
        request=InputSerializer,
        responses={201: OutputSerializer},
        tags=["me"],
        summary="Start a stored-value top-up",
    )
    def post(self, request):
        data = self.validated(self.InputSerializer, request.data)
        try:
            intent = offer_top_up_intent_create(
                member=self.principal.member, amount=data["amount"], offer_id=data.get("offer")
            )
        except wechat.WeChatUnavailable:
            raise ServiceUnavailable() from None
        payment = wechatpay.jsapi_pay_params(intent.prepay_id) if intent.prepay_id else None
        body = self.OutputSerializer(intent).data
        body["payment"] = payment
        return Response(body, status=status.HTTP_201_CREATED)
