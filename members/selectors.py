"""Reads of the members app: querysets with their related rows already fetched.

Staff look members up by phone, so every lookup by mobile normalises the term first
(``+86 138-0013-8000``, full-width digits and ``8613800138000`` are one number) and then matches
the canonical form exactly, which the unique index on ``Member.mobile`` answers at once.
``member_mobile_condition`` is that lookup for rows that belong to a member (points entries,
coupons, RFM results…): every admin search by phone, in every app, goes through it.
"""

import operator
import re
import unicodedata
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from functools import reduce
from typing import NamedTuple

from django.core.exceptions import ValidationError
from django.db.models import (
    Count,
    DecimalField,
    Exists,
    ExpressionWrapper,
    F,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, NullIf, Right
from django.utils import timezone

from members import rows
from members.mobile import mask_mobile, normalize_mobile
from members.models import MONEY, Member, Order, OrderLine, PointsAccount, RestrictedBonus, StoreStaff, Wallet

MOBILE_LENGTH = 11
LAST_FOUR = 4
SCOPE_ORDER_DAYS = 365  # an order at one of a user's stores this recently puts the member in scope
_MOBILE_PREFIX_MIN = 3
_SEPARATORS = re.compile(r"[\s\-().·]")
_ZERO = Value(Decimal("0.00"), output_field=DecimalField(**MONEY))


class OrderSummary(NamedTuple):
    """A member's orders in one aggregate: how many, how much, since when."""

    count: int
    total_paid: Decimal
    total_refunded: Decimal
    first_paid_at: datetime | None
    last_paid_at: datetime | None

    @property
    def net_paid(self) -> Decimal:
        return self.total_paid - self.total_refunded


def mobile_or_none(term: str) -> str | None:
    """The canonical mobile number ``term`` spells, or ``None`` when it is not one."""
    try:
        return normalize_mobile(term)
    except ValidationError:
        return None


def _mobile_prefix(term: str) -> str | None:
    """Leading digits of a mobile number (``138 0013``), for a search on part of a number."""
    text = _SEPARATORS.sub("", unicodedata.normalize("NFKC", term or ""))
    if text.isascii() and text.isdigit() and text.startswith("1") and _MOBILE_PREFIX_MIN <= len(text) < MOBILE_LENGTH:
        return text
    return None


def member_mobile_condition(*, term: str, member_fields: Iterable[str] = ("member",)) -> Q | None:
    """The rows whose member has the mobile number ``term`` spells, as a condition to filter by;
    ``None`` when ``term`` is not a mobile number.

    ``member_fields`` are the paths from a row to its member (``"member"``, ``"wallet__member"``,
    or both parties of a referral). The member is resolved first, on the unique index, so that the
    condition is ``member_id IN (…)`` on each path: PostgreSQL answers it from the rows' own
    member index (combining two of them with a bitmap OR) instead of joining every row to its member.
    """
    mobile = mobile_or_none(term)
    if mobile is None:
        return None
    member_ids = list(Member.objects.filter(mobile=mobile).values_list("pk", flat=True))
    return reduce(operator.or_, (Q(**{f"{field}__in": member_ids}) for field in member_fields))


def member_get_by_mobile(*, mobile: str) -> Member | None:
    """The member with this mobile number in any spelling, or ``None``."""
    canonical = mobile_or_none(mobile)
    if canonical is None:
        return None
    return rows.get(Member, by="mobile", value=canonical)  # one short statement: every POS order asks


def _last_four(term: str) -> tuple[str, str] | None:
    """``"2213"`` or ``"2213 王"`` (手机尾号, optionally with a name): the four digits and the name."""
    text = unicodedata.normalize("NFKC", term or "").strip()
    digits, _space, name = text.partition(" ")
    if len(digits) == LAST_FOUR and digits.isascii() and digits.isdigit():
        return digits, name.strip()
    return None


def member_search(*, term: str, queryset: QuerySet[Member] | None = None) -> QuerySet[Member]:
    """Members matching what staff typed.

    A whole mobile number in any spelling matches exactly (unique index). Four digits are the last
    four of the number (手机尾号, the ``member_mobile_last4`` expression index), optionally followed
    by a name (``2213 王``); four digits starting with ``1`` may also be the first four. The first
    digits of a number match as a range on the unique index: every stored mobile has 11 digits, so
    the numbers starting with ``138`` are exactly those between ``13800000000`` and
    ``13899999999``, whatever the database collation. Anything else is looked for in the name.
    """
    queryset = Member.objects.all() if queryset is None else queryset
    term = (term or "").strip()
    if not term:
        return queryset
    mobile = mobile_or_none(term)
    if mobile is not None:
        return queryset.filter(mobile=mobile)
    last_four = _last_four(term)
    if last_four is not None:
        digits, name = last_four
        condition = Q(mobile_last4=digits)
        if not name and digits.startswith("1"):
            condition |= _prefix_condition(digits)
        found = queryset.alias(mobile_last4=Right("mobile", LAST_FOUR)).filter(condition)
        return found.filter(name__icontains=name) if name else found
    prefix = _mobile_prefix(term)
    if prefix is not None:
        return queryset.filter(_prefix_condition(prefix))
    return queryset.filter(name__icontains=term)


def _prefix_condition(prefix: str) -> Q:
    padding = MOBILE_LENGTH - len(prefix)
    return Q(mobile__gte=prefix + "0" * padding, mobile__lte=prefix + "9" * padding)


def order_search(*, term: str, queryset: QuerySet[Order] | None = None) -> QuerySet[Order]:
    """Orders whose external id is ``term``, or of the member whose mobile ``term`` spells.

    The member is resolved first so that PostgreSQL can combine two index scans (external id,
    member) instead of joining every order to its member.
    """
    queryset = Order.objects.all() if queryset is None else queryset
    term = (term or "").strip()
    if not term:
        return queryset
    condition = Q(external_id=term)
    by_mobile = member_mobile_condition(term=term)
    if by_mobile is not None:
        condition |= by_mobile
    return queryset.filter(condition)


def member_recent_orders(*, member_id: int, limit: int = 20) -> QuerySet[Order]:
    """The member's latest orders, newest first, with their store."""
    return Order.objects.filter(member_id=member_id).select_related("store").order_by("-paid_at", "-id")[:limit]


def member_order_summary(*, member_id: int) -> OrderSummary:
    """Count, amounts and first/last paid time of the member's orders, in one query."""
    row = Order.objects.filter(member_id=member_id).aggregate(
        count=Count("id"),
        total_paid=Coalesce(Sum("amount"), _ZERO),
        total_refunded=Coalesce(Sum("refunded_amount"), _ZERO),
        first_paid_at=Min("paid_at"),
        last_paid_at=Max("paid_at"),
    )
    return OrderSummary(**row)


TOP_CATEGORIES_DAYS = 365


class CategoryShare(NamedTuple):
    """A product category of a member's purchases: net spend on it and its share of the lines' net."""

    category: str
    net_amount: Decimal
    share: Decimal  # percent of the member's net spend on lines in the window, one decimal place


def member_top_categories(
    *, member_id: int, now: datetime | None = None, limit: int = 3, days: int = TOP_CATEGORIES_DAYS
) -> list[CategoryShare]:
    """The member's favourite categories: net spend on order lines paid in the last ``days`` days,
    by category, largest first, the first ``limit`` — one query. A line's net is its amount less
    what refunds naming it gave back, less its share of the refunds that named no line (taken from
    what each line has left alike): ``(amount − refunded) × (order − order refunded) ÷ (order − Σ
    lines refunded)`` — the nightly ``segmentation.MemberCategory`` nets the same way. Empty when
    the member's orders have no lines."""
    since = (now or timezone.now()) - timedelta(days=days)
    named = (
        OrderLine.objects.filter(order_id=OuterRef("order_id"))
        .order_by()
        .values("order_id")
        .annotate(total=Sum("refunded_amount"))
        .values("total")
    )
    net = ExpressionWrapper(
        (F("amount") - F("refunded_amount"))
        * (F("order__amount") - F("order__refunded_amount"))
        / NullIf(F("order__amount") - Subquery(named), _ZERO),
        output_field=DecimalField(**MONEY),
    )
    # Every category of the member (a catalogue has a few dozen): the total needs them all.
    by_category = [
        (category, amount)
        for category, amount in OrderLine.objects.filter(
            order__member_id=member_id, order__paid_at__gte=since, order__refunded_amount__lt=F("order__amount")
        )
        .values_list("product__category")
        .annotate(net_amount=Sum(net))
        .order_by("-net_amount", "product__category")
        if amount > 0
    ]
    total = sum((amount for _category, amount in by_category), Decimal("0"))
    return [
        CategoryShare(
            category=category,
            net_amount=amount.quantize(Decimal("0.01")),
            share=(amount * 100 / total).quantize(Decimal("0.1")),
        )
        for category, amount in by_category[:limit]
    ]


class MemberBalances(NamedTuple):
    """What a member holds: points (and points owed after refunds) and stored value."""

    points: int
    points_debt: int
    principal: Decimal
    bonus: Decimal

    @property
    def stored_value(self) -> Decimal:
        return self.principal + self.bonus


def member_balances(*, member_id: int) -> MemberBalances:
    """The member's cached balances (the services keep them equal to the ledgers), two queries."""
    points = PointsAccount.objects.filter(member_id=member_id).values_list("balance", "debt").first() or (0, 0)
    wallet = Wallet.objects.filter(member_id=member_id).values_list("principal", "bonus").first()
    principal, bonus = wallet or (Decimal("0.00"), Decimal("0.00"))
    return MemberBalances(points=points[0], points_debt=points[1], principal=principal, bonus=bonus)


# --- staff scope and personal data (PRODUCT.md: roles and personal data) -------------------------


def staff_store_ids(*, user) -> list[int] | None:
    """The stores whose members ``user`` sees; ``None`` for every store (superusers, and roles with
    ``members.view_all_stores``: operators, analysts). A user assigned to no store sees none."""
    if user.is_superuser or user.has_perm("members.view_all_stores"):
        return None
    return list(StoreStaff.objects.filter(user=user).values_list("store_id", flat=True))


def members_in_scope(*, user, queryset: QuerySet[Member] | None = None) -> QuerySet[Member]:
    """The members ``user`` may look up: for store staff and managers, those whose home store is
    one of theirs or who bought at one of their stores in the last ``SCOPE_ORDER_DAYS`` days."""
    queryset = Member.objects.all() if queryset is None else queryset
    store_ids = staff_store_ids(user=user)
    if store_ids is None:
        return queryset
    since = timezone.now() - timedelta(days=SCOPE_ORDER_DAYS)
    bought_here = Order.objects.filter(member_id=OuterRef("pk"), store_id__in=store_ids, paid_at__gte=since)
    return queryset.filter(Q(home_store_id__in=store_ids) | Exists(bought_here))


def member_in_scope(*, user, member_id: int) -> bool:
    return members_in_scope(user=user, queryset=Member.objects.filter(pk=member_id)).exists()


def mobile_shown(*, user, mobile: str, revealed: bool = False) -> str:
    """The mobile number as ``user`` sees it: masked (``138****8000``) unless ``revealed`` by a user
    with ``members.view_full_mobile`` (``members.services.staff.member_mobile_reveal`` records it)."""
    if revealed and user.has_perm("members.view_full_mobile"):
        return mobile
    return mask_mobile(mobile)


def name_shown(*, user, name: str) -> str:
    """The member's name, or nothing for a role without ``members.view_personal_data`` (analysts)."""
    return name if user.has_perm("members.view_personal_data") else ""


def wallet_restricted_bonuses(*, wallet_id: int) -> list[RestrictedBonus]:
    """The wallet's bonuses limited to some products with something left, oldest first: one query."""
    return list(RestrictedBonus.objects.filter(wallet_id=wallet_id, remaining__gt=0).order_by("pk"))


def member_restricted_bonuses(*, member_id: int):
    """The member's bonuses limited to some products with something left, oldest first (a queryset)."""
    return RestrictedBonus.objects.filter(wallet__member_id=member_id, remaining__gt=0).order_by("pk")
