"""Celery tasks of the members app: thin, idempotent, take ids, call services.

Their schedules are in ``config/periodic.py``.
"""

import logging
from datetime import datetime

from celery import shared_task
from django.utils import timezone

from members.services.points import points_expire
from members.services.reconcile import balances_reconcile
from members.services.tiers import tier_downgrade_due

logger = logging.getLogger(__name__)


def _moment(as_of: str | None) -> datetime:
    """``as_of`` (ISO 8601; naive means the brand's time zone) or now."""
    moment = datetime.fromisoformat(as_of) if as_of else timezone.now()
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


@shared_task(acks_late=True)
def tier_downgrade_task(as_of: str | None = None) -> int:
    """Daily: downgrade members whose tier's retention period has run out. Safe to run twice."""
    return tier_downgrade_due(as_of=_moment(as_of))


@shared_task(acks_late=True)
def points_expire_task(as_of: str | None = None) -> int:
    """Daily: expire the points lots due by ``as_of``. Safe to run twice."""
    return points_expire(as_of=_moment(as_of))


@shared_task(acks_late=True)
def idempotency_records_purge_task() -> int:
    """Daily: delete the API's idempotency records older than HUIYUAN_IDEMPOTENCY_KEEP_DAYS."""
    from members.apis.idempotency import idempotency_records_purge

    return idempotency_records_purge()


@shared_task(acks_late=True)
def reconcile_task() -> int:
    """Daily: compare every balance with its ledger; log each difference. Returns how many."""
    discrepancies = balances_reconcile()
    for discrepancy in discrepancies:
        logger.error("reconcile: %s", discrepancy)
    return len(discrepancies)
