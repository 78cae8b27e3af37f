"""Bad input gets a 400 with a field-level message, and nothing is written."""

import pytest

from members.models import ApiIdempotencyRecord, Member, Order, PointsEntry, Refund, TopUpIntent, WalletEntry
from members.services.qr_codes import member_qr_code
from members.services.wallet import wallet_top_up
from tests.factories import OrderFactory

pytestmark = pytest.mark.django_db

LONG = "x" * 10_000
BAD_AMOUNTS = ["-1.00", "0", "0.00", "NaN", "Infinity", "-Infinity", "1.001", "abc", "", "1e400", 12.5, 12, None]


def written() -> tuple:
    return tuple(
        model.objects.count()
        for model in (Order, Refund, WalletEntry, PointsEntry, TopUpIntent, ApiIdempotencyRecord, Member)
    )


@pytest.fixture
def world(member_a, store_a, pos_a, client_a):
    OrderFactory(external_id="O-A", member=member_a, store=store_a)
    wallet_top_up(member=member_a, amount_paid="100.00", idempotency_key="seed")
    return {"pos": pos_a, "member": client_a, "qr": member_qr_code(member_a.pk)}


def operations(world):
    """(client, path, valid body, the field holding the amount) for every money-moving operation."""
    qr = world["qr"]
    return [
        (
            world["pos"],
            "/api/v1/pos/orders",
            {"external_id": "N-1", "mobile": "13800000001", "paid_at": "2026-01-05T10:00:00+08:00", "amount": "1.00"},
            "amount",
        ),
        (
            world["pos"],
            "/api/v1/pos/refunds",
            {"external_id": "R-1", "order_external_id": "O-A", "amount": "1.00"},
            "amount",
        ),
        (world["pos"], "/api/v1/pos/wallet/spend", {"qr_code": qr, "amount": "1.00"}, "amount"),
        (world["pos"], "/api/v1/pos/wallet/top-up", {"mobile": "13800000001", "amount": "1.00"}, "amount"),
        (world["pos"], "/api/v1/pos/points/redeem", {"qr_code": qr, "points": 1, "reason": "r"}, "points"),
        (world["member"], "/api/v1/me/top-ups", {"amount": "1.00"}, "amount"),
        (
            world["pos"],
            "/api/v1/pos/coupons/redeem",
            {"mobile": "13800000001", "coupon": "ABCDEFGHJK23", "amount": "1.00"},
            "amount",
        ),
    ]


def send(client, path, body):
    return client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY="bad-input")


@pytest.mark.parametrize("amount", BAD_AMOUNTS, ids=repr)
def test_bad_amounts(world, amount):
    for client, path, body, field in operations(world):
        if field != "amount":
            continue
        # given
        before = written()
        # when
        response = send(client, path, {**body, field: amount})
        # then
        assert response.status_code == 400, (path, amount, response.content)
        assert field in response.json()["fields"], (path, response.json())
        assert written() == before, path


@pytest.mark.parametrize("points", [-1, 0, "NaN", 1.5, "abc", "", None, 10**12, True])
def test_bad_points(world, points):
    client, path, body, _field = operations(world)[4]
    before = written()
    response = send(client, path, {**body, "points": points})
    assert response.status_code == 400
    assert "points" in response.json()["fields"]
    assert written() == before


@pytest.mark.parametrize("field", ["balance", "tier", "store", "member_id", "principal"])
def test_unknown_fields_are_refused(world, field):
    for client, path, body, _amount in operations(world):
        before = written()
        response = send(client, path, {**body, field: "999"})
        assert response.status_code == 400, path
        assert response.json()["fields"][field][0]["code"] == "unknown", path
        assert written() == before, path


def test_ten_thousand_character_strings(world):
    for client, path, body, _amount in operations(world):
        for field, value in body.items():
            if not isinstance(value, str) or field == "amount":
                continue
            before = written()
            response = send(client, path, {**body, field: LONG})
            assert response.status_code == 400, (path, field)
            assert field in response.json()["fields"], (path, field)
            assert written() == before
    for path, field in (("/api/v1/auth/wechat-login", "code"), ("/api/v1/auth/dev-login", "mobile")):
        response = world["member"].post(path, {field: LONG}, format="json")
        assert response.status_code == 400
        assert field in response.json()["fields"]


@pytest.mark.parametrize("paid_at", ["2026-13-45T10:00:00+08:00", "yesterday", "", "2026-01-05T25:00"])
def test_malformed_dates(world, paid_at):
    client, path, body, _amount = operations(world)[0]
    before = written()
    response = send(client, path, {**body, "paid_at": paid_at})
    assert response.status_code == 400
    assert "paid_at" in response.json()["fields"]
    assert written() == before


@pytest.mark.parametrize(
    "query",
    [
        {"paid_after": "2026-02-30"},
        {"paid_before": "soon"},
        {"status": "lost"},
        {"paid_after": "0001-01-01T00:00:00+01:00"},  # before year 1 in UTC
    ],
)
def test_malformed_filters(world, query):
    response = world["member"].get("/api/v1/me/orders", query)
    assert response.status_code == 400
    assert set(query) <= set(response.json()["fields"])


def test_a_time_offset_postgresql_does_not_know_is_compared_in_utc(world):
    # given: Python accepts offsets up to ±23:59, PostgreSQL only up to ±15:59
    query = {"created_after": "0283-02-09T01:13:37.41-16:44"}
    # when
    response = world["member"].get("/api/v1/me/points/entries", query)
    # then
    assert response.status_code == 200, response.content


@pytest.mark.parametrize("offer", [0, -1, "abc", 1.5, 2**31, None, True])
def test_bad_offer_ids(world, offer):
    before = written()
    response = send(world["member"], "/api/v1/me/top-ups", {"amount": "100.00", "offer": offer})
    assert response.status_code == 400, response.content
    assert "offer" in response.json()["fields"]
    assert written() == before


@pytest.mark.parametrize("limit", ["101", "1000000", "0", "-1", "ten", "1.5"])
def test_huge_or_silly_page_sizes(world, limit):
    response = world["member"].get("/api/v1/me/points/entries", {"limit": limit})
    assert response.status_code == 400
    assert "limit" in response.json()["fields"]


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"amount"', b"{not json", b"null"])
def test_a_body_that_is_not_an_object(world, raw):
    before = written()
    response = world["member"].generic("POST", "/api/v1/me/top-ups", raw, content_type="application/json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] in ("invalid", "parse_error")
    assert written() == before
