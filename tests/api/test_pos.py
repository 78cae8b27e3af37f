"""The POS endpoints: orders and refunds with Idempotency-Key, member lookup, stored value, points."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from members.models import ApiIdempotencyRecord, Order, PointsEntry, Refund, WalletEntry
from members.services.points import points_grant
from members.services.qr_codes import member_qr_code
from members.services.wallet import wallet_top_up
from tests.api.conftest import store_client
from tests.factories import OrderFactory

pytestmark = pytest.mark.django_db

PAID_AT = "2026-01-05T12:30:00+08:00"


def order_body(**overrides):
    return {"external_id": "POS-1", "mobile": "+86 138-0000-0001", "paid_at": PAID_AT, "amount": "38.50", **overrides}


def post(client, path, body, key="key-1"):
    return client.post(f"/api/v1/pos/{path}", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_order_is_recorded_for_the_keys_store(pos_a, member_a, store_a):
    # when
    response = post(pos_a, "orders", order_body())
    # then
    assert response.status_code == 201, response.json()
    order = Order.objects.get(external_id="POS-1")
    assert (order.store, order.member, order.amount) == (store_a, member_a, Decimal("38.50"))
    assert response.json() | {"created_at": None} == {
        "external_id": "POS-1",
        "store_code": "A001",
        "member_id": member_a.pk,
        "paid_at": "2026-01-05T12:30:00+08:00",
        "amount": "38.50",
        "refunded_amount": "0.00",
        "status": "paid",
        "created_at": None,
        "lines": [],
    }


def test_a_store_in_the_body_is_refused(pos_a, member_a, store_b):
    # when
    response = post(pos_a, "orders", order_body(store="B001"))
    # then
    assert response.status_code == 400
    assert response.json()["fields"]["store"][0]["code"] == "unknown"
    assert not Order.objects.exists()


def test_same_key_and_body_replays_the_first_response(pos_a, member_a):
    # given
    first = post(pos_a, "orders", order_body())
    # when
    again = post(pos_a, "orders", {**order_body()})
    # then
    assert again.status_code == first.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Order.objects.count() == 1


def test_same_key_with_another_body_is_refused(pos_a, member_a):
    # given
    post(pos_a, "orders", order_body())
    # when
    response = post(pos_a, "orders", order_body(external_id="POS-2"))
    # then
    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert list(Order.objects.values_list("external_id", flat=True)) == ["POS-1"]


def test_keys_are_scoped_to_the_store(pos_a, pos_b, member_a):
    # given: store A used key-1
    post(pos_a, "orders", order_body())
    # when: store B uses key-1 for its own order
    response = post(pos_b, "orders", order_body(external_id="POS-B"))
    # then
    assert response.status_code == 201
    assert Order.objects.get(external_id="POS-B").store.code == "B001"


def test_an_order_needs_an_idempotency_key(pos_a, member_a):
    # when
    response = pos_a.post("/api/v1/pos/orders", order_body(), format="json")
    bad = post(pos_a, "orders", order_body(), key="not a key!")
    # then
    assert response.status_code == bad.status_code == 400
    assert response.json()["fields"]["Idempotency-Key"][0]["code"] == "required"
    assert not Order.objects.exists()


def test_external_id_reused_with_other_content_is_a_conflict(pos_a, member_a):
    # given
    post(pos_a, "orders", order_body())
    # when: a new key, the same external id, another amount
    response = post(pos_a, "orders", order_body(amount="99.00"), key="key-2")
    # then
    assert response.status_code == 409
    assert "external_id" in response.json()["fields"]
    assert not ApiIdempotencyRecord.objects.filter(key="key-2").exists()


def test_resending_an_order_under_a_new_key_answers_200(pos_a, member_a):
    # given
    post(pos_a, "orders", order_body())
    # when
    response = post(pos_a, "orders", order_body(), key="key-2")
    # then
    assert response.status_code == 200
    assert Order.objects.count() == 1


def test_unknown_member_is_a_field_error(pos_a, member_a):
    response = post(pos_a, "orders", order_body(mobile="13999999999"))
    assert response.status_code == 400
    assert response.json()["fields"]["mobile"][0]["code"] == "unknown_member"


def test_order_in_the_future_is_refused(pos_a, member_a):
    future = (timezone.now() + dt.timedelta(days=1)).isoformat()
    response = post(pos_a, "orders", order_body(paid_at=future))
    assert response.status_code == 400
    assert response.json()["fields"]["paid_at"][0]["code"] == "future"


def test_refund_of_own_order(pos_a, member_a, store_a):
    # given
    OrderFactory(external_id="O-A", member=member_a, store=store_a, amount=Decimal("50.00"))
    body = {"external_id": "R-1", "order_external_id": "O-A", "amount": "20.00", "reason": "坏了"}
    # when
    response = post(pos_a, "refunds", body)
    again = post(pos_a, "refunds", body)
    # then
    assert response.status_code == 201, response.json()
    assert again.json() == response.json()
    assert response.json()["order"]["refunded_amount"] == "20.00"
    assert Refund.objects.get().amount == Decimal("20.00")


def test_refund_of_another_stores_order_is_not_found(pos_b, member_a, store_a):
    # given
    OrderFactory(external_id="O-A", member=member_a, store=store_a)
    # when
    response = post(pos_b, "refunds", {"external_id": "R-1", "order_external_id": "O-A", "amount": "1.00"})
    # then
    assert response.status_code == 404
    assert not Refund.objects.exists()


def test_over_refund_is_a_field_error_and_not_stored(pos_a, member_a, store_a):
    OrderFactory(external_id="O-A", member=member_a, store=store_a, amount=Decimal("10.00"))
    response = post(pos_a, "refunds", {"external_id": "R-1", "order_external_id": "O-A", "amount": "10.01"})
    assert response.status_code == 400
    assert "would exceed" in response.json()["fields"]["amount"][0]["message"]
    assert not ApiIdempotencyRecord.objects.exists()


def test_order_detail_of_another_store_is_not_found(pos_a, pos_b, member_a, store_a):
    OrderFactory(external_id="O-A", member=member_a, store=store_a)
    assert pos_a.get("/api/v1/pos/orders/O-A").status_code == 200
    assert pos_b.get("/api/v1/pos/orders/O-A").status_code == 404


def test_a_key_without_the_scope_is_forbidden(store_a, member_a):
    # given
    client = store_client(store_a, scopes=["members:read"])
    # when
    response = post(client, "orders", order_body())
    # then
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert not Order.objects.exists()


def test_an_invalid_key_is_unauthorised(member_a):
    client = APIClient()
    client.credentials(HTTP_X_API_KEY="hy_nope_secret")
    response = post(client, "orders", order_body())
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("ApiKey")


@pytest.mark.parametrize("spelling", ["13800000001", "+86 138 0000 0001", "１３８００００ ０００１"])
def test_member_lookup_by_any_spelling(pos_a, member_a, spelling):
    # given
    wallet_top_up(member=member_a, amount_paid="100.00", bonus="10.00", idempotency_key="t-1")
    # when
    response = pos_a.post("/api/v1/pos/members/lookup", {"mobile": spelling}, format="json")
    # then
    assert response.status_code == 200, response.json()
    assert response.json()["member_id"] == member_a.pk
    assert response.json()["mobile_masked"] == "138****0001"
    assert response.json()["wallet_balance"] == "110.00"


def test_member_lookup_by_qr_code(pos_a, member_a):
    response = pos_a.post("/api/v1/pos/members/lookup", {"qr_code": member_qr_code(member_a.pk)}, format="json")
    assert response.json()["member_id"] == member_a.pk


def test_a_tampered_qr_code_finds_nobody(pos_a, member_a, member_b):
    forged = member_qr_code(member_a.pk).replace(f"{member_a.pk}:", f"{member_b.pk}:", 1)
    response = pos_a.post("/api/v1/pos/members/lookup", {"qr_code": forged}, format="json")
    assert response.status_code == 400
    assert response.json()["fields"]["qr_code"][0]["code"] == "expired"


def test_wallet_spend_needs_the_qr_code_and_replays(pos_a, member_a):
    # given
    wallet_top_up(member=member_a, amount_paid="100.00", idempotency_key="t-1")
    body = {"qr_code": member_qr_code(member_a.pk), "amount": "30.00", "reference": "T-9"}
    # when
    by_mobile = post(pos_a, "wallet/spend", {"mobile": "13800000001", "amount": "30.00"})
    first = post(pos_a, "wallet/spend", body, key="spend-1")
    again = post(pos_a, "wallet/spend", body, key="spend-1")
    other = post(pos_a, "wallet/spend", {**body, "amount": "31.00"}, key="spend-1")
    # then
    assert by_mobile.status_code == 400
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert first.json()["amount"] == "-30.00"
    assert other.status_code == 422
    assert WalletEntry.objects.filter(kind="spend").count() == 1


def test_wallet_spend_never_overdraws(pos_a, member_a):
    wallet_top_up(member=member_a, amount_paid="10.00", idempotency_key="t-1")
    response = post(pos_a, "wallet/spend", {"qr_code": member_qr_code(member_a.pk), "amount": "10.01"})
    assert response.status_code == 400
    assert "Insufficient balance" in response.json()["fields"]["amount"][0]["message"]


def test_wallet_top_up_at_the_till(pos_a, member_a):
    response = post(pos_a, "wallet/top-up", {"mobile": "13800000001", "amount": "200.00"})
    assert response.status_code == 201
    assert response.json()["principal_after"] == "200.00"
    assert response.json()["bonus_delta"] == "0.00"


def test_points_redeem(pos_a, member_a):
    # given
    points_grant(member=member_a, points=500, kind="campaign_reward", reason="gift", idempotency_key="g-1")
    body = {"qr_code": member_qr_code(member_a.pk), "points": 200, "reason": "一杯奶茶"}
    # when
    response = post(pos_a, "points/redeem", body)
    too_many = post(pos_a, "points/redeem", {**body, "points": 301}, key="key-2")
    # then
    assert response.status_code == 201, response.json()
    assert response.json()["balance_after"] == 300
    assert too_many.status_code == 400
    assert PointsEntry.objects.filter(kind="redeem").count() == 1


@pytest.mark.parametrize(
    ("path", "body", "ledger"),
    [
        ("wallet/spend", {"amount": "30.00"}, WalletEntry),
        ("points/redeem", {"points": 200, "reason": "一杯奶茶"}, PointsEntry),
    ],
)
def test_a_retry_after_the_qr_code_expired_gets_the_first_answer(pos_a, member_a, settings, path, body, ledger):
    # given: a payment went through, but its response was lost
    wallet_top_up(member=member_a, amount_paid="100.00", idempotency_key="t-1")
    points_grant(member=member_a, points=500, kind="campaign_reward", reason="gift", idempotency_key="g-1")
    body = {**body, "qr_code": member_qr_code(member_a.pk)}
    first = post(pos_a, path, body, key="pay-1")
    # when: the till retries after the member's QR code has expired
    settings.HUIYUAN_MEMBER_QR_MAX_AGE = -1
    retry = post(pos_a, path, body, key="pay-1")
    fresh = post(pos_a, path, body, key="pay-2")
    # then: the retry is answered with the first result; a new payment needs a fresh code
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert fresh.status_code == 400
    assert ledger.objects.filter(kind__in=["spend", "redeem"]).count() == 1


def test_the_key_of_an_answered_order_refuses_a_body_that_fails(pos_a, member_a):
    # given: key-1 answered an order
    post(pos_a, "orders", order_body())
    # when: key-1 again, with a body whose write fails (the same external id, another amount: 409)
    response = post(pos_a, "orders", order_body(amount="99.00"))
    # then: the key's reuse is the answer, as when the write would have succeeded
    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert ApiIdempotencyRecord.objects.get(key="key-1").response_status == 201


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_of_one_order_record_it_once(store_a, member_a):
    # given: the member row is locked elsewhere, so both requests are in flight together
    from django.db import connection

    from members.models import Member
    from tests.concurrency import all_waiting_for_a_row

    from .conftest import store_client

    def send():
        return post(store_client(store_a), "orders", order_body())

    # when the lock goes
    outcomes = all_waiting_for_a_row(Member, member_a.pk, send, send)
    answers = [outcome["value"] for outcome in outcomes]
    # then: one order, one answer stored, and both callers got it
    assert [answer.status_code for answer in answers] == [201, 201]
    assert sorted(answer.get("Idempotent-Replayed", "") for answer in answers) == ["", "true"]
    assert answers[0].json() == answers[1].json()
    assert Order.objects.filter(external_id="POS-1").count() == 1
    assert ApiIdempotencyRecord.objects.filter(key="key-1").count() == 1
    assert PointsEntry.objects.filter(member=member_a, kind=PointsEntry.Kind.EARN).count() == 1
    connection.close()
