"""``seed_demo``: exact sizes, reproducible, realistic enough for RFM, and safe to re-run."""

import datetime as dt
import hashlib
import statistics
from collections import Counter
from decimal import Decimal
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count, F, Sum
from django.utils import timezone

from members.demo_data import HISTORY_DAYS, DemoData
from members.events import orders_imported
from members.mobile import normalize_mobile
from members.models import Member, Order, OrderLine, Product, Refund, Store
from members.referral_codes import ALPHABET, LENGTH
from tests.factories import MemberFactory

AS_OF = dt.date(2025, 6, 30)
TZ = ZoneInfo("Asia/Shanghai")


def seed(*extra: str, members: int = 200, orders: int = 1500, seed: int = 7) -> str:
    out = StringIO()
    call_command(
        "seed_demo",
        f"--members={members}",
        f"--orders={orders}",
        f"--seed={seed}",
        f"--as-of={AS_OF.isoformat()}",
        "--no-progress",
        "--history-only",
        *extra,
        stdout=out,
        stderr=StringIO(),
    )
    return out.getvalue()


def digest() -> str:
    """Everything a user sees of the data, independent of database ids."""
    rows = [
        sorted(
            Member.objects.values_list(
                "mobile", "name", "gender", "birthday", "registered_at", "channel", "home_store__code", "openid",
                "referral_code", "referrer__mobile",
            )
        ),
        sorted(
            Order.objects.values_list(
                "external_id", "member__mobile", "store__code", "paid_at", "amount", "refunded_amount", "status"
            )
        ),
        sorted(Refund.objects.values_list("external_id", "order__external_id", "amount", "refunded_at", "reason")),
        sorted(Store.objects.values_list("code", "name", "city", "is_active")),
    ]  # fmt: skip
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def orders_per_member() -> list[int]:
    return list(Member.objects.annotate(n=Count("orders")).values_list("n", flat=True))


@pytest.mark.django_db
def test_creates_exactly_the_requested_members_and_orders_in_several_cities():
    # when
    output = seed(members=200, orders=1500)

    # then
    assert Member.objects.count() == 200
    assert Order.objects.count() == 1500
    assert 10 <= Store.objects.count() <= 14
    assert Store.objects.values("city").distinct().count() >= 5
    assert 1 <= Store.objects.filter(is_active=False).count() <= 2
    assert all(name.endswith("店") for name in Store.objects.values_list("name", flat=True))
    assert "200 members" in output and "1500 orders" in output


@pytest.mark.django_db
def test_same_arguments_give_the_same_data_and_another_seed_does_not():
    # given
    seed()
    first = digest()

    # when
    seed("--reset")
    again = digest()
    seed("--reset", seed=8)
    other = digest()

    # then
    assert again == first
    assert other != first
    assert Member.objects.count() == 200 and Order.objects.count() == 1500


@pytest.mark.django_db
def test_mobiles_are_valid_and_unique_and_codes_unique():
    # when
    seed(members=300, orders=1000)

    # then
    mobiles = list(Member.objects.values_list("mobile", flat=True))
    assert all(normalize_mobile(mobile) == mobile for mobile in mobiles)
    assert len(set(mobiles)) == 300
    assert len({mobile[:3] for mobile in mobiles}) > 20  # many real prefixes, not one
    codes = list(Member.objects.values_list("referral_code", flat=True))
    assert len(set(codes)) == 300
    assert all(len(code) == LENGTH and set(code) <= set(ALPHABET) for code in codes)
    mini = Member.objects.filter(channel=Member.Channel.MINI_PROGRAM)
    assert mini.exists() and not mini.filter(openid=None).exists()
    assert not Member.objects.exclude(channel=Member.Channel.MINI_PROGRAM).exclude(openid=None).exists()


@pytest.mark.django_db
def test_some_members_never_buy_and_a_few_buy_very_often():
    # when
    seed(members=400, orders=4000)

    # then
    counts = orders_per_member()
    never = counts.count(0) / len(counts)
    assert 0.08 <= never <= 0.30
    buyers = sorted(n for n in counts if n)
    top_tenth = buyers[-len(buyers) // 10 :]
    assert statistics.mean(top_tenth) >= 5 * statistics.median(buyers)
    assert buyers.count(1) + buyers.count(2) >= len(buyers) // 4  # many buy once or twice


@pytest.mark.django_db
def test_referrers_registered_before_the_members_they_brought():
    # when
    seed(members=400, orders=2000)

    # then
    referred = Member.objects.exclude(referrer=None).select_related("referrer")
    assert 5 <= referred.count() <= 45  # about 5%
    assert all(m.referrer.registered_at < m.registered_at for m in referred)


@pytest.mark.django_db
def test_no_order_before_registration_or_after_the_as_of_date():
    # when
    seed()

    # then
    end_of_as_of = dt.datetime.combine(AS_OF + dt.timedelta(days=1), dt.time(), tzinfo=TZ)
    orders = Order.objects.select_related("member")
    assert all(o.member.registered_at <= o.paid_at < end_of_as_of for o in orders)
    assert all(r.order.paid_at <= r.refunded_at < end_of_as_of for r in Refund.objects.select_related("order"))
    registered = Member.objects.values_list("registered_at", flat=True)
    assert min(registered) >= end_of_as_of - dt.timedelta(days=HISTORY_DAYS + 1)
    hours = Counter(timezone.localtime(paid_at, TZ).hour for paid_at in Order.objects.values_list("paid_at", flat=True))
    assert sum(n for hour, n in hours.items() if 8 <= hour < 22) >= 0.97 * 1500  # shop hours


@pytest.mark.django_db
def test_refunds_never_exceed_the_amount_and_the_status_follows():
    # when
    seed(members=300, orders=3000)

    # then
    orders = Order.objects.annotate(refunds_total=Sum("refunds__amount"))
    assert all(o.amount > 0 and o.amount == o.amount.quantize(Decimal("0.01")) for o in orders)
    refunded = [o for o in orders if o.refunds_total]
    assert 15 <= len(refunded) <= 120  # about 2%
    for order in orders:
        assert order.refunded_amount == (order.refunds_total or 0) <= order.amount
        expected = (
            Order.Status.PAID
            if not order.refunded_amount
            else Order.Status.REFUNDED
            if order.refunded_amount == order.amount
            else Order.Status.PARTIALLY_REFUNDED
        )
        assert order.status == expected
    statuses = {o.status for o in refunded}
    assert statuses == {Order.Status.REFUNDED, Order.Status.PARTIALLY_REFUNDED}


@pytest.mark.django_db
def test_amounts_look_like_tea_and_coffee():
    # when
    seed()

    # then
    amounts = sorted(Order.objects.values_list("amount", flat=True))
    assert Decimal(25) <= statistics.median(amounts) <= Decimal(60)
    assert amounts[-1] >= 3 * statistics.median(amounts)  # a long tail of group orders
    home = Order.objects.filter(store=F("member__home_store")).count()
    assert 0.7 * 1500 <= home < 1500  # mostly at the home store, sometimes elsewhere


@pytest.mark.django_db
def test_a_tea_shop_catalogue_and_every_order_with_lines_adding_up_to_its_amount():
    # when
    seed()
    # then: a dozen products in four categories, one to wake members up
    assert Product.objects.count() == 12
    assert set(Product.objects.values_list("category", flat=True)) == {"奶茶", "果茶", "咖啡", "甜点"}
    assert Product.objects.filter(tags__contains=["唤醒商品"]).count() == 1
    # and every order has one or two lines that add up to exactly what was paid
    totals = Order.objects.annotate(lines_total=Sum("lines__amount"), line_count=Count("lines"))
    assert not totals.exclude(lines_total=F("amount")).exists()
    assert set(totals.values_list("line_count", flat=True)) == {1, 2}
    assert OrderLine.objects.values("product__category").distinct().count() == 4


@pytest.mark.django_db
def test_refuses_to_run_on_a_database_with_members_unless_reset():
    # given
    MemberFactory()

    # when / then
    with pytest.raises(CommandError, match="--reset"):
        seed()
    assert Member.objects.count() == 1 and not Order.objects.exists()

    # when
    seed("--reset")

    # then
    assert Member.objects.count() == 200 and Order.objects.count() == 1500


@pytest.mark.django_db
def test_publishes_one_orders_imported_event_after_commit(django_capture_on_commit_callbacks):
    # given
    received = []

    def handler(**payload):
        received.append(payload)

    orders_imported.subscribe(handler)

    # when
    try:
        with django_capture_on_commit_callbacks(execute=True):
            seed()
    finally:
        orders_imported.unsubscribe(handler)

    # then
    ids = Member.objects.values_list("pk", flat=True)
    assert received == [{"count": 1500, "member_ids_from": min(ids), "member_ids_to": max(ids)}]


def test_history_has_seasons_churn_and_newcomers():
    # given: the generator alone, larger than the database tests
    data = DemoData(members=4000, orders=40000, seed=3, as_of=AS_OF, tz=TZ)

    # when
    per_day, last_orders, first_orders = Counter(), [], []
    for _member, orders, _refunds in data.orders():
        for order in orders:
            per_day[data.calendar.dates[order.day]] += 1
        if orders:
            last_orders.append(data.calendar.dates[orders[-1].day])
            first_orders.append(data.calendar.dates[orders[0].day])

    # then
    def mean(days):
        return statistics.mean(per_day[day] for day in days)

    november = [dt.date(2024, 11, d) for d in range(14, 29)]
    assert per_day[dt.date(2024, 11, 11)] >= 1.8 * mean(november)  # Double 11
    assert per_day[dt.date(2024, 6, 18)] >= 1.5 * mean([dt.date(2024, 6, d) for d in range(20, 30)])  # 618
    spring_festival = [dt.date(2025, 1, 29) + dt.timedelta(days=d) for d in range(7)]
    assert mean(spring_festival) <= 0.6 * mean([dt.date(2025, 3, d) for d in range(3, 31)])
    # summer peak, against spring and late autumn on either side (so that the growth cancels out)
    summer = [dt.date(2024, month, d) for month in (7, 8) for d in range(1, 32)]
    around = [dt.date(2024, 4, d) for d in range(1, 31)] + [dt.date(2024, 11, d) for d in range(12, 31)]
    assert mean(summer) >= 1.15 * mean(around)
    saturdays = [d for d in per_day if d.weekday() == 5]
    tuesdays = [d for d in per_day if d.weekday() == 1]
    assert mean(saturdays) > 1.15 * mean(tuesdays)
    churned = sum(1 for day in last_orders if (AS_OF - day).days > 90)
    assert 0.2 <= churned / len(last_orders) <= 0.7
    newcomers = sum(1 for day in first_orders if (AS_OF - day).days <= 30)
    assert newcomers >= 0.03 * len(first_orders)
    assert sum(orders for _day, orders in per_day.items()) == 40000
