"""The seeds' playbook: installed once, complete, and inactive until an operator turns it on."""

import pytest
from django.apps import apps as django_apps

from campaigns.models import (
    Campaign,
    CampaignBenefit,
    Coupon,
    CouponTemplate,
    ReferralRewardRule,
    Reward,
    StampCard,
    TopUpOffer,
    Trigger,
)
from campaigns.playbook import playbook_install, playbook_uninstall
from campaigns.services.campaigns import campaign_estimate, campaign_launch


@pytest.mark.django_db
def test_the_playbook_installs_once_and_everything_is_inactive(default_scheme):
    # given: a database where the data migration has not loaded it (or it was removed)
    playbook_uninstall()
    # when
    first = playbook_install()
    second = playbook_install(django_apps)

    # then: one draft campaign per default segment, each targeting its segment, with benefits
    assert first == {
        "coupon_templates": 14,
        "campaigns": 9,
        "top_up_offers": 3,
        "referral_rules": 4,
        "stamp_cards": 1,
        "triggers": 5,
        "rewards": 2,
    }
    assert second == {
        "coupon_templates": 0,
        "campaigns": 0,
        "top_up_offers": 0,
        "referral_rules": 0,
        "stamp_cards": 0,
        "triggers": 0,
        "rewards": 0,
    }
    segment_slugs = set(default_scheme.segments.values_list("slug", flat=True))
    campaigns = Campaign.objects.prefetch_related("segments", "benefits")
    assert {c.segments.get().slug for c in campaigns} == segment_slugs
    assert all(c.status == Campaign.Status.DRAFT and c.benefits.exists() and c.control_percent for c in campaigns)
    assert not TopUpOffer.objects.filter(is_active=True).exists()
    assert not ReferralRewardRule.objects.filter(is_active=True).exists()
    assert not Reward.objects.filter(is_active=True).exists()
    cheaper = Reward.objects.get(slug="points-coupon-20")
    assert (cheaper.points_price, cheaper.prices.get().segment.slug, cheaper.prices.get().points_price) == (
        500,
        "champions",
        400,
    )
    exclusive = Reward.objects.get(slug="points-champions-50")
    assert [s.slug for s in exclusive.exclusive_segments.all()] == ["champions"]
    stamp_card = StampCard.objects.get(slug="playbook-big-spenders-stamps")
    assert (stamp_card.is_active, stamp_card.stamps_required, stamp_card.bonus_points) == (False, 5, 100)
    assert [s.slug for s in stamp_card.segments.all()] == ["big_spenders"]
    assert stamp_card.coupon_template.slug == "playbook-stamp-free-item"
    recommend = Trigger.objects.get(message_template="champions_related_products")
    assert (recommend.kind, recommend.delay_days, recommend.segment.slug) == ("after_order", 3, "champions")
    assert not recommend.is_active and recommend.name and recommend.name_en
    win_back = Campaign.objects.get(slug="playbook-win-back")
    assert set(win_back.benefits.values_list("kind", flat=True)) == {"coupon", "follow_up", "message"}
    champions = Campaign.objects.get(slug="playbook-champions").benefits.get(kind="points_multiplier")
    assert champions.multiplier == 2


@pytest.mark.django_db
def test_an_edited_playbook_row_survives_a_reinstall(default_scheme):
    playbook_install()
    Campaign.objects.filter(slug="playbook-lost").update(name="My recall", control_percent=20)
    CampaignBenefit.objects.filter(campaign__slug="playbook-lost").delete()

    playbook_install()

    lost = Campaign.objects.get(slug="playbook-lost")
    assert (lost.name, lost.control_percent, lost.benefits.count()) == ("My recall", 20, 0)


@pytest.mark.django_db
def test_a_playbook_campaign_can_be_estimated_and_launched(default_scheme):
    playbook_install()
    campaign = Campaign.objects.get(slug="playbook-big-spenders")

    estimate = campaign_estimate(campaign=campaign)
    launched = campaign_launch(campaign=campaign)

    assert estimate.reach == 0 and estimate.unit_cost == 20
    assert launched.status == Campaign.Status.RUNNING


@pytest.mark.django_db
def test_uninstall_removes_what_was_never_used(default_scheme):
    playbook_install()
    campaign_launch(campaign=Campaign.objects.get(slug="playbook-lost"))

    playbook_uninstall()

    assert list(Campaign.objects.values_list("slug", flat=True)) == ["playbook-lost"]
    assert list(CouponTemplate.objects.values_list("slug", flat=True)) == ["playbook-recall-20"]
    assert not TopUpOffer.objects.exists()
    assert not ReferralRewardRule.objects.exists()
    assert not Reward.objects.exists()


# --- the admin, on the playbook's data -----------------------------------------------------------------


def _with_some_activity(place):
    """The playbook, the lost campaign launched and run for a few members, a coupon redeemed."""
    from campaigns.services.campaigns import campaign_run_batch
    from campaigns.services.coupons import coupon_redeem
    from tests.factories import MemberFactory

    playbook_install()
    TopUpOffer.objects.update(is_active=True)
    ReferralRewardRule.objects.update(is_active=True)
    members = MemberFactory.create_batch(6)
    for member in members:
        place(member, "lost")
    campaign = Campaign.objects.get(slug="playbook-lost")
    campaign_launch(campaign=campaign)
    campaign_run_batch(campaign_id=campaign.pk)
    coupon = Coupon.objects.select_related("member").first()
    coupon_redeem(member=coupon.member, coupon=coupon, amount="150.00", idempotency_key="redeem-1")
    return campaign, coupon


ADMIN_PAGES = [
    ("campaigns_coupontemplate", 10),
    ("campaigns_coupon", 10),
    ("campaigns_campaign", 10),
    ("campaigns_campaigngrant", 10),
    ("members_memberpointsmultiplier", 10),
    ("campaigns_topupoffer", 10),
    ("campaigns_offertopup", 10),
    ("campaigns_referralrewardrule", 10),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("model", "max_queries"), ADMIN_PAGES)
def test_admin_lists_render_with_bounded_queries(staff_client, place, model, max_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    # given
    _with_some_activity(place)
    url = reverse(f"admin:{model}_changelist")
    staff_client.get(url)  # warm up: content types, session

    # when
    with CaptureQueriesContext(connection) as queries:
        response = staff_client.get(url)

    # then
    assert response.status_code == 200
    assert len(queries) <= max_queries, [q["sql"][:120] for q in queries]


@pytest.mark.django_db
def test_coupon_search_by_member_mobile_in_any_spelling(staff_client, place):
    from django.urls import reverse

    _campaign, coupon = _with_some_activity(place)
    mobile = coupon.member.mobile
    spaced = f"+86 {mobile[:3]} {mobile[3:7]} {mobile[7:]}"

    response = staff_client.get(reverse("admin:campaigns_coupon_changelist"), {"q": spaced})

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [coupon]


@pytest.mark.django_db
def test_campaign_change_page_shows_the_estimate_with_bounded_queries(staff_client, place):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    # given: the recall campaign targets 6 lost members, 10% control, ¥20 each
    campaign, _coupon = _with_some_activity(place)
    url = reverse("admin:campaigns_campaign_change", args=[campaign.pk])
    staff_client.get(url)

    # when
    with CaptureQueriesContext(connection) as queries:
        response = staff_client.get(url)

    # then: the estimate above the builder, computed once for the page
    assert response.status_code == 200
    estimate = response.context["estimate"]
    assert (estimate.reach, estimate.control, estimate.treated, estimate.cost) == (6, 1, 5, 100)
    page = response.content.decode()
    assert 'id="estimate-reach">6<' in page and 'id="estimate-cost">¥100.00<' in page
    assert sum("COUNT(" in q["sql"] and "segmentation_memberrfm" in q["sql"] for q in queries) == 2, [
        q["sql"][:120] for q in queries
    ]  # the estimate's count and the segment sizes of the chooser
    assert len(queries) <= 30, len(queries)


@pytest.mark.django_db
def test_other_change_and_add_pages_render(staff_client, place):
    from django.urls import reverse

    _campaign, coupon = _with_some_activity(place)
    pages = [
        reverse("admin:campaigns_campaign_add"),
        reverse("admin:campaigns_coupontemplate_add"),
        reverse("admin:campaigns_coupontemplate_change", args=[coupon.template_id]),
        reverse("admin:campaigns_coupon_change", args=[coupon.pk]),
        reverse("admin:campaigns_topupoffer_add"),
        reverse("admin:campaigns_topupoffer_change", args=[TopUpOffer.objects.first().pk]),
        reverse("admin:campaigns_referralrewardrule_change", args=[ReferralRewardRule.objects.first().pk]),
    ]
    for page in pages:
        assert staff_client.get(page).status_code == 200, page


@pytest.mark.django_db
def test_admin_actions_launch_pause_end_and_run_now(staff_client, place, django_capture_on_commit_callbacks):
    from django.urls import reverse

    from campaigns.models import CampaignGrant
    from tests.factories import MemberFactory

    # given: the promising-members campaign, one promising member
    playbook_install()
    member = MemberFactory()
    place(member, "promising")
    campaign = Campaign.objects.get(slug="playbook-promising")
    url = reverse("admin:campaigns_campaign_changelist")

    def act(action):
        with django_capture_on_commit_callbacks(execute=True):
            return staff_client.post(url, {"action": action, "_selected_action": [campaign.pk]}, follow=True)

    # when / then
    act("launch_selected")
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.RUNNING
    act("run_now")
    assert CampaignGrant.objects.filter(campaign=campaign, member=member).count() == 1
    act("pause_selected")
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED
    act("end_selected")
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.ENDED
    response = act("pause_selected")
    assert "cannot become" in response.content.decode()


@pytest.mark.django_db
def test_an_operator_creates_a_campaign_with_benefits_in_the_admin(staff_client, segments):
    from django.urls import reverse

    # given
    shipping = CouponTemplate.objects.create(name="Free shipping", slug="free-ship", kind="free_shipping", amount=None)
    ten_off = CouponTemplate.objects.create(name="¥10 off", slug="ten-off", amount="10.00")
    data = {
        "name": "Spring recall",
        "slug": "spring-recall",
        "target_kind": "segment",
        "segments": [segments["lost"].pk],
        "per_member_cap": "1",
        "control_percent": "10",
        "benefits-TOTAL_FORMS": "2",
        "benefits-INITIAL_FORMS": "0",
        "benefits-MIN_NUM_FORMS": "0",
        "benefits-MAX_NUM_FORMS": "1000",
        "benefits-0-kind": "free_shipping",
        "benefits-0-coupon_template": str(shipping.pk),
        "benefits-0-follow_up_due_days": "3",
        "benefits-1-kind": "free_shipping",
        "benefits-1-coupon_template": str(ten_off.pk),
        "benefits-1-follow_up_due_days": "3",
    }

    # when: the second benefit is a free shipping benefit with a ¥10 template — refused
    refused = staff_client.post(reverse("admin:campaigns_campaign_add"), data)
    saved_when_refused = Campaign.objects.filter(slug="spring-recall").exists()
    data["benefits-1-kind"] = "coupon"
    accepted = staff_client.post(reverse("admin:campaigns_campaign_add"), data)

    # then
    assert refused.status_code == 200 and not saved_when_refused
    assert "Choose a free shipping coupon template." in refused.content.decode()
    assert accepted.status_code == 302, accepted.context["errors"] if accepted.context else accepted
    campaign = Campaign.objects.get(slug="spring-recall")
    assert campaign.status == Campaign.Status.DRAFT
    assert campaign.created_by.username == "operator"
    assert sorted(campaign.benefits.values_list("kind", flat=True)) == ["coupon", "free_shipping"]


@pytest.mark.django_db
def test_a_new_installation_starts_with_the_playbook_loaded_and_inactive():
    # given: the database as the migrations left it (the data migration loads the playbook)
    campaigns = Campaign.objects.all()
    # then
    assert campaigns.count() == 9
    assert set(campaigns.values_list("status", flat=True)) == {Campaign.Status.DRAFT}
    assert TopUpOffer.objects.count() == 3 and not TopUpOffer.objects.filter(is_active=True).exists()
    assert ReferralRewardRule.objects.count() == 4 and not ReferralRewardRule.objects.filter(is_active=True).exists()
    assert Reward.objects.count() == 2 and not Reward.objects.filter(is_active=True).exists()
