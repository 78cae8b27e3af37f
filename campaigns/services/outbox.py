"""Messages to members: written to the outbox with the grant that caused them, delivered after commit.

``message_enqueue`` writes the row in the caller's transaction (so a rolled-back grant sends
nothing). It queues nothing itself — a service never imports tasks: whoever called the granting
service (a task, a subscriber, the admin) queues ``outbox_deliver_task`` for the message ids it got
back, after commit (``campaigns.tasks.outbox_deliver_soon``); the flush delivers any it missed.
Delivery:

1. **claim** — ``UPDATE ... SET status='sending', attempts=attempts+1 WHERE id=%s AND
   status='pending' AND next_attempt_at <= now``: one statement, so of two workers holding the
   same message (a retried task, the periodic flush, an ``acks_late`` redelivery) exactly one
   gets the row; the other does nothing. No lock is held while the provider answers.
2. **send** through the channel (``campaigns.channels``) — the web addresses in the payload's texts
   rewritten to tracked links (``campaigns.services.engagement``), in the copy sent only.
3. **record** — ``sent``; or, for a retryable error, back to ``pending`` with
   ``next_attempt_at`` = now + base × 2^(attempts−1) (capped), which ``outbox_deliver_task`` uses
   as the countdown of its retry; after ``HUIYUAN_OUTBOX_MAX_ATTEMPTS`` attempts ``dead``; a
   permanent error ``failed`` at once.

``outbox_flush`` (periodic, every minute or so) is the safety net: it puts messages stuck in
``sending`` for longer than ``HUIYUAN_OUTBOX_STALE_SECONDS`` (the worker died mid-send) back to
``pending`` and returns the ids of every due message (the broker was down at commit, a countdown
task was lost) for ``outbox_flush_task`` to queue. A message returned from ``sending`` may reach
the member twice — the one case the outbox cannot rule out, since the provider may have accepted
it before the worker died; the gateways that support it get the message id to deduplicate on.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from campaigns.channels import ChannelError, channel_get, channel_names, default_channel_name
from campaigns.channels.base import Transport
from campaigns.models import OutboxMessage
from campaigns.services.engagement import payload_with_tracked_links
from members.models import Member

logger = logging.getLogger(__name__)

Status = OutboxMessage.Status


def max_attempts() -> int:
    return int(getattr(settings, "HUIYUAN_OUTBOX_MAX_ATTEMPTS", 5))


def retry_delay(attempts: int) -> dt.timedelta:
    """How long to wait after the ``attempts``-th failed attempt: base × 2^(attempts−1), capped."""
    base = int(getattr(settings, "HUIYUAN_OUTBOX_RETRY_BASE_SECONDS", 60))
    cap = int(getattr(settings, "HUIYUAN_OUTBOX_RETRY_MAX_SECONDS", 6 * 3600))
    return dt.timedelta(seconds=min(cap, base * 2 ** max(0, attempts - 1)))


def message_enqueue(
    *, member: Member, template: str, payload: dict, dedupe_key: str, channel: str | None = None
) -> OutboxMessage:
    """Write a message to ``member`` in the current transaction; the caller queues its delivery
    (``outbox_deliver_task``) after commit.

    Idempotent on ``dedupe_key``: a second call (a retried task, a racing worker) returns the row
    the first one wrote, whatever its other arguments. ``INSERT ... ON CONFLICT DO NOTHING``: when
    two transactions race, the second waits for the first to commit, then reads its row.
    """
    channel = channel or default_channel_name()
    if channel not in channel_names():
        raise ValidationError({"channel": _("Unknown message channel %(name)s.") % {"name": channel}})
    if not dedupe_key:
        raise ValidationError({"dedupe_key": _("A deduplication key is required.")})
    if not template:
        raise ValidationError({"template": _("A message template is required.")})
    now = timezone.now()
    OutboxMessage.objects.bulk_create(
        [
            OutboxMessage(
                member=member,
                channel=channel,
                template=template,
                payload=payload or {},
                dedupe_key=dedupe_key,
                next_attempt_at=now,
            )
        ],
        ignore_conflicts=True,
    )
    return OutboxMessage.objects.get(dedupe_key=dedupe_key)


def outbox_deliver(
    *, message_id: int, now: dt.datetime | None = None, transport: Transport | None = None
) -> OutboxMessage | None:
    """Try to deliver one message. Returns it as it ends up, or None when this call did not get
    it (not due, already sent, or another worker holds it). Safe to call any number of times.
    A message back in ``pending`` is to be tried again at its ``next_attempt_at``."""
    now = now or timezone.now()
    claimed = OutboxMessage.objects.filter(pk=message_id, status=Status.PENDING, next_attempt_at__lte=now).update(
        status=Status.SENDING, claimed_at=now, attempts=F("attempts") + 1, updated_at=now
    )
    if not claimed:
        return None
    message = OutboxMessage.objects.select_related("member").get(pk=message_id)
    try:
        message.payload = payload_with_tracked_links(message.payload, message_id=message.pk)  # not saved
        result = channel_get(message.channel, transport=transport).send(message)
    except ChannelError as exc:
        return _record_failure(message, now=now, error=str(exc) or exc.__class__.__name__, retryable=exc.retryable)
    except Exception as exc:  # a bug or a misconfiguration: keep the message, retry later
        logger.exception("outbox message %s: channel %s crashed", message_id, message.channel)
        return _record_failure(message, now=now, error=f"{exc.__class__.__name__}: {exc}", retryable=True)
    fields = {
        "status": Status.SENT,
        "sent_at": timezone.now(),
        "provider_message_id": (result.provider_message_id or "")[:100],
        "last_error": "",
        "updated_at": timezone.now(),
    }
    _finish(message, now=now, **fields)
    return message


def _record_failure(message: OutboxMessage, *, now: dt.datetime, error: str, retryable: bool) -> OutboxMessage:
    if not retryable:
        logger.warning("outbox message %s failed permanently: %s", message.pk, error)
        _finish(message, now=now, status=Status.FAILED, last_error=error, updated_at=timezone.now())
        return message
    if message.attempts >= max_attempts():
        logger.warning("outbox message %s is dead after %s attempts: %s", message.pk, message.attempts, error)
        _finish(message, now=now, status=Status.DEAD, last_error=error, updated_at=timezone.now())
        return message
    delay = retry_delay(message.attempts)
    logger.info("outbox message %s: attempt %s failed (%s); retry in %s", message.pk, message.attempts, error, delay)
    _finish(
        message,
        now=now,
        status=Status.PENDING,
        last_error=error,
        next_attempt_at=now + delay,
        updated_at=timezone.now(),
    )
    return message


def _finish(message: OutboxMessage, *, now: dt.datetime, **fields) -> None:
    """Record the outcome of our claim — only if the row is still ours (the flush may have handed
    a stale claim to another worker)."""
    OutboxMessage.objects.filter(pk=message.pk, status=Status.SENDING, claimed_at=now).update(**fields)
    for name, value in fields.items():
        setattr(message, name, value)


def outbox_flush(*, now: dt.datetime | None = None, limit: int = 1000) -> list[int]:
    """Return stale ``sending`` claims to ``pending``, then the ids of the due messages (at most
    ``limit``, oldest first) for the caller to queue."""
    now = now or timezone.now()
    stale_before = now - dt.timedelta(seconds=int(getattr(settings, "HUIYUAN_OUTBOX_STALE_SECONDS", 600)))
    stale = OutboxMessage.objects.filter(status=Status.SENDING, claimed_at__lt=stale_before)
    error = "the worker was lost while sending"
    stale.filter(attempts__gte=max_attempts()).update(status=Status.DEAD, last_error=error, updated_at=now)
    stale.update(status=Status.PENDING, next_attempt_at=now, last_error=error, updated_at=now)
    return list(
        OutboxMessage.objects.filter(status=Status.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at", "id")
        .values_list("pk", flat=True)[:limit]
    )


def outbox_requeue(*, message_ids) -> list[int]:
    """Give failed or dead messages a new set of attempts (after an operator fixed the cause).
    Returns the ids of the messages requeued, for the caller to queue their delivery."""
    now = timezone.now()
    requeued = list(
        OutboxMessage.objects.filter(pk__in=list(message_ids), status__in=[Status.FAILED, Status.DEAD])
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    OutboxMessage.objects.filter(pk__in=requeued, status__in=[Status.FAILED, Status.DEAD]).update(
        status=Status.PENDING, attempts=0, next_attempt_at=now, updated_at=now
    )
    return requeued
