"""Everything campaigns does when members' or segmentation's events fire — listed in one place.
Connected in ``CampaignsConfig.ready()``. (Transition campaigns subscribe in ``campaigns.hooks``.)

Handlers run after the publishing transaction commits and must be cheap: a recompute publishes
``segment_changed`` once per changed member. Both check a cached index of active triggers first
(``campaigns.services.triggers``, refreshed every 30 seconds) and do nothing when no trigger cares.
Whatever they miss (the broker was down, the worker died) the hourly ``triggers_sweep_task`` finds.
"""

from members.events import order_recorded
from segmentation.events import segment_changed


def on_segment_changed_fire_triggers(*, transition_id: int, to_segment_id=None, **_payload) -> None:
    """A member entered a segment an active trigger watches: fire it in a task."""
    from campaigns.services.triggers import watched_segment_ids

    if to_segment_id is None or to_segment_id not in watched_segment_ids():
        return
    from campaigns.tasks import trigger_transition_task

    trigger_transition_task.delay(transition_id)


def on_order_recorded_schedule_triggers(*, order_id: int, **_payload) -> None:
    """An order was recorded: write the pending after-order firings (fired later by a task, or the sweep)."""
    from campaigns.services.triggers import any_after_order_trigger, triggers_schedule_for_order

    if any_after_order_trigger():
        triggers_schedule_for_order(order_id=order_id)


def connect() -> None:
    segment_changed.subscribe(on_segment_changed_fire_triggers)
    order_recorded.subscribe(on_order_recorded_schedule_triggers)
