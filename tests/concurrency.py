"""Helpers for tests that need a second database connection (row locks, visibility)."""

import threading

from django.db import connection


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
