"""A small client for the WeChat mini-program server API: ``code2session``, access tokens, phone numbers.

The HTTP transport is a plain function ``transport(HttpRequest) -> HttpResponse``; the default one
uses ``urllib.request``, and tests pass a fake one (``settings.WECHAT_TRANSPORT`` names the
transport by dotted path). The ``session_key`` that ``code2session`` returns stays on the server:
we do not store it, log it or send it to a client.

WeChat answers errors with HTTP 200 and ``{"errcode": ..., "errmsg": ...}``: an ``errcode`` other
than 0 raises ``WeChatError``. Codes that mean the user's ``code`` is bad raise
``WeChatInvalidCode``; a network failure or a busy server raises ``WeChatUnavailable``.
"""

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)

ACCESS_TOKEN_CACHE_KEY = "wechat:access_token:{app_id}"  # noqa: S105 (a cache key, not a secret)
# Refresh an access token this many seconds before WeChat says it expires.
ACCESS_TOKEN_MARGIN = 300
# The user's code is invalid, used or expired; the user is blocked or high-risk.
INVALID_CODE_ERRCODES = frozenset({40029, 40163, 40226})
# "System busy" and "called too often": try again later.
BUSY_ERRCODES = frozenset({-1, 45011})
# The access token is invalid or expired: fetch a new one and try once more.
STALE_TOKEN_ERRCODES = frozenset({40001, 40014, 42001})


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    timeout: float = 5.0


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes


Transport = Callable[[HttpRequest], HttpResponse]


class WeChatError(Exception):
    """WeChat answered with an error code."""

    def __init__(self, errcode: int, errmsg: str = ""):
        super().__init__(f"WeChat error {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


class WeChatInvalidCode(WeChatError):
    """The ``code`` from the mini-program cannot be used (invalid, used, expired or refused)."""


class WeChatUnavailable(Exception):
    """WeChat could not be reached, or answered something we cannot read."""


def urllib_transport(request: HttpRequest) -> HttpResponse:
    """Send ``request`` with the standard library; HTTP error statuses are returned, not raised."""
    if not request.url.startswith("https://") and not request.url.startswith("http://"):
        raise WeChatUnavailable(f"refusing to call a non-HTTP URL: {request.url!r}")
    http_request = urllib.request.Request(  # noqa: S310 (scheme checked above)
        request.url, data=request.body, headers=request.headers, method=request.method
    )
    try:
        with urllib.request.urlopen(http_request, timeout=request.timeout) as response:  # noqa: S310
            return HttpResponse(status=response.status, headers=dict(response.headers.items()), body=response.read())
    except urllib.error.HTTPError as exc:
        return HttpResponse(status=exc.code, headers=dict(exc.headers.items()), body=exc.read())
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise WeChatUnavailable(str(exc)) from exc


def default_transport() -> Transport:
    return import_string(settings.WECHAT_TRANSPORT)


def cached_access_token(
    *, app_id: str, fetch: Callable[[], tuple[str, int]], stale: str | None = None, margin: int = ACCESS_TOKEN_MARGIN
) -> str:
    """The app's access token from Django's cache, or a new one from ``fetch()`` (token, expires_in).

    One cache entry per app, for every caller (login, phone numbers, subscription messages): a new
    token invalidates the previous one a few minutes later, so two caches for one app would keep
    refreshing each other's tokens away. ``stale`` is a token WeChat just refused: a new one is
    fetched unless another worker has already replaced it in the cache. The entry lives until
    ``margin`` seconds before WeChat says the token expires (at least a minute).
    """
    key = ACCESS_TOKEN_CACHE_KEY.format(app_id=app_id)
    cached = cache.get(key)
    if cached and cached != stale:
        return cached
    token, expires_in = fetch()
    cache.set(key, token, timeout=max(expires_in - margin, 60))
    return token


@dataclass(frozen=True)
class WeChatSession:
    """What ``code2session`` tells us. ``session_key`` never leaves the server (not even in repr)."""

    openid: str
    unionid: str = ""
    session_key: str = field(default="", repr=False)


class WeChatClient:
    def __init__(
        self,
        *,
        app_id: str,
        app_secret: str,
        transport: Transport | None = None,
        base_url: str = "https://api.weixin.qq.com",
        timeout: float = 5.0,
    ):
        self.app_id = app_id
        self.app_secret = app_secret
        self.transport = transport or urllib_transport
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    # --- the calls ---

    def code2session(self, code: str) -> WeChatSession:
        """Exchange a ``wx.login()`` code for the user's openid (``/sns/jscode2session``)."""
        data = self._call(
            "GET",
            "/sns/jscode2session",
            params={
                "appid": self.app_id,
                "secret": self.app_secret,
                "js_code": code,
                "grant_type": "authorization_code",
            },
        )
        openid = data.get("openid")
        if not isinstance(openid, str) or not openid:
            raise WeChatUnavailable("code2session answered without an openid")
        return WeChatSession(openid=openid, unionid=data.get("unionid") or "", session_key=data.get("session_key", ""))

    def access_token(self, *, stale: str | None = None) -> str:
        """The app's access token (``cached_access_token``); ``stale`` is one WeChat just refused."""
        return cached_access_token(app_id=self.app_id, fetch=self._fetch_access_token, stale=stale)

    def _fetch_access_token(self) -> tuple[str, int]:
        data = self._call(
            "GET",
            "/cgi-bin/token",
            params={"grant_type": "client_credential", "appid": self.app_id, "secret": self.app_secret},
        )
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise WeChatUnavailable("the token endpoint answered without an access token")
        return token, int(data.get("expires_in") or 7200)

    def phone_number(self, code: str) -> str:
        """The verified phone number behind a ``getPhoneNumber`` code (``/wxa/business/getuserphonenumber``).

        Returns the number without country code as WeChat gives it (``purePhoneNumber``), with a
        ``+<countryCode>`` in front when the country is not China.
        """
        body = json.dumps({"code": code}).encode()
        token = None
        for attempt in range(2):
            token = self.access_token(stale=token)
            try:
                data = self._call("POST", "/wxa/business/getuserphonenumber", params={"access_token": token}, body=body)
            except WeChatError as exc:
                if exc.errcode in STALE_TOKEN_ERRCODES and attempt == 0:
                    continue
                raise
            info = data.get("phone_info") or {}
            number = info.get("purePhoneNumber") or info.get("phoneNumber")
            if not isinstance(number, str) or not number:
                raise WeChatUnavailable("getuserphonenumber answered without a number")
            country = str(info.get("countryCode") or "86")
            return number if country == "86" else f"+{country}{number}"
        raise AssertionError("unreachable")

    # --- plumbing ---

    def _call(self, method: str, path: str, *, params: dict[str, str], body: bytes | None = None) -> dict:
        url = f"{self.base_url}{path}?{urllib.parse.urlencode(params)}"
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        response = self.transport(HttpRequest(method=method, url=url, headers=headers, body=body, timeout=self.timeout))
        if response.status >= 500:
            raise WeChatUnavailable(f"WeChat answered HTTP {response.status} for {path}")
        try:
            data = json.loads(response.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise WeChatUnavailable(f"WeChat answered something that is not JSON for {path}") from None
        if not isinstance(data, dict):
            raise WeChatUnavailable(f"WeChat answered an unexpected document for {path}")
        errcode = data.get("errcode") or 0
        if errcode:
            errmsg = str(data.get("errmsg") or "")
            logger.warning("WeChat %s answered errcode %s: %s", path, errcode, errmsg)
            if errcode in BUSY_ERRCODES:
                raise WeChatUnavailable(f"WeChat is busy ({path})")
            if errcode in INVALID_CODE_ERRCODES:
                raise WeChatInvalidCode(errcode, errmsg)
            raise WeChatError(errcode, errmsg)
        if response.status >= 400:
            raise WeChatUnavailable(f"WeChat answered HTTP {response.status} for {path}")
        return data


def get_client() -> WeChatClient:
    """The client for the configured mini-program."""
    return WeChatClient(
        app_id=settings.WECHAT_APP_ID,
        app_secret=settings.WECHAT_APP_SECRET,
        transport=default_transport(),
        base_url=settings.WECHAT_API_BASE,
        timeout=settings.WECHAT_TIMEOUT,
    )
