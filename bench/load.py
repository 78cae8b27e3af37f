"""Load test (issue 20): profile reads, order posts, top-ups and spends at once, during full RFM
recomputes — no 5xx, the invariants hold.

    .venv/bin/python bench/load.py                      # 50,000 members, 500,000 orders, 60 s, 16 users
    .venv/bin/python bench/load.py --duration 30 --users 32 --keep
    .venv/bin/python bench/load.py --reuse --keep       # on the kept database (figures drift)

This file is both the runner (run it with Python) and the locustfile (locust imports it: only the
classes at the bottom are used then). The runner:

1. builds ``huiyuan_loadbench`` — migrated like production, the demo brand's history from
   ``seed_demo --history-only``, a three-level tier ladder and a first segmentation run; a till's key
   from ``manage.py create_store_key`` (scopes orders, members:read, wallet, points); for a sample
   of members an access token (profile reads), a QR code (spends) and ¥300 of stored value;
2. starts gunicorn on loopback (``--port``, 8773) with ``config.settings.production`` and
   ``config/gunicorn.py`` (preloaded, cores + 1 sync workers), and one Celery worker (threads, 2)
   for the batched segment refreshes and the recomputes. Requests carry ``X-Forwarded-Proto: https``
   as the TLS-terminating proxy would set it. The till-money throttle (600/min per key) is raised
   for the run (``THROTTLE_POS_MONEY``): the load comes from one key, a real till sends a few a minute;
3. runs locust headless twice (``--users`` closed-loop users without think time, ``--duration``
   seconds each) with the mix profile 4 : order 3 : spend 2 : top-up 1: first alone (the baseline,
   measured in the same run), then while a driver sends ``segment_recompute_task`` to the worker
   again as soon as the previous run finished, from the start of the load to its end;
4. after each run, waits for the segment refreshes to drain and checks: no 5xx and no failed
   request (a spend refused for an empty wallet, 422, is an answer, counted apart); the orders
   answered 201 are exactly the load's orders in the database; every recompute succeeded; at the
   end ``manage.py reconcile`` is clean.

Prints requests/s, p50/p95/p99 per endpoint, failures and status codes, the recomputes and the
checks, then one JSON line. Needs PostgreSQL (``--pg``) and Redis (``--redis``); locust comes from
the virtualenv (``pip install locust==2.47.0``). Exits non-zero when a check fails.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections import Counter
from pathlib import Path

if __name__ != "__main__":  # imported by locust: the users
    from locust import FastHttpUser, events, task

    _DATA = json.loads(Path(os.environ["LOAD_DATA"]).read_text())
    _STATUSES: Counter = Counter()
    _ORDERS_CREATED: list[str] = []  # external ids answered 201
    _PAID_AT = _DATA["paid_at"]

    @events.request.add_listener
    def _count_status(name, response, exception, **kwargs):
        code = getattr(response, "status_code", None) or 0
        _STATUSES[f"{name} {code}"] += 1

    @events.test_stop.add_listener
    def _write_statuses(**kwargs):
        Path(os.environ["LOAD_STATUSES"]).write_text(json.dumps({"statuses": _STATUSES, "orders": _ORDERS_CREATED}))

    class Till(FastHttpUser):
        """A member's phone and a store's till, in one closed loop without think time."""

        def on_start(self):
            self.prefix = os.environ["LOAD_PREFIX"] + uuid.uuid4().hex[:10]
            self.counter = 0
            self.rng = random.Random()

        def _key(self) -> str:
            self.counter += 1
            return f"{self.prefix}-{self.counter}"

        def _post(self, path: str, name: str, body: dict, accept=(201,)) -> int:
            key = self._key()
            headers = {
                "X-Api-Key": _DATA["api_key"],
                "Idempotency-Key": key,
                "X-Forwarded-Proto": "https",
                "Content-Type": "application/json",
            }
            with self.client.post(path, data=json.dumps(body), headers=headers, name=name, catch_response=True) as r:
                if r.status_code in accept:
                    r.success()
                else:
                    r.failure(f"{r.status_code}: {r.text[:200]}")
            return r.status_code

        @task(4)
        def profile(self):
            token = self.rng.choice(_DATA["tokens"])
            headers = {"Authorization": f"Bearer {token}", "X-Forwarded-Proto": "https"}
            self.client.get("/api/v1/me", headers=headers, name="GET /api/v1/me")

        @task(3)
        def order(self):
            body = {
                "mobile": self.rng.choice(_DATA["mobiles"]),
                "paid_at": _PAID_AT,
                "amount": f"{self.rng.randint(5, 300)}.{self.rng.randint(0, 99):02d}",
            }
            body["external_id"] = self._key()
            if self._post("/api/v1/pos/orders", "POST /api/v1/pos/orders", body) == 201:
                _ORDERS_CREATED.append(body["external_id"])

        @task(2)
        def spend(self):
            body = {"qr_code": self.rng.choice(_DATA["qr_codes"]), "amount": f"{self.rng.randint(1, 15)}.00"}
            # 422: not enough stored value left — an answer, not a failure
            self._post("/api/v1/pos/wallet/spend", "POST /api/v1/pos/wallet/spend", body, accept=(201, 422))

        @task(1)
        def top_up(self):
            body = {"mobile": self.rng.choice(_DATA["mobiles"]), "amount": f"{self.rng.randint(20, 100)}.00"}
            self._post("/api/v1/pos/wallet/top-up", "POST /api/v1/pos/wallet/top-up", body)


# --- the runner --------------------------------------------------------------------------------------

PREPARE = r"""
import json, random, sys
from decimal import Decimal
import django
django.setup()
from django.utils import timezone
from members.models import Member, Store, Tier, TierRule
from members.services.qr_codes import member_qr_code
from members.services.tokens import member_tokens_issue
from members.services.wallet import wallet_top_up
from segmentation.services.recompute import segment_recompute

sample = int(sys.argv[1])
if not Tier.objects.exists():  # --reuse runs this again on the kept database
    entry = Tier.objects.create(code="regular", name="普通会员", rank=0)
    silver = Tier.objects.create(code="silver", name="银卡会员", rank=1, points_multiplier=Decimal("1.20"))
    gold = Tier.objects.create(code="gold", name="金卡会员", rank=2, points_multiplier=Decimal("1.50"))
    TierRule.objects.create(tier=silver, window_days=365, min_spend=Decimal("500.00"))
    TierRule.objects.create(tier=gold, window_days=365, min_spend=Decimal("3000.00"))
    Member.objects.filter(tier__isnull=True).update(tier=entry)
    segment_recompute()
rng = random.Random(11)
ids = sorted(Member.objects.values_list("id", flat=True))
chosen = rng.sample(ids, min(sample, len(ids)))
mobiles = dict(Member.objects.filter(id__in=chosen).values_list("id", "mobile"))
stamp = timezone.now().strftime("%Y%m%d%H%M%S")
for member in Member.objects.filter(id__in=chosen):
    wallet_top_up(member=member, amount_paid=Decimal("300.00"), idempotency_key=f"load-{stamp}-{member.pk}")
print(json.dumps({
    "store": Store.objects.filter(is_active=True).order_by("id").values_list("code", flat=True).first(),
    "tokens": [member_tokens_issue(member_id=i)["access"] for i in chosen],
    "qr_codes": [member_qr_code(i) for i in chosen],
    "mobiles": [mobiles[i] for i in chosen],
    "members": len(ids),
}))
"""

# Sends the nightly recompute to the worker, again each time the previous one ended, until argv[1]
# (epoch seconds); prints every run it started.
RECOMPUTE_DRIVER = r"""
import json, sys, time
import django
django.setup()
from segmentation.models import RfmRun
from segmentation.tasks import segment_recompute_task
until = float(sys.argv[1])
runs = []
while time.time() < until:
    before = RfmRun.objects.order_by("-id").values_list("id", flat=True).first() or 0
    sent = time.time()
    segment_recompute_task.delay()
    while not RfmRun.objects.filter(id__gt=before).exclude(status="running").exists():
        time.sleep(0.2)
        if time.time() > until + 300:
            break
    for run in RfmRun.objects.filter(id__gt=before).order_by("id"):
        runs.append({"id": run.pk, "status": run.status, "seconds": round(time.time() - sent, 2),
                     "duration": run.duration.total_seconds() if run.duration else None, "error": run.error[:200]})
print(json.dumps(runs))
"""

# After the load: wait for the segment refreshes to drain; compare the orders answered 201 (the
# external ids in the file argv[1]) with the orders of this load (ids starting with argv[2]) stored.
CHECK = r"""
import json, sys, time
import django
django.setup()
from members.models import Order
from segmentation.services.live_batch import pending_count
started = time.monotonic()
while pending_count() and time.monotonic() - started < 60:
    time.sleep(0.2)
answered = set(json.load(open(sys.argv[1])))
stored = set(Order.objects.filter(external_id__startswith=sys.argv[2]).values_list("external_id", flat=True))
print(json.dumps({"answered_201": len(answered), "in_database": len(stored),
                  "answered_not_stored": len(answered - stored), "stored_not_answered": len(stored - answered),
                  "segment_refreshes_pending": pending_count()}))
"""


def main() -> None:
    import argparse
    import csv
    import shutil
    import signal
    import subprocess
    import tempfile
    import urllib.request

    root = Path(__file__).resolve().parent.parent
    python, venv_bin = str(root / ".venv" / "bin" / "python"), root / ".venv" / "bin"
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=50_000)
    parser.add_argument("--orders", type=int, default=500_000)
    parser.add_argument("--sample", type=int, default=1_000, help="members with tokens, QR codes and stored value")
    parser.add_argument("--duration", type=int, default=60, help="seconds of load")
    parser.add_argument("--users", type=int, default=16, help="locust users (closed loop, no think time)")
    parser.add_argument("--workers", type=int, default=(os.cpu_count() or 1) + 1, help="gunicorn workers")
    parser.add_argument("--port", type=int, default=8773)
    parser.add_argument("--db", default="huiyuan_loadbench")
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://root@127.0.0.1:5432"))
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/8"))
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--reuse", action="store_true", help="use the kept database as it is")
    args = parser.parse_args()

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DATABASE_URL": f"{args.pg.rstrip('/')}/{args.db}",
        "CELERY_BROKER_URL": args.redis,
        "SECRET_KEY": "load-secret-key-not-for-production",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "JWT_ACCESS_MINUTES": "120",
        "HUIYUAN_MEMBER_QR_MAX_AGE": "3600",
        "THROTTLE_POS_MONEY": "1000000/min",
        "LOG_LEVEL": "WARNING",
        "CONN_MAX_AGE": "600",
    }
    for name in ("REDIS_URL", "CACHE_URL", "CELERY_RESULT_BACKEND"):
        env.pop(name, None)

    def run(cmd, **kwargs):
        return subprocess.run(cmd, env=env, cwd=root, check=True, **kwargs)

    def psql_admin(sql: str) -> None:
        subprocess.run(["psql", f"{args.pg.rstrip('/')}/postgres", "-q", "-c", sql], check=True)

    started = time.monotonic()
    if not args.reuse:
        psql_admin(f"DROP DATABASE IF EXISTS {args.db} WITH (FORCE)")
        psql_admin(f"CREATE DATABASE {args.db}")
        run([python, "manage.py", "migrate", "-v", "0"])
        run(
            [
                python,
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
            ]
        )
    data = json.loads(run([python, "-c", PREPARE, str(args.sample)], capture_output=True, text=True).stdout)
    data["api_key"] = run(
        [
            python,
            "manage.py",
            "create_store_key",
            data["store"],
            "--scopes",
            "orders,members:read,wallet,points",
            "--name",
            "load test till",
        ],
        capture_output=True,
        text=True,
    ).stdout.strip()
    data["paid_at"] = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() - 60))
    print(f"data ready in {time.monotonic() - started:.0f} s: {data['members']} members", flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="loadbench-"))
    (workdir / "data.json").write_text(json.dumps(data))
    server_env = {**env, "LOAD_DATA": str(workdir / "data.json")}
    processes = []

    def spawn(cmd, **kwargs):
        process = subprocess.Popen(cmd, env=server_env, cwd=root, start_new_session=True, **kwargs)
        processes.append(process)
        return process

    spawn(
        [
            str(venv_bin / "gunicorn"),
            "config.wsgi",
            "--config",
            "config/gunicorn.py",
            "--workers",
            str(args.workers),
            "--bind",
            f"127.0.0.1:{args.port}",
            "--log-level",
            "warning",
        ]
    )
    spawn(
        [
            str(venv_bin / "celery"),
            "-A",
            "config",
            "worker",
            "--pool",
            "threads",
            "--concurrency",
            "2",
            "--loglevel",
            "warning",
            "--without-gossip",
            "--without-mingle",
        ]
    )
    base = f"http://127.0.0.1:{args.port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2):  # loopback
                break
        except Exception:
            if time.monotonic() > deadline:
                raise SystemExit("gunicorn did not answer") from None
            time.sleep(0.3)

    def load(phase: str, *, with_recomputes: bool) -> dict:
        """One locust run of ``--duration`` seconds; with the recompute driver alongside or not."""
        prefix = f"{phase[0].upper()}{int(time.time())}"  # this phase's external ids and idempotency keys
        phase_env = {**server_env, "LOAD_STATUSES": str(workdir / f"{phase}-statuses.json"), "LOAD_PREFIX": prefix}
        driver = None
        if with_recomputes:
            until = time.time() + args.duration
            driver = spawn([python, "-c", RECOMPUTE_DRIVER, str(until)], stdout=subprocess.PIPE, text=True)
        subprocess.run(
            [
                str(venv_bin / "locust"),
                "-f",
                str(Path(__file__).resolve()),
                "--headless",
                "--host",
                base,
                "--users",
                str(args.users),
                "--spawn-rate",
                str(args.users),
                "--run-time",
                f"{args.duration}s",
                "--stop-timeout",
                "10",  # let every user finish its request: each answer is counted
                "--csv",
                str(workdir / phase),
                "--only-summary",
                "--loglevel",
                "WARNING",
                "--exit-code-on-error",
                "0",
            ],
            env=phase_env,
            cwd=root,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        answers = json.loads((workdir / f"{phase}-statuses.json").read_text())
        (workdir / f"{phase}-orders.json").write_text(json.dumps(answers["orders"]))
        with (workdir / f"{phase}_stats.csv").open() as stats:
            endpoints = {
                row["Name"]: {
                    "requests": int(row["Request Count"]),
                    "failures": int(row["Failure Count"]),
                    "rps": round(float(row["Requests/s"]), 1),
                    "p50_ms": float(row["50%"]),
                    "p95_ms": float(row["95%"]),
                    "p99_ms": float(row["99%"]),
                }
                for row in csv.DictReader(stats)
            }
        recomputes = json.loads(driver.communicate(timeout=600)[0] or "[]") if driver else []
        after = json.loads(
            run(
                [python, "-c", CHECK, str(workdir / f"{phase}-orders.json"), prefix], capture_output=True, text=True
            ).stdout
        )
        return {"endpoints": endpoints, "statuses": answers["statuses"], "recomputes": recomputes, "after": after}

    results: dict = {}
    try:
        results["baseline"] = load("baseline", with_recomputes=False)
        results["recomputing"] = load("recomputing", with_recomputes=True)
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        shutil.rmtree(workdir, ignore_errors=True)
    reconcile = subprocess.run(
        [python, "manage.py", "reconcile"], env=env, cwd=root, capture_output=True, text=True, check=False
    )
    if not args.keep:
        psql_admin(f"DROP DATABASE IF EXISTS {args.db} WITH (FORCE)")

    print(
        f"\n{args.users} users, {args.duration} s per phase, gunicorn {args.workers} workers, {data['members']} members"
    )
    checks = []
    baseline_rps = results["baseline"]["endpoints"]["Aggregated"]["rps"]
    for phase, result in results.items():
        statuses = Counter(result["statuses"])
        five_xx = sum(count for key, count in statuses.items() if key.rsplit(" ", 1)[1].startswith("5"))
        result["five_xx"] = five_xx
        print(f"\n{phase}: {'during back-to-back full recomputes' if result['recomputes'] else 'no recompute'}")
        print(f"  {'endpoint':34} {'req/s':>7} {'p50':>7} {'p95':>7} {'p99':>7}  failures")
        for name, row in result["endpoints"].items():
            print(
                f"  {name:34} {row['rps']:7.1f} {row['p50_ms']:5.0f}ms {row['p95_ms']:5.0f}ms {row['p99_ms']:5.0f}ms"
                f"  {row['failures']} of {row['requests']}"
            )
        print("  status codes:", ", ".join(f"{key}: {count}" for key, count in sorted(statuses.items())))
        after = result["after"]
        checks += [
            (f"{phase}: no 5xx", five_xx == 0, str(five_xx)),
            (f"{phase}: no failed request", result["endpoints"]["Aggregated"]["failures"] == 0, ""),
            (
                f"{phase}: orders answered 201 = the load's orders stored",
                after["answered_not_stored"] == 0 and after["stored_not_answered"] == 0,
                f"{after['answered_201']} answered, {after['in_database']} stored",
            ),
            (f"{phase}: segment refreshes drained", after["segment_refreshes_pending"] == 0, ""),
        ]
        if result["recomputes"]:
            runs = result["recomputes"]
            durations = sorted(run_["duration"] for run_ in runs if run_["duration"] is not None)
            rps = result["endpoints"]["Aggregated"]["rps"]
            print(
                f"  full recomputes during the phase: {len(runs)}, "
                f"{sum(run_['status'] == 'succeeded' for run_ in runs)} succeeded, "
                f"durations {durations[0] if durations else '-'}–{durations[-1] if durations else '-'} s; "
                f"throughput {rps / baseline_rps if baseline_rps else 0:.2f} × the baseline"
            )
            checks.append(
                (f"{phase}: every recompute succeeded", all(run_["status"] == "succeeded" for run_ in runs), "")
            )
    checks.append(("reconcile clean", reconcile.returncode == 0, (reconcile.stdout + reconcile.stderr).strip()[:300]))
    print()
    for label, ok, detail in checks:
        print(f"  {label:58} {'ok' if ok else 'FAILED'} {detail}")
    print(json.dumps({**results, "reconcile": reconcile.returncode}))
    if not all(ok for _label, ok, _detail in checks):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
