"""Triggers: fire a rule for one member and one cause, exactly once.

``trigger_fire`` is the one place a trigger acts. In one transaction it:

1. locks the member row (``members.lock_objects.member_lock``) — firings of one member queue
   behind each other, so the frequency cap holds when two causes fire at once;
2. inserts the ``TriggerFiring`` for ``(trigger, cause_key)`` with ``ON CONFLICT DO NOTHING`` and
   reads it back: if it was fired or skipped already (a retried task, a second worker, the sweep
   catching up) it returns it and does nothing else;
3. skips (recording why) when the trigger was switched off, the member no longer qualifies (left
   the segment, bought again, the order was refunded) or the cap is reached;
4. grants through the trigger's campaign (``campaign_grant_to_member``, cause
   ``trigger:<firing>``; a member in that campaign's control group gets nothing at all), the coupon
   (``coupon_grant`` key ``trigger:<firing>``), the message (``message_enqueue`` key
   ``trigger:<firing>:msg``, left out when the coupon it announces could not be issued) and the
   follow-up task for the member's home store (``followup_create`` key ``trigger:<firing>:task``);
   the message's payload — the placeholders a channel's template fills — carries ``member_name``,
   the coupon's ``coupon_code``, ``coupon_name`` and ``coupon_valid_until`` and ``related_products``:
   the names of up to three products related to the order (after an order; otherwise the member's
   last order) that the member has not bought yet, joined with 、
   (``segmentation.product_selectors.order_related_product_names``; empty when there are none);
5. marks the firing fired with what it gave.

Every key derives from the firing row, which is unique per cause, so nothing is given twice.
Nothing here queues a task: the callers (``campaigns.tasks``, ``campaigns.subscribers``) queue the
delivery of the messages a firing wrote (``firing_message_ids``) and the pending firings' tasks.

Evaluation:

- *entered a segment* — ``segment_changed`` queues ``trigger_transition_task`` when the segment is
  watched by an active trigger; the hourly sweep catches transitions missed (broker down) within
  ``HUIYUAN_TRIGGER_CATCHUP_DAYS``.
- *after an order* — ``order_recorded`` writes a ``pending`` firing due ``delay_days`` after the
  order was paid (``triggers_schedule_for_order``, in the order's transaction's aftermath, without
  the broker) and the subscriber queues a task with that countdown; the sweep fires pending firings
  that are due, so a lost task only delays them.
- *birthday* — the member's next birthday (29 February: 28 February in other years) is at most
  ``birthday_days_before`` days away in the brand's local date, from ``HUIYUAN_TRIGGER_BIRTHDAY_HOUR``
  (10:00) on; the cause is that birthday's year, so a sweep that missed a day still greets before
  the day, and once a year.
- A firing that came due while its trigger was switched off (an after-order firing pending over
  the pause) is skipped when the trigger is switched on again (``activated_at``).
- *inactivity*, *pattern* and *birthday* — ``triggers_due`` selects candidates set-based (one query per chunk
  of member ids) and yields them in chunks of ``SWEEP_CHUNK``, which ``triggers_sweep_task`` fires
  in Celery tasks. It holds an advisory lock (``members.advisory_locks``, namespace
  ``campaigns.triggers_sweep``) while it yields, so two sweeps never overlap.

Operators switch triggers on and off with ``trigger_set_active`` and save them with
``trigger_save``; both drop this process's cached index of active triggers (other processes see
the change within ``INDEX_TTL`` seconds).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from django.conf import settings
from django.db import connection, transaction
from django.db.models import CharField, Exists, F, OuterRef, Q, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from campaigns.models import Trigger, TriggerFiring
from campaigns.services.campaigns import GrantStatus, campaign_grant_to_member
from campaigns.services.coupons import CouponUnavailable, coupon_grant
from campaigns.services.followups import followup_create
from campaigns.services.outbox import message_enqueue
from members.advisory_locks import namespace_key, session_lock
from members.caching import ProcessCache
from members.lock_objects import member_lock
from members.models import Member, Order
from segmentation.models import MemberRfm, SegmentTransition
from segmentation.product_selectors import order_related_product_names

Kind = Trigger.Kind
Status = TriggerFiring.Status
SWEEP_CHUNK = 200
INDEX_TTL = 30.0
SWEEP_LOCK = namespace_key("campaigns.triggers_sweep")


# --- which triggers are active (cheap filtering of events) -------------------------------------------


def _load_index() -> dict:
    rows = list(Trigger.objects.filter(is_active=True).values_list("kind", "segment_id"))
    return {
        "entered": frozenset(segment_id for kind, segment_id in rows if kind == Kind.ENTERED_SEGMENT),
        "after_order": any(kind == Kind.AFTER_ORDER for kind, _segment in rows),
    }


_index = ProcessCache(_load_index, ttl=INDEX_TTL)


def forget_active_triggers() -> None:
    """Drop the cached index of active triggers (after a trigger is saved; in tests)."""
    _index.clear()


def _active_index() -> dict:
    return _index.get()


def watched_segment_ids() -> frozenset:
    """Segments that an active *entered a segment* trigger watches (cached ``INDEX_TTL`` seconds)."""
    return _active_index()["entered"]


def any_after_order_trigger() -> bool:
    return bool(_active_index()["after_order"])


def birthday_hour() -> int:
    """The local hour from which the day's birthday greetings go out (``HUIYUAN_TRIGGER_BIRTHDAY_HOUR``)."""
    return int(getattr(settings, "HUIYUAN_TRIGGER_BIRTHDAY_HOUR", 10))


def catchup() -> dt.timedelta:
    return dt.timedelta(days=int(getattr(settings, "HUIYUAN_TRIGGER_CATCHUP_DAYS", 7)))


# --- switching triggers on and off -------------------------------------------------------------------


def trigger_save(*, trigger: Trigger) -> Trigger:
    """Validate and save a trigger an operator edited; events see the change at once (this process).
    Switching it on (or creating it on) stamps ``activated_at``."""
    trigger.full_clean()
    was_active = trigger.pk is not None and Trigger.objects.filter(pk=trigger.pk, is_active=True).exists()
    if trigger.is_active and not was_active:
        trigger.activated_at = timezone.now()
    trigger.save()
    forget_active_triggers()
    return trigger


def trigger_set_active(*, trigger_ids: Iterable[int], active: bool) -> int:
    """Switch the triggers on (``active``) or off. Returns how many changed. A trigger switched off
    fires no more: a pending firing of it is skipped when it comes due."""
    now = timezone.now()
    stamp = {"activated_at": now} if active else {}
    changed = (
        Trigger.objects.filter(pk__in=list(trigger_ids))
        .exclude(is_active=active)
        .update(is_active=active, updated_at=now, **stamp)
    )
    forget_active_triggers()
    return changed


# --- firing ------------------------------------------------------------------------------------------


def trigger_fire(*, trigger: Trigger, member_id: int, cause_key: str, now: dt.datetime | None = None) -> TriggerFiring:
    """Fire ``trigger`` for ``member_id`` because of ``cause_key``, once; see the module docstring."""
    now = now or timezone.now()
    with transaction.atomic():
        member = member_lock(member_id=member_id)
        TriggerFiring.objects.bulk_create(
            [TriggerFiring(trigger=trigger, member_id=member_id, cause_key=cause_key, due_at=now)],
            ignore_conflicts=True,
        )
        firing = TriggerFiring.objects.get(trigger=trigger, cause_key=cause_key)
        if firing.status != Status.PENDING or (firing.due_at is not None and firing.due_at > now):
            return firing
        trigger = Trigger.objects.select_related("coupon_template", "campaign").get(pk=trigger.pk)
        reason = _skip_reason(trigger, member=member, cause_key=cause_key, now=now, due_at=firing.due_at)
        if reason:
            firing.status, firing.skip_reason = Status.SKIPPED, reason
            firing.save(update_fields=["status", "skip_reason", "updated_at"])
            return firing
        _act(trigger, firing, member=member, now=now)
        firing.status, firing.fired_at = Status.FIRED, now
        firing.save(update_fields=["status", "fired_at", "coupon", "message", "followup", "granted", "updated_at"])
    return firing


def _skip_reason(
    trigger: Trigger, *, member: Member, cause_key: str, now: dt.datetime, due_at: dt.datetime | None = None
) -> str:
    if not trigger.is_active:
        return "trigger inactive"
    if trigger.activated_at and due_at is not None and due_at < trigger.activated_at:
        return "came due while switched off"  # "3 days after your order", months late, would be odd
    if trigger.kind == Kind.ENTERED_SEGMENT:
        current = MemberRfm.objects.filter(member_id=member.pk).values_list("segment_id", flat=True).first()
        if current != trigger.segment_id:
            return "no longer in the segment"
    elif trigger.kind == Kind.INACTIVITY:
        last = _last_order_id(Order.objects.filter(member_id=member.pk))
        if f"lapse:{last}" != cause_key:
            return "bought again"
    elif trigger.kind == Kind.AFTER_ORDER:
        order_id = int(cause_key.split(":", 1)[1])
        if not Order.objects.filter(pk=order_id, refunded_amount__lt=F("amount")).exists():
            return "order refunded"
    elif trigger.kind == Kind.BIRTHDAY:
        if member.birthday is None or not member.is_active:
            return "no birthday" if member.birthday is None else "member inactive"
        in_segment = MemberRfm.objects.filter(member_id=member.pk, segment_id=trigger.segment_id)
        if trigger.segment_id and not in_segment.exists():
            return "no longer in the segment"
    if trigger.cap_count and trigger.cap_days:
        recent = TriggerFiring.objects.filter(
            trigger=trigger,
            member_id=member.pk,
            status=Status.FIRED,
            fired_at__gt=now - dt.timedelta(days=trigger.cap_days),
        ).count()
        if recent >= trigger.cap_count:
            return "frequency cap"
    return ""


def _last_order_id(orders) -> int | None:
    return (
        orders.filter(refunded_amount__lt=F("amount")).order_by("-paid_at", "-id").values_list("pk", flat=True).first()
    )


def _act(trigger: Trigger, firing: TriggerFiring, *, member: Member, now: dt.datetime) -> None:
    granted: dict = {}
    key = f"trigger:{firing.pk}"
    if trigger.campaign_id:
        outcome = campaign_grant_to_member(campaign=trigger.campaign, member=member, cause=key)
        granted["campaign"] = {"status": outcome.status, "grant": outcome.grant.pk if outcome.grant else None}
        if outcome.message_id is not None:
            granted["campaign"]["message"] = outcome.message_id
        if outcome.status == GrantStatus.CONTROL:
            firing.granted = granted  # held out: the control group gets nothing, from the trigger either
            return
    coupon = None
    if trigger.coupon_template_id:
        try:
            coupon = coupon_grant(
                template=trigger.coupon_template,
                member=member,
                source=f"trigger:{trigger.pk}",
                idempotency_key=key,
                campaign=trigger.campaign,
            )
        except CouponUnavailable as exc:
            granted["coupon_unavailable"] = "; ".join(exc.messages)
        else:
            firing.coupon = coupon
            granted["coupon"] = coupon.pk
    if trigger.message_template and (coupon is not None or not trigger.coupon_template_id):
        payload = {
            "trigger_id": trigger.pk,
            "trigger": trigger.name,
            "member_name": member.name,
            "related_products": order_related_product_names(
                member_id=member.pk, order_id=_order_of(firing.cause_key), now=now
            ),
        }
        if coupon is not None:
            payload.update(
                coupon_code=coupon.code,
                coupon_name=trigger.coupon_template.name,
                coupon_valid_until=timezone.localtime(coupon.valid_until).strftime("%Y-%m-%d"),
            )
        message = message_enqueue(
            member=member,
            template=trigger.message_template,
            payload=payload,
            dedupe_key=f"{key}:msg",
            channel=trigger.message_channel or None,
        )
        firing.message = message
        granted["message"] = message.pk
    if trigger.create_followup:
        task = followup_create(
            member=member,
            reason=trigger.followup_reason or trigger.name,
            due_date=timezone.localdate(now) + dt.timedelta(days=trigger.followup_due_days),
            dedupe_key=f"{key}:task",
            store=member.home_store,
            campaign=trigger.campaign,
        )
        firing.followup = task
        granted["followup"] = task.pk
    firing.granted = granted


def _order_of(cause_key: str) -> int | None:
    """The order an after-order firing is about (``order:<id>``); None for other causes (the
    message then names the products related to the member's last order)."""
    kind, _sep, rest = cause_key.partition(":")
    return int(rest) if kind == "order" and rest.isdigit() else None


def firing_message_ids(firings: Iterable[TriggerFiring | None]) -> list[int]:
    """The outbox messages these firings wrote — the trigger's own and its campaign grant's — for
    the caller to queue their delivery."""
    found = []
    for firing in firings:
        if firing is None or firing.status != Status.FIRED:
            continue
        if firing.message_id:
            found.append(firing.message_id)
        campaign_message = ((firing.granted or {}).get("campaign") or {}).get("message")
        if campaign_message:
            found.append(campaign_message)
    return found


def trigger_fire_pending(*, firing_id: int, now: dt.datetime | None = None) -> TriggerFiring | None:
    """Fire a scheduled (after-order) firing if it is due; nothing when it is not, or done already."""
    firing = TriggerFiring.objects.select_related("trigger").filter(pk=firing_id).first()
    if firing is None:
        return None
    return trigger_fire(trigger=firing.trigger, member_id=firing.member_id, cause_key=firing.cause_key, now=now)


# --- events ------------------------------------------------------------------------------------------


def triggers_fire_for_transition(*, transition_id: int, now: dt.datetime | None = None) -> list[TriggerFiring]:
    """A member entered a segment: fire every active trigger watching it, once per transition."""
    transition = SegmentTransition.objects.filter(pk=transition_id).first()
    if transition is None or transition.to_segment_id is None:
        return []
    triggers = Trigger.objects.filter(
        is_active=True, kind=Kind.ENTERED_SEGMENT, segment_id=transition.to_segment_id
    ).order_by("pk")
    return [
        trigger_fire(trigger=trigger, member_id=transition.member_id, cause_key=f"transition:{transition.pk}", now=now)
        for trigger in triggers
    ]


def triggers_schedule_for_order(*, order_id: int, now: dt.datetime | None = None) -> list[TriggerFiring]:
    """An order was recorded: write a pending firing per active after-order trigger the member
    qualifies for, due ``delay_days`` after payment, and fire the ones due already. Returns the
    firings: the caller queues ``trigger_fire_pending_task`` for those still pending (at their
    ``due_at``) and the delivery of the fired ones' messages."""
    now = now or timezone.now()
    triggers = list(Trigger.objects.filter(is_active=True, kind=Kind.AFTER_ORDER).order_by("pk"))
    order = Order.objects.filter(pk=order_id).only("pk", "member_id", "paid_at").first()
    if not triggers or order is None:
        return []
    segment_id = MemberRfm.objects.filter(member_id=order.member_id).values_list("segment_id", flat=True).first()
    cause_key = f"order:{order.pk}"
    firings = []
    for trigger in triggers:
        if trigger.segment_id and trigger.segment_id != segment_id:
            continue
        due_at = order.paid_at + dt.timedelta(days=trigger.delay_days or 0)
        TriggerFiring.objects.bulk_create(
            [TriggerFiring(trigger=trigger, member_id=order.member_id, cause_key=cause_key, due_at=due_at)],
            ignore_conflicts=True,
        )
        firing = TriggerFiring.objects.get(trigger=trigger, cause_key=cause_key)
        if firing.status == Status.PENDING and firing.due_at <= now:
            firing = trigger_fire(trigger=trigger, member_id=order.member_id, cause_key=cause_key, now=now)
        firings.append(firing)
    return firings


# --- the sweep ---------------------------------------------------------------------------------------


def _no_firing(trigger: Trigger, cause):
    """``NOT EXISTS`` a firing of ``trigger`` for the cause expression ``cause``."""
    return ~Exists(TriggerFiring.objects.filter(trigger_id=trigger.pk, cause_key=cause))


def _as_text(expression):
    return Cast(expression, output_field=CharField())


def inactivity_candidates(trigger: Trigger, *, now: dt.datetime, after: int = 0, limit: int = SWEEP_CHUNK):
    """``(member_id, cause_key)`` of members whose last purchase is ``inactivity_days`` old (and at
    most the catch-up period older), not fired for that lapse yet. One query, member-id order."""
    cutoff = now - dt.timedelta(days=trigger.inactivity_days)
    later = Order.objects.filter(member_id=OuterRef("member_id"), refunded_amount__lt=F("amount")).filter(
        Q(paid_at__gt=OuterRef("paid_at")) | Q(paid_at=OuterRef("paid_at"), pk__gt=OuterRef("pk"))
    )
    rows = (
        Order.objects.filter(
            paid_at__lte=cutoff,
            paid_at__gt=cutoff - catchup(),
            refunded_amount__lt=F("amount"),
            member_id__gt=after,
        )
        .filter(~Exists(later))
        .filter(_no_firing(trigger, Concat(Value("lapse:"), _as_text(OuterRef("pk")))))
        .order_by("member_id")
        .values_list("member_id", "pk")[:limit]
    )
    return [(member_id, f"lapse:{order_id}") for member_id, order_id in rows]


def pattern_candidates(trigger: Trigger, *, after: int = 0, limit: int = SWEEP_CHUNK):
    """``(member_id, cause_key)`` of members whose current scores match the trigger's bounds (and
    segment, when set), not fired for the current run yet."""
    rows = MemberRfm.objects.filter(member_id__gt=after, **trigger.pattern_conditions())
    if trigger.segment_id:
        rows = rows.filter(segment_id=trigger.segment_id)
    cause = Concat(
        Value("pattern:"),
        _as_text(OuterRef("run_id")),
        Value(":"),
        _as_text(OuterRef("member_id")),
        output_field=CharField(),
    )
    rows = rows.filter(_no_firing(trigger, cause)).order_by("member_id").values_list("member_id", "run_id")[:limit]
    return [(member_id, f"pattern:{run_id}:{member_id}") for member_id, run_id in rows]


def transition_candidates(trigger: Trigger, *, now: dt.datetime, after: int = 0, limit: int = SWEEP_CHUNK):
    """Transitions into the trigger's segment in the catch-up period (and since the trigger was
    switched on: a playbook trigger installed long ago does not fire for the week before) that have
    no firing: the events the subscriber missed."""
    since = max(now - catchup(), trigger.activated_at or trigger.created_at)
    rows = (
        SegmentTransition.objects.filter(to_segment_id=trigger.segment_id, created_at__gte=since, pk__gt=after)
        .filter(_no_firing(trigger, Concat(Value("transition:"), _as_text(OuterRef("pk")))))
        .order_by("pk")
        .values_list("pk", "member_id")[:limit]
    )
    return [(member_id, f"transition:{transition_id}", transition_id) for transition_id, member_id in rows]


def _birthday_in(year: str) -> str:
    """SQL: the member's birthday in ``year`` (an SQL integer expression); 29 February falls on
    28 February in a year that has none."""
    leap = f"(mod({year}, 4) = 0 AND (mod({year}, 100) <> 0 OR mod({year}, 400) = 0))"
    month, day = "EXTRACT(MONTH FROM m.birthday)::int", "EXTRACT(DAY FROM m.birthday)::int"
    return f"make_date({year}, {month}, CASE WHEN {month} = 2 AND {day} = 29 AND NOT {leap} THEN 28 ELSE {day} END)"


def birthday_candidates(trigger: Trigger, *, now: dt.datetime, after: int = 0, limit: int = SWEEP_CHUNK):
    """``(member_id, cause_key)`` of active members whose next birthday (today included, in the
    brand's local date) is at most ``birthday_days_before`` days away and who were not greeted for
    it yet (and are in the trigger's segment, when set). One query, member-id order."""
    if timezone.localtime(now).hour < birthday_hour():
        return []  # greetings go out in the day, not from the first sweep after midnight
    today = timezone.localdate(now)
    this_year, next_year = _birthday_in("%(year)s::int"), _birthday_in("(%(year)s::int + 1)")
    segment_join = (
        f"JOIN {MemberRfm._meta.db_table} r ON r.member_id = b.member_id AND r.segment_id = %(segment)s"
        if trigger.segment_id
        else ""
    )
    sql = f"""
        WITH b AS (
            SELECT m.id AS member_id,
                   CASE WHEN {this_year} >= %(today)s::date THEN {this_year} ELSE {next_year} END AS next_birthday
            FROM {Member._meta.db_table} m
            WHERE m.birthday IS NOT NULL AND m.is_active AND m.id > %(after)s
        )
        SELECT b.member_id, EXTRACT(YEAR FROM b.next_birthday)::int
        FROM b {segment_join}
        WHERE b.next_birthday - %(today)s::date <= %(days)s
          AND NOT EXISTS (
              SELECT 1 FROM {TriggerFiring._meta.db_table} f
              WHERE f.trigger_id = %(trigger)s
                AND f.cause_key = 'birthday:' || EXTRACT(YEAR FROM b.next_birthday)::int || ':' || b.member_id
          )
        ORDER BY b.member_id
        LIMIT %(limit)s
    """  # noqa: S608 — table names from the models, values as parameters
    params = {
        "today": today,
        "year": today.year,
        "after": after,
        "segment": trigger.segment_id,
        "days": trigger.birthday_days_before,
        "trigger": trigger.pk,
        "limit": limit,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [(member_id, f"birthday:{year}:{member_id}") for member_id, year in rows]


class DueChunk(NamedTuple):
    """A chunk of work the sweep found: pending firings to fire (``trigger_id`` None, ``causes`` their
    ids), or ``[member_id, cause_key]`` pairs to fire ``trigger_id`` for."""

    kind: str
    trigger_id: int | None
    causes: list


def triggers_due(*, now: dt.datetime | None = None, chunk_size: int = SWEEP_CHUNK) -> Iterator[DueChunk]:
    """Every cause due to fire, in chunks: the pending (after-order) firings that came due, then per
    active trigger the inactivity, pattern, birthday and missed transition causes. The caller fires each chunk
    (``triggers_sweep_task`` queues a task per chunk). Yields nothing when another sweep is running:
    the lock is held until the iteration ends. Firing is idempotent, so selecting twice is safe."""
    now = now or timezone.now()
    with session_lock(SWEEP_LOCK) as acquired:
        if not acquired:
            return
        due = list(
            TriggerFiring.objects.filter(status=Status.PENDING, due_at__lte=now, trigger__is_active=True)
            .order_by("due_at", "pk")
            .values_list("pk", flat=True)
        )
        for start in range(0, len(due), chunk_size):
            yield DueChunk(Kind.AFTER_ORDER.value, None, due[start : start + chunk_size])
        for trigger in Trigger.objects.filter(is_active=True).exclude(kind=Kind.AFTER_ORDER).order_by("pk"):
            after = 0
            while True:
                if trigger.kind == Kind.INACTIVITY:
                    batch = inactivity_candidates(trigger, now=now, after=after, limit=chunk_size)
                    after = batch[-1][0] if batch else after
                    causes = batch
                elif trigger.kind == Kind.PATTERN:
                    batch = pattern_candidates(trigger, after=after, limit=chunk_size)
                    after = batch[-1][0] if batch else after
                    causes = batch
                elif trigger.kind == Kind.BIRTHDAY:
                    batch = birthday_candidates(trigger, now=now, after=after, limit=chunk_size)
                    after = batch[-1][0] if batch else after
                    causes = batch
                else:
                    batch = transition_candidates(trigger, now=now, after=after, limit=chunk_size)
                    after = batch[-1][2] if batch else after
                    causes = [(member_id, cause) for member_id, cause, _id in batch]
                if not causes:
                    break
                yield DueChunk(str(trigger.kind), trigger.pk, [list(cause) for cause in causes])
                if len(batch) < chunk_size:
                    break


def triggers_fire_batch(*, trigger_id: int, causes, now: dt.datetime | None = None) -> list[TriggerFiring]:
    """Fire ``trigger_id`` for each ``(member_id, cause_key)``; each in its own transaction."""
    trigger = Trigger.objects.filter(pk=trigger_id).first()
    if trigger is None:
        return []
    return [
        trigger_fire(trigger=trigger, member_id=int(member_id), cause_key=str(cause_key), now=now)
        for member_id, cause_key in causes
    ]
