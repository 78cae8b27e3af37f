"""Fault drill: the Celery worker running the nightly RFM recompute is SIGKILLed mid-run.

A real worker (``celery -A config worker``, a subprocess on this test's database) takes
``segment_recompute_task`` from a real Redis. A long reader of the current results (a report, a
``pg_dump``) holds the live table, so the run stops at its swap, waiting for the table's lock —
the drill catches it there, in ``pg_stat_activity``, and kills the worker's process group with
``SIGKILL``. Then: the readers still see the previous results, unchanged; the killed run is on
record as ``running`` (no success claimed), and the next run marks it ``failed`` ("abandoned"),
succeeds with the new orders, and ``reconcile`` is clean. The task itself stays unacknowledged in
Redis (``acks_late``): a worker takes it again after the broker's visibility timeout.
"""

import datetime as dt
import signal
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection, connections
from django.utils import timezone

from segmentation.models import MemberRfm, RfmRun
from segmentation.services import segment_recompute
from segmentation.tasks import segment_recompute_task
from tests.drills.conftest import wait_until
from tests.factories import MemberFactory, OrderFactory, StoreFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

RESULT_COLUMNS = ("member_id", "recency_days", "frequency", "monetary", "segment_id", "run_id")


def results() -> list[tuple]:
    return list(MemberRfm.objects.order_by("member_id").values_list(*RESULT_COLUMNS))


def backend_waiting_at_the_swap() -> int | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            """SELECT pid FROM pg_stat_activity
               WHERE datname = current_database() AND application_name LIKE 'huiyuan-rfm:%%:swapping'
                 AND wait_event_type = 'Lock'"""
        )
        row = cursor.fetchone()
    return row[0] if row else None


def backend_gone(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone()[0] == 0


def test_worker_sigkilled_mid_recompute_leaves_the_previous_results(default_scheme, start_worker, redis_server):
    # given members with two years of orders and a finished run, then new orders since
    store = StoreFactory()
    now = timezone.now()
    members = [MemberFactory(home_store=store) for _ in range(30)]
    for index, member in enumerate(members):
        for order in range(1 + index % 5):
            OrderFactory(member=member, paid_at=now - dt.timedelta(days=3 + 40 * order + index), amount=30 + index)
    first = segment_recompute()
    before = results()
    for member in members[:10]:  # enough to move them in the next run
        for day in range(6):
            OrderFactory(member=member, paid_at=now - dt.timedelta(days=1, hours=day), amount=Decimal("400.00"))

    # when the nightly task runs on a real worker, waits at its swap behind a long reader, and the
    # worker is SIGKILLed there
    reader = connections.create_connection("default")  # a connection of its own, outside the test's
    reader.connect()
    try:
        reader.connection.execute(f"BEGIN; SELECT count(*) FROM {MemberRfm._meta.db_table}")
        worker = start_worker()
        segment_recompute_task.delay()
        pid = wait_until(backend_waiting_at_the_swap, timeout=40, what="the run to wait at its swap")
        worker.kill(signal.SIGKILL)
        # (a new reader would queue behind the swap's lock request until it ends: read on this one)
        during = reader.connection.execute(
            f"SELECT {', '.join(RESULT_COLUMNS)} FROM {MemberRfm._meta.db_table} ORDER BY member_id"
        ).fetchall()
    finally:
        reader.connection.execute("ROLLBACK")
        reader.close()
    wait_until(lambda: backend_gone(pid), what="the killed run's connection to end")

    # then the previous results are intact and the killed run is on record, not as a success
    assert worker.process.returncode == -signal.SIGKILL
    assert redis_server.client().hlen("unacked") == 1, "the task (acks_late) stays with the broker, unacknowledged"
    assert during == before
    assert results() == before
    assert RfmRun.objects.get(is_current=True).pk == first.pk
    killed = RfmRun.objects.exclude(pk=first.pk).get()
    assert killed.status == RfmRun.Status.RUNNING  # until a run notices its session is gone

    # when the next run starts (the nightly one, or an operator's)
    second = segment_recompute()

    # then it marks the killed run failed, succeeds, and counts the new orders
    killed.refresh_from_db()
    assert killed.status == RfmRun.Status.FAILED and "Abandoned" in killed.error
    assert second.status == RfmRun.Status.SUCCEEDED and second.is_current
    after = {row[0]: row for row in results()}
    counted_before = {row[0]: row[2] for row in before}
    assert [after[m.pk][2] - counted_before[m.pk] for m in members[:10]] == [6] * 10, "the new orders count now"
    assert all(row[5] == second.pk for row in after.values())
    call_command("reconcile")
