"""Message engagement: delivered, opened and clicked, recorded on the outbox message itself.

**Delivered** is what a channel reports after the send: WeChat's ``subscribe_msg_sent_event``
(``MsgID`` = our ``provider_message_id``) and the SMS gateway's delivery receipts (``out_id`` =
our message id). ``message_delivery_record`` marks a sent message delivered (``delivered_at``) or,
when the provider says it never arrived (the member refused, a dead number), ``failed`` with the
reason — a message already reported delivered stays delivered.

**Opened / clicked**: a message's links are sent as *tracked links* (``payload_with_tracked_links``,
applied to the copy the channel sends; the stored payload keeps the original). A tracked link is
``/t/<token>`` where the token is ``django.core.signing`` over ``[message id, target URL]`` with a
salt of its own: nothing to store per link, nothing to look up, and the redirect can only go where
the signed token says — a tampered token is not found, never an open redirect.
``message_click_record`` counts the click and, since a click implies an open, the open.

Idempotent the way reports need it: ``first_opened_at``/``first_clicked_at``/``delivered_at`` are
set with ``COALESCE(column, now)`` in one ``UPDATE``, so a repeated callback or a second click
never moves them — the rates count a message once. ``open_count``/``click_count`` add repeats.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django.conf import settings
from django.core import signing
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from campaigns.models import OutboxMessage

__all__ = [
    "TRACKED_LINK_SALT",
    "BadTrackedLink",
    "message_click_record",
    "message_delivery_record",
    "message_open_record",
    "payload_with_tracked_links",
    "tracked_link_read",
    "tracked_link_token",
    "tracked_link_url",
]

TRACKED_LINK_SALT = "campaigns.tracked-link"
# A web address in a message text: up to whitespace, quotes, angle brackets or CJK punctuation.
URL_PATTERN = re.compile(r"https?://[^\s<>\"'，。！？、；：（）【】「」《》]+")

Status = OutboxMessage.Status


class BadTrackedLink(Exception):
    """The token was not signed by us (tampered, truncated, another salt) or carries no web address."""


# --- tracked links ---------------------------------------------------------------------------------


def tracked_link_token(*, message_id: int, url: str) -> str:
    """The signed token of a link to ``url`` in message ``message_id`` (URL-safe, no ``/``)."""
    return signing.dumps([int(message_id), url], salt=TRACKED_LINK_SALT, compress=True)


def tracked_link_read(token: str) -> tuple[int, str]:
    """(message id, target URL) from a token ``tracked_link_token`` made, or ``BadTrackedLink``.

    Tokens do not expire: a member may open an old message. Only http(s) targets are accepted, so
    even a token signed by mistake over another scheme cannot redirect there."""
    try:
        data = signing.loads(token, salt=TRACKED_LINK_SALT)
    except (signing.BadSignature, ValueError, TypeError) as exc:
        raise BadTrackedLink(str(exc)) from exc
    if not (isinstance(data, list) and len(data) == 2 and isinstance(data[0], int) and isinstance(data[1], str)):
        raise BadTrackedLink("unexpected content")
    message_id, url = data
    if not url.startswith(("http://", "https://")) or any(char.isspace() for char in url):
        raise BadTrackedLink("not a web address")
    return message_id, url


def tracked_link_url(*, message_id: int, url: str) -> str:
    """The address members follow: ``HUIYUAN_TRACKED_LINK_BASE`` (the public origin of this server,
    e.g. ``https://vip.example.com``) + ``/t/<token>``; without the setting, a path."""
    base = str(getattr(settings, "HUIYUAN_TRACKED_LINK_BASE", "") or "").rstrip("/")
    return base + reverse("tracked-link", args=[tracked_link_token(message_id=message_id, url=url)])


def _is_tracked(url: str) -> bool:
    base = str(getattr(settings, "HUIYUAN_TRACKED_LINK_BASE", "") or "").rstrip("/")
    return bool(base) and url.startswith(f"{base}/t/")


def payload_with_tracked_links(payload: Any, *, message_id: int) -> Any:
    """``payload`` with every web address in its texts (at any depth) replaced by a tracked link of
    message ``message_id``. Mini-program pages (``pages/...``) are not web addresses and stay.
    Without ``HUIYUAN_TRACKED_LINK_BASE`` the payload goes out as it is: a bare path would be a dead
    link in an SMS, so clicks are then not tracked (opens reported by the mini-program still are)."""
    if not str(getattr(settings, "HUIYUAN_TRACKED_LINK_BASE", "") or "").strip():
        return payload

    def rewrite(value: Any) -> Any:
        if isinstance(value, str):
            return URL_PATTERN.sub(
                lambda match: (
                    match.group(0)
                    if _is_tracked(match.group(0))
                    else tracked_link_url(message_id=message_id, url=match.group(0))
                ),
                value,
            )
        if isinstance(value, dict):
            return {key: rewrite(item) for key, item in value.items()}
        if isinstance(value, list):
            return [rewrite(item) for item in value]
        return value

    return rewrite(payload)


# --- recording -------------------------------------------------------------------------------------


def message_click_record(*, message_id: int, now: dt.datetime | None = None) -> bool:
    """A member followed a tracked link of the message: one more click, and the message opened
    (once). Returns whether the message exists. One ``UPDATE``, no lock held."""
    now = now or timezone.now()
    return bool(
        OutboxMessage.objects.filter(pk=message_id).update(
            click_count=F("click_count") + 1,
            open_count=Case(
                When(first_opened_at__isnull=True, then=F("open_count") + 1),
                default=F("open_count"),
                output_field=OutboxMessage._meta.get_field("open_count"),
            ),
            first_clicked_at=Coalesce("first_clicked_at", Value(now)),
            first_opened_at=Coalesce("first_opened_at", Value(now)),
            updated_at=now,
        )
    )


def message_open_record(*, message_id: int, member_id: int | None = None, now: dt.datetime | None = None) -> bool:
    """The message was seen (the mini-program reporting it, for ``member_id``'s own message): one
    more open; the first one dated. Returns whether there was such a message."""
    now = now or timezone.now()
    messages = OutboxMessage.objects.filter(pk=message_id)
    if member_id is not None:
        messages = messages.filter(member_id=member_id)
    return bool(
        messages.update(
            open_count=F("open_count") + 1,
            first_opened_at=Coalesce("first_opened_at", Value(now)),
            updated_at=now,
        )
    )


def message_delivery_record(
    *,
    channels: list[str],
    delivered: bool,
    provider_message_id: str = "",
    message_id: int | None = None,
    error: str = "",
    at: dt.datetime | None = None,
) -> int:
    """A channel's report on a sent message, named by the provider's id or by ours (within
    ``channels``, the configured channel names the report can be about). Delivered: ``delivered_at``
    (the first report's time stays). Not delivered: ``failed`` with ``error`` — unless it was already
    reported delivered. Returns the number of messages changed (0 for a repeated report)."""
    if not provider_message_id and message_id is None:
        return 0
    now = timezone.now()
    at = min(at or now, now)
    match = Q(channel__in=channels) & (
        Q(pk=message_id) if message_id is not None else Q(provider_message_id=provider_message_id)
    )
    sent = OutboxMessage.objects.filter(match, status=Status.SENT)
    if delivered:
        return sent.filter(delivered_at__isnull=True).update(delivered_at=at, updated_at=now)
    return sent.filter(delivered_at__isnull=True).update(
        status=Status.FAILED, last_error=(error or "not delivered")[:1000], updated_at=now
    )
