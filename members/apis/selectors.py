"""Reads for the API, scoped to the caller: a member's own rows, a store's own orders.

Every queryset has its related rows fetched already, so a page of 50 costs the same number of
queries as a page of 5.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import connection
from django.db.models import Prefetch, QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils import timezone

from members import rows
from members.models import (
    Member,
    Order,
    OrderLine,
    PointsAccount,
    PointsEntry,
    PointsLot,
    Referral,
    Refund,
    Tier,
    TierRule,
    TopUpIntent,
    Wallet,
    WalletEntry,
)

EXPIRING_SOON = timedelta(days=30)
ZERO = Decimal("0.00")


# --- the member's profile ---


@dataclass(frozen=True)
class RequirementProgress:
    """One way to reach the next tier, and where the member stands on it."""

    window_days: int
    min_spend: Decimal | None
    spend: Decimal
    spend_remaining: Decimal | None
    min_orders: int | None
    orders: int
    orders_remaining: int | None
    needs_score: bool


@dataclass(frozen=True)
class NextTier:
    tier: dict
    requirements: list[RequirementProgress]


@dataclass(frozen=True)
class MemberProfile:
    member: Member
    tier: dict | None
    next_tier: NextTier | None
    points_balance: int
    points_expiring_soon: int
    points_next_expiry: datetime | None
    points_expiring_before: datetime
    wallet_principal: Decimal
    wallet_bonus: Decimal

    @property
    def wallet_total(self) -> Decimal:
        return self.wallet_principal + self.wallet_bonus


def related_or_none(instance, name: str):
    try:
        return getattr(instance, name)
    except Exception:  # RelatedObjectDoesNotExist: no account or wallet yet
        return None


_PROFILE_SQL = """
SELECT m.id, m.name, m.mobile, m.gender, m.birthday, m.registered_at, m.referral_code,
       t.code, t.name, t.rank, t.points_multiplier, t.birthday_points_multiplier, t.discount_rate,
       t.free_shipping, t.priority_service,
       COALESCE(pa.balance, 0), COALESCE(w.principal, 0), COALESCE(w.bonus, 0),
       (SELECT COALESCE(SUM(l.remaining), 0) FROM {lot} l
         WHERE l.member_id = m.id AND l.remaining > 0 AND l.expires_at <= %(soon)s),
       (SELECT MIN(l.expires_at) FROM {lot} l
         WHERE l.member_id = m.id AND l.remaining > 0 AND l.expires_at <= %(soon)s),
       (SELECT json_agg(json_build_object(
                  'code', nt.code, 'name', nt.name, 'rank', nt.rank,
                  'points_multiplier', nt.points_multiplier::text,
                  'birthday_points_multiplier', nt.birthday_points_multiplier::text,
                  'discount_rate', nt.discount_rate::text, 'free_shipping', nt.free_shipping,
                  'priority_service', nt.priority_service,
                  'window_days', r.window_days, 'min_spend', r.min_spend::text, 'min_orders', r.min_orders,
                  'needs_score', r.min_rfm_score IS NOT NULL, 'spend', agg.spend::text, 'orders', agg.orders)
                ORDER BY r.id)
          FROM {rule} r JOIN {tier} nt ON nt.id = r.tier_id
          CROSS JOIN LATERAL (
              SELECT COALESCE(SUM(o.amount - o.refunded_amount), 0) AS spend,
                     COUNT(*) FILTER (WHERE o.status <> %(refunded)s) AS orders
                FROM {order} o
               WHERE o.member_id = m.id AND o.paid_at > %(now)s - make_interval(days => r.window_days)
                 AND o.paid_at <= %(now)s
          ) agg
         WHERE nt.rank = (SELECT MIN(t2.rank) FROM {tier} t2 JOIN {rule} r2 ON r2.tier_id = t2.id
                           WHERE t2.is_active AND t2.rank > COALESCE(t.rank, -1)))
  FROM {member} m
  LEFT JOIN {tier} t ON t.id = m.tier_id
  LEFT JOIN {account} pa ON pa.member_id = m.id
  LEFT JOIN {wallet} w ON w.member_id = m.id
 WHERE m.id = %(member_id)s
"""


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def member_profile(*, member_id: int, now: datetime | None = None) -> MemberProfile:
    """Everything the profile page shows, in one query (the page is the mini-program's home).

    The next tier is the lowest active tier above the member's that has rules; for each of its
    rules, the member's net spend and order count over the rule's window (as the tier rules count
    them: net of refunds, fully refunded orders not counted).
    """
    now = now or timezone.now()
    soon = now + EXPIRING_SOON
    sql = _PROFILE_SQL.format(
        lot=_table(PointsLot),
        rule=_table(TierRule),
        tier=_table(Tier),
        order=_table(Order),
        member=_table(Member),
        account=_table(PointsAccount),
        wallet=_table(Wallet),
    )
    params = {"member_id": member_id, "now": now, "soon": soon, "refunded": Order.Status.REFUNDED}
    found = rows.fetch_prepared(sql, params)  # planned once per connection: planning cost more than running
    if not found:
        raise Http404
    row = found[0]
    pk, name, mobile, gender, birthday, registered_at, referral_code = row[:7]
    tier_row = row[7:15]
    balance, principal, bonus, expiring, next_expiry, next_rules = row[15:]
    member = Member(
        pk=pk,
        name=name,
        mobile=mobile,
        gender=gender,
        birthday=birthday,
        registered_at=registered_at,
        referral_code=referral_code,
    )
    tier = dict(zip(_TIER_FIELDS, tier_row, strict=True)) if tier_row[0] is not None else None
    return MemberProfile(
        member=member,
        tier=tier,
        next_tier=_next_tier(next_rules),
        points_balance=balance,
        points_expiring_soon=expiring,
        points_next_expiry=next_expiry,
        points_expiring_before=soon,
        wallet_principal=principal,
        wallet_bonus=bonus,
    )


_TIER_FIELDS = (
    "code",
    "name",
    "rank",
    "points_multiplier",
    "birthday_points_multiplier",
    "discount_rate",
    "free_shipping",
    "priority_service",
)


def _decimal(value) -> Decimal | None:
    return None if value is None else Decimal(value)


def _next_tier(rules: list[dict] | None) -> NextTier | None:
    if not rules:
        return None
    first = rules[0]
    tier = {name: first[name] for name in _TIER_FIELDS}
    requirements = []
    for rule in rules:
        min_spend, spend, orders = _decimal(rule["min_spend"]), Decimal(rule["spend"]), rule["orders"]
        min_orders = rule["min_orders"]
        requirements.append(
            RequirementProgress(
                window_days=rule["window_days"],
                min_spend=min_spend,
                spend=spend,
                spend_remaining=None if min_spend is None else max(min_spend - spend, ZERO),
                min_orders=min_orders,
                orders=orders,
                orders_remaining=None if min_orders is None else max(min_orders - orders, 0),
                needs_score=rule["needs_score"],
            )
        )
    return NextTier(tier=tier, requirements=requirements)


# --- the member's lists ---


def member_orders(*, member_id: int) -> QuerySet[Order]:
    refunds = Prefetch("refunds", queryset=Refund.objects.order_by("refunded_at", "id"))
    return (
        Order.objects.filter(member_id=member_id)
        .select_related("store")
        .prefetch_related(refunds)
        .order_by("-paid_at", "-id")
    )


def member_points_entries(*, member_id: int) -> QuerySet[PointsEntry]:
    return PointsEntry.objects.filter(member_id=member_id).order_by("-created_at", "-id")


def member_wallet_entries(*, member_id: int) -> QuerySet[WalletEntry]:
    return WalletEntry.objects.filter(wallet__member_id=member_id).order_by("-created_at", "-id")


def member_referrals(*, member_id: int) -> QuerySet[Referral]:
    return (
        Referral.objects.filter(referrer_id=member_id)
        .select_related("referee", "referrer_entry")
        .order_by("-created_at", "-id")
    )


def member_top_up(*, member_id: int, out_trade_no: str) -> TopUpIntent:
    return get_object_or_404(TopUpIntent, member_id=member_id, out_trade_no=out_trade_no)


# --- a store's orders ---


def store_orders(*, store_id: int) -> QuerySet[Order]:
    return Order.objects.filter(store_id=store_id).select_related("store").order_by("-paid_at", "-id")


def store_order(*, store_id: int, external_id: str, with_lines: bool = False) -> Order:
    orders = store_orders(store_id=store_id)
    if with_lines:
        orders = orders.prefetch_related(Prefetch("lines", queryset=OrderLine.objects.select_related("product")))
    return get_object_or_404(orders, external_id=external_id)


__all__ = [
    "EXPIRING_SOON",
    "MemberProfile",
    "NextTier",
    "RequirementProgress",
    "member_orders",
    "member_points_entries",
    "member_profile",
    "member_referrals",
    "member_top_up",
    "member_wallet_entries",
    "store_order",
    "store_orders",
]
