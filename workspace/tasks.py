"""Celery tasks of the workspace: the nightly activity rollup (``workspace.activity_rollup``)."""

import logging

from celery import shared_task
from django.db.models import Max
from django.utils import timezone

from workspace.activity_rollup import activity_rollup
from workspace.models import ActivityRollup

CATCH_UP_LIMIT = 400  # days: a longer gap is for ``rollup_activity --days N`` by hand

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def activity_rollup_task(days: int = 2) -> dict:
    """Rewrite the activity and retention rollup of the days that ended last — back to the last day
    rolled up, should nights have been missed (at most ``CATCH_UP_LIMIT`` days). Safe to run twice or
    at once: one transaction under an advisory lock deletes and rewrites the same rows."""
    last_rolled = ActivityRollup.objects.filter(period=ActivityRollup.Period.DAY).aggregate(last=Max("start"))["last"]
    if last_rolled is not None:
        days = max(days, min((timezone.localdate() - last_rolled).days, CATCH_UP_LIMIT))
    counts = activity_rollup(days=days)
    logger.info("Activity rollup: %s", counts)
    return counts
