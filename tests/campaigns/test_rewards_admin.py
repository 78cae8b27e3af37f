"""The points catalogue in the admin: rewards with their segment and tier prices inline, stock and
redeemed counts, the redemptions read-only, in the sidebar, in Chinese, in a constant number of queries."""

import pytest
from django.test import override_settings
from django.urls import clear_url_caches, reverse

from campaigns.models import Reward, RewardPrice, RewardRedemption
from campaigns.services.rewards import reward_redeem
from members.models import PointsAccount
from members.services.points import points_grant
from tests.factories import MemberFactory, RewardFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def redeemed(segments, ladder):
    reward = RewardFactory(name="¥10 券", points_price=500, stock=10)
    RewardPrice.objects.create(reward=reward, segment=segments["champions"], points_price=400)
    RewardPrice.objects.create(reward=reward, tier=ladder["gold"], points_price=300)
    reward.exclusive_segments.set([segments["champions"], segments["loyal_at_risk"]])
    return reward


def test_the_reward_list_and_form_show_prices_stock_and_counts(staff_client, redeemed):
    # given: one redemption (the member is in no segment: make the reward open to all first)
    redeemed.exclusive_segments.clear()
    member = MemberFactory()
    points_grant(member=member, points=1000, kind="campaign_reward", reason="t", idempotency_key="adm-2")
    reward_redeem(member=member, reward=redeemed, idempotency_key="adm-2", channel=RewardRedemption.Channel.ADMIN)
    # when
    listed = staff_client.get(reverse("admin:campaigns_reward_changelist"))
    form = staff_client.get(reverse("admin:campaigns_reward_change", args=[redeemed.pk]))
    redemptions = staff_client.get(reverse("admin:campaigns_rewardredemption_changelist"))
    # then
    assert listed.status_code == 200 and "¥10 券" in listed.content.decode()
    html = form.content.decode()
    assert form.status_code == 200
    assert 'name="prices-0-points_price"' in html and 'name="prices-1-points_price"' in html
    assert 'name="points_price"' in html and 'name="stock"' in html
    assert redemptions.status_code == 200 and "¥10 券" in redemptions.content.decode()
    redemption = RewardRedemption.objects.get()
    assert staff_client.get(reverse("admin:campaigns_rewardredemption_change", args=[redemption.pk])).status_code == 200
    assert staff_client.get(reverse("admin:campaigns_rewardredemption_add")).status_code == 403


def test_an_operator_adds_a_reward_with_a_segment_price(staff_client, segments, redeemed):
    # when
    response = staff_client.post(
        reverse("admin:campaigns_reward_add"),
        {
            "name": "保温杯",
            "name_en": "",
            "slug": "cup",
            "description": "",
            "description_en": "",
            "is_active": "on",
            "kind": "coupon",
            "coupon_template": redeemed.coupon_template.pk,
            "points_price": "800",
            "stock": "",
            "limit_per_member": "1",
            "exclusive_segments": [segments["champions"].pk],
            "starts_at_0": "",
            "starts_at_1": "",
            "ends_at_0": "",
            "ends_at_1": "",
            "prices-TOTAL_FORMS": "1",
            "prices-INITIAL_FORMS": "0",
            "prices-MIN_NUM_FORMS": "0",
            "prices-MAX_NUM_FORMS": "1000",
            "prices-0-segment": segments["champions"].pk,
            "prices-0-tier": "",
            "prices-0-points_price": "600",
        },
    )
    # then
    assert response.status_code == 302, response.content.decode()[:3000]
    cup = Reward.objects.get(slug="cup")
    assert list(cup.prices.values_list("points_price", flat=True)) == [600]
    assert list(cup.exclusive_segments.all()) == [segments["champions"]]


def test_the_reward_list_reads_in_a_constant_number_of_queries(staff_client, redeemed, django_assert_max_num_queries):
    for index in range(10):
        RewardFactory(points_price=100 + index).exclusive_segments.set([redeemed.exclusive_segments.first()])
    with django_assert_max_num_queries(15):
        response = staff_client.get(reverse("admin:campaigns_reward_changelist"))
    assert response.status_code == 200


def test_the_catalogue_is_in_the_sidebar_in_chinese(staff_client, redeemed):
    with override_settings(LANGUAGE_CODE="zh-hans"):
        clear_url_caches()
        staff_client.cookies["django_language"] = "zh-hans"
        html = staff_client.get(
            reverse("admin:campaigns_reward_changelist"), HTTP_ACCEPT_LANGUAGE="zh-hans"
        ).content.decode()
    clear_url_caches()
    for text in ("积分兑换商品", "积分兑换记录", "积分价格", "库存", "专属于"):
        assert text in html, text


def test_staff_who_may_reverse_undo_a_redemption_from_the_list(staff_client, redeemed):
    # given: a redemption with its coupon unused
    redeemed.exclusive_segments.clear()
    member = MemberFactory()
    points_grant(member=member, points=1000, kind="campaign_reward", reason="t", idempotency_key="adm-3")
    redemption = reward_redeem(member=member, reward=redeemed, idempotency_key="adm-3", channel="admin")
    # when
    response = staff_client.post(
        reverse("admin:campaigns_rewardredemption_changelist"),
        {"action": "reverse_selected", "_selected_action": [redemption.pk]},
        follow=True,
    )
    # then
    assert response.status_code == 200
    redemption.refresh_from_db()
    assert redemption.status == RewardRedemption.Status.REVERSED
    assert PointsAccount.objects.get(member=member).balance == 1000
