"""Recomputing every member's R, F, M, scores and segment: ``segment_recompute``.

**What** (PRODUCT.md, *RFM*): as of a local date D (settings.TIME_ZONE) with the scheme's window of W
days — paid dates in (D − W, D] — for every member registered on or before D: R = days from the
local date of the last paid order ever (on or before D) to D; F = paid orders in the window; M =
their ``amount − refunded_amount`` (F and M each over a window of its own when the scheme gives
one: ``SchemeSpec.windows``). Orders refunded in full count nowhere. Refunds are taken as
they are now (``Order.refunded_amount``), also for a past D. Scores and segments: see
``segmentation.services.rfm_sql`` (the exact quintile formula is there) and ``segmentation.rules``.

**How**, all set-based in the database (no row comes into Python):

0. the run is recorded ``running`` in a short transaction of its own (under the advisory lock
   below; a second run exits at once with ``RecomputeAlreadyRunning`` and writes nothing), so
   operators see it in the run list, and see it ``failed`` should its worker die: every run
   first marks failed the runs whose session is gone (``recompute_reap_stale``, also a periodic
   task) — a live run says so in its session's ``application_name``;

then, in one transaction:

1. the advisory lock (``members.advisory_locks.try_xact_lock``, namespace
   ``segmentation.recompute``);
2. the result for everyone is built into a new table ``segmentation_memberrfm_next`` with one
   ``CREATE TABLE … AS SELECT`` (aggregate → rank → score → segment, with each member's current
   segment joined in; PostgreSQL may run it in parallel), then its indexes, copied from the live
   table. With the orders' covering index ``(member_id, paid_at) INCLUDE (amount,
   refunded_amount)`` the statement streams (``_streaming_plan``: an index-only scan in member
   order, group by group, merge-joined to the members and the current results — no hash table of
   everyone: the fastest plan, and the server's memory does not grow with members);
3. from that table, in one pass (``rfm_sql.summary_sql``): counts and averages per segment, the
   quintile cut points, the per-run snapshot (the ``bigint[]`` of member ids per segment) and the
   transitions (members whose segment differs from the one joined in, or who are new — apart, in
   member order, when most members move: ``_most_members_move``);
4. the swap: lock the live table — a bounded wait (``lock_timeout``) per attempt, a backoff that
   lets refunds' refreshes through, a few attempts, then ``SwapLockTimeout``: the run is recorded
   failed and its task retries later (``_lock_live_table``) — keep the rows an order refreshed
   since the run started (they
   saw newer orders than the run; their run transitions are dropped), drop it, rename the new one
   in its place (with its indexes' names). Readers keep reading the previous results throughout —
   they wait only for the few milliseconds of the swap, never see a half-written table;
5. ``MemberRfmScore`` (what tier rules read) becomes R + F + M of the new results — only the
   scores that change are written, those of members without one deleted — still under the swap's
   lock, so it never disagrees with ``MemberRfm``; a narrow table of its own, so member rows are
   never rewritten or waited for. When no tier rule reads scores it is emptied instead (a new RFM
   condition applies from the next run);
6. commit; then ``segment_changed`` is published once per transition (streamed from the table in
   chunks; not read at all when nobody subscribes).

**Progress** (for the dashboard's live bar): each step sets the session's ``application_name``
(``SET LOCAL``, so it reverts when the transaction ends) to ``huiyuan-rfm:<step>/<steps>:<phase>``.
PostgreSQL shows it to every other session in ``pg_stat_activity`` at once — unlike a row of the
run's, which nobody sees before the commit — and ``recompute_progress()`` reads it back: no table
is written, and a crashed worker leaves nothing behind to clean up.

The new table is built from the live one's catalog entries (columns and types from the model,
indexes and constraints with their names), so migrations keep working on it; privileges granted
directly on the table to other roles are not copied (grant them on the schema's default privileges).

A crash anywhere rolls everything back (DDL is transactional in PostgreSQL): the previous results
stay, and the run is recorded ``failed`` with the error (by the next run, when the worker died).
The worker's memory does not grow with members: nothing per member passes through Python, and
the transitions are published from a server-side cursor (bench/rfm.py: the same peak RSS at 100k
and 3M members, first run included). The same inputs give the same output: the SQL has no
randomness, ties are resolved by ``RANK()``.

**Scale out** (``segment_recompute_task`` with ``chunks > 1``, a Celery chord):

- ``segment_recompute_split`` creates the run (``running``) and cuts the member ids into ``chunks``
  ranges of equal width;
- one ``segment_recompute_chunk_task`` per range — on any number of workers, in parallel —
  aggregates the orders of its members into ``RfmStagingRow`` (an UNLOGGED table), idempotently;
  this is the part that grows with orders;
- when all are done, ``segment_recompute_finish_task`` computes the cut points once, globally,
  from all staged rows (ranks need everyone), stores them on the run, and scores, segments,
  records transitions and swaps in atomically exactly like steps 2–6 above.

A brand with tens of millions of members sets ``SEGMENTATION_RECOMPUTE_CHUNKS`` (e.g. 4 × the
workers), adds Celery workers and gives PostgreSQL more cores and ``work_mem``; the code does not
change. Chords need a Celery result backend (``CELERY_RESULT_BACKEND``).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
import zlib
from contextlib import contextmanager
from decimal import Decimal
from functools import partial

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import Max, Min
from django.utils import timezone
from django.utils.translation import gettext as _

from members.advisory_locks import namespace_key, try_xact_lock
from members.models import Member
from members.pg_tables import analyze_sampled, lock_exclusive
from members.services.tiers import rfm_scores_wanted, tiers_upgrade_on_score
from segmentation.events import segment_changed
from segmentation.models import (
    MemberRfm,
    RfmRun,
    RfmStagingRow,
    Scheme,
    Segment,
    SegmentSnapshot,
    SegmentTransition,
)
from segmentation.scoring import QUINTILES, SchemeSpec
from segmentation.services import rfm_sql

logger = logging.getLogger(__name__)

LOCK_NAMESPACE = namespace_key("segmentation.recompute")
CURRENT_TABLE = MemberRfm._meta.db_table
NEXT_TABLE = f"{CURRENT_TABLE}_next"
SNAPSHOT_TABLE = SegmentSnapshot._meta.db_table
TRANSITION_TABLE = SegmentTransition._meta.db_table
STAGING_TABLE = RfmStagingRow._meta.db_table


class RecomputeAlreadyRunning(Exception):
    """Another recompute holds the lock; this one did nothing."""


class NoActiveScheme(Exception):
    """No segmentation scheme is active."""


class SwapLockTimeout(Exception):
    """The swap could not lock the live table within its bounded waits (a long reader held it):
    the run did nothing and is recorded as failed; the task retries it later."""


PROGRESS_PREFIX = "huiyuan-rfm"
ALIVE_PREFIX = "huiyuan-rfm-run"
PROGRESS_PHASES = ("started", "aggregating", "summarising", "indexes", "swapping", "scores")


def _report_progress(phase: str, run_id: int | None = None) -> None:
    """Tell other sessions which step this recompute (of run ``run_id``) is at (see *Progress*)."""
    step = PROGRESS_PHASES.index(phase) + 1
    run = f"r{run_id}:" if run_id else ""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('application_name', %s, true)",
            [f"{PROGRESS_PREFIX}:{step}/{len(PROGRESS_PHASES)}:{run}{phase}"],
        )


def _mark_alive(run_id: int | None) -> None:
    """While this session works on run ``run_id``, say so in its session-level ``application_name``
    (``huiyuan-rfm-run:<id>``; None: back to its own name). A session that dies — a SIGKILLed
    worker — takes the mark with it, which is how ``recompute_reap_stale`` tells a dead run from
    a live one."""
    with connection.cursor() as cursor:
        if run_id is None:
            cursor.execute(
                "SELECT set_config('application_name', reset_val, false) FROM pg_settings "
                "WHERE name = 'application_name'"
            )
        else:
            cursor.execute("SELECT set_config('application_name', %s, false)", [f"{ALIVE_PREFIX}:{run_id}"])


def _report_progress_end() -> None:
    """Back to the session's own name (a caller's outer transaction may go on for a while)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('application_name', reset_val, true) FROM pg_settings WHERE name = 'application_name'"
        )


def recompute_progress() -> dict | None:
    """The recompute running now in any process, as its last progress report says:
    ``{"phase", "step", "steps", "since"}`` (``since``: when its transaction began), or None."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # not the view as this transaction first saw it
        cursor.execute(
            """SELECT application_name, xact_start FROM pg_stat_activity
               WHERE datname = current_database() AND application_name LIKE %s
               ORDER BY xact_start NULLS LAST LIMIT 1""",
            [f"{PROGRESS_PREFIX}:%"],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    parts = row[0].split(":")
    try:
        step, total = (int(part) for part in parts[1].split("/"))
    except (IndexError, ValueError):
        return None
    phase = parts[-1]
    return {"phase": phase, "step": step, "steps": total, "since": row[1]}


def active_scheme() -> Scheme:
    scheme = Scheme.objects.filter(is_active=True).first()
    if scheme is None:
        raise NoActiveScheme(_("No segmentation scheme is active: activate one in the admin."))
    return scheme


# --- Locking ----------------------------------------------------------------------------------


def _advisory_lock_or_raise() -> None:
    """Inside a transaction: hold the recompute lock until it ends, or raise."""
    if not try_xact_lock(LOCK_NAMESPACE):
        raise RecomputeAlreadyRunning(_("Another RFM recompute is running; this one did nothing."))


def _stale_after() -> dt.timedelta:
    return dt.timedelta(seconds=int(getattr(settings, "CELERY_TASK_TIME_LIMIT", 3600)))


def _alive_run_ids() -> set[int]:
    """Runs some live session says it works on (``_mark_alive`` and the progress reports)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            """SELECT application_name FROM pg_stat_activity
               WHERE datname = current_database() AND (application_name LIKE %s OR application_name LIKE %s)""",
            [f"{ALIVE_PREFIX}:%", f"{PROGRESS_PREFIX}:%:r%:%"],
        )
        names = [name for (name,) in cursor.fetchall()]
    alive = set()
    for name in names:
        parts = name.split(":")
        mark = parts[1] if name.startswith(f"{ALIVE_PREFIX}:") else (parts[2][1:] if len(parts) == 4 else "")
        if mark.isdigit():
            alive.add(int(mark))
    return alive


def recompute_reap_stale() -> int:
    """Mark failed the runs left ``running`` by a worker that died (SIGKILL, OOM, a lost machine):
    a run in one piece whose session is gone, a split run older than the task time limit. Called
    by every run before it starts and by the periodic ``segment_recompute_reap_task``; returns how
    many it marked."""
    now = timezone.now()
    running = RfmRun.objects.filter(status=RfmRun.Status.RUNNING)
    alive = _alive_run_ids()
    dead = [
        run.pk
        for run in running.only("pk", "chunks", "started_at")
        if (run.chunks <= 1 and run.pk not in alive) or (run.chunks > 1 and run.started_at < now - _stale_after())
    ]
    if not dead:
        return 0
    logger.error("RFM runs %s were left running by a worker that stopped: marked failed", dead)
    return running.filter(pk__in=dead).update(
        status=RfmRun.Status.FAILED,
        finished_at=now,
        error=_("Abandoned: the worker running it stopped (killed, out of memory or timed out) before it finished."),
    )


# --- The service ------------------------------------------------------------------------------


def segment_recompute(*, as_of: dt.date | None = None, scheme: Scheme | None = None) -> RfmRun:
    """Recompute everyone as of ``as_of`` (default: today in settings.TIME_ZONE) with ``scheme``
    (default: the active one) and make it the current result. Returns the succeeded run; raises
    ``RecomputeAlreadyRunning`` when another run holds the lock (nothing is written then) and
    re-raises any failure after recording a ``failed`` run (the previous results are intact)."""
    scheme = scheme or active_scheme()
    as_of = as_of or timezone.localdate()
    spec = SchemeSpec.from_scheme(scheme)
    window, f_window, m_window = spec.windows(as_of)
    clock = time.monotonic()
    run = _start_run(scheme=scheme, as_of=as_of, spec=spec)
    try:
        with transaction.atomic():
            if not try_xact_lock(LOCK_NAMESPACE):  # another run slipped in since ours was recorded
                raise RecomputeAlreadyRunning(_("Another RFM recompute is running; this one did nothing."))
            _report_progress("started", run.pk)
            _tune_session()
            aggregate = rfm_sql.aggregate_sql(
                window=window,
                previous_table=CURRENT_TABLE,
                activity_kinds=spec.activity_kinds,
                f_window=f_window,
                m_window=m_window,
            )
            _execute(run, spec, rfm_sql.scored_sql(spec, aggregate, previous=True))
            _succeed(run, clock)
    except RecomputeAlreadyRunning:
        RfmRun.objects.filter(pk=run.pk, status=RfmRun.Status.RUNNING).delete()  # it never ran
        raise
    except Exception as exc:
        _record_failure(run, clock=clock, exc=exc)
        raise
    finally:
        _forget_alive()
    _tiers_follow_scores(run)
    return run


def _tiers_follow_scores(run: RfmRun) -> None:
    """After a run of today committed: members whom their new score qualifies for a higher tier move
    up now (in quintile mode a score can rise without an order). The run stands whatever happens here."""
    if run.as_of < timezone.localdate() or not rfm_scores_wanted():
        return
    try:
        moved = tiers_upgrade_on_score()
    except Exception:
        logger.exception("RFM run %s: moving tiers up on the new scores failed", run.pk)
        return
    if moved:
        logger.info("RFM run %s: %s members moved up a tier on their new scores", run.pk, moved)


def _start_run(*, scheme: Scheme, as_of: dt.date, spec: SchemeSpec) -> RfmRun:
    """Record the run (``running``) in a transaction of its own, so that operators see it — and
    see it failed should its worker die — then the work runs in the next one. Raises
    ``RecomputeAlreadyRunning`` (writing nothing) when another run holds the lock."""
    with transaction.atomic():
        _advisory_lock_or_raise()
        recompute_reap_stale()
        run = RfmRun.objects.create(scheme=scheme, as_of=as_of, started_at=_db_now(), params=spec.to_params())
        _mark_alive(run.pk)
    return run


def _forget_alive() -> None:
    try:
        if not connection.needs_rollback:
            _mark_alive(None)
    except Exception:  # a dead connection has no name to reset
        logger.debug("could not reset application_name", exc_info=True)


def _db_now() -> dt.datetime:
    """The platform's clock now (not the transaction's start: a caller may run twice in one
    transaction), as every other timestamp is written."""
    return timezone.now()


def _tune_session() -> None:
    """``work_mem`` for the statement's sorts (quintile ranks), ``maintenance_work_mem`` for the
    index builds of the new table: caps on the server's memory, which larger brands keep (an index
    build past its cap sorts on disk, a little slower, instead of growing with members)."""
    values = {}
    for name, setting, default in (
        ("work_mem", "SEGMENTATION_WORK_MEM", "256MB"),
        ("maintenance_work_mem", "SEGMENTATION_INDEX_WORK_MEM", "64MB"),
    ):
        values[name] = str(getattr(settings, setting, default))
        if not re.fullmatch(r"\d+\s*(kB|MB|GB)", values[name]):
            raise ValueError(f"{setting} looks like '{default}'")
    with connection.cursor() as cursor:
        for name, value in values.items():
            cursor.execute(f"SET LOCAL {name} = '{value}'")


def _execute(run: RfmRun, spec: SchemeSpec, scored: tuple[str, list]) -> None:
    """Steps 2–5 of the module docstring, inside the caller's transaction."""
    keep_live = run.as_of >= timezone.localdate()
    with connection.cursor() as cursor:
        indexes = _index_plan(cursor)
        _report_progress("aggregating", run.pk)
        _build_next(cursor, run, scored)
        _report_progress("summarising", run.pk)
        _summarise(cursor, run, spec)
        _finish_next(cursor)
        _report_progress("indexes", run.pk)
        _build_indexes(cursor, indexes)
        _report_progress("swapping", run.pk)
        _swap(cursor, run, indexes, keep_live=keep_live)
        _report_progress("scores", run.pk)
        for statement in rfm_sql.member_rfm_score_sql(CURRENT_TABLE, wanted=rfm_scores_wanted()):
            cursor.execute(statement)
    _report_progress_end()


def _succeed(run: RfmRun, clock: float) -> None:
    RfmRun.objects.filter(is_current=True).exclude(pk=run.pk).update(is_current=False)
    run.status = RfmRun.Status.SUCCEEDED
    run.is_current = True
    run.finished_at = timezone.now()
    run.duration = dt.timedelta(seconds=time.monotonic() - clock)
    run.error = ""
    run.save()
    transaction.on_commit(partial(run_transitions_publish, run_id=run.pk))


def _record_failure(run: RfmRun, *, clock: float, exc: Exception) -> None:
    """The run's work was rolled back: record it failed, with the error (on a new connection when
    the failure took this one down)."""
    logger.exception("RFM recompute %s as of %s failed", run.pk, run.as_of)
    try:
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()
        RfmRun.objects.filter(pk=run.pk).update(
            status=RfmRun.Status.FAILED,
            is_current=False,
            finished_at=timezone.now(),
            duration=dt.timedelta(seconds=time.monotonic() - clock),
            error=f"{type(exc).__name__}: {exc}"[:2000],
        )
    except Exception:
        logger.exception("could not record the failed RFM run")


# --- Building the next result -----------------------------------------------------------------

# What goes into each MemberRfm column; %s parameters are bound in this order: run id, as-of date.
_COLUMN_VALUES = {
    "member_id": "x.member_id",
    "run_id": "%(run)s",
    "as_of": "%(as_of)s",
    "recency_days": "x.recency_days",
    "first_order_days": "x.first_order_days",
    "frequency": "x.frequency",
    "monetary": "x.monetary",
    "r_score": "x.r_score",
    "f_score": "x.f_score",
    "m_score": "x.m_score",
    "segment_id": "x.segment_id",
    "source_version": "NULL",
    "created_at": "%(now)s",
    "updated_at": "%(now)s",
}


def _memberrfm_columns() -> list:
    fields = MemberRfm._meta.concrete_fields
    missing = [field.column for field in fields if field.column not in _COLUMN_VALUES]
    if missing:
        raise RuntimeError(f"The recompute does not know how to fill MemberRfm columns {missing}.")
    return list(fields)


def _select_list(run: RfmRun) -> tuple[str, list]:
    """The SELECT list producing MemberRfm's columns from the scored rows ``x``, with parameters."""
    values = {"run": run.pk, "as_of": run.as_of.isoformat()}
    parts, params = [], []
    for field in _memberrfm_columns():
        expression = _COLUMN_VALUES[field.column]
        if expression.startswith("%("):
            key = expression[2:-2]
            expression = "%s"
            params.append(connection.ops.adapt_datetimefield_value(run.started_at) if key == "now" else values[key])
        parts.append(f"CAST({expression} AS {field.db_type(connection)}) AS {field.column}")
    return ", ".join(parts), params


def _has_covering_index(cursor) -> bool:
    """Whether the orders have the covering index ``(member_id, paid_at) INCLUDE (amount,
    refunded_amount)`` (whatever its name)."""
    cursor.execute(
        """SELECT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = %s::regclass AND i.indisvalid
                   AND pg_get_indexdef(i.indexrelid) LIKE %s)""",
        [rfm_sql.ORDER_TABLE, "%(member_id, paid_at) INCLUDE (amount, refunded_amount)"],
    )
    return cursor.fetchone()[0]


@contextmanager
def _streaming_plan(cursor):
    """With the covering index on orders, have the next statement stream: an index-only scan in
    member order, aggregated group by group and merge-joined to the members and to the current
    results — no hash table of every member, so the server's memory stays flat as members grow,
    and it is the fastest plan (bench/rfm.py measures both). PostgreSQL's estimate of distinct
    members in a sample of orders is far too low, so it would pick the hash plan on its own; the
    settings are the transaction's and undone right after. Without the index, nothing changes."""
    hinted = _has_covering_index(cursor)
    if hinted:
        cursor.execute("SET LOCAL enable_hashagg = off")
        cursor.execute("SET LOCAL enable_hashjoin = off")
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
    try:
        yield hinted
    finally:
        if hinted:
            for name in ("enable_hashagg", "enable_hashjoin", "enable_seqscan", "enable_bitmapscan"):
                cursor.execute(f"SET LOCAL {name} TO DEFAULT")


def _build_next(cursor, run: RfmRun, scored: tuple[str, list]) -> None:
    """One ``CREATE TABLE … AS SELECT`` (which PostgreSQL may run in parallel): every member's
    result, plus the current segment (``previous_segment_id``, dropped once the transitions are
    recorded; those of rows an order refreshed meanwhile are removed at the swap)."""
    select_list, params = _select_list(run)
    scored_sql, scored_params = scored
    cursor.execute(f"DROP TABLE IF EXISTS {NEXT_TABLE}")
    with _streaming_plan(cursor):
        cursor.execute(
            f"""CREATE TABLE {NEXT_TABLE} AS
                SELECT {select_list}, x.previous_segment_id FROM ({scored_sql}) x""",  # noqa: S608
            [*params, *scored_params],
        )


def _finish_next(cursor) -> None:
    """Make the next table exactly MemberRfm's shape: no helper columns, the NOT NULLs."""
    cursor.execute(f"ALTER TABLE {NEXT_TABLE} DROP COLUMN previous_segment_id")
    not_null = [field.column for field in _memberrfm_columns() if not field.null]
    if not_null:
        cursor.execute(
            f"ALTER TABLE {NEXT_TABLE} " + ", ".join(f"ALTER COLUMN {column} SET NOT NULL" for column in not_null)
        )


def _index_plan(cursor) -> list[dict]:
    """The live table's indexes and constraints, to rebuild on the next table under temporary
    names and rename after the swap (so the table looks exactly as its migrations left it)."""
    cursor.execute(
        """
        SELECT ic.relname, pg_get_indexdef(ix.indexrelid), con.conname, con.contype
        FROM pg_index ix
        JOIN pg_class ic ON ic.oid = ix.indexrelid
        LEFT JOIN pg_constraint con ON con.conindid = ix.indexrelid AND con.conrelid = ix.indrelid
        WHERE ix.indrelid = %s::regclass
        ORDER BY ic.relname
        """,
        [CURRENT_TABLE],
    )
    plan = []
    for number, (name, definition, constraint, kind) in enumerate(cursor.fetchall()):
        temporary = f"rfm_next_{number}_{zlib.crc32(name.encode()):x}"
        definition = re.sub(r" INDEX \S+ ON (ONLY )?\S+ ", f" INDEX {temporary} ON {NEXT_TABLE} ", definition, count=1)
        plan.append(
            {"name": name, "temporary": temporary, "definition": definition, "constraint": constraint, "kind": kind}
        )
    cursor.execute(
        """
        SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
        WHERE conrelid = %s::regclass AND contype IN ('c', 'f')
        """,
        [CURRENT_TABLE],
    )
    for name, definition in cursor.fetchall():
        plan.append({"name": name, "temporary": None, "definition": definition, "constraint": name, "kind": "c"})
    return plan


def _build_indexes(cursor, plan: list[dict]) -> None:
    for item in plan:
        if item["temporary"] is None:
            cursor.execute(f"ALTER TABLE {NEXT_TABLE} ADD CONSTRAINT {item['name']} {item['definition']}")
            continue
        cursor.execute(item["definition"])
        if item["kind"] in ("p", "u"):
            what = "PRIMARY KEY" if item["kind"] == "p" else "UNIQUE"
            cursor.execute(
                f"ALTER TABLE {NEXT_TABLE} ADD CONSTRAINT {item['temporary']} {what} USING INDEX {item['temporary']}"
            )
    analyze_sampled(cursor, NEXT_TABLE)


def _swap_lock_settings() -> tuple[int, int, float]:
    """(lock_timeout in ms, attempts, first backoff in seconds) of the swap's lock."""
    timeout_ms = int(getattr(settings, "SEGMENTATION_SWAP_LOCK_TIMEOUT_MS", 2000))
    attempts = int(getattr(settings, "SEGMENTATION_SWAP_LOCK_ATTEMPTS", 4))
    backoff = float(getattr(settings, "SEGMENTATION_SWAP_LOCK_BACKOFF_SECONDS", 2.0))
    if timeout_ms < 1 or attempts < 1 or backoff < 0:
        raise ValueError("SEGMENTATION_SWAP_LOCK_* must be positive")
    return timeout_ms, attempts, backoff


def _lock_live_table(cursor) -> None:
    """``LOCK TABLE … ACCESS EXCLUSIVE`` with a bounded wait. Behind a long reader (a report, a
    ``pg_dump``) the request queues, and every writer of the table — an order's or a refund's
    segment refresh — queues behind it: so each attempt waits at most ``lock_timeout``
    (``SEGMENTATION_SWAP_LOCK_TIMEOUT_MS``), gives up (a savepoint keeps the run's work), lets the
    writers through while it sleeps (``SEGMENTATION_SWAP_LOCK_BACKOFF_SECONDS``, doubling), and
    tries again, ``SEGMENTATION_SWAP_LOCK_ATTEMPTS`` times in all; then ``SwapLockTimeout``."""
    timeout_ms, attempts, backoff = _swap_lock_settings()
    for attempt in range(1, attempts + 1):
        try:
            with transaction.atomic():
                lock_exclusive(cursor, CURRENT_TABLE, timeout_ms=timeout_ms)
            return
        except OperationalError as exc:
            if getattr(getattr(exc, "__cause__", None), "sqlstate", None) != "55P03":  # lock_not_available
                raise
            if attempt == attempts:
                raise SwapLockTimeout(
                    _(
                        "Could not lock the current RFM results to swap in the new ones: "
                        "%(attempts)s waits of %(ms)s ms each timed out behind other sessions."
                    )
                    % {"attempts": attempts, "ms": timeout_ms}
                ) from exc
            pause = backoff * 2 ** (attempt - 1)
            logger.warning(
                "RFM swap: the live table is busy (attempt %s/%s); retrying in %.1f s", attempt, attempts, pause
            )
            time.sleep(pause)


def _swap(cursor, run: RfmRun, plan: list[dict], *, keep_live: bool) -> None:
    _lock_live_table(cursor)
    if keep_live:
        _keep_live_rows(cursor, run)
    cursor.execute(f"DROP TABLE {CURRENT_TABLE}")
    cursor.execute(f"ALTER TABLE {NEXT_TABLE} RENAME TO {CURRENT_TABLE}")
    for item in plan:
        if item["temporary"] is None:
            continue
        if item["kind"] in ("p", "u"):
            cursor.execute(f"ALTER TABLE {CURRENT_TABLE} RENAME CONSTRAINT {item['temporary']} TO {item['constraint']}")
        else:
            cursor.execute(f"ALTER INDEX {item['temporary']} RENAME TO {item['name']}")


def _keep_live_rows(cursor, run: RfmRun) -> None:
    """Rows an order or refund refreshed after the run started saw newer orders than the run:
    they win over the run's rows, and the run records no transition for them."""
    columns = ", ".join(field.column for field in _memberrfm_columns())
    cursor.execute(
        f"SELECT member_id FROM {CURRENT_TABLE} WHERE updated_at >= %s",  # noqa: S608
        [connection.ops.adapt_datetimefield_value(run.started_at)],
    )
    fresh = [member_id for (member_id,) in cursor.fetchall()]
    for start in range(0, len(fresh), 1000):
        ids = fresh[start : start + 1000]
        marks = ", ".join(["%s"] * len(ids))
        cursor.execute(f"DELETE FROM {NEXT_TABLE} WHERE member_id IN ({marks})", ids)  # noqa: S608
        cursor.execute(
            f"INSERT INTO {NEXT_TABLE} ({columns}) SELECT {columns} FROM {CURRENT_TABLE} WHERE member_id IN ({marks})",  # noqa: S608
            ids,
        )
        cursor.execute(
            f"DELETE FROM {TRANSITION_TABLE} WHERE run_id = %s AND member_id IN ({marks})",  # noqa: S608
            [run.pk, *ids],
        )
    if fresh:
        run.transition_count = SegmentTransition.objects.filter(run=run).count()


# --- What a run records -----------------------------------------------------------------------


def _number(value, places: int = 2) -> str | None:
    if value is None:
        return None
    return str(Decimal(str(value)).quantize(Decimal(1).scaleb(-places)))


def _summarise(cursor, run: RfmRun, spec: SchemeSpec) -> None:
    """Counts and averages per segment, the snapshot of this run and its transitions, from the next
    table while it still has ``previous_segment_id``: in one pass (``rfm_sql.summary_sql``), but
    for a run that moves most members (``_most_members_move``), whose transitions are inserted
    in member order by a statement of their own (``rfm_sql.transitions_sql``)."""
    slugs = dict(Segment.objects.filter(pk__in=[rule["segment_id"] for rule in spec.rules]).values_list("pk", "slug"))
    params = {"run": run.pk, "now": connection.ops.adapt_datetimefield_value(run.started_at)}
    apart = _most_members_move(run)
    if apart:
        cursor.execute(rfm_sql.transitions_sql(NEXT_TABLE, TRANSITION_TABLE), params)
        run.transition_count = max(cursor.rowcount, 0)
    summary = rfm_sql.summary_sql(NEXT_TABLE, SNAPSHOT_TABLE, TRANSITION_TABLE, spec, transitions=not apart)
    cursor.execute(summary, params)
    stats, members, buyers, moved, cuts = {}, 0, 0, 0, []
    for segment_id, count, avg_r, avg_f, avg_m, segment_buyers, segment_moved, *segment_cuts in cursor.fetchall():
        moved += segment_moved
        cuts.append(segment_cuts)
        stats[slugs.get(segment_id, "") if segment_id else ""] = {
            "segment_id": segment_id,
            "count": count,
            "avg_recency_days": _number(avg_r, 1),
            "avg_frequency": _number(avg_f, 2),
            "avg_monetary": _number(avg_m, 2),
        }
        members += count
        buyers += segment_buyers or 0
    run.segment_stats, run.member_count, run.buyer_count = stats, members, buyers
    if not apart:
        run.transition_count = moved
    run.cut_points = _cut_points(cuts, buyers) if spec.mode == QUINTILES else {}


def _most_members_move(run: RfmRun) -> bool:
    """Whether the run probably moves most members to another segment: a first run (no current
    results), or one with other rules than the current run's (another scheme, or the same one
    edited). A guess only decides how the transitions are inserted, never which."""
    current = RfmRun.objects.filter(is_current=True).exclude(pk=run.pk).values_list("scheme_id", "params").first()
    return current is None or current != (run.scheme_id, run.params)


def _cut_points(per_segment: list[list], buyers: int) -> dict:
    """The run's cut points from each segment's (``rfm_sql.cut_point_aggregates``): the least good
    value scoring ≥ s anywhere is the largest R, the smallest F and M of the segments'."""
    combined = []
    for index, (_dim, _column, agg) in enumerate(rfm_sql.CUT_POINT_COLUMNS):
        for step in range(4):
            values = [row[index * 4 + step] for row in per_segment if row[index * 4 + step] is not None]
            combined.append((max if agg == "MAX" else min)(values) if values else None)
    r, f, m = combined[0:4], combined[4:8], combined[8:12]
    return {
        "r": [None if v is None else int(v) for v in r],
        "f": [None if v is None else int(v) for v in f],
        "m": [_number(v) for v in m],
        "buyers": buyers,
    }


def run_transitions_publish(*, run_id: int, chunk_size: int = 5000) -> int:
    """Publish ``segment_changed`` once per transition of a committed run (streamed in chunks).
    Marks the run so that calling it again publishes nothing."""
    claimed = RfmRun.objects.filter(pk=run_id, events_published_at__isnull=True).update(
        events_published_at=timezone.now()
    )
    if not claimed or not segment_changed.handlers:  # nobody listens: nothing to stream
        return 0
    slugs = dict(Segment.objects.values_list("pk", "slug"))
    published = 0
    rows = (
        SegmentTransition.objects.filter(run_id=run_id, source=SegmentTransition.Source.RUN)
        .order_by()
        .values_list("id", "member_id", "from_segment_id", "to_segment_id")
        .iterator(chunk_size=chunk_size)
    )
    for transition_id, member_id, from_id, to_id in rows:
        segment_changed.publish(
            transition_id=transition_id,
            run_id=run_id,
            member_id=member_id,
            from_segment_id=from_id,
            to_segment_id=to_id,
            from_slug=slugs.get(from_id),
            to_slug=slugs.get(to_id),
            source=SegmentTransition.Source.RUN.value,
        )
        published += 1
    return published


# --- Scale-out: one run split across workers --------------------------------------------------


def segment_recompute_split(
    *, chunks: int, as_of: dt.date | None = None, scheme: Scheme | None = None
) -> tuple[RfmRun, list[tuple[int, int]]]:
    """Start a run to be computed by ``chunks`` workers: returns it with the member-id ranges."""
    scheme = scheme or active_scheme()
    as_of = as_of or timezone.localdate()
    spec = SchemeSpec.from_scheme(scheme)
    with transaction.atomic():
        _advisory_lock_or_raise()
        recompute_reap_stale()
        if RfmRun.objects.filter(status=RfmRun.Status.RUNNING).exists():
            raise RecomputeAlreadyRunning(_("Another RFM recompute is running; this one did nothing."))
        run = RfmRun.objects.create(
            scheme=scheme, as_of=as_of, started_at=_db_now(), params=spec.to_params(), chunks=chunks
        )
    ids = Member.objects.aggregate(low=Min("id"), high=Max("id"))
    low, high = ids["low"] or 0, ids["high"] or 0
    width = max(1, -(-(high - low + 1) // max(1, chunks)))
    ranges = [(start, min(start + width - 1, high)) for start in range(low, high + 1, width)] or [(0, 0)]
    return run, ranges


def segment_recompute_chunk(*, run_id: int, member_range: tuple[int, int]) -> int:
    """Aggregate the members of ``member_range`` into the staging table (idempotent)."""
    run = RfmRun.objects.get(pk=run_id)
    if run.status != RfmRun.Status.RUNNING:
        return 0
    spec = SchemeSpec.from_params(run.params)
    window, f_window, m_window = spec.windows(run.as_of)
    agg_sql, agg_params = rfm_sql.aggregate_sql(
        window=window,
        member_range=member_range,
        activity_kinds=spec.activity_kinds,
        f_window=f_window,
        m_window=m_window,
    )
    with transaction.atomic(), connection.cursor() as cursor:
        _tune_session()
        cursor.execute(
            f"DELETE FROM {STAGING_TABLE} WHERE run_id = %s AND member_id BETWEEN %s AND %s",  # noqa: S608
            [run_id, *member_range],
        )
        with _streaming_plan(cursor):
            cursor.execute(
                f"""INSERT INTO {STAGING_TABLE} (run_id, member_id, recency_days, first_order_days, frequency, monetary)
                    SELECT %s, a.member_id, a.recency_days, a.first_order_days, a.frequency, a.money
                    FROM ({agg_sql}) a""",  # noqa: S608
                [run_id, *agg_params],
            )
            return max(cursor.rowcount, 0)


def segment_recompute_finish(*, run_id: int) -> RfmRun:
    """Score the staged rows with cut points computed once over all of them, and swap in."""
    run = RfmRun.objects.get(pk=run_id)
    if run.status != RfmRun.Status.RUNNING:
        return run
    spec = SchemeSpec.from_params(run.params)
    clock = time.monotonic() - (timezone.now() - run.started_at).total_seconds()
    try:
        with transaction.atomic():
            _advisory_lock_or_raise()
            _report_progress("started", run.pk)
            _tune_session()
            staged = rfm_sql.staging_sql(run_id=run.pk, previous_table=CURRENT_TABLE)
            _execute(run, spec, rfm_sql.scored_sql(spec, staged, previous=True))
            RfmStagingRow.objects.filter(run_id=run.pk).delete()
            _succeed(run, clock)
    except Exception as exc:
        _record_failure(run, clock=clock, exc=exc)
        RfmStagingRow.objects.filter(run_id=run.pk).delete()
        raise
    return run
