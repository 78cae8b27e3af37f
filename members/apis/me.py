"""``/api/v1/me/…``: the member's own profile, orders, points, wallet, referrals and QR code.

Every query is scoped to the member of the access token; another member's order answers 404,
like one that does not exist. Members see their tier and its benefits, never the segment that
staff see (no segment or RFM field is exposed here).
"""

import json
from datetime import timedelta

import django_filters
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from members import wechat
from members.apis import selectors
from members.apis.auth import _wechat_call
from members.apis.base import IsoDateTimeFilter, MemberApi, MemberListApi, StrictSerializer
from members.mobile import mask_mobile
from members.models import Member, Order, PointsEntry, Referral, RestrictedBonus, WalletEntry
from members.selectors import member_restricted_bonuses
from members.services.accounts import member_change_mobile
from members.services.privacy import member_data_export, member_erase
from members.services.qr_codes import member_qr_code

# --- shared output shapes ---


class TierBenefitsSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    rank = serializers.IntegerField()
    points_multiplier = serializers.DecimalField(max_digits=4, decimal_places=2)
    birthday_points_multiplier = serializers.DecimalField(max_digits=4, decimal_places=2)
    discount_rate = serializers.DecimalField(
        max_digits=3, decimal_places=2, help_text=_("Price factor: 0.95 means 5% off.")
    )
    free_shipping = serializers.BooleanField()
    priority_service = serializers.BooleanField()


class MoneyOut(serializers.DecimalField):
    def __init__(self, **kwargs):
        super().__init__(max_digits=14, decimal_places=2, **kwargs)


class StoreBriefSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()


class RefundOutSerializer(serializers.Serializer):
    external_id = serializers.CharField()
    amount = MoneyOut()
    refunded_at = serializers.DateTimeField()


class MemberOrderSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    store = StoreBriefSerializer()
    paid_at = serializers.DateTimeField()
    amount = MoneyOut()
    refunded_amount = MoneyOut()
    status = serializers.ChoiceField(choices=Order.Status.choices)
    refunds = RefundOutSerializer(many=True, source="refunds.all")


# --- profile ---


class TierRequirementSerializer(serializers.Serializer):
    window_days = serializers.IntegerField()
    min_spend = MoneyOut(allow_null=True)
    spend = MoneyOut(help_text=_("Net spend in the window."))
    spend_remaining = MoneyOut(allow_null=True)
    min_orders = serializers.IntegerField(allow_null=True)
    orders = serializers.IntegerField()
    orders_remaining = serializers.IntegerField(allow_null=True)
    needs_score = serializers.BooleanField(help_text=_("Also needs a loyalty score that is not shown."))


class NextTierSerializer(serializers.Serializer):
    tier = TierBenefitsSerializer()
    requirements = TierRequirementSerializer(many=True, help_text=_("Any one of them reaches the tier."))


class PointsSummarySerializer(serializers.Serializer):
    balance = serializers.IntegerField()
    expiring_soon = serializers.IntegerField(help_text=_("Points that expire in the next 30 days."))
    next_expiry = serializers.DateTimeField(allow_null=True)
    expiring_before = serializers.DateTimeField()


class WalletSummarySerializer(serializers.Serializer):
    principal = MoneyOut()
    bonus = MoneyOut()
    total = MoneyOut()


class MemberProfileApi(MemberApi):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        name = serializers.CharField()
        mobile = serializers.CharField()
        gender = serializers.ChoiceField(choices=Member.Gender.choices)
        birthday = serializers.DateField(allow_null=True)
        registered_at = serializers.DateTimeField()
        referral_code = serializers.CharField()
        tier = TierBenefitsSerializer(allow_null=True)
        next_tier = NextTierSerializer(allow_null=True)
        points = PointsSummarySerializer()
        wallet = WalletSummarySerializer()

    @extend_schema(operation_id="me_profile", responses={200: OutputSerializer}, tags=["me"], summary="My profile")
    def get(self, request):
        profile = selectors.member_profile(member_id=self.principal.member_id)
        member = profile.member
        body = {
            "id": member.pk,
            "name": member.name,
            "mobile": member.mobile,
            "gender": member.gender,
            "birthday": member.birthday,
            "registered_at": member.registered_at,
            "referral_code": member.referral_code,
            "tier": profile.tier,
            "next_tier": profile.next_tier,
            "points": {
                "balance": profile.points_balance,
                "expiring_soon": profile.points_expiring_soon,
                "next_expiry": profile.points_next_expiry,
                "expiring_before": profile.points_expiring_before,
            },
            "wallet": {
                "principal": profile.wallet_principal,
                "bonus": profile.wallet_bonus,
                "total": profile.wallet_total,
            },
        }
        return Response(_PROFILE_OUT.to_representation(body))


# One instance, fields bound once: the profile is the mini-program's home page, asked for all the
# time, and building its nested serializers cost more than its query. ``to_representation`` keeps no state.
_PROFILE_OUT = MemberProfileApi.OutputSerializer()


class MemberQrCodeApi(MemberApi):
    class OutputSerializer(serializers.Serializer):
        qr_code = serializers.CharField(help_text=_("Show it as a QR code; the POS scans it."))
        expires_at = serializers.DateTimeField()

    @extend_schema(
        operation_id="me_qr_code", responses={200: OutputSerializer}, tags=["me"], summary="My member QR code"
    )
    def get(self, request):
        body = {
            "qr_code": member_qr_code(self.principal.member_id),
            "expires_at": timezone.now() + timedelta(seconds=settings.HUIYUAN_MEMBER_QR_MAX_AGE),
        }
        return Response(self.OutputSerializer(body).data)


class RestrictedBonusOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    remaining = MoneyOut()
    tags = serializers.ListField(
        child=serializers.CharField(), help_text=_("Usable on products with one of these tags.")
    )
    categories = serializers.ListField(
        child=serializers.CharField(), help_text=_("Usable on products in one of these categories.")
    )
    granted_at = serializers.DateTimeField(source="created_at")


class MemberRestrictedBonusListApi(MemberListApi):
    """Bonus in my wallet that pays only for some products (e.g. 唤醒商品): what is left of each."""

    class OutputSerializer(RestrictedBonusOutSerializer):
        pass

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return RestrictedBonus.objects.none()
        return member_restricted_bonuses(member_id=self.principal.member_id)

    @extend_schema(
        operation_id="me_wallet_restricted_bonuses_list",
        responses={200: OutputSerializer(many=True)},
        tags=["me"],
        summary="Bonus in my wallet limited to some products",
        description=_("Oldest first; only those with something left."),
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class MemberMobileBindApi(MemberApi):
    """Bind the phone number WeChat vouches for (``phone_code``); ``mobile`` only with the dev login on."""

    extra_error_statuses = (404, 409, 503)

    class InputSerializer(StrictSerializer):
        phone_code = serializers.CharField(max_length=128, required=False, help_text=_("From getPhoneNumber."))
        mobile = serializers.CharField(
            max_length=32, required=False, help_text=_("Only when the development login is on.")
        )

    class OutputSerializer(serializers.Serializer):
        mobile = serializers.CharField()

    @extend_schema(
        operation_id="me_mobile_bind",
        request=InputSerializer,
        responses={200: OutputSerializer},
        tags=["me"],
        summary="Bind a verified mobile number",
    )
    def post(self, request):
        data = self.validated(self.InputSerializer, request.data)
        if "mobile" in data and not settings.HUIYUAN_DEV_LOGIN:
            raise ValidationError({"mobile": [_("Send phone_code: a typed number cannot be verified.")]})
        if ("phone_code" in data) == ("mobile" in data):
            raise ValidationError({"non_field_errors": [_("Send phone_code (or, in development, mobile).")]})
        mobile = data.get("mobile") or _wechat_call(
            lambda: wechat.get_client().phone_number(data["phone_code"]), "phone_code"
        )
        member = member_change_mobile(member=self.principal.member, mobile=mobile)
        return Response(self.OutputSerializer({"mobile": member.mobile}).data)


# --- lists ---


class OrderFilter(django_filters.FilterSet):
    paid_after = IsoDateTimeFilter(field_name="paid_at", lookup_expr="gte")
    paid_before = IsoDateTimeFilter(field_name="paid_at", lookup_expr="lt")
    status = django_filters.ChoiceFilter(choices=Order.Status.choices)
    ordering = django_filters.OrderingFilter(fields=(("paid_at", "paid_at"), ("amount", "amount")))

    class Meta:
        model = Order
        fields = ["paid_after", "paid_before", "status"]


class MemberOrderListApi(MemberListApi):
    OutputSerializer = MemberOrderSerializer
    filterset_class = OrderFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Order.objects.none()
        return selectors.member_orders(member_id=self.principal.member_id)

    @extend_schema(
        operation_id="me_orders_list",
        responses={200: MemberOrderSerializer(many=True)},
        tags=["me"],
        summary="My orders",
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class MemberOrderDetailApi(MemberApi):
    @extend_schema(
        operation_id="me_orders_retrieve",
        responses={200: MemberOrderSerializer},
        tags=["me"],
        summary="One of my orders",
    )
    def get(self, request, order_id: int):
        order = get_object_or_404(selectors.member_orders(member_id=self.principal.member_id), pk=order_id)
        return Response(MemberOrderSerializer(order).data)


class PointsEntryFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=PointsEntry.Kind.choices)
    created_after = IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    ordering = django_filters.OrderingFilter(fields=(("created_at", "created_at"), ("points", "points")))

    class Meta:
        model = PointsEntry
        fields = ["kind", "created_after", "created_before"]


class MemberPointsEntryListApi(MemberListApi):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        kind = serializers.ChoiceField(choices=PointsEntry.Kind.choices)
        points = serializers.IntegerField(help_text=_("Positive adds points, negative takes them."))
        balance_after = serializers.IntegerField()
        reason = serializers.CharField()
        created_at = serializers.DateTimeField()

    filterset_class = PointsEntryFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return PointsEntry.objects.none()
        return selectors.member_points_entries(member_id=self.principal.member_id)

    @extend_schema(
        operation_id="me_points_entries_list",
        responses={200: OutputSerializer(many=True)},
        tags=["me"],
        summary="My points history",
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class WalletEntryFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=WalletEntry.Kind.choices)
    created_after = IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    ordering = django_filters.OrderingFilter(fields=(("created_at", "created_at"), ("amount", "amount")))

    class Meta:
        model = WalletEntry
        fields = ["kind", "created_after", "created_before"]


class MemberWalletEntryListApi(MemberListApi):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        kind = serializers.ChoiceField(choices=WalletEntry.Kind.choices)
        amount = MoneyOut(help_text=_("Signed: principal change plus bonus change."))
        principal_delta = MoneyOut()
        bonus_delta = MoneyOut()
        principal_after = MoneyOut()
        bonus_after = MoneyOut()
        reason = serializers.CharField()
        created_at = serializers.DateTimeField()

    filterset_class = WalletEntryFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return WalletEntry.objects.none()
        return selectors.member_wallet_entries(member_id=self.principal.member_id)

    @extend_schema(
        operation_id="me_wallet_entries_list",
        responses={200: OutputSerializer(many=True)},
        tags=["me"],
        summary="My stored-value history",
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class ReferralFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Referral.Status.choices)
    ordering = django_filters.OrderingFilter(fields=(("created_at", "created_at"),))

    class Meta:
        model = Referral
        fields = ["status"]


class MemberReferralListApi(MemberListApi):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        referee_name = serializers.SerializerMethodField()
        referee_mobile = serializers.SerializerMethodField(help_text=_("Masked: 138****8000."))
        status = serializers.ChoiceField(choices=Referral.Status.choices)
        created_at = serializers.DateTimeField()
        completed_at = serializers.DateTimeField(allow_null=True)
        reward_points = serializers.SerializerMethodField(help_text=_("Points I earned for it (0 if none)."))

        def get_referee_name(self, referral) -> str:
            name = referral.referee.name
            return f"{name[:1]}*" if name else ""

        def get_referee_mobile(self, referral) -> str:
            return mask_mobile(referral.referee.mobile)

        def get_reward_points(self, referral) -> int:
            entry = referral.referrer_entry
            return entry.points if entry is not None else 0

    filterset_class = ReferralFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Referral.objects.none()
        return selectors.member_referrals(member_id=self.principal.member_id)

    @extend_schema(
        operation_id="me_referrals_list",
        responses={200: OutputSerializer(many=True)},
        tags=["me"],
        summary="Members I referred, and my rewards",
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


# --- personal data (PIPL) ---


class MemberDataExportApi(MemberApi):
    """Everything held about me, as a JSON file (``members.services.privacy.member_data_export``)."""

    throttle_scope = "member_money"

    @extend_schema(
        operation_id="me_data_export",
        responses={200: OpenApiTypes.OBJECT},
        tags=["me"],
        summary="Download my personal data (JSON)",
        description=_(
            "Profile, orders, refunds, points and wallet ledgers, top-ups, referrals, coupons and every other "
            "record kept about me. Amounts are decimal strings."
        ),
    )
    def get(self, request):
        document = member_data_export(member_id=self.principal.member_id)
        response = HttpResponse(
            json.dumps(document, cls=DjangoJSONEncoder, ensure_ascii=False, indent=2),
            content_type="application/json; charset=utf-8",
        )
        response["Content-Disposition"] = f'attachment; filename="member-{self.principal.member_id}-data.json"'
        return response


class MemberErasureApi(MemberApi):
    """Erase my personal data and close my account, for good (``member_erase``)."""

    throttle_scope = "member_money"

    class InputSerializer(StrictSerializer):
        confirm = serializers.BooleanField(help_text=_("true: I understand this cannot be undone."))

    @extend_schema(
        operation_id="me_erasure",
        request=InputSerializer,
        responses={204: None},
        tags=["me"],
        summary="Erase my personal data and close my account",
        description=_(
            "Irreversible: my name, mobile number, birthday and WeChat link are erased, and every token stops "
            "working. Orders and points and wallet history stay, anonymised. Refused while my wallet holds money "
            "I paid in (ask the store to refund it first)."
        ),
    )
    def post(self, request):
        data = self.validated(self.InputSerializer, request.data)
        if not data["confirm"]:
            raise ValidationError(
                {"confirm": [serializers.ErrorDetail(_("Confirm with true: erasure cannot be undone."), "required")]}
            )
        member_erase(member=self.principal.member)
        return Response(status=204)
