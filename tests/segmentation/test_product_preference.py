"""Favourite categories: computed set-based in the nightly run, refunds netted, replaced whole;
campaigns narrow their audience by them and the member list filters by them."""

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone, translation

from campaigns.models import Campaign
from campaigns.services.campaigns import campaign_estimate, campaign_grant_to_member, campaign_launch
from config.periodic import SCHEDULES
from members.services.orders import refund_record
from members.services.products import LineIn
from segmentation.models import MemberCategory
from segmentation.services import product_preferences_recompute
from segmentation.tasks import product_preferences_task
from tests.factories import (
    CampaignBenefitFactory,
    CampaignFactory,
    MemberFactory,
    OrderFactory,
    OrderLineFactory,
    ProductFactory,
)
from tests.workspace.builders import role_user

pytestmark = pytest.mark.django_db


def buy(member, *lines, days_ago=1, amount=None):
    """An order of ``member`` with ``(product, amount)`` lines, paid ``days_ago`` days ago."""
    total = amount or sum((Decimal(line_amount) for _product, line_amount in lines), Decimal("0"))
    order = OrderFactory(member=member, amount=total, paid_at=timezone.now() - dt.timedelta(days=days_ago))
    for product, line_amount in lines:
        OrderLineFactory(order=order, product=product, amount=Decimal(line_amount))
    return order


def favourites(member) -> list[tuple[int, str, Decimal]]:
    return list(MemberCategory.objects.filter(member=member).values_list("rank", "category", "net_amount"))


@pytest.fixture
def catalogue():
    return {
        "tea": ProductFactory(sku="TEA", name="杨枝甘露", category="果茶"),
        "milk": ProductFactory(sku="MILK", name="珍珠奶茶", category="奶茶"),
        "coffee": ProductFactory(sku="COF", name="拿铁", category="咖啡"),
        "cake": ProductFactory(sku="CAKE", name="芝士蛋糕", category="蛋糕"),
        "bread": ProductFactory(sku="BREAD", name="可颂", category="面包"),
    }


def test_the_favourite_categories_are_the_top_three_by_net_spend_in_the_last_365_days(catalogue):
    # given: coffee 50, tea 30 + 15, milk tea 40, cake 10; bread 200 but 400 days ago
    member = MemberFactory()
    buy(member, (catalogue["coffee"], "50.00"), (catalogue["tea"], "30.00"))
    buy(member, (catalogue["milk"], "40.00"), (catalogue["tea"], "15.00"), (catalogue["cake"], "10.00"))
    buy(member, (catalogue["bread"], "200.00"), days_ago=400)
    # when
    counts = product_preferences_recompute()
    # then
    assert favourites(member) == [
        (1, "咖啡", Decimal("50.00")),
        (2, "果茶", Decimal("45.00")),
        (3, "奶茶", Decimal("40.00")),
    ]
    assert counts.members == 1


def test_refunds_are_netted_named_lines_first_the_rest_pro_rata(catalogue):
    # given: an order of tea 60 + coffee 40 (¥100); the tea is refunded in full by a refund naming it,
    # then ¥20 without lines (half of the ¥40 left: the coffee's net is 20); another order of cake 30
    member = MemberFactory()
    order = buy(member, (catalogue["tea"], "60.00"), (catalogue["coffee"], "40.00"))
    buy(member, (catalogue["cake"], "30.00"))
    refund_record(external_id="R-1", order=order, amount="60.00", lines=[LineIn("TEA", 1, Decimal("60.00"))])
    refund_record(external_id="R-2", order=order, amount="20.00")
    # and a member whose only order was refunded in full
    gone = MemberFactory()
    refund_record(external_id="R-3", order=buy(gone, (catalogue["milk"], "25.00")), amount="25.00")
    # when
    product_preferences_recompute()
    # then: cake 30 before coffee 20; no tea at all; nothing for the member refunded in full
    assert favourites(member) == [(1, "蛋糕", Decimal("30.00")), (2, "咖啡", Decimal("20.00"))]
    assert favourites(gone) == []


def test_a_rerun_replaces_the_rows_and_drops_members_who_no_longer_qualify(catalogue):
    # given: last night tea was the favourite
    member, lapsed = MemberFactory(), MemberFactory()
    buy(member, (catalogue["tea"], "30.00"))
    old = buy(lapsed, (catalogue["cake"], "30.00"))
    product_preferences_recompute()
    computed_at = MemberCategory.objects.get(member=member, rank=1).computed_at
    # when: the member buys more coffee; the other's only order falls out of the window
    buy(member, (catalogue["coffee"], "80.00"))
    old.paid_at = timezone.now() - dt.timedelta(days=366)
    old.save(update_fields=["paid_at"])
    product_preferences_recompute()
    # then
    assert favourites(member) == [(1, "咖啡", Decimal("80.00")), (2, "果茶", Decimal("30.00"))]
    assert favourites(lapsed) == []
    # and a run that changes nothing rewrites nothing
    product_preferences_recompute()
    assert MemberCategory.objects.get(member=member, rank=2).computed_at > computed_at
    before = list(MemberCategory.objects.values_list("pk", "computed_at"))
    product_preferences_recompute()
    assert list(MemberCategory.objects.values_list("pk", "computed_at")) == before


def test_the_nightly_step_costs_the_same_queries_for_10_and_50_members(catalogue, django_assert_max_num_queries):
    def members_buying(count):
        for _index in range(count):
            member = MemberFactory()
            buy(member, (catalogue["tea"], "20.00"), (catalogue["cake"], "12.00"))
            buy(member, (catalogue["coffee"], "25.00"))

    members_buying(10)
    with django_assert_max_num_queries(16) as small:
        product_preferences_recompute(min_support=2)
    members_buying(40)
    with django_assert_max_num_queries(16) as large:
        product_preferences_recompute(min_support=2)
    assert len(small.captured_queries) == len(large.captured_queries)
    assert MemberCategory.objects.filter(rank=1).count() == 50


def test_the_task_is_scheduled_nightly_and_returns_the_counts(catalogue):
    buy(MemberFactory(), (catalogue["tea"], "20.00"))
    assert product_preferences_task() == {"members": 1, "related": 0}
    schedule = next(s for s in SCHEDULES if s.task == "segmentation.tasks.product_preferences_task")
    assert schedule.hour.isdigit()


# --- campaigns narrow by the favourite category --------------------------------------------------


def test_a_campaign_narrowed_by_favourite_category_reaches_only_those_members(segments, place, catalogue):
    # given: three champions — tea lovers, a coffee lover whose second category is tea, no lines
    tea_lover, coffee_lover, unknown = MemberFactory(), MemberFactory(), MemberFactory()
    for member in (tea_lover, coffee_lover, unknown):
        place(member, "champions")
    buy(tea_lover, (catalogue["tea"], "50.00"), (catalogue["coffee"], "10.00"))
    buy(coffee_lover, (catalogue["coffee"], "50.00"), (catalogue["tea"], "10.00"))
    product_preferences_recompute()
    campaign = CampaignFactory(target_kind=Campaign.TargetKind.SEGMENT)
    campaign.segments.set([segments["champions"]])
    CampaignBenefitFactory(campaign=campaign)
    assert campaign_estimate(campaign=campaign).reach == 3
    # when
    Campaign.objects.filter(pk=campaign.pk).update(favourite_categories="果茶")
    campaign = Campaign.objects.get(pk=campaign.pk)
    # then: only the member whose favourite (rank 1) is tea; several categories are "any of them"
    assert campaign_estimate(campaign=campaign).reach == 1
    Campaign.objects.filter(pk=campaign.pk).update(favourite_categories="果茶，咖啡")
    assert campaign_estimate(campaign=Campaign.objects.get(pk=campaign.pk)).reach == 2
    # and a grant checks it too
    Campaign.objects.filter(pk=campaign.pk).update(favourite_categories="果茶")
    campaign = campaign_launch(campaign=Campaign.objects.get(pk=campaign.pk))
    assert campaign_grant_to_member(campaign=campaign, member=coffee_lover, cause="batch").status == "not_targeted"
    assert campaign_grant_to_member(campaign=campaign, member=tea_lover, cause="batch").status in ("granted", "control")


def test_the_campaign_builder_offers_the_favourite_category_narrowing(admin_client, default_scheme):
    page = admin_client.get(reverse("admin:campaigns_campaign_add")).content.decode()
    assert 'name="favourite_categories"' in page


# --- the member list filters by the favourite category -------------------------------------------


def test_the_member_list_filters_by_favourite_category_in_chinese(client, catalogue):
    # given
    tea_lover, coffee_lover = MemberFactory(), MemberFactory()
    buy(tea_lover, (catalogue["tea"], "50.00"))
    buy(coffee_lover, (catalogue["coffee"], "50.00"), (catalogue["tea"], "10.00"))
    product_preferences_recompute()
    client.force_login(role_user("operator"))
    url = reverse("admin:members_member_changelist")
    # when
    with translation.override("zh-hans"):
        everyone = client.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans", follow=True)
        filtered = client.get(url, {"favourite_category": "果茶"}, HTTP_ACCEPT_LANGUAGE="zh-hans", follow=True)
    # then: the filter offers the categories that are someone's favourite, titled in Chinese
    spec = next(s for s in everyone.context["cl"].filter_specs if s.parameter_name == "favourite_category")
    assert [value for value, _label in spec.lookup_choices] == ["咖啡", "果茶"]
    assert "最喜欢的商品品类" in everyone.content.decode()
    assert list(filtered.context["cl"].result_list) == [tea_lover]
