"""Writes of the segmentation app: recomputes, the per-order refresh, scheme activation."""

from segmentation.services.live import current_activity_kinds, member_rfm_refresh, members_rfm_refresh
from segmentation.services.live_batch import (
    batch_seconds,
    live_refresh_ask,
    live_refresh_drain,
    live_refresh_unschedule,
)
from segmentation.services.products import PreferenceCounts, product_preferences_recompute
from segmentation.services.recompute import (
    NoActiveScheme,
    RecomputeAlreadyRunning,
    SwapLockTimeout,
    recompute_reap_stale,
    run_transitions_publish,
    segment_recompute,
    segment_recompute_chunk,
    segment_recompute_finish,
    segment_recompute_split,
)
from segmentation.services.rule_tags import RuleTagCounts, rule_tags_recompute
from segmentation.services.schemes import scheme_activate

__all__ = [
    "NoActiveScheme",
    "PreferenceCounts",
    "RecomputeAlreadyRunning",
    "RuleTagCounts",
    "SwapLockTimeout",
    "batch_seconds",
    "current_activity_kinds",
    "live_refresh_ask",
    "live_refresh_drain",
    "live_refresh_unschedule",
    "member_rfm_refresh",
    "members_rfm_refresh",
    "product_preferences_recompute",
    "recompute_reap_stale",
    "rule_tags_recompute",
    "run_transitions_publish",
    "scheme_activate",
    "segment_recompute",
    "segment_recompute_chunk",
    "segment_recompute_finish",
    "segment_recompute_split",
]
