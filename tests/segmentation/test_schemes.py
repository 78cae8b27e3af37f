"""The data migration's schemes, and exactly one active scheme."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from segmentation.models import Scheme, SegmentRule
from segmentation.services import scheme_activate

pytestmark = pytest.mark.django_db


def test_the_default_scheme_is_product_md_s_and_active(default_scheme):
    # then
    assert (default_scheme.mode, default_scheme.window_days) == ("thresholds", 365)
    assert (default_scheme.r_max_days, default_scheme.f_min, str(default_scheme.m_min)) == (30, 3, "500.00")
    segments = {s.slug: (s.name_zh, s.name_en) for s in default_scheme.segments.all()}
    assert segments == {
        "champions": ("重要价值用户", "Champions"),
        "loyal_at_risk": ("重要保持用户", "Loyal at risk"),
        "big_spenders": ("重要发展用户", "Big spenders to grow"),
        "win_back": ("重要挽留用户", "High value to win back"),
        "loyal_low_spend": ("一般价值用户", "Loyal low spenders"),
        "promising": ("一般发展用户", "New and promising"),
        "need_attention": ("一般保持用户", "Need reactivation"),
        "lost": ("流失用户", "Lost"),
        "no_purchase": ("未消费会员", "No purchase yet"),
    }
    cells = {(r.r, r.f, r.m): r.segment.slug for r in default_scheme.rules.filter(kind="cell")}
    assert cells[("L", "L", "H")] == "win_back"
    assert len(cells) == 8
    assert list(Scheme.objects.filter(is_active=True)) == [default_scheme]
    assert set(Scheme.objects.filter(is_active=False).values_list("slug", flat=True)) == {
        "seed-000-five-layers",
        "seed-002-four-quadrants",
    }


def test_two_active_schemes_are_refused_by_the_database(default_scheme):
    # given
    other = Scheme.objects.get(slug="seed-000-five-layers")
    # when / then
    with pytest.raises(IntegrityError), transaction.atomic():
        Scheme.objects.filter(pk=other.pk).update(is_active=True)


def test_activating_a_scheme_deactivates_the_other(default_scheme):
    # given
    other = Scheme.objects.get(slug="seed-002-four-quadrants")
    # when
    scheme_activate(scheme=other)
    # then
    assert list(Scheme.objects.filter(is_active=True)) == [other]


def test_a_scheme_without_rules_cannot_be_activated(default_scheme):
    empty = Scheme.objects.create(name="Empty", slug="empty")
    with pytest.raises(ValidationError):
        scheme_activate(scheme=empty)
    assert Scheme.objects.get(is_active=True) == default_scheme


def test_a_rule_checks_its_conditions(default_scheme):
    rule = SegmentRule(scheme=default_scheme, segment=default_scheme.segments.first(), kind="cell", r="4-5", f="", m="")
    with pytest.raises(ValidationError) as error:
        rule.full_clean()
    assert "r" in error.value.message_dict
    rule = SegmentRule(scheme=default_scheme, segment=default_scheme.segments.first(), kind="frequency_at_least")
    with pytest.raises(ValidationError) as error:
        rule.full_clean()
    assert "value" in error.value.message_dict
