"""Celery tasks of the campaigns app: thin, idempotent, take ids, call services."""


# --- outbox (helper "automation") ------------------------------------------------------------------
# Schedules (config/periodic.py):
#   Schedule("Flush the message outbox", "campaigns.tasks.outbox_flush_task", "*", "*",
#            "Queue due and stuck messages (the safety net of on-commit delivery)."),

from celery import shared_task


@shared_task(acks_late=True)
def outbox_deliver_task(message_id: int) -> str | None:
    """Deliver one outbox message. Safe to run twice: only the worker whose claim succeeds sends."""
    from campaigns.services.outbox import outbox_deliver

    message = outbox_deliver(message_id=message_id)
    return message.status if message is not None else None


@shared_task(acks_late=True)
def outbox_flush_task() -> int:
    """Every minute: queue every due message and recover those stuck in ``sending``."""
    from campaigns.services.outbox import outbox_flush

    return outbox_flush()


# --- coupons and campaigns (helper "campaigns core") ------------------------------------------------
# Schedules (config/periodic.py):
#   Schedule("Expire coupons", "campaigns.tasks.coupons_expire_task", "15", "0",
#            "Mark coupons past their validity expired."),
#   Schedule("Start and end campaigns", "campaigns.tasks.campaigns_advance_task", "*/5", "*",
#            "Start scheduled campaigns whose time came; end those whose window closed."),


def _campaign_moment(as_of: str | None):
    import datetime as dt

    from django.utils import timezone

    moment = dt.datetime.fromisoformat(as_of) if as_of else timezone.now()
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


@shared_task(acks_late=True)
def coupons_expire_task(as_of: str | None = None) -> int:
    """Daily: mark issued coupons past their validity expired (one UPDATE). Safe to run twice."""
    from campaigns.services.coupons import coupons_expire

    return coupons_expire(as_of=_campaign_moment(as_of))


@shared_task(acks_late=True)
def campaigns_advance_task(as_of: str | None = None) -> list[int]:
    """Every few minutes: start due scheduled campaigns, end those past their window. Safe to run twice."""
    from campaigns.services.campaigns import campaigns_advance

    return list(campaigns_advance(now=_campaign_moment(as_of)))


RUN_TASK_MEMBERS = 5000


@shared_task(acks_late=True)
def campaign_run_task(campaign_id: int) -> dict:
    """Grant a segment campaign to its targeted members ("run now"), 5,000 per task: when members
    are left, the task queues itself again. Safe to run twice: a member is granted once per
    campaign batch, and two runs of one campaign never overlap (advisory lock)."""
    from campaigns.services.campaigns import campaign_run_batch

    result = campaign_run_batch(campaign_id=campaign_id, limit=RUN_TASK_MEMBERS)
    if result.more:
        campaign_run_task.delay(campaign_id)
    return result.counts


@shared_task(acks_late=True)
def campaign_transition_task(member_id: int, to_segment_id: int, run_id: int | None = None) -> list[str]:
    """A member entered a segment: grant the running transition campaigns, once per (run, segment)."""
    from campaigns.services.campaigns import campaign_grants_for_transition

    outcomes = campaign_grants_for_transition(member_id=member_id, to_segment_id=to_segment_id, run_id=run_id)
    return [outcome.status for outcome in outcomes]


# --- triggers (helper "automation") ----------------------------------------------------------------
# Schedules (config/periodic.py):
#   Schedule("Sweep triggers", "campaigns.tasks.triggers_sweep_task", "7", "*",
#            "Fire inactivity and pattern triggers, due after-order firings and missed transitions."),


def _trigger_moment(as_of: str | None):
    import datetime as dt

    from django.utils import timezone

    moment = dt.datetime.fromisoformat(as_of) if as_of else timezone.now()
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


@shared_task(acks_late=True)
def trigger_transition_task(transition_id: int) -> list[str]:
    """A member entered a watched segment: fire the triggers watching it, once per transition."""
    from campaigns.services.triggers import triggers_fire_for_transition

    return [firing.status for firing in triggers_fire_for_transition(transition_id=transition_id)]


@shared_task(acks_late=True)
def trigger_fire_pending_task(firing_ids: list[int], as_of: str | None = None) -> list[str | None]:
    """Fire scheduled (after-order) firings that are due. Safe to run twice."""
    from campaigns.services.triggers import trigger_fire_pending

    now = _trigger_moment(as_of)
    firings = [trigger_fire_pending(firing_id=firing_id, now=now) for firing_id in firing_ids]
    return [firing.status if firing is not None else None for firing in firings]


@shared_task(acks_late=True)
def trigger_fire_batch_task(trigger_id: int, causes: list[list], as_of: str | None = None) -> dict:
    """Fire one trigger for a chunk of ``[member_id, cause_key]`` pairs the sweep selected."""
    from campaigns.services.triggers import triggers_fire_batch

    return triggers_fire_batch(trigger_id=trigger_id, causes=causes, now=_trigger_moment(as_of))


@shared_task(acks_late=True)
def triggers_sweep_task() -> dict:
    """Hourly: queue every trigger cause that is due (see ``campaigns.services.triggers``)."""
    from campaigns.services.triggers import triggers_sweep

    return triggers_sweep()
