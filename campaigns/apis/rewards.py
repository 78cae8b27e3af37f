"""The points catalogue (积分兑换): rewards members buy with their points, in the mini-program and at the till.

- ``GET /me/rewards``: the active rewards open to me, cheapest for me first, each with *my* price
  (the lowest that applies to me), the stock left, how many I have redeemed, and whether I can
  redeem it now — with the reason (``code`` and ``message``) when I cannot. Rewards exclusive to
  other members are not listed, and nothing says why a price is lower.
- ``POST /me/rewards/{reward_id}/redeem``: redeem one with my points. Needs an ``Idempotency-Key``
  (scoped to me): a retry with the same key answers the same redemption (200, ``Idempotent-Replayed``);
  the same key for another reward is refused (422). Refusals are field-level 400s (``reward``:
  ``not_eligible``, ``out_of_stock``, ``limit_reached``…; ``points``: ``insufficient_points``),
  with nothing written.
- ``GET /me/reward-redemptions``: my redemptions, newest first; product rewards show whether they
  were collected.
- ``GET /pos/rewards?qr_code=…``: the catalogue of the member whose QR code the till scanned (the
  member at the till; no mobile number in a URL); ``POST /pos/rewards/redeem`` with ``qr_code`` and
  ``reward`` (``Idempotency-Key`` scoped to the store; a retry is answered even after the QR code
  expired); ``POST /pos/rewards/collect`` with ``qr_code`` and ``redemption``: the product is handed
  over — only a redemption of the scanned member (another answers 404). Scope: ``points``.
"""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.response import Response

from campaigns.models import Reward, RewardRedemption
from campaigns.services.rewards import (
    member_reward_redemptions,
    points_balance,
    reward_redeem,
    reward_redemption_collect,
    reward_refusal,
    rewards_for_member,
)
from members.apis.base import MemberApi, MemberListApi, PosApi, StrictSerializer
from members.apis.idempotency import IDEMPOTENCY_KEY_PARAMETER, REPLAYED_HEADER, idempotency_key
from members.apis.me import StoreBriefSerializer
from members.apis.pos import member_from, replay_or_refuse, store_scoped_key
from members.models import ApiScope, Member


def _choice_field(choices, component: str):
    """A choice field with its own schema component (the ledgers' ``kind``/``status`` enums take the names)."""

    @extend_schema_field({"type": "string", "enum": [value for value, _label in choices]}, component_name=component)
    class Field(serializers.ChoiceField):
        def __init__(self, **kwargs):
            super().__init__(choices=choices, **kwargs)

    return Field


RewardKindField = _choice_field(Reward.Kind.choices, "RewardKindEnum")
RedemptionStatusField = _choice_field(RewardRedemption.Status.choices, "RewardRedemptionStatusEnum")
RedemptionChannelField = _choice_field(RewardRedemption.Channel.choices, "RewardRedemptionChannelEnum")

# --- serializers -----------------------------------------------------------------------------------------


class RefusalSerializer(serializers.Serializer):
    code = serializers.CharField(
        help_text=_(
            "inactive, not_started, ended, out_of_stock, limit_reached or insufficient_points; stable, for programs"
        )
    )
    message = serializers.CharField(help_text=_("For people, in their language."))


class RewardSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text=_("Send it to redeem the reward."))
    kind = RewardKindField()
    name = serializers.CharField(source="display_name")
    description = serializers.CharField(source="display_description")
    coupon_name = serializers.SerializerMethodField(help_text=_("Coupon rewards: the coupon I get."))
    product_sku = serializers.SerializerMethodField(help_text=_("Product rewards: the product I collect."))
    points_price = serializers.IntegerField(help_text=_("The usual price, in points."))
    my_price = serializers.IntegerField(source="member_price", help_text=_("What it costs me, in points."))
    stock_left = serializers.IntegerField(allow_null=True, help_text=_("How many are left; null: no limit."))
    limit_per_member = serializers.IntegerField(allow_null=True, help_text=_("How many one member may redeem."))
    redeemed_by_me = serializers.IntegerField(source="member_redeemed")
    starts_at = serializers.DateTimeField(allow_null=True)
    ends_at = serializers.DateTimeField(allow_null=True)
    can_redeem = serializers.SerializerMethodField()
    refusal = serializers.SerializerMethodField(help_text=_("Why it cannot be redeemed now; null when it can."))

    def get_coupon_name(self, reward) -> str | None:
        return reward.coupon_template.display_name if reward.coupon_template_id else None

    def get_product_sku(self, reward) -> str | None:
        return reward.product.sku if reward.product_id else None

    def _refusal(self, reward):
        if not hasattr(reward, "_refusal"):
            reward._refusal = reward_refusal(reward, balance=reward.member_balance)
        return reward._refusal

    def get_can_redeem(self, reward) -> bool:
        return self._refusal(reward) is None

    @extend_schema_field(RefusalSerializer(allow_null=True))
    def get_refusal(self, reward) -> dict | None:
        refusal = self._refusal(reward)
        if refusal is None:
            return None
        error = next(iter(refusal.error_dict.values()))[0]
        return {"code": error.code, "message": str(error.message)}


class RewardBriefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = RewardKindField()
    name = serializers.CharField(source="display_name")


class RedemptionCouponSerializer(serializers.Serializer):
    code = serializers.CharField(help_text=_("Show it at the till (or let the POS scan it)."))
    valid_until = serializers.DateTimeField()


class RedemptionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    reward = RewardBriefSerializer()
    points = serializers.IntegerField(help_text=_("The points paid."))
    status = RedemptionStatusField(
        help_text=_(
            "issued: the coupon is in my coupons; pending: to collect at a counter; collected; reversed: "
            "undone by staff, points given back."
        ),
    )
    coupon = RedemptionCouponSerializer(allow_null=True, help_text=_("Coupon rewards: the coupon issued."))
    channel = RedemptionChannelField()
    store = StoreBriefSerializer(allow_null=True, help_text=_("The store it was redeemed at, if at a till."))
    collected_at = serializers.DateTimeField(allow_null=True)
    collected_store = StoreBriefSerializer(allow_null=True)
    created_at = serializers.DateTimeField()


def _redemption_response(redemption: RewardRedemption) -> Response:
    """201 for a new redemption; 200 with ``Idempotent-Replayed`` for a retry of one."""
    body = RedemptionSerializer(redemption).data
    if getattr(redemption, "replayed", False):
        return Response(body, status=status.HTTP_200_OK, headers={REPLAYED_HEADER: "true"})
    return Response(body, status=status.HTTP_201_CREATED)


def _reward_or_404(reward_id) -> Reward:
    reward = Reward.objects.filter(pk=reward_id).first()
    if reward is None:
        raise NotFound()
    return reward


# --- the mini-program ------------------------------------------------------------------------------------


class MemberRewardListApi(MemberListApi):
    OutputSerializer = RewardSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Reward.objects.none()
        member = self.principal.member
        return rewards_for_member(member=member)

    @extend_schema(
        operation_id="me_rewards_list",
        responses={200: RewardSerializer(many=True)},
        tags=["me"],
        summary="The points catalogue, with my prices",
        description=_(
            "Rewards I can buy with points, cheapest for me first: my price, the stock left, and whether "
            "I can redeem each now (and why not)."
        ),
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class MemberRewardRedeemApi(MemberApi):
    throttle_scope = "member_money"
    extra_error_statuses = (404, 422)

    class InputSerializer(StrictSerializer):
        pass

    @extend_schema(
        operation_id="me_rewards_redeem",
        request=None,
        responses={201: RedemptionSerializer, 200: RedemptionSerializer},
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        tags=["me"],
        summary="Redeem a reward with my points",
        description=_(
            "201 when redeemed now; 200 when this Idempotency-Key redeemed it before. Refused (400, nothing "
            "taken) on `reward` (not available to me, out of stock, limit reached…) or `points` (insufficient)."
        ),
    )
    def post(self, request, reward_id: int):
        key = idempotency_key(request)
        self.validated(self.InputSerializer, request.data or {})
        member = self.principal.member
        reward = _reward_or_404(reward_id)
        redemption = replay_or_refuse(
            lambda: reward_redeem(
                member=member,
                reward=reward,
                idempotency_key=f"me:{member.pk}:{key}",
                channel=RewardRedemption.Channel.MINI_PROGRAM,
            )
        )
        return _redemption_response(redemption)


class MemberRewardRedemptionListApi(MemberListApi):
    OutputSerializer = RedemptionSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return RewardRedemption.objects.none()
        return member_reward_redemptions(member_id=self.principal.member_id)

    @extend_schema(
        operation_id="me_reward_redemptions_list",
        responses={200: RedemptionSerializer(many=True)},
        tags=["me"],
        summary="My reward redemptions",
        description=_("Newest first; product rewards say whether they were collected."),
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


# --- at the till -----------------------------------------------------------------------------------------

QR_CODE_PARAMETER = OpenApiParameter(
    "qr_code",
    type=str,
    location=OpenApiParameter.QUERY,
    required=True,
    description=str(_("Scanned from the member's QR code.")),
)


class PosRewardListApi(PosApi):
    required_scope = ApiScope.POINTS
    throttle_scope = "pos_lookup"
    extra_error_statuses = (400,)  # the QR code

    class InputSerializer(StrictSerializer):
        qr_code = serializers.CharField(max_length=128)

    class OutputSerializer(serializers.Serializer):
        member_id = serializers.IntegerField()
        points_balance = serializers.IntegerField()
        rewards = RewardSerializer(many=True, help_text=_("The member's catalogue, cheapest for them first."))

    @extend_schema(
        operation_id="pos_rewards_list",
        parameters=[QR_CODE_PARAMETER],
        responses={200: OutputSerializer},
        tags=["pos"],
        summary="The points catalogue of the member at the till (scope: points)",
        description=_("Their price for each reward, the stock left, and whether they can redeem it now."),
    )
    def get(self, request):
        data = self.validated(self.InputSerializer, request.query_params.dict())
        member = member_from(data, qr_only=True)
        rewards = list(rewards_for_member(member=member)[:200])
        balance = rewards[0].member_balance if rewards else points_balance(member.pk)
        body = {
            "member_id": member.pk,
            "points_balance": balance,
            "rewards": RewardSerializer(rewards, many=True).data,
        }
        return Response(body)


def _member_of_earlier_redemption(key: str) -> Member | None:
    redemption = RewardRedemption.objects.select_related("member").filter(idempotency_key=key).first()
    return redemption.member if redemption is not None else None


class PosRewardRedeemApi(PosApi):
    required_scope = ApiScope.POINTS
    throttle_scope = "pos_money"
    extra_error_statuses = (404, 422)

    class InputSerializer(StrictSerializer):
        qr_code = serializers.CharField(max_length=128)
        reward = serializers.IntegerField(min_value=1, max_value=2**31 - 1, help_text=_("The reward's id."))

    @extend_schema(
        operation_id="pos_rewards_redeem",
        request=InputSerializer,
        responses={201: RedemptionSerializer, 200: RedemptionSerializer},
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        tags=["pos"],
        summary="Redeem a reward with the member's points (scope: points)",
        description=_(
            "201 when redeemed now; 200 when this Idempotency-Key redeemed it before (even once the QR code "
            "has expired). A product reward is then pending until collected (POST /pos/rewards/collect)."
        ),
    )
    def post(self, request):
        key = idempotency_key(request)
        data = self.validated(self.InputSerializer, request.data)
        store = self.principal.store
        scoped = store_scoped_key(store.pk, key)
        member = _member_of_earlier_redemption(scoped) or member_from(data, qr_only=True)
        reward = Reward.objects.filter(pk=data["reward"]).first()
        if reward is None:
            raise ApiValidationError({"reward": [serializers.ErrorDetail(_("No such reward."), code="not_found")]})
        redemption = replay_or_refuse(
            lambda: reward_redeem(
                member=member,
                reward=reward,
                idempotency_key=scoped,
                channel=RewardRedemption.Channel.POS,
                store=store,
            )
        )
        return _redemption_response(redemption)


class PosRewardCollectApi(PosApi):
    required_scope = ApiScope.POINTS
    throttle_scope = "pos_money"
    extra_error_statuses = (404,)

    class InputSerializer(StrictSerializer):
        qr_code = serializers.CharField(max_length=128)
        redemption = serializers.IntegerField(
            min_value=1, max_value=2**31 - 1, help_text=_("The id of the member's pending product redemption.")
        )

    @extend_schema(
        operation_id="pos_rewards_collect",
        request=InputSerializer,
        responses={200: RedemptionSerializer},
        tags=["pos"],
        summary="Hand over a product reward: mark it collected (scope: points)",
        description=_(
            "Only a redemption of the member whose QR code was scanned (another answers 404). Collecting it "
            "again at the same store answers it unchanged; collected elsewhere: 400 already_collected."
        ),
    )
    def post(self, request):
        data = self.validated(self.InputSerializer, request.data)
        member = member_from(data, qr_only=True)
        redemption = RewardRedemption.objects.filter(pk=data["redemption"], member_id=member.pk).first()
        if redemption is None:
            raise NotFound()
        redemption = reward_redemption_collect(redemption=redemption, store=self.principal.store)
        return Response(RedemptionSerializer(redemption).data)
