"""Topping up the wallet: the member's intent, and WeChat Pay's callback that credits it.

``POST /me/top-ups`` (``campaigns.apis.offers``: it may carry an offer) stores an intent and
answers with its ``out_trade_no`` and, when WeChat Pay is configured, the parameters
``wx.requestPayment`` needs. The mini-program may poll ``GET /me/top-ups/{out_trade_no}`` until
it is ``paid``.

``POST /payments/wechat/notify`` is called by WeChat Pay. It is refused (401) unless the body is
signed by WeChat Pay's key (``members.wechatpay``); the resource is decrypted with the API v3 key
and the wallet is credited through ``top_up_intent_confirm``, once per transaction however often
the callback repeats. Success answers 204 with no body, as WeChat Pay expects.
"""

import json
from datetime import datetime

from django.conf import settings
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response

from members import wechatpay
from members.apis import selectors
from members.apis.base import MemberApi, PublicApi
from members.apis.me import MoneyOut
from members.models import TopUpIntent
from members.services.top_ups import top_up_intent_confirm


class InvalidPaymentSignature(APIException):
    status_code = status.HTTP_401_UNAUTHORIZED
    default_detail = _("The callback is not signed by WeChat Pay.")
    default_code = "invalid_signature"


class PayParamsSerializer(serializers.Serializer):
    app_id = serializers.CharField()
    time_stamp = serializers.CharField()
    nonce_str = serializers.CharField()
    package = serializers.CharField()
    sign_type = serializers.CharField()
    pay_sign = serializers.CharField()


class TopUpIntentSerializer(serializers.Serializer):
    out_trade_no = serializers.CharField()
    amount = MoneyOut()
    bonus = MoneyOut(help_text=_("Granted with the top-up by an offer."))
    status = serializers.ChoiceField(choices=TopUpIntent.Status.choices)
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    paid_at = serializers.DateTimeField(allow_null=True)


class TopUpIntentDetailApi(MemberApi):
    @extend_schema(
        operation_id="me_top_ups_retrieve",
        responses={200: TopUpIntentSerializer},
        tags=["me"],
        summary="One of my top-ups",
    )
    def get(self, request, out_trade_no: str):
        intent = selectors.member_top_up(member_id=self.principal.member_id, out_trade_no=out_trade_no)
        return Response(TopUpIntentSerializer(intent).data)


# --- the callback ---


class _ResourceSerializer(serializers.Serializer):
    algorithm = serializers.CharField(max_length=32)
    ciphertext = serializers.CharField(max_length=65536)
    associated_data = serializers.CharField(max_length=256, required=False, allow_blank=True)
    original_type = serializers.CharField(max_length=64, required=False)
    nonce = serializers.CharField(max_length=64)


_SIGNATURE_HEADERS = [
    OpenApiParameter(name, type=str, location=OpenApiParameter.HEADER, required=True)
    for name in ("Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature", "Wechatpay-Serial")
]


class WeChatPayNotifyApi(PublicApi):
    """Called by WeChat Pay, not by our clients. Fields WeChat Pay adds later are accepted."""

    throttle_scope = "payment_notify"
    parser_classes = ()
    extra_error_statuses = (401, 409)

    class InputSerializer(serializers.Serializer):
        id = serializers.CharField(max_length=64)
        create_time = serializers.CharField(max_length=64, required=False)
        event_type = serializers.CharField(max_length=64)
        resource_type = serializers.CharField(max_length=64, required=False)
        summary = serializers.CharField(max_length=256, required=False, allow_blank=True)
        resource = _ResourceSerializer()

    @extend_schema(
        operation_id="payments_wechat_notify",
        request=InputSerializer,
        responses={204: None},
        parameters=_SIGNATURE_HEADERS,
        tags=["payments"],
        summary="WeChat Pay payment callback",
    )
    def post(self, request):
        body = request.body
        try:
            wechatpay.verify_signed_message(headers=request.headers, body=body)
        except wechatpay.InvalidSignature:
            raise InvalidPaymentSignature() from None
        try:
            document = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ValidationError({"non_field_errors": [_("The body is not JSON.")]}) from None
        data = self.validated(self.InputSerializer, document)
        if data["event_type"] != "TRANSACTION.SUCCESS":
            return Response(status=status.HTTP_204_NO_CONTENT)
        try:
            transaction = wechatpay.decrypt_resource(data["resource"])
        except wechatpay.InvalidResource:
            raise ValidationError({"resource": [_("The resource cannot be decrypted.")]}) from None
        if transaction.get("trade_state") != "SUCCESS":
            return Response(status=status.HTTP_204_NO_CONTENT)
        if settings.WECHATPAY_MCH_ID and transaction.get("mchid") != settings.WECHATPAY_MCH_ID:
            raise ValidationError({"resource": [_("The payment is for another merchant.")]})
        try:
            amount_cents = int((transaction.get("amount") or {}).get("total"))
            paid_at = datetime.fromisoformat(transaction["success_time"]) if transaction.get("success_time") else None
        except (TypeError, ValueError):
            raise ValidationError({"resource": [_("The payment has no readable amount or time.")]}) from None
        top_up_intent_confirm(
            out_trade_no=str(transaction.get("out_trade_no") or ""),
            transaction_id=str(transaction.get("transaction_id") or ""),
            amount_cents=amount_cents,
            paid_at=paid_at,
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
