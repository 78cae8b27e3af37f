"""Explain ("why this segment") and the scheme preview (segment sizes without writing anything)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from segmentation.models import MemberRfm, RfmRun, Scheme, SegmentSnapshot, SegmentTransition
from segmentation.selectors import scheme_preview, segment_explain
from segmentation.services import segment_recompute

from .builders import AS_OF, member, order

pytestmark = pytest.mark.django_db


def test_explain_shows_values_thresholds_and_the_rule_that_matched(default_scheme):
    # given
    who = member()
    for days in (40, 41, 42):
        order(who, days_ago=days, amount="100.00")
    segment_recompute(as_of=AS_OF)
    # when
    explanation = segment_explain(member=who)
    # then
    assert explanation["values"] == {"recency_days": 40, "first_order_days": 42, "frequency": 3, "monetary": 300}
    assert {dim: score["label"] for dim, score in explanation["scores"].items()} == {"r": "L", "f": "H", "m": "L"}
    assert explanation["criteria"]["r"] == "high when R ≤ 30 days"
    assert explanation["matched_rule"] == {
        "priority": 70,
        "description": "R=L F=H M=L",
        "segment": "need_attention",
        "holds": True,
    }
    assert explanation["segment"]["name_zh"] == "一般保持用户"
    assert [rule["holds"] for rule in explanation["rules"]].count(True) == 1


def test_explain_before_any_run(default_scheme):
    assert segment_explain(member=member())["computed"] is False


def test_explain_in_quintile_mode_shows_cut_points(quintile_scheme):
    # given
    buyers = [member() for _ in range(5)]
    for index, who in enumerate(buyers):
        order(who, days_ago=index * 30, amount=f"{(index + 1) * 100}.00")
    run = segment_recompute(as_of=AS_OF)
    # when
    explanation = segment_explain(member=buyers[0])
    # then
    assert explanation["cut_points"] == run.cut_points
    assert explanation["scores"]["r"] == {"score": 5, "label": "5", "high": True}
    assert explanation["matched_rule"]["segment"] == "key_develop"


def test_the_preview_writes_nothing_and_matches_a_run(default_scheme):
    # given: current results from the default scheme
    for days, amount in ((1, "900.00"), (10, "50.00"), (90, "600.00"), (400, "20.00")):
        order(member(), days_ago=days, amount=amount)
    member()
    segment_recompute(as_of=AS_OF)
    before = [
        list(model.objects.order_by("pk").values_list())
        for model in (MemberRfm, RfmRun, SegmentSnapshot, SegmentTransition, Scheme)
    ]
    quadrants = Scheme.objects.get(slug="seed-002-four-quadrants")
    # when
    with CaptureQueriesContext(connection) as queries:
        preview = scheme_preview(scheme=quadrants, as_of=AS_OF)
    # then: only reads
    assert all(query["sql"].lstrip().upper().startswith("SELECT") for query in queries.captured_queries)
    assert [
        list(model.objects.order_by("pk").values_list())
        for model in (MemberRfm, RfmRun, SegmentSnapshot, SegmentTransition, Scheme)
    ] == before
    # and the sizes are what a real run of that scheme gives
    run = segment_recompute(as_of=AS_OF, scheme=quadrants)
    assert preview["sizes"] == {
        segment.slug: run.segment_stats.get(segment.slug, {}).get("count", 0) for segment in quadrants.segments.all()
    }
    assert preview["members"] == 5


def _posted(response) -> dict:
    """The change form's current values, as the browser would post them back."""
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        forms += [inline.formset.management_form, *inline.formset.forms]
    data = {}
    for form in forms:
        for name in form.fields:
            value = form[name].value()
            if value is None or value is False:
                continue
            data[form.add_prefix(name)] = "on" if value is True else value
    return data


def test_the_admin_previews_unsaved_edits_and_saves_nothing(default_scheme, admin_client):
    from django.urls import reverse
    from django.utils import timezone

    # given: a member whose last order was 40 days ago, 600 yuan — `win_back` with R ≤ 30
    order(member(), days_ago=40, amount="600.00", as_of=timezone.localdate())
    url = reverse("admin:segmentation_scheme_change", args=[default_scheme.pk])
    form = admin_client.get(url)
    assert 'name="_preview"' in form.content.decode()
    data = _posted(form)
    # when: the operator widens "recent" to 60 days and asks for a preview
    data["r_max_days"] = 60
    data["_preview"] = "Preview"
    response = admin_client.post(url, data)
    # then: the member counts as recent (big_spenders) in the preview…
    assert response.status_code == 200, response.content.decode()[:2000]
    assert response.context["unsaved"] is True
    assert response.context["preview"]["sizes"]["big_spenders"] == 1
    assert response.context["preview"]["sizes"]["win_back"] == 0
    # …and nothing was saved
    default_scheme.refresh_from_db()
    assert default_scheme.r_max_days == 30
    assert scheme_preview(scheme=default_scheme)["sizes"]["win_back"] == 1
