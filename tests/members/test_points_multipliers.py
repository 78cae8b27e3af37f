"""Extra points multipliers (``MemberPointsMultiplier`` rows a campaign or a top-up offer writes):
a new order's points are computed inside the statement that writes them, and must be exactly
``floor(amount × tier × birthday × the highest active multiplier)`` — checked here against that
formula in ``Decimal``, written out independently of the service."""

import datetime as dt
import itertools
from decimal import ROUND_FLOOR, Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from members.models import MemberPointsMultiplier, PointsEntry, Tier
from members.services.points import points_for_order
from tests.factories import MemberFactory, record_order

pytestmark = pytest.mark.django_db

_ids = itertools.count(1)


def earned(order) -> int:
    entry = PointsEntry.objects.filter(order=order, kind=PointsEntry.Kind.EARN).first()
    return entry.points if entry else 0


@pytest.fixture
def gold_birthday_member():
    gold = Tier.objects.create(
        code="gold-mp",
        name="Gold",
        rank=5,
        points_multiplier=Decimal("1.20"),
        birthday_points_multiplier=Decimal("1.50"),
    )
    today = timezone.localdate()
    return MemberFactory(tier=gold, birthday=today.replace(year=1990) if (today.month, today.day) != (2, 29) else None)


def grant(member, multiplier: str, starts_at, ends_at, key: str):
    return MemberPointsMultiplier.objects.create(
        member=member, multiplier=Decimal(multiplier), starts_at=starts_at, ends_at=ends_at, idempotency_key=key
    )


def test_the_campaign_multiplier_costs_no_query_of_its_own(gold_birthday_member):
    now = timezone.now()
    grant(gold_birthday_member, "2.00", now - dt.timedelta(days=1), now + dt.timedelta(days=1), "double")
    record_order(gold_birthday_member, "10.00", now)  # warms the process's caches
    with CaptureQueriesContext(connection) as queries:
        order = record_order(gold_birthday_member, "38.50", now).order
    assert not [q for q in queries.captured_queries if "members_memberpointsmultiplier" in q["sql"].split("WITH")[0]]
    assert earned(order) == points_for_order(order=order) == 138  # 38.50 × 1.2 × 1.5 × 2 = 138.6


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cents=st.integers(min_value=1, max_value=500_000),
    multipliers=st.lists(st.decimals(min_value=1, max_value=5, places=2), max_size=2),
    minutes_to_end=st.integers(min_value=-2, max_value=2),
)
def test_points_in_sql_equal_points_in_decimal(gold_birthday_member, cents, multipliers, minutes_to_end):
    # given: grants, the last of which ends around the order's time (an order at its end is outside)
    paid_at = timezone.now().replace(second=0, microsecond=0)
    key = next(_ids)
    for index, value in enumerate(multipliers):
        ends = paid_at + dt.timedelta(minutes=minutes_to_end if index == len(multipliers) - 1 else 60)
        grant(gold_birthday_member, str(value), paid_at - dt.timedelta(hours=1), ends, f"g-{key}-{index}")
    # when the POS records the order
    order = record_order(gold_birthday_member, Decimal(cents) / 100, paid_at).order
    # then it earned what the formula gives: multipliers do not stack, the highest active one counts
    active = [
        Decimal(value) for index, value in enumerate(multipliers) if index < len(multipliers) - 1 or minutes_to_end > 0
    ]
    expected = (order.amount * Decimal("1.20") * Decimal("1.50") * max(active, default=Decimal(1))).to_integral_value(
        rounding=ROUND_FLOOR
    )
    assert earned(order) == points_for_order(order=order) == int(expected)
    MemberPointsMultiplier.objects.filter(member=gold_birthday_member).delete()


def test_an_order_too_small_to_earn_writes_no_entry():
    member = MemberFactory()
    order = record_order(member, "0.99", timezone.now()).order
    assert earned(order) == 0
    assert not PointsEntry.objects.filter(member=member).exists()


def test_the_highest_current_grant_counts():
    member = MemberFactory()
    now = timezone.now()
    grant(member, "1.50", now - dt.timedelta(days=1), now + dt.timedelta(days=1), "a")
    grant(member, "3.00", now - dt.timedelta(days=1), now + dt.timedelta(days=1), "b")
    grant(member, "9.00", now + dt.timedelta(days=1), now + dt.timedelta(days=2), "later")
    order = record_order(member, "10.00", now).order
    assert earned(order) == 30
    assert earned(record_order(MemberFactory(), "10.00", now).order) == 10


def test_a_grant_applies_from_its_start_and_not_at_its_end():
    member = MemberFactory()
    at = timezone.now().replace(microsecond=0)
    grant(member, "5.00", at - dt.timedelta(hours=1), at, "ended")  # ends when the order is paid
    grant(member, "3.00", at, at + dt.timedelta(hours=1), "starts")  # starts when the order is paid
    order = record_order(member, "10.00", at).order
    assert earned(order) == 30
