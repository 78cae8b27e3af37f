"""Thresholds with three levels (issue #19, seed 001's optional 高/中/低): with a medium limit a
dimension scores high (2), medium (1) or low (0), rules say H, M or L, exports write H/M/L and
the explanation 高/中/低 — while a two-level dimension (no medium limit) behaves as before."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from segmentation.models import MemberRfm, Scheme, Segment, SegmentRule
from segmentation.selectors import rfm_export_rows, segment_explain
from segmentation.services import member_rfm_refresh, segment_recompute

from .builders import AS_OF, RFM_FIELDS, ago, member, order

pytestmark = pytest.mark.django_db


@pytest.fixture
def three_levels(default_scheme) -> Scheme:
    """The default scheme with medium limits (R ≤ 90 days, F ≥ 2, M ≥ ¥200) and a first rule
    "R, F and M all medium → 稳定客户"."""
    Scheme.objects.filter(pk=default_scheme.pk).update(r_mid_days=90, f_mid_min=2, m_mid_min=Decimal("200.00"))
    default_scheme.refresh_from_db()
    steady = Segment.objects.create(scheme=default_scheme, slug="steady", name_zh="稳定客户", name_en="Steady")
    SegmentRule.objects.create(scheme=default_scheme, segment=steady, priority=1, kind="cell", r="M", f="M", m="M")
    return default_scheme


def buyer(days_and_amounts):
    who = member()
    for days, amount in days_and_amounts:
        order(who, days_ago=days, amount=amount)
    return who


def row(who) -> MemberRfm:
    return MemberRfm.objects.select_related("segment").get(member=who)


def test_each_dimension_scores_high_medium_or_low(three_levels):
    # given
    medium = buyer([(60, "150.00"), (70, "150.00")])  # R 60 (中), F 2 (中), M 300 (中)
    high = buyer([(5, "200.00"), (6, "200.00"), (7, "200.00")])  # R 5, F 3, M 600: 高 everywhere
    low = buyer([(200, "50.00")])  # R 200, F 1, M 50: 低 everywhere
    # when
    segment_recompute(as_of=AS_OF)
    # then: stored 2 / 1 / 0, and the rules read them
    assert (row(medium).r_score, row(medium).f_score, row(medium).m_score, row(medium).segment.slug) == (
        1,
        1,
        1,
        "steady",
    )
    assert (row(high).r_score, row(high).f_score, row(high).m_score, row(high).segment.slug) == (2, 2, 2, "champions")
    assert (row(low).r_score, row(low).f_score, row(low).m_score, row(low).segment.slug) == (0, 0, 0, "lost")


def test_medium_is_not_low_for_the_high_low_rules(three_levels):
    # given: R medium, F and M high — "R=L F=H M=H" (重要保持用户) does not hold, nor does "R=H"
    who = buyer([(45, "300.00"), (50, "300.00"), (55, "300.00")])
    # when
    segment_recompute(as_of=AS_OF)
    # then: no shipped cell holds for a medium R; the rules fall through to no segment
    assert (row(who).r_score, row(who).f_score, row(who).m_score) == (1, 2, 2)
    assert row(who).segment is None


def test_without_medium_limits_a_scheme_behaves_as_before(default_scheme):
    # given: the same member under the shipped two-level scheme
    who = buyer([(60, "150.00"), (70, "150.00")])
    # when
    segment_recompute(as_of=AS_OF)
    # then: 1 = H, 0 = L, as always
    assert (row(who).r_score, row(who).f_score, row(who).m_score, row(who).segment.slug) == (0, 0, 0, "lost")


def test_the_export_writes_h_m_l_and_the_explanation_reads_gao_zhong_di(three_levels):
    # given
    who = buyer([(60, "150.00"), (70, "150.00"), (3, "600.00")])  # R 3 (高), F 3 (高), M 900 (高)
    medium = buyer([(60, "150.00"), (70, "150.00")])
    segment_recompute(as_of=AS_OF)
    # when
    _run, rows = rfm_export_rows()
    exported = {mobile: scores for mobile, _r, _f, _m, *scores, _slug in rows}
    with translation.override("zh-hans"):
        explanation = segment_explain(member=medium)
        levels = [str(explanation["levels"][dim]["name"]) for dim in "rfm"]
        criteria = explanation["criteria"]["r"]
    # then
    assert exported[who.mobile] == ["H", "H", "H"]
    assert exported[medium.mobile] == ["M", "M", "M"]
    assert levels == ["中", "中", "中"]
    assert "90" in criteria
    assert explanation["matched_rule"]["segment"] == "steady"


def test_a_rule_may_say_m_only_where_the_dimension_has_a_medium_level(default_scheme):
    # given: the shipped scheme has no medium limits
    segment = default_scheme.segments.get(slug="lost")
    rule = SegmentRule(scheme=default_scheme, segment=segment, priority=5, kind="cell", r="M")
    # then
    with pytest.raises(ValidationError) as refused:
        rule.full_clean()
    assert "r" in refused.value.message_dict
    # and with one for R it is accepted
    Scheme.objects.filter(pk=default_scheme.pk).update(r_mid_days=90)
    rule.scheme.refresh_from_db()
    rule.full_clean()


def test_a_medium_limit_must_sit_between_high_and_low(default_scheme):
    default_scheme.r_mid_days = 20  # R high up to 30 days: medium must allow more
    default_scheme.f_mid_min = 3  # F high from 3: medium must start below
    default_scheme.m_mid_min = Decimal("600.00")
    with pytest.raises(ValidationError) as refused:
        default_scheme.full_clean()
    assert set(refused.value.message_dict) >= {"r_mid_days", "f_mid_min", "m_mid_min"}


def test_the_per_order_refresh_scores_three_levels_as_a_run_does(three_levels):
    # given: a run of today; a member comes back after 60 days
    who = member()
    order(who, paid_at=ago(200), amount="150.00")
    segment_recompute()
    assert row(who).segment.slug == "lost"
    # when
    order(who, paid_at=ago(0), amount="100.00")
    assert member_rfm_refresh(member_id=who.pk)
    # then: R high (2), F medium (1: two orders), M medium (1: ¥250), as a run computes
    refreshed = list(MemberRfm.objects.filter(member=who).values_list(*RFM_FIELDS))
    assert refreshed[0][4:7] == (2, 1, 1)
    segment_recompute()
    assert list(MemberRfm.objects.filter(member=who).values_list(*RFM_FIELDS)) == refreshed
