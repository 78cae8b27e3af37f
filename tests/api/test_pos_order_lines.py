"""A POS order with its lines: stored with the order, idempotent, field-level errors, and no extra
query for an order without lines."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from members.models import Order, OrderLine
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db

PAID_AT = "2026-01-05T12:30:00+08:00"


@pytest.fixture
def catalogue(db):
    return {
        "milk-tea": ProductFactory(sku="MT-01", name="珍珠奶茶", category="奶茶"),
        "fruit-tea": ProductFactory(sku="FT-01", name="满杯百香果", category="果茶", tags=["唤醒商品"]),
    }


LINES = [{"sku": "MT-01", "quantity": 2, "amount": "30.00"}, {"sku": "FT-01", "quantity": 1, "amount": "8.50"}]


def order_body(**overrides):
    return {
        "external_id": "POS-L1",
        "mobile": "13800000001",
        "paid_at": PAID_AT,
        "amount": "38.50",
        "lines": LINES,
        **overrides,
    }


def post(client, body, key="key-1"):
    return client.post("/api/v1/pos/orders", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_an_order_with_lines_is_recorded_with_them(pos_a, member_a, catalogue):
    # when
    response = post(pos_a, order_body())
    # then
    assert response.status_code == 201, response.json()
    order = Order.objects.get(external_id="POS-L1")
    stored = sorted(OrderLine.objects.filter(order=order).values_list("product__sku", "quantity", "amount"))
    assert stored == [("FT-01", 1, Decimal("8.50")), ("MT-01", 2, Decimal("30.00"))]
    assert response.json()["lines"] == [
        {"sku": "MT-01", "name": "珍珠奶茶", "category": "奶茶", "quantity": 2, "amount": "30.00"},
        {"sku": "FT-01", "name": "满杯百香果", "category": "果茶", "quantity": 1, "amount": "8.50"},
    ]


def test_the_order_detail_lists_its_lines(pos_a, member_a, catalogue):
    # given
    post(pos_a, order_body())
    # when
    response = pos_a.get("/api/v1/pos/orders/POS-L1")
    # then
    assert response.status_code == 200
    assert {line["sku"] for line in response.json()["lines"]} == {"MT-01", "FT-01"}


def test_a_retry_with_the_same_key_and_lines_replays_and_adds_nothing(pos_a, member_a, catalogue):
    # given
    first = post(pos_a, order_body())
    # when
    again = post(pos_a, order_body())
    # then
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert OrderLine.objects.count() == 2


def test_a_resend_under_a_new_key_with_the_same_lines_answers_200(pos_a, member_a, catalogue):
    # given
    post(pos_a, order_body())
    # when
    again = post(pos_a, order_body(lines=list(reversed(LINES))), key="key-2")
    # then
    assert again.status_code == 200, again.json()
    assert len(again.json()["lines"]) == 2
    assert OrderLine.objects.count() == 2


@pytest.mark.parametrize(
    "lines",
    [
        [{"sku": "MT-01", "quantity": 3, "amount": "30.00"}, LINES[1]],
        [LINES[0]],
        None,
    ],
    ids=["another-quantity", "a-line-less", "no-lines"],
)
def test_a_resend_with_other_lines_is_a_conflict(pos_a, member_a, catalogue, lines):
    # given
    post(pos_a, order_body())
    body = order_body(lines=lines) if lines is not None else {k: v for k, v in order_body().items() if k != "lines"}
    # when
    again = post(pos_a, body, key="key-2")
    # then
    assert again.status_code == 409, again.json()
    assert again.json()["code"] == "conflict"
    assert OrderLine.objects.count() == 2


def test_the_same_key_with_other_lines_is_refused(pos_a, member_a, catalogue):
    # given
    post(pos_a, order_body())
    # when
    again = post(pos_a, order_body(lines=[LINES[0]]))
    # then
    assert again.status_code == 422
    assert OrderLine.objects.count() == 2


@pytest.mark.parametrize(
    ("lines", "field", "code"),
    [
        ([{"sku": "NOPE", "quantity": 1, "amount": "8.00"}], "lines.0.sku", "unknown_sku"),
        ([LINES[0], {"sku": "FT-01", "quantity": 0, "amount": "8.00"}], "lines.1.quantity", "min_value"),
        ([{"sku": "MT-01", "quantity": 1, "amount": "0.00"}], "lines.0.amount", "min_value"),
        ([{"sku": "MT-01", "quantity": 1, "amount": 8.5}], "lines.0.amount", "not_a_string"),
        ([{"sku": "MT-01", "quantity": 1, "amount": "38.51"}], "lines", "lines_exceed_amount"),
        ([LINES[0], {"sku": "MT-01", "quantity": 1, "amount": "1.00"}], "lines.1.sku", "duplicate_sku"),
        ([{"sku": "MT-01", "quantity": 1, "amount": "1.00", "price": "1"}], "lines.0.price", "unknown"),
    ],
    ids=["unknown-sku", "zero-quantity", "zero-amount", "float", "above-the-order", "sku-twice", "unknown-field"],
)
def test_bad_lines_are_field_errors_and_record_nothing(pos_a, member_a, catalogue, lines, field, code):
    # when
    response = post(pos_a, order_body(lines=lines))
    # then
    assert response.status_code == 400, response.json()
    assert response.json()["fields"][field][0]["code"] == code
    assert not Order.objects.exists()
    assert not OrderLine.objects.exists()


def test_lines_may_add_up_to_less_than_the_order(pos_a, member_a, catalogue):
    # when: a bag and a tip the catalogue does not know
    response = post(pos_a, order_body(amount="40.00"))
    # then
    assert response.status_code == 201, response.json()


def _queries(client, body, key) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert post(client, body, key=key).status_code == 201
    return len(queries)


def test_lines_cost_two_queries_and_an_order_without_lines_none(pos_a, member_a, catalogue):
    # given: warm (first order of the member, caches)
    post(pos_a, order_body(external_id="WARM-1", lines=[]), key="warm-1")
    post(pos_a, order_body(external_id="WARM-2", lines=[]), key="warm-2")
    without_key = {k: v for k, v in order_body(external_id="N-2").items() if k != "lines"}
    # when
    plain = _queries(pos_a, {k: v for k, v in order_body(external_id="N-1").items() if k != "lines"}, "n-1")
    plain_again = _queries(pos_a, without_key, "n-2")
    empty = _queries(pos_a, order_body(external_id="E-1", lines=[]), "e-1")
    with_lines = _queries(pos_a, order_body(external_id="L-1"), "l-1")
    # then: no query without lines; with lines one to find the products, one to insert them
    assert plain == plain_again == empty
    assert with_lines == plain + 2


def test_the_openapi_schema_documents_the_lines(db):
    # when
    schema = APIClient().get("/api/schema/?format=json").json()
    # then: the request takes lines, the answer lists them
    operation = schema["paths"]["/api/v1/pos/orders"]["post"]
    request = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    lines = schema["components"]["schemas"][request]["properties"]["lines"]
    assert lines["type"] == "array" and "lines" not in schema["components"]["schemas"][request].get("required", [])
    line = schema["components"]["schemas"][lines["items"]["$ref"].rsplit("/", 1)[1]]
    assert set(line["properties"]) == {"sku", "quantity", "amount"}
    answer = operation["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert "lines" in schema["components"]["schemas"][answer]["properties"]


# --- refunds naming lines ------------------------------------------------------------------------------


def refund(client, body, key):
    return client.post("/api/v1/pos/refunds", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def refund_body(lines, amount, external_id="R-L1"):
    return {"external_id": external_id, "order_external_id": "POS-L1", "amount": amount, "lines": lines}


def test_a_refund_names_the_lines_it_gives_back(pos_a, member_a, catalogue):
    # given: 2 milk teas for 30.00 and a fruit tea for 8.50
    assert post(pos_a, order_body()).status_code == 201
    # when: one milk tea back
    response = refund(pos_a, refund_body([{"sku": "MT-01", "quantity": 1, "amount": "15.00"}], "15.00"), "r1")
    # then
    assert response.status_code == 201, response.content
    assert response.json()["lines"] == [{"sku": "MT-01", "quantity": 1, "amount": "15.00"}]
    line = OrderLine.objects.get(product__sku="MT-01")
    assert (line.refunded_quantity, line.refunded_amount) == (1, Decimal("15.00"))
    # a retry with the same lines replays (another key, same refund id); other lines are a 409
    again = refund(pos_a, refund_body([{"sku": "MT-01", "quantity": 1, "amount": "15.00"}], "15.00"), "r2")
    assert again.status_code == 200 and again.json()["lines"] == response.json()["lines"]
    other = refund(pos_a, refund_body([{"sku": "FT-01", "quantity": 1, "amount": "15.00"}], "15.00"), "r3")
    assert other.status_code == 409, other.content
    line.refresh_from_db()
    assert (line.refunded_quantity, line.refunded_amount) == (1, Decimal("15.00"))


@pytest.mark.parametrize(
    ("lines", "amount", "code"),
    [
        ([{"sku": "NOPE", "quantity": 1, "amount": "1.00"}], "1.00", "unknown_line"),
        ([{"sku": "MT-01", "quantity": 3, "amount": "15.00"}], "15.00", "over_refund"),
        ([{"sku": "FT-01", "quantity": 1, "amount": "9.00"}], "9.00", "over_refund"),
        ([{"sku": "FT-01", "quantity": 1, "amount": "8.50"}], "5.00", "lines_total"),
        (
            [{"sku": "FT-01", "quantity": 1, "amount": "1.00"}, {"sku": "FT-01", "quantity": 0, "amount": "1.00"}],
            "2.00",
            "duplicate_product",
        ),
    ],
)
def test_refund_lines_are_checked_and_nothing_is_half_written(pos_a, member_a, catalogue, lines, amount, code):
    assert post(pos_a, order_body()).status_code == 201
    response = refund(pos_a, refund_body(lines, amount), "r1")
    assert response.status_code == 400, response.content
    assert response.json()["fields"]["lines"][0]["code"] == code
    order = Order.objects.get(external_id="POS-L1")
    assert order.refunded_amount == Decimal("0.00") and not order.refunds.exists()
    assert set(OrderLine.objects.values_list("refunded_quantity", "refunded_amount")) == {(0, Decimal("0.00"))}
