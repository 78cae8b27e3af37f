"""A generic HTTPS JSON SMS gateway (Aliyun-style: a sign name, a template code and parameters).

Settings (or the channel's ``OPTIONS``)::

    HUIYUAN_SMS_URL = "https://sms.example.com/v1/send"
    HUIYUAN_SMS_API_KEY = "..."
    HUIYUAN_SMS_API_SECRET = "..."          # signs each request (HMAC-SHA256)
    HUIYUAN_SMS_SIGN_NAME = "会员中心"
    HUIYUAN_SMS_TEMPLATES = {"win_back_coupon": "SMS_123456"}   # our template → gateway template code
    HUIYUAN_SMS_TIMEOUT = 5

The request is ``POST`` JSON ``{"phone", "sign_name", "template_code", "params", "out_id"}`` with
headers ``X-Api-Key``, ``X-Timestamp`` (Unix seconds), ``X-Nonce`` and ``X-Signature`` = hex
HMAC-SHA256 of ``"{timestamp}\\n{nonce}\\n{body}"`` under the secret. ``out_id`` is the outbox
message id, so a gateway that deduplicates can. The answer is ``{"code": "OK", "biz_id": ...}`` on
success, else ``{"code": "...", "message": "..."}``.

Error handling: ``OK`` is success; codes in ``PERMANENT_CODES`` (a bad number, a blacklisted
number, a bad template or signature, missing parameters) fail the message at once; a 4xx answer
without a code is permanent too, except 401/403 (our credentials). Everything else (``isp.*``
system errors, rate limits, an empty balance), HTTP 429 and 5xx and no answer at all are retried.

**Delivery receipts**: the gateway posts them to ``/api/v1/messages/sms/receipts``, signed like
our requests (the same four headers, the same HMAC under the account's secret, the API key naming
the account; ``receipt_signature_valid`` also refuses a timestamp more than
``HUIYUAN_SMS_RECEIPT_MAX_AGE`` seconds (300) away). The body is a JSON list of receipts
(Aliyun's ``SmsReport``): ``{"out_id", "biz_id", "success", "err_code", "err_msg", "report_time"}``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time

from campaigns.channels.base import (
    BaseChannel,
    PermanentChannelError,
    RetryableChannelError,
    SendResult,
    TransportError,
)
from campaigns.models import OutboxMessage

PERMANENT_CODES = frozenset(
    {
        "isv.MOBILE_NUMBER_ILLEGAL",
        "isv.MOBILE_COUNT_OVER_LIMIT",
        "isv.BLACK_KEY_CONTROL_LIMIT",
        "isv.SMS_TEMPLATE_ILLEGAL",
        "isv.SMS_SIGNATURE_ILLEGAL",
        "isv.SMS_SIGN_ILLEGAL",
        "isv.TEMPLATE_MISSING_PARAMETERS",
        "isv.TEMPLATE_PARAMS_ILLEGAL",
        "isv.PARAM_LENGTH_LIMIT",
        "isv.INVALID_PARAMETERS",
        "isv.DENY_IP_RANGE",
    }
)


def sign(secret: str, timestamp: str, nonce: str, body: bytes) -> str:
    message = f"{timestamp}\n{nonce}\n".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class SmsChannel(BaseChannel):
    name = "sms"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.url = self.option("url", "HUIYUAN_SMS_URL", "")
        self.api_key = self.option("api_key", "HUIYUAN_SMS_API_KEY", "")
        self.api_secret = self.option("api_secret", "HUIYUAN_SMS_API_SECRET", "")
        self.sign_name = self.option("sign_name", "HUIYUAN_SMS_SIGN_NAME", "")
        self.templates = self.option("templates", "HUIYUAN_SMS_TEMPLATES", {}) or {}
        self.timeout = float(self.option("timeout", "HUIYUAN_SMS_TIMEOUT", 5))
        self.receipt_max_age = int(self.option("receipt_max_age", "HUIYUAN_SMS_RECEIPT_MAX_AGE", 300))
        self.permanent_codes = frozenset(self.option("permanent_codes", "HUIYUAN_SMS_PERMANENT_CODES", PERMANENT_CODES))

    def receipt_signature_valid(self, *, headers, body: bytes, now: float | None = None) -> bool:
        """Whether a receipt was signed with this account's secret, recently."""
        if not self.api_key or not self.api_secret or headers.get("X-Api-Key", "") != self.api_key:
            return False
        timestamp, nonce = headers.get("X-Timestamp", ""), headers.get("X-Nonce", "")
        try:
            age = abs((now or time.time()) - int(timestamp))
        except ValueError:
            return False
        if age > self.receipt_max_age or not nonce:
            return False
        expected = sign(self.api_secret, timestamp, nonce, body)
        return hmac.compare_digest(expected, headers.get("X-Signature", "").lower())

    def build_body(self, message: OutboxMessage) -> dict:
        mobile = message.member.mobile
        if not mobile:
            raise PermanentChannelError("the member has no mobile number", code="no_mobile")
        payload = message.payload or {}
        template_code = payload.get("sms_template_code") or self.templates.get(message.template)
        if not template_code:
            raise PermanentChannelError(f"no SMS template configured for {message.template!r}", code="no_template")
        params = payload.get("sms_params")
        if params is None:
            params = {k: v for k, v in payload.items() if isinstance(v, str | int | float) and not isinstance(v, bool)}
        return {
            "phone": mobile,
            "sign_name": self.sign_name,
            "template_code": template_code,
            "params": {key: str(value) for key, value in params.items()},
            "out_id": str(message.pk),
        }

    def send(self, message: OutboxMessage) -> SendResult:
        if not self.url or not self.api_key or not self.api_secret:
            raise RetryableChannelError("the SMS gateway is not configured", code="not_configured")
        body = json.dumps(self.build_body(message), ensure_ascii=False, separators=(",", ":")).encode()
        timestamp, nonce = str(int(time.time())), secrets.token_hex(8)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Accept": "application/json",
            "X-Api-Key": self.api_key,
            "X-Timestamp": timestamp,
            "X-Nonce": nonce,
            "X-Signature": sign(self.api_secret, timestamp, nonce, body),
        }
        try:
            response = self.transport.request("POST", self.url, body=body, headers=headers, timeout=self.timeout)
        except TransportError as exc:
            raise RetryableChannelError(f"SMS gateway: no answer ({exc})", code="transport") from exc
        if response.status == 429 or response.status >= 500:
            raise RetryableChannelError(f"SMS gateway: HTTP {response.status}", code=f"http_{response.status}")
        try:
            data = response.json()
        except ValueError as exc:
            raise RetryableChannelError("SMS gateway: not JSON", code="bad_json") from exc
        if not isinstance(data, dict):
            raise RetryableChannelError("SMS gateway: unexpected answer", code="bad_json")
        code = str(data.get("code") or "")
        if response.status == 200 and code == "OK":
            return SendResult(provider_message_id=str(data.get("biz_id") or data.get("request_id") or ""))
        text = f"SMS gateway {code or response.status}: {data.get('message', '')}".strip()
        # A 4xx without a code is a request the gateway cannot take (permanent), except 401/403: those
        # are our credentials, fixed by an operator, after which the retries go through.
        bad_request = 400 <= response.status < 500 and response.status not in (401, 403) and not code
        if code in self.permanent_codes or bad_request:
            raise PermanentChannelError(text, code=code or response.status)
        raise RetryableChannelError(text, code=code or response.status)
