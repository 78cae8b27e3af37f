"""Celery tasks of the workspace: the nightly activity rollup (``workspace.activity_rollup``)."""

import logging

from celery import shared_task

from workspace.activity_rollup import activity_rollup

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def activity_rollup_task(days: int = 2) -> dict:
    """Rewrite the activity and retention rollup of the days that ended last. Safe to run twice or
    at once: one transaction under an advisory lock deletes and rewrites the same rows."""
    counts = activity_rollup(days=days)
    logger.info("Activity rollup: %s", counts)
    return counts
