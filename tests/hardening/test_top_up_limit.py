"""Finding 3: top-up ceilings — the largest top-up and the largest wallet balance, the brand's or a
store's — hold everywhere money enters a wallet (till, mini-program and its payment callback, admin,
offer bonus), under concurrency too; a refusal is a field-level 400 and writes nothing."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from rest_framework.test import APIClient

from campaigns.models import OfferTopUp
from campaigns.services.offers import offer_top_up
from members.models import LoyaltyProgram, TopUpIntent, Wallet, WalletEntry
from members.services.qr_codes import member_qr_code
from members.services.reconcile import balances_reconcile
from members.services.wallet import wallet_refund_spend, wallet_spend, wallet_top_up
from tests.api import fakes
from tests.api.conftest import store_client
from tests.concurrency import all_waiting_for_a_row
from tests.factories import MemberFactory, StoreFactory, TopUpOfferFactory

pytestmark = pytest.mark.django_db

D = Decimal
TOP_UP = "/api/v1/pos/wallet/top-up"
NOTIFY = "/api/v1/payments/wechat/notify"


def pos_top_up(client, amount, *, key, mobile="13800000001"):
    return client.post(TOP_UP, {"mobile": mobile, "amount": amount}, format="json", HTTP_IDEMPOTENCY_KEY=key)


def total(member) -> Decimal:
    wallet = Wallet.objects.filter(member=member).first()
    return wallet.total if wallet else D("0.00")


def fill(member, amount: str, *, pieces: int = 1) -> None:
    """Top the wallet up to ``amount`` (in pieces within the largest top-up)."""
    piece = D(amount) / pieces
    for n in range(pieces):
        wallet_top_up(member=member, amount_paid=piece, idempotency_key=f"fill-{member.pk}-{n}")


def field_error(response, field="amount") -> dict:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid"
    return body["fields"][field][0]


# --- the till ---------------------------------------------------------------------------------------


def test_two_pos_top_ups_of_the_largest_amount_are_refused(pos_a, member_a):
    # when: the probe's two top-ups of ¥9,999,999,999.99
    first = pos_top_up(pos_a, "9999999999.99", key="probe-1")
    second = pos_top_up(pos_a, "9999999999.99", key="probe-2")
    # then
    for response in (first, second):
        error = field_error(response)
        assert error["code"] == "max_value"
        assert "5000.00" in error["message"]
    assert not WalletEntry.objects.exists()
    assert total(member_a) == D("0.00")


def test_the_brands_largest_top_up_is_allowed_one_cent_more_is_not(pos_a, member_a):
    assert pos_top_up(pos_a, "5000.00", key="at").status_code == 201
    assert field_error(pos_top_up(pos_a, "5000.01", key="over"))["code"] == "max_value"
    assert total(member_a) == D("5000.00")


def test_a_top_up_may_not_bring_the_wallet_over_the_largest_balance(pos_a, member_a):
    # given: ¥48,000 in the wallet (the default largest balance is ¥50,000)
    fill(member_a, "48000.00", pieces=10)
    # when
    over = pos_top_up(pos_a, "2000.01", key="over")
    # then
    error = field_error(over)
    assert error["code"] == "balance_limit"
    assert "50000.00" in error["message"]
    assert total(member_a) == D("48000.00")
    assert pos_top_up(pos_a, "2000.00", key="at").status_code == 201
    assert total(member_a) == D("50000.00")


def test_the_brands_limits_are_configurable(pos_a, member_a):
    # given
    program = LoyaltyProgram.current()
    program.top_up_max_amount, program.wallet_max_balance = D("300.00"), D("500.00")
    program.save()
    # then
    assert field_error(pos_top_up(pos_a, "300.01", key="a"))["code"] == "max_value"
    assert pos_top_up(pos_a, "300.00", key="b").status_code == 201
    assert field_error(pos_top_up(pos_a, "200.01", key="c"))["code"] == "balance_limit"
    assert total(member_a) == D("300.00")


def test_a_store_overrides_the_brands_limits(member_a, store_a):
    # given: store A allows at most ¥100 per top-up and ¥150 in a wallet; store B keeps the brand's
    store_a.top_up_max_amount, store_a.wallet_max_balance = D("100.00"), D("150.00")
    store_a.save()
    pos_a, pos_b = store_client(store_a), store_client(StoreFactory(code="B009"))
    # then
    assert "100.00" in field_error(pos_top_up(pos_a, "100.01", key="a1"))["message"]
    assert pos_top_up(pos_a, "100.00", key="a2").status_code == 201
    assert field_error(pos_top_up(pos_a, "50.01", key="a3"))["code"] == "balance_limit"
    assert pos_top_up(pos_b, "1000.00", key="b1").status_code == 201  # the brand's ¥5,000 and ¥50,000
    assert total(member_a) == D("1100.00")


def test_spending_and_refunds_are_never_limited(member_a):
    # given: a wallet above a ceiling lowered afterwards
    fill(member_a, "1000.00")
    program = LoyaltyProgram.current()
    program.wallet_max_balance = D("100.00")
    program.save()
    # when
    spend = wallet_spend(member=member_a, amount="10.00", idempotency_key="s")
    wallet_refund_spend(spend_entry=spend, idempotency_key="r")
    # then
    assert total(member_a) == D("1000.00")


# --- offers and the admin ---------------------------------------------------------------------------


def test_an_offers_bonus_counts_towards_the_largest_balance(member_a):
    # given: ¥49,900 in the wallet; the offer pays ¥10 on top of a top-up of ¥100
    fill(member_a, "49900.00", pieces=10)
    offer = TopUpOfferFactory()
    # when
    with pytest.raises(ValidationError) as refused:
        offer_top_up(member=member_a, offer=offer, amount_paid="100.00", idempotency_key="offer-1")
    # then: nothing credited, and the offer's use was given back
    assert refused.value.error_dict["amount_paid"][0].code == "balance_limit"
    assert total(member_a) == D("49900.00")
    assert not OfferTopUp.objects.exists()


def test_the_admin_top_up_is_limited(staff_client, member_a):
    # when
    response = staff_client.post(
        "/admin/members/wallet/top-up/",
        {
            "mobile": member_a.mobile,
            "amount_paid": "5000.01",
            "bonus": "0",
            "reason": "counter",
            "idempotency_key": "admin-1",
        },
    )
    # then
    assert response.status_code == 200  # the form again, with the error at the field
    assert "5000.00" in response.content.decode()
    assert not WalletEntry.objects.exists()


# --- the mini-program -------------------------------------------------------------------------------


def notify(body: bytes):
    headers = fakes.wechatpay_headers(body)
    extra = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()}
    return APIClient().post(NOTIFY, body, content_type="application/json", **extra)


def test_a_mini_program_top_up_over_a_ceiling_is_refused_before_payment(client_a, member_a):
    over = client_a.post("/api/v1/me/top-ups", {"amount": "5000.01"}, format="json")
    assert field_error(over)["code"] == "max_value"
    fill(member_a, "49900.00", pieces=10)
    full = client_a.post("/api/v1/me/top-ups", {"amount": "200.00"}, format="json")
    assert field_error(full)["code"] == "balance_limit"
    assert not TopUpIntent.objects.exists()


def test_a_payment_that_would_overfill_the_wallet_is_refused_and_never_credited_later(client_a, member_a, pos_a):
    # given: an intent of ¥200 accepted at ¥49,700, then the till tops up ¥200 before the payment arrives
    fill(member_a, "49700.00", pieces=10)
    trade = client_a.post("/api/v1/me/top-ups", {"amount": "200.00"}, format="json").json()["out_trade_no"]
    assert pos_top_up(pos_a, "200.00", key="till").status_code == 201
    body = fakes.payment_notification(out_trade_no=trade, transaction_id="4200000077", total=20000)
    # when
    refused = notify(body)
    # then
    assert field_error(refused, "amount_paid")["code"] == "balance_limit"
    assert total(member_a) == D("49900.00")
    assert TopUpIntent.objects.get(out_trade_no=trade).status == TopUpIntent.Status.REFUSED
    # and when the member spends and WeChat Pay retries, the refused payment is still not credited
    wallet_spend(member=member_a, amount="1000.00", idempotency_key="spend")
    assert field_error(notify(body), "out_trade_no")["code"] == "refused"
    assert total(member_a) == D("48900.00")
    assert not WalletEntry.objects.filter(reference=trade).exists()


# --- concurrency ------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_top_ups_at_once_near_the_largest_balance_cannot_both_pass():
    # given: ¥49,000 in the wallet, and two top-ups of ¥600 in flight together behind its row lock
    member = MemberFactory()
    fill(member, "49000.00", pieces=10)
    wallet = Wallet.objects.get(member=member)

    def top_up(n):
        return lambda: wallet_top_up(member=member, amount_paid="600.00", idempotency_key=f"race-{n}")

    # when
    outcomes = all_waiting_for_a_row(Wallet, wallet.pk, top_up(1), top_up(2))
    # then: one passes, the other is refused at the ceiling
    assert sorted("value" in outcome for outcome in outcomes) == [False, True], outcomes
    refused = next(outcome["error"] for outcome in outcomes if "error" in outcome)
    assert isinstance(refused, ValidationError)
    assert refused.error_dict["amount_paid"][0].code == "balance_limit"
    assert total(member) == D("49600.00")
    assert balances_reconcile() == []


def test_two_pos_top_ups_use_the_qr_code_too(pos_a, member_a):
    """The ceiling does not depend on how the member is named."""
    response = pos_a.post(
        TOP_UP,
        {"qr_code": member_qr_code(member_a.pk), "amount": "9999999999.99"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="qr-1",
    )
    assert field_error(response)["code"] == "max_value"
