"""Fault drills' machinery: a private Redis server, the Celery app pointed at it, and real Celery
workers started as subprocesses on the drill's test database.

- ``redis_server`` (one per test process, so xdist workers never share one): ``redis-server`` on a
  free loopback port, with ``appendonly yes`` and ``appendfsync always`` — a message the broker
  acknowledged survives a ``SIGKILL`` of the server, as it would on a production broker configured
  so. ``restart()`` kills it and starts it again on the same files (``lose_data=True``: without
  them, as a broker without persistence comes back).
- ``drill_broker``: the test process sends tasks to that Redis instead of running them inline
  (``CELERY_TASK_ALWAYS_EAGER`` off, the app's connection pools rebuilt), and the live segment
  refresh asks there too; everything is put back afterwards. The server is emptied first.
- ``start_worker()``: ``.venv/bin/celery -A config worker --pool solo`` in its own process group,
  with ``DATABASE_URL`` naming this test's database (a transactional test: the worker sees what
  the test committed) and the settings of ``tests.drills.worker_settings``. Its log is printed when
  the test fails. Workers still running at the end are stopped (``SIGTERM``, then ``SIGKILL``).

The drills need ``redis-server`` on the ``PATH`` and skip without it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from django.db import connection

from config.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).with_name("celery"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition, *, timeout: float = 20.0, interval: float = 0.05, what: str = "the condition"):
    """Poll ``condition()`` until it returns something truthy (returned), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class RedisServer:
    def __init__(self, directory: Path):
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--maxmemory-policy",
                "noeviction",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_until(self._answers, timeout=10, what="redis-server to answer")

    def _answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.ConnectionError:
            return False

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=2)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def restart(self, *, lose_data: bool = False) -> None:
        """SIGKILL the server (no chance to save anything more) and start it again."""
        self.kill()
        if lose_data:
            for path in self.directory.iterdir():
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        self.start()

    def queued(self, queue: str = "celery") -> int:
        """Messages waiting in ``queue`` plus those a worker holds unacknowledged."""
        client = self.client()
        return client.llen(queue) + client.hlen("unacked")


@pytest.fixture(scope="session")
def redis_server():
    if shutil.which("redis-server") is None:
        pytest.skip("the fault drills need redis-server")
    directory = Path(tempfile.mkdtemp(prefix="drill-redis-"))
    server = RedisServer(directory)
    server.start()
    yield server
    server.kill()
    shutil.rmtree(directory, ignore_errors=True)


def _reset_pools() -> None:
    """Forget the app's pools: the next send takes them for the broker it is configured with now
    (kombu keeps one pool per broker URL, so nothing is closed that another test could still use)."""
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def drill_broker(redis_server, settings, monkeypatch):
    redis_server.client().flushall()
    monkeypatch.setenv("CELERY_BROKER_URL", redis_server.url)  # Celery reads it before its own setting
    saved = {name: celery_app.conf[name] for name in ("broker_url", "task_always_eager")}
    settings.CELERY_BROKER_URL = redis_server.url
    settings.SEGMENTATION_LIVE_BATCH_SECONDS = 0  # an order refreshes its member itself
    celery_app.conf.broker_url = redis_server.url
    celery_app.conf.task_always_eager = False
    _reset_pools()
    yield redis_server
    celery_app.conf.update(saved)
    _reset_pools()


def drill_database_url() -> str:
    """``DATABASE_URL`` with the database of this test (pytest-django's ``test_…`` one)."""
    parts = urlsplit(os.environ.get("DATABASE_URL") or "postgres://root@127.0.0.1:5432/postgres")
    if not os.environ.get("DATABASE_URL"):
        settings = connection.settings_dict
        netloc = f"{settings['USER']}@{settings['HOST']}:{settings['PORT']}"
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))


class Worker:
    def __init__(self, *, broker_url: str, log: Path, name: str):
        self.log = log
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.drills.worker_settings",
            "DATABASE_URL": drill_database_url(),
            "CELERY_BROKER_URL": broker_url,
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("REDIS_URL", None)
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    CELERY,
                    "-A",
                    "config",
                    "worker",
                    "--pool",
                    "solo",
                    "--hostname",
                    f"{name}@%h",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "--loglevel",
                    "INFO",
                ],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(15)

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.kill(signal.SIGTERM)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture
def start_worker(request, drill_broker, transactional_db, tmp_path):
    workers: list[Worker] = []

    def start() -> Worker:
        worker = Worker(
            broker_url=drill_broker.url, log=tmp_path / f"worker-{len(workers)}.log", name=f"drill{len(workers)}"
        )
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        for worker in workers:
            sys.stderr.write(f"--- {worker.log.name} ---\n{worker.output()[-6000:]}\n")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
