"""Celery tasks of the segmentation app: thin, idempotent, take ids, call services.

Nightly schedule (``config/periodic.py``)::

    Schedule("Recompute RFM segments", "segmentation.tasks.segment_recompute_task", "30", "2",
             "Recompute every member's RFM scores and segment (as of today)."),
    Schedule("Compute product preferences", "segmentation.tasks.product_preferences_task", "0", "2", …)
    Schedule("Compute rule tags", "segmentation.tasks.rule_tags_task", "20", "2", …)
"""

import datetime as dt
import logging

from celery import chord, shared_task
from celery.backends.base import DisabledBackend
from django.conf import settings

from segmentation.services import (
    NoActiveScheme,
    RecomputeAlreadyRunning,
    SwapLockTimeout,
    live_refresh_drain,
    product_preferences_recompute,
    recompute_reap_stale,
    rule_tags_recompute,
    segment_recompute,
    segment_recompute_chunk,
    segment_recompute_finish,
    segment_recompute_split,
)

logger = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=3, default_retry_delay=300)
def segment_recompute_task(self, as_of: str | None = None, chunks: int | None = None) -> int | None:
    """A full recompute (as of ``as_of``, ISO date, default today). With ``chunks`` > 1 (default
    ``settings.SEGMENTATION_RECOMPUTE_CHUNKS``, 1) the run is split across workers by member-id
    range in a chord. Safe to run twice: a second concurrent run exits, a repeated one rewrites the
    same results and records no transitions. Returns the run id (None when it did not run).

    A run whose swap could not lock the live table in time (``SwapLockTimeout``: a long reader) is
    recorded failed and retried (``max_retries``, ``SEGMENTATION_RECOMPUTE_RETRY_SECONDS`` apart,
    doubling); one whose worker died is redelivered (``acks_late``, ``reject_on_worker_lost``) and
    its run marked failed by the next one (``recompute_reap_stale``)."""
    day = dt.date.fromisoformat(as_of) if as_of else None
    chunks = int(chunks or getattr(settings, "SEGMENTATION_RECOMPUTE_CHUNKS", 1) or 1)
    app = segment_recompute_task.app
    if chunks > 1 and isinstance(app.backend, DisabledBackend) and not app.conf.task_always_eager:
        logger.warning("Splitting an RFM run needs a Celery result backend (chords); running it in one piece.")
        chunks = 1
    try:
        if chunks <= 1:
            return segment_recompute(as_of=day).pk
        run, ranges = segment_recompute_split(chunks=chunks, as_of=day)
    except (RecomputeAlreadyRunning, NoActiveScheme) as exc:
        logger.warning("RFM recompute skipped: %s", exc)
        return None
    except SwapLockTimeout as exc:
        delay = float(getattr(settings, "SEGMENTATION_RECOMPUTE_RETRY_SECONDS", 300)) * 2**self.request.retries
        raise self.retry(exc=exc, countdown=delay) from exc
    chord(segment_recompute_chunk_task.si(run.pk, low, high) for low, high in ranges)(
        segment_recompute_finish_task.si(run.pk)
    )
    return run.pk


@shared_task
def segment_recompute_reap_task() -> int:
    """Mark failed the RFM runs a dead worker left ``running`` (so operators see them)."""
    return recompute_reap_stale()


@shared_task(acks_late=True)
def segment_recompute_chunk_task(run_id: int, member_id_from: int, member_id_to: int) -> int:
    """Aggregate one member-id range of a split run into the staging table (idempotent)."""
    return segment_recompute_chunk(run_id=run_id, member_range=(member_id_from, member_id_to))


@shared_task(acks_late=True)
def segment_recompute_finish_task(run_id: int) -> int:
    """Score a split run's staged rows with global cut points and swap them in (idempotent)."""
    try:
        return segment_recompute_finish(run_id=run_id).pk
    except RecomputeAlreadyRunning as exc:
        logger.warning("RFM run %s not finished: %s", run_id, exc)
        raise


@shared_task(bind=True, max_retries=5, default_retry_delay=5)
def segment_live_refresh_task(self) -> int:
    """Refresh, in one statement per thousand, every member whose order asked for it since the last
    batch (``segmentation.services.live_batch``). Safe to run twice or concurrently: members are
    popped from the pending set, and a failed chunk goes back into it before the retry."""
    try:
        return live_refresh_drain()
    except Exception as exc:
        raise self.retry(exc=exc) from exc


@shared_task(acks_late=True)
def product_preferences_task() -> dict:
    """The nightly favourite categories and related products (``segmentation.services.products``).
    Safe to run twice: a second run rewrites nothing that has not changed."""
    counts = product_preferences_recompute()
    logger.info("Product preferences: %s members with a favourite category, %s related products", *counts)
    return counts._asdict()


@shared_task(acks_late=True)
def rule_tags_task() -> dict:
    """The nightly rule tags (``segmentation.services.rule_tags``), after the product preference that
    the favourite-category rule reads. Safe to run twice: a second run changes nothing."""
    counts = rule_tags_recompute()
    logger.info("Rule tags: %s rules, %s tags given, %s taken off", *counts)
    return counts._asdict()
