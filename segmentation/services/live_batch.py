"""Live refreshes in batches: an order asks for its member to be refreshed, and a task refreshes
every member asked for since then in one statement (``members_rfm_refresh``).

Refreshing each member as their order commits costs about half a millisecond of CPU between the
web worker and PostgreSQL, on every order; asking costs one Redis round trip, and a batch of a few
hundred members costs little more than one refresh. The segment is fresh
``SEGMENTATION_LIVE_BATCH_SECONDS`` (1 s) after the order, plus the worker's queue.

- **ask** (``live_refresh_ask``): ``SADD`` the member to a pending set and ``SET`` a "scheduled"
  flag ``NX`` with a TTL, in one round trip; the ask that sets the flag tells its caller (the
  order subscriber, ``segmentation.subscribers``) to queue ``segment_live_refresh_task`` with the
  batch delay as countdown — this module never imports tasks — and the caller clears the flag
  again (``live_refresh_unschedule``) if it cannot queue.
- **drain** (``live_refresh_drain``, the task): delete the flag *first* — an ask after that queues
  the next task, an ask before it is in the set — then move up to ``DRAIN_CHUNK`` members at a time
  from the pending set to this drain's own "processing" set and note the time in a register of
  drains (one Lua script), refresh them, and empty "processing". A chunk that fails goes back into
  the pending set, and the task is retried. A chunk whose worker died (killed, out of memory) stays
  in its "processing" set; a drain that finds a drain silent for ``DRAIN_LEASE_SECONDS`` puts that
  drain's members back first. Drains running at once never take each other's members, so a member
  is never refreshed twice for one ask (which would record its transition twice).
- **at once** instead, as before batching: when the setting is 0, when the broker is not Redis
  (the embedded default) and when Redis cannot be reached (logged) — ``live_refresh_ask`` then
  refreshes the member itself and asks its caller to queue nothing.

Keys are per database name (``huiyuan:<database>:rfm-refresh:…``), so test databases sharing a
Redis never drain each other's members; not per host, since the web and the worker may reach one
database by different addresses (a pooler, a socket) and must still share one queue (the scripts
name the drains' keys themselves: one Redis server, not a cluster). A pending set lost with Redis
is put right by the nightly recompute; ``segment_live_refresh_task`` runs every 10 minutes in the
schedule too, and drains what a lost task or a dead drain left behind.
"""

from __future__ import annotations

import logging
import uuid

import redis
from django.conf import settings
from django.db import connection

from segmentation.services.live import member_rfm_refresh, members_rfm_refresh

logger = logging.getLogger(__name__)

DRAIN_CHUNK = 500
# A drain silent this long (by Redis's clock) is taken for dead: a chunk takes well under a second,
# and a drain notes it is alive at every chunk.
DRAIN_LEASE_SECONDS = 300
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
        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        _clients.clear()
        _clients[url] = client
    return client


def _scope() -> str:
    return f"huiyuan:{connection.settings_dict.get('NAME')}:rfm-refresh"


def _keys() -> tuple[str, str]:
    """The pending set and the "scheduled" flag."""
    return f"{_scope()}:pending", f"{_scope()}:scheduled"


def _drains_key() -> str:
    """The register of running drains: drain id → when it last took a chunk (Redis's clock, seconds)."""
    return f"{_scope()}:drains"


def _processing_prefix() -> str:
    return f"{_scope()}:processing:"


# Move up to ARGV[1] members from the pending set (KEYS[1]) to this drain's processing set
# (KEYS[2]), and note in the register (KEYS[3]) that drain ARGV[2] was alive now (Redis's clock,
# one for every worker).
_POP_CHUNK = """
local ids = redis.call('SPOP', KEYS[1], ARGV[1])
if #ids > 0 then redis.call('SADD', KEYS[2], unpack(ids)) end
redis.call('HSET', KEYS[3], ARGV[2], redis.call('TIME')[1])
return ids
"""

# Put back into the pending set (KEYS[1]) the members of every drain in the register (KEYS[2])
# silent for more than ARGV[1] seconds; their processing sets are ARGV[2] .. drain id. Returns
# how many members went back.
_RECOVER = """
local drains = redis.call('HGETALL', KEYS[2])
local since = tonumber(redis.call('TIME')[1]) - tonumber(ARGV[1])
local moved = 0
for i = 1, #drains, 2 do
  if tonumber(drains[i + 1]) < since then
    local processing = ARGV[2] .. drains[i]
    moved = moved + redis.call('SCARD', processing)
    redis.call('SUNIONSTORE', KEYS[1], KEYS[1], processing)
    redis.call('DEL', processing)
    redis.call('HDEL', KEYS[2], drains[i])
  end
end
return moved
"""


def _pop_chunk(client, pending: str, processing: str, drain_id: str, chunk: int) -> list:
    return client.eval(_POP_CHUNK, 3, pending, processing, _drains_key(), chunk, drain_id)


def batching() -> bool:
    """Whether refreshes after orders are batched here (a Redis broker, a delay > 0)."""
    return batch_seconds() > 0 and _client() is not None


def live_refresh_ask(*, member_id: int) -> bool:
    """Ask for the member's RFM and segment to be refreshed in the next batch — or refresh them at
    once, without batching. True when this ask opened the batch: the caller then queues
    ``segment_live_refresh_task`` with countdown ``batch_seconds()``, and calls
    ``live_refresh_unschedule`` if it cannot."""
    client = _client() if batch_seconds() > 0 else None
    if client is None:
        member_rfm_refresh(member_id=member_id)
        return False
    pending, scheduled = _keys()
    try:
        pipe = client.pipeline(transaction=False)
        pipe.sadd(pending, member_id)
        pipe.set(scheduled, "1", nx=True, ex=max(FLAG_TTL_SECONDS, int(batch_seconds() * 10)))
        _added, first = pipe.execute()
    except Exception:
        logger.warning("Redis unreachable: refreshing member %s at once", member_id, exc_info=True)
        member_rfm_refresh(member_id=member_id)
        return False
    return bool(first)


def live_refresh_unschedule() -> None:
    """The batch task could not be queued: clear the "scheduled" flag, so the next ask queues one."""
    client = _client()
    if client is not None:
        client.delete(_keys()[1])


def live_refresh_drain(*, chunk: int = DRAIN_CHUNK) -> int:
    """Refresh every member asked for, ``chunk`` at a time; returns how many rows were written."""
    client = _client()
    if client is None:
        return 0
    pending, scheduled = _keys()
    client.delete(scheduled)
    recovered = client.eval(_RECOVER, 2, pending, _drains_key(), DRAIN_LEASE_SECONDS, _processing_prefix())
    if recovered:
        logger.warning("%s members of a drain that died went back to the live RFM refresh queue", recovered)
    drain_id = uuid.uuid4().hex
    processing = _processing_prefix() + drain_id
    written = 0
    # When Redis fails here (a lost reply, say), the chunk may be in "processing" or not: it is
    # left to the drain that finds this one silent after the lease, never deleted unrefreshed.
    while popped := _pop_chunk(client, pending, processing, drain_id, chunk):
        member_ids = [int(member_id) for member_id in popped]
        try:
            written += members_rfm_refresh(member_ids=member_ids)
        except Exception:
            _put_back(client, pending, processing, drain_id)
            raise
        client.delete(processing)
    client.hdel(_drains_key(), drain_id)
    return written


def _put_back(client, pending: str, processing: str, drain_id: str) -> None:
    """Return this drain's chunk to the pending set and leave the register, at once."""
    pipe = client.pipeline(transaction=True)
    pipe.sunionstore(pending, [pending, processing])
    pipe.delete(processing)
    pipe.hdel(_drains_key(), drain_id)
    pipe.execute()


def pending_count() -> int:
    """Members waiting for the next batch, or in one a drain has not finished (for the admin and the
    benchmark)."""
    client = _client()
    if client is None:
        return 0
    drains = client.hkeys(_drains_key())
    pipe = client.pipeline(transaction=False)
    pipe.scard(_keys()[0])
    for drain_id in drains:
        pipe.scard(_processing_prefix() + drain_id.decode())
    return sum(int(count) for count in pipe.execute())
