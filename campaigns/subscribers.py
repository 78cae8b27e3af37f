"""Everything campaigns does when members' or segmentation's events fire — listed in one place
(``connect``, called from ``CampaignsConfig.ready()``).

- ``segment_changed`` → ``on_segment_changed_fire_triggers``: the segment entered is watched by an
  active *entered a segment* trigger: queue ``trigger_transition_task``.
- ``segment_changed`` → ``on_segment_changed_grant_transition_campaigns``: the segment entered is
  watched by a running transition campaign: queue ``campaign_transition_task`` (which calls
  ``campaign_grants_for_transition``).
- ``order_recorded`` → ``on_order_recorded_schedule_triggers``: write the pending after-order
  firings (fired later by a task, or the sweep).
- ``order_recorded`` → ``on_order_recorded_collect_stamps``: an active stamp card exists (cached,
  ``campaigns.services.stamps.active_stamp_cards``): queue ``stamp_order_task``.
- ``refund_recorded`` → ``on_refund_recorded_reverse_stamps``: the order has stamps, or a card is
  active (its stamp task may still be running): queue ``stamp_refund_task`` (voids the stamps the
  order no longer earns, takes back unused rewards).
- ``referral_completed`` → ``referral_rewards_task``: the referral rule of the referrer's segment
  (coupons, extra points); ``referral_reversed`` → ``referral_rewards_revoke_task`` takes them back.
- ``member_erased`` → ``on_member_erased_forget_texts``: the member's messages lose their payloads
  (texts, names) and unsent ones are given up; follow-up tasks lose their outcome notes (PIPL).

Handlers run after the publishing transaction commits and must be cheap: a recompute publishes
``segment_changed`` once per changed member. Each checks a cached set first — active triggers
(``campaigns.services.triggers``) or segments watched by running transition campaigns
(``campaigns.services.campaigns.watched_transition_segment_ids``), both refreshed every 30 seconds —
and does nothing when nobody cares. Whatever they miss (the broker was down, the worker died) the
hourly ``triggers_sweep_task`` finds for triggers.
"""

from django.utils import timezone

from campaigns.models import FollowUpTask, OutboxMessage, Stamp
from campaigns.services.campaigns import watched_transition_segment_ids
from campaigns.services.stamps import active_stamp_cards
from campaigns.services.triggers import any_after_order_trigger, triggers_schedule_for_order, watched_segment_ids
from campaigns.tasks import (
    campaign_transition_task,
    referral_rewards_revoke_task,
    referral_rewards_task,
    stamp_order_task,
    stamp_refund_task,
    trigger_firings_follow_up,
    trigger_transition_task,
)
from members.events import member_erased, order_recorded, referral_completed, referral_reversed, refund_recorded
from segmentation.events import segment_changed


def on_segment_changed_fire_triggers(*, transition_id: int, to_segment_id=None, **_payload) -> None:
    """A member entered a segment an active trigger watches: fire it in a task."""
    if to_segment_id is None or to_segment_id not in watched_segment_ids():
        return
    trigger_transition_task.delay(transition_id)


def on_segment_changed_grant_transition_campaigns(*, member_id: int, to_segment_id, run_id=None, **_payload) -> None:
    """A member entered a segment a running transition campaign watches: grant it in a task."""
    if to_segment_id is None or to_segment_id not in watched_transition_segment_ids():
        return
    campaign_transition_task.delay(member_id=member_id, to_segment_id=to_segment_id, run_id=run_id)


def on_order_recorded_schedule_triggers(*, order_id: int, **_payload) -> None:
    """An order was recorded: write the pending after-order firings (fired later by a task, or the sweep)."""
    if not any_after_order_trigger():
        return
    now = timezone.now()
    firings = triggers_schedule_for_order(order_id=order_id, now=now)
    trigger_firings_follow_up(firings, now=now)


def on_order_recorded_collect_stamps(*, order_id: int, **_payload) -> None:
    """An order was recorded: stamp it on the active stamp cards it counts for (nothing when none is active)."""
    if not active_stamp_cards():
        return
    stamp_order_task.delay(order_id)


def on_refund_recorded_reverse_stamps(*, order_id: int, **_payload) -> None:
    """A refund was recorded: an order with stamps may no longer earn them. While a card is active
    the order's stamp task may still be running, its stamp not committed yet: the refund task is
    queued anyway and waits for it (the member lock)."""
    if active_stamp_cards() or Stamp.objects.filter(order_id=order_id, void_at__isnull=True).exists():
        stamp_refund_task.delay(order_id)


def on_referral_completed_give_rule_rewards(*, referral_id: int, **_payload) -> None:
    referral_rewards_task.delay(referral_id)


def on_referral_reversed_take_rule_rewards_back(*, referral_id: int, **_payload) -> None:
    referral_rewards_revoke_task.delay(referral_id)


def on_member_erased_forget_texts(*, member_id: int, **_payload) -> None:
    """An erased member's message payloads and follow-up notes go; the rows stay (counts, reports)."""
    now = timezone.now()
    messages = OutboxMessage.objects.filter(member_id=member_id)
    messages.filter(status__in=[OutboxMessage.Status.PENDING, OutboxMessage.Status.SENDING]).update(
        status=OutboxMessage.Status.FAILED, last_error="member erased", updated_at=now
    )
    messages.update(payload={}, updated_at=now)
    FollowUpTask.objects.filter(member_id=member_id).exclude(outcome="").update(outcome="", updated_at=now)


def connect() -> None:
    segment_changed.subscribe(on_segment_changed_fire_triggers)
    segment_changed.subscribe(on_segment_changed_grant_transition_campaigns)
    order_recorded.subscribe(on_order_recorded_schedule_triggers)
    order_recorded.subscribe(on_order_recorded_collect_stamps)
    refund_recorded.subscribe(on_refund_recorded_reverse_stamps)
    referral_completed.subscribe(on_referral_completed_give_rule_rewards)
    referral_reversed.subscribe(on_referral_reversed_take_rule_rewards_back)
    member_erased.subscribe(on_member_erased_forget_texts)
