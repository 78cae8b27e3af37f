"""The member's own endpoints: profile, lists (scoped, filtered, paginated, constant queries), QR code."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from members.models import PointsLot, Referral
from members.services.points import points_grant
from members.services.wallet import wallet_top_up
from tests.factories import MemberFactory, OrderFactory, RefundFactory

pytestmark = pytest.mark.django_db


def test_profile_shows_tier_progress_points_wallet_and_referral_code(client_a, member_a, store_a, ladder):
    # given
    entry = ladder["entry"]
    member_a.tier = entry
    member_a.save()
    now = timezone.now()
    OrderFactory(member=member_a, store=store_a, amount=Decimal("100.00"), paid_at=now - dt.timedelta(days=10))
    old = OrderFactory(member=member_a, store=store_a, amount=Decimal("50.00"), paid_at=now - dt.timedelta(days=200))
    RefundFactory(order=old, amount=Decimal("30.00"))
    old.refunded_amount, old.status = Decimal("30.00"), "partially_refunded"
    old.save()
    points_grant(member=member_a, points=300, kind="campaign_reward", reason="gift", idempotency_key="g1")
    points_grant(member=member_a, points=40, kind="campaign_reward", reason="gift", idempotency_key="g2")
    PointsLot.objects.filter(points=40).update(expires_at=now + dt.timedelta(days=10))
    wallet_top_up(member=member_a, amount_paid="100.00", bonus="10.00", idempotency_key="t1")
    # when
    body = client_a.get("/api/v1/me").json()
    # then
    assert body["referral_code"] == member_a.referral_code
    assert body["tier"]["code"] == "basic"
    assert body["next_tier"]["tier"] | {} == body["next_tier"]["tier"]
    assert body["next_tier"]["tier"]["points_multiplier"] == "1.50"
    by_window = {r["window_days"]: r for r in body["next_tier"]["requirements"]}
    assert by_window[30]["spend"] == "100.00"
    assert by_window[30]["spend_remaining"] == "400.00"
    assert by_window[90]["orders"] == 1
    assert by_window[90]["orders_remaining"] == 4
    assert body["points"]["balance"] == 340
    assert body["points"]["expiring_soon"] == 40
    assert body["wallet"] == {"principal": "100.00", "bonus": "10.00", "total": "110.00"}
    assert body["registered_at"].endswith("+08:00")
    assert "segment" not in str(body).lower()


def test_profile_of_a_new_member_without_anything(client_a, member_a):
    body = client_a.get("/api/v1/me").json()
    assert body["tier"] is None
    assert body["next_tier"] is None
    assert body["points"]["balance"] == 0
    assert body["wallet"]["total"] == "0.00"


def test_profile_costs_one_query(client_a, member_a, ladder, django_assert_num_queries):
    # and one more: every member request reads the member's row (blocked or erased: 401)
    with django_assert_num_queries(2):
        assert client_a.get("/api/v1/me").status_code == 200


def test_orders_are_mine_only_with_their_refunds(client_a, member_a, member_b, store_a):
    # given
    mine = OrderFactory(member=member_a, store=store_a, amount=Decimal("80.00"))
    RefundFactory(order=mine, amount=Decimal("5.00"))
    OrderFactory(member=member_b, store=store_a)
    # when
    body = client_a.get("/api/v1/me/orders").json()
    # then
    assert body["count"] == 1
    assert body["results"][0]["external_id"] == mine.external_id
    assert body["results"][0]["store"] == {"code": "A001", "name": "门店A"}
    assert [r["amount"] for r in body["results"][0]["refunds"]] == ["5.00"]


def test_another_members_order_is_not_found(client_a, member_b, store_b):
    theirs = OrderFactory(member=member_b, store=store_b)
    assert client_a.get(f"/api/v1/me/orders/{theirs.pk}").status_code == 404


def test_orders_filter_and_order_from_an_allow_list(client_a, member_a, store_a):
    # given
    now = timezone.now()
    for days, amount in ((1, "10.00"), (5, "30.00"), (40, "20.00")):
        OrderFactory(member=member_a, store=store_a, paid_at=now - dt.timedelta(days=days), amount=Decimal(amount))
    since = (now - dt.timedelta(days=10)).isoformat()
    # when
    recent = client_a.get("/api/v1/me/orders", {"paid_after": since, "ordering": "-amount"}).json()
    bad_order = client_a.get("/api/v1/me/orders", {"ordering": "member__mobile"})
    unknown = client_a.get("/api/v1/me/orders", {"member": "2"})
    # then
    assert [o["amount"] for o in recent["results"]] == ["30.00", "10.00"]
    assert bad_order.status_code == 400
    assert "ordering" in bad_order.json()["fields"]
    assert unknown.status_code == 400
    assert unknown.json()["fields"]["member"][0]["code"] == "unknown"


def _fill(member, store, n):
    for i in range(n):
        order = OrderFactory(member=member, store=store, amount=Decimal("10.00"))
        RefundFactory(order=order, amount=Decimal("1.00"))
        points_grant(member=member, points=1 + i, kind="campaign_reward", reason="r", idempotency_key=f"p{n}-{i}")
        wallet_top_up(member=member, amount_paid="1.00", idempotency_key=f"w{n}-{i}")
        referee = MemberFactory(registered_at=timezone.now())
        Referral.objects.create(referrer=member, referee=referee, code=member.referral_code)


LISTS = ["/api/v1/me/orders", "/api/v1/me/points/entries", "/api/v1/me/wallet/entries", "/api/v1/me/referrals"]


def test_lists_cost_the_same_queries_for_5_or_50_rows(client_a, member_a, store_a, django_assert_max_num_queries):
    # given: 50 rows of everything
    _fill(member_a, store_a, 50)
    for path in LISTS:
        for limit in (5, 50):
            # when / then: a page costs at most 3 queries (count, page, prefetch), whatever its size,
            # and the member's row (authentication: blocked or erased members are refused)
            with django_assert_max_num_queries(4):
                response = client_a.get(path, {"limit": limit})
            assert len(response.json()["results"]) == limit, path


def test_pages_are_capped(client_a, member_a):
    assert client_a.get("/api/v1/me/orders", {"limit": 100}).status_code == 200
    huge = client_a.get("/api/v1/me/orders", {"limit": 10000})
    assert huge.status_code == 400
    assert "limit" in huge.json()["fields"]
    assert client_a.get("/api/v1/me/orders", {"offset": -1}).status_code == 400


def test_referrals_show_masked_referees_and_my_reward(client_a, member_a):
    # given
    referee = MemberFactory(name="王小明", mobile="13912345678", registered_at=timezone.now())
    Referral.objects.create(referrer=member_a, referee=referee, code=member_a.referral_code)
    # when
    row = client_a.get("/api/v1/me/referrals").json()["results"][0]
    # then
    assert (row["referee_name"], row["referee_mobile"], row["status"]) == ("王*", "139****5678", "pending")
    assert row["reward_points"] == 0


def test_qr_code_expires(client_a, member_a, pos_a, settings):
    # given
    code = client_a.get("/api/v1/me/qr-code").json()["qr_code"]
    # when
    settings.HUIYUAN_MEMBER_QR_MAX_AGE = -1
    response = pos_a.post("/api/v1/pos/members/lookup", {"qr_code": code}, format="json")
    # then
    assert response.status_code == 400


def test_no_token_is_unauthorised(db):
    response = APIClient().get("/api/v1/me")
    assert response.status_code == 401
    assert response.json() == {
        "code": "not_authenticated",
        "message": "Authentication credentials were not provided.",
        "fields": {},
    }
