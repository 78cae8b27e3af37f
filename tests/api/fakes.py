"""Fakes for the outside world of the API tests: the WeChat and WeChat Pay HTTP transport, keys."""

import json
import secrets
import time
import urllib.parse
from functools import cache

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from members import wechatpay
from members.wechat import HttpRequest, HttpResponse

API_V3_KEY = "0123456789abcdef0123456789abcdef"  # 32 bytes
PLATFORM_KEY_ID = "PUB_KEY_ID_TEST"
MCH_ID = "1900000001"
APP_ID = "wx-test-app"


@cache
def rsa_key(name: str) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(name: str) -> str:
    return (
        rsa_key(name)
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )


def public_pem(name: str) -> str:
    return (
        rsa_key(name)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def wechatpay_headers(body: bytes, *, key: str = "platform", timestamp: int | None = None) -> dict[str, str]:
    """The headers WeChat Pay sends with ``body``, signed with the (test) platform key."""
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    nonce = secrets.token_hex(16)
    signature = wechatpay.sign(rsa_key(key), wechatpay.signed_message(timestamp, nonce, body))
    return {
        "Wechatpay-Timestamp": timestamp,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": signature,
        "Wechatpay-Serial": PLATFORM_KEY_ID,
        "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
    }


def payment_notification(*, out_trade_no: str, transaction_id: str, total: int, state: str = "SUCCESS") -> bytes:
    transaction = {
        "mchid": MCH_ID,
        "appid": APP_ID,
        "out_trade_no": out_trade_no,
        "transaction_id": transaction_id,
        "trade_type": "JSAPI",
        "trade_state": state,
        "success_time": "2026-01-05T10:34:56+08:00",
        "payer": {"openid": "o-payer"},
        "amount": {"total": total, "payer_total": total, "currency": "CNY", "payer_currency": "CNY"},
    }
    return json.dumps(
        {
            "id": secrets.token_hex(8),
            "create_time": "2026-01-05T10:34:57+08:00",
            "resource_type": "encrypt-resource",
            "event_type": "TRANSACTION.SUCCESS",
            "summary": "支付成功",
            "resource": wechatpay.encrypt_resource(transaction, api_v3_key=API_V3_KEY),
        }
    ).encode()


class FakeTransport:
    """Answers by URL path from ``routes``: ``path -> callable(request, query) -> (status, body, headers)``."""

    def __init__(self):
        self.routes = {}
        self.calls: list[HttpRequest] = []

    def reset(self):
        self.routes.clear()
        self.calls.clear()

    def route(self, path: str, *answers):
        """Answer ``path`` with ``answers`` in turn (the last one repeats); an answer is a dict or a callable."""
        queue = list(answers)

        def handler(request, query):
            answer = queue.pop(0) if len(queue) > 1 else queue[0]
            return answer(request, query) if callable(answer) else (200, answer, {})

        self.routes[path] = handler

    def __call__(self, request: HttpRequest) -> HttpResponse:
        self.calls.append(request)
        parsed = urllib.parse.urlsplit(request.url)
        handler = self.routes.get(parsed.path)
        if handler is None:
            raise AssertionError(f"unexpected call to {request.url}")
        status, body, headers = handler(request, dict(urllib.parse.parse_qsl(parsed.query)))
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return HttpResponse(status=status, headers=headers, body=raw)

    def calls_to(self, path: str) -> list[HttpRequest]:
        return [call for call in self.calls if urllib.parse.urlsplit(call.url).path == path]


transport = FakeTransport()
