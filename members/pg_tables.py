"""Two PostgreSQL steps that set-based jobs share: statistics of a table they just filled, from a
small sample, and an exclusive lock of a table with a bounded wait (the segmentation swap, the
orders import's index rebuild)."""

from django.db import connection

#: Statistics target for tables a job has just written: 300 × 10 = 3,000 sampled rows, a tenth of
#: the default, as good for the joins of the same transaction (autovacuum refines them later).
SAMPLED_STATISTICS_TARGET = 10


def analyze_sampled(cursor, table: str) -> None:
    """``ANALYZE`` ``table`` from a small sample, for the plans of the statements that follow."""
    cursor.execute("SELECT set_config('default_statistics_target', %s, true)", [str(SAMPLED_STATISTICS_TARGET)])
    cursor.execute(f"ANALYZE {table}")
    cursor.execute("SET LOCAL default_statistics_target TO DEFAULT")


def lock_exclusive(cursor, table: str, *, timeout_ms: int) -> None:
    """``LOCK TABLE … IN ACCESS EXCLUSIVE MODE``, waiting at most ``timeout_ms``: a request queued
    behind a long reader would queue every writer of the table behind it. Raises
    ``OperationalError`` (SQLSTATE 55P03, ``lock_not_available``) when the lock did not come, which
    aborts the transaction: call it inside a savepoint (``transaction.atomic``), whose rollback
    also undoes the wait's setting."""
    cursor.execute(f"SET LOCAL lock_timeout = {int(timeout_ms)}")
    cursor.execute(f"LOCK TABLE {connection.ops.quote_name(table)} IN ACCESS EXCLUSIVE MODE")
    cursor.execute("SET LOCAL lock_timeout TO DEFAULT")
