"""Benchmark of the RFM recompute (issue 5).

    .venv/bin/python bench/rfm.py                  # 1,000,000 members, 10,000,000 orders, seed 42
    .venv/bin/python bench/rfm.py --members 100000 --orders 1000000 --rounds 2 --keep

Builds, from a fixed seed, a dataset over two years (skewed: 15 % never buy, about half buy once,
a few per cent buy hundreds of times; 3 % of orders refunded in full, 2 % in part) with COPY into
its own database ``huiyuan_rfmbench`` (and ``huiyuan_rfmbench_small`` with a tenth of it for the
memory comparison), migrated like production. Then measures, alternating and repeated:

(a) the project: ``segment_recompute_task`` as a Celery worker runs it, to commit, in a fresh
    process (whose peak RSS, ``ru_maxrss``, is the memory figure) — including what the floor
    does not do: transitions, snapshot, the swap, and ``MemberRfmScore`` (when tier rules read scores);
(b) the floor: one hand-written ``CREATE TABLE … AS SELECT`` computing the same aggregates, scores
    and segments into a table of the same shape (checked equal to the project's result);
(c) a naive per-member ORM loop on a sample of members, extrapolated to all of them;
(d) the per-order update: ``order_record`` with and without the segmentation subscriber.

It prints the medians, the peak memory at both sizes and the ratios against the targets, and drops
its databases unless ``--keep``. Needs PostgreSQL (``--pg``, default postgres://root@127.0.0.1:5432).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import random
import statistics
import subprocess
import sys
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


def _ts(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S+00")


def build(url: str, *, members: int, orders: int, seed: int, log) -> dict:
    """Create the schema (migrations) and fill it with COPY. Returns counts."""
    import psycopg

    migrate(url)
    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    stamp = _ts(now)
    started = time.monotonic()
    with psycopg.connect(url) as conn:
        conn.execute("SET maintenance_work_mem = '512MB'")
        recreate = {table: _without_indexes(conn, table) for table in ("members_order", "members_member")}
        stores = 50
        with conn.cursor().copy(
            "COPY members_store (id, created_at, updated_at, code, name, city, is_active) FROM STDIN"
        ) as copy:
            for store in range(1, stores + 1):
                copy.write_row((store, now, now, f"B{store:03d}", f"门店{store}", "上海", True))

        # Order counts per member: 15 % never, ~47 % once, a long tail of frequent buyers.
        counts = []
        for _ in range(members):
            roll = rng.random()
            if roll < 0.15:
                counts.append(0)
            elif roll < 0.62:
                counts.append(1)
            elif roll < 0.87:
                counts.append(rng.randint(2, 6))
            elif roll < 0.97:
                counts.append(rng.randint(7, 40))
            else:
                counts.append(int(rng.paretovariate(1.2) * 40))
        total = sum(counts)
        buyers = [index for index, count in enumerate(counts) if count]
        while total != orders:  # adjust to exactly the requested number of orders
            index = rng.choice(buyers)
            if total < orders:
                counts[index] += 1
                total += 1
            elif counts[index] > 1:
                counts[index] -= 1
                total -= 1

        log(f"  members: generating and copying {members:,}")
        registered_days = [rng.randint(1, 1100) for _ in range(members)]
        with conn.cursor().copy(
            "COPY members_member (id, created_at, updated_at, mobile, name, gender, registered_at, channel, "
            "referral_code, home_store_id) FROM STDIN"
        ) as copy:
            buffer = io.StringIO()
            for index in range(members):
                registered = now - dt.timedelta(days=registered_days[index], seconds=rng.randint(0, 86399))
                buffer.write(
                    f"{index + 1}\t{stamp}\t{stamp}\t1{3 + index % 7}{index:09d}\t\tunknown\t{_ts(registered)}\t"
                    f"store\tB{index:08X}\t{rng.randint(1, stores)}\n"
                )
                if index % 50000 == 49999:
                    copy.write(buffer.getvalue())
                    buffer = io.StringIO()
            copy.write(buffer.getvalue())

        log(f"  orders: generating and copying {orders:,}")
        order_id = 0
        with conn.cursor().copy(
            "COPY members_order (id, created_at, updated_at, external_id, paid_at, amount, refunded_amount, status, "
            "member_id, store_id) FROM STDIN"
        ) as copy:
            buffer = io.StringIO()
            for index, count in enumerate(counts):
                if not count:
                    continue
                earliest = min(registered_days[index], 730)
                roll = rng.random()  # when the member was last active: recent, this year, or lapsed
                last = (
                    rng.randint(0, 30) if roll < 0.35 else rng.randint(31, 365) if roll < 0.7 else rng.randint(366, 730)
                )
                last = min(last, earliest)
                first = min(earliest, last + min(700, 3 * count + rng.randint(0, 200)))
                store = rng.randint(1, stores)
                for number in range(count):
                    day = last if number == 0 else rng.randint(last, first)
                    paid = now - dt.timedelta(days=day, seconds=rng.randint(0, 86399))
                    amount = Decimal(min(5000.0, max(1.0, rng.lognormvariate(4.2, 0.7)))).quantize(Decimal("0.01"))
                    refund = rng.random()
                    if refund < 0.03:
                        refunded, status = amount, "refunded"
                    elif refund < 0.05:
                        refunded, status = (amount * Decimal("0.3")).quantize(Decimal("0.01")), "partially_refunded"
                    else:
                        refunded, status = Decimal("0.00"), "paid"
                    order_id += 1
                    buffer.write(
                        f"{order_id}\t{stamp}\t{stamp}\tB{order_id:010d}\t{_ts(paid)}\t{amount}\t{refunded}\t"
                        f"{status}\t{index + 1}\t{store}\n"
                    )
                if buffer.tell() > 8_000_000:
                    copy.write(buffer.getvalue())
                    buffer = io.StringIO()
            copy.write(buffer.getvalue())
        log(f"  copied in {time.monotonic() - started:.0f} s; rebuilding indexes and constraints")
        for table in ("members_member", "members_order"):
            for statement in recreate[table]:
                conn.execute(statement)
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        conn.execute("SELECT setval(pg_get_serial_sequence('members_store', 'id'), 50)")
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (FREEZE, ANALYZE) members_member, members_order, members_store")
    log(f"  built in {time.monotonic() - started:.0f} s")
    return {"members": members, "orders": orders, "buyers": len(buyers)}


# --- (a) the project, in a child process ------------------------------------------------------


def child_recompute() -> None:
    """Run in a fresh process: the Celery task as a worker runs it; print seconds and peak RSS."""
    import resource

    import django

    django.setup()
    from segmentation.models import RfmRun
    from segmentation.tasks import segment_recompute_task

    if not os.environ.get("BENCH_WITH_SUBSCRIBERS"):
        detach_other_subscribers()

    started = time.perf_counter()
    run_id = segment_recompute_task.apply().get()
    seconds = time.perf_counter() - started
    run = RfmRun.objects.get(pk=run_id)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
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


def floor_run(url: str, *, check_against_project: bool = False) -> dict:
    """The hand-written floor, timed from BEGIN to COMMIT with the project's work_mem."""
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
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--rounds", type=int, default=3, help="alternating (a)/(b) rounds")
    parser.add_argument("--naive-sample", type=int, default=10_000)
    parser.add_argument("--per-order", type=int, default=1000)
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://root@127.0.0.1:5432"))
    parser.add_argument("--db", default="huiyuan_rfmbench")
    parser.add_argument("--skip-build", action="store_true", help="reuse databases a --keep run left")
    parser.add_argument("--skip-small", action="store_true", help="no 1/10 database (no memory growth figure)")
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument(
        "--with-subscribers", action="store_true", help="keep other apps' segment_changed subscribers attached"
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
    sizes = {big: (args.members, args.orders)}
    if not args.skip_small:
        sizes[small] = (args.members // 10, args.orders // 10)
    if not args.skip_build:
        for url, (members, orders) in sizes.items():
            log(f"Building {url.rsplit('/', 1)[1]}: {members:,} members, {orders:,} orders, seed {args.seed}")
            recreate_database(args.pg, url.rsplit("/", 1)[1])
            build(url, members=members, orders=orders, seed=args.seed, log=log)

    results: dict = {"project": [], "floor": []}
    if not args.skip_small:
        log("Small database: first run, then 3 measured runs (memory)")
        reset_results(small)
        first_small = project_run(small)
        results["small_first"] = first_small
        results["small"] = [project_run(small) for _ in range(3)]
    log("Big database: first run (every member enters a segment: a transition and an event each)")
    reset_results(big)
    results["first"] = project_run(big)
    log(f"  {results['first']}")

    setup_django(big)
    check = floor_run(big, check_against_project=True)
    log(
        f"  floor equals the project's result: {check['differences_from_project'] == 0} "
        f"({check['differences_from_project']} differing rows)"
    )
    for round_number in range(args.rounds):
        order = ("project", "floor") if round_number % 2 == 0 else ("floor", "project")
        for what in order:
            figure = project_run(big) if what == "project" else floor_run(big)
            results[what].append(figure)
            log(f"  round {round_number + 1} {what}: {figure['seconds']:.2f} s")

    log(f"(c) naive ORM loop over {args.naive_sample:,} members")
    results["naive"] = naive_run(args.naive_sample, args.seed)
    log(f"  {results['naive']['seconds']:.1f} s")
    project_run(big)  # put the project's results back after the naive loop wrote some rows
    log(f"(d) per-order update, {args.per_order} orders with and {args.per_order} without the subscriber")
    results["per_order"] = per_order(args.per_order, args.seed)

    report(results, args)
    if not args.keep:
        from django.db import connections

        connections.close_all()
        for url in sizes:
            drop_database(args.pg, url.rsplit("/", 1)[1])
        log("Benchmark databases dropped (use --keep to keep them).")


def report(results: dict, args) -> None:
    project = statistics.median(r["seconds"] for r in results["project"])
    floor = statistics.median(r["seconds"] for r in results["floor"])
    naive = results["naive"]["seconds"] * args.members / results["naive"]["sample"]
    rss_big = max(r["rss_mb"] for r in results["project"])
    # the same round's runs share the machine's mood: their ratio is steadier than the ratio of medians
    paired = statistics.median(
        a["seconds"] / b["seconds"] for a, b in zip(results["project"], results["floor"], strict=True)
    )
    order = results["per_order"]
    lines = [
        "",
        f"RFM benchmark: {args.members:,} members, {args.orders:,} orders, seed {args.seed}, "
        f"{os.cpu_count()} CPUs, {args.rounds} alternating rounds",
        f"(a) project recompute (task, to commit)   median {project:8.2f} s   runs "
        + ", ".join(f"{r['seconds']:.2f}" for r in results["project"]),
        f"    first run (all {results['first']['transitions']:,} members enter a segment)  "
        f"{results['first']['seconds']:.2f} s",
        f"(b) floor (hand-written SQL)              median {floor:8.2f} s   runs "
        + ", ".join(f"{r['seconds']:.2f}" for r in results["floor"]),
        f"(c) naive ORM loop, {results['naive']['sample']:,} members {results['naive']['seconds']:.1f} s "
        f"→ extrapolated {naive:,.0f} s",
        f"(d) order_record: {order['with_ms']:.3f} ms with the subscriber, {order['without_ms']:.3f} ms without "
        f"→ adds {order['added_ms']:.3f} ms (member_rfm_refresh alone: {order['refresh_ms']:.3f} ms)",
        "",
        f"recompute / floor         {project / floor:6.2f}   target ≤ {TARGETS['ratio_floor']}   "
        f"(median of the rounds' ratios {paired:.2f})",
        f"recompute seconds         {project:6.2f}   target < {TARGETS['seconds']}",
        f"naive / recompute         {naive / project:6.0f}   target ≥ {TARGETS['naive_factor']}",
        f"per-order added (ms)      {order['added_ms']:6.3f}   target ≤ {TARGETS['order_ms']}",
        f"peak RSS at {args.members:,}       {rss_big:6.1f} MB   target ≤ {TARGETS['rss_mb']} MB",
    ]
    if "small" in results:
        rss_small = max(r["rss_mb"] for r in results["small"])
        lines += [
            f"peak RSS at {args.members // 10:,}         {rss_small:6.1f} MB   "
            f"(small recompute median {statistics.median(r['seconds'] for r in results['small']):.2f} s)",
            f"RSS growth 10× members    {(rss_big - rss_small) / rss_small:6.1%}   "
            f"target < {TARGETS['rss_growth']:.0%}",
            f"first-run peak RSS        {results['first']['rss_mb']:.1f} MB at {args.members:,}, "
            f"{results['small_first']['rss_mb']:.1f} MB at {args.members // 10:,} (streams the events)",
        ]
    print("\n".join(lines), flush=True)
    print(json.dumps({"results": results}, default=str))


if __name__ == "__main__":
    main()
