"""Message engagement from outside: providers' delivery reports and members following tracked links.

- ``GET /t/<token>`` (``tracked_link_follow``, a plain view at the site root, no login): verifies
  the signed token (``campaigns.services.engagement.tracked_link_read``), records the click (and
  the open) and answers 302 to the URL inside the token. A token that is not ours → 404: the
  redirect only ever goes where a token we signed says. ``HEAD`` (link previews) redirects
  without counting. Throttled per client address (``tracked_link``, default 300/min) → 429.
- ``GET/POST /api/v1/messages/wechat/push`` — the mini-program's message push: ``GET`` is WeChat's
  URL check (echoes ``echostr``), ``POST`` carries ``subscribe_msg_sent_event`` send results.
  Both must carry WeChat's signature of our push token, else 401 (``campaigns.channels.wechat``).
- ``POST /api/v1/me/messages/<id>/opened`` — the mini-program reports that the member opened one
  of their messages (a subscription message's page carries ``message_id``): 204; another
  member's or an unknown message → 404. Throttled with the member's interaction events.
- ``POST /api/v1/messages/sms/receipts`` — the SMS gateway's delivery receipts, HMAC-signed like
  our requests to it (``campaigns.channels.sms``), else 401.

The callbacks answer what the providers expect (WeChat ``success``, the gateway
``{"code": 0}``) and are idempotent: WeChat repeats a push it got no answer to, and a repeated
report changes nothing (``message_delivery_record``).
"""

from __future__ import annotations

import datetime as dt
import json

from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_safe
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound, Throttled, ValidationError
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from campaigns.channels import channels_of_kind
from campaigns.channels.sms import SmsChannel
from campaigns.channels.wechat import BadPush, WeChatSubscribeChannel, parse_sent_events
from campaigns.services.engagement import (
    BadTrackedLink,
    message_click_record,
    message_delivery_record,
    message_open_record,
    tracked_link_read,
)
from members.apis.base import MemberApi, PublicApi

# Per client address. Mobile carriers put many members behind one address (CGNAT): generous.
DEFAULT_RATES = {"tracked_link": "300/min", "message_callback": "600/min"}


class ClientThrottle(SimpleRateThrottle):
    """Per client address; the rate from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][scope]`` when
    set there, else ``DEFAULT_RATES``."""

    def __init__(self, scope: str):
        self.scope = scope
        super().__init__()

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope) or DEFAULT_RATES[self.scope]

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class InvalidCallbackSignature(APIException):
    status_code = status.HTTP_401_UNAUTHORIZED
    default_detail = _("The callback is not signed by the message provider.")
    default_code = "invalid_signature"


# --- tracked links -----------------------------------------------------------------------------------


@require_safe
def tracked_link_follow(request, token: str):
    throttle = ClientThrottle("tracked_link")
    if not throttle.allow_request(request, None):
        response = HttpResponse(_("Too many requests."), status=429, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = str(int(throttle.wait() or 1))
        return response
    try:
        message_id, url = tracked_link_read(token)
    except BadTrackedLink:
        raise Http404 from None
    if request.method == "GET":
        message_click_record(message_id=message_id)
    response = HttpResponseRedirect(url)
    response["Cache-Control"] = "no-store"  # every follow reaches us
    response["Referrer-Policy"] = "no-referrer"  # the token stays with us
    response["X-Robots-Tag"] = "noindex"
    return response


# --- the mini-program ---------------------------------------------------------------------------


class MemberMessageOpenedApi(MemberApi):
    throttle_scope = "member_events"
    extra_error_statuses = (404,)

    @extend_schema(
        operation_id="me_messages_opened",
        request=None,
        responses={204: None},
        tags=["me"],
        summary="I opened one of my messages",
        description=_(
            "The page a subscription message opens carries its `message_id`. Repeating the call is "
            "harmless: the message counts as opened once."
        ),
    )
    def post(self, request, message_id: int):
        if not message_open_record(message_id=message_id, member_id=self.principal.member_id):
            raise NotFound()
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- provider callbacks ----------------------------------------------------------------------------


class CallbackApi(PublicApi):
    throttle_scope = "message_callback"
    parser_classes = ()  # the body is read as sent: it is what the signature covers
    extra_error_statuses = (401,)

    def get_throttles(self):
        return [ClientThrottle(self.throttle_scope)]

    def throttled(self, request, wait):
        raise Throttled(wait)


_PUSH_PARAMETERS = [
    OpenApiParameter(name, str, required=True, description=description)
    for name, description in (
        ("signature", "SHA-1 of the sorted token, timestamp and nonce."),
        ("timestamp", "Unix seconds."),
        ("nonce", "A random string."),
    )
]


def _report_time(value: str) -> dt.datetime | None:
    """The gateway's report time (ISO 8601, or ``YYYY-MM-DD HH:MM:SS`` in local time), if readable."""
    try:
        moment = parse_datetime(value.strip().replace(" ", "T", 1)) if value else None
    except ValueError:
        return None
    if moment is not None and timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


class WeChatMessagePushApi(CallbackApi):
    """Called by WeChat, not by our clients."""

    def _verified_channels(self, request) -> list[str]:
        params = request.query_params
        names = [
            name
            for name, channel in channels_of_kind(WeChatSubscribeChannel).items()
            if channel.push_signature_valid(
                signature=params.get("signature", ""),
                timestamp=params.get("timestamp", ""),
                nonce=params.get("nonce", ""),
            )
        ]
        if not names:
            raise InvalidCallbackSignature()
        return names

    @extend_schema(
        operation_id="messages_wechat_push_check",
        parameters=[*_PUSH_PARAMETERS, OpenApiParameter("echostr", str, required=True)],
        responses={(200, "text/plain"): OpenApiTypes.STR},
        tags=["messages"],
        summary="WeChat message push: the URL check",
    )
    def get(self, request):
        self._verified_channels(request)
        return HttpResponse(request.query_params.get("echostr", ""), content_type="text/plain; charset=utf-8")

    @extend_schema(
        operation_id="messages_wechat_push",
        parameters=_PUSH_PARAMETERS,
        request={"application/json": OpenApiTypes.OBJECT, "text/xml": OpenApiTypes.STR},
        responses={(200, "text/plain"): OpenApiTypes.STR},
        tags=["messages"],
        summary="WeChat message push: subscription message send results",
    )
    def post(self, request):
        channels = self._verified_channels(request)
        try:
            events = parse_sent_events(request.body)
        except BadPush:
            raise ValidationError({"non_field_errors": [_("The body is neither JSON nor XML.")]}) from None
        for event in events:
            message_delivery_record(
                channels=channels,
                provider_message_id=event.msg_id,
                delivered=event.delivered,
                error=f"WeChat {event.error_code}: {event.error_status}",
            )
        return HttpResponse("success", content_type="text/plain; charset=utf-8")


class SmsReceiptApi(CallbackApi):
    """Called by the SMS gateway, not by our clients."""

    extra_error_statuses = (400, 401)

    class InputSerializer(serializers.Serializer):
        out_id = serializers.CharField(max_length=40, required=False, allow_blank=True)
        biz_id = serializers.CharField(max_length=100, required=False, allow_blank=True)
        success = serializers.BooleanField()
        err_code = serializers.CharField(max_length=100, required=False, allow_blank=True)
        err_msg = serializers.CharField(max_length=500, required=False, allow_blank=True)
        report_time = serializers.CharField(max_length=40, required=False, allow_blank=True)

    class OutputSerializer(serializers.Serializer):
        code = serializers.IntegerField(help_text=_("0: received."))
        msg = serializers.CharField()

    @extend_schema(
        operation_id="messages_sms_receipts",
        request=InputSerializer(many=True),
        responses={200: OutputSerializer},
        parameters=[
            OpenApiParameter(name, str, location=OpenApiParameter.HEADER, required=True)
            for name in ("X-Api-Key", "X-Timestamp", "X-Nonce", "X-Signature")
        ],
        tags=["messages"],
        summary="SMS delivery receipts",
    )
    def post(self, request):
        body = request.body
        names = [
            name
            for name, channel in channels_of_kind(SmsChannel).items()
            if channel.receipt_signature_valid(headers=request.headers, body=body)
        ]
        if not names:
            raise InvalidCallbackSignature()
        try:
            document = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ValidationError({"non_field_errors": [_("The body is not JSON.")]}) from None
        if isinstance(document, dict):
            document = [document]
        serializer = self.InputSerializer(data=document, many=True)
        serializer.is_valid(raise_exception=True)
        for receipt in serializer.validated_data:
            out_id = receipt.get("out_id", "")
            message_delivery_record(
                channels=names,
                message_id=int(out_id) if out_id.isdigit() else None,
                provider_message_id=receipt.get("biz_id", ""),
                delivered=receipt["success"],
                error=f"SMS {receipt.get('err_code', '')}: {receipt.get('err_msg', '')}".strip(),
                at=_report_time(receipt.get("report_time", "")),
            )
        return Response({"code": 0, "msg": "成功"})
