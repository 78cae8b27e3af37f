"""WeChat Pay API v3: signing, verifying, decrypting — and the one call we make (a JSAPI prepay).

Signatures are RSA PKCS#1 v1.5 with SHA-256 (``WECHATPAY2-SHA256-RSA2048``):

- WeChat Pay signs every callback (and every response) over ``timestamp\\nnonce\\nbody\\n`` with its
  key; the ``Wechatpay-Timestamp``, ``Wechatpay-Nonce``, ``Wechatpay-Signature`` and
  ``Wechatpay-Serial`` headers carry the parts. ``verify_signed_message`` checks them against
  ``settings.WECHATPAY_PUBLIC_KEY`` (id ``WECHATPAY_PUBLIC_KEY_ID``) and refuses a timestamp older
  or newer than ``WECHATPAY_MAX_CLOCK_SKEW`` seconds.
- The merchant signs requests over ``METHOD\\nURL\\ntimestamp\\nnonce\\nbody\\n`` and the mini-program's
  pay parameters over ``appId\\ntimeStamp\\nnonceStr\\npackage\\n`` with its own private key.

A callback's ``resource`` is AES-256-GCM encrypted with the merchant's API v3 key
(``decrypt_resource``). Uses the ``cryptography`` package.
"""

import base64
import binascii
import json
import secrets
import time
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

from members.wechat import HttpRequest, Transport, WeChatUnavailable, default_transport

AUTH_SCHEME = "WECHATPAY2-SHA256-RSA2048"
JSAPI_PATH = "/v3/pay/transactions/jsapi"


class InvalidSignature(Exception):
    """A message that claims to come from WeChat Pay is not signed by its key (or is too old)."""


class InvalidResource(Exception):
    """An encrypted resource cannot be decrypted with our API v3 key, or is not JSON."""


# --- keys ---


@lru_cache(maxsize=8)
def load_public_key(pem: str) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the WeChat Pay public key must be an RSA key")
    return key


@lru_cache(maxsize=8)
def load_private_key(pem: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the merchant key must be an RSA key")
    return key


def sign(private_key: rsa.RSAPrivateKey, message: bytes) -> str:
    """Base64 of the RSA-SHA256 (PKCS#1 v1.5) signature of ``message``."""
    return base64.b64encode(private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def signed_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """What WeChat Pay signs in a callback or a response: ``timestamp\\nnonce\\nbody\\n``."""
    return timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body + b"\n"


def verify_signature(public_key: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
        public_key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except (_CryptoInvalidSignature, binascii.Error, ValueError):
        return False
    return True


# --- callbacks and responses from WeChat Pay ---


def verify_signed_message(*, headers: Mapping[str, str], body: bytes, now: float | None = None) -> None:
    """Raise ``InvalidSignature`` unless ``body`` with these headers was signed by WeChat Pay just now."""
    pem = settings.WECHATPAY_PUBLIC_KEY
    if not pem:
        raise InvalidSignature("no WeChat Pay public key is configured")
    timestamp = headers.get("Wechatpay-Timestamp", "")
    nonce = headers.get("Wechatpay-Nonce", "")
    signature = headers.get("Wechatpay-Signature", "")
    serial = headers.get("Wechatpay-Serial", "")
    if not (timestamp and nonce and signature):
        raise InvalidSignature("the Wechatpay-Timestamp, -Nonce and -Signature headers are required")
    if settings.WECHATPAY_PUBLIC_KEY_ID and serial != settings.WECHATPAY_PUBLIC_KEY_ID:
        raise InvalidSignature("signed with a key we do not know")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise InvalidSignature("the timestamp is not a number") from None
    now = time.time() if now is None else now
    if abs(now - sent_at) > settings.WECHATPAY_MAX_CLOCK_SKEW:
        raise InvalidSignature("the timestamp is too far from now")
    if not verify_signature(load_public_key(pem), signed_message(timestamp, nonce, body), signature):
        raise InvalidSignature("the signature does not match")


def decrypt_resource(resource: Mapping, *, api_v3_key: str | None = None) -> dict:
    """Decrypt a callback's ``resource`` (``AEAD_AES_256_GCM``) into the document it carries."""
    key = (api_v3_key if api_v3_key is not None else settings.WECHATPAY_API_V3_KEY).encode()
    if len(key) != 32:
        raise InvalidResource("the API v3 key must be 32 bytes")
    if not isinstance(resource, Mapping) or resource.get("algorithm") != "AEAD_AES_256_GCM":
        raise InvalidResource("unsupported resource algorithm")
    try:
        nonce = str(resource["nonce"]).encode()
        ciphertext = base64.b64decode(str(resource["ciphertext"]), validate=True)
        associated = str(resource.get("associated_data") or "").encode()
        plain = AESGCM(key).decrypt(nonce, ciphertext, associated)
        document = json.loads(plain.decode("utf-8"))
    except (KeyError, binascii.Error, InvalidTag, ValueError, UnicodeDecodeError) as exc:
        raise InvalidResource("the resource cannot be decrypted") from exc
    if not isinstance(document, dict):
        raise InvalidResource("the resource is not a JSON object")
    return document


def encrypt_resource(document: dict, *, api_v3_key: str, associated_data: str = "transaction") -> dict:
    """The inverse of ``decrypt_resource``: what WeChat Pay sends (for tests and local simulation)."""
    nonce = secrets.token_hex(6)
    ciphertext = AESGCM(api_v3_key.encode()).encrypt(
        nonce.encode(), json.dumps(document).encode(), associated_data.encode()
    )
    return {
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": base64.b64encode(ciphertext).decode(),
        "associated_data": associated_data,
        "original_type": "transaction",
        "nonce": nonce,
    }


# --- the merchant's side ---


def is_configured() -> bool:
    return bool(
        settings.WECHATPAY_MCH_ID
        and settings.WECHATPAY_APP_ID
        and settings.WECHATPAY_MERCHANT_PRIVATE_KEY
        and settings.WECHATPAY_MERCHANT_SERIAL_NO
        and settings.WECHATPAY_PUBLIC_KEY
        and settings.WECHATPAY_NOTIFY_URL
    )


class WeChatPayClient:
    def __init__(self, *, transport: Transport | None = None):
        self.transport = transport or default_transport()
        self.base_url = settings.WECHATPAY_API_BASE.rstrip("/")

    def _authorization(self, method: str, path: str, body: bytes) -> str:
        timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
        message = f"{method}\n{path}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"
        signature = sign(load_private_key(settings.WECHATPAY_MERCHANT_PRIVATE_KEY), message)
        return (
            f'{AUTH_SCHEME} mchid="{settings.WECHATPAY_MCH_ID}",nonce_str="{nonce}",signature="{signature}",'
            f'timestamp="{timestamp}",serial_no="{settings.WECHATPAY_MERCHANT_SERIAL_NO}"'
        )

    def jsapi_prepay(
        self, *, out_trade_no: str, description: str, amount_cents: int, openid: str, expires_at: datetime
    ) -> str:
        """Open a JSAPI transaction and return its ``prepay_id``. The response must be signed by WeChat Pay."""
        body = json.dumps(
            {
                "appid": settings.WECHATPAY_APP_ID,
                "mchid": settings.WECHATPAY_MCH_ID,
                "description": description[:127],
                "out_trade_no": out_trade_no,
                "time_expire": expires_at.isoformat(timespec="seconds"),
                "notify_url": settings.WECHATPAY_NOTIFY_URL,
                "amount": {"total": amount_cents, "currency": "CNY"},
                "payer": {"openid": openid},
            },
            ensure_ascii=False,
        ).encode()
        response = self.transport(
            HttpRequest(
                method="POST",
                url=self.base_url + JSAPI_PATH,
                headers={
                    "Authorization": self._authorization("POST", JSAPI_PATH, body),
                    "Content-Type": "application/json",
                    "Accept": "application/json",
                },
                body=body,
                timeout=settings.WECHAT_TIMEOUT,
            )
        )
        if response.status >= 300:
            raise WeChatUnavailable(f"WeChat Pay answered HTTP {response.status} to the prepay request")
        headers = {name.lower(): value for name, value in response.headers.items()}
        try:
            verify_signed_message(headers=_LowerCaseHeaders(headers), body=response.body)
        except InvalidSignature as exc:
            raise WeChatUnavailable(f"the prepay answer is not signed by WeChat Pay: {exc}") from exc
        try:
            prepay_id = json.loads(response.body)["prepay_id"]
        except (ValueError, KeyError, TypeError):
            raise WeChatUnavailable("WeChat Pay answered the prepay request without a prepay_id") from None
        return str(prepay_id)


def jsapi_pay_params(prepay_id: str) -> dict[str, str]:
    """What ``wx.requestPayment`` needs, signed with the merchant's key."""
    app_id, timestamp, nonce = settings.WECHATPAY_APP_ID, str(int(time.time())), secrets.token_hex(16)
    package = f"prepay_id={prepay_id}"
    message = f"{app_id}\n{timestamp}\n{nonce}\n{package}\n".encode()
    return {
        "app_id": app_id,
        "time_stamp": timestamp,
        "nonce_str": nonce,
        "package": package,
        "sign_type": "RSA",
        "pay_sign": sign(load_private_key(settings.WECHATPAY_MERCHANT_PRIVATE_KEY), message),
    }


class _LowerCaseHeaders(dict):
    def get(self, name, default=None):
        return super().get(name.lower(), default)
