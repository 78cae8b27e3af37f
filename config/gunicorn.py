"""gunicorn settings for production: ``gunicorn config.wsgi -c config/gunicorn.py``.

- ``preload_app``: the application is imported once in the master, then forked, so workers
  start fast and share its memory.
- ``gc.freeze()`` before forking moves everything loaded at start-up out of the garbage
  collector's view: its collections then only walk what a request creates (less CPU per request,
  and the shared pages stay shared).
- Workers: ``GUNICORN_WORKERS`` (default: CPU cores + 1, sync workers).
"""

import gc
import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() + 1))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "sync")
preload_app = True
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None


def pre_fork(server, worker):
    gc.freeze()
