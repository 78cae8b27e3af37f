"""The member's stamp cards (``GET /me/stamp-cards``): each card they can collect on, with their
progress (k of N, when the oldest stamp stops counting) and the rewards they completed.

A member sees only their own stamps and rewards; the segments a card is limited to are not shown."""

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from campaigns.apis.coupons import MemberCouponStatus
from campaigns.models import Coupon, StampCompletion
from campaigns.selectors.stamps import member_stamp_cards
from members.apis.base import MemberApi
from members.apis.me import MoneyOut


def _coupon_status(coupon: Coupon | None) -> str | None:
    if coupon is None:
        return None
    if coupon.status == Coupon.Status.REDEEMED:
        return MemberCouponStatus.USED
    if coupon.status == Coupon.Status.ISSUED:
        return MemberCouponStatus.AVAILABLE if coupon.valid_until > timezone.now() else MemberCouponStatus.EXPIRED
    return coupon.status


class StampCompletionOutSerializer(serializers.Serializer):
    completed_at = serializers.DateTimeField()
    status = serializers.ChoiceField(choices=StampCompletion.Status.choices)
    coupon_code = serializers.CharField(source="coupon.code", allow_null=True, default=None)
    coupon_status = serializers.SerializerMethodField(
        help_text=_("available, used, expired or revoked; null without a coupon.")
    )
    points = serializers.SerializerMethodField(help_text=_("Points given; 0 for none."))

    def get_coupon_status(self, completion) -> str | None:
        return _coupon_status(completion.coupon)

    def get_points(self, completion) -> int:
        return completion.points_entry.points if completion.points_entry is not None else 0


class MemberStampCardListApi(MemberApi):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField(source="card.id")
        name = serializers.CharField(source="card.display_name")
        description = serializers.CharField(source="card.display_description")
        stamps = serializers.IntegerField(help_text=_("Stamps collected that still count."))
        required = serializers.IntegerField(help_text=_("Stamps that earn the reward."))
        oldest_expires_at = serializers.DateTimeField(
            allow_null=True, help_text=_("When the oldest stamp stops counting; null without stamps.")
        )
        window_days = serializers.IntegerField(source="card.window_days")
        category = serializers.CharField(
            source="card.category", help_text=_("Only orders with a product of this category count; empty: any.")
        )
        min_order_amount = MoneyOut(source="card.min_order_amount", allow_null=True)
        reward_coupon = serializers.CharField(source="card.coupon_template.display_name", allow_null=True, default=None)
        reward_points = serializers.IntegerField(source="card.bonus_points")
        ends_at = serializers.DateTimeField(source="card.ends_at", allow_null=True)
        completions = StampCompletionOutSerializer(many=True, help_text=_("Rewards completed, newest first."))

    @extend_schema(
        operation_id="me_stamp_cards",
        responses={200: OutputSerializer(many=True)},
        tags=["me"],
        summary="My stamp cards",
        description=_("Cards I can collect stamps on, my progress on each and the rewards I completed."),
    )
    def get(self, request):
        cards = member_stamp_cards(member_id=self.principal.member_id)
        return Response(self.OutputSerializer(cards, many=True).data)
