"""Hand-built members and orders for the segmentation tests, in the brand's local time."""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.utils import timezone

from members.models import Order
from tests.factories import MemberFactory, OrderFactory, StoreFactory

TZ = ZoneInfo("Asia/Shanghai")
AS_OF = dt.date(2025, 6, 30)


# A member's RFM row as the tests compare it (what a refresh or a run computes).
RFM_FIELDS = (
    "recency_days",
    "first_order_days",
    "frequency",
    "monetary",
    "r_score",
    "f_score",
    "m_score",
    "segment_id",
)


def local(day: dt.date, hour: int = 12, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=TZ)


def ago(days: int) -> dt.datetime:
    """Noon ``days`` days before today — or now, for today before noon: orders are never in the
    future (``order_record`` refuses them), whatever the time of day the suite runs at."""
    return min(local(timezone.localdate() - dt.timedelta(days=days)), timezone.now())


def days_before(days: int, *, as_of: dt.date = AS_OF, hour: int = 12, minute: int = 0) -> dt.datetime:
    return local(as_of - dt.timedelta(days=days), hour, minute)


def member(*, registered: dt.datetime | None = None, **fields):
    store = StoreFactory(code="S001")
    return MemberFactory(registered_at=registered or local(AS_OF - dt.timedelta(days=1000)), home_store=store, **fields)


def order(who, *, days_ago: int = 0, amount: str = "100.00", as_of: dt.date = AS_OF, hour: int = 12, paid_at=None):
    return OrderFactory(
        member=who,
        paid_at=paid_at or days_before(days_ago, as_of=as_of, hour=hour),
        amount=Decimal(amount),
    )


def refund_fully(an_order) -> None:
    Order.objects.filter(pk=an_order.pk).update(refunded_amount=an_order.amount, status=Order.Status.REFUNDED)


def mixed_data(seed: int = 7) -> None:
    """Forty members: some never buy, some lapse, some buy often; partial and full refunds;
    orders around local midnight and after the as-of date."""
    import random

    rng = random.Random(seed)
    for index in range(40):
        who = member(registered=local(AS_OF - dt.timedelta(days=900 - index)))
        for _ in range(rng.choice([0, 0, 1, 1, 1, 2, 3, 5, 8])):
            days = rng.choice([0, 1, 2, 29, 30, 31, 100, 364, 365, 366, 500, -1])
            made = order(
                who,
                paid_at=days_before(days, hour=rng.choice([0, 12, 23]), minute=rng.choice([0, 59])),
                amount=rng.choice(["9.90", "38.00", "120.00", "499.99", "500.00"]),
            )
            refund = rng.choice([None, None, None, "partial", "full"])
            if refund == "partial":
                Order.objects.filter(pk=made.pk).update(refunded_amount="1.11", status=Order.Status.PARTIALLY_REFUNDED)
            elif refund == "full":
                refund_fully(made)


def buyers_after_a_run(count: int, *, recent: int) -> list:
    """``count`` members with one order each (20 days apart, growing amounts) scored by a run, then
    a new order today-ish for the first ``recent`` of them — members whose refresh changes things."""
    from segmentation.services import segment_recompute

    buyers = [member() for _ in range(count)]
    for index, who in enumerate(buyers):
        order(who, paid_at=ago(index * 20 + 1), amount=f"{(index + 1) * 70}.00")
    segment_recompute()
    for index, who in enumerate(buyers[:recent]):
        order(who, paid_at=ago(index), amount="45.50")
    return buyers
