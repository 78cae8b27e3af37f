"""Issue #20, finding 1: order and refund external ids are unique per store, not across the brand.

Two stores' tills may both number an order ``1001``; a store key learns nothing about another
store's ids (an id taken elsewhere answers exactly like one never used); refunds find their order,
and their own id, within the store."""

import datetime as dt
from decimal import Decimal

import pytest

from members.models import Order, PointsEntry, Refund
from members.services.orders import IdempotencyConflict, order_record, refund_record
from tests.api.conftest import store_client
from tests.factories import MemberFactory, OrderFactory

pytestmark = pytest.mark.django_db

PAID_AT = "2026-01-05T12:30:00+08:00"
PAID = dt.datetime.fromisoformat(PAID_AT)


def order_body(**overrides):
    return {"external_id": "1001", "mobile": "13800000001", "paid_at": PAID_AT, "amount": "38.50", **overrides}


def post(client, path, body, key):
    return client.post(f"/api/v1/pos/{path}", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_two_stores_can_both_record_order_1001(pos_a, store_a, store_b, member_a, member_b):
    # given
    pos_b = store_client(store_b)
    assert post(pos_a, "orders", order_body(), "a-1").status_code == 201
    # when: store B's till numbers its own order 1001 too, for another member and amount
    response = post(pos_b, "orders", order_body(mobile="13800000002", amount="99.00"), "b-1")
    # then
    assert response.status_code == 201, response.json()
    assert response.json()["store_code"] == "B001"
    assert sorted(Order.objects.values_list("store__code", "member__mobile", "amount")) == [
        ("A001", "13800000001", Decimal("38.50")),
        ("B001", "13800000002", Decimal("99.00")),
    ]
    assert PointsEntry.objects.filter(order__store=store_b).count() == 1


def test_another_stores_order_id_answers_like_an_unknown_id(pos_a, store_a, store_b, member_a):
    # given store A's order 1001
    pos_b = store_client(store_b)
    post(pos_a, "orders", order_body(), "a-1")
    # when store B probes it, and an id nobody used
    taken, unused = pos_b.get("/api/v1/pos/orders/1001"), pos_b.get("/api/v1/pos/orders/7777")
    refund_taken = post(pos_b, "refunds", {"external_id": "R-1", "order_external_id": "1001", "amount": "1.00"}, "b-1")
    refund_unused = post(pos_b, "refunds", {"external_id": "R-1", "order_external_id": "7777", "amount": "1.00"}, "b-2")
    # then: the same answers, field for field
    assert taken.status_code == unused.status_code == 404
    assert taken.json() == unused.json()
    assert refund_taken.status_code == refund_unused.status_code == 404
    assert refund_taken.json() == refund_unused.json()
    assert not Refund.objects.exists()


def test_a_probe_with_other_content_on_another_stores_id_learns_nothing(pos_a, store_a, store_b, member_a):
    # given store A's order 1001 of member A, ¥38.50
    pos_b = store_client(store_b)
    post(pos_a, "orders", order_body(), "a-1")
    # when store B sends 1001 with the same member and another amount (once a 409 naming "amount")
    probe = post(pos_b, "orders", order_body(amount="1.00"), "b-1")
    # then: it is simply store B's new order; A's is untouched
    assert probe.status_code == 201
    assert "fields" not in probe.json()
    assert probe.json()["amount"] == "1.00"
    assert Order.objects.get(store=store_a).amount == Decimal("38.50")


def test_within_a_store_a_replay_is_answered_and_a_conflict_names_only_its_own_fields(
    pos_a, store_a, store_b, member_a, member_b
):
    # given the same id at both stores, with different content
    pos_b = store_client(store_b)
    post(pos_a, "orders", order_body(), "a-1")
    post(pos_b, "orders", order_body(mobile="13800000002", amount="99.00"), "b-1")
    # when
    replay = post(pos_b, "orders", order_body(mobile="13800000002", amount="99.00"), "b-2")
    conflict = post(pos_b, "orders", order_body(mobile="13800000002", amount="38.50"), "b-3")
    # then: B's replay is B's order; B's conflict compares with B's order (amount), never A's
    assert replay.status_code == 200
    assert replay.json()["amount"] == "99.00"
    assert conflict.status_code == 409
    message = conflict.json()["fields"]["external_id"][0]["message"]
    assert "different amount;" in message
    assert "member" not in message
    assert "store" not in message
    assert Order.objects.count() == 2


def test_a_refund_finds_its_order_and_its_id_within_the_store(store_a, store_b):
    # given order 1001 at both stores
    ours = OrderFactory(external_id="1001", store=store_a, member=MemberFactory(home_store=store_a))
    theirs = OrderFactory(external_id="1001", store=store_b, member=MemberFactory(home_store=store_b))
    pos_a, pos_b = store_client(store_a), store_client(store_b)
    body = {"external_id": "R-1", "order_external_id": "1001", "amount": "5.00"}
    # when both stores refund "their" 1001 with refund id R-1
    first = post(pos_a, "refunds", body, "a-1")
    second = post(pos_b, "refunds", {**body, "amount": "7.00"}, "b-1")
    replay = post(pos_b, "refunds", {**body, "amount": "7.00"}, "b-2")
    # then
    assert (first.status_code, second.status_code, replay.status_code) == (201, 201, 200)
    assert sorted(Refund.objects.values_list("store__code", "order_id", "amount")) == [
        ("A001", ours.pk, Decimal("5.00")),
        ("B001", theirs.pk, Decimal("7.00")),
    ]
    ours.refresh_from_db()
    theirs.refresh_from_db()
    assert (ours.refunded_amount, theirs.refunded_amount) == (Decimal("5.00"), Decimal("7.00"))


def test_the_services_scope_ids_to_the_store(store_a, store_b):
    # given
    member = MemberFactory(home_store=store_a)
    a = order_record(external_id="1001", member=member, store=store_a, paid_at=PAID, amount="10.00")
    # when
    b = order_record(external_id="1001", member=member, store=store_b, paid_at=PAID, amount="20.00")
    again = order_record(external_id="1001", member=member, store=store_b, paid_at=PAID, amount="20.00")
    refund_a = refund_record(external_id="R-1", order=a.order, amount="1.00")
    refund_b = refund_record(external_id="R-1", order=b.order, amount="2.00")
    # then
    assert (a.created, b.created, again.created) == (True, True, False)
    assert again.order.pk == b.order.pk
    assert (refund_a.created, refund_b.created) == (True, True)
    assert (refund_a.refund.store_id, refund_b.refund.store_id) == (store_a.pk, store_b.pk)
    with pytest.raises(IdempotencyConflict):  # the same refund id at B for another amount
        refund_record(external_id="R-1", order=b.order, amount="3.00")
