"""Issue 20, finding 6: the nightly swap's ``LOCK TABLE … ACCESS EXCLUSIVE`` must not stall the tills.

Behind a long reader its lock request queues, and every refund's segment refresh (a writer of the
same table) queues behind that request. The swap now waits a bounded time per attempt, backs off so
the writers get through, retries, and then fails — recorded, and retried by its task. A run left
``running`` by a worker that died is marked failed by the next run or the periodic reap."""

import datetime as dt
import threading
import time
from decimal import Decimal

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from members.services.orders import refund_record
from segmentation.models import MemberRfm, RfmRun
from segmentation.services import SwapLockTimeout, recompute, recompute_reap_stale, segment_recompute
from segmentation.tasks import segment_recompute_reap_task, segment_recompute_task
from tests.factories import MemberFactory, OrderFactory

pytestmark = pytest.mark.django_db(transaction=True)

TABLE = MemberRfm._meta.db_table


@pytest.fixture
def short_waits(settings):
    settings.SEGMENTATION_SWAP_LOCK_TIMEOUT_MS = 300
    settings.SEGMENTATION_SWAP_LOCK_ATTEMPTS = 2
    settings.SEGMENTATION_SWAP_LOCK_BACKOFF_SECONDS = 0.3
    return settings


def _new_connection(*, autocommit: bool = True) -> psycopg.Connection:
    """A session of its own (usable from any thread), outside the test's connection."""
    settings = connection.settings_dict
    return psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        host=settings["HOST"],
        port=settings["PORT"] or 5432,
        password=settings["PASSWORD"] or None,
        autocommit=autocommit,
    )


class LongReader:
    """Another session reading the current results in an open transaction (a report, a pg_dump)."""

    def __enter__(self):
        self.conn = _new_connection(autocommit=False)
        self.conn.execute(f"SELECT count(*) FROM {TABLE}")
        self.lock = threading.Lock()
        return self

    def release(self):
        with self.lock:
            if self.conn is not None:
                self.conn.rollback()
                self.conn.close()
                self.conn = None

    def __exit__(self, *exc):
        self.release()


def _swap_waiting() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            """SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
               AND application_name LIKE 'huiyuan-rfm:%%:swapping' AND wait_event_type = 'Lock'"""
        )
        return cursor.fetchone()[0] > 0


def _members_with_orders():
    now = timezone.now()
    members = [MemberFactory() for _ in range(3)]
    orders = [
        OrderFactory(member=member, paid_at=now - dt.timedelta(days=2 + index), amount=Decimal("100.00"))
        for index, member in enumerate(members)
    ]
    return members, orders


def test_the_swap_gives_up_behind_a_long_reader_and_refunds_are_not_stuck(default_scheme, short_waits):
    # given: a committed run, then new orders, and a long reader on the current results
    members, orders = _members_with_orders()
    first = segment_recompute()
    before = dict(MemberRfm.objects.values_list("member_id", "frequency"))
    OrderFactory(member=members[0], paid_at=timezone.now() - dt.timedelta(hours=1), amount=Decimal("50.00"))
    outcome = {}

    def nightly_run():
        started = time.monotonic()
        try:
            segment_recompute()
        except Exception as exc:
            outcome["error"] = exc
        finally:
            outcome["seconds"] = time.monotonic() - started
            connection.close()

    def refund():
        started = time.monotonic()
        try:
            refund_record(external_id="R-SWAP-1", order=orders[1], amount=Decimal("40.00"))
        finally:
            outcome["refund_seconds"] = time.monotonic() - started
            connection.close()

    with LongReader() as reader:
        run_thread = threading.Thread(target=nightly_run)
        run_thread.start()
        deadline = time.monotonic() + 30
        while not _swap_waiting() and run_thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        # when: a refund comes in while the swap's lock request is queued
        refund_thread = threading.Thread(target=refund)
        refund_thread.start()
        refund_thread.join(8)
        run_thread.join(8)
        still_stuck = run_thread.is_alive() or refund_thread.is_alive()
        reader.release()
        run_thread.join(20)
        refund_thread.join(20)

    # then: the run gave up within its bounded waits (2 × 300 ms + 300 ms backoff, plus the work)
    # while the reader still read, and the refund's segment refresh went through meanwhile
    assert not still_stuck, "the swap or the refund waited for the long reader"
    assert isinstance(outcome.get("error"), SwapLockTimeout)
    assert outcome["seconds"] < 6
    assert outcome["refund_seconds"] < 2
    failed = RfmRun.objects.exclude(pk=first.pk).get()
    assert failed.status == RfmRun.Status.FAILED and not failed.is_current
    assert "SwapLockTimeout" in failed.error and failed.finished_at is not None
    # the previous results stand (the refund's refresh wrote its member's row on top of them)
    assert RfmRun.objects.get(is_current=True) == first
    assert dict(MemberRfm.objects.values_list("member_id", "frequency")) == before
    assert MemberRfm.objects.get(member=members[1]).monetary == Decimal("60.00")
    # and once the reader is gone the next run swaps in
    assert segment_recompute().status == RfmRun.Status.SUCCEEDED
    assert MemberRfm.objects.get(member=members[0]).frequency == 2


def test_the_task_retries_a_run_whose_swap_timed_out(default_scheme, short_waits):
    # given: a long reader that goes away once the first attempt has been recorded failed
    _members_with_orders()
    first = segment_recompute()
    reader = LongReader().__enter__()
    watched = _new_connection()

    def release_after_first_failure():
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                row = watched.execute("SELECT count(*) FROM segmentation_rfmrun WHERE status = 'failed'").fetchone()
                if row[0]:
                    break
                time.sleep(0.05)
        finally:
            reader.release()
            watched.close()

    releaser = threading.Thread(target=release_after_first_failure)
    releaser.start()
    try:
        # when: the nightly task runs (eagerly here, not raising: its retry then runs at once)
        run_id = segment_recompute_task.apply(throw=False).get()
    finally:
        releaser.join(30)
        reader.release()
    # then: the first attempt is recorded failed, the retry succeeded and is current
    runs = {run.pk: run for run in RfmRun.objects.exclude(pk=first.pk)}
    assert runs[run_id].status == RfmRun.Status.SUCCEEDED and runs[run_id].is_current
    failures = [run for run in runs.values() if run.status == RfmRun.Status.FAILED]
    assert len(failures) == 1 and "SwapLockTimeout" in failures[0].error


def test_a_run_left_running_by_a_dead_worker_is_marked_failed(default_scheme):
    # given: a run a SIGKILLed worker left "running" (its session is gone), and one whose
    # session is alive (a worker busy with it, say so in its application_name)
    _members_with_orders()
    first = segment_recompute()
    dead = RfmRun.objects.create(scheme=default_scheme, as_of=first.as_of, started_at=timezone.now())
    alive = RfmRun.objects.create(scheme=default_scheme, as_of=first.as_of, started_at=timezone.now())
    worker = _new_connection()
    try:
        worker.execute("SELECT set_config('application_name', %s, false)", [f"huiyuan-rfm-run:{alive.pk}"])
        # when: the periodic reap runs
        assert segment_recompute_reap_task.apply().get() == 1
        # then: the dead one is failed, with why, and the live one untouched
        dead.refresh_from_db()
        assert dead.status == RfmRun.Status.FAILED and "Abandoned" in dead.error and dead.finished_at
        assert RfmRun.objects.get(pk=alive.pk).status == RfmRun.Status.RUNNING
    finally:
        worker.close()
    # and once that worker is gone too, the next run marks it failed before it starts
    second = segment_recompute()
    assert second.status == RfmRun.Status.SUCCEEDED
    assert RfmRun.objects.get(pk=alive.pk).status == RfmRun.Status.FAILED
    assert recompute_reap_stale() == 0


def test_a_run_killed_mid_work_is_recorded_failed(default_scheme, monkeypatch):
    # given: a run whose connection is terminated mid-work (what a SIGKILL does to its session)
    _members_with_orders()
    first = segment_recompute()
    original = recompute._summarise

    def killed(*args, **kwargs):
        with _new_connection() as killer:
            killer.execute("SELECT pg_terminate_backend(%s)", [connection.connection.info.backend_pid])
        return original(*args, **kwargs)

    monkeypatch.setattr(recompute, "_summarise", killed)
    # when
    with pytest.raises(Exception):  # whatever the dead connection raises
        segment_recompute()
    # then: the run is recorded failed (on a new connection), the previous results are current
    connection.close()
    killed_run = RfmRun.objects.exclude(pk=first.pk).get()
    assert killed_run.status == RfmRun.Status.FAILED and killed_run.error
    assert RfmRun.objects.get(is_current=True) == first
