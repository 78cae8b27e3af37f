"""Helpers of the campaigns tests (``place``, ``segments`` and ``rfm_run`` are in the root
``conftest.py``)."""

import datetime as dt

from django.db import connections
from django.utils import timezone


def run_in_threads(count: int, work) -> list:
    """Run ``work(index)`` in ``count`` threads released together; returns results or exceptions."""
    import threading

    barrier = threading.Barrier(count)
    results: list = [None] * count

    def target(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = work(index)
        except Exception as exc:
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def days_ago(days: int) -> dt.datetime:
    return timezone.now() - dt.timedelta(days=days)
