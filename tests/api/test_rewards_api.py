"""The points catalogue over the API: my catalogue with my prices and why I cannot redeem, redeeming
with an Idempotency-Key (replay, reuse refused, refusals writing nothing), my redemptions, and the
till's catalogue, redemption and collection."""

import pytest

from campaigns.models import Reward, RewardPrice, RewardRedemption
from members.models import PointsAccount, PointsEntry
from members.services.points import points_grant
from members.services.qr_codes import member_qr_code
from tests.api.conftest import store_client
from tests.factories import CouponTemplateFactory, ProductFactory, RewardFactory

pytestmark = pytest.mark.django_db

REWARDS = "/api/v1/me/rewards"
REDEMPTIONS = "/api/v1/me/reward-redemptions"
POS_REWARDS = "/api/v1/pos/rewards"
POS_REDEEM = "/api/v1/pos/rewards/redeem"
POS_COLLECT = "/api/v1/pos/rewards/collect"


def give(member, points: int) -> None:
    points_grant(member=member, points=points, kind="campaign_reward", reason="t", idempotency_key=f"g-{member.pk}")


def balance(member) -> int:
    return PointsAccount.objects.filter(member=member).values_list("balance", flat=True).first() or 0


def redeem_url(reward) -> str:
    return f"{REWARDS}/{reward.pk}/redeem"


@pytest.fixture
def catalogue(place, segments, member_a, member_b):
    """A is a champion with 800 points, B lost with 300. A coupon for 500 (400 for champions), a product
    exclusive to champions (200, one per member), and a coupon for 1000."""
    place(member_a, "champions")
    place(member_b, "lost")
    give(member_a, 800)
    give(member_b, 300)
    coupon = RewardFactory(name="¥10 券", points_price=500, coupon_template=CouponTemplateFactory(amount="10.00"))
    RewardPrice.objects.create(reward=coupon, segment=segments["champions"], points_price=400)
    product = RewardFactory(
        name="保温杯",
        kind=Reward.Kind.PRODUCT,
        coupon_template=None,
        product=ProductFactory(sku="CUP-1"),
        points_price=200,
        stock=5,
        limit_per_member=1,
    )
    product.exclusive_segments.set([segments["champions"]])
    big = RewardFactory(name="¥50 券", points_price=1000)
    RewardFactory(name="下架", points_price=10, is_active=False)
    return {"coupon": coupon, "product": product, "big": big}


def test_my_catalogue_shows_my_price_and_why_i_cannot_redeem(client_a, client_b, catalogue):
    # when
    for_a = client_a.get(REWARDS)
    for_b = client_b.get(REWARDS)
    # then
    assert for_a.status_code == 200, for_a.json()
    rows_a = {row["id"]: row for row in for_a.json()["results"]}
    rows_b = {row["id"]: row for row in for_b.json()["results"]}
    coupon, product, big = catalogue["coupon"], catalogue["product"], catalogue["big"]
    assert list(rows_a) == [product.pk, coupon.pk, big.pk]  # cheapest for me first
    assert rows_a[coupon.pk]["my_price"] == 400 and rows_a[coupon.pk]["points_price"] == 500
    assert rows_a[coupon.pk]["can_redeem"] is True and rows_a[coupon.pk]["refusal"] is None
    assert rows_a[product.pk]["stock_left"] == 5 and rows_a[product.pk]["product_sku"] == "CUP-1"
    assert rows_a[big.pk]["can_redeem"] is False
    assert rows_a[big.pk]["refusal"]["code"] == "insufficient_points"
    # B is not a champion: the exclusive product is not listed, and the coupon costs the base price
    assert list(rows_b) == [coupon.pk, big.pk]
    assert rows_b[coupon.pk]["my_price"] == 500
    assert rows_b[coupon.pk]["refusal"]["code"] == "insufficient_points"
    assert "segment" not in for_a.content.decode().lower()


def test_my_catalogue_reads_in_a_constant_number_of_queries(client_a, catalogue, django_assert_max_num_queries):
    for index in range(10):
        RewardFactory(points_price=100 + index)
    with django_assert_max_num_queries(6):
        response = client_a.get(REWARDS)
    assert response.status_code == 200 and response.json()["count"] == 13


def test_redeeming_with_my_points_is_idempotent(client_a, member_a, catalogue):
    # given
    coupon = catalogue["coupon"]
    # when
    first = client_a.post(redeem_url(coupon), HTTP_IDEMPOTENCY_KEY="r-1")
    retry = client_a.post(redeem_url(coupon), HTTP_IDEMPOTENCY_KEY="r-1")
    reused = client_a.post(redeem_url(catalogue["product"]), HTTP_IDEMPOTENCY_KEY="r-1")
    # then
    assert first.status_code == 201, first.json()
    body = first.json()
    assert (body["points"], body["status"], body["channel"]) == (400, "issued", "mini_program")
    assert body["coupon"]["code"]
    assert retry.status_code == 200 and retry.json() == body and retry.headers["Idempotent-Replayed"] == "true"
    assert reused.status_code == 422 and reused.json()["code"] == "idempotency_key_reused"
    assert balance(member_a) == 400
    assert RewardRedemption.objects.filter(member=member_a).count() == 1


def test_a_refused_redemption_is_a_field_level_400_and_writes_nothing(client_a, client_b, member_b, catalogue):
    # when: B has 300 points for a 500-point coupon, and asks for the champions' product
    poor = client_b.post(redeem_url(catalogue["coupon"]), HTTP_IDEMPOTENCY_KEY="p-1")
    exclusive = client_b.post(redeem_url(catalogue["product"]), HTTP_IDEMPOTENCY_KEY="p-2")
    missing = client_b.post(f"{REWARDS}/999999/redeem", HTTP_IDEMPOTENCY_KEY="p-3")
    no_key = client_a.post(redeem_url(catalogue["coupon"]))
    # then
    assert poor.status_code == 400 and poor.json()["fields"]["points"][0]["code"] == "insufficient_points"
    assert exclusive.status_code == 400 and exclusive.json()["fields"]["reward"][0]["code"] == "not_eligible"
    assert missing.status_code == 404
    assert no_key.status_code == 400 and "Idempotency-Key" in no_key.json()["fields"]
    assert balance(member_b) == 300
    assert not RewardRedemption.objects.exists()
    assert not PointsEntry.objects.filter(kind=PointsEntry.Kind.REDEEM).exists()


def test_my_redemptions_are_mine_only(client_a, client_b, catalogue, django_assert_max_num_queries):
    # given
    client_a.post(redeem_url(catalogue["coupon"]), HTTP_IDEMPOTENCY_KEY="a-1")
    client_a.post(redeem_url(catalogue["product"]), HTTP_IDEMPOTENCY_KEY="a-2")
    # when
    with django_assert_max_num_queries(5):
        mine = client_a.get(REDEMPTIONS)
    theirs = client_b.get(REDEMPTIONS)
    # then
    assert mine.status_code == 200
    assert [row["status"] for row in mine.json()["results"]] == ["pending", "issued"]
    assert mine.json()["results"][0]["reward"]["name"] == "保温杯"
    assert theirs.json()["results"] == []


def test_the_till_lists_redeems_and_hands_over_a_product(member_a, store_a, catalogue, django_assert_max_num_queries):
    # given
    client = store_client(store_a)
    qr = member_qr_code(member_a.pk)
    # when
    with django_assert_max_num_queries(8):
        listed = client.get(POS_REWARDS, {"qr_code": qr})
    redeemed = client.post(
        POS_REDEEM, {"qr_code": qr, "reward": catalogue["product"].pk}, format="json", HTTP_IDEMPOTENCY_KEY="t-1"
    )
    retry = client.post(
        POS_REDEEM, {"qr_code": qr, "reward": catalogue["product"].pk}, format="json", HTTP_IDEMPOTENCY_KEY="t-1"
    )
    redemption_id = redeemed.json()["id"]
    collected = client.post(POS_COLLECT, {"qr_code": qr, "redemption": redemption_id}, format="json")
    # then
    assert listed.status_code == 200, listed.json()
    assert listed.json()["points_balance"] == 800
    assert listed.json()["rewards"][0]["id"] == catalogue["product"].pk
    assert redeemed.status_code == 201, redeemed.json()
    assert redeemed.json()["status"] == "pending" and redeemed.json()["store"]["code"] == store_a.code
    assert retry.status_code == 200 and retry.json()["id"] == redemption_id
    assert collected.status_code == 200, collected.json()
    assert collected.json()["status"] == "collected" and collected.json()["collected_store"]["code"] == store_a.code
    assert balance(member_a) == 600


def test_the_till_collects_only_the_scanned_members_redemption(member_a, member_b, store_a, catalogue):
    # given: A redeemed the product
    client = store_client(store_a)
    redeemed = client.post(
        POS_REDEEM,
        {"qr_code": member_qr_code(member_a.pk), "reward": catalogue["product"].pk},
        format="json",
        HTTP_IDEMPOTENCY_KEY="t-2",
    )
    # when: the till scans B and asks for A's redemption
    response = client.post(
        POS_COLLECT, {"qr_code": member_qr_code(member_b.pk), "redemption": redeemed.json()["id"]}, format="json"
    )
    # then
    assert response.status_code == 404
    assert RewardRedemption.objects.get().status == RewardRedemption.Status.PENDING


def test_the_till_needs_the_points_scope_and_a_qr_code(member_a, store_a, catalogue):
    no_scope = store_client(store_a, scopes=("orders",))
    assert no_scope.get(POS_REWARDS, {"qr_code": member_qr_code(member_a.pk)}).status_code == 403
    client = store_client(store_a)
    missing = client.get(POS_REWARDS)
    assert missing.status_code == 400 and "qr_code" in missing.json()["fields"]
    expired = client.post(
        POS_REDEEM, {"qr_code": "1:bad", "reward": catalogue["coupon"].pk}, format="json", HTTP_IDEMPOTENCY_KEY="t-3"
    )
    assert expired.status_code == 400 and "qr_code" in expired.json()["fields"]
    assert not RewardRedemption.objects.exists()
