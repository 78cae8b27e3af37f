"""Reads of product preference (computed nightly by ``segmentation.services.products``): a member's
favourite categories, the products to recommend to a member, the products related to an order.
Each is one query whatever the member's history."""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from django.db.models import F, Max, QuerySet
from django.utils import timezone

from members.models import Order, OrderLine
from segmentation.models import MemberCategory, RelatedProduct
from segmentation.services.products import PREFERENCE_DAYS

__all__ = [
    "RECENT_DAYS",
    "Recommendation",
    "favourite_category_choices",
    "member_favourite_categories",
    "member_recommended_products",
    "order_related_product_names",
]

RECENT_DAYS = 90
RECOMMENDED = 5
IN_A_MESSAGE = 3
NAME_SEPARATOR = "、"


class Recommendation(NamedTuple):
    """A product to recommend: bought by the members who bought ``because`` (one of the member's
    recent purchases), ``lift`` times as often as by chance, by ``support`` of them."""

    product_id: int
    sku: str
    name: str
    category: str
    because: str  # the name of the purchase it is related to (the strongest link)
    lift: float
    support: int


def member_favourite_categories(*, member_id: int) -> list[MemberCategory]:
    """The member's favourite categories from the last nightly run, favourite first (at most three)."""
    return list(MemberCategory.objects.filter(member_id=member_id).order_by("rank"))


def favourite_category_choices() -> list[str]:
    """Every category that is someone's favourite, for the member list's filter. One query over the
    ``(category, rank)`` index."""
    return list(
        MemberCategory.objects.filter(rank=1).order_by("category").values_list("category", flat=True).distinct()
    )


def _bought(*, member_id: int, since: dt.datetime) -> QuerySet[OrderLine]:
    """The member's lines, not refunded in full, of orders paid since ``since`` and not refunded in full."""
    return OrderLine.objects.filter(
        order__member_id=member_id,
        order__paid_at__gt=since,
        order__refunded_amount__lt=F("order__amount"),
        refunded_quantity__lt=F("quantity"),
        refunded_amount__lt=F("amount"),
    )


def member_recommended_products(
    *, member_id: int, now: dt.datetime | None = None, limit: int = RECOMMENDED, recent_days: int = RECENT_DAYS
) -> list[Recommendation]:
    """ "You may also recommend": the products related to what the member bought in the last
    ``recent_days`` days, leaving out the products they bought in the last 365; strongest link first."""
    now = now or timezone.now()
    recent = _bought(member_id=member_id, since=now - dt.timedelta(days=recent_days)).values("product_id")
    owned = _bought(member_id=member_id, since=now - dt.timedelta(days=PREFERENCE_DAYS)).values("product_id")
    rows = (
        RelatedProduct.objects.filter(product_id__in=recent)
        .exclude(related_id__in=owned)
        .values("related_id", "related__sku", "related__name", "related__category")
        .annotate(best_lift=Max("lift"), best_support=Max("support"), because=Max("product__name"))
        .order_by("-best_lift", "-best_support", "related_id")[:limit]
    )
    return [
        Recommendation(
            product_id=row["related_id"],
            sku=row["related__sku"],
            name=row["related__name"],
            category=row["related__category"],
            because=row["because"],
            lift=round(row["best_lift"], 2),
            support=row["best_support"],
        )
        for row in rows
    ]


def order_related_product_names(
    *, member_id: int, order_id: int | None = None, limit: int = IN_A_MESSAGE, now: dt.datetime | None = None
) -> str:
    """The names of the products related to the order ``order_id`` (default: the member's last order
    not refunded in full) that the member has not bought in the last 365 days, strongest first,
    joined with 、 — what a trigger's message says as ``related_products``. Empty when there are none."""
    now = now or timezone.now()
    orders = Order.objects.filter(member_id=member_id, refunded_amount__lt=F("amount"))
    if order_id is not None:
        orders = orders.filter(pk=order_id)
    last = orders.order_by("-paid_at", "-id").values("pk")[:1]
    in_order = OrderLine.objects.filter(order_id__in=last, refunded_quantity__lt=F("quantity")).values("product_id")
    owned = _bought(member_id=member_id, since=now - dt.timedelta(days=PREFERENCE_DAYS)).values("product_id")
    names = (
        RelatedProduct.objects.filter(product_id__in=in_order)
        .exclude(related_id__in=owned)
        .exclude(related_id__in=in_order)
        .values("related_id", "related__name")
        .annotate(best_lift=Max("lift"), best_support=Max("support"))
        .order_by("-best_lift", "-best_support", "related_id")
        .values_list("related__name", flat=True)[:limit]
    )
    return NAME_SEPARATOR.join(names)
