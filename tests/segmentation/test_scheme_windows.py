"""A window per dimension (issue #19, seed 001): "F = orders in the last 30 days, M = spend over
365 days". Every place that computes F and M honours the scheme's own windows: the recompute in
one piece and split across workers, the per-order refresh, the preview, the explanation and the
quintile cut points — and the recompute reads no more queries for it."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from segmentation.models import MemberRfm, RfmRun, Scheme
from segmentation.selectors import scheme_preview, segment_explain
from segmentation.services import member_rfm_refresh, segment_recompute
from segmentation.tasks import segment_recompute_task

from .builders import AS_OF, RFM_FIELDS, ago, member, order

pytestmark = pytest.mark.django_db


def own_windows(scheme: Scheme, *, f: int | None = 30, m: int | None = 365) -> Scheme:
    Scheme.objects.filter(pk=scheme.pk).update(f_window_days=f, m_window_days=m)
    scheme.refresh_from_db()
    return scheme


def regular_gone_quiet():
    """Three orders 40–60 days ago, ¥400 each: a big spender who has not been back for a month."""
    who = member()
    for days in (40, 50, 60):
        order(who, days_ago=days, amount="400.00")
    return who


def row(who) -> MemberRfm:
    return MemberRfm.objects.select_related("segment").get(member=who)


def test_f_over_30_days_and_m_over_365_make_a_quiet_big_spender_f_low_and_m_high(default_scheme):
    # given: the default scheme (F high from 3 orders, M high from ¥500), F over 30 days, M over 365
    quiet = regular_gone_quiet()
    own_windows(default_scheme)
    # when
    segment_recompute(as_of=AS_OF)
    # then: no order in the last 30 days (F low), ¥1200 over the year (M high)
    result = row(quiet)
    assert (result.frequency, result.monetary) == (0, Decimal("1200.00"))
    assert (result.r_score, result.f_score, result.m_score) == (0, 0, 1)
    assert result.segment.slug == "win_back"  # 重要挽留用户, not 重要保持用户


def test_with_one_window_the_same_member_is_f_high(default_scheme):
    # given: the scheme as shipped (F and M over 365 days)
    quiet = regular_gone_quiet()
    # when
    segment_recompute(as_of=AS_OF)
    # then
    assert (row(quiet).frequency, row(quiet).f_score, row(quiet).segment.slug) == (3, 1, "loyal_at_risk")


def test_f_counts_only_the_orders_of_its_window(default_scheme):
    # given: three orders this month and one long ago
    who = member()
    for days in (5, 10, 20, 200):
        order(who, days_ago=days, amount="100.00")
    own_windows(default_scheme)
    # when
    segment_recompute(as_of=AS_OF)
    # then: F = 3 (high), M = ¥400 over the year (low)
    assert (row(who).frequency, row(who).monetary, row(who).segment.slug) == (3, Decimal("400.00"), "loyal_low_spend")


def test_a_split_run_gives_the_one_piece_runs_numbers(default_scheme):
    # given
    members = [regular_gone_quiet() for _ in range(3)]
    for index, who in enumerate(members):
        order(who, days_ago=3 + index, amount="50.00")
    order(member(), days_ago=100, amount="900.00")
    member()  # never bought
    Scheme.objects.filter(pk=default_scheme.pk).update(f_window_days=30, m_window_days=90)
    single = segment_recompute(as_of=AS_OF)
    expected = list(MemberRfm.objects.order_by("member_id").values_list(*RFM_FIELDS))
    # when: three workers
    run_id = segment_recompute_task.delay(as_of=AS_OF.isoformat(), chunks=3).get()
    # then
    assert RfmRun.objects.get(pk=run_id).status == RfmRun.Status.SUCCEEDED
    assert list(MemberRfm.objects.order_by("member_id").values_list(*RFM_FIELDS)) == expected
    assert RfmRun.objects.get(pk=run_id).segment_stats == single.segment_stats
    # and the ¥900 of 100 days ago is outside M's 90 days
    assert MemberRfm.objects.filter(monetary=Decimal("0.00"), frequency=0, recency_days=100).count() == 1


def test_the_per_order_refresh_counts_f_and_m_over_their_windows(default_scheme):
    # given: a run of today with F over 30 days, M over 365
    own_windows(default_scheme)
    quiet = member()
    for days in (40, 50, 60):
        order(quiet, paid_at=ago(days), amount="400.00")
    segment_recompute()
    assert row(quiet).segment.slug == "win_back"
    # when: an order today
    order(quiet, paid_at=ago(0), amount="30.00")
    assert member_rfm_refresh(member_id=quiet.pk)
    # then: F = 1 (only this month's order), M = the year's ¥1230
    refreshed = row(quiet)
    assert (refreshed.frequency, refreshed.monetary) == (1, Decimal("1230.00"))
    assert (refreshed.r_score, refreshed.f_score, refreshed.m_score, refreshed.segment.slug) == (
        1,
        0,
        1,
        "big_spenders",
    )
    # and a run computes the same
    refreshed_values = list(MemberRfm.objects.filter(member=quiet).values_list(*RFM_FIELDS))
    segment_recompute()
    assert list(MemberRfm.objects.filter(member=quiet).values_list(*RFM_FIELDS)) == refreshed_values


def test_the_preview_and_the_explanation_use_the_windows(default_scheme):
    # given
    quiet = regular_gone_quiet()
    own_windows(default_scheme)
    # when
    preview = scheme_preview(scheme=default_scheme, as_of=AS_OF)
    segment_recompute(as_of=AS_OF)
    explanation = segment_explain(member=quiet)
    # then
    assert preview["sizes"]["win_back"] == 1 and preview["sizes"]["loyal_at_risk"] == 0
    assert (explanation["f_window_days"], explanation["m_window_days"]) == (30, 365)
    assert explanation["values"]["frequency"] == 0
    assert explanation["matched_rule"]["segment"] == "win_back"


def test_quintile_cut_points_rank_everyone_who_bought_in_either_window(quintile_scheme):
    # given: R×M quadrants, F over 30 days and M over 365; two bought only 40–200 days ago
    quiet = regular_gone_quiet()  # F 0, M 1200
    recent = member()
    order(recent, days_ago=5, amount="20.00")  # F 1, M 20
    older = member()
    order(older, days_ago=200, amount="300.00")  # F 0, M 300
    own_windows(quintile_scheme)
    # when
    run = segment_recompute(as_of=AS_OF)
    # then: three buyers are ranked; the quiet big spender has the top M score and the lowest F
    assert run.cut_points["buyers"] == 3
    assert run.buyer_count == 3
    assert (row(quiet).f_score, row(quiet).m_score) == (1, 4)
    assert (row(recent).f_score, row(recent).m_score) == (4, 1)
    assert row(quiet).segment.slug == "key_win_back"  # R low, M high


def test_the_recompute_reads_as_many_queries_for_5_or_25_members(default_scheme):
    own_windows(default_scheme)

    def queries_for_a_run() -> int:
        with CaptureQueriesContext(connection) as captured:
            segment_recompute(as_of=AS_OF)
        return len(captured)

    # (a first run, and the first after the rules change, insert their transitions apart: one
    # statement more, whatever the number of members — each is measured after one such run)
    segment_recompute(as_of=AS_OF)
    for _ in range(5):
        regular_gone_quiet()
    small = queries_for_a_run()
    for _ in range(20):
        regular_gone_quiet()
    large = queries_for_a_run()
    # then: flat, and the same as with one window
    own_windows(default_scheme, f=None, m=None)
    segment_recompute(as_of=AS_OF)
    assert small == large == queries_for_a_run()
