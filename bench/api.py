"""Benchmark of the REST API (issue 7): member profile GET and POS order POST under load.

    .venv/bin/python bench/api.py                       # 20,000 members, 200,000 orders, 60 s per run
    .venv/bin/python bench/api.py --duration 30 --workers 4 --keep
    .venv/bin/python bench/api.py --reuse --keep --only orders --duration 15
    .venv/bin/python bench/api.py --reuse --keep --only orders --order-index covering   # issue 22's index

Builds ``huiyuan_apibench`` (migrated like production, data from ``seed_demo``, a three-level tier
ladder, a segmentation run, one store API key, access tokens for a sample of members), starts
gunicorn on loopback with the production settings and ``config/gunicorn.py`` (application preloaded,
start-up objects frozen out of the garbage collector, cores + 1 sync workers), and drives it with
wrk (16 connections, ``--duration`` seconds after a ``--warmup``):

(a) the floor: a bare DRF view doing two primary-key lookups (``/api/v1/bench/floor``, routed only
    with ``HUIYUAN_BENCH_FLOOR``), under the same server settings;
(b) ``GET /api/v1/me`` with the token of a random member of the sample;
(c) ``POST /api/v1/pos/orders`` with a unique ``Idempotency-Key`` and external id per request, for
    a random member — each order updates tier and points before it answers, and asks for its
    member's segment refresh, which a Celery worker started with the server applies in batches
    (its CPU counts: it runs on the same machine). After the run the script waits for the batches
    to drain and reports how many members they refreshed.

Prints throughput, p50/p99 latency and errors of each, and the ratios against the targets:
profile ≥ 0.4 × the floor's throughput with p99 < 40 ms; orders ≥ 500/s with p99 < 60 ms and no
errors. Drops its database unless ``--keep``; ``--reuse`` runs on a kept one (its sample members
keep the orders of earlier runs, so figures drift: publish only fresh runs). ``--only`` runs some
cases. Needs PostgreSQL (``--pg``), Redis (``--redis``) and wrk (``apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python")
GUNICORN = str(ROOT / ".venv" / "bin" / "gunicorn")
CELERY = str(ROOT / ".venv" / "bin" / "celery")
DB_NAME = "huiyuan_apibench"

TARGETS = {"profile_vs_floor": 0.4, "profile_p99_ms": 40.0, "orders_per_s": 500.0, "orders_p99_ms": 60.0}

PREPARE = r"""
import json, random, sys
from decimal import Decimal
import django
django.setup()
from members.services.tokens import member_tokens_issue
from members.models import Member, Store, Tier, TierRule
from members.services.api_keys import store_api_key_create
from segmentation.services.recompute import segment_recompute

sample = int(sys.argv[1])
if not Tier.objects.exists():  # --reuse runs this again on the kept database
    entry = Tier.objects.create(code="regular", name="普通会员", rank=0)
    silver = Tier.objects.create(code="silver", name="银卡会员", rank=1, points_multiplier=Decimal("1.20"))
    gold = Tier.objects.create(code="gold", name="金卡会员", rank=2, points_multiplier=Decimal("1.50"))
    TierRule.objects.create(tier=silver, window_days=365, min_spend=Decimal("500.00"))
    TierRule.objects.create(tier=silver, window_days=90, min_orders=4)
    TierRule.objects.create(tier=gold, window_days=365, min_spend=Decimal("3000.00"))
    Member.objects.filter(tier__isnull=True).update(tier=entry)
    segment_recompute()  # so that each order's live segment refresh has a run to score with
store = Store.objects.filter(is_active=True).order_by("id").first()
_key, secret = store_api_key_create(store=store, name="bench POS", scopes="orders,members:read,wallet,points")
rng = random.Random(7)
ids = list(Member.objects.values_list("id", flat=True))
chosen = rng.sample(ids, min(sample, len(ids)))
members = dict(Member.objects.filter(id__in=chosen).values_list("id", "mobile"))
store_ids = list(Store.objects.values_list("id", flat=True))
print(json.dumps({
    "api_key": secret,
    "tokens": [member_tokens_issue(member_id=i)["access"] for i in chosen],
    "mobiles": [members[i] for i in chosen],
    "member_ids": chosen,
    "store_ids": store_ids,
}))
"""

# After the order run: wait for the worker to drain the batched segment refreshes, then count the
# members whose RFM row was written since the orders' warm-up began (argv[1], epoch seconds).
SEGMENTS_CHECK = r"""
import datetime as dt, json, sys, time
import django
django.setup()
from segmentation.models import MemberRfm
from segmentation.services.live_batch import pending_count
started = time.monotonic()
while pending_count() and time.monotonic() - started < 30:
    time.sleep(0.2)
since = dt.datetime.fromtimestamp(float(sys.argv[1]), dt.timezone.utc)
print(json.dumps({
    "pending": pending_count(),
    "waited_s": round(time.monotonic() - started, 1),
    "refreshed": MemberRfm.objects.filter(updated_at__gte=since, source_version__isnull=False).count(),
}))
"""

LUA_COMMON = r"""
local counter = 0
local threads = {}
function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end
function init(args)
  math.randomseed(os.time() + tid * 7919)
end
"""

LUA_FLOOR = (
    LUA_COMMON
    + r"""
request = function()
  local m = member_ids[math.random(#member_ids)]
  local s = store_ids[math.random(#store_ids)]
  return wrk.format("GET", "/api/v1/bench/floor?member=" .. m .. "&store=" .. s)
end
"""
)

LUA_PROFILE = (
    LUA_COMMON
    + r"""
request = function()
  local t = tokens[math.random(#tokens)]
  return wrk.format("GET", "/api/v1/me", {["Authorization"] = "Bearer " .. t})
end
"""
)

LUA_ORDERS = (
    LUA_COMMON
    + r"""
request = function()
  if not prefix then  -- unique per wrk run and thread, so the warm-up and the run never share a key
    prefix = run_id .. "-" .. tid .. "-" .. os.time() .. "-" .. math.random(1000000)
  end
  counter = counter + 1
  local id = prefix .. "-" .. counter
  local mobile = mobiles[math.random(#mobiles)]
  local amount = string.format("%d.%02d", math.random(5, 300), math.random(0, 99))
  local body = '{"external_id":"' .. id .. '","mobile":"' .. mobile .. '","paid_at":"' .. paid_at ..
               '","amount":"' .. amount .. '"}'
  return wrk.format("POST", "/api/v1/pos/orders", {
    ["Content-Type"] = "application/json",
    ["X-Api-Key"] = api_key,
    ["Idempotency-Key"] = id,
  }, body)
end
"""
)


def lua_table(name: str, values) -> str:
    return f"{name} = {{{', '.join(json.dumps(v) for v in values)}}}\n"


def run(cmd, env, **kwargs):
    return subprocess.run(cmd, env=env, cwd=ROOT, check=True, **kwargs)


def psql_admin(pg: str, sql: str) -> None:
    subprocess.run(["psql", f"{pg.rstrip('/')}/postgres", "-q", "-c", sql], check=True)


def parse_wrk(output: str) -> dict:
    def ms(value: str) -> float:
        number, unit = re.match(r"([\d.]+)(\w+)", value).groups()
        return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]

    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", output, re.MULTILINE))
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50_ms": ms(percentiles["50"]),
        "p99_ms": ms(percentiles["99"]),
        "requests": requests,
        "errors": (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, socket.groups())) if socket else 0),
    }


def wrk(script: Path, url: str, *, seconds: int, connections: int, threads: int) -> dict:
    output = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency", "-s", str(script), url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return parse_wrk(output)


ORDER_INDEXES = {
    "today": {"order_member_paid_at": "(member_id, paid_at)"},
    "covering": {"order_member_paid_at_cover": "(member_id, paid_at) INCLUDE (amount, refunded_amount)"},
    "both": {
        "order_member_paid_at": "(member_id, paid_at)",
        "order_member_paid_at_cover": "(member_id, paid_at) INCLUDE (amount, refunded_amount)",
    },
}


def order_index_set(pg: str, which: str) -> None:
    """Leave exactly the ``which`` set of the orders' member indexes (``ORDER_INDEXES``)."""
    statements = []
    for name, columns in ORDER_INDEXES["both"].items():
        if name in ORDER_INDEXES[which]:
            statements.append(f"CREATE INDEX IF NOT EXISTS {name} ON members_order USING btree {columns}")
        else:
            statements.append(f"DROP INDEX IF EXISTS {name}")
    for statement in statements:
        subprocess.run(["psql", f"{pg.rstrip('/')}/{DB_NAME}", "-qc", statement], check=True)


def wait_for(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except Exception:
            time.sleep(0.3)
    raise SystemExit(f"gunicorn did not answer at {url}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--sample", type=int, default=2_000, help="members with tokens (profile) and mobiles (orders)")
    parser.add_argument("--duration", type=int, default=60, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=10, help="seconds of warm-up before each run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--workers", type=int, default=(os.cpu_count() or 1) + 1, help="gunicorn worker processes (cores + 1)"
    )
    parser.add_argument("--worker-class", default="sync", help="gunicorn worker class (sync, gthread)")
    parser.add_argument("--worker-threads", type=int, default=1, help="threads per gunicorn worker (gthread)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://root@127.0.0.1:5432"))
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/7"))
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--reuse", action="store_true", help="use the kept database as it is")
    parser.add_argument(
        "--only", choices=("floor", "profile", "orders"), action="append", help="run only these (repeatable)"
    )
    parser.add_argument(
        "--order-index",
        choices=tuple(ORDER_INDEXES),
        default=None,
        help="the orders' (member_id, paid_at) index for this run (issue 22): today's, the covering one that "
        "replaces it (INCLUDE (amount, refunded_amount)), or both — to weigh the covering index on order posts",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install -y wrk")

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DATABASE_URL": f"{args.pg.rstrip('/')}/{DB_NAME}",
        "CELERY_BROKER_URL": args.redis,
        "SECRET_KEY": "bench-secret-key-not-for-production",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "HUIYUAN_BENCH_FLOOR": "1",
        "JWT_ACCESS_MINUTES": "120",
        "LOG_LEVEL": "WARNING",
        "CONN_MAX_AGE": "600",
        "CELERY_TASK_ALWAYS_EAGER": "1",
    }
    env.pop("REDIS_URL", None)
    env.pop("CACHE_URL", None)

    started = time.monotonic()
    if not args.reuse:
        psql_admin(args.pg, f"DROP DATABASE IF EXISTS {DB_NAME}")
        psql_admin(args.pg, f"CREATE DATABASE {DB_NAME}")
        run([PYTHON, "manage.py", "migrate", "--run-syncdb", "-v", "0"], env)
        run(
            [
                PYTHON,
                "manage.py",
                "seed_demo",
                "--history-only",
                "--members",
                str(args.members),
                "--orders",
                str(args.orders),
                "--seed",
                "42",
                "--no-progress",
            ],
            env,
        )
    if args.order_index:
        order_index_set(args.pg, args.order_index)
    prepared = json.loads(run([PYTHON, "-c", PREPARE, str(args.sample)], env, capture_output=True, text=True).stdout)
    print(f"data ready in {time.monotonic() - started:.0f} s: {args.members} members, {args.orders} orders", flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="apibench-"))
    run_id = f"B{int(time.time())}"
    data = (
        lua_table("tokens", prepared["tokens"])
        + lua_table("mobiles", prepared["mobiles"])
        + lua_table("member_ids", prepared["member_ids"])
        + lua_table("store_ids", prepared["store_ids"])
        + f"api_key = {json.dumps(prepared['api_key'])}\n"
        + f"run_id = {json.dumps(run_id)}\n"
        + 'paid_at = "'
        + time.strftime("%Y-%m-%dT%H:%M:%S+08:00", time.gmtime(time.time() + 8 * 3600 - 60))
        + '"\n'
    )
    scripts = {}
    for name, lua in (("floor", LUA_FLOOR), ("profile", LUA_PROFILE), ("orders", LUA_ORDERS)):
        scripts[name] = workdir / f"{name}.lua"
        scripts[name].write_text(data + lua)

    server_env = {**env, "CELERY_TASK_ALWAYS_EAGER": "0"}
    server = subprocess.Popen(
        [
            GUNICORN,
            "config.wsgi",
            "--config",
            "config/gunicorn.py",
            "--workers",
            str(args.workers),
            "--worker-class",
            args.worker_class,
            "--threads",
            str(args.worker_threads),
            "--bind",
            f"127.0.0.1:{args.port}",
            "--log-level",
            "warning",
        ],
        env=server_env,
        cwd=ROOT,
        start_new_session=True,
    )
    # The worker that applies the batched segment refreshes the orders ask for: its CPU counts too.
    worker = subprocess.Popen(
        [CELERY, "-A", "config", "worker", "--pool", "solo", "--concurrency", "1", "--loglevel", "warning"],
        env=server_env,
        cwd=ROOT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{args.port}"
    results = {}
    try:
        wait_for(f"{base}/api/v1/bench/floor?member={prepared['member_ids'][0]}&store={prepared['store_ids'][0]}")
        for name in args.only or ("floor", "profile", "orders"):
            began = time.time()
            wrk(scripts[name], base, seconds=args.warmup, connections=args.connections, threads=args.threads)
            results[name] = wrk(
                scripts[name], base, seconds=args.duration, connections=args.connections, threads=args.threads
            )
            r = results[name]
            print(
                f"{name:8} {r['rps']:8.1f} req/s  p50 {r['p50_ms']:6.1f} ms  p99 {r['p99_ms']:6.1f} ms  "
                f"errors {r['errors']} of {r['requests']}",
                flush=True,
            )
            if name == "orders":
                r["segments"] = json.loads(
                    run([PYTHON, "-c", SEGMENTS_CHECK, str(began)], env, capture_output=True, text=True).stdout
                )
                print(
                    f"         segments: {r['segments']['refreshed']} members refreshed by the batches since the run "
                    f"began, {r['segments']['pending']} still pending {r['segments']['waited_s']} s after it ended",
                    flush=True,
                )
    finally:
        for process in (server, worker):
            os.killpg(process.pid, signal.SIGTERM)
        for process in (server, worker):
            process.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)
        if not args.keep:
            psql_admin(args.pg, f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")

    if args.only:
        print(json.dumps({"results": results}))
        return
    floor, profile, orders = results["floor"], results["profile"], results["orders"]
    ratio = profile["rps"] / floor["rps"] if floor["rps"] else 0.0
    checks = [
        ("profile ≥ 0.4 × floor", f"{ratio:.2f} ×", ratio >= TARGETS["profile_vs_floor"]),
        ("profile p99 < 40 ms", f"{profile['p99_ms']:.1f} ms", profile["p99_ms"] < TARGETS["profile_p99_ms"]),
        ("orders ≥ 500/s", f"{orders['rps']:.1f}/s", orders["rps"] >= TARGETS["orders_per_s"]),
        ("orders p99 < 60 ms", f"{orders['p99_ms']:.1f} ms", orders["p99_ms"] < TARGETS["orders_p99_ms"]),
        ("orders without errors", str(orders["errors"]), orders["errors"] == 0),
    ]
    print()
    print(
        f"{args.connections} connections, {args.duration} s after {args.warmup} s warm-up, "
        f"gunicorn {args.workers} workers"
    )
    for label, value, ok in checks:
        print(f"  {label:24} {value:>12}  {'met' if ok else 'MISSED'}")
    print(json.dumps({"results": results, "profile_vs_floor": round(ratio, 3)}, indent=None))


if __name__ == "__main__":
    main()
