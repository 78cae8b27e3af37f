"""Celery tasks of the members app: thin, idempotent, take ids, call services.

Their schedules are in ``config/periodic.py``.
"""

import logging

from celery import shared_task

from members.clock import task_moment
from members.services.idempotency import idempotency_records_purge
from members.services.import_jobs import import_job_run
from members.services.interactions import interactions_prune
from members.services.points import points_expire
from members.services.reconcile import balances_reconcile
from members.services.tiers import tier_downgrade_due

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def tier_downgrade_task(as_of: str | None = None) -> int:
    """Daily: downgrade members whose tier's retention period has run out. Safe to run twice."""
    return tier_downgrade_due(as_of=task_moment(as_of))


@shared_task(acks_late=True)
def points_expire_task(as_of: str | None = None) -> int:
    """Daily: expire the points lots due by ``as_of``. Safe to run twice."""
    return points_expire(as_of=task_moment(as_of))


@shared_task(acks_late=True)
def idempotency_records_purge_task() -> int:
    """Daily: delete the API's idempotency records older than HUIYUAN_IDEMPOTENCY_KEEP_DAYS."""
    return idempotency_records_purge()


@shared_task(acks_late=True)
def reconcile_task() -> int:
    """Daily: compare every balance with its ledger; log each difference. Returns how many."""
    discrepancies = balances_reconcile()
    for discrepancy in discrepancies:
        logger.error("reconcile: %s", discrepancy)
    return len(discrepancies)


@shared_task(acks_late=True)
def import_job_task(job_id: int) -> str | None:
    """An admin upload's queued check or import (``members.services.import_jobs``). Its progress is
    written to the job as it goes; a job no longer queued is left alone, so running twice is safe."""
    job = import_job_run(job_id=job_id)
    return None if job is None else job.status


@shared_task(acks_late=True)
def interactions_prune_task() -> int:
    """Daily: delete interactions older than HUIYUAN_INTERACTION_KEEP_DAYS. Safe to run twice."""
    return interactions_prune()
