"""Live refreshes in batches: an order asks for its member to be refreshed, and a task refreshes
every member asked for since then in one statement (``members_rfm_refresh``).

Refreshing each member as their order commits costs about half a millisecond of CPU between the
web worker and PostgreSQL, on every order; asking costs one Redis round trip, and a batch of a few
hundred members costs little more than one refresh. The segment is fresh
``SEGMENTATION_LIVE_BATCH_SECONDS`` (1 s) after the order, plus the worker's queue.

- **ask** (``member_rfm_refresh_soon``): ``SADD`` the member to a pending set and ``SET`` a
  "scheduled" flag ``NX`` with a TTL, in one round trip; whoever sets the flag queues
  ``segment_live_refresh_task`` with the batch delay as countdown.
- **drain** (``live_refresh_drain``, the task): delete the flag *first* — an ask after that queues
  the next task, an ask before it is in the set — then ``SPOP`` up to ``DRAIN_CHUNK`` members at a
  time and refresh them. A chunk that fails goes back into the set, and the task is retried.
- **at once** instead, as before batching: when the setting is 0, when the broker is not Redis
  (the embedded default) and when Redis cannot be reached (logged).

Keys are per database (``huiyuan:<database>:rfm-refresh:…``), so deployments or test databases
sharing a Redis never drain each other's members. A pending set lost with Redis is put right by
the nightly recompute; the hourly ``segment_live_refresh_task`` in the schedule drains what a lost
task left behind.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import connection

from segmentation.services.live import member_rfm_refresh, members_rfm_refresh

logger = logging.getLogger(__name__)

DRAIN_CHUNK = 500
FLAG_TTL_SECONDS = 60  # a flag whose task was lost expires, and the next ask queues a new one

_clients: dict[str, object] = {}


def batch_seconds() -> float:
    return float(getattr(settings, "SEGMENTATION_LIVE_BATCH_SECONDS", 0) or 0)


def _client():
    """A Redis client for the broker's server, or None when the broker is not Redis."""
    url = str(getattr(settings, "CELERY_BROKER_URL", "") or "")
    if not url.startswith(("redis://", "rediss://")):
        return None
    client = _clients.get(url)
    if client is None:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        _clients.clear()
        _clients[url] = client
    return client


def _keys() -> tuple[str, str]:
    db = connection.settings_dict
    scope = f"huiyuan:{db.get('NAME')}@{db.get('HOST') or 'local'}:rfm-refresh"
    return f"{scope}:pending", f"{scope}:scheduled"


def batching() -> bool:
    """Whether refreshes after orders are batched here (PostgreSQL, a Redis broker, a delay > 0)."""
    return connection.vendor == "postgresql" and batch_seconds() > 0 and _client() is not None


def member_rfm_refresh_soon(*, member_id: int) -> None:
    """Refresh the member's RFM and segment in the next batch — or at once, without batching."""
    client = _client() if batch_seconds() > 0 and connection.vendor == "postgresql" else None
    if client is None:
        member_rfm_refresh(member_id=member_id)
        return
    pending, scheduled = _keys()
    delay = batch_seconds()
    try:
        pipe = client.pipeline(transaction=False)
        pipe.sadd(pending, member_id)
        pipe.set(scheduled, "1", nx=True, ex=max(FLAG_TTL_SECONDS, int(delay * 10)))
        _added, first = pipe.execute()
    except Exception:
        logger.warning("Redis unreachable: refreshing member %s at once", member_id, exc_info=True)
        member_rfm_refresh(member_id=member_id)
        return
    if first:
        from segmentation.tasks import segment_live_refresh_task

        try:
            segment_live_refresh_task.apply_async(countdown=delay)
        except Exception:
            logger.warning("could not queue the live RFM refresh", exc_info=True)
            client.delete(scheduled)


def live_refresh_drain(*, chunk: int = DRAIN_CHUNK) -> int:
    """Refresh every member asked for, ``chunk`` at a time; returns how many rows were written."""
    client = _client()
    if client is None:
        return 0
    pending, scheduled = _keys()
    client.delete(scheduled)
    written = 0
    while True:
        popped = client.spop(pending, chunk)
        if not popped:
            return written
        member_ids = [int(member_id) for member_id in popped]
        try:
            written += members_rfm_refresh(member_ids=member_ids)
        except Exception:
            client.sadd(pending, *member_ids)
            raise


def pending_count() -> int:
    """Members waiting for the next batch (for the admin and the benchmark)."""
    client = _client()
    return int(client.scard(_keys()[0])) if client is not None else 0
