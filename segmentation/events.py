"""Domain events published by ``segmentation`` after commit (see ``members.events``).

``segment_changed`` is published once per ``SegmentTransition``: by a recompute for every member
whose segment changed (streamed from the database after the run commits, so a million changes never
sit in memory), and by the per-order refresh when an order or refund moves a member. Handlers must
be cheap — queue a task, or note the id and work in batches — since a run can publish many.

    from segmentation.events import segment_changed

    @segment_changed.subscribe
    def on_change(*, member_id, to_slug, **_):
        ...
"""

from members.events import DomainEvent

segment_changed = DomainEvent(
    "segment_changed",
    "A member's segment changed. Payload: transition_id, run_id, member_id, from_segment_id, to_segment_id, "
    "from_slug, to_slug, source ('run' or 'live').",
)

ALL_EVENTS = (segment_changed,)
