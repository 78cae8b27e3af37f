"""Writes of the segmentation app: recomputes, the per-order refresh, scheme activation."""

from segmentation.services.live import member_rfm_refresh
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
    "member_rfm_refresh",
    "run_transitions_publish",
    "scheme_activate",
    "segment_recompute",
    "segment_recompute_chunk",
    "segment_recompute_finish",
    "segment_recompute_split",
]
