"""Finding 8: members can be blocked (every way in refuses them) and, on a PIPL request, their personal
data exported and erased — the member anonymised, money and points history kept and consistent."""

import datetime as dt
import io
import json
from decimal import Decimal

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from members.models import Member, Order, PointsEntry, Refund, TopUpIntent, WalletEntry
from members.services.points import points_grant
from members.services.privacy import erased_mobile, member_block, member_erase, member_unblock
from members.services.qr_codes import member_qr_code
from members.services.reconcile import balances_reconcile
from members.services.tokens import member_tokens_issue
from members.services.wallet import wallet_refund_top_up, wallet_spend, wallet_top_up
from tests.api import fakes
from tests.factories import FollowUpTaskFactory, MemberFactory, OrderFactory, OutboxMessageFactory, RefundFactory
from tests.workspace.builders import role_user

pytestmark = pytest.mark.django_db

PAID_AT = "2026-01-05T12:30:00+08:00"
PAID = dt.datetime.fromisoformat(PAID_AT)


def pos(client, path, body, key):
    return client.post(f"/api/v1/pos/{path}", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def bearer(access: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client


@pytest.fixture
def history(member_a, store_a):
    """An order partly refunded, points, a top-up spent in full."""
    order = OrderFactory(external_id="O-1", member=member_a, store=store_a, paid_at=PAID, amount=Decimal("120.00"))
    RefundFactory(external_id="R-1", order=order, amount=Decimal("20.00"))
    order.refunded_amount, order.status = Decimal("20.00"), Order.Status.PARTIALLY_REFUNDED
    order.save()
    points_grant(member=member_a, points=120, kind="campaign_reward", reason="gift", idempotency_key="p-1")
    top_up = wallet_top_up(member=member_a, amount_paid="100.00", bonus="10.00", idempotency_key="t-1")
    wallet_spend(member=member_a, amount="110.00", idempotency_key="s-1")
    return {"order": order, "top_up": top_up}


# --- blocking ---------------------------------------------------------------------------------------


def test_a_blocked_members_tokens_stop_working_at_once(member_a):
    # given
    tokens = member_tokens_issue(member_id=member_a.pk)
    client = bearer(tokens["access"])
    assert client.get("/api/v1/me/orders").status_code == 200
    # when
    member_block(member_ids=[member_a.pk])
    # then: the access token, the QR code and the refresh token are refused
    for path in ("/api/v1/me", "/api/v1/me/orders", "/api/v1/me/qr-code", "/api/v1/me/data-export"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.json()["code"] == "member_inactive"
    refresh = APIClient().post("/api/v1/auth/refresh", {"refresh": tokens["refresh"]}, format="json")
    assert refresh.status_code == 401


def test_a_blocked_member_cannot_log_in(member_a):
    # given
    member_a.openid = "o-blocked"
    member_a.save()
    member_block(member_ids=[member_a.pk])
    fakes.transport.route("/sns/jscode2session", {"openid": "o-blocked", "session_key": "K"})
    # when
    wechat = APIClient().post("/api/v1/auth/wechat-login", {"code": "c"}, format="json")
    dev = APIClient().post("/api/v1/auth/dev-login", {"mobile": member_a.mobile}, format="json")
    # then
    for response in (wechat, dev):
        assert response.status_code == 403
        assert response.json()["code"] == "member_inactive"
        assert "tokens" not in response.json()


def test_a_blocked_member_cannot_bind_a_new_wechat_account(member_a):
    # given: a blocked member registered in a store; WeChat vouches for their number
    member_block(member_ids=[member_a.pk])
    fakes.transport.route("/sns/jscode2session", {"openid": "o-new", "session_key": "K"})
    fakes.transport.route("/cgi-bin/token", {"access_token": "AT-1", "expires_in": 7200})
    fakes.transport.route(
        "/wxa/business/getuserphonenumber",
        {"errcode": 0, "phone_info": {"purePhoneNumber": member_a.mobile, "countryCode": "86"}},
    )
    token = APIClient().post("/api/v1/auth/wechat-login", {"code": "c"}, format="json").json()["registration_token"]
    # when
    response = APIClient().post(
        "/api/v1/auth/wechat-register", {"registration_token": token, "phone_code": "pc"}, format="json"
    )
    # then
    assert (response.status_code, response.json()["code"]) == (403, "member_inactive")
    assert Member.objects.get(pk=member_a.pk).openid is None
    assert Member.objects.count() == 1


def test_a_blocked_member_cannot_be_served_at_a_till(pos_a, member_a, store_a, history):
    # given: a QR code shown before the member was blocked
    qr_code = member_qr_code(member_a.pk)
    member_block(member_ids=[member_a.pk])
    before = (Order.objects.count(), WalletEntry.objects.count(), PointsEntry.objects.count())
    # when
    answers = [
        pos(pos_a, "members/lookup", {"mobile": member_a.mobile}, "k1"),
        pos(pos_a, "members/lookup", {"qr_code": qr_code}, "k2"),
        pos(
            pos_a,
            "orders",
            {"external_id": "O-2", "mobile": member_a.mobile, "paid_at": PAID_AT, "amount": "9.00"},
            "k3",
        ),
        pos(pos_a, "wallet/top-up", {"mobile": member_a.mobile, "amount": "50.00"}, "k4"),
        pos(pos_a, "wallet/spend", {"qr_code": qr_code, "amount": "1.00"}, "k5"),
        pos(pos_a, "points/redeem", {"qr_code": qr_code, "points": 1, "reason": "gift"}, "k6"),
    ]
    # then
    for response in answers:
        assert response.status_code == 400, response.content
        codes = {error["code"] for errors in response.json()["fields"].values() for error in errors}
        assert codes == {"member_inactive"}
    assert (Order.objects.count(), WalletEntry.objects.count(), PointsEntry.objects.count()) == before
    # but a refund of their order still goes through: money goes back
    refund = pos(pos_a, "refunds", {"external_id": "R-2", "order_external_id": "O-1", "amount": "10.00"}, "k7")
    assert refund.status_code == 201, refund.content


def test_unblocking_lets_the_member_in_again(member_a):
    member_block(member_ids=[member_a.pk])
    member_unblock(member_ids=[member_a.pk])
    access = member_tokens_issue(member_id=member_a.pk)["access"]
    assert bearer(access).get("/api/v1/me/qr-code").status_code == 200


# --- export -----------------------------------------------------------------------------------------


def test_the_export_holds_the_members_data_and_no_one_elses(member_a, member_b, store_a, history, tmp_path):
    # given: another member's order at the same store
    OrderFactory(external_id="O-B", member=member_b, store=store_a, paid_at=PAID, amount=Decimal("5.00"))
    target = tmp_path / "export.json"
    # when
    call_command("export_member_data", "+86 138-0000-0001", str(target), stderr=io.StringIO())
    # then
    document = json.loads(target.read_text(encoding="utf-8"))
    assert document["member"]["mobile"] == "13800000001"
    assert document["member"]["name"] == "张三"
    records = document["records"]
    assert [row["external_id"] for row in records["members.Order"]] == ["O-1"]
    assert [row["external_id"] for row in records["members.Refund"]] == ["R-1"]
    assert {row["kind"] for row in records["members.WalletEntry"]} == {"top_up", "spend"}
    assert {row["amount"] for row in records["members.WalletEntry"]} == {"110.00", "-110.00"}
    assert [row["points"] for row in records["members.PointsEntry"]] == [120]
    assert "13800000002" not in target.read_text(encoding="utf-8")
    assert "李四" not in target.read_text(encoding="utf-8")


def test_the_member_downloads_their_own_data(client_a, member_a, history):
    response = client_a.get("/api/v1/me/data-export")
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment")
    document = json.loads(response.content)
    assert document["member"]["id"] == member_a.pk
    assert [row["external_id"] for row in document["records"]["members.Order"]] == ["O-1"]


# --- erasure ----------------------------------------------------------------------------------------


def test_erasure_anonymises_the_member_and_keeps_money_and_points_consistent(member_a, history):
    # given
    member_a.openid, member_a.birthday = "o-erase-me", "1990-05-01"
    member_a.save()
    tokens = member_tokens_issue(member_id=member_a.pk)
    counts = (Order.objects.count(), Refund.objects.count(), PointsEntry.objects.count(), WalletEntry.objects.count())
    out = io.StringIO()
    # when
    call_command("erase_member", "13800000001", "--yes", stdout=out)
    # then: the person is gone from the row, the row and its history stay
    member = Member.objects.get(pk=member_a.pk)
    assert (member.name, member.mobile, member.openid, member.birthday) == ("", erased_mobile(member.pk), None, None)
    assert member.referral_code != member_a.referral_code
    assert not member.is_active and member.erased_at is not None
    assert (
        Order.objects.count(),
        Refund.objects.count(),
        PointsEntry.objects.count(),
        WalletEntry.objects.count(),
    ) == counts
    assert Order.objects.get(external_id="O-1").member_id == member.pk
    assert balances_reconcile() == []
    call_command("reconcile", stdout=io.StringIO())  # raises CommandError on any difference
    # and every token is refused
    assert bearer(tokens["access"]).get("/api/v1/me/orders").status_code == 401
    assert APIClient().post("/api/v1/auth/refresh", {"refresh": tokens["refresh"]}, format="json").status_code == 401


def test_erasure_is_idempotent_and_the_number_can_register_again(member_a, history):
    # given
    call_command("erase_member", "13800000001", "--yes", stdout=io.StringIO())
    erased = Member.objects.get(pk=member_a.pk)
    # when: the same request again, by mobile and by id
    again = io.StringIO()
    call_command("erase_member", "13800000001", "--yes", stdout=again)
    by_id = io.StringIO()
    call_command("erase_member", "--id", str(member_a.pk), "--yes", stdout=by_id)
    # then: nothing changes
    assert "nothing to do" in again.getvalue()
    assert "already erased" in by_id.getvalue()
    member = Member.objects.get(pk=member_a.pk)
    assert (member.erased_at, member.referral_code, member.updated_at) == (
        erased.erased_at,
        erased.referral_code,
        erased.updated_at,
    )
    # and the person may join again, as a new member
    login = APIClient().post("/api/v1/auth/dev-login", {"mobile": "13800000001"}, format="json")
    assert login.status_code == 200
    assert login.json()["member_id"] != member_a.pk
    # and an erased member is never unblocked
    assert member_unblock(member_ids=[member_a.pk]) == 0
    assert not Member.objects.get(pk=member_a.pk).is_active


def test_erasure_needs_confirmation_and_an_emptied_wallet(member_a):
    # given: money the member paid in and has not spent
    top_up = wallet_top_up(member=member_a, amount_paid="50.00", idempotency_key="t")
    TopUpIntent.objects.create(
        member=member_a, out_trade_no="TU-PENDING", amount=Decimal("10.00"), expires_at="2099-01-01T00:00:00Z"
    )
    # then
    with pytest.raises(CommandError, match="--yes"):
        call_command("erase_member", "13800000001", stdout=io.StringIO())
    with pytest.raises(CommandError, match=r"50\.00"):
        call_command("erase_member", "13800000001", "--yes", stdout=io.StringIO())
    assert Member.objects.get(pk=member_a.pk).is_active
    # when the top-up is refunded, the erasure goes through and closes the pending top-up
    wallet_refund_top_up(top_up_entry=top_up, idempotency_key="refund")
    call_command("erase_member", "13800000001", "--yes", stdout=io.StringIO())
    assert Member.objects.get(pk=member_a.pk).erased_at is not None
    assert TopUpIntent.objects.get(out_trade_no="TU-PENDING").status == TopUpIntent.Status.CLOSED


def test_the_member_erases_their_own_account(client_a, member_a):
    refused = client_a.post("/api/v1/me/erasure", {"confirm": False}, format="json")
    assert refused.status_code == 400
    assert Member.objects.get(pk=member_a.pk).is_active
    assert client_a.post("/api/v1/me/erasure", {"confirm": True}, format="json").status_code == 204
    assert Member.objects.get(pk=member_a.pk).erased_at is not None
    assert client_a.get("/api/v1/me").status_code == 401


# --- the admin --------------------------------------------------------------------------------------


def test_an_operator_erases_a_member_from_the_admin_after_confirming(client, member_a, history):
    # given: the admin's history names the member
    LogEntry.objects.create(
        content_type=ContentType.objects.get_for_model(Member),
        object_id=str(member_a.pk),
        object_repr=str(member_a),
        action_flag=CHANGE,
        user=role_user("operator"),
    )
    client.force_login(role_user("operator", username="op2"))
    url = f"/admin/members/member/{member_a.pk}/erase/"
    # when: the confirm page, a POST without the box ticked, then with it
    page = client.get(url)
    unticked = client.post(url, {})
    # then
    assert page.status_code == 200
    assert unticked.status_code == 200
    assert Member.objects.get(pk=member_a.pk).erased_at is None
    assert client.post(url, {"confirm": "on"}).status_code == 302
    member = Member.objects.get(pk=member_a.pk)
    assert member.erased_at is not None
    assert "张三" not in LogEntry.objects.get(object_id=str(member.pk)).object_repr
    assert balances_reconcile() == []


def test_the_erase_action_leads_to_the_confirm_page_and_blocking_is_an_action(client, member_a):
    client.force_login(role_user("operator"))
    changelist = "/admin/members/member/"
    action = client.post(changelist, {"action": "erase_personal_data", "_selected_action": [member_a.pk]})
    assert action.status_code == 302
    assert action["Location"].endswith(f"/members/member/{member_a.pk}/erase/")
    assert Member.objects.get(pk=member_a.pk).erased_at is None  # nothing erased before confirming
    client.post(changelist, {"action": "block_members", "_selected_action": [member_a.pk]})
    assert not Member.objects.get(pk=member_a.pk).is_active


@pytest.mark.parametrize("role", ["manager", "staff", "analyst"])
def test_only_operators_may_erase(client, member_a, store_a, role):
    client.force_login(role_user(role, store_a))
    assert client.get(f"/admin/members/member/{member_a.pk}/erase/").status_code == 403
    assert client.post(f"/admin/members/member/{member_a.pk}/erase/", {"confirm": "on"}).status_code == 403
    assert Member.objects.get(pk=member_a.pk).erased_at is None


def test_a_service_erasure_of_a_new_member_without_history(db):
    member = MemberFactory()
    erased = member_erase(member=member)
    assert erased.mobile == erased_mobile(member.pk)
    assert member_erase(member=member).erased_at == erased.erased_at


def test_erasure_forgets_the_members_message_texts_and_follow_up_notes(
    member_a, member_b, history, django_capture_on_commit_callbacks
):
    # given a sent and a pending message, a follow-up with a note, and another member's message
    sent = OutboxMessageFactory(member=member_a, payload={"name": "王小明"}, status="sent", sent_at=PAID)
    pending = OutboxMessageFactory(member=member_a, payload={"name": "王小明"})
    task = FollowUpTaskFactory(member=member_a, outcome="王先生说下周来店")
    other = OutboxMessageFactory(member=member_b, payload={"name": "李四"})
    # when the member is erased (the higher apps forget after the commit)
    with django_capture_on_commit_callbacks(execute=True):
        member_erase(member=Member.objects.get(pk=member_a.pk))
    # then the texts are gone, the rows stay, and nothing unsent goes out any more
    sent.refresh_from_db(), pending.refresh_from_db(), task.refresh_from_db(), other.refresh_from_db()
    assert (sent.payload, sent.status) == ({}, "sent")
    assert (pending.payload, pending.status) == ({}, "failed")
    assert task.outcome == ""
    assert other.payload == {"name": "李四"}


def test_operators_list_the_blocked_members(client, member_a, member_b):
    # given one blocked member of two
    member_block(member_ids=[member_a.pk])
    client.force_login(role_user("operator"))
    # when the member list is filtered on "active: no"
    page = client.get("/admin/members/member/", {"is_active__exact": "0"})
    # then only the blocked one is listed
    assert page.status_code == 200
    listed = list(page.context["cl"].result_list)
    assert listed == [Member.objects.get(pk=member_a.pk)]
