"""Offers for me: the top-up offers a member can use (``GET /me/offers``) and the points
multipliers campaigns and offers gave them (``GET /me/points/multipliers``).

Members see benefits, never the segment behind them: an offer is shown by its id, name,
description and terms — not by its code (operators name codes after segments, e.g. the seed's
``champions-1000-150``) nor by the segments it is for. A multiplier is shown without its source.

Starting a top-up (``POST /me/top-ups``), with or without an offer, is here: the offer is checked
now and written on the intent (``campaigns.services.offers.offer_top_up_intent_create``); WeChat
Pay's callback (``members.apis.payments``) credits what the intent says.

At the till, by the same rules and limits (the POS views of ``members.apis.pos``, subclassed):

- ``POST /pos/members/lookup`` answers the member with ``top_up_offers``: the offers they can use
  now (``member_top_up_offers``), each with its id, code, name, minimum, bonus, uses left and
  restriction — for the cashier, who is staff (so the code is shown). Three queries more, whatever
  the number of offers.
- ``POST /pos/wallet/top-up`` takes an optional ``offer``: the id of one of those offers (as
  ``/me/top-ups`` takes it). With it the top-up is ``offer_top_up`` — the bonus is the offer's, never
  the client's (the body has no bonus field) — and it is refused with a field-level 400: ``offer``
  ``not_eligible`` (unknown, inactive, out of its window, not for this member) or ``limit_reached``
  (used up, the mini-program's unpaid intents holding it included), ``amount`` ``below_minimum`` or
  over a ceiling. The ``Idempotency-Key`` (scoped to the store) is the key of the offer's use: a
  retry with the same key and body answers the same entry and pays once; the same key with another
  body — another amount or offer, or a top-up without the offer — is refused (422).
"""

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from campaigns.models import OfferTopUp
from campaigns.models import TopUpOffer as Offer
from campaigns.services.offers import member_top_up_offers, offer_top_up, offer_top_up_intent_create
from members import wechat, wechatpay
from members.apis import pos
from members.apis.base import MemberApi, MemberListApi, MoneyField, StrictSerializer
from members.apis.errors import IdempotencyKeyReused, ServiceUnavailable
from members.apis.idempotency import IDEMPOTENCY_KEY_PARAMETER
from members.apis.me import MoneyOut
from members.apis.payments import PayParamsSerializer, TopUpIntentSerializer
from members.models import Member, MemberPointsMultiplier, Store, WalletEntry


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
        product_tags = serializers.ListField(
            child=serializers.CharField(),
            source="restriction.tags",
            help_text=_("The bonus pays only for products with one of these tags (or in the categories below)."),
        )
        product_categories = serializers.ListField(
            child=serializers.CharField(),
            source="restriction.categories",
            help_text=_("The bonus pays only for products in one of these categories (or with the tags above)."),
        )
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


# --- at the till ---------------------------------------------------------------------------------------


class PosTopUpOfferSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text=_("Send it as `offer` with the top-up."))
    code = serializers.CharField()
    name = serializers.CharField(source="display_name", help_text=_("In the brand's language."))
    min_amount = MoneyOut(help_text=_("Top up at least this much…"))
    bonus_amount = MoneyOut(help_text=_("…and get this bonus on top."))
    points_multiplier = serializers.DecimalField(
        max_digits=4, decimal_places=2, allow_null=True, help_text=_("Points on orders multiplied by this…")
    )
    multiplier_days = serializers.IntegerField(allow_null=True, help_text=_("…for this many days."))
    uses_left = serializers.IntegerField(
        allow_null=True, help_text=_("How often the member can still use it; null: any.")
    )
    restriction_note = serializers.CharField(
        source="display_restriction", help_text=_("What the bonus can be used for, if limited.")
    )
    product_tags = serializers.ListField(
        child=serializers.CharField(),
        source="restriction.tags",
        help_text=_("The bonus pays only for products with one of these tags (or in the categories below)."),
    )
    product_categories = serializers.ListField(
        child=serializers.CharField(),
        source="restriction.categories",
        help_text=_("The bonus pays only for products in one of these categories (or with the tags above)."),
    )
    valid_until = serializers.DateTimeField(allow_null=True)


class PosMemberWithOffersSerializer(pos.PosMemberSerializer):
    top_up_offers = PosTopUpOfferSerializer(
        many=True, help_text=_("The top-up offers the member can use now, smallest top-up first.")
    )


class PosMemberLookupApi(pos.PosMemberLookupApi):
    """The member lookup of ``members``, answered with the member's top-up offers."""

    member_serializer = PosMemberWithOffersSerializer

    @extend_schema(
        operation_id="pos_members_lookup",
        request=pos.PosMemberLookupApi.InputSerializer,
        responses={200: PosMemberWithOffersSerializer},
        tags=["pos"],
        summary="Find a member by mobile number or QR code (scope: members:read)",
        description=_(
            "Throttled per API key (429 with Retry-After). A QR scan answers the member's full name; "
            "a lookup by mobile number answers it masked. With the top-up offers the member can use now: "
            "send one's id as `offer` with POST /pos/wallet/top-up."
        ),
    )
    def post(self, request):
        return super().post(request)

    def member_body(self, member: Member, *, full_name: bool) -> dict:
        member.top_up_offers = member_top_up_offers(member_id=member.pk)
        return super().member_body(member, full_name=full_name)


class PosWalletTopUpApi(pos.PosWalletTopUpApi):
    """The top-up of ``members``, with an optional ``offer`` (see the module doc)."""

    class InputSerializer(pos.PosWalletTopUpApi.InputSerializer):
        offer = serializers.IntegerField(
            required=False,
            min_value=1,
            max_value=2**31 - 1,
            help_text=_(
                "The id of one of the member's top-up offers (`top_up_offers` of the member lookup): its bonus "
                "is credited with the top-up. Without it, no bonus."
            ),
        )

    @extend_schema(
        operation_id="pos_wallet_top_up",
        request=InputSerializer,
        responses={201: pos.PosWalletTopUpApi.OutputSerializer},
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        tags=["pos"],
        summary="Top up stored value at the till, with a top-up offer or without (scope: wallet)",
        description=_(
            "With `offer`, the offer's bonus is added (refused on `offer` when the member cannot use it, "
            "`not_eligible`, or has used it up, `limit_reached`; on `amount` below its minimum, "
            "`below_minimum`). A retry with the same Idempotency-Key and body returns the same entry."
        ),
    )
    def post(self, request):
        return super().post(request)

    def top_up(self, *, member: Member, store: Store, data: dict, idempotency_key: str) -> WalletEntry:
        offer_id = data.get("offer")
        if offer_id is None:
            if OfferTopUp.objects.filter(idempotency_key=idempotency_key).exists():
                raise IdempotencyKeyReused()  # the key of a top-up with an offer
            return super().top_up(member=member, store=store, data=data, idempotency_key=idempotency_key)
        if WalletEntry.objects.filter(idempotency_key=idempotency_key).exists():
            raise IdempotencyKeyReused()  # the key of a top-up without an offer
        offer = Offer.objects.filter(pk=offer_id).first()
        if offer is None:
            raise ValidationError(
                {"offer": ValidationError(_("This offer is not available to this member."), code="not_eligible")}
            )
        return offer_top_up(
            member=member,
            offer=offer,
            amount_paid=data["amount"],
            idempotency_key=idempotency_key,
            reason=pos.ledger_text(
                _("Top-up at store %(store)s with offer %(offer)s"), store=store.code, offer=offer.code
            ),
            reference=data.get("reference", ""),
            store=store,
        )
