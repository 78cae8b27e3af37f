"""Celery tasks of the campaigns app: thin, idempotent, take ids, call services.

The services queue nothing themselves (a service never imports tasks): they return what they wrote,
and the task — or the subscriber or admin action that called them — queues what follows. The two
helpers here do that for everyone: ``outbox_deliver_soon`` (the messages a grant or firing wrote)
and ``trigger_firings_follow_up`` (a firing still pending gets a task at its due time).

Schedules (``config/periodic.py``):

- "Flush the message outbox" — ``outbox_flush_task``, every minute: due and stuck messages (the
  safety net of on-commit delivery).
- "Expire coupons" — ``coupons_expire_task``, daily at 00:15.
- "Start and end campaigns" — ``campaigns_advance_task``, every 5 minutes.
- "Sweep triggers" — ``triggers_sweep_task``, hourly: inactivity and pattern triggers, due
  after-order firings and missed transitions.
"""

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from functools import partial

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from campaigns.models import OutboxMessage, TriggerFiring
from campaigns.services.campaigns import campaign_grants_for_transition, campaign_run_batch, campaigns_advance
from campaigns.services.coupons import coupons_expire
from campaigns.services.offers import referral_rewards_grant, referral_rewards_revoke
from campaigns.services.outbox import outbox_deliver, outbox_flush
from campaigns.services.stamps import stamps_collect_for_order, stamps_reverse_for_order
from campaigns.services.triggers import (
    firing_message_ids,
    trigger_fire_pending,
    triggers_due,
    triggers_fire_batch,
    triggers_fire_for_transition,
)
from members.clock import task_moment

RUN_TASK_MEMBERS = 5000


# --- queueing what a service wrote ---------------------------------------------------------------------


def outbox_deliver_soon(message_ids: Iterable[int | None]) -> None:
    """Queue the delivery of these outbox messages once the current transaction commits (at once
    outside a transaction). When the broker cannot be reached the failure is logged and the flush
    delivers them within a minute."""
    for message_id in dict.fromkeys(message_ids):
        if message_id is not None:
            transaction.on_commit(partial(outbox_deliver_task.delay, message_id), robust=True)


def trigger_firings_follow_up(firings: Iterable[TriggerFiring], *, now: dt.datetime) -> None:
    """After ``triggers_schedule_for_order``: queue a task for each firing still pending, with the
    countdown to its due time, and the delivery of the fired ones' messages. A task that cannot be
    queued is logged: the sweep fires the firing when it is due."""
    firings = list(firings)
    for firing in firings:
        if firing.status != TriggerFiring.Status.PENDING or firing.due_at is None:
            continue
        countdown = max((firing.due_at - now).total_seconds(), 0)
        transaction.on_commit(
            partial(trigger_fire_pending_task.apply_async, ([firing.pk],), countdown=countdown), robust=True
        )
    outbox_deliver_soon(firing_message_ids(firings))


# --- outbox --------------------------------------------------------------------------------------------


@shared_task(acks_late=True)
def outbox_deliver_task(message_id: int) -> str | None:
    """Deliver one outbox message. Safe to run twice: only the worker whose claim succeeds sends.
    A retryable failure queues the next attempt at the message's ``next_attempt_at``."""
    message = outbox_deliver(message_id=message_id)
    if message is None:
        return None
    if message.status == OutboxMessage.Status.PENDING:
        countdown = max((message.next_attempt_at - timezone.now()).total_seconds(), 0)
        outbox_deliver_task.apply_async((message_id,), countdown=countdown)
    return message.status


@shared_task(acks_late=True)
def outbox_flush_task() -> int:
    """Every minute: queue every due message and recover those stuck in ``sending``."""
    due = outbox_flush()
    outbox_deliver_soon(due)
    return len(due)


# --- coupons and campaigns -----------------------------------------------------------------------------


@shared_task(acks_late=True)
def coupons_expire_task(as_of: str | None = None) -> int:
    """Daily: mark issued coupons past their validity expired (one UPDATE). Safe to run twice."""
    return coupons_expire(as_of=task_moment(as_of))


@shared_task(acks_late=True)
def campaigns_advance_task(as_of: str | None = None) -> list[int]:
    """Every few minutes: start due scheduled campaigns, end those past their window. Safe to run twice."""
    return list(campaigns_advance(now=task_moment(as_of)))


@shared_task(acks_late=True)
def campaign_run_task(campaign_id: int) -> dict:
    """Grant a segment campaign to its targeted members ("run now"), 5,000 per task: when members
    are left, the task queues itself again. Safe to run twice: a member is granted once per
    campaign batch, and two runs of one campaign never overlap (advisory lock)."""
    result = campaign_run_batch(campaign_id=campaign_id, limit=RUN_TASK_MEMBERS)
    outbox_deliver_soon(result.message_ids)
    if result.more:
        campaign_run_task.delay(campaign_id)
    return result.counts


@shared_task(acks_late=True)
def campaign_transition_task(member_id: int, to_segment_id: int, run_id: int | None = None) -> list[str]:
    """A member entered a segment: grant the running transition campaigns, once per (run, segment)."""
    outcomes = campaign_grants_for_transition(member_id=member_id, to_segment_id=to_segment_id, run_id=run_id)
    outbox_deliver_soon(outcome.message_id for outcome in outcomes)
    return [outcome.status for outcome in outcomes]


# --- triggers ------------------------------------------------------------------------------------------


@shared_task(acks_late=True)
def trigger_transition_task(transition_id: int) -> list[str]:
    """A member entered a watched segment: fire the triggers watching it, once per transition."""
    firings = triggers_fire_for_transition(transition_id=transition_id)
    outbox_deliver_soon(firing_message_ids(firings))
    return [firing.status for firing in firings]


@shared_task(acks_late=True)
def trigger_fire_pending_task(firing_ids: list[int], as_of: str | None = None) -> list[str | None]:
    """Fire scheduled (after-order) firings that are due. Safe to run twice."""
    now = task_moment(as_of)
    firings = [trigger_fire_pending(firing_id=firing_id, now=now) for firing_id in firing_ids]
    outbox_deliver_soon(firing_message_ids(firings))
    return [firing.status if firing is not None else None for firing in firings]


@shared_task(acks_late=True)
def trigger_fire_batch_task(trigger_id: int, causes: list[list], as_of: str | None = None) -> dict:
    """Fire one trigger for a chunk of ``[member_id, cause_key]`` pairs the sweep selected."""
    firings = triggers_fire_batch(trigger_id=trigger_id, causes=causes, now=task_moment(as_of))
    outbox_deliver_soon(firing_message_ids(firings))
    return dict(Counter(firing.status for firing in firings))


@shared_task(acks_late=True)
def triggers_sweep_task(as_of: str | None = None) -> dict:
    """Hourly: queue a task per chunk of trigger causes that are due (``triggers_due``). Returns how
    many causes were queued per trigger kind. Safe to run twice, and never twice at once."""
    now = task_moment(as_of)
    counts: Counter[str] = Counter()
    for chunk in triggers_due(now=now):
        if chunk.trigger_id is None:
            trigger_fire_pending_task.delay(chunk.causes, now.isoformat())
        else:
            trigger_fire_batch_task.delay(chunk.trigger_id, chunk.causes, now.isoformat())
        counts[chunk.kind] += len(chunk.causes)
    return dict(counts)


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def referral_rewards_task(referral_id: int) -> list[str]:
    """A referral completed: give the rule of the referrer's segment (coupons, extra points)."""
    return referral_rewards_grant(referral_id=referral_id)


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def referral_rewards_revoke_task(referral_id: int) -> int:
    """A referral was reversed: take back what its rule gave."""
    return referral_rewards_revoke(referral_id=referral_id)


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def stamp_order_task(order_id: int) -> list[int]:
    """Stamp a new order on the active stamp cards it counts for. Safe to run twice (one stamp per
    card and order; rewards keyed by their completion)."""
    return [completion.pk for completion in stamps_collect_for_order(order_id=order_id)]


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def stamp_refund_task(order_id: int) -> int:
    """An order with stamps was refunded: void the stamps it no longer earns. Safe to run twice."""
    return stamps_reverse_for_order(order_id=order_id)
