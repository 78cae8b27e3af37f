"""What every channel shares: the result and error types, the base class, and the HTTP transport.

A channel sends one ``OutboxMessage`` and either returns a ``SendResult`` or raises
``RetryableChannelError`` (try again later: a timeout, a busy provider) or
``PermanentChannelError`` (retrying cannot help: the member refused, has no openid, the template
is wrong). Anything else a channel raises is treated as retryable by the outbox.

The clients talk HTTP through a ``Transport`` — by default ``UrllibTransport`` (the standard
library, no extra dependency). Setting ``HUIYUAN_HTTP_TRANSPORT`` (a dotted path to a class or
factory, or an object with ``request``) replaces it everywhere; tests put a fake there, so our
clients run for real against recorded provider answers.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.conf import settings
from django.utils.module_loading import import_string

from campaigns.models import OutboxMessage

logger = logging.getLogger(__name__)

DEFAULT_TRANSPORT = "campaigns.channels.base.UrllibTransport"


class ChannelError(Exception):
    """A message could not be sent. ``retryable`` says whether trying later may help."""

    retryable = True

    def __init__(self, message: str, *, code: str | int | None = None):
        super().__init__(message)
        self.code = code


class RetryableChannelError(ChannelError):
    retryable = True


class PermanentChannelError(ChannelError):
    retryable = False


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str = ""
    detail: dict = field(default_factory=dict)


# --- HTTP transport -----------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes
    headers: dict = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8") or "null")


class TransportError(Exception):
    """The request never got an answer: DNS, connection refused, TLS, timeout."""


class Transport(Protocol):
    def request(
        self, method: str, url: str, *, body: bytes | None = None, headers: dict | None = None, timeout: float
    ) -> HttpResponse: ...


class UrllibTransport:
    """HTTP(S) with ``urllib.request``. An HTTP error status is an answer (returned, not raised);
    no answer at all raises ``TransportError``."""

    def request(
        self, method: str, url: str, *, body: bytes | None = None, headers: dict | None = None, timeout: float
    ) -> HttpResponse:
        if not url.startswith(("https://", "http://")):
            raise TransportError(f"refusing to open {url!r}: only http(s) URLs")
        request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                return HttpResponse(status=response.status, body=response.read(), headers=dict(response.headers))
        except urllib.error.HTTPError as exc:
            return HttpResponse(status=exc.code, body=exc.read() or b"", headers=dict(exc.headers or {}))
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise TransportError(str(getattr(exc, "reason", exc))) from exc


def default_transport() -> Transport:
    """The transport of ``HUIYUAN_HTTP_TRANSPORT``: a dotted path (class or factory) or an object."""
    configured = getattr(settings, "HUIYUAN_HTTP_TRANSPORT", DEFAULT_TRANSPORT)
    if isinstance(configured, str):
        configured = import_string(configured)
        return configured()
    return configured


def json_request(
    transport: Transport,
    method: str,
    url: str,
    *,
    payload: dict | None = None,
    headers: dict | None = None,
    timeout: float,
) -> HttpResponse:
    body = None if payload is None else json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    all_headers = {"Accept": "application/json", **(headers or {})}
    if body is not None:
        all_headers.setdefault("Content-Type", "application/json; charset=utf-8")
    return transport.request(method, url, body=body, headers=all_headers, timeout=timeout)


# --- channels -----------------------------------------------------------------------------------


class BaseChannel:
    """Subclass and implement ``send``. ``options`` come from the channel's settings entry."""

    name = "base"

    def __init__(self, *, transport: Transport | None = None, **options):
        self._transport = transport
        self.options = options

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            self._transport = default_transport()
        return self._transport

    def option(self, key: str, setting: str, default=None):
        """An option of this channel's settings entry, else the global setting, else ``default``."""
        if key in self.options:
            return self.options[key]
        return getattr(settings, setting, default)

    def send(self, message: OutboxMessage) -> SendResult:
        raise NotImplementedError
