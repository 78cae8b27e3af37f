"""``/api/v1/pos/…``: what a store's POS does, authenticated by one of the store's API keys.

- The store is always the key's: an order is recorded for the key's store (a ``store`` in the
  body is an unknown field, refused), a refund only for an order of the key's store, and another
  store's order answers 404.
- Orders and refunds need an ``Idempotency-Key`` header: a retry with the same key and body gets
  the first response again; the same key with another body is refused (422). Stored-value and
  points operations need one too, and pass it (scoped to the store) to the ledger services, which
  replay or refuse in the same way.
- Spending stored value or redeeming points needs the member's QR code (proof the member is at
  the till); recording an order or topping up may name the member by mobile number instead.
- Looking a member up is throttled per key (``pos_lookup``) and every lookup, found or not, is
  written to the ``huiyuan.audit`` log (key, store, by what, which member). Only a QR scan — the
  member at the till — answers the full name; a lookup by mobile number answers it masked (张*).
- Top-up offers (充值优惠) belong to ``campaigns``, which serves the member lookup (with the member's
  ``top_up_offers``) and the top-up (with an ``offer``) by subclassing the views here
  (``campaigns.apis.offers``; routed in ``campaigns.urls``).
- An order is at most ``HUIYUAN_ORDER_MAX_AMOUNT`` yuan (a 400 on ``amount``).
- An order may list its ``lines`` (sku, quantity, amount paid): known skus, each once, adding up to
  at most the order's amount (less is fine: items outside the catalogue). They are recorded with the
  order, in its transaction, and are part of what a retry must repeat: the same external id with
  other lines (or none, after lines) is a 409. Without ``lines`` the order costs no extra query.
"""

import logging
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError
from django.utils import translation
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from members.apis import selectors
from members.apis.base import MoneyField, PosApi, StrictSerializer
from members.apis.errors import IdempotencyKeyReused
from members.apis.idempotency import IDEMPOTENCY_KEY_PARAMETER, idempotency_key, respond_once
from members.apis.me import MoneyOut, RestrictedBonusOutSerializer
from members.apis.selectors import related_or_none
from members.mobile import mask_mobile
from members.models import ApiScope, Member, Order, PointsEntry, WalletEntry
from members.selectors import member_get_by_mobile, wallet_restricted_bonuses
from members.services.orders import IdempotencyConflict, moment_check, order_record, refund_record
from members.services.points import points_redeem
from members.services.products import LineIn, PaidLine
from members.services.qr_codes import member_id_from_qr_code
from members.services.wallet import wallet_spend, wallet_top_up

audit_log = logging.getLogger("huiyuan.audit")
NUMERIC_VALUE_OUT_OF_RANGE = "22003"  # PostgreSQL's SQLSTATE


def _error(field: str, message, code: str = "invalid") -> ValidationError:
    return ValidationError({field: [serializers.ErrorDetail(message, code=code)]})


def member_from(data: dict, *, qr_only: bool = False) -> Member:
    """The member named by ``qr_code`` (or, unless ``qr_only``, ``mobile``); a field-level 400 if none."""
    qr_code, mobile = data.get("qr_code"), data.get("mobile")
    if qr_only and not qr_code:
        raise _error("qr_code", _("Scan the member's QR code."), "required")
    if bool(qr_code) == bool(mobile):
        raise _error("non_field_errors", _("Name the member by qr_code or by mobile (one of them)."), "required")
    if qr_code:
        member_id = member_id_from_qr_code(qr_code)
        member = Member.objects.filter(pk=member_id).first() if member_id is not None else None
        if member is None:
            raise _error("qr_code", _("The QR code is invalid or expired: ask the member to refresh it."), "expired")
    else:
        member = member_get_by_mobile(mobile=mobile)
        if member is None:
            raise _error("mobile", _("No member has this mobile number."), "unknown_member")
    if not member.is_active:  # blocked or erased: not served at a till (no order, top-up, spend or lookup)
        raise _error(
            "qr_code" if qr_code else "mobile", _("This member is blocked: they cannot be served."), "member_inactive"
        )
    return member


class MemberRefSerializer(StrictSerializer):
    mobile = serializers.CharField(max_length=32, required=False, help_text=_("In any spelling: +86 138-0013-8000."))
    qr_code = serializers.CharField(max_length=128, required=False, help_text=_("Scanned from the member's QR code."))


def _order_amount_in_range(value):
    """At most ``HUIYUAN_ORDER_MAX_AMOUNT`` (read on every call, so a settings change applies)."""
    limit = Decimal(settings.HUIYUAN_ORDER_MAX_AMOUNT)
    if value > limit:
        raise serializers.ValidationError(
            _("An order can be at most %(limit)s yuan.") % {"limit": f"{limit:.2f}"}, code="max_value"
        )
    return value


def mask_name(name: str) -> str:
    """``张三`` → ``张*``, ``欧阳小明`` → ``欧***``: the first character, then one ``*`` for each other."""
    name = (name or "").strip()
    return f"{name[0]}{'*' * (len(name) - 1)}" if name else ""


def _not_in_future(value):
    """The service's rule (``moment_check``), checked early so that a POS sees it per field."""
    try:
        return moment_check(value)
    except DjangoValidationError as exc:
        raise serializers.ValidationError(next(iter(exc.message_dict.values())), code="future") from None


class PosOrderSerializer(serializers.Serializer):
    external_id = serializers.CharField()
    store_code = serializers.CharField(source="store.code")
    member_id = serializers.IntegerField()
    paid_at = serializers.DateTimeField()
    amount = MoneyOut()
    refunded_amount = MoneyOut()
    status = serializers.ChoiceField(choices=Order.Status.choices)
    created_at = serializers.DateTimeField()


class PosOrderLineSerializer(serializers.Serializer):
    sku = serializers.CharField(source="product.sku")
    name = serializers.CharField(source="product.name")
    category = serializers.CharField(source="product.category")
    quantity = serializers.IntegerField()
    amount = MoneyOut()


class PosOrderWithLinesSerializer(PosOrderSerializer):
    lines = PosOrderLineSerializer(many=True, help_text=_("The order's lines; empty when it was recorded without."))


# One instance, fields bound once: answering an order then costs no serializer construction
# (every POS order is answered with it; ``to_representation`` keeps no state).
_ORDER_OUT = PosOrderSerializer()
_LINE_OUT = PosOrderLineSerializer()


def order_body(order: Order, lines) -> dict:
    """An order as the POS sees it, with ``lines`` (a list: no query)."""
    body = _ORDER_OUT.to_representation(order)
    body["lines"] = [_LINE_OUT.to_representation(line) for line in lines]
    return body


class PosOrderLineInputSerializer(StrictSerializer):
    sku = serializers.CharField(max_length=64, help_text=_("A product of the catalogue."))
    quantity = serializers.IntegerField(min_value=1, max_value=2_147_483_647)
    amount = MoneyField(help_text=_('What was paid for this line, in yuan, e.g. "18.00".'))


class RefundLineInputSerializer(StrictSerializer):
    sku = serializers.CharField(max_length=64, help_text=_("A product of the order's lines."))
    quantity = serializers.IntegerField(min_value=0, max_value=2_147_483_647)
    amount = MoneyField(help_text=_('What is given back for this line, in yuan, e.g. "18.00".'))


class RefundLineOutSerializer(serializers.Serializer):
    sku = serializers.CharField(source="order_line.product.sku")
    quantity = serializers.IntegerField()
    amount = MoneyOut()


# --- orders and refunds ---


class PosOrderCreateApi(PosApi):
    required_scope = ApiScope.ORDERS
    extra_error_statuses = (409, 422)

    class InputSerializer(MemberRefSerializer):
        external_id = serializers.CharField(max_length=64, help_text=_("The order's id in your system; unique."))
        paid_at = serializers.DateTimeField(validators=[_not_in_future])
        amount = MoneyField(
            help_text=_('Amount paid in yuan, e.g. "38.00".'),
            validators=[_order_amount_in_range],
        )
        lines = PosOrderLineInputSerializer(
            many=True,
            required=False,
            max_length=200,
            help_text=_(
                "Optional: what was bought. Each SKU once; the lines add up to at most the order's amount. "
                "A resend of the order must repeat them."
            ),
        )

    @extend_schema(
        operation_id="pos_orders_create",
        request=InputSerializer,
        responses={201: PosOrderWithLinesSerializer, 200: PosOrderWithLinesSerializer},
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        tags=["pos"],
        summary="Record an order (scope: orders)",
        description=_(
            "201 when recorded now; 200 when this external id was recorded before with the same content. "
            "The order belongs to the key's store."
        ),
    )
    def post(self, request):
        key = idempotency_key(request)
        data = self.validated(self.InputSerializer, request.data, shared=True)
        member = member_from(data)
        store = self.principal.store

        def run():
            result = order_record(
                external_id=data["external_id"],
                member=member,
                store=store,
                paid_at=data["paid_at"],
                amount=data["amount"],
                lines=[LineIn(**line) for line in data.get("lines", ())],
            )
            order = result.order
            order.store = store
            body = order_body(order, result.lines)
            return (status.HTTP_201_CREATED if result.created else status.HTTP_200_OK), body

        try:
            return respond_once(request=request, store=store, key=key, run=run)
        except DataError as exc:
            # Within the maximum amount, the brand's points rate and multipliers can still make the
            # points too many to hold: the whole order was rolled back; say so on the amount.
            if getattr(exc.__cause__, "sqlstate", None) != NUMERIC_VALUE_OUT_OF_RANGE:
                raise
            raise _error(
                "amount", _("The points this order would earn are out of range: check the amount."), "max_value"
            ) from None


class PosRefundCreateApi(PosApi):
    required_scope = ApiScope.ORDERS
    extra_error_statuses = (404, 409, 422)

    class InputSerializer(StrictSerializer):
        external_id = serializers.CharField(max_length=64, help_text=_("The refund's id in your system; unique."))
        order_external_id = serializers.CharField(max_length=64, help_text=_("An order of this store."))
        amount = MoneyField()
        refunded_at = serializers.DateTimeField(required=False, validators=[_not_in_future])
        reason = serializers.CharField(max_length=200, required=False, allow_blank=True)
        lines = RefundLineInputSerializer(
            many=True,
            required=False,
            max_length=200,
            help_text=_(
                "Optional: what is given back of the order's lines (sku, items returned — 0 for a price "
                "correction — and amount), each within what the line has left; at most the refund's amount."
            ),
        )

    class OutputSerializer(serializers.Serializer):
        external_id = serializers.CharField()
        order = PosOrderSerializer()
        amount = MoneyOut()
        refunded_at = serializers.DateTimeField()
        reason = serializers.CharField()
        lines = RefundLineOutSerializer(many=True, source="named_lines")

    @extend_schema(
        operation_id="pos_refunds_create",
        request=InputSerializer,
        responses={201: OutputSerializer, 200: OutputSerializer},
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        tags=["pos"],
        summary="Record a refund of one of the store's orders (scope: orders)",
        description=_("An order of another store answers 404, like one that does not exist."),
    )
    def post(self, request):
        key = idempotency_key(request)
        data = self.validated(self.InputSerializer, request.data)
        store = self.principal.store
        order = selectors.store_order(store_id=store.pk, external_id=data["order_external_id"])

        def run():
            result = refund_record(
                external_id=data["external_id"],
                order=order,
                amount=data["amount"],
                refunded_at=data.get("refunded_at"),
                reason=data.get("reason", ""),
                lines=[LineIn(**line) for line in data["lines"]] if "lines" in data else None,
            )
            refund = result.refund
            refund.order = order
            refund.named_lines = list(refund.lines.select_related("order_line__product"))
            body = self.OutputSerializer(refund).data
            return (status.HTTP_201_CREATED if result.created else status.HTTP_200_OK), body

        return respond_once(request=request, store=store, key=key, run=run)


class PosOrderDetailApi(PosApi):
    required_scope = ApiScope.ORDERS

    @extend_schema(
        operation_id="pos_orders_retrieve",
        responses={200: PosOrderWithLinesSerializer},
        tags=["pos"],
        summary="One of the store's orders, by external id, with its lines (scope: orders)",
    )
    def get(self, request, external_id: str):
        order = selectors.store_order(store_id=self.principal.store_id, external_id=external_id, with_lines=True)
        return Response(PosOrderWithLinesSerializer(order).data)


# --- members ---


class PosMemberSerializer(serializers.Serializer):
    member_id = serializers.IntegerField(source="pk")
    name = serializers.SerializerMethodField(
        help_text=_("The full name for a QR scan; masked (张*) for a lookup by mobile number.")
    )
    mobile_masked = serializers.SerializerMethodField()
    tier_code = serializers.SerializerMethodField()
    tier_name = serializers.SerializerMethodField()
    discount_rate = serializers.SerializerMethodField(help_text=_("The tier's price factor, e.g. 0.95."))
    points_balance = serializers.SerializerMethodField()
    wallet_balance = serializers.SerializerMethodField(help_text=_("Principal plus bonus."))
    restricted_bonuses = serializers.SerializerMethodField(
        help_text=_("Bonus in the wallet balance usable only on some products: name the lines of a spend to use it.")
    )

    def get_name(self, member) -> str:
        return member.name if self.context.get("full_name") else mask_name(member.name)

    def get_mobile_masked(self, member) -> str:
        return mask_mobile(member.mobile)

    def get_tier_code(self, member) -> str | None:
        return member.tier.code if member.tier_id else None

    def get_tier_name(self, member) -> str | None:
        return member.tier.name if member.tier_id else None

    def get_discount_rate(self, member) -> str:
        return str(member.tier.discount_rate) if member.tier_id else "1.00"

    def get_points_balance(self, member) -> int:
        account = related_or_none(member, "points_account")
        return account.balance if account else 0

    def get_wallet_balance(self, member) -> str:
        wallet = related_or_none(member, "wallet")
        return str(wallet.total) if wallet else "0.00"

    @extend_schema_field(RestrictedBonusOutSerializer(many=True))
    def get_restricted_bonuses(self, member) -> list:
        wallet = related_or_none(member, "wallet")
        if wallet is None or not wallet.bonus:  # no bonus, nothing restricted: no query
            return []
        return RestrictedBonusOutSerializer(wallet_restricted_bonuses(wallet_id=wallet.pk), many=True).data


class PosMemberLookupApi(PosApi):
    """A POST, so that the mobile number travels in the body and not in access logs. Throttled per
    key and audited (see the module doc); the full name only for a QR scan."""

    required_scope = ApiScope.MEMBERS_READ
    throttle_scope = "pos_lookup"
    extra_error_statuses = (404,)
    member_serializer = PosMemberSerializer  # ``campaigns`` serves this endpoint with the member's offers

    class InputSerializer(MemberRefSerializer):
        pass

    @extend_schema(
        operation_id="pos_members_lookup",
        request=InputSerializer,
        responses={200: PosMemberSerializer},
        tags=["pos"],
        summary="Find a member by mobile number or QR code (scope: members:read)",
        description=_(
            "Throttled per API key (429 with Retry-After). A QR scan answers the member's full name; "
            "a lookup by mobile number answers it masked."
        ),
    )
    def post(self, request):
        data = self.validated(self.InputSerializer, request.data)
        kind = "qr_code" if data.get("qr_code") else "mobile"
        principal = self.principal
        try:
            member = member_from(data)
        except ValidationError:
            self._audit(principal, kind, member_id=None)
            raise
        self._audit(principal, kind, member_id=member.pk)
        member = Member.objects.select_related("tier", "points_account", "wallet").get(pk=member.pk)
        return Response(self.member_body(member, full_name=kind == "qr_code"))

    def member_body(self, member: Member, *, full_name: bool) -> dict:
        """The answer about ``member`` (its tier, points account and wallet fetched)."""
        return self.member_serializer(member, context={"full_name": full_name}).data

    @staticmethod
    def _audit(principal, kind: str, *, member_id: int | None) -> None:
        audit_log.info(
            "pos member lookup: key=%s store=%s kind=%s member=%s",
            principal.api_key.pk,
            principal.store.code,
            kind,
            member_id if member_id is not None else "none",
            extra={
                "event": "pos_member_lookup",
                "api_key_id": principal.api_key.pk,
                "store_id": principal.store_id,
                "store_code": principal.store.code,
                "lookup_kind": kind,
                "member_id": member_id,
            },
        )


# --- stored value and points ---


def ledger_text(message, **params) -> str:
    """A reason kept on a ledger entry: in the brand's language, so a retry has the same text."""
    with translation.override(settings.LANGUAGE_CODE):
        return str(message) % params


def store_scoped_key(store_id: int, key: str) -> str:
    return f"pos:{store_id}:{key}"


def replay_or_refuse(call):
    """Run a ledger service; its own idempotency conflict means our header was reused: 422."""
    try:
        return call()
    except IdempotencyConflict as exc:
        if "idempotency_key" in getattr(exc, "error_dict", {}):
            raise IdempotencyKeyReused() from None
        raise


class PaidLineInputSerializer(StrictSerializer):
    sku = serializers.CharField(max_length=64, help_text=_("A product of the catalogue."))
    amount = MoneyField(help_text=_('What is paid for this line, in yuan, e.g. "18.00".'))


class WalletEntryOutSerializer(serializers.Serializer):
    member_id = serializers.IntegerField(source="wallet.member_id")
    kind = serializers.CharField()
    amount = MoneyOut(help_text=_("Signed: negative for a spend."))
    principal_delta = MoneyOut()
    bonus_delta = MoneyOut(help_text=_("Restricted bonus included."))
    restricted_bonus_delta = serializers.SerializerMethodField(
        help_text=_("Of the bonus change, the part of bonus limited to some products.")
    )
    principal_after = MoneyOut()
    bonus_after = MoneyOut()
    reference = serializers.CharField()
    created_at = serializers.DateTimeField()

    def get_restricted_bonus_delta(self, entry) -> str:
        return str(sum((move.delta for move in entry.restricted_moves.all()), Decimal("0.00")))


def _member_of_earlier(model, idempotency_key: str) -> Member | None:
    """The member of the ledger entry an earlier request with this key wrote, if any: its retry is
    answered by the service's own replay (which still compares the request body)."""
    entry = (
        model.objects.filter(idempotency_key=idempotency_key)
        .select_related("wallet__member" if model is WalletEntry else "member")
        .first()
    )
    if entry is None:
        return None
    return entry.wallet.member if model is WalletEntry else entry.member


class PosWalletSpendApi(PosApi):
    required_scope = ApiScope.WALLET
    throttle_scope = "pos_money"
    extra_error_statuses = (422,)

    class InputSerializer(StrictSerializer):
        qr_code = serializers.CharField(max_length=128)
        amount = MoneyField()
        reference = serializers.CharField(max_length=100, required=False, allow_blank=True)
        reason = serializers.CharField(max_length=200, required=False, allow_blank=True)
        lines = PaidLineInputSerializer(
            many=True,
            required=False,
            max_length=200,
            help_text=_(
                "Optional: the products this spend pays for, adding up to the amount. Bonus limited to some "
                "products (e.g. 唤醒商品) pays only for eligible lines, and only when they are named."
            ),
        )

    @extend_schema(
        operation_id="pos_wallet_spend",
        request=InputSerializer,
        responses={201: WalletEntryOutSerializer},
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        tags=["pos"],
        summary="Pay with stored value (scope: wallet)",
    )
    def post(self, request):
        key = idempotency_key(request)
        data = self.validated(self.InputSerializer, request.data)
        # A retry after the QR code expired must still get the first answer, not an error.
        member = _member_of_earlier(WalletEntry, store_scoped_key(self.principal.store.pk, key)) or member_from(
            data, qr_only=True
        )
        store = self.principal.store
        entry = replay_or_refuse(
            lambda: wallet_spend(
                member=member,
                amount=data["amount"],
                lines=[PaidLine(**line) for line in data.get("lines", ())],
                idempotency_key=store_scoped_key(store.pk, key),
                reason=data.get("reason") or ledger_text(_("Paid at store %(store)s"), store=store.code),
                reference=data.get("reference", ""),
            )
        )
        return Response(WalletEntryOutSerializer(entry).data, status=status.HTTP_201_CREATED)


class PosWalletTopUpApi(PosApi):
    """A top-up without an offer. ``campaigns`` serves the endpoint with its subclass, which takes an
    ``offer`` too (``campaigns.apis.offers.PosWalletTopUpApi``): this one writes no offer, so a bonus
    never comes from the till."""

    required_scope = ApiScope.WALLET
    throttle_scope = "pos_money"
    extra_error_statuses = (422,)

    class InputSerializer(MemberRefSerializer):
        amount = MoneyField(help_text=_("Money the member paid in at the till."))
        reference = serializers.CharField(max_length=100, required=False, allow_blank=True)

    class OutputSerializer(WalletEntryOutSerializer):
        offer_code = serializers.CharField(help_text=_("The code of the top-up offer applied; empty for none."))

    @extend_schema(
        operation_id="pos_wallet_top_up",
        request=InputSerializer,
        responses={201: OutputSerializer},
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        tags=["pos"],
        summary="Top up stored value at the till (scope: wallet)",
    )
    def post(self, request):
        key = idempotency_key(request)
        data = self.validated(self.InputSerializer, request.data)
        member = member_from(data)
        store = self.principal.store
        try:
            entry = replay_or_refuse(
                lambda: self.top_up(
                    member=member, store=store, data=data, idempotency_key=store_scoped_key(store.pk, key)
                )
            )
        except DjangoValidationError as exc:  # the ceilings (the store's or the brand's) are on ``amount``
            if "amount_paid" not in getattr(exc, "error_dict", {}):
                raise
            raise DjangoValidationError({"amount": exc.error_dict["amount_paid"]}) from None
        return Response(self.OutputSerializer(entry).data, status=status.HTTP_201_CREATED)

    def top_up(self, *, member: Member, store, data: dict, idempotency_key: str) -> WalletEntry:
        """Pay ``data["amount"]`` into the member's wallet, within the store's ceilings."""
        return wallet_top_up(
            member=member,
            amount_paid=data["amount"],
            idempotency_key=idempotency_key,
            reason=ledger_text(_("Top-up at store %(store)s"), store=store.code),
            reference=data.get("reference", ""),
            store=store,
        )


class PosPointsRedeemApi(PosApi):
    required_scope = ApiScope.POINTS
    throttle_scope = "pos_money"
    extra_error_statuses = (422,)

    class InputSerializer(StrictSerializer):
        qr_code = serializers.CharField(max_length=128)
        points = serializers.IntegerField(min_value=1, max_value=10_000_000)
        reason = serializers.CharField(max_length=200)
        reference = serializers.CharField(max_length=64, required=False, allow_blank=True)

    class OutputSerializer(serializers.Serializer):
        member_id = serializers.IntegerField()
        points = serializers.IntegerField(help_text=_("Negative: the points taken."))
        balance_after = serializers.IntegerField()
        reason = serializers.CharField()
        created_at = serializers.DateTimeField()

    @extend_schema(
        operation_id="pos_points_redeem",
        request=InputSerializer,
        responses={201: OutputSerializer},
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        tags=["pos"],
        summary="Redeem points (scope: points)",
    )
    def post(self, request):
        key = idempotency_key(request)
        data = self.validated(self.InputSerializer, request.data)
        member = _member_of_earlier(PointsEntry, store_scoped_key(self.principal.store.pk, key)) or member_from(
            data, qr_only=True
        )
        store = self.principal.store
        entry = replay_or_refuse(
            lambda: points_redeem(
                member=member,
                points=data["points"],
                idempotency_key=store_scoped_key(store.pk, key),
                reason=data["reason"],
                reference=data.get("reference", ""),
            )
        )
        return Response(self.OutputSerializer(entry).data, status=status.HTTP_201_CREATED)
