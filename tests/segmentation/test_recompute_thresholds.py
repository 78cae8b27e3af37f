"""The default scheme (thresholds: R ≤ 30, F ≥ 3, M ≥ 500) on hand-built members, as of 2025-06-30
in Asia/Shanghai: exactly PRODUCT.md's R, F, M and segment on every boundary."""

import datetime as dt
from decimal import Decimal

import pytest

from members.services.orders import refund_record
from segmentation.models import MemberRfm
from segmentation.services import segment_recompute

from .builders import AS_OF, days_before, local, member, order, refund_fully

pytestmark = pytest.mark.django_db


def result(who) -> MemberRfm:
    return MemberRfm.objects.select_related("segment").get(member=who)


def champion_except(*, r_days=1, orders=3, total="600.00"):
    """A member with ``orders`` orders summing to ``total``, the last ``r_days`` before D."""
    who = member()
    amounts = [(Decimal(total) / orders).quantize(Decimal("0.01"))] * orders
    amounts[-1] = Decimal(total) - sum(amounts[:-1])
    for index, amount in enumerate(amounts):
        order(who, days_ago=r_days + index * 2, amount=str(amount))
    return who


def test_recency_30_days_is_high_and_31_is_low(default_scheme):
    # given
    at_30 = champion_except(r_days=30)
    at_31 = champion_except(r_days=31)
    # when
    segment_recompute(as_of=AS_OF)
    # then
    assert (result(at_30).recency_days, result(at_30).r_score, result(at_30).segment.slug) == (30, 1, "champions")
    assert (result(at_31).recency_days, result(at_31).r_score, result(at_31).segment.slug) == (31, 0, "loyal_at_risk")


def test_frequency_2_is_low_and_3_is_high(default_scheme):
    # given
    two = champion_except(orders=2)
    three = champion_except(orders=3)
    # when
    segment_recompute(as_of=AS_OF)
    # then
    assert (result(two).frequency, result(two).f_score, result(two).segment.slug) == (2, 0, "big_spenders")
    assert (result(three).frequency, result(three).f_score, result(three).segment.slug) == (3, 1, "champions")


def test_monetary_499_99_is_low_and_500_00_is_high(default_scheme):
    # given
    below = champion_except(total="499.99")
    at = champion_except(total="500.00")
    # when
    segment_recompute(as_of=AS_OF)
    # then
    assert (result(below).monetary, result(below).m_score, result(below).segment.slug) == (
        Decimal("499.99"),
        0,
        "loyal_low_spend",
    )
    assert (result(at).monetary, result(at).m_score, result(at).segment.slug) == (Decimal("500.00"), 1, "champions")


def test_a_refund_that_drops_m_below_500_makes_m_low(default_scheme):
    # given
    who = champion_except(total="510.00")
    an_order = who.orders.order_by("paid_at").first()
    refund_record(external_id="R-1", order=an_order, amount="10.01", refunded_at=days_before(0))
    # when
    segment_recompute(as_of=AS_OF)
    # then
    assert (result(who).monetary, result(who).frequency, result(who).segment.slug) == (
        Decimal("499.99"),
        3,
        "loyal_low_spend",
    )


def test_an_order_refunded_in_full_counts_in_neither_r_nor_f(default_scheme):
    # given
    who = member()
    order(who, days_ago=100, amount="50.00")
    refund_fully(order(who, days_ago=2, amount="900.00"))
    # when
    segment_recompute(as_of=AS_OF)
    # then
    row = result(who)
    assert (row.recency_days, row.frequency, row.monetary, row.segment.slug) == (100, 1, Decimal("50.00"), "lost")


def test_the_window_is_the_last_365_paid_dates_up_to_as_of(default_scheme):
    # given: paid dates D-364 (in the window) and D-365 (just outside)
    who = member()
    order(who, days_ago=364, amount="300.00")
    order(who, days_ago=365, amount="700.00", hour=23)
    # when
    segment_recompute(as_of=AS_OF)
    # then
    row = result(who)
    assert (row.recency_days, row.first_order_days, row.frequency, row.monetary) == (364, 365, 1, Decimal("300.00"))
    assert row.segment.slug == "lost"


def test_orders_after_the_as_of_date_are_ignored(default_scheme):
    # given: one order on D at 23:59 local, one at 00:00 the next local day
    who = member()
    order(who, paid_at=local(AS_OF, 23, 59), amount="100.00")
    order(who, paid_at=local(AS_OF + dt.timedelta(days=1), 0, 0), amount="900.00")
    # when
    segment_recompute(as_of=AS_OF)
    # then
    row = result(who)
    assert (row.recency_days, row.frequency, row.monetary, row.segment.slug) == (0, 1, Decimal("100.00"), "promising")


def test_days_are_counted_in_the_brand_time_zone(default_scheme):
    # given: 16:30 UTC on D-1 is 00:30 on D in Shanghai
    who = member()
    order(who, paid_at=dt.datetime.combine(AS_OF - dt.timedelta(days=1), dt.time(16, 30), tzinfo=dt.UTC))
    # when
    segment_recompute(as_of=AS_OF)
    # then
    assert result(who).recency_days == 0


def test_members_registered_after_the_as_of_date_are_excluded(default_scheme):
    # given
    on_the_day = member(registered=local(AS_OF, 23, 59))
    next_day = member(registered=local(AS_OF + dt.timedelta(days=1), 0, 0))
    # when
    run = segment_recompute(as_of=AS_OF)
    # then
    assert MemberRfm.objects.filter(member=on_the_day).exists()
    assert not MemberRfm.objects.filter(member=next_day).exists()
    assert run.member_count == 1


def test_never_bought_is_no_purchase_and_bought_only_before_the_window_is_lost(default_scheme):
    # given
    never = member()
    only_after = member()
    order(only_after, paid_at=local(AS_OF + dt.timedelta(days=3)))
    lapsed = member()
    order(lapsed, days_ago=400, amount="5000.00")
    # when
    segment_recompute(as_of=AS_OF)
    # then
    for who in (never, only_after):
        row = result(who)
        assert (row.recency_days, row.frequency, row.monetary, row.segment.slug) == (
            None,
            0,
            Decimal("0.00"),
            "no_purchase",
        )
    row = result(lapsed)
    assert (row.recency_days, row.frequency, row.monetary) == (400, 0, Decimal("0.00"))
    assert (row.r_score, row.f_score, row.m_score, row.segment.slug) == (0, 0, 0, "lost")


def test_each_of_the_eight_cells_gets_its_segment(default_scheme):
    # given: (R days, orders, total) → expected slug
    cases = {
        (5, 3, "600.00"): "champions",
        (40, 3, "600.00"): "loyal_at_risk",
        (5, 1, "600.00"): "big_spenders",
        (40, 1, "600.00"): "win_back",
        (5, 3, "90.00"): "loyal_low_spend",
        (5, 1, "90.00"): "promising",
        (40, 3, "90.00"): "need_attention",
        (40, 1, "90.00"): "lost",
    }
    members = {key: champion_except(r_days=key[0], orders=key[1], total=key[2]) for key in cases}
    # when
    run = segment_recompute(as_of=AS_OF)
    # then
    assert {key: result(who).segment.slug for key, who in members.items()} == cases
    assert {slug: stats["count"] for slug, stats in run.segment_stats.items()} == dict.fromkeys(cases.values(), 1)
    assert run.segment_stats["win_back"] == {
        "segment_id": result(members[(40, 1, "600.00")]).segment_id,
        "count": 1,
        "avg_recency_days": "40.0",
        "avg_frequency": "1.00",
        "avg_monetary": "600.00",
    }


VALUES = ("member_id", "as_of", "recency_days", "first_order_days", "frequency", "monetary")
SCORES = ("r_score", "f_score", "m_score", "segment_id")


def test_the_same_inputs_give_the_same_output(default_scheme):
    # given
    for days in (1, 20, 45, 90, 200, 400):
        order(member(), days_ago=days, amount=str(days * 7))
    member()
    first = segment_recompute(as_of=AS_OF)
    before = list(MemberRfm.objects.order_by("member_id").values_list(*VALUES, *SCORES))
    # when
    second = segment_recompute(as_of=AS_OF)
    # then
    assert list(MemberRfm.objects.order_by("member_id").values_list(*VALUES, *SCORES)) == before
    assert len(before) == 7
    assert first.segment_stats == second.segment_stats
    assert second.transition_count == 0
