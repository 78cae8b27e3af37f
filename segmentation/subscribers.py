"""What segmentation does when ``members`` publishes an event — every subscription, in one place
(wired in ``SegmentationConfig.ready``). Handlers run after the publishing transaction commits."""

import logging

from segmentation.services import member_rfm_refresh, member_rfm_refresh_soon

logger = logging.getLogger(__name__)


def refresh_member_on_order(*, member_id: int, **_payload) -> None:
    """An order was recorded: refresh that member's R, F, M and segment in the next batch, within
    about a second (``segmentation.services.live_batch``; at once without a Redis broker)."""
    member_rfm_refresh_soon(member_id=member_id)


def refresh_member_on_refund(*, member_id: int, **_payload) -> None:
    """A refund was recorded: the member's M (or R and F, for a full refund) changed."""
    member_rfm_refresh(member_id=member_id)


def recompute_after_import(*, count: int = 0, **_payload) -> None:
    """Historical orders were bulk-imported without per-order events: queue a full recompute."""
    from segmentation.tasks import segment_recompute_task

    if count:
        segment_recompute_task.delay()


def rfm_score_provider(*, member_ids) -> dict[int, int]:
    """RFM score for tier rules (``members.services.tiers``): R + F + M scores of the current run
    (3–15 in quintile mode; 0–3, the number of H, in thresholds mode). One query."""
    from django.db.models import F

    from segmentation.models import MemberRfm

    rows = (
        MemberRfm.objects.filter(member_id__in=list(member_ids), r_score__isnull=False)
        .annotate(total=F("r_score") + F("f_score") + F("m_score"))
        .values_list("member_id", "total")
    )
    return dict(rows)
