"""Benchmark of the activity metrics (issue #19): DAU, WAU and retention read live.

    DATABASE_URL=postgres://root@127.0.0.1:5432/huiyuan_x .venv/bin/python bench/activity.py \
        --members 200000 --orders 1000000 --interactions 6000000

Fills the (migrated, otherwise empty) database of ``DATABASE_URL`` by ``INSERT … SELECT
generate_series`` — members registered over two years (a tenth in the last 90 days), orders and
interactions spread over the last 90 days, a current result (``MemberRfm``) for every member in
one of five segments — then times ``workspace.activity``'s three live statements (daily series over 30
days, weekly over 12 weeks, retention of 30 days' cohorts), the nightly rollup
(``workspace.activity_rollup``; a 90-day backfill once, then the nightly 2 days), the report read
from the rollup (what the pages and the dashboard do) and the referral report,
``--rounds`` times each after a warm-up, and prints the medians. ``--skip-build`` reuses the data.

Measured (2026-12-06, 2 shared cores, PostgreSQL 15, defaults; interactions and orders laid out in
time order as they arrive): live DAU of 30 days 4.2 s, live WAU of 12 weeks 11.8 s, live retention
of 30 days' cohorts 6.6 s; the rollup's 90-day backfill 34 s, the nightly 2-day rollup 4.4 s, the
report read from the rollup 0.2 s (most of it today's live DAU); the referral report 3 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def build(members: int, orders: int, interactions: int) -> None:
    from django.db import connection

    from tests.factories import RfmRunFactory, SchemeFactory, SegmentFactory, StoreFactory

    store = StoreFactory()
    scheme = SchemeFactory()
    segments = [SegmentFactory(scheme=scheme, slug=f"s{n}", ordering=n) for n in range(5)]
    run = RfmRunFactory(scheme=scheme, is_current=True)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO members_member (created_at, updated_at, mobile, name, gender, registered_at, channel,
                                        referral_code, home_store_id, is_active)
            SELECT now(), now(), '1' || lpad(g::text, 10, '0'), '', 'unknown',
                   CASE WHEN g %% 10 = 0 THEN now() - (g %% 90) * interval '1 day' - (g %% 86400) * interval '1 second'
                        ELSE now() - (90 + g %% 640) * interval '1 day' END,
                   'store', 'B' || g, %s, true
            FROM generate_series(1, %s) g
            """,
            [store.pk, members],
        )
        cursor.execute("SELECT min(id), max(id) FROM members_member")
        low, high = cursor.fetchone()
        span = high - low + 1
        cursor.execute(
            """
            INSERT INTO members_order (created_at, updated_at, external_id, member_id, store_id, paid_at, amount,
                                       refunded_amount, status)
            SELECT now(), now(), 'B' || g, %(low)s + (g::bigint * 7919) %% %(span)s, %(store)s,
                   now() - random() * interval '90 days', 38.00, 0, 'paid'
            FROM generate_series(1, %(n)s) g
            """,
            {"low": low, "span": span, "store": store.pk, "n": orders},
        )
        cursor.execute(
            """
            INSERT INTO members_interaction (member_id, kind, source, occurred_at, received_at, event_id, detail)
            SELECT %(low)s + (g::bigint * 104729) %% %(span)s, 1 + g %% 5, 1, ts, ts, 'b' || g, ''
            FROM (SELECT g, now() - random() * interval '90 days' AS ts FROM generate_series(1, %(n)s) g) x
            """,
            {"low": low, "span": span, "n": interactions},
        )
        cursor.execute(
            """
            INSERT INTO segmentation_memberrfm (created_at, updated_at, member_id, run_id, as_of, recency_days,
                                                first_order_days, frequency, monetary, r_score, f_score, m_score,
                                                segment_id)
            SELECT now(), now(), id, %s, CURRENT_DATE, 10, 100, 1, 38.00, 1, 1, 1,
                   (ARRAY[%s, %s, %s, %s, %s])[1 + id %% 5]
            FROM members_member
            """,
            [run.pk, *(segment.pk for segment in segments)],
        )
        # Rows arrive in time order in production (BRIN on occurred_at relies on it): lay them out so.
        cursor.execute("CREATE INDEX bench_occurred ON members_interaction (occurred_at)")
        cursor.execute("CLUSTER members_interaction USING bench_occurred")
        cursor.execute("DROP INDEX bench_occurred")
        cursor.execute("CLUSTER members_order USING order_paid_at")
        cursor.execute("ANALYZE")


def timed(fn, rounds: int) -> float:
    fn()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=200_000)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--interactions", type=int, default=6_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-build", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    import django

    django.setup()
    from django.db import transaction
    from django.utils import timezone

    from workspace import activity, reports
    from workspace.activity_rollup import activity_rollup

    if not args.skip_build:
        started = time.perf_counter()
        with transaction.atomic():
            build(args.members, args.orders, args.interactions)
        print(f"built in {time.perf_counter() - started:.1f} s")
    today = timezone.localdate()
    started = time.perf_counter()
    activity_rollup(days=90, today=today)
    print(f"rollup of 90 days (a first install's backfill): {time.perf_counter() - started:.1f} s")
    results = {
        "nightly rollup (2 days)": timed(lambda: activity_rollup(days=2, today=today), args.rounds),
        "report from the rollup": timed(lambda: activity.activity_report(days=30, weeks=12, today=today), args.rounds),
        "daily (30 days)": timed(lambda: activity.daily_active(days=30, today=today), args.rounds),
        "weekly (12 weeks)": timed(lambda: activity.weekly_active(weeks=12, today=today), args.rounds),
        "retention (30 days of cohorts)": timed(lambda: activity.retention(days=30, today=today), args.rounds),
        "referrals (30 days)": timed(
            lambda: reports.referral_report(**dict(zip(("start", "end"), reports.referral_period(), strict=True))),
            args.rounds,
        ),
    }
    for name, seconds in results.items():
        print(f"{name:34s} {seconds * 1000:8.0f} ms")


if __name__ == "__main__":
    main()
