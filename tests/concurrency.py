"""Helpers for tests that need a second database connection (row locks, visibility)."""

import threading
import time

from django.db import connection, transaction


def in_another_connection(fn) -> dict:
    """Run ``fn()`` in a thread, on that thread's own database connection (closed afterwards).

    Returns ``{"value": …}`` or ``{"error": exception}``; fails if the thread is still waiting after 30 s.
    """
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["value"] = fn()
        except Exception as exc:
            outcome["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive(), "the other connection is still waiting"
    return outcome


def all_waiting_for_a_row(model, pk, *fns, wait: float = 0.5) -> list[dict]:
    """Run each of ``fns`` on its own connection while row ``pk`` of ``model`` is locked (``FOR
    UPDATE``) on yet another one, so that all of them are in flight together; release the row after
    ``wait`` seconds. Returns their outcomes (``in_another_connection``), in the order they ended."""
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        with transaction.atomic():
            model.objects.select_for_update().get(pk=pk)
            locked.set()
            release.wait(20)

    holder = threading.Thread(target=lambda: in_another_connection(hold))
    holder.start()
    assert locked.wait(10), "could not lock the row"
    outcomes: list[dict] = []
    threads = [threading.Thread(target=lambda fn=fn: outcomes.append(in_another_connection(fn))) for fn in fns]
    for thread in threads:
        thread.start()
    time.sleep(wait)
    release.set()
    for thread in (*threads, holder):
        thread.join(30)
    return outcomes


def wait_until_another_waits_for_a_lock(query_like: str, timeout: float = 10.0) -> None:
    """Return once another connection's statement matching ``query_like`` (SQL LIKE) waits for a
    lock, plus a moment; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s "
                "AND pid <> pg_backend_pid()",
                [query_like],
            )
            if cursor.fetchone()[0]:
                time.sleep(0.2)
                return
        time.sleep(0.05)
    raise AssertionError(f"no statement like {query_like!r} waited for a lock")
