"""Benchmark of ``import_orders`` against a raw COPY of the same file (issue 22).

    .venv/bin/python bench/imports.py                        # 1,000,000 rows, 200,000 members, seed 42
    .venv/bin/python bench/imports.py --rows 100000 --members 20000 --keep

Builds its own database ``huiyuan_importbench`` (migrated like production; 50 stores and the members
by set-based SQL) and a CSV file of ``--rows`` orders in the documented format
(``order_id,member_mobile,store_code,paid_at,amount``; local times over two years, amounts with
cents). Then, in the same run:

(a) the baseline: ``COPY … FROM STDIN (FORMAT csv, HEADER)`` of the file, streamed from Python as
    the import streams it, into an unindexed table of text columns — what PostgreSQL takes in at
    best, before any check or index;
(a') the floor: the same COPY, then one ``INSERT … SELECT`` into ``members_order`` joined to members
    and stores, with no check at all, its deferred foreign keys checked (then rolled back) — what
    writing the rows costs with the table's five indexes;
(b) the import: ``manage.py import_orders FILE --historical`` in a fresh process, whose wall time
    and peak RSS (``ru_maxrss``) are the figures, into the orders table emptied (and vacuumed: the
    floor's rolled-back rows gone) — a file this large against an empty table goes in without the
    table's secondary indexes, which are built again (``INDEX_REBUILD_MIN_ROWS``);
(c) the re-import of the same file (every row unchanged, nothing written);
(d) a GBK copy of the file, imported the same way (the encoding's cost);
(e) a second file of half as many new orders into the table of the first: fewer rows than the
    table holds, so they go in with the indexes in place, as into a live brand's table.

It prints medians, rows per second and the ratio to the baseline, checks the orders written, and
drops its database unless ``--keep``. Needs PostgreSQL (``--pg``, default postgres://root@127.0.0.1:5432).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_SECONDS_PER_MILLION = 20.0
STORES = 50
APPS = ("config", "members", "segmentation", "campaigns", "workspace", "audit", "demo")


def db_url(base: str, name: str) -> str:
    return f"{base.rstrip('/')}/{name}"


def recreate_database(base: str, name: str) -> None:
    import psycopg

    with psycopg.connect(db_url(base, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(base: str, name: str) -> None:
    import psycopg

    with psycopg.connect(db_url(base, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def child_env(url: str) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", "memory://"),
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "HUIYUAN_VAR_DIR": os.environ.get("HUIYUAN_VAR_DIR", str(ROOT / "var" / "bench")),
    }


def build(url: str, *, members: int) -> None:
    """Migrate, then stores ``S000``… and members ``13000000000 + i`` in two statements."""
    import psycopg

    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "migrate", "-v", "0", "--skip-checks"],
        cwd=ROOT,
        env=child_env(url),
        check=True,
    )
    with psycopg.connect(url) as conn:
        conn.execute(
            """INSERT INTO members_store (created_at, updated_at, code, name, city, is_active)
               SELECT now(), now(), 'S' || lpad(i::text, 3, '0'), '门店' || i, '上海', true
               FROM generate_series(0, %s - 1) i""",
            [STORES],
        )
        conn.execute(
            """INSERT INTO members_member (created_at, updated_at, mobile, name, gender, registered_at, channel,
                                           referral_code, is_active)
               SELECT now(), now(), (13000000000 + i)::text, '会员' || i, 'unknown', now() - interval '3 years',
                      'import', 'B' || lpad(i::text, 7, '0'), true
               FROM generate_series(1, %s) i""",
            [members],
        )
        conn.execute("ANALYZE")


def write_file(path: Path, *, rows: int, members: int, seed: int, prefix: str = "B") -> None:
    """The orders file: ids ``B-<n>`` (each a store's own), random members, stores and times."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 1)
    span = 2 * 365 * 24 * 3600
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("order_id,member_mobile,store_code,paid_at,amount\n")
        write = out.write
        for number in range(rows):
            paid = start + timedelta(seconds=rng.randrange(span))
            write(
                f"{prefix}-{number},{13000000000 + rng.randint(1, members)},S{rng.randrange(STORES):03d},"
                f"{paid:%Y-%m-%d %H:%M:%S},{rng.randint(100, 99_999) / 100:.2f}\n"
            )


def copy_baseline(url: str, path: Path) -> float:
    """Seconds to COPY the file into an unindexed table of text columns, streamed from Python."""
    import psycopg

    with psycopg.connect(url) as conn:
        conn.execute(
            "CREATE TEMPORARY TABLE baseline (order_id text, member_mobile text, store_code text, paid_at text, "
            "amount text)"
        )
        started = time.monotonic()
        with (
            conn.cursor() as cursor,
            cursor.copy("COPY baseline FROM STDIN (FORMAT csv, HEADER)") as copy,
            path.open("rb") as file,
        ):
            while chunk := file.read(1 << 16):
                copy.write(chunk)
        seconds = time.monotonic() - started
        conn.rollback()
    return seconds


def insert_floor(url: str, path: Path) -> float:
    """Seconds of the hand-written floor: COPY the file into a text table, then one ``INSERT …
    SELECT`` into ``members_order`` joined to members and stores — no check at all (rolled back)."""
    import psycopg

    with psycopg.connect(url) as conn:
        conn.execute(
            "CREATE TEMPORARY TABLE floor "
            "(order_id text, member_mobile text, store_code text, paid_at text, amount text)"
        )
        started = time.monotonic()
        with (
            conn.cursor() as cursor,
            cursor.copy("COPY floor FROM STDIN (FORMAT csv, HEADER)") as copy,
            path.open("rb") as file,
        ):
            while chunk := file.read(1 << 16):
                copy.write(chunk)
        conn.execute(
            """INSERT INTO members_order (created_at, updated_at, external_id, member_id, store_id, paid_at, amount,
                                          refunded_amount, status)
               SELECT now(), now(), f.order_id, m.id, s.id, f.paid_at::timestamp AT TIME ZONE 'Asia/Shanghai',
                      f.amount::numeric, 0, 'paid'
               FROM floor f JOIN members_member m ON m.mobile = f.member_mobile
               JOIN members_store s ON s.code = f.store_code"""
        )
        conn.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the deferred foreign-key checks, as a commit runs them
        seconds = time.monotonic() - started
        conn.rollback()
    return seconds


def emptied(url: str) -> None:
    """The orders table emptied, its statistics fresh (no orders), and a checkpoint: the WAL of
    what ran before (the floor writes a gigabyte) is not the next import's to flush."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE members_order CASCADE")
        conn.execute("VACUUM ANALYZE members_order")
        conn.execute("CHECKPOINT")


def peak_rss_mb(url: str, path: Path) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) and summary of one import, measured with ``resource``."""
    code = (
        "import resource, subprocess, sys, time\n"
        "t = time.monotonic()\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "s = time.monotonic() - t\n"
        "r = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(s, r, p.returncode, sep='\\t'); print(p.stdout.strip()); print(p.stderr.strip()[-2000:])\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            sys.executable,
            str(ROOT / "manage.py"),
            "import_orders",
            str(path),
            "--historical",
            "--no-progress",
        ],
        cwd=ROOT,
        env=child_env(url),
        capture_output=True,
        text=True,
        check=True,
    )
    first, summary, *rest = done.stdout.split("\n")
    seconds, rss, returncode = first.split("\t")
    if int(returncode):
        raise SystemExit(f"import failed: {summary}\n{''.join(rest)}")
    return float(seconds), float(rss), summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--members", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://root@127.0.0.1:5432"))
    parser.add_argument("--db", default="huiyuan_importbench")
    parser.add_argument("--keep", action="store_true", help="Keep the database and the files.")
    parser.add_argument("--json", action="store_true", help="Print the figures as JSON too.")
    args = parser.parse_args()

    import psycopg

    url = db_url(args.pg, args.db)
    # The project's bytecode, as a deployed image has it (deploy/Containerfile): with
    # PYTHONDONTWRITEBYTECODE set, each import's process would otherwise compile it again.
    subprocess.run([sys.executable, "-m", "compileall", "-q", *APPS], cwd=ROOT, check=True)
    workdir = ROOT / "var" / "bench"
    workdir.mkdir(parents=True, exist_ok=True)
    utf8, gbk = workdir / "import_orders.csv", workdir / "import_orders_gbk.csv"
    more = workdir / "import_orders_more.csv"
    print(f"Building {args.db}: {STORES} stores, {args.members:,} members; file of {args.rows:,} orders …", flush=True)
    recreate_database(args.pg, args.db)
    try:
        build(url, members=args.members)
        write_file(utf8, rows=args.rows, members=args.members, seed=args.seed)
        write_file(more, rows=args.rows // 2, members=args.members, seed=args.seed + 1, prefix="C")
        with utf8.open(encoding="utf-8") as source, gbk.open("w", encoding="gbk", newline="") as target:
            source.readline()
            target.write("订单号,手机号,门店编码,支付时间,金额\n")  # Chinese headers: a GBK file as Excel writes it
            while chunk := source.read(1 << 20):
                target.write(chunk)

        copies, floors, imports, rss, reimports = [], [], [], [], []
        for round_ in range(args.rounds):
            emptied(url)
            copies.append(copy_baseline(url, utf8))
            floors.append(insert_floor(url, utf8))
            print(f"round {round_ + 1}: floor (COPY + INSERT … SELECT, no checks) {floors[-1]:.2f} s")
            emptied(url)  # the floor's rows were rolled back: not a table the import would meet
            seconds, peak, summary = peak_rss_mb(url, utf8)
            imports.append(seconds)
            rss.append(peak)
            print(f"round {round_ + 1}: COPY {copies[-1]:.2f} s; import {seconds:.2f} s, {peak:.0f} MB — {summary}")
            seconds, _peak, summary = peak_rss_mb(url, utf8)
            reimports.append(seconds)
            print(f"round {round_ + 1}: re-import {seconds:.2f} s — {summary}")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE members_order")
            conn.execute("CHECKPOINT")
        online_seconds, online_peak, summary = peak_rss_mb(url, more)
        print(f"{args.rows // 2:,} more orders into the table of {args.rows:,}: {online_seconds:.2f} s — {summary}")
        with psycopg.connect(url) as conn:
            written = conn.execute(
                "SELECT count(*), count(DISTINCT (store_id, external_id)) FROM members_order"
            ).fetchone()
        assert written == (args.rows + args.rows // 2,) * 2, written
        emptied(url)
        gbk_seconds, _peak, summary = peak_rss_mb(url, gbk)
        print(f"GBK file: import {gbk_seconds:.2f} s — {summary}")

        copy_s, floor_s, import_s, reimport_s = (
            statistics.median(values) for values in (copies, floors, imports, reimports)
        )
        figures = {
            "rows": args.rows,
            "members": args.members,
            "copy_seconds": round(copy_s, 2),
            "copy_rows_per_second": round(args.rows / copy_s),
            "floor_seconds": round(floor_s, 2),
            "floor_rows_per_second": round(args.rows / floor_s),
            "import_to_floor_ratio": round(import_s / floor_s, 2),
            "import_seconds": round(import_s, 2),
            "import_rows_per_second": round(args.rows / import_s),
            "import_to_copy_ratio": round(import_s / copy_s, 2),
            "import_peak_rss_mb": round(max(rss)),
            "reimport_seconds": round(reimport_s, 2),
            "gbk_import_seconds": round(gbk_seconds, 2),
            "online_rows": args.rows // 2,
            "online_import_seconds": round(online_seconds, 2),
            "online_rows_per_second": round(args.rows // 2 / online_seconds),
            "online_peak_rss_mb": round(online_peak),
            "seconds_per_million": round(import_s * 1_000_000 / args.rows, 2),
            "target_seconds_per_million": TARGET_SECONDS_PER_MILLION,
        }
        print()
        print(f"rows                    {args.rows:>12,}")
        print(f"raw COPY (baseline)     {copy_s:>10.2f} s  {figures['copy_rows_per_second']:>10,} rows/s")
        print(
            f"floor: COPY + INSERT…SELECT {floor_s:>6.2f} s  {figures['floor_rows_per_second']:>10,} rows/s  "
            "(into members_order with its indexes and foreign keys, no checks)"
        )
        print(
            f"import_orders --historical {import_s:>7.2f} s  {figures['import_rows_per_second']:>10,} rows/s  "
            f"({figures['import_to_copy_ratio']:.1f}× COPY, {figures['import_to_floor_ratio']:.2f}× the floor, "
            f"peak {figures['import_peak_rss_mb']} MB)"
        )
        print(f"re-import (unchanged)   {reimport_s:>10.2f} s")
        print(f"GBK file                {gbk_seconds:>10.2f} s")
        print(
            f"{args.rows // 2:,} more, indexes kept {online_seconds:>6.2f} s  "
            f"{figures['online_rows_per_second']:>10,} rows/s  (into the table of {args.rows:,})"
        )
        verdict = "OK" if figures["seconds_per_million"] < TARGET_SECONDS_PER_MILLION else "OVER"
        print(
            f"target: 1M rows under {TARGET_SECONDS_PER_MILLION:.0f} s — "
            f"{figures['seconds_per_million']:.1f} s per million: {verdict}"
        )
        if args.json:
            print(json.dumps(figures))
    finally:
        if not args.keep:
            drop_database(args.pg, args.db)
            for path in (utf8, gbk, more):
                path.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
