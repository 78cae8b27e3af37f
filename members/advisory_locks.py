"""PostgreSQL advisory locks: the one helper for jobs that must not overlap (a recompute, a
campaign's batch run, the trigger sweep).

Keys are two 32-bit integers — a namespace per kind of job and an id within it — so that kinds
never collide: ``namespace_key("segmentation.recompute")`` turns a name into a stable namespace.

- ``try_xact_lock(namespace, key)`` inside ``transaction.atomic``: held until the transaction
  ends, ``False`` at once when someone else holds it.
- ``session_lock(namespace, key)``: a context manager for work that spans many transactions; it
  yields whether the lock was taken and releases it on the way out.
"""

import contextlib
import zlib
from collections.abc import Iterator

from django.db import connection


def namespace_key(name: str) -> int:
    """A stable signed 32-bit integer for ``name`` (PostgreSQL's ``int4``)."""
    value = zlib.crc32(name.encode())
    return value - 2**32 if value >= 2**31 else value


def try_xact_lock(namespace: int, key: int = 0) -> bool:
    """Take the lock until the current transaction ends; ``False`` when it is held elsewhere."""
    if not connection.in_atomic_block:
        raise RuntimeError("try_xact_lock needs a transaction: call it inside transaction.atomic()")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [namespace, key])
        return cursor.fetchone()[0]


@contextlib.contextmanager
def session_lock(namespace: int, key: int = 0) -> Iterator[bool]:
    """Hold the lock for the block (across transactions); yields whether it was taken."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [namespace, key])
        acquired = cursor.fetchone()[0]
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [namespace, key])
