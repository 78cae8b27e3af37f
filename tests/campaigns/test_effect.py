"""Effect reports on hand-built scenarios: a campaign with 10 treated and 10 control members of
known revenue and cost, and two runs with known segments and orders. The service, the API (JSON
and CSV, staff only) and the admin pages must all give the numbers worked out here by hand."""

import csv
import datetime as dt
import io
import math
import statistics
from decimal import Decimal

import pytest
from django.urls import include, path
from django.utils import timezone

from campaigns.models import Campaign, CampaignBenefit, CampaignGrant, Coupon, CouponTemplate
from campaigns.selectors.effect import campaign_effect, segment_report
from config.urls import urlpatterns as project_urlpatterns
from segmentation.models import RfmRun, SegmentSnapshot
from segmentation.scoring import window_for
from tests.factories import MemberFactory, OrderFactory

# The API under the prefix config/urls.py gives it.
urlpatterns = [path("api/v1/campaigns/", include("campaigns.urls")), *project_urlpatterns]
pytestmark = pytest.mark.urls("tests.campaigns.test_effect")

TREATED_REVENUE = [100, 0, 50, 200, 0, 80, 120, 0, 60, 90]  # mean 70, sample variance 4000
CONTROL_REVENUE = [0, 40, 0, 60, 0, 30, 0, 50, 20, 0]  # mean 20, sample variance 5000/9


@pytest.fixture
def scenario(db):
    """20 members granted at ``granted_at``: the first 10 treated (a ¥20 coupon + 100 points:
    ¥21.00 per grant), the last 10 held out. Four treated members redeemed their coupon."""
    granted_at = timezone.now() - dt.timedelta(days=20)
    campaign = Campaign.objects.create(name="Win back Q3", slug="win-back-q3", control_percent=50)
    template = CouponTemplate.objects.create(
        name="¥20 off", slug="twenty-off", kind=CouponTemplate.Kind.FIXED_AMOUNT, amount=Decimal("20.00")
    )
    coupon_benefit = CampaignBenefit.objects.create(
        campaign=campaign, kind=CampaignBenefit.Kind.COUPON, coupon_template=template
    )
    CampaignBenefit.objects.create(campaign=campaign, kind=CampaignBenefit.Kind.POINTS, points=100)
    treated, control = [], []
    for index in range(20):
        member = MemberFactory()
        is_control = index >= 10
        grant = CampaignGrant.objects.create(
            campaign=campaign,
            member=member,
            cause="batch",
            sequence=1,
            is_control=is_control,
            granted_at=granted_at,
            cost=Decimal("0.00") if is_control else Decimal("21.00"),
        )
        (control if is_control else treated).append(member)
        if is_control:
            continue
        redeemed = index < 4
        coupon = Coupon.objects.create(
            template=template,
            member=member,
            campaign=campaign,
            granted_at=granted_at,
            valid_from=granted_at,
            valid_until=granted_at + dt.timedelta(days=30),
            idempotency_key=f"campaign-grant:{grant.pk}:benefit:{coupon_benefit.pk}",
            status=Coupon.Status.REDEEMED if redeemed else Coupon.Status.ISSUED,
            redeemed_at=granted_at + dt.timedelta(days=1) if redeemed else None,
            discount=Decimal("20.00") if redeemed else None,
        )
        grant.details = {"coupons": [coupon.pk], "points": [index]}
        grant.save(update_fields=["details"])

    def buy(member, days, amount, refunded="0.00"):
        OrderFactory(
            member=member,
            paid_at=granted_at + dt.timedelta(days=days),
            amount=Decimal(amount),
            refunded_amount=Decimal(refunded),
        )

    for member, revenue in zip(treated + control, TREATED_REVENUE + CONTROL_REVENUE, strict=True):
        if revenue == 200:
            buy(member, 2, "150.00")
            buy(member, 9, "50.00")
        elif revenue == 90:
            buy(member, 3, "120.00", refunded="30.00")  # partly refunded: counts 90
        elif revenue:
            buy(member, 5, f"{revenue}.00")
    # Outside the 14-day window, before the grant, or fully refunded: none of it counts.
    buy(treated[1], 15, "500.00")
    buy(control[0], -1, "300.00")
    buy(control[2], 4, "80.00", refunded="80.00")
    return campaign


def expected_interval():
    se = math.sqrt(statistics.variance(TREATED_REVENUE) / 10 + statistics.variance(CONTROL_REVENUE) / 10)
    z = 1.959964
    return 50 - z * se, 50 + z * se


# --- the service -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_campaign_effect_on_a_hand_built_scenario(scenario):
    # when
    report = campaign_effect(campaign=scenario, days=14)
    # then: reach
    assert (report["targeted"], report["held_out"], report["treated"], report["reached"]) == (20, 10, 10, 10)
    assert (report["coupons_issued"], report["coupons_redeemed"], report["redeemed_members"]) == (10, 4, 4)
    # conversion and revenue per group
    treated, control = report["treated_group"], report["control_group"]
    assert (treated["converted"], treated["conversion_rate"]) == (7, Decimal("0.7000"))
    assert (control["converted"], control["conversion_rate"]) == (5, Decimal("0.5000"))
    assert (treated["revenue"], treated["revenue_per_member"]) == (Decimal("700.00"), Decimal("70.00"))
    assert (control["revenue"], control["revenue_per_member"]) == (Decimal("200.00"), Decimal("20.00"))
    assert treated["revenue_variance"] == Decimal("4000.00")
    assert control["revenue_variance"] == Decimal("555.56")
    # uplift: 70 − 20 = 50, CI 50 ± 1.959964 · √(4000/10 + 555.56/10) = 50 ± 41.83
    low, high = expected_interval()
    assert report["uplift_per_member"] == Decimal("50.00")
    assert report["uplift_standard_error"] == Decimal("21.34")
    assert (report["uplift_ci_low"], report["uplift_ci_high"]) == (Decimal("8.17"), Decimal("91.83"))
    assert (float(report["uplift_ci_low"]), float(report["uplift_ci_high"])) == pytest.approx((low, high), abs=0.006)
    # cost: 10 × ¥21 granted − 10 × ¥20 coupon face value + 4 × ¥20 redeemed = ¥90
    assert report["grant_cost"] == Decimal("210.00")
    assert report["coupon_face_value_in_grants"] == Decimal("200.00")
    assert report["redeemed_discount"] == Decimal("80.00")
    assert report["cost"] == Decimal("90.00")
    # incremental revenue 50 × 10 = 500; ROI (500 − 90) / 90
    assert report["incremental_revenue"] == Decimal("500.00")
    assert report["roi"] == Decimal("4.5556")


@pytest.mark.django_db
def test_a_longer_window_counts_later_orders(scenario):
    report = campaign_effect(campaign=scenario, days=30)
    assert report["treated_group"]["revenue"] == Decimal("1200.00")
    assert report["uplift_per_member"] == Decimal("100.00")


@pytest.mark.django_db
def test_a_campaign_without_control_group_has_no_uplift():
    campaign = Campaign.objects.create(name="No control", slug="no-control")
    member = MemberFactory()
    CampaignGrant.objects.create(
        campaign=campaign, member=member, cause="batch", sequence=1, granted_at=timezone.now(), cost=Decimal("5.00")
    )
    report = campaign_effect(campaign=campaign)
    assert report["held_out"] == 0
    assert report["uplift_per_member"] is None
    assert report["roi"] is None
    assert report["cost"] == Decimal("5.00")


# --- the API -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_effect_api_gives_the_same_numbers(scenario, staff_client):
    # when
    response = staff_client.get(f"/api/v1/campaigns/{scenario.pk}/effect", {"days": 14})
    # then
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["targeted"] == 20
    assert body["held_out"] == 10
    assert body["treated_group"]["revenue_per_member"] == "70.00"
    assert body["control_group"]["revenue_per_member"] == "20.00"
    assert body["uplift_per_member"] == "50.00"
    assert (body["uplift_ci_low"], body["uplift_ci_high"]) == ("8.17", "91.83")
    assert body["cost"] == "90.00"
    assert body["incremental_revenue"] == "500.00"
    assert body["roi"] == "4.5556"


@pytest.mark.django_db
def test_the_effect_api_exports_csv(scenario, staff_client):
    response = staff_client.get(f"/api/v1/campaigns/{scenario.pk}/effect", {"format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = dict(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows["campaign"] == "Win back Q3"
    assert rows["uplift_per_member"] == "50.00"
    assert rows["uplift_ci_low"] == "8.17"
    assert rows["cost"] == "90.00"
    assert rows["roi"] == "4.5556"


@pytest.mark.django_db
def test_the_effect_api_is_for_staff_only(scenario, client, django_user_model):
    # anonymous
    assert client.get(f"/api/v1/campaigns/{scenario.pk}/effect").status_code == 403
    # a signed-in user who is not staff
    client.force_login(django_user_model.objects.create_user("clerk", password="pw-clerk-1"))
    assert client.get(f"/api/v1/campaigns/{scenario.pk}/effect").status_code == 403
    assert client.get("/api/v1/campaigns/segment-report", {"from_run": 1, "to_run": 1}).status_code == 403


@pytest.mark.django_db
def test_the_effect_api_answers_404_for_an_unknown_campaign_and_400_for_a_bad_window(staff_client):
    assert staff_client.get("/api/v1/campaigns/999999/effect").status_code == 404
    assert staff_client.get("/api/v1/campaigns/999999/effect", {"days": 0}).status_code == 400


# --- segments between two runs -----------------------------------------------------------------


@pytest.fixture
def two_runs(default_scheme):
    """Run A (as of 60 days ago) and run B (30 days later). At A: champions m1, m2, m3 and lost
    m4, m5; at B: champions m1, m4 and lost m2, m3, m5."""
    segments = {segment.slug: segment for segment in default_scheme.segments.all()}
    today = timezone.localdate()
    a_day, b_day = today - dt.timedelta(days=60), today - dt.timedelta(days=30)
    now = timezone.now()
    runs = [
        RfmRun.objects.create(
            scheme=default_scheme,
            as_of=day,
            status=RfmRun.Status.SUCCEEDED,
            started_at=now,
            finished_at=now,
            params={"r_max_days": 30},
        )
        for day in (a_day, b_day)
    ]
    m1, m2, m3, m4, m5 = (MemberFactory() for _ in range(5))
    for run, layout in zip(
        runs,
        ({"champions": [m1, m2, m3], "lost": [m4, m5]}, {"champions": [m1, m4], "lost": [m2, m3, m5]}),
        strict=True,
    ):
        for slug, members in layout.items():
            SegmentSnapshot.objects.create(
                run=run,
                segment=segments[slug],
                member_count=len(members),
                member_ids=[member.pk for member in members],
            )
    a_end = window_for(a_day, 1).end

    def buy(member, days, amount):
        OrderFactory(member=member, paid_at=a_end + dt.timedelta(days=days), amount=Decimal(amount))

    buy(m1, -5, "40.00")
    buy(m1, 3, "100.00")  # repurchase within 7 days
    buy(m2, -10, "60.00")
    buy(m3, -60, "70.00")  # lapsed at A, did not come back
    buy(m4, -100, "80.00")  # lapsed at A ...
    buy(m4, 20, "200.00")  # ... and reactivated, within 30 days
    buy(m5, -200, "90.00")  # lapsed at A
    buy(m2, 45, "999.00")  # after B: not between the runs, and past 30 days
    return runs


def by_slug(report):
    return {row["slug"]: row for row in report["segments"]}


@pytest.mark.django_db
def test_segment_report_between_two_runs(two_runs):
    # when
    report = segment_report(from_run=two_runs[0], to_run=two_runs[1])
    # then
    assert report["lapsed_days"] == 30
    rows = by_slug(report)
    champions, lost = rows["champions"], rows["lost"]
    assert (champions["size"], champions["size_to"], lost["size"], lost["size_to"]) == (3, 2, 2, 3)
    assert (champions["repurchasers"], champions["repurchase_rate"]) == (1, Decimal("0.3333"))
    assert (champions["lapsed"], champions["reactivated"], champions["reactivation_rate"]) == (1, 0, Decimal("0"))
    assert (champions["revenue"], champions["spend_per_member"], champions["average_order_value"]) == (
        Decimal("100.00"),
        Decimal("33.33"),
        Decimal("100.00"),
    )
    assert (champions["retention_7d"], champions["retention_30d"]) == (Decimal("0.3333"), Decimal("0.3333"))
    assert (lost["repurchasers"], lost["repurchase_rate"]) == (1, Decimal("0.5000"))
    assert (lost["lapsed"], lost["reactivated"], lost["reactivation_rate"]) == (2, 1, Decimal("0.5000"))
    assert (lost["retained_7d"], lost["retained_30d"], lost["retention_30d"]) == (0, 1, Decimal("0.5000"))
    assert rows["win_back"]["size"] == 0
    assert rows["win_back"]["repurchase_rate"] is None
    cells = {(cell["from"], cell["to"]): cell["count"] for cell in report["matrix"]}
    assert cells == {
        ("champions", "champions"): 1,
        ("champions", "lost"): 2,
        ("lost", "champions"): 1,
        ("lost", "lost"): 1,
    }


@pytest.mark.django_db
def test_segment_report_api_json_and_csv(two_runs, staff_client):
    a, b = two_runs
    response = staff_client.get("/api/v1/campaigns/segment-report", {"from_run": a.pk, "to_run": b.pk})
    assert response.status_code == 200, response.content
    rows = {row["slug"]: row for row in response.json()["segments"]}
    assert rows["lost"]["reactivation_rate"] == "0.5000"
    assert rows["champions"]["spend_per_member"] == "33.33"
    response = staff_client.get("/api/v1/campaigns/segment-report", {"from_run": a.pk, "to_run": b.pk, "format": "csv"})
    lines = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    header = lines[0]
    champions = dict(zip(header, next(line for line in lines if line and line[0] == "champions"), strict=True))
    assert champions["repurchase_rate"] == "0.3333"
    assert ["champions", "lost", "2"] in lines
    # the runs the wrong way round
    response = staff_client.get("/api/v1/campaigns/segment-report", {"from_run": b.pk, "to_run": a.pk})
    assert response.status_code == 400


# --- the admin pages ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_admin_effect_pages_render_with_bounded_queries(
    scenario, two_runs, staff_client, django_assert_max_num_queries
):
    a, b = two_runs
    with django_assert_max_num_queries(12):
        response = staff_client.get("/admin/campaigns/campaigneffect/")
    assert response.status_code == 200
    assert "Win back Q3" in response.content.decode()
    with django_assert_max_num_queries(15):
        response = staff_client.get(f"/admin/campaigns/campaigneffect/{scenario.pk}/report/", {"days": 14})
    assert response.status_code == 200
    page = response.content.decode()
    # uplift, its interval and the ROI, for people: yuan and a signed percentage
    assert "+¥50.00" in page and "¥8.17 … ¥91.83" in page and "+455.6%" in page
    assert 'data-type="bar"' in page  # the treated vs control charts
    assert "The campaign sent no messages" in page  # and no engagement to show
    response = staff_client.get(f"/admin/campaigns/campaigneffect/{scenario.pk}/report/", {"format": "csv"})
    assert response["Content-Type"].startswith("text/csv")
    assert "roi,4.5556" in response.content.decode("utf-8-sig")
    with django_assert_max_num_queries(15):
        response = staff_client.get("/admin/campaigns/campaigneffect/segments/", {"from_run": a.pk, "to_run": b.pk})
    assert response.status_code == 200
    assert 'id="migration-matrix"' in response.content.decode()
    response = staff_client.get(
        "/admin/campaigns/campaigneffect/segments/", {"from_run": a.pk, "to_run": b.pk, "format": "csv"}
    )
    assert "champions" in response.content.decode("utf-8-sig")
