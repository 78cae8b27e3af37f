"""The CLV task, in a module of its own: it imports PyMC (through ``segmentation.services.clv``),
which the web process must never load. The worker imports this module (``config.celery``:
``autodiscover_tasks(related_name="clv_tasks")``); the admin queues the task by name
(``CLV_FIT_TASK``, ``segmentation.admin``).

Nightly schedule (``config/periodic.py``), an hour after the RFM recompute, and after it in any case
(the task waits while a recompute is still running)::

    Schedule("Fit customer lifetime value", "segmentation.clv_tasks.clv_fit_task", "30", "2", …)
"""

import datetime as dt
import logging

from celery import shared_task
from django.conf import settings

from segmentation.models import ClvRun, RfmRun
from segmentation.services.clv import ClvAlreadyRunning, ClvNotEnoughData, clv_fit

logger = logging.getLogger(__name__)


def rfm_run_in_progress() -> bool:
    """Whether an RFM recompute is running now (one left by a dead worker is reaped within 15 minutes)."""
    return RfmRun.objects.filter(status=RfmRun.Status.RUNNING).exists()


@shared_task(bind=True, acks_late=True, max_retries=None)
def clv_fit_task(self, run_id: int | None = None, as_of: str | None = None) -> int | None:
    """A CLV run: the queued run ``run_id`` (from the admin), or a new one as of ``as_of`` (ISO
    date, default today). Safe to run twice: a run already carried out is not redone, and a second
    concurrent run exits. Returns the run id (None when it did not run).

    The nightly run (no ``run_id``) comes after the RFM recompute: while a recompute is still
    running (a large brand, or one retried after ``SwapLockTimeout``) it waits, trying again every
    ``HUIYUAN_CLV_WAIT_SECONDS`` up to ``HUIYUAN_CLV_WAIT_TRIES`` times, then fits anyway."""
    if run_id is None and self.request.retries < settings.HUIYUAN_CLV_WAIT_TRIES and rfm_run_in_progress():
        logger.info("CLV run waits for the RFM recompute still running.")
        raise self.retry(countdown=settings.HUIYUAN_CLV_WAIT_SECONDS)
    run = None
    if run_id is not None:
        run = ClvRun.objects.filter(pk=run_id, phase=ClvRun.Phase.QUEUED).first()
        if run is None:
            logger.warning("CLV run %s is not waiting to run; nothing done.", run_id)
            return None
    try:
        return clv_fit(run=run, as_of=dt.date.fromisoformat(as_of) if as_of else None).pk
    except (ClvAlreadyRunning, ClvNotEnoughData) as exc:
        logger.warning("CLV run skipped: %s", exc)
        return None
