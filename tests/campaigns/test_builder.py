"""The campaign builder: the estimate of unsaved choices (the same figures ``campaign_estimate``
gives once saved, in a bounded number of queries), the segments of the chosen scheme only, by
name; the launch behind a confirmation and the change permission; the effect report for people."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from campaigns.admin.campaigns import CampaignBuilderForm
from campaigns.models import Campaign, CampaignBenefit, CouponTemplate
from campaigns.services.campaigns import campaign_estimate
from segmentation.models import Scheme, SegmentTransition
from tests.campaigns.test_effect import scenario, two_runs  # noqa: F401  (hand-built effect scenarios)
from tests.factories import MemberFactory, StoreFactory
from tests.workspace.builders import role_user

ESTIMATE_URL = "admin:campaigns_campaign_builder_estimate"
SEGMENTS_URL = "admin:campaigns_campaign_builder_segments"


def benefit_rows(*rows: dict) -> dict:
    """The inline formset's fields as the builder posts them (``benefits-N-…``)."""
    data = {"benefits-TOTAL_FORMS": str(len(rows)), "benefits-INITIAL_FORMS": "0"}
    for index, row in enumerate(rows):
        data.update({f"benefits-{index}-{name}": value for name, value in row.items()})
    return data


@pytest.fixture
def twenty_off(db):
    return CouponTemplate.objects.create(name="¥20 off", slug="builder-twenty-off", amount=Decimal("20.00"))


@pytest.fixture
def crowd(place):
    """Four lost members (one of them at the flagship store) and three champions."""
    flagship = StoreFactory(code="FLAG")
    lost = [MemberFactory() for _ in range(3)] + [MemberFactory(home_store=flagship)]
    champions = [MemberFactory() for _ in range(3)]
    for member in lost:
        place(member, "lost")
    for member in champions:
        place(member, "champions")
    return {"flagship": flagship, "lost": lost, "champions": champions}


def choices(segments, twenty_off, **extra) -> dict:
    """Lost and champions, 10% held out; a ¥20 coupon and 500 points (¥5); a third row deleted."""
    data = {
        "scheme": str(segments["lost"].scheme_id),
        "target_kind": "segment",
        "segments": [str(segments["lost"].pk), str(segments["champions"].pk)],
        "control_percent": "10",
        "budget_money": "",
        "budget_count": "",
        **benefit_rows(
            {"kind": "coupon", "coupon_template": str(twenty_off.pk), "unit_cost": ""},
            {"kind": "points", "points": "500", "unit_cost": ""},
            {"kind": "points", "points": "9000", "DELETE": "on"},
        ),
    }
    data.update(extra)
    return data


# --- the estimate of unsaved choices -------------------------------------------------------------------


@pytest.mark.django_db
def test_the_estimate_prices_unsaved_choices_as_the_saved_campaign_is_priced(staff_client, segments, crowd, twenty_off):
    # given: nothing saved
    count_before = Campaign.objects.count()
    # when
    response = staff_client.post(reverse(ESTIMATE_URL), choices(segments, twenty_off))
    # then: 7 members, 1 held out (10%), 6 granted at ¥25: ¥150
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="estimate-reach">7<' in html
    assert 'id="estimate-control">1<' in html
    assert 'id="estimate-treated">6<' in html
    assert 'id="estimate-unit-cost">¥25.00<' in html
    assert 'id="estimate-cost">¥150.00<' in html
    assert Campaign.objects.count() == count_before
    # and the same choices, saved, give the same estimate
    campaign = Campaign.objects.create(name="Saved", slug="saved", control_percent=10)
    campaign.segments.set([segments["lost"], segments["champions"]])
    CampaignBenefit.objects.create(campaign=campaign, kind="coupon", coupon_template=twenty_off)
    CampaignBenefit.objects.create(campaign=campaign, kind="points", points=500)
    saved = campaign_estimate(campaign=campaign)
    assert (saved.reach, saved.control, saved.treated, saved.unit_cost, saved.cost) == (7, 1, 6, 25, 150)


@pytest.mark.django_db
def test_the_estimate_follows_the_narrowing_and_the_budget(staff_client, segments, crowd, twenty_off):
    url = reverse(ESTIMATE_URL)
    # when: only the flagship store's members
    narrowed = staff_client.post(url, choices(segments, twenty_off, stores=[str(crowd["flagship"].pk)]))
    # then
    assert 'id="estimate-reach">1<' in narrowed.content.decode()
    # when: ¥60 of budget for ¥25 grants
    limited = staff_client.post(url, choices(segments, twenty_off, budget_money="60"))
    # then: two grants fit
    html = limited.content.decode()
    assert 'id="estimate-treated">2<' in html and 'id="estimate-cost">¥50.00<' in html
    assert 'id="estimate-limited"' in html
    # when: a value still being typed is left out, not refused
    typing = staff_client.post(url, choices(segments, twenty_off, control_percent="1x"))
    assert 'id="estimate-control">0<' in typing.content.decode()


@pytest.mark.django_db
def test_the_estimate_of_an_edited_campaign_counts_its_spend_so_far(staff_client, segments, crowd, twenty_off):
    # given: a campaign that has spent ¥40 of ¥100
    campaign = Campaign.objects.create(
        name="Half spent", slug="half-spent", budget_money=Decimal("100.00"), spent_money=Decimal("40.00")
    )
    # when: edited, not saved
    response = staff_client.post(
        f"{reverse(ESTIMATE_URL)}?campaign={campaign.pk}", choices(segments, twenty_off, budget_money="100")
    )
    # then: ¥60 left, two ¥25 grants
    assert 'id="estimate-treated">2<' in response.content.decode()


@pytest.mark.django_db
def test_the_estimate_of_a_transition_counts_recent_entries(staff_client, segments, rfm_run, twenty_off):
    # given: two members entered "lost" lately, one long ago
    members = [MemberFactory() for _ in range(3)]
    for member in members:
        SegmentTransition.objects.create(run=rfm_run, member=member, to_segment=segments["lost"])
    SegmentTransition.objects.filter(member=members[2]).update(created_at=timezone.now() - dt.timedelta(days=45))
    data = choices(segments, twenty_off, target_kind="transition", target_transition_to=str(segments["lost"].pk))
    # when
    response = staff_client.post(reverse(ESTIMATE_URL), data)
    # then
    html = response.content.decode()
    assert 'id="estimate-reach">2<' in html


@pytest.mark.django_db
def test_the_estimate_takes_the_same_queries_whatever_the_data(staff_client, segments, place, twenty_off):
    url = reverse(ESTIMATE_URL)
    staff_client.post(url, choices(segments, twenty_off))  # warm up: session, user

    def queries_for_estimate(members: int, rows: int) -> int:
        for _ in range(members):
            place(MemberFactory(), "lost")
        data = choices(segments, twenty_off)
        data.update(benefit_rows(*[{"kind": "coupon", "coupon_template": str(twenty_off.pk)}] * rows))
        with CaptureQueriesContext(connection) as queries:
            response = staff_client.post(url, data)
        assert response.status_code == 200
        return len(queries)

    small = queries_for_estimate(members=1, rows=1)
    large = queries_for_estimate(members=40, rows=12)
    assert small == large
    assert large <= 6


@pytest.mark.django_db
def test_the_estimate_needs_a_builder(client, segments, twenty_off):
    role_user("analyst", username="reader")
    client.login(username="reader", password="pw-workspace-1")
    response = client.post(reverse(ESTIMATE_URL), choices(segments, twenty_off))
    assert response.status_code == 403


# --- the segments of the chosen scheme ------------------------------------------------------------------


@pytest.mark.django_db
def test_only_the_chosen_schemes_segments_are_offered_by_name(staff_client, segments):
    # given: the active scheme and another one
    active = segments["lost"].scheme
    other = Scheme.objects.exclude(pk=active.pk).prefetch_related("segments").first()
    assert other is not None and other.segments.exists()
    # when: a new campaign
    page = staff_client.get(reverse("admin:campaigns_campaign_add"))
    form = page.context["adminform"].form
    # then: the active scheme's segments, labelled by name (English here)
    assert set(form.fields["segments"].queryset) == set(active.segments.all())
    assert form.fields["scheme"].initial == active.pk
    assert segments["lost"].name_en in page.content.decode()
    # when: the operator picks the other scheme
    swapped = staff_client.get(reverse(SEGMENTS_URL), {"scheme": other.pk})
    # then: its segments only, by name, and the "entering" select swapped out of band
    html = swapped.content.decode()
    assert all(segment.name_en in html for segment in other.segments.all())
    assert segments["lost"].name_en not in html
    assert 'id="id_target_transition_to"' in html and 'hx-swap-oob="outerHTML"' in html
    assert swapped["HX-Trigger-After-Settle"] == "segments-changed"
    # and in Chinese, the Chinese names
    chinese = staff_client.get("/zh-hans" + reverse(SEGMENTS_URL), {"scheme": other.pk})
    first = other.segments.first()
    assert first.name_zh in chinese.content.decode() or first.name_zh == first.name_en


@pytest.mark.django_db
def test_a_segment_of_another_scheme_is_refused(segments, twenty_off):
    other = Scheme.objects.exclude(pk=segments["lost"].scheme_id).first()
    data = {
        "name": "Mixed",
        "slug": "mixed",
        "scheme": str(other.pk),
        "target_kind": "segment",
        "segments": [str(segments["lost"].pk)],
        "per_member_cap": "1",
        "control_percent": "0",
    }
    form = CampaignBuilderForm(data=data)
    assert not form.is_valid()
    assert "segments" in form.errors


@pytest.mark.django_db
def test_a_campaign_with_a_chinese_name_gets_a_slug(staff_client, segments, twenty_off):
    data = {
        "name": "春季召回",
        "slug": "",
        "scheme": str(segments["lost"].scheme_id),
        "target_kind": "segment",
        "segments": [str(segments["lost"].pk)],
        "per_member_cap": "1",
        "control_percent": "10",
        **benefit_rows({"kind": "coupon", "coupon_template": str(twenty_off.pk), "follow_up_due_days": "3"}),
        "benefits-MIN_NUM_FORMS": "0",
        "benefits-MAX_NUM_FORMS": "1000",
    }
    first = staff_client.post(reverse("admin:campaigns_campaign_add"), data)
    second = staff_client.post(reverse("admin:campaigns_campaign_add"), data)
    assert first.status_code == second.status_code == 302
    slugs = list(Campaign.objects.filter(name="春季召回").order_by("pk").values_list("slug", flat=True))
    day = f"campaign-{timezone.localdate():%Y%m%d}"
    assert slugs == [day, f"{day}-2"]


# --- launch: a confirmation, and the permission ---------------------------------------------------------


@pytest.fixture
def draft(segments, twenty_off):
    campaign = Campaign.objects.create(name="Draft recall", slug="draft-recall", control_percent=10)
    campaign.segments.set([segments["lost"]])
    CampaignBenefit.objects.create(campaign=campaign, kind="coupon", coupon_template=twenty_off)
    return campaign


@pytest.mark.django_db
def test_launch_asks_for_a_confirmation_first(staff_client, draft):
    url = reverse("admin:campaigns_campaign_launch_campaign", args=[draft.pk])
    # when: the button opens the dialog
    dialog = staff_client.get(url)
    # then: the confirmation, with the estimate; nothing launched
    assert dialog.status_code == 200
    assert 'id="dialog"' in dialog.content.decode() and 'id="estimate-reach"' in dialog.content.decode()
    draft.refresh_from_db()
    assert draft.status == Campaign.Status.DRAFT
    # when: a post without the confirmation
    staff_client.post(url, {})
    draft.refresh_from_db()
    assert draft.status == Campaign.Status.DRAFT
    # when: confirmed (through htmx, as the dialog posts)
    confirmed = staff_client.post(url, {"_form_submitted": "on"}, HTTP_HX_REQUEST="true")
    # then
    draft.refresh_from_db()
    assert draft.status == Campaign.Status.RUNNING
    assert confirmed["HX-Redirect"] == reverse("admin:campaigns_campaign_change", args=[draft.pk])


@pytest.mark.django_db
def test_the_page_offers_the_buttons_its_status_allows(staff_client, draft):
    change = reverse("admin:campaigns_campaign_change", args=[draft.pk])
    launch = reverse("admin:campaigns_campaign_launch_campaign", args=[draft.pk])
    pause = reverse("admin:campaigns_campaign_pause_campaign", args=[draft.pk])
    page = staff_client.get(change).content.decode()
    assert launch in page and pause not in page
    staff_client.post(launch, {"_form_submitted": "on"})
    page = staff_client.get(change).content.decode()
    assert launch not in page and pause in page
    assert reverse("admin:campaigns_campaigneffect_report", args=[draft.pk]) in page


@pytest.mark.django_db
def test_a_launch_the_service_refuses_is_reported(staff_client, segments):
    campaign = Campaign.objects.create(name="No benefit", slug="no-benefit")
    campaign.segments.set([segments["lost"]])
    url = reverse("admin:campaigns_campaign_launch_campaign", args=[campaign.pk])
    response = staff_client.post(url, {"_form_submitted": "on"}, follow=True)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT
    assert "Add at least one benefit." in response.content.decode()


@pytest.mark.django_db
def test_launch_needs_the_change_permission(client, draft):
    role_user("analyst", username="reader")
    client.login(username="reader", password="pw-workspace-1")
    url = reverse("admin:campaigns_campaign_launch_campaign", args=[draft.pk])
    assert client.get(url).status_code == 403
    assert client.post(url, {"_form_submitted": "on"}).status_code == 403
    draft.refresh_from_db()
    assert draft.status == Campaign.Status.DRAFT


# --- the effect report ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_effect_report_is_written_for_people(staff_client, scenario):  # noqa: F811
    url = reverse("admin:campaigns_campaigneffect_report", args=[scenario.pk])
    # when
    response = staff_client.get(url, {"days": 14})
    # then: uplift ¥50 (+250% on the control's ¥20), CI ¥8.17 … ¥91.83, ¥500 incremental, ¥90 cost, ROI +455.6%
    page = response.content.decode()
    assert 'id="uplift-per-member">+¥50.00<' in page
    assert "+250.0%" in page
    assert "¥8.17 … ¥91.83" in page and "+40.9% … +459.2%" in page
    assert 'id="incremental-revenue">¥500.00<' in page
    assert 'id="effect-cost">¥90.00<' in page
    assert 'id="effect-roi">+455.6%<' in page
    assert "70.0%" in page and "50.0%" in page  # conversion, treated and control
    # and the chart of treated vs control: conversion rate (%) and revenue per member (¥)
    charts = response.context
    assert '"data": [70.0, 50.0]' in charts["conversion_chart"]["data"]
    assert '"data": [70.0, 20.0]' in charts["revenue_chart"]["data"]
    assert page.count('data-type="bar"') == 2
    # in Chinese
    chinese = staff_client.get("/zh-hans" + url, {"days": 14}).content.decode()
    assert "人均增量" in chinese and "置信区间" in chinese and "+455.6%" in chinese


@pytest.mark.django_db
def test_the_segment_report_names_segments_and_writes_rates_for_people(staff_client, two_runs):  # noqa: F811
    a, b = two_runs
    url = reverse("admin:campaigns_campaigneffect_segments")
    page = staff_client.get(url, {"from_run": a.pk, "to_run": b.pk}).content.decode()
    # champions at A: m1 bought again within 7 days, m2 and m3 did not: 33.3%
    assert "Champions" in page and "33.3%" in page
    assert ">champions<" not in page  # names, not slugs
    chinese = staff_client.get("/zh-hans" + url, {"from_run": a.pk, "to_run": b.pk}).content.decode()
    assert "重要价值用户" in chinese and "流失用户" in chinese
