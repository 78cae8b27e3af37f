"""Tiers (会员等级): who qualifies for what, upgrades on orders, scheduled downgrades, staff changes.

Rules of the game (the models in ``members.models.tiers`` hold the data):

- A member qualifies for a tier when any of its rules holds; a rule holds when all of its
  conditions hold, as of a moment ``as_of``: net spend (``amount - refunded_amount``) and/or the
  number of paid orders (fully refunded ones do not count) with ``paid_at`` in
  ``(as_of - window_days, as_of]``, and/or an RFM score. Only active tiers count. The entry level
  (the active tier of rank 0) needs no rules: every member qualifies for it, and it is where a
  member who qualifies for nothing else lands (no tier at all when there is no entry level).
- **Upgrade on order** (``tier_evaluate_for_order``): as soon as an order makes a member qualify
  for a higher tier they move straight to the highest one they qualify for. It never downgrades.
  Idempotent: one order changes a tier at most once (a ``UniqueConstraint`` backs it).
- **Upgrade on score** (``tiers_upgrade_on_score``): when a live refresh or a recompute changes RFM
  scores, members whom a rule with an RFM condition now qualifies for a higher tier move up at
  once, without waiting for their next order. It never downgrades either.
- **Retention**: ``MemberTierStatus.last_qualified_at`` is the last moment the member was seen
  qualifying for their current tier (or a better one). Giving a tier sets it; every qualifying
  order and every scheduled run while the member still qualifies refreshes it.
- **Scheduled downgrade** (``tier_downgrade_due``): a member who no longer qualifies for their
  tier and whose ``last_qualified_at`` is at least ``retention_days`` old moves to the highest tier
  they still qualify for. Set-based: one SQL statement finds everyone due (one aggregate per rule
  inside it); the members who change are moved in batches, a few queries per batch. Safe to run
  twice, and alongside orders (each batch re-checks its members under their row locks). The
  retention clock is as precise as the schedule, so run it daily: after missed runs it counts
  from the last run that saw the member qualify. Refunds need no event: the next run sees them.
- **Manual changes** (``tier_set_manually``) need the ``members.set_member_tier`` permission. A
  manually given tier is kept for its retention period like any other, then follows the rules.
- **RFM scores** are ``MemberRfmScore`` rows: R + F + M of the member's current RFM run, which the
  segmentation app keeps (every run and live refresh) while ``rfm_scores_wanted()`` — an active
  tier above the entry level has a rule with an RFM condition. A member without a score
  never meets an RFM condition.

Every change is one ``TierChange`` row (reason, detail, actor, order). Evaluate a tier *before*
points are earned on ``order_recorded`` so that the qualifying order earns at the new multiplier.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from members import rows
from members.caching import ProcessCache
from members.lock_objects import MEMBER_LOCK, member_lock, members_lock
from members.models import Member, MemberRfmScore, MemberTierStatus, Order, Tier, TierChange, TierRule

SET_TIER_PERMISSION = "members.set_member_tier"
DOWNGRADE_BATCH = 500  # members moved per transaction by the scheduled downgrade
ASSIGN_BATCH = 2000  # members given their first tier per transaction by ``tiers_assign_missing``

_SCORE_TABLE = MemberRfmScore._meta.db_table

# --- The ladder: active tiers and their rules -------------------------------------------------


@dataclass(frozen=True)
class _Ladder:
    by_id: dict[int, Tier]  # every tier, active or not
    tiers: dict[int, Tier]  # active tiers by rank
    floor: Tier | None  # the entry level: the active tier of rank 0
    rules: list[TierRule]  # the rules of the active tiers above the entry level


def _load_ladder() -> _Ladder:
    by_id = {tier.pk: tier for tier in Tier.objects.prefetch_related("rules")}
    tiers = {tier.rank: tier for tier in by_id.values() if tier.is_active}
    rules = [rule for rank, tier in sorted(tiers.items()) if rank > 0 for rule in tier.rules.all()]
    return _Ladder(by_id=by_id, tiers=tiers, floor=tiers.get(0), rules=rules)


# Read on every order: cached per process (see ``members.caching``); saving a tier or rule clears it.
_cached_ladder = ProcessCache(_load_ladder, watch=(Tier, TierRule))


def rfm_scores_wanted() -> bool:
    """Whether tier rules read RFM scores now — an active tier above the entry level has a rule
    with an RFM condition: segmentation keeps ``MemberRfmScore`` only then, and empties it
    otherwise. Read from the cached ladder (no query in a warm process)."""
    return any(rule.min_rfm_score is not None for rule in _cached_ladder.get().rules)


@dataclass(frozen=True)
class _Qualification:
    """The tier a member qualifies for, and the rule and figures that made it hold."""

    tier: Tier
    rule: TierRule
    spend: Decimal | None = None
    orders: int | None = None
    rfm_score: int | None = None

    @property
    def detail(self) -> str:
        """What made the rule hold, in words (translated; built only when a change is recorded)."""
        return _describe(self.rule, spend=self.spend, orders=self.orders, rfm_score=self.rfm_score)


def _qualifying_sql(*, ladder: _Ladder, as_of: datetime, member_filter: tuple[str, list]) -> tuple[str, list]:
    """SQL with columns (member_id, tier_rank, rule_id, spend, orders, rfm_score): one row per member
    and rule that holds as of ``as_of``, for the members ``member_filter`` selects (a condition on
    ``m``, the member table, with its parameters).

    Each rule with a spend or order condition is one aggregate over the orders in its window; an
    RFM condition is a condition on the member's score (``MemberRfmScore``).
    """
    order_table = connection.ops.quote_name(Order._meta.db_table)
    member_table = (
        f"{connection.ops.quote_name(Member._meta.db_table)} m LEFT JOIN {_SCORE_TABLE} sc ON sc.member_id = m.id"
    )
    filter_sql, filter_params = member_filter
    parts: list[str] = []
    params: list = []
    for rule in ladder.rules:
        rfm_sql, rfm_params = "", []
        if rule.min_rfm_score is not None:
            rfm_sql, rfm_params = " AND sc.score >= %s", [rule.min_rfm_score]
        if rule.min_spend is None and rule.min_orders is None:
            parts.append(
                f"SELECT m.id, %s, %s, NULL::numeric, NULL::bigint, sc.score FROM {member_table} "  # noqa: S608
                f"WHERE {filter_sql}{rfm_sql}"
            )
            params += [rule.tier.rank, rule.pk, *filter_params, *rfm_params]
            continue
        having, having_params = [], []
        if rule.min_spend is not None:
            having.append("SUM(o.amount - o.refunded_amount) >= %s")
            having_params.append(rule.min_spend)
        if rule.min_orders is not None:
            having.append("COUNT(*) >= %s")
            having_params.append(rule.min_orders)
        parts.append(
            "SELECT o.member_id, %s, %s, SUM(o.amount - o.refunded_amount), COUNT(*), sc.score "  # noqa: S608
            f"FROM {order_table} o JOIN {member_table} ON m.id = o.member_id "
            f"WHERE o.paid_at > %s AND o.paid_at <= %s AND o.status <> %s AND {filter_sql}{rfm_sql} "
            f"GROUP BY o.member_id, sc.score HAVING {' AND '.join(having)}"
        )
        params += [
            rule.tier.rank,
            rule.pk,
            as_of - timedelta(days=rule.window_days),
            as_of,
            Order.Status.REFUNDED,
            *filter_params,
            *rfm_params,
            *having_params,
        ]
    if not parts:
        return "SELECT NULL::bigint, NULL::int, NULL::bigint, NULL::numeric, NULL::bigint, NULL::int WHERE FALSE", []
    return " UNION ALL ".join(f"({part})" for part in parts), params


def _best_sql(qualifying: str) -> str:
    """The highest tier each member qualifies for (by rank, then the rule with the lowest id)."""
    return (
        "SELECT DISTINCT ON (member_id) member_id, tier_rank, rule_id, spend, orders, rfm_score "  # noqa: S608
        f"FROM ({qualifying}) AS q(member_id, tier_rank, rule_id, spend, orders, rfm_score) "
        "ORDER BY member_id, tier_rank DESC, rule_id"
    )


def _qualification(ladder: _Ladder, rank, rule_id, spend, orders, rfm_score) -> _Qualification | None:
    if rank is None:
        return None
    tier = ladder.tiers[rank]
    rule = next(rule for rule in tier.rules.all() if rule.pk == rule_id)
    return _Qualification(tier, rule, spend, orders, rfm_score)


def _qualifications_for(*, member_ids: list[int], as_of: datetime, ladder: _Ladder) -> dict[int, _Qualification]:
    """For each of ``member_ids`` that qualifies for a tier above the entry level as of ``as_of``,
    the highest such tier and what made it hold. One query."""
    if not ladder.rules or not member_ids:
        return {}
    sql, params = _qualifying_sql(ladder=ladder, as_of=as_of, member_filter=("m.id = ANY(%s::bigint[])", [member_ids]))
    with connection.cursor() as cursor:
        cursor.execute(_best_sql(sql), params)
        return {member_id: _qualification(ladder, *row) for member_id, *row in cursor.fetchall()}


class _Locked(NamedTuple):
    """What ``_lock_and_qualify`` read: the locked member row's tier and referrer, and the highest
    tier the member qualifies for."""

    tier_id: int | None
    referrer_id: int | None
    qualification: _Qualification | None


def _lock_and_qualify(*, member_id: int, as_of: datetime, ladder: _Ladder) -> _Locked:
    """The order path's one statement: lock the member row (the order's insert holds the lock
    already, so it never waits), read its ``tier_id`` and ``referrer_id``, and find the highest
    tier the member qualifies for with the very statement the scheduled runs use for many members
    (``_qualifying_sql``) — one implementation of the rules. A prepared statement: planned once
    per connection and ladder."""
    members = connection.ops.quote_name(Member._meta.db_table)
    if ladder.rules:
        qualifying, params = _qualifying_sql(ladder=ladder, as_of=as_of, member_filter=("m.id = %s", [member_id]))
        best = f"LEFT JOIN LATERAL ({_best_sql(qualifying)}) b ON TRUE"
    else:
        best = "LEFT JOIN LATERAL (SELECT NULL::int, NULL::bigint, NULL::numeric, NULL::bigint, NULL::int) AS b"
        best += "(tier_rank, rule_id, spend, orders, rfm_score) ON TRUE"
        params = []
    found = rows.fetch_prepared(
        "SELECT mm.tier_id, mm.referrer_id, b.tier_rank, b.rule_id, b.spend, b.orders, b.rfm_score "  # noqa: S608
        f"FROM {members} mm {best} WHERE mm.id = %s{MEMBER_LOCK} OF mm",
        [*params, member_id],
    )
    if not found:
        raise Member.DoesNotExist(f"member {member_id}")
    tier_id, referrer_id, *best_row = found[0]
    return _Locked(tier_id, referrer_id, _qualification(ladder, *best_row))


def _describe(rule: TierRule, *, spend: Decimal | None, orders: int | None, rfm_score: int | None) -> str:
    """What made the rule hold, e.g. "spent ¥1,024.00 in 365 days"."""
    facts = []
    if rule.min_spend is not None:
        facts.append(
            gettext("spent ¥%(amount)s in %(days)s days") % {"amount": f"{spend:,.2f}", "days": rule.window_days}
        )
    if rule.min_orders is not None:
        facts.append(gettext("%(count)s orders in %(days)s days") % {"count": orders, "days": rule.window_days})
    if rule.min_rfm_score is not None:
        facts.append(gettext("RFM score %(score)s") % {"score": rfm_score})
    return gettext("%(tier)s: %(facts)s") % {"tier": rule.tier.name, "facts": ", ".join(facts)}


# --- Writing a change ------------------------------------------------------------------------


def _confirm(*, member: Member, as_of: datetime, restart: bool = False) -> None:
    """Record that ``member`` qualifies for their current tier as of ``as_of`` (under the member lock).

    One statement: create the status row, or move it to the member's tier and to ``as_of`` unless
    it already says as much — or, with ``restart`` (a tier change), whatever it said.
    """
    table = connection.ops.quote_name(MemberTierStatus._meta.db_table)
    now = timezone.now()
    adapt = connection.ops.adapt_datetimefield_value
    unless = (
        ""
        if restart
        else f" WHERE {table}.tier_id <> excluded.tier_id OR {table}.last_qualified_at < excluded.last_qualified_at"
    )
    rows.fetch_prepared(
        f"INSERT INTO {table} (member_id, tier_id, last_qualified_at, created_at, updated_at) "  # noqa: S608
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (member_id) DO UPDATE SET tier_id = excluded.tier_id, "
        f"last_qualified_at = excluded.last_qualified_at, updated_at = excluded.updated_at{unless}",
        [member.pk, member.tier_id, adapt(as_of), adapt(now), adapt(now)],
    )


def _change_tier(
    *,
    member: Member,
    to_tier: Tier | None,
    reason: str,
    detail: str,
    as_of: datetime,
    actor=None,
    order_id: int | None = None,
) -> TierChange:
    """Move a locked ``member`` to ``to_tier``, restart the retention clock and keep the history.
    Three short statements (the row helpers send no signals; nothing listens to these models)."""
    change = TierChange(
        member=member,
        from_tier_id=member.tier_id,
        to_tier=to_tier,
        reason=reason,
        detail=detail,
        actor=actor,
        order_id=order_id,
    )
    rows.insert(change)
    member.tier = to_tier
    rows.update(member, "tier")
    if to_tier is None:
        MemberTierStatus.objects.filter(member=member).delete()
    else:
        _confirm(member=member, as_of=as_of, restart=True)
    return change


# --- Services ---------------------------------------------------------------------------------


def tier_assign_initial(*, member_id: int) -> TierChange | None:
    """Give a member without a tier the entry level (``member_register`` calls it)."""
    ladder = _load_ladder()
    if ladder.floor is None:
        return None
    with transaction.atomic():
        member = member_lock(member_id=member_id)
        if member.tier_id is not None:
            return None
        return _change_tier(
            member=member,
            to_tier=ladder.floor,
            reason=TierChange.Reason.INITIAL,
            detail=gettext("entry level"),
            as_of=timezone.now(),
        )


def tiers_assign_missing(*, as_of: datetime) -> int:
    """Give every member without a tier the highest tier they qualify for as of ``as_of`` — the
    entry level when they qualify for nothing higher. For members written in bulk (imports, demo
    history), which skip ``member_registered``. Returns how many members got a tier.

    Set-based: ``ASSIGN_BATCH`` members per transaction, locked, one qualification query for the
    batch and three bulk writes (changes, members, retention statuses). Running it again finds no
    one: a member who has a tier is never touched.
    """
    ladder = _load_ladder()
    if ladder.floor is None and not ladder.rules:
        return 0
    assigned, after = 0, 0
    while True:
        member_ids = list(
            Member.objects.filter(tier__isnull=True, pk__gt=after)
            .order_by("pk")
            .values_list("pk", flat=True)[:ASSIGN_BATCH]
        )
        if not member_ids:
            return assigned
        with transaction.atomic():
            members = [member for member in members_lock(member_ids=member_ids) if member.tier_id is None]
            qualifications = _qualifications_for(member_ids=[m.pk for m in members], as_of=as_of, ladder=ladder)
            now = timezone.now()
            changes, statuses = [], []
            for member in members:
                qualification = qualifications.get(member.pk)
                target = qualification.tier if qualification else ladder.floor
                if target is None:
                    continue
                changes.append(
                    TierChange(
                        member=member,
                        to_tier=target,
                        reason=TierChange.Reason.INITIAL,
                        detail=qualification.detail if qualification else gettext("entry level"),
                    )
                )
                member.tier, member.updated_at = target, now
                statuses.append(MemberTierStatus(member=member, tier=target, last_qualified_at=as_of))
            TierChange.objects.bulk_create(changes)
            Member.objects.bulk_update([change.member for change in changes], ["tier", "updated_at"])
            MemberTierStatus.objects.bulk_create(
                statuses,
                update_conflicts=True,
                unique_fields=["member"],
                update_fields=["tier", "last_qualified_at", "updated_at"],
            )
        assigned += len(changes)
        after = member_ids[-1]


def tier_evaluate_for_order(*, order_id: int, as_of: datetime | None = None) -> TierChange | None:
    """Upgrade the order's member at once to the highest tier they now qualify for.

    Never downgrades. When the member still qualifies for their current tier, the retention clock
    restarts. Idempotent: an order changes a tier at most once. ``as_of`` defaults to now (or the
    order's ``paid_at`` when that is later). Returns the change, or None.
    """
    order = Order.objects.only("id", "member_id", "paid_at").get(pk=order_id)
    as_of = as_of or max(timezone.now(), order.paid_at)
    ladder = _load_ladder()
    with transaction.atomic():
        member = member_lock(member_id=order.member_id)
        qualification = _qualifications_for(member_ids=[member.pk], as_of=as_of, ladder=ladder).get(member.pk)
        return _evaluate_locked(
            member=member, order=order, as_of=as_of, ladder=ladder, new_order=False, qualification=qualification
        )


def tier_evaluate_for_new_order(*, order: Order) -> TierChange | None:
    """``tier_evaluate_for_order`` for an order recorded in the current transaction (``order_record``
    calls it): the same rules in fewer statements — the ladder is cached, one prepared statement
    locks the member row and qualifies them, and a new order cannot have changed a tier before.
    Leaves ``order.member.tier`` at the member's tier after it, for the points, and
    ``order.member.referrer_id`` as the locked row has it, for the referral."""
    if not connection.in_atomic_block:
        raise RuntimeError("tier_evaluate_for_new_order runs inside the transaction that recorded the order")
    ladder = _cached_ladder.get()
    member = order.member
    as_of = max(timezone.now(), order.paid_at)
    locked = _lock_and_qualify(member_id=member.pk, as_of=as_of, ladder=ladder)
    member.tier_id, member.referrer_id = locked.tier_id, locked.referrer_id
    member.tier = ladder.by_id.get(member.tier_id)
    return _evaluate_locked(
        member=member, order=order, as_of=as_of, ladder=ladder, new_order=True, qualification=locked.qualification
    )


def _evaluate_locked(
    *,
    member: Member,
    order: Order,
    as_of: datetime,
    ladder: _Ladder,
    new_order: bool,
    qualification: _Qualification | None,
) -> TierChange | None:
    current_tier = ladder.by_id.get(member.tier_id)
    current = current_tier if current_tier is not None and current_tier.is_active else None
    current_rank = current_tier.rank if current_tier is not None else -1
    if not ladder.rules and (ladder.floor is None or current_rank >= ladder.floor.rank):
        return None  # nothing above the entry level to qualify for, nothing to confirm
    target = qualification.tier if qualification else ladder.floor

    if (
        target is not None
        and target.rank > current_rank
        and (new_order or not TierChange.objects.filter(order_id=order.pk).exists())
    ):
        initial = member.tier_id is None and target == ladder.floor
        return _change_tier(
            member=member,
            to_tier=target,
            reason=TierChange.Reason.INITIAL if initial else TierChange.Reason.UPGRADE_ON_ORDER,
            detail=qualification.detail if qualification else gettext("entry level"),
            as_of=as_of,
            order_id=order.pk,
        )
    # The entry level needs no confirming: nobody moves down from it.
    still_qualifies = (
        current is not None
        and current != ladder.floor
        and qualification is not None
        and qualification.tier.rank >= current.rank
    )
    if still_qualifies:
        _confirm(member=member, as_of=as_of)
    return None


def tiers_upgrade_on_score(*, member_ids: Sequence[int] | None = None, as_of: datetime | None = None) -> int:
    """Move up at once every member — of ``member_ids``, or everyone — whom their RFM score now
    qualifies for a higher tier than theirs (a rule with an RFM condition holds); returns how many
    moved. Called whenever scores change: by segmentation after a live refresh (an order, or a
    batch of them) and after a recompute, where a member's score may rise without an order of
    theirs (quintile ranks move with everyone's). Never moves anyone down.

    Set-based: one statement finds who is due (nothing when no rule reads scores); those are
    re-checked and moved under their row locks, ``DOWNGRADE_BATCH`` members per transaction, to
    the highest tier they qualify for (``TierChange`` reason ``upgrade_on_score``)."""
    ladder = _cached_ladder.get()
    score_rules = [rule.pk for rule in ladder.rules if rule.min_rfm_score is not None]
    if not score_rules or (member_ids is not None and not member_ids):
        return 0
    as_of = as_of or timezone.now()
    member_filter = ("TRUE", []) if member_ids is None else ("m.id = ANY(%s::bigint[])", [sorted(set(member_ids))])
    qualifying, params = _qualifying_sql(ladder=ladder, as_of=as_of, member_filter=member_filter)
    members = connection.ops.quote_name(Member._meta.db_table)
    tiers = connection.ops.quote_name(Tier._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH qualifying (member_id, tier_rank, rule_id, spend, orders, rfm_score) AS ({qualifying}), "  # noqa: S608
            "best AS (SELECT member_id, MAX(tier_rank) AS tier_rank FROM qualifying "
            "         WHERE rule_id = ANY(%s::bigint[]) GROUP BY member_id) "
            f"SELECT b.member_id FROM best b JOIN {members} m ON m.id = b.member_id "
            f"LEFT JOIN {tiers} t ON t.id = m.tier_id WHERE b.tier_rank > COALESCE(t.rank, -1) ORDER BY b.member_id",
            [*params, score_rules],
        )
        due = [member_id for (member_id,) in cursor.fetchall()]
    moved = 0
    for start in range(0, len(due), DOWNGRADE_BATCH):
        with transaction.atomic():
            batch = members_lock(member_ids=due[start : start + DOWNGRADE_BATCH])
            qualifications = _qualifications_for(member_ids=[m.pk for m in batch], as_of=as_of, ladder=ladder)
            for member in batch:
                qualification = qualifications.get(member.pk)
                current = ladder.by_id.get(member.tier_id)
                if qualification is None or qualification.tier.rank <= (current.rank if current else -1):
                    continue  # an order or a staff change got there first
                _change_tier(
                    member=member,
                    to_tier=qualification.tier,
                    reason=TierChange.Reason.UPGRADE_ON_SCORE,
                    detail=qualification.detail,
                    as_of=as_of,
                )
                moved += 1
    return moved


def tier_set_manually(*, member: Member, tier: Tier | None, actor, reason: str) -> TierChange | None:
    """Staff set a member's tier (None removes it). Needs ``members.set_member_tier``; ``reason`` is
    required and kept in the history. Returns the change, or None when the member already has ``tier``.
    """
    if actor is None or not actor.has_perm(SET_TIER_PERMISSION):
        raise PermissionDenied(_("You are not allowed to change members' tiers."))
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": _("Say why the tier is changed.")})
    if tier is not None and not tier.is_active:
        raise ValidationError({"tier": _("Tier %(tier)s is not active.") % {"tier": tier}})
    with transaction.atomic():
        locked = member_lock(member_id=member.pk)
        if locked.tier_id == (tier.pk if tier else None):
            return None
        change = _change_tier(
            member=locked,
            to_tier=tier,
            reason=TierChange.Reason.MANUAL,
            detail=reason,
            as_of=timezone.now(),
            actor=actor,
        )
    member.tier = tier
    return change


def tier_downgrade_due(*, as_of: datetime) -> int:
    """Move down every member whose retention period has run out; returns how many moved.

    One statement reads the standing of every member above the entry level: it refreshes
    ``last_qualified_at`` of those who still qualify and returns those who are due. Those are then
    re-checked and moved under their row locks, ``DOWNGRADE_BATCH`` members per transaction.
    """
    ladder = _load_ladder()
    member_table = connection.ops.quote_name(Member._meta.db_table)
    tier_table = connection.ops.quote_name(Tier._meta.db_table)
    status_table = connection.ops.quote_name(MemberTierStatus._meta.db_table)
    # Members above the entry level: the only ones a downgrade can move.
    above_floor = ("m.tier_id IS NOT NULL AND m.tier_id <> %s", [ladder.floor.pk if ladder.floor else -1])

    with connection.cursor() as cursor:
        # A member whose tier was set outside these services gets a status now: the clock starts.
        cursor.execute(
            f"INSERT INTO {status_table} (member_id, tier_id, last_qualified_at, created_at, updated_at) "  # noqa: S608
            f"SELECT m.id, m.tier_id, %s, now(), now() FROM {member_table} m "
            f"LEFT JOIN {status_table} s ON s.member_id = m.id "
            f"WHERE {above_floor[0]} AND (s.id IS NULL OR s.tier_id <> m.tier_id) "
            "ON CONFLICT (member_id) DO UPDATE SET tier_id = EXCLUDED.tier_id, "
            "last_qualified_at = EXCLUDED.last_qualified_at, updated_at = EXCLUDED.updated_at "
            f"WHERE {status_table}.tier_id <> EXCLUDED.tier_id",
            [as_of, *above_floor[1]],
        )

        qualifying, qualifying_params = _qualifying_sql(ladder=ladder, as_of=as_of, member_filter=above_floor)
        # ``confirmed`` runs although the final SELECT does not read it (PostgreSQL runs every
        # data-modifying WITH); it sees the same snapshot, and touches only members who qualify,
        # while the SELECT returns only members who do not.
        cursor.execute(
            f"WITH qualifying (member_id, tier_rank, rule_id, spend, orders, rfm_score) AS ({qualifying}), "  # noqa: S608
            "best AS (SELECT member_id, MAX(tier_rank) AS tier_rank FROM qualifying GROUP BY member_id), "
            "standing AS ("
            "  SELECT m.id AS member_id, m.tier_id, s.last_qualified_at, t.retention_days,"
            "         (t.is_active AND COALESCE(b.tier_rank, -1) >= t.rank) AS qualifies"
            f"  FROM {member_table} m JOIN {tier_table} t ON t.id = m.tier_id"
            f"  JOIN {status_table} s ON s.member_id = m.id AND s.tier_id = m.tier_id"
            "   LEFT JOIN best b ON b.member_id = m.id"
            f"  WHERE {above_floor[0]}"
            "), confirmed AS ("
            f"  UPDATE {status_table} s SET last_qualified_at = %s, updated_at = now() FROM standing st"
            "   WHERE s.member_id = st.member_id AND st.qualifies AND s.last_qualified_at < %s"
            "   RETURNING s.member_id"
            ") SELECT member_id, tier_id FROM standing"
            " WHERE NOT qualifies AND last_qualified_at + make_interval(days => retention_days) <= %s"
            " ORDER BY member_id",
            [*qualifying_params, *above_floor[1], as_of, as_of, as_of],
        )
        due = cursor.fetchall()

    batches = [due[i : i + DOWNGRADE_BATCH] for i in range(0, len(due), DOWNGRADE_BATCH)]
    return sum(_downgrade_batch(due=dict(batch), as_of=as_of, ladder=ladder) for batch in batches)


def _downgrade_batch(*, due: dict[int, int], as_of: datetime, ladder: _Ladder) -> int:
    """Move members found due (member id → the tier they were due on), after re-checking them under
    their row locks: an order may have come in since. A few queries per batch."""
    with transaction.atomic():
        members = [m for m in members_lock(member_ids=due) if m.tier_id == due[m.pk]]
        statuses = {s.member_id: s for s in MemberTierStatus.objects.filter(member__in=members)}
        members = [
            m
            for m in members
            if (status := statuses.get(m.pk)) is not None
            and status.tier_id == m.tier_id
            and status.last_qualified_at + timedelta(days=ladder.by_id[m.tier_id].retention_days) <= as_of
        ]
        qualifications = _qualifications_for(member_ids=[m.pk for m in members], as_of=as_of, ladder=ladder)
        now = timezone.now()
        changes: list[TierChange] = []
        kept: list[MemberTierStatus] = []
        removed: list[int] = []
        for member in members:
            current, status = ladder.by_id[member.tier_id], statuses[member.pk]
            qualification = qualifications.get(member.pk)
            if current.is_active and qualification is not None and qualification.tier.rank >= current.rank:
                status.last_qualified_at, status.updated_at = as_of, now  # qualifies again: confirmed
                kept.append(status)
                continue
            target = qualification.tier if qualification else ladder.floor
            lapsed = gettext("not qualified for %(tier)s since %(date)s (kept %(days)s days)") % {
                "tier": current.name,
                "date": f"{timezone.localtime(status.last_qualified_at):%Y-%m-%d}",
                "days": current.retention_days,
            }
            qualifies = qualification.detail if qualification else gettext("qualifies for no higher tier")
            changes.append(
                TierChange(
                    member=member,
                    from_tier=current,
                    to_tier=target,
                    reason=TierChange.Reason.SCHEDULED_DOWNGRADE,
                    detail=f"{lapsed}; {qualifies}",
                )
            )
            member.tier, member.updated_at = target, now
            if target is None:
                removed.append(status.pk)
            else:
                status.tier, status.last_qualified_at, status.updated_at = target, as_of, now
                kept.append(status)
        TierChange.objects.bulk_create(changes)
        Member.objects.bulk_update([change.member for change in changes], ["tier", "updated_at"])
        MemberTierStatus.objects.bulk_update(kept, ["tier", "last_qualified_at", "updated_at"])
        if removed:
            MemberTierStatus.objects.filter(pk__in=removed).delete()
    return len(changes)
