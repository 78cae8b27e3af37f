"""The growth report between two RFM runs (seed 001: 各层金额/频率变化及增长率) and the referral
report by the referrer's segment (seed 002: 推荐新客数 and their value)."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from tests.factories import (
    MemberFactory,
    MemberRfmFactory,
    OrderFactory,
    ReferralFactory,
    RfmRunFactory,
    SchemeFactory,
    SegmentFactory,
)
from workspace.reports import default_runs, growth_csv_rows, growth_report, referral_csv_rows, referral_report

pytestmark = pytest.mark.django_db


def stats(count: int, frequency: str, monetary: str) -> dict:
    return {"count": count, "avg_recency_days": "20.0", "avg_frequency": frequency, "avg_monetary": monetary}


@pytest.fixture
def two_runs():
    scheme = SchemeFactory()
    loyal = SegmentFactory(scheme=scheme, slug="loyal", name_zh="重要价值", name_en="Loyal", ordering=1)
    SegmentFactory(scheme=scheme, slug="fresh", name_zh="新客", name_en="New", ordering=2)
    now = timezone.now()
    a = RfmRunFactory(
        scheme=scheme,
        as_of=dt.date(2026, 10, 1),
        started_at=now - dt.timedelta(days=30),
        segment_stats={"loyal": stats(10, "3.00", "500.00"), "": stats(4, "0.00", "0.00")},
    )
    b = RfmRunFactory(
        scheme=scheme,
        as_of=dt.date(2026, 11, 1),
        started_at=now,
        is_current=True,
        segment_stats={"loyal": stats(15, "2.40", "420.50"), "fresh": stats(6, "1.00", "80.00")},
    )
    return a, b, loyal


def row(report, slug):
    return next(item for item in report["segments"] if item["slug"] == slug)


def test_a_segment_that_grew_from_10_to_15_members_shows_fifty_percent(two_runs):
    a, b, _loyal = two_runs
    report = growth_report(from_run=a, to_run=b)
    loyal = row(report, "loyal")
    assert (loyal["size_a"], loyal["size_b"], loyal["size_change"]) == (10, 15, 5)
    assert loyal["size_growth"] == Decimal("0.5000")
    # total spend: ¥5,000.00 → ¥6,307.50 (+26.15%); average frequency 3.00 → 2.40 (−20%)
    assert (loyal["spend_a"], loyal["spend_b"]) == (Decimal("5000.00"), Decimal("6307.50"))
    assert loyal["spend_change"] == Decimal("1307.50")
    assert loyal["spend_growth"] == Decimal("0.2615")
    assert loyal["frequency_growth"] == Decimal("-0.2000")


def test_a_segment_empty_in_the_first_run_has_no_growth_rate_but_is_new(two_runs):
    a, b, _loyal = two_runs
    fresh = row(growth_report(from_run=a, to_run=b), "fresh")
    assert (fresh["size_a"], fresh["size_b"], fresh["size_growth"], fresh["new"]) == (0, 6, None, True)
    unsegmented = row(growth_report(from_run=a, to_run=b), "")
    assert (unsegmented["size_a"], unsegmented["size_b"], unsegmented["size_growth"]) == (4, 0, Decimal("-1.0000"))


def test_the_default_runs_are_the_current_one_and_the_one_before(two_runs):
    a, b, _loyal = two_runs
    RfmRunFactory(scheme=a.scheme, status="failed", started_at=timezone.now() - dt.timedelta(days=2))
    assert default_runs() == (a, b)


def test_growth_csv_has_one_row_per_segment(two_runs):
    a, b, _loyal = two_runs
    rows = growth_csv_rows(growth_report(from_run=a, to_run=b))
    header = rows[2]
    loyal = dict(zip(header, rows[3], strict=True))
    assert loyal["size_growth"] == "0.5000" and loyal["spend_b"] == "6307.50"


def days_ago(days: float) -> dt.datetime:
    return timezone.now() - dt.timedelta(days=days)


def test_referrals_are_counted_by_the_referrers_segment():
    # given: a referrer in segment 重要价值 who brought two new members this month (one bought
    # twice, one not yet) and one last year; a referrer without a segment who brought one
    run = RfmRunFactory(is_current=True)
    loyal_referrer = MemberRfmFactory(run=run).member
    segment = loyal_referrer.rfm.segment
    other = SegmentFactory(scheme=run.scheme, slug="other")
    bought = ReferralFactory(referrer=loyal_referrer, referee=MemberFactory(registered_at=days_ago(10))).referee
    OrderFactory(member=bought, paid_at=days_ago(9), amount=Decimal("88.00"))
    OrderFactory(member=bought, paid_at=days_ago(2), amount=Decimal("40.00"))
    ReferralFactory(referrer=loyal_referrer, referee=MemberFactory(registered_at=days_ago(5)))
    ReferralFactory(referrer=loyal_referrer, referee=MemberFactory(registered_at=days_ago(400)))  # before the period
    plain = ReferralFactory(referee=MemberFactory(registered_at=days_ago(3))).referee
    OrderFactory(  # refunded in full: not a first order
        member=plain, paid_at=days_ago(3), amount=Decimal("20.00"), refunded_amount=Decimal("20.00"), status="refunded"
    )
    OrderFactory(member=plain, paid_at=days_ago(1), amount=Decimal("30.00"), refunded_amount=Decimal("5.00"))
    # when: the last 30 days
    today = timezone.localdate()
    report = referral_report(start=today - dt.timedelta(days=29), end=today)
    # then
    ours = next(item for item in report["segments"] if item["segment_id"] == segment.pk)
    assert (ours["referrers"], ours["referred"], ours["buyers"]) == (1, 2, 1)
    assert ours["first_order_value"] == Decimal("88.00")
    assert ours["spend"] == Decimal("128.00")
    assert ours["conversion_rate"] == Decimal("0.5000")
    none = next(item for item in report["segments"] if item["segment_id"] is None)
    assert (none["referred"], none["buyers"], none["first_order_value"]) == (1, 1, Decimal("25.00"))
    empty = next(item for item in report["segments"] if item["segment_id"] == other.pk)
    assert (empty["referred"], empty["conversion_rate"]) == (0, None)
    assert report["total"]["referred"] == 3
    rows = referral_csv_rows(report)
    assert rows[2][4] == "referred"
