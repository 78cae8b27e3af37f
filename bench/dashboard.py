"""Benchmark of the operator dashboard (issue #17): the admin home as an operator sees it.

    .venv/bin/python bench/dashboard.py                       # 100,000 members, 1,000,000 orders, seed 42
    .venv/bin/python bench/dashboard.py --skip-build --keep   # reuse the database a --keep run left

Builds the RFM benchmark's dataset (``bench/rfm.py``'s ``build``: two years of skewed orders, 3 %
refunded in full, 2 % in part, by COPY into its own database ``huiyuan_dashbench``), adds stored
value (a wallet for every fifth member, with a top-up entry each), points (an account and an
entry for two members in five) and three running campaigns with 5,000 grants each (a tenth held
out) and coupons, then runs two recomputes — as of 30 days ago and today — so that the
migration matrix, the segment history and the current results all exist.

Then, in this process, through Django's test client logged in as an operator (``members.roles``'s
operator group), it renders alternately, ``--rounds`` times after a warm-up each:

- the dashboard: ``GET /admin/`` (the whole page: every figure, chart and the heat map);
- the baseline: a bare admin page — the stores' change list (50 rows) — measured in the same run.

The migration matrix between two finished runs never changes, so the dashboard keeps its cells in
the cache: the first render of a fresh process (printed too) reads both runs' snapshots.

It prints the medians, the ratio and the dashboard's query count, against the target of 1 s.
Drops its database unless ``--keep``. Needs PostgreSQL (``--pg``, default postgres://root@127.0.0.1:5432).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.rfm import build, db_url, drop_database, recreate_database, setup_django  # noqa: E402

TARGET_SECONDS = 1.0


def add_value_and_campaigns(url: str, *, log) -> None:
    """Wallets, points and three running campaigns, in set-based SQL (the ORM for the few rows)."""
    import psycopg

    started = time.monotonic()
    with psycopg.connect(url) as conn:
        conn.execute(
            """
            INSERT INTO members_wallet (created_at, updated_at, member_id, principal, bonus)
            SELECT now(), now(), id, (id % 500) + 50, (id % 7) * 5 FROM members_member WHERE id % 5 = 0
            """
        )
        conn.execute(
            """
            INSERT INTO members_walletentry (created_at, updated_at, wallet_id, kind, principal_delta, bonus_delta,
                amount, principal_after, bonus_after, reason, reference, offer_code, idempotency_key,
                request_fingerprint)
            SELECT now() - make_interval(days => (w.id % 60)::int), now(), w.id, 'top_up', w.principal, w.bonus,
                   w.principal + w.bonus, w.principal, w.bonus, 'bench', '', '', 'bench-top-up-' || w.id, ''
            FROM members_wallet w
            """
        )
        conn.execute(
            """
            INSERT INTO members_pointsaccount (created_at, updated_at, member_id, balance, debt)
            SELECT now(), now(), id, (id % 3000), 0 FROM members_member WHERE id % 5 IN (1, 2)
            """
        )
        conn.execute(
            """
            INSERT INTO members_pointsentry (created_at, updated_at, member_id, kind, points, balance_after,
                debt_after, reason, reference, idempotency_key)
            SELECT now() - make_interval(days => (member_id % 90)::int), now(), member_id, 'earn', balance, balance,
                   0, 'bench', '', 'bench-points-' || member_id
            FROM members_pointsaccount WHERE balance > 0
            """
        )
        conn.commit()
    log(f"  wallets and points in {time.monotonic() - started:.0f} s")


def add_campaigns(*, log) -> None:
    from django.utils import timezone

    from campaigns.models import Campaign, CampaignGrant
    from members.models import Member

    now = timezone.now()
    member_ids = list(Member.objects.order_by("pk").values_list("pk", flat=True)[:15000])
    for number in range(3):
        campaign = Campaign.objects.create(
            name=f"Bench campaign {number + 1}",
            slug=f"bench-{number + 1}",
            status=Campaign.Status.RUNNING,
            starts_at=now - dt.timedelta(days=20),
        )
        chosen = member_ids[number * 5000 : (number + 1) * 5000]
        CampaignGrant.objects.bulk_create(
            [
                CampaignGrant(
                    campaign=campaign,
                    member_id=member_id,
                    cause="run:bench",
                    sequence=1,
                    is_control=index % 10 == 0,
                    granted_at=now - dt.timedelta(days=20),
                    cost=0 if index % 10 == 0 else 2,
                )
                for index, member_id in enumerate(chosen)
            ],
            batch_size=5000,
        )
    log("  3 running campaigns with 5,000 grants each")


def operator_user():
    from django.apps import apps as django_apps
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from members.roles import ROLE_BY_KEY, roles_install

    name = ROLE_BY_KEY["operator"].group
    if not Group.objects.filter(name=name).exists():
        roles_install(django_apps)
    user, _created = get_user_model().objects.get_or_create(username="bench-operator", defaults={"is_staff": True})
    user.groups.add(Group.objects.get(name=name))
    return user


def timed(client, url: str) -> float:
    started = time.perf_counter()
    response = client.get(url)
    seconds = time.perf_counter() - started
    if response.status_code != 200 or not response.content:
        raise RuntimeError(f"{url} answered {response.status_code}")
    return seconds


def measure(*, rounds: int, log) -> dict:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, setup_test_environment
    from django.urls import reverse
    from django.utils import translation

    setup_test_environment()  # the test client's host name is allowed
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")  # the operators' language
    client.force_login(operator_user())
    with translation.override("zh-hans"):
        dashboard, baseline = reverse("admin:index"), reverse("admin:members_store_changelist")
    cold_baseline = timed(client, baseline)  # a fresh process: templates, translations, URLs not loaded yet
    cold = timed(client, dashboard)  # and the migration matrix not cached yet
    with CaptureQueriesContext(connection) as queries:
        timed(client, dashboard)
    figures: dict = {"dashboard": [], "baseline": [], "queries": len(queries), "cold": cold}
    figures["cold_baseline"] = cold_baseline
    slowest = sorted(((float(q["time"]), q["sql"][:140]) for q in queries.captured_queries), reverse=True)[:5]
    figures["slowest_queries"] = slowest
    for number in range(rounds):
        order = ("dashboard", "baseline") if number % 2 == 0 else ("baseline", "dashboard")
        for what in order:
            figures[what].append(timed(client, dashboard if what == "dashboard" else baseline))
        last = {what: figures[what][-1] for what in ("dashboard", "baseline")}
        log(f"  round {number + 1}: dashboard {last['dashboard']:.3f} s, baseline {last['baseline']:.3f} s")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://root@127.0.0.1:5432"))
    parser.add_argument("--db", default="huiyuan_dashbench")
    parser.add_argument("--skip-build", action="store_true", help="reuse the database a --keep run left")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()

    def log(message: str) -> None:
        print(message, flush=True)

    url = db_url(args.pg, args.db)
    timings: dict = {}
    if not args.skip_build:
        log(f"Building {args.db}: {args.members:,} members, {args.orders:,} orders, seed {args.seed}")
        started = time.monotonic()
        recreate_database(args.pg, args.db)
        build(url, members=args.members, orders=args.orders, seed=args.seed, log=log)
        add_value_and_campaigns(url, log=log)
        timings["build"] = time.monotonic() - started
    setup_django(url)
    from django.utils import timezone

    from segmentation.models import RfmRun
    from segmentation.services import segment_recompute

    if not args.skip_build:
        add_campaigns(log=log)
        for days in (30, 0):
            started = time.monotonic()
            run = segment_recompute(as_of=timezone.localdate() - dt.timedelta(days=days))
            log(f"  recompute as of {run.as_of}: {time.monotonic() - started:.1f} s, {run.member_count:,} members")
        timings["total_build"] = time.monotonic() - started + timings["build"]
    elif not RfmRun.objects.filter(is_current=True).exists():
        segment_recompute()

    log(f"Measuring {args.rounds} alternating rounds as an operator")
    figures = measure(rounds=args.rounds, log=log)
    dashboard = statistics.median(figures["dashboard"])
    baseline = statistics.median(figures["baseline"])
    log("")
    if "build" in timings:
        log(f"Data built in {timings['build']:.0f} s (COPY, indexes, wallets, points)")
    log(f"Dashboard (GET /admin/ as an operator): median {dashboard * 1000:.0f} ms, {figures['queries']} queries")
    log(
        f"  first requests of a fresh process: baseline {figures['cold_baseline'] * 1000:.0f} ms, then the dashboard "
        f"(migration matrix not cached yet) {figures['cold'] * 1000:.0f} ms"
    )
    log(f"Baseline (the stores' change list):      median {baseline * 1000:.0f} ms")
    log(f"Ratio dashboard / baseline: {dashboard / baseline:.1f}×")
    log(f"Target: under {TARGET_SECONDS:.0f} s — {'met' if dashboard < TARGET_SECONDS else 'NOT met'}")
    log("Slowest queries of one dashboard render:")
    for seconds, sql in figures["slowest_queries"]:
        log(f"  {float(seconds) * 1000:7.1f} ms  {' '.join(sql.split())}")
    if not args.keep:
        from django.db import connections

        connections.close_all()
        drop_database(args.pg, args.db)
        log("Benchmark database dropped (use --keep to keep it).")


if __name__ == "__main__":
    main()
