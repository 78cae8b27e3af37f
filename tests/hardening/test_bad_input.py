"""Finding 5 (issue #20): input that used to answer 500 gets its 4xx, in the API's error shape,
and writes nothing."""

from decimal import Decimal

import pytest

from members.models import ApiIdempotencyRecord, LoyaltyProgram, Order, PointsEntry
from tests.api.conftest import member_client, store_client

pytestmark = pytest.mark.django_db

ORDERS = "/api/v1/pos/orders"


def order_body(**changes):
    return {
        "external_id": "BIG-1",
        "mobile": "13800000001",
        "paid_at": "2026-01-05T10:00:00+08:00",
        "amount": "38.00",
        **changes,
    }


def written():
    return Order.objects.count(), PointsEntry.objects.count(), ApiIdempotencyRecord.objects.count()


def assert_error_shape(body):
    assert set(body) == {"code", "message", "fields"}, body


@pytest.fixture
def pos(store_a, member_a):
    return store_client(store_a)


def test_a_ten_megabyte_body_is_413(pos):
    before = written()
    body = b'{"external_id": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    response = pos.post(ORDERS, data=body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-big")
    assert response.status_code == 413
    assert_error_shape(response.json())
    assert response.json()["code"] == "too_large"
    assert written() == before


def test_a_ten_megabyte_payment_callback_is_413(client):
    body = b"{" + b" " * (10 * 1024 * 1024) + b"}"
    response = client.post("/api/v1/payments/wechat/notify", data=body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"


@pytest.mark.parametrize("opening", ["[", '{"a":'])
def test_deeply_nested_json_is_400(pos, opening):
    before = written()
    closing = "]" if opening == "[" else "}"
    body = opening * 100_000 + "1" + closing * 100_000
    response = pos.post(ORDERS, data=body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-deep")
    assert response.status_code == 400
    assert_error_shape(response.json())
    assert written() == before


@pytest.mark.parametrize("external_id", ["%00", "A%00B"])
def test_a_nul_byte_in_a_path_parameter_is_404(pos, external_id):
    response = pos.get(f"{ORDERS}/{external_id}")
    assert response.status_code == 404
    assert_error_shape(response.json())


def test_a_nul_byte_in_a_member_path_parameter_is_404(member_a):
    response = member_client(member_a).get("/api/v1/me/top-ups/%00")
    assert response.status_code == 404


def test_an_order_of_three_billion_yuan_is_a_field_error(pos):
    before = written()
    response = pos.post(ORDERS, order_body(amount="3000000000.00"), format="json", HTTP_IDEMPOTENCY_KEY="k-3e9")
    assert response.status_code == 400
    assert_error_shape(response.json())
    assert response.json()["fields"]["amount"][0]["code"] == "max_value"
    assert written() == before


def test_the_largest_order_is_configurable(pos, settings):
    settings.HUIYUAN_ORDER_MAX_AMOUNT = "500.00"
    over = pos.post(ORDERS, order_body(amount="500.01"), format="json", HTTP_IDEMPOTENCY_KEY="k-over")
    assert over.status_code == 400
    assert "500.00" in over.json()["fields"]["amount"][0]["message"]
    at = pos.post(ORDERS, order_body(amount="500.00"), format="json", HTTP_IDEMPOTENCY_KEY="k-at")
    assert at.status_code == 201, at.json()


def test_the_default_largest_order_earns_points_in_range(pos):
    response = pos.post(ORDERS, order_body(amount="1000000.00"), format="json", HTTP_IDEMPOTENCY_KEY="k-max")
    assert response.status_code == 201, response.json()


def test_points_out_of_range_are_a_field_error_not_a_500(pos):
    # given a points rate so high that an order within the maximum amount earns too many points
    program = LoyaltyProgram.current()
    program.points_per_yuan = Decimal("999999.99")
    program.save()
    before = written()
    # when
    response = pos.post(ORDERS, order_body(amount="10000.00"), format="json", HTTP_IDEMPOTENCY_KEY="k-rate")
    # then
    assert response.status_code == 400, response.content
    assert response.json()["fields"]["amount"][0]["code"] == "max_value"
    assert written() == before
