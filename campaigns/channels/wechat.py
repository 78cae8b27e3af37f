"""WeChat mini-program subscription messages (订阅消息).

API: ``POST https://api.weixin.qq.com/cgi-bin/message/subscribe/send?access_token=TOKEN`` with
``touser`` (the member's openid), ``template_id``, ``page``, ``miniprogram_state``, ``lang`` and
``data`` (``{"thing1": {"value": "..."}}``). The access token comes from
``GET /cgi-bin/token?grant_type=client_credential&appid=APPID&secret=SECRET`` and is kept by
``members.wechat.cached_access_token`` — one cache entry per app, shared with the login client and
by every worker when the cache is Redis — until ``token_margin`` seconds before its ``expires_in``.

Settings (or the channel's ``OPTIONS``: ``appid``, ``secret``, ``templates``...)::

    WECHAT_APP_ID, WECHAT_APP_SECRET, WECHAT_API_BASE, WECHAT_TIMEOUT   # the mini-program's, shared
                                                                          # with members.wechat
    HUIYUAN_WECHAT_TEMPLATES = {
        # our template name → WeChat template id, page, and data key → payload key
        "win_back_coupon": {"template_id": "AbC...", "page": "pages/coupons/index",
                            "data": {"thing1": "title", "time2": "expires_on"}},
    }
    HUIYUAN_WECHAT_MINIPROGRAM_STATE = "formal"   # or "trial" / "developer"

The page gets ``message_id=<outbox id>`` added to its query, so the mini-program can report the
open (``POST /api/v1/me/messages/{id}/opened``). A message may also carry the WeChat fields
itself: ``payload["wechat"] = {"template_id": ...,
"page": ..., "data": {"thing1": "..."}}``.

Error codes: 40001/40014/42001 (invalid or expired token) → refresh the token once and retry;
43101 (the user refused or has no subscription left), 40003 (bad openid), 40037 (bad template),
41030 (bad page) and 47003 (bad data) are permanent; -1 (system busy), 45009 (daily quota) and
everything else are retryable.

**Send results** come back through the mini-program's message push (消息推送): configure its URL as
``/api/v1/messages/wechat/push``, its token as ``HUIYUAN_WECHAT_PUSH_TOKEN`` (or the channel's
``push_token`` option), plain-text mode (明文模式), JSON or XML. WeChat signs every call with
``signature`` = SHA-1 of the sorted ``[token, timestamp, nonce]`` (``push_signature_valid``, which
also refuses a timestamp more than ``HUIYUAN_WECHAT_PUSH_MAX_AGE`` seconds (300) away); the
``subscribe_msg_sent_event`` lists ``MsgID`` (the ``msgid`` the send answered), ``ErrorCode`` and
``ErrorStatus`` (``parse_sent_events``): 0 delivered, anything else not delivered.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import urlencode

from campaigns.channels.base import (
    BaseChannel,
    PermanentChannelError,
    RetryableChannelError,
    SendResult,
    TransportError,
    json_request,
)
from campaigns.models import OutboxMessage
from members.wechat import cached_access_token

logger = logging.getLogger(__name__)

TOKEN_ERRORS = frozenset({40001, 40014, 42001})
PERMANENT_ERRORS = {
    40003: "invalid openid",
    40037: "invalid template_id",
    41030: "invalid page",
    43101: "the user refused the subscription message",
    47003: "invalid template data",
}


class WeChatSubscribeChannel(BaseChannel):
    name = "wechat"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # The mini-program's credentials are the ones members log in with (``WECHAT_APP_ID``...)
        # unless the channel is given others.
        self.appid = self.option("appid", "WECHAT_APP_ID", "")
        self.secret = self.option("secret", "WECHAT_APP_SECRET", "")
        self.api_base = self.option("api_base", "WECHAT_API_BASE", "https://api.weixin.qq.com").rstrip("/")
        self.timeout = float(self.option("timeout", "WECHAT_TIMEOUT", 5))
        self.templates = self.option("templates", "HUIYUAN_WECHAT_TEMPLATES", {}) or {}
        self.miniprogram_state = self.option("miniprogram_state", "HUIYUAN_WECHAT_MINIPROGRAM_STATE", "formal")
        self.lang = self.option("lang", "HUIYUAN_WECHAT_LANG", "zh_CN")
        self.token_margin = int(self.option("token_margin", "HUIYUAN_WECHAT_TOKEN_MARGIN", 300))
        self.push_token = self.option("push_token", "HUIYUAN_WECHAT_PUSH_TOKEN", "")
        self.push_max_age = int(self.option("push_max_age", "HUIYUAN_WECHAT_PUSH_MAX_AGE", 300))

    # --- the message push (send results) ---

    def push_signature_valid(self, *, signature: str, timestamp: str, nonce: str, now: float | None = None) -> bool:
        """Whether WeChat signed this push with our token, recently (False when no token is
        configured). In plain-text mode the signature does not cover the body, so the timestamp's
        age (``push_max_age`` seconds) bounds how long a captured signed address could be replayed."""
        if not self.push_token or not signature or not timestamp or not nonce:
            return False
        try:
            if abs((now or time.time()) - int(timestamp)) > self.push_max_age:
                return False
        except ValueError:
            return False
        expected = hashlib.sha1("".join(sorted([self.push_token, timestamp, nonce])).encode()).hexdigest()  # noqa: S324
        return hmac.compare_digest(expected, signature.lower())

    # --- access token ---

    def access_token(self, *, stale: str | None = None) -> str:
        """The cached token, or a new one (``cached_access_token``); ``stale`` is one WeChat just refused."""
        return cached_access_token(
            app_id=self.appid, fetch=self._fetch_access_token, stale=stale, margin=self.token_margin
        )

    def _fetch_access_token(self) -> tuple[str, int]:
        if not self.appid or not self.secret:
            raise RetryableChannelError("WeChat appid/secret are not configured", code="not_configured")
        query = urlencode({"grant_type": "client_credential", "appid": self.appid, "secret": self.secret})
        data = self._call("GET", f"{self.api_base}/cgi-bin/token?{query}", None, what="access token")
        token = data.get("access_token")
        if not token:
            # Configuration problems (bad appid/secret, IP not whitelisted) are not this message's
            # fault: retry, so messages go out once an operator fixes the settings.
            raise RetryableChannelError(
                f"WeChat access token: {data.get('errcode')} {data.get('errmsg', '')}".strip(),
                code=data.get("errcode"),
            )
        return token, int(data.get("expires_in") or 7200)

    # --- sending ---

    def build_body(self, message: OutboxMessage) -> dict:
        openid = message.member.openid
        if not openid:
            raise PermanentChannelError("the member has no WeChat openid", code="no_openid")
        payload = message.payload or {}
        inline = payload.get("wechat") or {}
        config = self.templates.get(message.template) or {}
        template_id = inline.get("template_id") or config.get("template_id")
        if not template_id:
            raise PermanentChannelError(f"no WeChat template configured for {message.template!r}", code="no_template")
        if "data" in inline:
            values = dict(inline["data"])
        else:
            mapping = config.get("data") or {}
            missing = [source for source in mapping.values() if payload.get(source) in (None, "")]
            if missing:
                raise PermanentChannelError(f"payload lacks {', '.join(missing)}", code="missing_data")
            values = {key: payload[source] for key, source in mapping.items()}
        body = {
            "touser": openid,
            "template_id": template_id,
            "miniprogram_state": self.miniprogram_state,
            "lang": self.lang,
            "data": {key: {"value": str(value)} for key, value in values.items()},
        }
        page = inline.get("page") or config.get("page")
        if page:
            # The page opened from the message learns which message it was, and reports the open
            # (``POST /api/v1/me/messages/{id}/opened``).
            body["page"] = f"{page}{'&' if '?' in page else '?'}message_id={message.pk}"
        return body

    def send(self, message: OutboxMessage) -> SendResult:
        body = self.build_body(message)
        token = self.access_token()
        data = self._send(body, token)
        errcode = int(data.get("errcode") or 0)
        if errcode in TOKEN_ERRORS:
            logger.info("WeChat refused the access token (%s); fetching a new one", errcode)
            data = self._send(body, self.access_token(stale=token))
            errcode = int(data.get("errcode") or 0)
        if errcode == 0:
            return SendResult(provider_message_id=str(data.get("msgid") or ""), detail={"errcode": 0})
        errmsg = data.get("errmsg", "")
        if errcode in PERMANENT_ERRORS:
            raise PermanentChannelError(f"WeChat {errcode}: {PERMANENT_ERRORS[errcode]} ({errmsg})", code=errcode)
        raise RetryableChannelError(f"WeChat {errcode}: {errmsg}", code=errcode)

    def _send(self, body: dict, token: str) -> dict:
        url = f"{self.api_base}/cgi-bin/message/subscribe/send?{urlencode({'access_token': token})}"
        return self._call("POST", url, body, what="subscribe/send")

    def _call(self, method: str, url: str, body: dict | None, *, what: str) -> dict:
        try:
            response = json_request(self.transport, method, url, payload=body, timeout=self.timeout)
        except TransportError as exc:
            raise RetryableChannelError(f"WeChat {what}: no answer ({exc})", code="transport") from exc
        if response.status != 200:
            raise RetryableChannelError(f"WeChat {what}: HTTP {response.status}", code=f"http_{response.status}")
        try:
            data = response.json()
        except ValueError as exc:
            raise RetryableChannelError(f"WeChat {what}: not JSON", code="bad_json") from exc
        if not isinstance(data, dict):
            raise RetryableChannelError(f"WeChat {what}: unexpected answer", code="bad_json")
        return data


# --- send results from the message push ------------------------------------------------------------


class BadPush(ValueError):
    """The push body is neither JSON nor plain XML."""


@dataclass(frozen=True)
class SentEvent:
    msg_id: str
    error_code: int
    error_status: str

    @property
    def delivered(self) -> bool:
        return self.error_code == 0


def _xml_document(body: bytes) -> dict:
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise BadPush("XML with a DOCTYPE is refused")
    try:
        root = ET.fromstring(body)  # noqa: S314 (no DOCTYPE, so no entities to expand)
    except ET.ParseError as exc:
        raise BadPush(str(exc)) from exc
    event = root.find("SubscribeMsgSentEvent")
    lists = [] if event is None else event.findall("List")
    items = [{child.tag: (child.text or "") for child in item} for item in lists]
    return {
        "MsgType": root.findtext("MsgType", ""),
        "Event": root.findtext("Event", ""),
        "SubscribeMsgSentEvent": {"List": items},
    }


def parse_sent_events(body: bytes) -> list[SentEvent]:
    """The send results in a push body (JSON or XML); an empty list for any other event."""
    text = body.strip()
    if text.startswith(b"<"):
        document = _xml_document(text)
    else:
        try:
            document = json.loads(text.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadPush("not JSON") from exc
    if not isinstance(document, dict) or document.get("Event") != "subscribe_msg_sent_event":
        return []
    items = (document.get("SubscribeMsgSentEvent") or {}).get("List") or []
    if isinstance(items, dict):
        items = [items]
    events = []
    for item in items:
        if not isinstance(item, dict) or not str(item.get("MsgID") or "").strip():
            continue
        try:
            code = int(str(item.get("ErrorCode", "")).strip() or 0)
        except ValueError:
            code = -1
        events.append(SentEvent(str(item["MsgID"]).strip()[:100], code, str(item.get("ErrorStatus") or "")[:200]))
    return events
