"""Coupons through the API: the member's list (status as the member sees it, constant queries) and
redemption at the till (once per coupon, replayed per Idempotency-Key, only where it is valid)."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from campaigns.models import Coupon, CouponTemplate
from campaigns.services.coupons import coupon_grant, coupon_redeem, coupon_revoke
from members.services.qr_codes import member_qr_code
from tests.api.conftest import store_client

pytestmark = pytest.mark.django_db

REDEEM = "/api/v1/pos/coupons/redeem"


def template(slug: str, **fields) -> CouponTemplate:
    stores = fields.pop("stores", ())
    values = {"name": "满100减20", "kind": CouponTemplate.Kind.FIXED_AMOUNT, "amount": Decimal("20.00")}
    values.update(fields)
    made = CouponTemplate.objects.create(slug=slug, **values)
    made.stores.set(stores)
    return made


def grant(template, member, key: str) -> Coupon:
    return coupon_grant(template=template, member=member, source="test", idempotency_key=key)


def redeem(client, body, key="redeem-1"):
    return client.post(REDEEM, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


# --- the member's coupons --------------------------------------------------------------------------------


def test_my_coupons_show_what_they_are_worth_where_and_until_when(client_a, member_a, member_b, store_a):
    # given: a ¥20 coupon from ¥100 at store A, and someone else's coupon
    twenty = template("twenty", min_spend=Decimal("100.00"), valid_days=7, stores=[store_a])
    mine = grant(twenty, member_a, "g-a")
    grant(twenty, member_b, "g-b")
    # when
    body = client_a.get("/api/v1/me/coupons").json()
    # then
    assert body["count"] == 1
    (coupon,) = body["results"]
    assert coupon | {"valid_from": None, "valid_until": None} == {
        "id": mine.pk,
        "code": mine.code,
        "name": "满100减20",
        "description": "",
        "kind": "fixed_amount",
        "amount": "20.00",
        "percent_off": None,
        "max_discount": None,
        "gift_description": "",
        "min_spend": "100.00",
        "stores": [{"code": "A001", "name": "门店A"}],
        "product_tags": [],
        "product_categories": [],
        "valid_from": None,
        "valid_until": None,
        "status": "available",
        "redeemed_at": None,
        "discount": None,
    }
    assert coupon["valid_until"].endswith("+08:00")


def test_status_filter_available_used_expired(client_a, member_a, store_a):
    # given: one of each
    everywhere = template("everywhere")
    available = grant(everywhere, member_a, "available")
    used = grant(everywhere, member_a, "used")
    coupon_redeem(member=member_a, coupon=used, amount="50.00", store=store_a, idempotency_key="r")
    lapsed = grant(everywhere, member_a, "lapsed-not-marked-yet")
    Coupon.objects.filter(pk=lapsed.pk).update(
        valid_from=timezone.now() - dt.timedelta(days=8), valid_until=timezone.now() - dt.timedelta(days=1)
    )
    marked = grant(everywhere, member_a, "expired")
    Coupon.objects.filter(pk=marked.pk).update(status=Coupon.Status.EXPIRED)
    revoked = coupon_revoke(coupon=grant(everywhere, member_a, "revoked"), reason="test")
    future = template(
        "future",
        validity=CouponTemplate.Validity.FIXED_DATES,
        valid_from=timezone.now() + dt.timedelta(days=3),
        valid_until=timezone.now() + dt.timedelta(days=10),
    )
    upcoming = grant(future, member_a, "upcoming")

    def ids(status):
        response = client_a.get("/api/v1/me/coupons", {"status": status})
        assert response.status_code == 200, response.json()
        return {row["id"]: row["status"] for row in response.json()["results"]}

    # when / then
    assert ids("available") == {available.pk: "available"}
    assert ids("used") == {used.pk: "used"}
    assert ids("expired") == {lapsed.pk: "expired", marked.pk: "expired"}
    assert ids("upcoming") == {upcoming.pk: "upcoming"}
    assert ids("revoked") == {revoked.pk: "revoked"}
    used_row = client_a.get("/api/v1/me/coupons", {"status": "used"}).json()["results"][0]
    assert (used_row["discount"], used_row["redeemed_at"] is not None) == ("20.00", True)
    refused = client_a.get("/api/v1/me/coupons", {"status": "issued"})
    assert refused.status_code == 400
    assert "status" in refused.json()["fields"]


def test_coupon_page_costs_the_same_queries_for_2_or_40_rows(
    client_a, member_a, store_a, store_b, django_assert_max_num_queries
):
    # given: 40 coupons, each of its own template with two stores
    for index in range(40):
        grant(template(f"t-{index}", stores=[store_a, store_b]), member_a, f"k-{index}")
    for limit in (2, 40):
        # when / then: the member (authentication), count, page, stores of the page's templates
        with django_assert_max_num_queries(4):
            response = client_a.get("/api/v1/me/coupons", {"limit": limit})
        assert len(response.json()["results"]) == limit
        assert len(response.json()["results"][0]["stores"]) == 2


# --- redeeming at the till -------------------------------------------------------------------------------


def test_a_coupon_is_redeemed_once_the_same_key_replays_and_a_new_key_is_refused(pos_a, member_a, store_a):
    # given
    coupon = grant(template("t", min_spend=Decimal("100.00")), member_a, "g")
    body = {"mobile": member_a.mobile, "coupon": coupon.code.lower(), "amount": "120.00"}
    # when
    first = redeem(pos_a, body, key="till-1")
    replay = redeem(pos_a, body, key="till-1")
    again = redeem(pos_a, body, key="till-2")
    # then
    assert first.status_code == 201, first.json()
    assert first.json() | {"redeemed_at": None} == {
        "code": coupon.code,
        "member_id": member_a.pk,
        "name": "满100减20",
        "kind": "fixed_amount",
        "gift_description": "",
        "order_amount": "120.00",
        "discount": "20.00",
        "eligible_amount": None,
        "amount_due": "100.00",
        "redeemed_at": None,
    }
    assert replay.status_code == 201
    assert replay.json() == first.json()
    assert again.status_code == 400
    assert again.json()["fields"]["coupon"][0]["code"] == "already_redeemed"
    coupon.refresh_from_db()
    assert (coupon.status, coupon.redeemed_store, coupon.discount) == ("redeemed", store_a, Decimal("20.00"))


def test_the_same_key_for_another_redemption_is_refused(pos_a, member_a):
    # given
    first, second = (grant(template(f"t-{n}"), member_a, f"g-{n}") for n in (1, 2))
    assert redeem(pos_a, {"mobile": member_a.mobile, "coupon": first.code, "amount": "50.00"}).status_code == 201
    # when: the same key, another amount / another coupon
    other_amount = redeem(pos_a, {"mobile": member_a.mobile, "coupon": first.code, "amount": "60.00"})
    other_coupon = redeem(pos_a, {"mobile": member_a.mobile, "coupon": second.code, "amount": "50.00"})
    # then
    assert (other_amount.status_code, other_coupon.status_code) == (422, 422)
    assert other_coupon.json()["code"] == "idempotency_key_reused"
    second.refresh_from_db()
    assert second.status == "issued"


def test_a_coupon_valid_only_at_another_store_is_refused(pos_a, member_a, store_b):
    # given: a coupon for store B only, presented at store A
    coupon = grant(template("b-only", stores=[store_b]), member_a, "g")
    # when
    response = redeem(pos_a, {"qr_code": member_qr_code(member_a.pk), "coupon": coupon.code, "amount": "50.00"})
    # then
    assert response.status_code == 400
    assert response.json()["fields"]["store"][0]["code"] == "wrong_store"
    coupon.refresh_from_db()
    assert coupon.status == "issued"
    # and store B may
    response = redeem(store_client(store_b), {"mobile": member_a.mobile, "coupon": coupon.code, "amount": "50.00"})
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"amount": "99.99"}, "amount", "below_minimum"),
        ({"mobile": "13800000002"}, "coupon", "not_found"),  # someone else's coupon
        ({"coupon": "NOSUCHCODE23"}, "coupon", "not_found"),
        ({"amount": "-1.00"}, "amount", "min_value"),
        ({"balance": "10.00"}, "balance", "unknown"),
    ],
)
def test_bad_redemptions_are_refused_field_by_field(pos_a, member_a, member_b, change, field, code):
    # given
    coupon = grant(template("t", min_spend=Decimal("100.00")), member_a, "g")
    body = {"mobile": member_a.mobile, "coupon": coupon.code, "amount": "100.00", **change}
    # when
    response = redeem(pos_a, body)
    # then
    assert response.status_code == 400, response.json()
    assert response.json()["fields"][field][0]["code"] == code
    coupon.refresh_from_db()
    assert coupon.status == "issued"


def test_redeeming_needs_the_idempotency_key_and_the_orders_scope(member_a, store_a):
    # given
    coupon = grant(template("t"), member_a, "g")
    body = {"mobile": member_a.mobile, "coupon": coupon.code, "amount": "50.00"}
    # when
    no_key = store_client(store_a).post(REDEEM, body, format="json")
    no_scope = redeem(store_client(store_a, scopes=("wallet",)), body)
    # then
    assert no_key.status_code == 400
    assert "Idempotency-Key" in no_key.json()["fields"]
    assert no_scope.status_code == 403
    coupon.refresh_from_db()
    assert coupon.status == "issued"
