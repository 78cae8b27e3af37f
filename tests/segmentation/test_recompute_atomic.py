"""A run is atomic: readers see the previous results until it commits, a crashed or killed run
leaves them intact, and two runs never overlap (the second exits and says so)."""

import threading

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from segmentation.models import MemberRfm, RfmRun, SegmentSnapshot, SegmentTransition
from segmentation.services import RecomputeAlreadyRunning, recompute, segment_recompute
from segmentation.tasks import segment_recompute_task

from .builders import AS_OF, member, order


def _table_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [name])
        return cursor.fetchone()[0] is not None


def _segments() -> dict:
    return dict(MemberRfm.objects.values_list("member_id", "segment__slug"))


def _raw_connection() -> psycopg.Connection:
    settings = connection.settings_dict
    return psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        host=settings["HOST"],
        port=settings["PORT"] or 5432,
        password=settings["PASSWORD"] or None,
        autocommit=False,
    )


@pytest.mark.django_db
def test_a_run_that_crashes_midway_leaves_the_previous_results(default_scheme, monkeypatch):
    # given: a first run puts the member in lost, then the member buys
    who = member()
    order(who, days_ago=200)
    first = segment_recompute(as_of=AS_OF)
    order(who, days_ago=1)

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(recompute, "_build_indexes", crash)  # after the new results and transitions are written
    # when
    with pytest.raises(RuntimeError, match="disk full"):
        segment_recompute(as_of=AS_OF)
    # then
    assert _segments() == {who.pk: "lost"}
    assert RfmRun.objects.get(is_current=True) == first
    failed = RfmRun.objects.get(status=RfmRun.Status.FAILED)
    assert "disk full" in failed.error
    assert not SegmentSnapshot.objects.exclude(run=first).exists()
    assert not SegmentTransition.objects.exclude(run=first).exists()
    assert not _table_exists(recompute.NEXT_TABLE)


@pytest.mark.django_db
def test_a_second_run_exits_while_another_holds_the_lock(default_scheme, caplog):
    # given: another session holds the recompute lock
    order(member(), days_ago=3)
    other = _raw_connection()
    try:
        other.execute("SELECT pg_advisory_xact_lock(%s, 0)", [recompute.LOCK_NAMESPACE])
        # when / then: the service refuses and writes nothing
        with pytest.raises(RecomputeAlreadyRunning):
            segment_recompute(as_of=AS_OF)
        assert not RfmRun.objects.exists()
        assert not MemberRfm.objects.exists()
        # the command says so and fails
        with pytest.raises(CommandError, match="Another RFM recompute is running"):
            call_command("recompute_rfm", "--as-of", AS_OF.isoformat())
        # the task logs and returns without a run
        assert segment_recompute_task.delay(as_of=AS_OF.isoformat()).get() is None
        assert "RFM recompute skipped" in caplog.text
    finally:
        other.close()
    # and once the lock is released, a run goes through
    assert segment_recompute(as_of=AS_OF).status == RfmRun.Status.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_readers_see_the_previous_results_and_a_killed_run_changes_nothing(default_scheme, monkeypatch):
    # given: a committed first run (the member is lost), then the member buys
    who = member()
    order(who, days_ago=200)
    first = segment_recompute(as_of=AS_OF)
    order(who, days_ago=1)
    reached, release = threading.Event(), threading.Event()
    seen = {}
    original_swap = recompute._swap

    def paused_swap(*args, **kwargs):
        seen["pid"] = connection.connection.info.backend_pid
        reached.set()
        release.wait(10)
        return original_swap(*args, **kwargs)

    monkeypatch.setattr(recompute, "_swap", paused_swap)

    def run_in_background():
        try:
            segment_recompute(as_of=AS_OF)
        except Exception as exc:
            seen["error"] = exc
        finally:
            try:
                connection.close()
            except Exception:
                seen["close"] = "failed"

    worker = threading.Thread(target=run_in_background)
    worker.start()
    try:
        assert reached.wait(20), "the background run never reached the swap"
        # when the run has computed everything but not committed: readers see the previous results
        assert _segments() == {who.pk: "lost"}
        # a second run exits at once
        with pytest.raises(RecomputeAlreadyRunning):
            segment_recompute(as_of=AS_OF)
        # and the worker is killed
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [seen["pid"]])
    finally:
        release.set()
        worker.join(20)
    # then
    assert "error" in seen
    assert _segments() == {who.pk: "lost"}
    assert RfmRun.objects.get(is_current=True) == first
    assert list(RfmRun.objects.filter(status=RfmRun.Status.SUCCEEDED)) == [first]
    assert not _table_exists(recompute.NEXT_TABLE)
    # and the next run works
    assert segment_recompute(as_of=AS_OF).status == RfmRun.Status.SUCCEEDED
    assert _segments() == {who.pk: "promising"}
