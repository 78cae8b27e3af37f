"""What segmentation does when ``members`` publishes an event — every subscription, in one place
(wired in ``SegmentationConfig.ready``). Handlers run after the publishing transaction commits.

The member's RFM score that tier rules read (``MemberRfmScore``) is not asked for here: the
recompute and the refreshes below write it beside ``MemberRfm``."""

import logging

from segmentation.services import (
    batch_seconds,
    current_activity_kinds,
    live_refresh_ask,
    live_refresh_unschedule,
    member_rfm_refresh,
)
from segmentation.tasks import segment_live_refresh_task, segment_recompute_task

logger = logging.getLogger(__name__)


def refresh_member_on_order(*, member_id: int, **_payload) -> None:
    """An order was recorded: refresh that member's R, F, M and segment in the next batch, within
    about a second (``segmentation.services.live_batch``; at once without a Redis broker). The
    order that opens a batch queues the task that refreshes it."""
    if not live_refresh_ask(member_id=member_id):
        return
    try:
        segment_live_refresh_task.apply_async(countdown=batch_seconds())
    except Exception:
        logger.warning("could not queue the live RFM refresh", exc_info=True)
        live_refresh_unschedule()


def refresh_member_on_interactions(*, member_id: int, kinds=(), **_payload) -> None:
    """Interactions were stored: when the scheme counts one of their kinds for R, refresh the member
    as after an order (in the next batch)."""
    if set(kinds) & set(current_activity_kinds()):
        refresh_member_on_order(member_id=member_id)


def refresh_member_on_refund(*, member_id: int, **_payload) -> None:
    """A refund was recorded: the member's M (or R and F, for a full refund) changed."""
    member_rfm_refresh(member_id=member_id)


def recompute_after_import(*, count: int = 0, **_payload) -> None:
    """Historical orders were bulk-imported without per-order events: queue a full recompute."""
    if count:
        segment_recompute_task.delay()
