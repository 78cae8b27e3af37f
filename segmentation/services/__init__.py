"""Writes of the segmentation app: recomputes, the per-order refresh, scheme activation."""

from segmentation.services.live import member_rfm_refresh, members_rfm_refresh
from segmentation.services.live_batch import live_refresh_drain, member_rfm_refresh_soon
from segmentation.services.recompute import (
    NoActiveScheme,
    RecomputeAlreadyRunning,
    run_transitions_publish,
    segment_recompute,
    segment_recompute_chunk,
    segment_recompute_finish,
    segment_recompute_split,
)
from segmentation.services.schemes import scheme_activate

__all__ = [
    "NoActiveScheme",
    "RecomputeAlreadyRunning",
    "live_refresh_drain",
    "member_rfm_refresh",
    "member_rfm_refresh_soon",
    "members_rfm_refresh",
    "run_transitions_publish",
    "scheme_activate",
    "segment_recompute",
    "segment_recompute_chunk",
    "segment_recompute_finish",
    "segment_recompute_split",
]
