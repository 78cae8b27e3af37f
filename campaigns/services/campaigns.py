"""Campaigns: estimating, launching, pausing, ending, and granting to members.

The one place a campaign gives anything is ``campaign_grant_to_member``. For one member and one
*cause* (``"batch"`` for the batch run, ``"transition:<run>:<segment>"`` for a segment transition…)
it, in order:

1. returns the earlier grant if this cause was granted already (``(campaign, member, cause)`` is
   unique, so a retried task or two racing workers grant once);
2. checks the campaign is running and in its window, and that the member is targeted: in one of the
   segments (or, for a transition campaign, now in the segment entered), and within the narrowing
   (home store, tier, registration date, CLV scores, favourite product category);
3. in one transaction: takes the member's points account lock when points are given (lock order:
   points account, then the campaign row, then coupon templates), counts the member's grants and
   writes the next ``sequence`` — unique per (campaign, member) and at most ``per_member_cap``, so
   the cap holds under concurrency (a loser of the race retries and finds the cap reached);
4. control-group members (``in_control_group``: a hash of campaign and member, stable) get a grant
   row marked ``is_control`` and nothing else, and spend no budget;
5. treated members spend budget with one conditional UPDATE of the campaign row
   (``spent_count + 1 <= budget_count`` and ``spent_money + cost <= budget_money``, status running),
   which queues concurrent grants on that row; then each benefit is given with an idempotency key
   derived from the grant row (``campaign-grant:<grant>:benefit:<benefit>``), and the message last,
   so it can name the coupons. Anything failing rolls the whole grant back.

``campaign_run_batch`` selects the targeted members set-based (``MemberRfm``), walks them in id
order in chunks and grants each with cause ``"batch"``: running it twice grants nothing new. Two
batch runs of one campaign never overlap (``members.advisory_locks``, namespace
``campaigns.batch``). Which campaigns may be run at all ("run now" in the admin, the batch itself)
is ``campaign_run_check``: a running segment campaign, in its window, with segments.

Nothing here queues a task: the grants' messages are written to the outbox and their ids returned
(``GrantOutcome.message_id``, ``BatchResult.message_ids``) for the caller — a task, the admin —
to queue delivery (``campaigns.tasks``); the outbox flush delivers whatever is missed.

``transition_campaign_segment_ids`` is the set of segments running transition campaigns watch;
``watched_transition_segment_ids`` caches it for ``WATCHED_TTL`` seconds for the ``segment_changed``
subscriber (a recompute publishes one event per changed member), and every status change here
drops the cache (``forget_watched_segments``).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _g
from django.utils.translation import gettext_lazy as _

from campaigns.models import (
    Campaign,
    CampaignBenefit,
    CampaignGrant,
    in_control_group,
)
from campaigns.services.coupons import CouponUnavailable, coupon_grant
from campaigns.services.followups import followup_create
from campaigns.services.outbox import message_enqueue
from members.advisory_locks import namespace_key, session_lock
from members.caching import ProcessCache
from members.lock_objects import points_account_lock
from members.models import Member, MemberPointsMultiplier, MemberTag, PointsEntry, split_labels
from members.services.points import points_grant_locked
from segmentation.models import SegmentTransition

__all__ = [
    "BATCH_CAUSE",
    "BatchResult",
    "CampaignEstimate",
    "GrantOutcome",
    "GrantStatus",
    "campaign_end",
    "campaign_estimate",
    "campaign_estimate_draft",
    "campaign_grant_to_member",
    "campaign_grants_for_transition",
    "campaign_launch",
    "campaign_pause",
    "campaign_run_batch",
    "campaign_run_check",
    "campaigns_advance",
    "forget_watched_segments",
    "transition_campaign_segment_ids",
    "transition_cause",
    "watched_transition_segment_ids",
]

Status = Campaign.Status
Kind = CampaignBenefit.Kind
BATCH_CAUSE = "batch"
BATCH_CHUNK = 500
TRANSITION_ESTIMATE_DAYS = 30
GRANT_ATTEMPTS = 5
BATCH_LOCK = namespace_key("campaigns.batch")  # key: the campaign id
WATCHED_TTL = 30.0


class GrantStatus:
    GRANTED = "granted"
    CONTROL = "control"
    ALREADY_GRANTED = "already_granted"
    NOT_RUNNING = "not_running"
    NOT_TARGETED = "not_targeted"
    CAP_REACHED = "cap_reached"
    BUDGET_EXHAUSTED = "budget_exhausted"
    BENEFIT_UNAVAILABLE = "benefit_unavailable"

    STOPS_A_BATCH = frozenset({NOT_RUNNING, BUDGET_EXHAUSTED, BENEFIT_UNAVAILABLE})


class GrantOutcome(NamedTuple):
    status: str
    grant: CampaignGrant | None = None

    @property
    def message_id(self) -> int | None:
        """The outbox message the grant wrote (the caller queues its delivery), if any."""
        if self.grant is None or self.grant.is_control:
            return None
        return (self.grant.details or {}).get("message")


class CampaignEstimate(NamedTuple):
    reach: int  # members targeted now (for a transition campaign: entries in the last 30 days)
    control: int  # of them, held out (expected)
    treated: int  # of them, granted — within the count budget left
    unit_cost: Decimal  # per treated member
    cost: Decimal  # treated × unit cost, within the money budget left
    limited_by_budget: bool


def transition_cause(*, run_id: int | None, to_segment_id: int) -> str:
    """The cause of a grant for a member entering ``to_segment_id``: once per (run, segment)."""
    return f"transition:{run_id or 0}:{to_segment_id}"


# --- the campaign as the services need it --------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    campaign: Campaign
    segment_ids: tuple[int, ...]
    store_ids: tuple[int, ...]
    tier_ids: tuple[int, ...]
    benefits: tuple[CampaignBenefit, ...]

    @property
    def unit_cost(self) -> Decimal:
        return sum((benefit.cost for benefit in self.benefits), Decimal("0.00"))

    @property
    def gives_points(self) -> bool:
        return any(benefit.kind == Kind.POINTS for benefit in self.benefits)


def _load_plan(campaign_id: int) -> _Plan:
    campaign = Campaign.objects.get(pk=campaign_id)
    benefits = sorted(
        campaign.benefits.select_related("coupon_template", "top_up_offer"),
        # The message last: it names what was given. Coupon templates (each grant locks its template
        # row until commit) in template-id order, the lock order every grant path follows.
        key=lambda b: (b.kind == Kind.MESSAGE, b.coupon_template_id or 0, b.pk),
    )
    return _Plan(
        campaign=campaign,
        segment_ids=tuple(campaign.segments.values_list("pk", flat=True)),
        store_ids=tuple(campaign.stores.values_list("pk", flat=True)),
        tier_ids=tuple(campaign.tiers.values_list("pk", flat=True)),
        benefits=tuple(benefits),
    )


def _narrowing(plan: _Plan, prefix: str = "") -> Q:
    campaign, q = plan.campaign, Q()
    if plan.store_ids:
        q &= Q(**{f"{prefix}home_store_id__in": plan.store_ids})
    if plan.tier_ids:
        q &= Q(**{f"{prefix}tier_id__in": plan.tier_ids})
    if campaign.registered_after:
        q &= Q(**{f"{prefix}registered_at__gte": _local_midnight(campaign.registered_after)})
    if campaign.registered_before:
        q &= Q(**{f"{prefix}registered_at__lt": _local_midnight(campaign.registered_before)})
    if campaign.p_alive_below is not None:
        q &= Q(**{f"{prefix}clv__p_alive__lt": float(campaign.p_alive_below)})
    if campaign.p_alive_at_least is not None:
        q &= Q(**{f"{prefix}clv__p_alive__gte": float(campaign.p_alive_at_least)})
    if campaign.clv_at_least is not None:
        q &= Q(**{f"{prefix}clv__clv__gte": campaign.clv_at_least})
    categories = split_labels(campaign.favourite_categories)
    if categories:
        # (member, rank) is unique: the join adds no rows.
        q &= Q(**{f"{prefix}favourite_categories__rank": 1, f"{prefix}favourite_categories__category__in": categories})
    tags = split_labels(campaign.member_tags)
    if tags:
        # A subquery, not a join: a member with two of the tags is still one member.
        q &= Q(**{f"{prefix}pk__in": MemberTag.objects.filter(name__in=tags).values("member_id")})
    return q


def _target_queryset(plan: _Plan) -> QuerySet[Member]:
    """The members the campaign targets now (by their current segment), narrowed."""
    campaign = plan.campaign
    if campaign.target_kind == Campaign.TargetKind.TRANSITION:
        segment_filter = Q(rfm__segment_id=campaign.target_transition_to_id)
    else:
        segment_filter = Q(rfm__segment_id__in=plan.segment_ids)
    return Member.objects.filter(segment_filter & _narrowing(plan))


def _local_midnight(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def _live_filter(now: dt.datetime) -> Q:
    return (
        Q(status=Status.RUNNING)
        & (Q(starts_at__isnull=True) | Q(starts_at__lte=now))
        & (Q(ends_at__isnull=True) | Q(ends_at__gt=now))
    )


def _is_live(campaign: Campaign, now: dt.datetime) -> bool:
    return (
        campaign.status == Status.RUNNING
        and (campaign.starts_at is None or campaign.starts_at <= now)
        and (campaign.ends_at is None or campaign.ends_at > now)
    )


# --- estimate ------------------------------------------------------------------------------------------


def campaign_estimate(*, campaign: Campaign) -> CampaignEstimate:
    """Reach, control group, and cost — within the budget left — before (or while) it runs. Two COUNTs."""
    return _estimate(_load_plan(campaign.pk))


def campaign_estimate_draft(
    *,
    campaign: Campaign,
    segment_ids: Iterable[int] = (),
    store_ids: Iterable[int] = (),
    tier_ids: Iterable[int] = (),
    benefits: Iterable[CampaignBenefit] = (),
) -> CampaignEstimate:
    """``campaign_estimate`` of choices not saved yet: the builder's estimate as the operator edits.

    ``campaign`` is an unsaved (or edited, not saved) instance carrying the target kind, the segment
    entered, the registration dates, the control share, the budgets and the spend so far;
    ``segment_ids``, ``store_ids`` and ``tier_ids`` are the many-to-many choices; ``benefits`` are
    unsaved ``CampaignBenefit`` instances (coupon templates attached), priced as a saved campaign's
    are. One COUNT, whatever the data size.
    """
    return _estimate(
        _Plan(
            campaign=campaign,
            segment_ids=tuple(segment_ids),
            store_ids=tuple(store_ids),
            tier_ids=tuple(tier_ids),
            benefits=tuple(benefits),
        )
    )


def _estimate(plan: _Plan) -> CampaignEstimate:
    campaign = plan.campaign
    if campaign.target_kind == Campaign.TargetKind.TRANSITION:
        if campaign.target_transition_to_id is None:
            reach = 0
        else:
            since = timezone.now() - dt.timedelta(days=TRANSITION_ESTIMATE_DAYS)
            reach = SegmentTransition.objects.filter(
                Q(to_segment_id=campaign.target_transition_to_id, created_at__gte=since) & _narrowing(plan, "member__")
            ).count()
    elif plan.segment_ids:
        reach = _target_queryset(plan).count()
    else:
        reach = 0
    control = round(reach * campaign.control_percent / 100)
    treated = reach - control
    limited = False
    if campaign.budget_count is not None and treated > campaign.budget_count - campaign.spent_count:
        treated, limited = max(campaign.budget_count - campaign.spent_count, 0), True
    unit_cost = plan.unit_cost
    money_left = None if campaign.budget_money is None else max(campaign.budget_money - campaign.spent_money, 0)
    if money_left is not None and unit_cost * treated > money_left:
        treated, limited = int(money_left // unit_cost), True
    cost = unit_cost * treated
    return CampaignEstimate(
        reach=reach, control=control, treated=treated, unit_cost=unit_cost, cost=cost, limited_by_budget=limited
    )


# --- status ----------------------------------------------------------------------------------------------


def _refused(message, code: str) -> ValidationError:
    return ValidationError({"status": ValidationError(message, code=code)})


def _transition(campaign: Campaign, *, allowed: tuple[str, ...], to: str, **extra) -> Campaign:
    changed = Campaign.objects.filter(pk=campaign.pk, status__in=allowed).update(
        status=to, updated_at=timezone.now(), **extra
    )
    campaign.refresh_from_db()
    forget_watched_segments()
    if not changed:
        raise _refused(
            _("A %(status)s campaign cannot become %(to)s.")
            % {"status": campaign.get_status_display(), "to": Status(to).label},
            "invalid_transition",
        )
    return campaign


def campaign_launch(*, campaign: Campaign) -> Campaign:
    """Draft, scheduled or paused → running (or scheduled, when it starts later)."""
    now = timezone.now()
    plan = _load_plan(campaign.pk)
    fresh = plan.campaign
    errors = {}
    if fresh.target_kind == Campaign.TargetKind.SEGMENT and not plan.segment_ids:
        errors["segments"] = _("Choose at least one segment.")
    if fresh.target_kind == Campaign.TargetKind.TRANSITION and fresh.target_transition_to_id is None:
        errors["target_transition_to"] = _("Choose the segment members enter.")
    if not plan.benefits:
        errors["benefits"] = _("Add at least one benefit.")
    if fresh.ends_at is not None and fresh.ends_at <= now:
        errors["ends_at"] = _("The campaign's end is already past.")
    if errors:
        raise ValidationError(errors)
    to = Status.SCHEDULED if fresh.starts_at is not None and fresh.starts_at > now else Status.RUNNING
    return _transition(
        campaign,
        allowed=(Status.DRAFT, Status.SCHEDULED, Status.PAUSED),
        to=to,
        launched_at=Coalesce(F("launched_at"), now),
    )


def campaign_pause(*, campaign: Campaign) -> Campaign:
    """Running or scheduled → paused: grants stop until it is launched again."""
    return _transition(campaign, allowed=(Status.RUNNING, Status.SCHEDULED), to=Status.PAUSED)


def campaign_end(*, campaign: Campaign) -> Campaign:
    """Any status but ended → ended, for good."""
    return _transition(
        campaign,
        allowed=(Status.DRAFT, Status.SCHEDULED, Status.RUNNING, Status.PAUSED),
        to=Status.ENDED,
        ended_at=timezone.now(),
    )


def campaigns_advance(*, now: dt.datetime) -> tuple[int, int]:
    """Start the scheduled campaigns whose time came, end those whose window closed. Set-based."""
    ended = Campaign.objects.filter(
        status__in=(Status.SCHEDULED, Status.RUNNING, Status.PAUSED), ends_at__lte=now
    ).update(status=Status.ENDED, ended_at=now, updated_at=now)
    started = Campaign.objects.filter(status=Status.SCHEDULED, starts_at__lte=now).update(
        status=Status.RUNNING, updated_at=now
    )
    if started or ended:
        forget_watched_segments()
    return started, ended


# --- granting ----------------------------------------------------------------------------------------------


class _Stop(Exception):
    """Roll the grant back and answer ``status``."""

    def __init__(self, status: str):
        super().__init__(status)
        self.status = status


def campaign_grant_to_member(*, campaign: Campaign, member: Member, cause: str) -> GrantOutcome:
    """Give ``campaign``'s benefits to ``member`` for ``cause``, once; see the module docstring."""
    return _grant(_load_plan(campaign.pk), member_id=member.pk, cause=cause)


def _grant(plan: _Plan, *, member_id: int, cause: str, selected: Member | None = None) -> GrantOutcome:
    """Grant to one member. ``selected``: the member, already selected as targeted and not yet
    granted for ``cause`` by the batch's query (so those two reads are skipped)."""
    cause = (cause or "").strip()
    if not cause or len(cause) > CampaignGrant._meta.get_field("cause").max_length:
        raise ValidationError({"cause": _("A cause of at most 100 characters is required.")})
    campaign = plan.campaign
    member = selected
    if member is None:
        existing = CampaignGrant.objects.filter(campaign_id=campaign.pk, member_id=member_id, cause=cause).first()
        if existing is not None:
            return GrantOutcome(GrantStatus.ALREADY_GRANTED, existing)
        if not _is_live(campaign, timezone.now()):
            return GrantOutcome(GrantStatus.NOT_RUNNING)
        member = _target_queryset(plan).filter(pk=member_id).select_related("home_store").first()
        if member is None:
            return GrantOutcome(GrantStatus.NOT_TARGETED)
    is_control = in_control_group(campaign_id=campaign.pk, member_id=member_id, percent=campaign.control_percent)
    for _attempt in range(GRANT_ATTEMPTS):
        try:
            with transaction.atomic():
                return _grant_in_transaction(plan, member=member, cause=cause, is_control=is_control)
        except _Stop as stop:
            return GrantOutcome(stop.status)
        except IntegrityError:
            existing = CampaignGrant.objects.filter(campaign_id=campaign.pk, member_id=member_id, cause=cause).first()
            if existing is not None:
                return GrantOutcome(GrantStatus.ALREADY_GRANTED, existing)
            # A concurrent grant to this member took the same sequence number: count again.
    return GrantOutcome(GrantStatus.CAP_REACHED)


def _grant_in_transaction(plan: _Plan, *, member: Member, cause: str, is_control: bool) -> GrantOutcome:
    campaign, now = plan.campaign, timezone.now()
    account = points_account_lock(member_id=member.pk) if plan.gives_points and not is_control else None
    used = CampaignGrant.objects.filter(campaign_id=campaign.pk, member_id=member.pk).count()
    if used >= campaign.per_member_cap:
        raise _Stop(GrantStatus.CAP_REACHED)
    cost = Decimal("0.00") if is_control else plan.unit_cost
    grant = CampaignGrant.objects.create(
        campaign=campaign,
        member=member,
        cause=cause,
        sequence=used + 1,
        is_control=is_control,
        granted_at=now,
        cost=cost,
    )
    if is_control:
        if not Campaign.objects.filter(_live_filter(now), pk=campaign.pk).exists():
            raise _Stop(GrantStatus.NOT_RUNNING)
        return GrantOutcome(GrantStatus.CONTROL, grant)
    spent = (
        Campaign.objects.filter(_live_filter(now), pk=campaign.pk)
        .filter(Q(budget_count__isnull=True) | Q(spent_count__lt=F("budget_count")))
        .filter(Q(budget_money__isnull=True) | Q(spent_money__lte=F("budget_money") - cost))
        .update(spent_count=F("spent_count") + 1, spent_money=F("spent_money") + cost, updated_at=now)
    )
    if not spent:
        fresh = Campaign.objects.get(pk=campaign.pk)
        raise _Stop(GrantStatus.BUDGET_EXHAUSTED if _is_live(fresh, now) else GrantStatus.NOT_RUNNING)
    grant.details = _give_benefits(plan, member=member, grant=grant, account=account, now=now)
    grant.save(update_fields=["details", "updated_at"])
    return GrantOutcome(GrantStatus.GRANTED, grant)


def _give_benefits(plan: _Plan, *, member: Member, grant: CampaignGrant, account, now: dt.datetime) -> dict:
    campaign = plan.campaign
    given: dict[str, list] = {"coupons": [], "points": [], "multipliers": [], "offers": [], "follow_ups": []}
    coupon_codes: list[str] = []
    for benefit in plan.benefits:
        key = f"campaign-grant:{grant.pk}:benefit:{benefit.pk}"
        if benefit.kind in (Kind.COUPON, Kind.FREE_SHIPPING):
            try:
                coupon = coupon_grant(
                    template=benefit.coupon_template,
                    member=member,
                    source=f"campaign:{campaign.slug}"[:100],
                    idempotency_key=key,
                    campaign=campaign,
                )
            except CouponUnavailable:
                raise _Stop(GrantStatus.BENEFIT_UNAVAILABLE) from None
            given["coupons"].append(coupon.pk)
            coupon_codes.append(coupon.code)
        elif benefit.kind == Kind.POINTS:
            entry = points_grant_locked(
                account=account,
                points=benefit.points,
                kind=PointsEntry.Kind.CAMPAIGN_REWARD,
                reason=_g("Campaign %(name)s") % {"name": campaign.name},
                idempotency_key=key,
                reference=f"campaign:{campaign.pk}",
            )
            given["points"].append(entry.pk)
        elif benefit.kind == Kind.POINTS_MULTIPLIER:
            multiplier = MemberPointsMultiplier.objects.create(
                member=member,
                multiplier=benefit.multiplier,
                starts_at=now,
                ends_at=now + dt.timedelta(days=benefit.multiplier_days),
                source=f"campaign:{campaign.slug}"[:100],
                idempotency_key=key,
            )
            given["multipliers"].append(multiplier.pk)
        elif benefit.kind == Kind.TOP_UP_OFFER:
            given["offers"].append(benefit.top_up_offer_id)
        elif benefit.kind == Kind.FOLLOW_UP:
            task = followup_create(
                member=member,
                reason=benefit.follow_up_reason or campaign.name,
                due_date=timezone.localdate(now) + dt.timedelta(days=benefit.follow_up_due_days),
                dedupe_key=key,
                store=member.home_store,
                campaign=campaign,
            )
            given["follow_ups"].append(task.pk)
        elif benefit.kind == Kind.MESSAGE:
            message = message_enqueue(
                member=member,
                template=benefit.message_template,
                payload={
                    "campaign_id": campaign.pk,
                    "campaign": campaign.name,
                    "coupon_codes": coupon_codes,
                    "points": sum(b.points or 0 for b in plan.benefits if b.kind == Kind.POINTS),
                    "offer_ids": given["offers"],
                    **({"link": benefit.message_link} if benefit.message_link else {}),
                },
                dedupe_key=key,
                channel=benefit.message_channel or None,
            )
            given["message"] = message.pk
    return {name: value for name, value in given.items() if value}


# --- many members ----------------------------------------------------------------------------------------


def _runnable(plan: _Plan, now: dt.datetime) -> bool:
    campaign = plan.campaign
    return campaign.target_kind == Campaign.TargetKind.SEGMENT and bool(plan.segment_ids) and _is_live(campaign, now)


def campaign_run_check(*, campaign: Campaign) -> None:
    """Raise ``ValidationError`` unless ``campaign`` can be run now (granted to its targeted
    members in a batch): a running segment campaign, in its window, with at least one segment.
    A transition campaign grants as members enter its segment and is never run."""
    if not _runnable(_load_plan(campaign.pk), timezone.now()):
        raise _refused(_("Only running segment campaigns can be run."), "not_runnable")


class BatchResult(NamedTuple):
    counts: dict[str, int]  # grant outcome → how many
    more: bool  # stopped at ``limit`` with members left: run again to go on
    message_ids: tuple[int, ...] = ()  # outbox messages the grants wrote: the caller queues delivery


def campaign_run_batch(*, campaign_id: int, chunk_size: int = BATCH_CHUNK, limit: int | None = None) -> BatchResult:
    """Grant a segment campaign to every targeted member who has no batch grant yet.

    The members are selected in SQL (current segment, narrowing, no batch grant), in id order, a
    chunk at a time; each is granted in its own transaction. Stops early when the campaign stops
    running, its budget runs out or a coupon runs out — or after ``limit`` members, with
    ``more=True``, so a task can hand the rest to its next run. Running it again grants nothing twice.
    """
    counts: Counter[str] = Counter()
    messages: list[int] = []
    plan = _load_plan(campaign_id)
    if not _runnable(plan, timezone.now()):
        return BatchResult({}, more=False)
    with session_lock(BATCH_LOCK, campaign_id) as acquired:
        if not acquired:
            return BatchResult({}, more=False)
        already = CampaignGrant.objects.filter(campaign_id=campaign_id, member_id=OuterRef("pk"), cause=BATCH_CAUSE)
        after, seen = 0, 0
        while True:
            if not Campaign.objects.filter(_live_filter(timezone.now()), pk=campaign_id).exists():
                break
            size = chunk_size if limit is None else min(chunk_size, limit - seen)
            if size <= 0:
                return BatchResult(dict(counts), more=True, message_ids=tuple(messages))
            members = list(
                _target_queryset(plan)
                .filter(pk__gt=after)
                .exclude(Exists(already))
                .select_related("home_store")
                .order_by("pk")[:size]
            )
            if not members:
                break
            for member in members:
                outcome = _grant(plan, member_id=member.pk, cause=BATCH_CAUSE, selected=member)
                counts[outcome.status] += 1
                if outcome.message_id is not None:
                    messages.append(outcome.message_id)
                if outcome.status in GrantStatus.STOPS_A_BATCH:
                    return BatchResult(dict(counts), more=False, message_ids=tuple(messages))
            seen += len(members)
            after = members[-1].pk
    return BatchResult(dict(counts), more=False, message_ids=tuple(messages))


def campaign_grants_for_transition(*, member_id: int, to_segment_id: int, run_id: int | None) -> list[GrantOutcome]:
    """A member entered ``to_segment_id``: grant every running campaign that targets that transition.

    Once per (run, segment) and campaign, however often it is called.
    """
    now = timezone.now()
    campaign_ids = list(
        Campaign.objects.filter(
            _live_filter(now), target_kind=Campaign.TargetKind.TRANSITION, target_transition_to_id=to_segment_id
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    cause = transition_cause(run_id=run_id, to_segment_id=to_segment_id)
    return [_grant(_load_plan(campaign_id), member_id=member_id, cause=cause) for campaign_id in campaign_ids]


def transition_campaign_segment_ids(*, now: dt.datetime | None = None) -> set[int]:
    """The segments that running transition campaigns watch (for cheap event filtering)."""
    return set(
        Campaign.objects.filter(_live_filter(now or timezone.now()), target_kind=Campaign.TargetKind.TRANSITION)
        .values_list("target_transition_to_id", flat=True)
        .distinct()
    )


_watched = ProcessCache(lambda: frozenset(transition_campaign_segment_ids()), ttl=WATCHED_TTL)


def watched_transition_segment_ids() -> frozenset:
    """``transition_campaign_segment_ids``, cached for ``WATCHED_TTL`` seconds in this process."""
    return _watched.get()


def forget_watched_segments() -> None:
    """Drop the cached set of watched segments (a campaign's status changed; in tests)."""
    _watched.clear()
