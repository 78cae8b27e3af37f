"""Top-ups: the intent, and WeChat Pay's callback — signature checked, credited once however often it comes."""

import json
import time
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from members import wechatpay
from members.models import TopUpIntent, Wallet, WalletEntry
from tests.api import fakes

pytestmark = pytest.mark.django_db

NOTIFY = "/api/v1/payments/wechat/notify"


def notify(body: bytes, headers: dict):
    extra = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()}
    return APIClient().post(NOTIFY, body, content_type="application/json", **extra)


def top_up(client, amount="200.00"):
    response = client.post("/api/v1/me/top-ups", {"amount": amount}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def balance(member) -> Decimal:
    wallet = Wallet.objects.filter(member=member).first()
    return wallet.principal if wallet else Decimal("0.00")


def test_a_top_up_intent_has_an_out_trade_no(client_a, member_a):
    body = top_up(client_a)
    intent = TopUpIntent.objects.get(out_trade_no=body["out_trade_no"])
    assert (intent.member, intent.amount, intent.status) == (member_a, Decimal("200.00"), "pending")
    assert len(body["out_trade_no"]) <= 32
    assert body["payment"] is None  # WeChat Pay's merchant side is not configured in this test


def test_a_valid_callback_credits_once_however_often_it_comes(client_a, member_a):
    # given
    trade = top_up(client_a)["out_trade_no"]
    body = fakes.payment_notification(out_trade_no=trade, transaction_id="4200000001", total=20000)
    # when: WeChat Pay calls, then calls again (a retry, freshly signed) and the same request is replayed
    first = notify(body, fakes.wechatpay_headers(body))
    retry = notify(body, fakes.wechatpay_headers(body))
    headers = fakes.wechatpay_headers(body)
    replay = [notify(body, headers) for _ in range(2)]
    # then
    assert [r.status_code for r in (first, retry, *replay)] == [204, 204, 204, 204]
    assert balance(member_a) == Decimal("200.00")
    assert WalletEntry.objects.filter(kind="top_up").count() == 1
    intent = TopUpIntent.objects.get(out_trade_no=trade)
    assert (intent.status, intent.transaction_id) == ("paid", "4200000001")
    assert client_a.get(f"/api/v1/me/top-ups/{trade}").json()["status"] == "paid"


@pytest.mark.parametrize("forgery", ["other_key", "tampered_body", "stale", "no_headers", "unknown_serial"])
def test_a_callback_not_signed_by_wechat_pay_is_refused(client_a, member_a, forgery):
    # given
    trade = top_up(client_a)["out_trade_no"]
    body = fakes.payment_notification(out_trade_no=trade, transaction_id="4200000001", total=20000)
    headers = fakes.wechatpay_headers(body)
    if forgery == "other_key":
        headers = fakes.wechatpay_headers(body, key="attacker")
    elif forgery == "tampered_body":
        body = body.replace(b"TRANSACTION.SUCCESS", b"TRANSACTION.SUCCESS ")
    elif forgery == "stale":
        headers = fakes.wechatpay_headers(body, timestamp=int(time.time()) - 3600)
    elif forgery == "no_headers":
        headers = {}
    elif forgery == "unknown_serial":
        headers["Wechatpay-Serial"] = "PUB_KEY_ID_OTHER"
    # when
    response = notify(body, headers)
    # then
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_signature"
    assert balance(member_a) == Decimal("0.00")


def test_a_callback_for_another_amount_credits_nothing(client_a, member_a):
    trade = top_up(client_a)["out_trade_no"]
    body = fakes.payment_notification(out_trade_no=trade, transaction_id="4200000001", total=1)
    response = notify(body, fakes.wechatpay_headers(body))
    assert response.status_code == 400
    assert response.json()["fields"]["amount"][0]["code"] == "amount_mismatch"
    assert balance(member_a) == Decimal("0.00")


def test_a_second_transaction_for_a_paid_top_up_is_a_conflict(client_a, member_a):
    trade = top_up(client_a)["out_trade_no"]
    for transaction_id, expected in (("4200000001", 204), ("4200000002", 409)):
        body = fakes.payment_notification(out_trade_no=trade, transaction_id=transaction_id, total=20000)
        assert notify(body, fakes.wechatpay_headers(body)).status_code == expected
    assert balance(member_a) == Decimal("200.00")


def test_a_resource_we_cannot_decrypt_is_refused(client_a, member_a):
    trade = top_up(client_a)["out_trade_no"]
    document = json.loads(fakes.payment_notification(out_trade_no=trade, transaction_id="42", total=20000))
    document["resource"] = wechatpay.encrypt_resource({"x": 1}, api_v3_key="f" * 32)
    body = json.dumps(document).encode()
    response = notify(body, fakes.wechatpay_headers(body))
    assert response.status_code == 400
    assert balance(member_a) == Decimal("0.00")


def test_a_closed_trade_is_acknowledged_without_credit(client_a, member_a):
    trade = top_up(client_a)["out_trade_no"]
    body = fakes.payment_notification(out_trade_no=trade, transaction_id="42", total=20000, state="CLOSED")
    assert notify(body, fakes.wechatpay_headers(body)).status_code == 204
    assert balance(member_a) == Decimal("0.00")


def test_another_members_top_up_is_not_found(client_a, client_b):
    trade = top_up(client_b)["out_trade_no"]
    assert client_a.get(f"/api/v1/me/top-ups/{trade}").status_code == 404


def test_top_ups_are_throttled(client_a, member_a):
    statuses = [client_a.post("/api/v1/me/top-ups", {"amount": "1.00"}, format="json").status_code for _ in range(12)]
    assert statuses[0] == 201
    assert statuses[-1] == 429
    assert TopUpIntent.objects.count() == 10


def test_with_wechat_pay_configured_the_intent_carries_signed_pay_params(client_a, member_a, settings):
    # given
    settings.WECHATPAY_MERCHANT_PRIVATE_KEY = fakes.private_pem("merchant")
    settings.WECHATPAY_MERCHANT_SERIAL_NO = "MERCHANT-SERIAL"
    settings.WECHATPAY_NOTIFY_URL = "https://example.test/api/v1/payments/wechat/notify"
    member_a.openid = "o-a"
    member_a.save()
    sent = {}

    def prepay(request, query):
        sent["body"] = json.loads(request.body)
        sent["authorization"] = request.headers["Authorization"]
        answer = json.dumps({"prepay_id": "wx-prepay-1"}).encode()
        return 200, answer, fakes.wechatpay_headers(answer)

    fakes.transport.route("/v3/pay/transactions/jsapi", prepay)
    # when
    body = top_up(client_a, "88.00")
    # then
    assert sent["body"]["amount"] == {"total": 8800, "currency": "CNY"}
    assert sent["body"]["payer"] == {"openid": "o-a"}
    assert sent["authorization"].startswith('WECHATPAY2-SHA256-RSA2048 mchid="1900000001"')
    payment = body["payment"]
    assert payment["package"] == "prepay_id=wx-prepay-1"
    message = f"{payment['app_id']}\n{payment['time_stamp']}\n{payment['nonce_str']}\n{payment['package']}\n"
    merchant_public = fakes.rsa_key("merchant").public_key()
    assert wechatpay.verify_signature(merchant_public, message.encode(), payment["pay_sign"])


def test_an_unsigned_prepay_answer_is_not_trusted(client_a, member_a, settings):
    settings.WECHATPAY_MERCHANT_PRIVATE_KEY = fakes.private_pem("merchant")
    settings.WECHATPAY_MERCHANT_SERIAL_NO = "MERCHANT-SERIAL"
    settings.WECHATPAY_NOTIFY_URL = "https://example.test/notify"
    member_a.openid = "o-a"
    member_a.save()
    fakes.transport.route("/v3/pay/transactions/jsapi", {"prepay_id": "wx-prepay-1"})
    response = client_a.post("/api/v1/me/top-ups", {"amount": "1.00"}, format="json")
    assert response.status_code == 503
    assert TopUpIntent.objects.get().status == "closed"
