"""Benchmark of the RFM recompute (issues 5 and 22).

    .venv/bin/python bench/rfm.py                  # 1,000,000 members × 10 orders, and 100,000, seed 42
    .venv/bin/python bench/rfm.py --members 3000000 --orders-per-member 10 --rounds 2 --keep
    .venv/bin/python bench/rfm.py --skip-build --keep --members 3000000 --insert-cost 1000

Builds, from a fixed seed, a dataset over two years (skewed: 15 % never buy, about half buy once,
a few per cent buy hundreds of times; 3 % of orders refunded in full, 2 % in part) with set-based
SQL (``generate_series`` and the server's seeded ``random()``: nothing per row in Python, 3M members
and 30M orders in about seven minutes) into its own database ``huiyuan_rfmbench`` (``--members``)
and ``huiyuan_rfmbench_small`` (``--small-members``, the memory-growth baseline), migrated like
production, and adds the orders' covering index ``(member_id, paid_at) INCLUDE (amount,
refunded_amount)`` unless ``--no-covering-index``. Then measures, alternating and repeated:

(a) the project: ``segment_recompute_task`` as a Celery worker runs it, to commit, in a fresh
    process (whose peak RSS, ``ru_maxrss``, is the memory figure; the private memory of the
    database session serving it, sampled from /proc, is shown beside it) — including what the
    floor does not do: transitions, snapshot, the swap, and ``MemberRfmScore`` (when tier rules
    read scores); at both sizes, and a first run (every member enters a segment) at both;
(b) the floors: one hand-written ``CREATE TABLE … AS SELECT`` computing the same aggregates,
    scores and segments into a table of the same shape (checked equal to the project's result),
    with today's plan (parallel hash aggregate over a sequential scan) and with the covering
    index's (group aggregate over an index-only scan, merge-joined); the ratio is to the best;
(c) a naive per-member ORM loop on a sample of members, extrapolated to all of them;
(d) the per-order update: ``order_record`` with and without the segmentation subscriber;
(e) ``--insert-cost N``: what the covering index costs an order insert (N single-row inserts with
    today's index, with the covering one instead, with both).

It prints the medians, the peak memory at both sizes and the ratios against the targets, and drops
its databases unless ``--keep``. Needs PostgreSQL (``--pg``, default postgres://root@127.0.0.1:5432).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGETS = {
    "ratio_floor": 1.5,
    "seconds": 10.0,
    "naive_factor": 150.0,
    "rss_mb": 300.0,
    "rss_growth": 0.10,
    "order_ms": 1.0,
}


# --- Database plumbing ------------------------------------------------------------------------


def db_url(base: str, name: str) -> str:
    return f"{base.rstrip('/')}/{name}"


def admin_connect(base: str):
    import psycopg

    return psycopg.connect(db_url(base, "postgres"), autocommit=True)


def recreate_database(base: str, name: str) -> None:
    with admin_connect(base) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(base: str, name: str) -> None:
    with admin_connect(base) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def child_env(url: str) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", "memory://"),
        "HUIYUAN_VAR_DIR": os.environ.get("HUIYUAN_VAR_DIR", str(ROOT / "var" / "bench")),
    }


def migrate(url: str) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "migrate", "-v", "0", "--skip-checks"],
        cwd=ROOT,
        env=child_env(url),
        check=True,
    )


# --- Building the dataset ---------------------------------------------------------------------


def _without_indexes(conn, table: str):
    """Drop a table's secondary indexes and constraints (not its primary key); return the SQL
    that recreates them."""
    rows = conn.execute(
        """
        SELECT 'ALTER TABLE ' || %(t)s || ' ADD CONSTRAINT ' || conname || ' ' || pg_get_constraintdef(oid),
               'ALTER TABLE ' || %(t)s || ' DROP CONSTRAINT ' || conname, 1
        FROM pg_constraint WHERE conrelid = %(t)s::regclass AND contype IN ('u', 'f', 'c')
        UNION ALL
        SELECT pg_get_indexdef(i.indexrelid), 'DROP INDEX ' || c.relname, 0
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = %(t)s::regclass AND NOT i.indisprimary
          AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
        """,
        {"t": table},
    ).fetchall()
    for _create, drop, _kind in rows:
        conn.execute(drop)
    # indexes first, then constraints (foreign keys need the referenced unique indexes)
    return [create for create, _drop, kind in sorted(rows, key=lambda row: row[2])]


def build(
    url: str, *, members: int, seed: int, log, orders_per_member: float = 10.0, orders: int | None = None
) -> dict:
    """Create the schema (migrations) and fill it with set-based SQL (``generate_series``, the
    server's ``random()`` seeded by ``setseed``): nothing per row passes through Python, so 3M
    members and 30M orders build in minutes. ``orders`` (a total, as bench/dashboard.py asks)
    overrides ``orders_per_member``; the total comes within a fraction of a per cent. Returns counts."""
    import psycopg

    if orders is not None:
        orders_per_member = orders / max(1, members)

    migrate(url)
    started = time.monotonic()
    stores = 50
    with psycopg.connect(url) as conn:
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute("SET synchronous_commit = off")
        recreate = {table: _without_indexes(conn, table) for table in ("members_order", "members_member")}
        conn.execute("SELECT setseed(%s)", [(seed % 1000) / 1000])
        conn.execute(
            """INSERT INTO members_store (id, created_at, updated_at, code, name, city, is_active)
               SELECT s, now(), now(), 'B' || lpad(s::text, 3, '0'), '门店' || s, '上海', true
               FROM generate_series(1, %s) s""",
            [stores],
        )
        log(f"  members: {members:,}")
        # One row per member: registration, home store, and a raw order count — 15 % never buy,
        # ~47 % once, a long tail (Pareto, α = 1.2) of frequent buyers; then when they were last
        # active (recent, this year or lapsed).
        conn.execute(
            """CREATE TEMP TABLE bench_people AS
               SELECT i AS member_id, 1 + floor(r1 * 1100)::int AS reg_days, floor(r2 * 86400)::int AS reg_secs,
                      1 + floor(r3 * %(stores)s)::int AS store,
                      CASE WHEN r4 < 0.15 THEN 0 WHEN r4 < 0.62 THEN 1
                           WHEN r4 < 0.87 THEN 2 + floor(r5 * 5) WHEN r4 < 0.97 THEN 7 + floor(r5 * 34)
                           ELSE least(5000, floor(40 / power(1 - r5, 1 / 1.2))) END::int AS base,
                      r6 AS scale_roll, r7 AS active_roll, r8 AS active_pick, r9 AS spread
               FROM (SELECT i, random() r1, random() r2, random() r3, random() r4, random() r5, random() r6,
                            random() r7, random() r8, random() r9
                     FROM generate_series(1, %(members)s) i) g""",
            {"members": members, "stores": stores},
        )
        conn.execute(
            """INSERT INTO members_member (id, created_at, updated_at, mobile, name, gender, registered_at, channel,
                                           referral_code, home_store_id, is_active)
               SELECT member_id, now(), now(), '1' || (3 + member_id % 7) || lpad(member_id::text, 9, '0'), '',
                      'unknown', now() - make_interval(days => reg_days, secs => reg_secs), 'store',
                      'B' || lpad(to_hex(member_id), 8, '0'), store, true
               FROM bench_people"""
        )
        # Scale the raw counts to the wanted mean (a buyer keeps at least one order).
        total_base = conn.execute("SELECT sum(base) FROM bench_people").fetchone()[0] or 1
        scale = orders_per_member * members / total_base
        conn.execute(
            """CREATE TEMP TABLE bench_plan AS
               SELECT member_id, store, cnt, last_day,
                      least(earliest, last_day + least(700, 3 * cnt + floor(spread * 201)::int)) AS first_day,
                      sum(cnt) OVER (ORDER BY member_id) - cnt AS offset_id
               FROM (SELECT member_id, store, spread, least(reg_days, 730) AS earliest, cnt,
                            least(least(reg_days, 730),
                                  CASE WHEN active_roll < 0.35 THEN floor(active_pick * 31)
                                       WHEN active_roll < 0.7 THEN 31 + floor(active_pick * 335)
                                       ELSE 366 + floor(active_pick * 365) END::int) AS last_day
                     FROM (SELECT *, greatest(1, floor(base * %s + scale_roll))::int AS cnt
                           FROM bench_people WHERE base > 0) c) p""",
            [scale],
        )
        planned = conn.execute("SELECT coalesce(sum(cnt), 0), count(*) FROM bench_plan").fetchone()
        log(f"  orders: {planned[0]:,} for {planned[1]:,} buyers")
        # lognormal amounts (Box–Muller); 3 % refunded in full, 2 % in part
        conn.execute(
            """INSERT INTO members_order (id, created_at, updated_at, external_id, paid_at, amount, refunded_amount,
                                          status, member_id, store_id)
               SELECT id, now(), now(), 'B' || lpad(id::text, 10, '0'),
                      now() - make_interval(days => day, secs => secs),
                      amount, CASE WHEN refund < 0.03 THEN amount WHEN refund < 0.05 THEN round(amount * 0.3, 2)
                                   ELSE 0 END,
                      CASE WHEN refund < 0.03 THEN 'refunded' WHEN refund < 0.05 THEN 'partially_refunded'
                           ELSE 'paid' END,
                      member_id, store
               FROM (SELECT p.offset_id + n AS id, p.member_id, p.store,
                            CASE WHEN n = 1 THEN p.last_day
                                 ELSE p.last_day + floor(random() * (p.first_day - p.last_day + 1))::int END AS day,
                            floor(random() * 86400)::int AS secs,
                            least(5000, greatest(1, exp(4.2 + 0.7 * sqrt(-2 * ln(1 - random()))
                                                              * cos(2 * pi() * random()))))::numeric(12, 2) AS amount,
                            random() AS refund
                     FROM bench_plan p CROSS JOIN LATERAL generate_series(1, p.cnt) n) o"""
        )
        log(f"  generated in {time.monotonic() - started:.0f} s; rebuilding indexes and constraints")
        for table in ("members_member", "members_order"):
            for statement in recreate[table]:
                conn.execute(statement)
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        conn.execute("SELECT setval(pg_get_serial_sequence('members_store', 'id'), %s)", [stores])
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (FREEZE, ANALYZE) members_member, members_order, members_store")
    log(f"  built in {time.monotonic() - started:.0f} s")
    return {"members": members, "orders": int(planned[0]), "buyers": int(planned[1])}


# --- (a) the project, in a child process ------------------------------------------------------


def _private_kb(pid: int) -> int:
    """A process's private resident memory (``RssAnon``, kB; shared buffers are not counted)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class BackendSampler(threading.Thread):
    """Samples, every 50 ms, the private memory of the PostgreSQL backend serving the recompute and
    of its parallel workers (same machine only: /proc). The peak is the server side of the figure."""

    def __init__(self, backend_pid: int):
        super().__init__(daemon=True)
        self.backend_pid, self.peak_kb, self.done = backend_pid, 0, threading.Event()

    def _workers(self) -> list[int]:
        marker = f"parallel worker for PID {self.backend_pid}".encode()
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                        if marker in cmdline.read():
                            found.append(int(entry))
                except OSError:
                    continue
        return found

    def run(self) -> None:
        tick = 0
        workers: list[int] = []
        while not self.done.wait(0.05):
            if tick % 10 == 0:  # parallel workers come and go with each statement
                workers = self._workers()
            tick += 1
            total = _private_kb(self.backend_pid) + sum(_private_kb(pid) for pid in workers)
            self.peak_kb = max(self.peak_kb, total)


def child_recompute() -> None:
    """Run in a fresh process: the Celery task as a worker runs it; print seconds, peak RSS and
    the peak private memory of the database session serving it."""
    import resource

    import django

    django.setup()
    from django.db import connection

    from segmentation.models import RfmRun
    from segmentation.tasks import segment_recompute_task

    if not os.environ.get("BENCH_WITH_SUBSCRIBERS"):
        detach_other_subscribers()

    connection.ensure_connection()
    sampler = BackendSampler(connection.connection.info.backend_pid)
    sampler.start()
    started = time.perf_counter()
    run_id = segment_recompute_task.apply().get()
    seconds = time.perf_counter() - started
    sampler.done.set()
    sampler.join()
    run = RfmRun.objects.get(pk=run_id)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "backend_mb": sampler.peak_kb / 1024,
                "run_id": run_id,
                "members": run.member_count,
                "transitions": run.transition_count,
                "status": run.status,
            }
        )
    )


def detach_other_subscribers() -> None:
    """Leave ``segment_changed`` to segmentation alone: what other apps do per change is theirs to measure."""
    from segmentation.events import segment_changed

    for handler in segment_changed.handlers:
        if not handler.__module__.startswith("segmentation"):
            segment_changed.unsubscribe(handler)


def reset_results(url: str) -> None:
    """Forget every RFM result, so that the next run is a first run (everyone enters a segment and
    gets an RFM score)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE segmentation_memberrfm, segmentation_segmenttransition, segmentation_segmentsnapshot, "
            "segmentation_rfmstagingrow"
        )
        conn.execute("UPDATE segmentation_rfmrun SET is_current = false")
        conn.execute("TRUNCATE members_memberrfmscore")


def project_run(url: str) -> dict:
    completed = subprocess.run(
        [sys.executable, __file__, "--child", "recompute"],
        cwd=ROOT,
        env=child_env(url),
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


# --- (b) the floor ----------------------------------------------------------------------------

FLOOR_SQL = """
CREATE TABLE bench_floor AS
SELECT now() AS created_at, now() AS updated_at, x.member_id, %(run)s::bigint AS run_id, %(as_of)s::date AS as_of,
       x.recency_days, x.first_order_days, x.frequency, x.monetary::numeric(14, 2) AS monetary,
       x.r_score::smallint AS r_score, x.f_score::smallint AS f_score, x.m_score::smallint AS m_score,
       CASE WHEN x.recency_days IS NULL THEN %(no_purchase)s
            ELSE (%(cells)s)[1 + (1 - x.r_score) * 4 + (1 - x.f_score) * 2 + (1 - x.m_score)] END AS segment_id
FROM (
    SELECT m.id AS member_id,
           (%(as_of)s::date - (a.last_paid_at AT TIME ZONE %(tz)s)::date)::integer AS recency_days,
           (%(as_of)s::date - (a.first_paid_at AT TIME ZONE %(tz)s)::date)::integer AS first_order_days,
           COALESCE(a.frequency, 0)::integer AS frequency,
           COALESCE(a.monetary, 0) AS monetary,
           (COALESCE(a.frequency, 0) > 0 AND %(as_of)s::date - (a.last_paid_at AT TIME ZONE %(tz)s)::date <= 30)::int
               AS r_score,
           (COALESCE(a.frequency, 0) >= 3)::int AS f_score,
           (COALESCE(a.monetary, 0) >= 500)::int AS m_score
    FROM members_member m
    LEFT JOIN (
        SELECT member_id, max(paid_at) AS last_paid_at, min(paid_at) AS first_paid_at,
               count(*) FILTER (WHERE paid_at >= %(start)s) AS frequency,
               sum(amount - refunded_amount) FILTER (WHERE paid_at >= %(start)s) AS monetary
        FROM members_order
        WHERE paid_at < %(end)s AND refunded_amount < amount
        GROUP BY member_id
    ) a ON a.member_id = m.id
    WHERE m.registered_at < %(end)s
    OFFSET 0  -- compute each column once per member, not once per reference
) x
"""


COVERING_INDEX = "order_member_paid_at_cover"
COVERING_INDEX_SQL = (
    f"CREATE INDEX {COVERING_INDEX} ON members_order USING btree (member_id, paid_at) INCLUDE (amount, refunded_amount)"
)

# The two plans of the floor, whatever indexes exist: today's (a parallel hash aggregate over a
# sequential scan of the orders, hash-joined to the members) and the covering index's (a group
# aggregate over an index-only scan in member order, merge-joined to the members).
FLOOR_PLANS = {
    "hash": ("enable_indexonlyscan", "enable_indexscan", "enable_bitmapscan"),
    "covering": ("enable_hashagg", "enable_hashjoin", "enable_seqscan"),
}


def covering_index(url: str, *, wanted: bool) -> dict:
    """Create (or drop) the covering index on the orders; returns its build time and size."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [COVERING_INDEX]).fetchone()[0]
        if not wanted:
            if exists:
                conn.execute(f"DROP INDEX {COVERING_INDEX}")
            return {}
        started = time.perf_counter()
        if not exists:
            conn.execute("SET maintenance_work_mem = '512MB'")
            conn.execute(COVERING_INDEX_SQL)
            conn.execute("VACUUM (ANALYZE) members_order")  # the visibility map, for index-only scans
        seconds = time.perf_counter() - started
        sizes = conn.execute(
            "SELECT pg_relation_size(%s), COALESCE(pg_relation_size(to_regclass('order_member_paid_at')), 0)",
            [COVERING_INDEX],
        ).fetchone()
    return {"built_s": seconds if not exists else None, "mb": sizes[0] / 2**20, "replaced_mb": sizes[1] / 2**20}


def floor_run(url: str, *, plan: str = "hash", check_against_project: bool = False) -> dict:
    """The hand-written floor, timed from BEGIN to COMMIT with the project's work_mem, with the
    plan ``plan`` (``FLOOR_PLANS``)."""
    import psycopg
    from django.utils import timezone

    from segmentation.models import Segment
    from segmentation.scoring import window_for

    as_of = timezone.localdate()
    window = window_for(as_of, 365)
    ids = dict(Segment.objects.filter(scheme__slug="rfm-default").values_list("slug", "pk"))
    # (R, F, M) high/low cells in the order 1 + (1-R)*4 + (1-F)*2 + (1-M): HHH, HHL, HLH, HLL, LHH, LHL, LLH, LLL
    cells = [
        ids[slug]
        for slug in (
            "champions",
            "loyal_low_spend",
            "big_spenders",
            "promising",
            "loyal_at_risk",
            "need_attention",
            "win_back",
            "lost",
        )
    ]
    params = {
        "run": 0,
        "as_of": as_of,
        "tz": "Asia/Shanghai",
        "start": window.start,
        "end": window.end,
        "no_purchase": ids["no_purchase"],
        "cells": cells,
    }
    with psycopg.connect(url) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_floor")
        conn.commit()
        started = time.perf_counter()
        conn.execute("SET LOCAL work_mem = '256MB'")
        for name in FLOOR_PLANS[plan]:
            conn.execute(f"SET LOCAL {name} = off")
        conn.execute(FLOOR_SQL, params)
        conn.commit()
        seconds = time.perf_counter() - started
        result = {"seconds": seconds}
        if check_against_project:
            differences = conn.execute(
                """SELECT count(*) FROM (
                     (SELECT member_id, recency_days, first_order_days, frequency, monetary, r_score, f_score, m_score,
                             segment_id FROM bench_floor
                      EXCEPT SELECT member_id, recency_days, first_order_days, frequency, monetary, r_score, f_score,
                             m_score, segment_id FROM segmentation_memberrfm)
                     UNION ALL
                     (SELECT member_id, recency_days, first_order_days, frequency, monetary, r_score, f_score, m_score,
                             segment_id FROM segmentation_memberrfm
                      EXCEPT SELECT member_id, recency_days, first_order_days, frequency, monetary, r_score, f_score,
                             m_score, segment_id FROM bench_floor)) d"""
            ).fetchone()[0]
            result["differences_from_project"] = differences
        conn.execute("DROP TABLE bench_floor")
        conn.commit()
    return result


# --- (c) the naive loop -----------------------------------------------------------------------


def _naive_scores(spec, recency: int | None, frequency: int, monetary: Decimal) -> tuple[int, int, int]:
    """Thresholds mode (the default scheme's), in Python, for the naive loop only."""
    if recency is None or frequency == 0:
        return 0, 0, 0
    return int(recency <= spec.r_max_days), int(frequency >= spec.f_min), int(monetary >= spec.m_min)


def naive_run(sample: int, seed: int) -> dict:
    """What a per-member ORM loop costs: load each member's orders, compute in Python, save."""
    from django.db import transaction
    from django.utils import timezone

    from members.models import Member, Order
    from segmentation.models import MemberRfm, RfmRun, Segment
    from segmentation.rules import rule_holds
    from segmentation.scoring import SchemeSpec, brand_timezone, window_for

    run = RfmRun.objects.get(is_current=True)
    spec = SchemeSpec.from_params(run.params)
    tz = brand_timezone()
    as_of = timezone.localdate()
    window = window_for(as_of, spec.window_days)
    high = max(Member.objects.order_by("-id").values_list("id", flat=True)[:1])
    ids = random.Random(seed).sample(range(1, high + 1), sample)
    segments = {segment.pk: segment for segment in Segment.objects.filter(scheme_id=spec.scheme_id)}
    started = time.perf_counter()
    with transaction.atomic():
        for member in Member.objects.filter(pk__in=ids, registered_at__lt=window.end):
            orders = list(member.orders.filter(paid_at__lt=window.end).exclude(status=Order.Status.REFUNDED))
            in_window = [o for o in orders if o.paid_at >= window.start]
            recency = (as_of - max(o.paid_at for o in orders).astimezone(tz).date()).days if orders else None
            first = (as_of - min(o.paid_at for o in orders).astimezone(tz).date()).days if orders else None
            frequency = len(in_window)
            monetary = sum((o.amount - o.refunded_amount for o in in_window), Decimal("0.00"))
            r, f, m = _naive_scores(spec, recency, frequency, monetary)
            values = {
                "recency_days": recency,
                "first_order_days": first,
                "frequency": frequency,
                "monetary": monetary,
                "r_score": r,
                "f_score": f,
                "m_score": m,
            }
            rule = next((rule for rule in spec.rules if rule_holds(rule, values, high_level=spec.high_level)), None)
            MemberRfm.objects.update_or_create(
                member=member,
                defaults={
                    **values,
                    "run": run,
                    "as_of": as_of,
                    "segment": segments.get(rule["segment_id"]) if rule else None,
                },
            )
    return {"seconds": time.perf_counter() - started, "sample": sample}


# --- (d) the per-order update -----------------------------------------------------------------


def per_order(count: int, seed: int) -> dict:
    """``order_record`` with only the segmentation subscriber vs with no subscriber (alternating)."""
    from django.conf import settings
    from django.utils import timezone

    from members.events import order_recorded
    from members.models import Member, Store
    from members.services.orders import order_record
    from segmentation import subscribers
    from segmentation.services import member_rfm_refresh

    # As in production: the rows every order reads (tier ladder, loyalty program) are cached per
    # process (the test settings the child runs with turn that off).
    settings.HUIYUAN_SETTINGS_CACHE_SECONDS = 10
    # The refresh tasks run eagerly here; a log line per task would bury the report.
    logging.getLogger("celery.app.trace").setLevel(logging.WARNING)
    detach_other_subscribers()
    saved = order_recorded.handlers
    for handler in saved:
        order_recorded.unsubscribe(handler)
    rng = random.Random(seed)
    high = max(Member.objects.order_by("-id").values_list("id", flat=True)[:1])
    store = Store.objects.first()
    members = list(Member.objects.filter(pk__in=rng.sample(range(1, high + 1), count * 2 + 50)))
    with_handler, without, refresh = [], [], []
    try:
        for index, member in enumerate(members[: count * 2]):
            subscribed = index % 2 == 0
            if subscribed:
                order_recorded.subscribe(subscribers.refresh_member_on_order)
            started = time.perf_counter()
            order_record(
                external_id=f"BENCH-{seed}-{time.time_ns()}-{index}",
                member=member,
                store=store,
                paid_at=timezone.now(),
                amount="38.00",
            )
            (with_handler if subscribed else without).append(time.perf_counter() - started)
            order_recorded.unsubscribe(subscribers.refresh_member_on_order)
        for member in members[count * 2 :]:
            started = time.perf_counter()
            member_rfm_refresh(member_id=member.pk)
            refresh.append(time.perf_counter() - started)
    finally:
        for handler in saved:
            order_recorded.subscribe(handler)
    return {
        "with_ms": statistics.median(with_handler) * 1000,
        "without_ms": statistics.median(without) * 1000,
        "added_ms": (statistics.median(with_handler) - statistics.median(without)) * 1000,
        "refresh_ms": statistics.median(refresh) * 1000,
        "count": count,
    }


# --- The benchmark ----------------------------------------------------------------------------


def setup_django(url: str) -> None:
    os.environ.update(child_env(url))
    import django

    django.setup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=1_000_000, help="members of the big database")
    parser.add_argument("--orders-per-member", type=float, default=10.0, help="mean orders per member")
    parser.add_argument(
        "--small-members", type=int, default=100_000, help="members of the small database (memory growth baseline)"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--rounds", type=int, default=3, help="alternating (a)/(b) rounds")
    parser.add_argument("--naive-sample", type=int, default=10_000)
    parser.add_argument("--per-order", type=int, default=1000)
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://root@127.0.0.1:5432"))
    parser.add_argument("--db", default="huiyuan_rfmbench")
    parser.add_argument("--skip-build", action="store_true", help="reuse databases a --keep run left")
    parser.add_argument("--skip-small", action="store_true", help="no 1/10 database (no memory growth figure)")
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument("--build-only", action="store_true", help="build the databases, measure nothing")
    parser.add_argument("--only-small", action="store_true", help="build or measure the small database only")
    parser.add_argument(
        "--with-subscribers", action="store_true", help="keep other apps' segment_changed subscribers attached"
    )
    parser.add_argument(
        "--covering-index",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="create the orders' covering index (member_id, paid_at) INCLUDE (amount, refunded_amount) "
        "if missing and measure its floor too (--no-covering-index: drop it)",
    )
    parser.add_argument(
        "--insert-cost", type=int, default=0, help="(e) single-row order inserts per index set (0: skip)"
    )
    parser.add_argument("--child", choices=["recompute"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "recompute":
        child_recompute()
        return

    def log(message: str) -> None:
        print(message, flush=True)

    if args.with_subscribers:
        os.environ["BENCH_WITH_SUBSCRIBERS"] = "1"
    big, small = db_url(args.pg, args.db), db_url(args.pg, f"{args.db}_small")
    sizes = {} if args.only_small else {big: args.members}
    if not args.skip_small:
        sizes[small] = args.small_members
    if not args.skip_build:
        for url, members in sizes.items():
            name = url.rsplit("/", 1)[1]
            log(f"Building {name}: {members:,} members × {args.orders_per_member} orders, seed {args.seed}")
            recreate_database(args.pg, url.rsplit("/", 1)[1])
            build(url, members=members, orders_per_member=args.orders_per_member, seed=args.seed, log=log)
    if args.build_only:
        return

    results: dict = {"project": [], "floor": [], "floor_covering": []}
    for url in sizes:
        results.setdefault("index", {})[url.rsplit("/", 1)[1]] = covering_index(url, wanted=args.covering_index)
    log(f"covering index {'on' if args.covering_index else 'off'}: {results['index']}")
    if not args.skip_small:
        log(f"Small database ({args.small_members:,} members): first run, then 3 measured runs (memory)")
        reset_results(small)
        results["small_first"] = project_run(small)
        results["small"] = [project_run(small) for _ in range(3)]
        log(f"  first {results['small_first']}, then {[round(r['seconds'], 2) for r in results['small']]} s")
    if args.only_small:
        print(json.dumps({"results": results}, default=str))
        return
    log(f"Big database ({args.members:,} members): first run (every member enters a segment)")
    reset_results(big)
    results["first"] = project_run(big)
    log(f"  {results['first']}")

    setup_django(big)
    plans = ["hash", *(["covering"] if args.covering_index else [])]
    for plan in plans:
        check = floor_run(big, plan=plan, check_against_project=True)
        log(
            f"  {plan} floor equals the project's result: {check['differences_from_project'] == 0} "
            f"({check['differences_from_project']} differing rows)"
        )
    for round_number in range(args.rounds):
        order = ["project", *plans]
        if round_number % 2:
            order.reverse()
        for what in order:
            if what == "project":
                figure, key = project_run(big), "project"
            else:
                figure, key = floor_run(big, plan=what), "floor" if what == "hash" else "floor_covering"
            results[key].append(figure)
            log(f"  round {round_number + 1} {what}: {figure['seconds']:.2f} s")

    if args.naive_sample:
        log(f"(c) naive ORM loop over {args.naive_sample:,} members")
        results["naive"] = naive_run(args.naive_sample, args.seed)
        log(f"  {results['naive']['seconds']:.1f} s")
        project_run(big)  # put the project's results back after the naive loop wrote some rows
    if args.per_order:
        log(f"(d) per-order update, {args.per_order} orders with and {args.per_order} without the subscriber")
        results["per_order"] = per_order(args.per_order, args.seed)
    if args.insert_cost:
        log(f"(e) the covering index's cost: {args.insert_cost} single-row order inserts per index set")
        results["insert_cost"] = insert_cost(big, args.insert_cost, args.seed, log=log)

    report(results, args)
    if not args.keep:
        from django.db import connections

        connections.close_all()
        for url in sizes:
            drop_database(args.pg, url.rsplit("/", 1)[1])
        log("Benchmark databases dropped (use --keep to keep them).")


# --- (e) what the covering index costs an order insert ----------------------------------------

INDEX_SETS = {
    "today": {"order_member_paid_at": True, COVERING_INDEX: False},
    "covering replaces it": {"order_member_paid_at": False, COVERING_INDEX: True},
    "both": {"order_member_paid_at": True, COVERING_INDEX: True},
}
TODAY_INDEX_SQL = "CREATE INDEX order_member_paid_at ON members_order USING btree (member_id, paid_at)"


def _index_set(conn, wanted: dict) -> None:
    for name, keep in wanted.items():
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [name]).fetchone()[0]
        if exists and not keep:
            conn.execute(f"DROP INDEX {name}")
        elif keep and not exists:
            conn.execute("SET maintenance_work_mem = '512MB'")
            conn.execute(COVERING_INDEX_SQL if name == COVERING_INDEX else TODAY_INDEX_SQL)


def insert_cost(url: str, count: int, seed: int, *, log) -> dict:
    """``count`` single-row order inserts, one transaction each, of random members (the index
    pages they touch are spread over the whole table, as a till's orders are), with today's
    ``(member_id, paid_at)`` index, with the covering index instead, and with both; the order of
    the sets alternates over three passes. Leaves both indexes in place; deletes its orders."""
    import psycopg

    rng = random.Random(seed)
    figures: dict = {name: [] for name in INDEX_SETS}
    with psycopg.connect(url, autocommit=True) as conn:
        high = conn.execute("SELECT max(id) FROM members_member").fetchone()[0]
        number = 0
        for turn in range(3):
            names = list(INDEX_SETS) if turn % 2 == 0 else list(reversed(INDEX_SETS))
            for name in names:
                _index_set(conn, INDEX_SETS[name])
                conn.execute("CHECKPOINT")
                timings = []
                for _ in range(count):
                    number += 1
                    started = time.perf_counter()
                    conn.execute(
                        """INSERT INTO members_order (created_at, updated_at, external_id, paid_at, amount,
                                                      refunded_amount, status, member_id, store_id)
                           VALUES (now(), now(), %s, now(), %s, 0, 'paid', %s, %s)""",
                        [f"BENCH-INS-{number}", Decimal("38.00"), rng.randint(1, high), rng.randint(1, 50)],
                        prepare=True,
                    )
                    timings.append(time.perf_counter() - started)
                figures[name].append(statistics.median(timings) * 1e6)
                log(f"  {name}: median {figures[name][-1]:.0f} µs")
        _index_set(conn, INDEX_SETS["both"])
        conn.execute("DELETE FROM members_order WHERE external_id LIKE 'BENCH-INS-%'")
    return {name: statistics.median(values) for name, values in figures.items()}


def report(results: dict, args) -> None:
    project = statistics.median(r["seconds"] for r in results["project"])
    floor = statistics.median(r["seconds"] for r in results["floor"])
    covering = statistics.median(r["seconds"] for r in results["floor_covering"]) if results["floor_covering"] else None
    best = min(floor, covering or floor)
    best_runs = results["floor_covering"] if covering is not None and covering < floor else results["floor"]
    rss_big = max(r["rss_mb"] for r in results["project"])
    backend_big = max(r.get("backend_mb", 0) for r in results["project"])
    # the same round's runs share the machine's mood: their ratio is steadier than the ratio of medians
    paired = statistics.median(a["seconds"] / b["seconds"] for a, b in zip(results["project"], best_runs, strict=True))
    orders = args.members * args.orders_per_member
    lines = [
        "",
        f"RFM benchmark: {args.members:,} members, ~{orders:,.0f} orders, seed {args.seed}, "
        f"{os.cpu_count()} CPUs, {args.rounds} alternating rounds",
        f"(a) project recompute (task, to commit)   median {project:8.2f} s   runs "
        + ", ".join(f"{r['seconds']:.2f}" for r in results["project"]),
        f"    first run (all {results['first']['transitions']:,} members enter a segment)  "
        f"{results['first']['seconds']:.2f} s, peak RSS {results['first']['rss_mb']:.1f} MB",
        f"(b) floor, hash plan (today's)            median {floor:8.2f} s   runs "
        + ", ".join(f"{r['seconds']:.2f}" for r in results["floor"]),
    ]
    if covering is not None:
        lines.append(
            f"    floor, covering-index plan             median {covering:8.2f} s   runs "
            + ", ".join(f"{r['seconds']:.2f}" for r in results["floor_covering"])
        )
    if "naive" in results:
        naive = results["naive"]["seconds"] * args.members / results["naive"]["sample"]
        lines.append(
            f"(c) naive ORM loop, {results['naive']['sample']:,} members {results['naive']['seconds']:.1f} s "
            f"→ extrapolated {naive:,.0f} s   (naive / recompute {naive / project:,.0f}, "
            f"target ≥ {TARGETS['naive_factor']})"
        )
    if "per_order" in results:
        order = results["per_order"]
        lines.append(
            f"(d) order_record: {order['with_ms']:.3f} ms with the subscriber, {order['without_ms']:.3f} ms without "
            f"→ adds {order['added_ms']:.3f} ms (member_rfm_refresh alone: {order['refresh_ms']:.3f} ms)"
        )
    if "insert_cost" in results:
        lines.append(
            "(e) order insert, median µs: "
            + ", ".join(f"{name} {value:.0f}" for name, value in results["insert_cost"].items())
        )
    lines += [
        "",
        f"recompute / best floor    {project / best:6.2f}   target ≤ {TARGETS['ratio_floor']}   "
        f"(median of the rounds' ratios {paired:.2f}; / hash floor {project / floor:.2f})",
        f"peak RSS at {args.members:,}   {rss_big:6.1f} MB   target ≤ {TARGETS['rss_mb']} MB "
        f"(database session: {backend_big:.1f} MB)",
    ]
    if "small" in results:
        rss_small = max(r["rss_mb"] for r in results["small"])
        backend_small = max(r.get("backend_mb", 0) for r in results["small"])
        lines += [
            f"peak RSS at {args.small_members:,}     {rss_small:6.1f} MB   "
            f"(small recompute median {statistics.median(r['seconds'] for r in results['small']):.2f} s; "
            f"database session: {backend_small:.1f} MB)",
            f"RSS growth                {(rss_big - rss_small) / rss_small:6.1%}   "
            f"target < {TARGETS['rss_growth']:.0%}",
            f"first-run peak RSS        {results['first']['rss_mb']:.1f} MB at {args.members:,}, "
            f"{results['small_first']['rss_mb']:.1f} MB at {args.small_members:,} (streams the events)",
        ]
    print("\n".join(lines), flush=True)
    print(json.dumps({"results": results}, default=str))


if __name__ == "__main__":
    main()
