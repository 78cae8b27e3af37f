"""Coupons: the member's own (``GET /me/coupons``) and redeeming one at the till (``POST /pos/coupons/redeem``).

These views belong to ``campaigns`` (its selector and services) and build on ``members.apis``
(authentication, POS helpers); ``members`` never imports them.

- A member sees only their coupons, each with what it is worth, where and from what spend it can be
  used, its validity and a status as the member understands it (``available``, ``upcoming``,
  ``used``, ``expired``, ``revoked``) — computed in SQL, so the ``status`` filter and the page agree.
  Nothing about the campaign or segment that granted a coupon is shown.
- A store redeems a coupon of the member named by QR code or mobile number, against an order
  amount, at its own store: a coupon valid only at other stores is refused. The ``Idempotency-Key``
  (scoped to the store) is the redemption's key in ``coupon_redeem``: a retry with the same key and
  body gets the same redemption, the same key for another redemption is refused (422), and a second
  redemption of a used coupon is refused (400, ``already_redeemed``). Two tills redeeming the same
  coupon at once: the service lets exactly one win.
"""

from datetime import datetime

import django_filters
from django.db.models import Case, CharField, Q, QuerySet, Value, When
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response

from campaigns.models import Coupon, CouponTemplate
from campaigns.selectors import coupons_for_member
from campaigns.services.coupons import coupon_redeem
from members.apis.base import MemberListApi, MoneyField, PosApi
from members.apis.idempotency import IDEMPOTENCY_KEY_PARAMETER, idempotency_key
from members.apis.me import MoneyOut, StoreBriefSerializer
from members.apis.pos import (
    MemberRefSerializer,
    PaidLineInputSerializer,
    member_from,
    replay_or_refuse,
    store_scoped_key,
)
from members.models import ApiScope, Member
from members.services.products import PaidLine


@extend_schema_field({"type": "string", "enum": CouponTemplate.Kind.values}, component_name="CouponKindEnum")
class CouponKindField(serializers.ChoiceField):
    """The coupon template's kind (its own schema component: the ledgers' ``kind`` enums take the name)."""

    def __init__(self, **kwargs):
        super().__init__(choices=CouponTemplate.Kind.choices, source="template.kind", **kwargs)


class MemberCouponStatus:
    """A coupon's status as the member sees it (``Coupon.Status`` plus its validity window)."""

    AVAILABLE = "available"
    UPCOMING = "upcoming"
    USED = "used"
    EXPIRED = "expired"
    REVOKED = "revoked"

    choices = [
        (AVAILABLE, _("Available: can be used now")),
        (UPCOMING, _("Not valid yet")),
        (USED, _("Used")),
        (EXPIRED, _("Expired")),
        (REVOKED, _("Revoked")),
    ]


@extend_schema_field(
    {"type": "string", "enum": [value for value, _label in MemberCouponStatus.choices]},
    component_name="MemberCouponStatusEnum",
)
class MemberCouponStatusField(serializers.ChoiceField):
    def __init__(self, **kwargs):
        super().__init__(choices=MemberCouponStatus.choices, source="member_status", **kwargs)


def member_coupons(*, member_id: int, now: datetime | None = None) -> QuerySet[Coupon]:
    """The member's coupons, newest first, with ``member_status`` annotated and templates and stores fetched."""
    now = now or timezone.now()
    issued = Q(status=Coupon.Status.ISSUED)
    member_status = Case(
        When(issued & Q(valid_until__lte=now), then=Value(MemberCouponStatus.EXPIRED)),
        When(issued & Q(valid_from__gt=now), then=Value(MemberCouponStatus.UPCOMING)),
        When(issued, then=Value(MemberCouponStatus.AVAILABLE)),
        When(status=Coupon.Status.REDEEMED, then=Value(MemberCouponStatus.USED)),
        When(status=Coupon.Status.EXPIRED, then=Value(MemberCouponStatus.EXPIRED)),
        default=Value(MemberCouponStatus.REVOKED),
        output_field=CharField(),
    )
    # Only the primary key is read: an unsaved stand-in saves loading the member row.
    return (
        coupons_for_member(member=Member(pk=member_id))
        .annotate(member_status=member_status)
        .order_by("-granted_at", "-id")
    )


class CouponFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(field_name="member_status", choices=MemberCouponStatus.choices)
    ordering = django_filters.OrderingFilter(fields=(("valid_until", "valid_until"), ("granted_at", "granted_at")))

    class Meta:
        model = Coupon
        fields = ["status"]


class MemberCouponListApi(MemberListApi):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        code = serializers.CharField(help_text=_("Show it at the till (or let the POS scan it)."))
        name = serializers.CharField(source="template.name")
        description = serializers.CharField(source="template.description")
        kind = CouponKindField()
        amount = MoneyOut(source="template.amount", allow_null=True, help_text=_("Fixed amount coupons: yuan off."))
        percent_off = serializers.IntegerField(
            source="template.percent_off", allow_null=True, help_text=_("Percentage coupons: 10 means 10% off.")
        )
        max_discount = MoneyOut(
            source="template.max_discount", allow_null=True, help_text=_("Percentage coupons: the most they take off.")
        )
        gift_description = serializers.CharField(source="template.gift_description")
        min_spend = MoneyOut(source="template.min_spend", help_text=_("The order must be at least this amount."))
        stores = StoreBriefSerializer(
            many=True, source="template.stores.all", help_text=_("Where it can be used; empty for every store.")
        )
        product_tags = serializers.ListField(
            child=serializers.CharField(),
            source="template.restriction.tags",
            help_text=_("Only for products with one of these tags (or in the categories below); empty: any product."),
        )
        product_categories = serializers.ListField(
            child=serializers.CharField(),
            source="template.restriction.categories",
            help_text=_("Only for products in one of these categories (or with the tags above)."),
        )
        valid_from = serializers.DateTimeField()
        valid_until = serializers.DateTimeField()
        status = MemberCouponStatusField()
        redeemed_at = serializers.DateTimeField(allow_null=True)
        discount = MoneyOut(allow_null=True, help_text=_("What it took off, once used."))

    filterset_class = CouponFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Coupon.objects.none()
        return member_coupons(member_id=self.principal.member_id)

    @extend_schema(
        operation_id="me_coupons_list",
        responses={200: OutputSerializer(many=True)},
        tags=["me"],
        summary="My coupons",
        description=_("Filter with status=available (usable now), used or expired; newest first."),
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class PosCouponRedeemApi(PosApi):
    """Coupons are redeemed with the order they discount, so the ``orders`` scope covers them."""

    required_scope = ApiScope.ORDERS
    throttle_scope = "pos_money"
    extra_error_statuses = (422,)

    class InputSerializer(MemberRefSerializer):
        coupon = serializers.CharField(max_length=20, help_text=_("The coupon's code, as the member shows it."))
        amount = MoneyField(help_text=_('The order amount before the coupon, in yuan, e.g. "120.00".'))
        lines = PaidLineInputSerializer(
            many=True,
            required=False,
            max_length=200,
            help_text=_(
                "Optional: the order's products and what each costs, at most the amount in all. A coupon "
                "limited to some products needs them: it discounts only the eligible lines."
            ),
        )

    class OutputSerializer(serializers.Serializer):
        code = serializers.CharField()
        member_id = serializers.IntegerField()
        name = serializers.CharField(source="template.name")
        kind = CouponKindField()
        gift_description = serializers.CharField(source="template.gift_description")
        order_amount = MoneyOut()
        discount = MoneyOut(help_text=_("Take this off the order."))
        eligible_amount = MoneyOut(
            allow_null=True, help_text=_("For a coupon limited to some products: what its eligible lines came to.")
        )
        amount_due = serializers.SerializerMethodField(help_text=_("The order amount minus the discount."))
        redeemed_at = serializers.DateTimeField()

        def get_amount_due(self, coupon) -> str:
            return str(coupon.order_amount - coupon.discount)

    @extend_schema(
        operation_id="pos_coupons_redeem",
        request=InputSerializer,
        responses={201: OutputSerializer},
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        tags=["pos"],
        summary="Redeem a member's coupon against an order (scope: orders)",
        description=_(
            "The coupon must be the named member's, usable now, valid at the key's store and the amount at "
            "least its minimum spend. A retry with the same Idempotency-Key returns the same redemption."
        ),
    )
    def post(self, request):
        key = idempotency_key(request)
        data = self.validated(self.InputSerializer, request.data)
        member = member_from(data)
        store = self.principal.store
        coupon = replay_or_refuse(
            lambda: coupon_redeem(
                member=member,
                coupon_code=data["coupon"],
                amount=data["amount"],
                lines=[PaidLine(**line) for line in data.get("lines", ())],
                store=store,
                idempotency_key=store_scoped_key(store.pk, key),
            )
        )
        return Response(self.OutputSerializer(coupon).data, status=status.HTTP_201_CREATED)
