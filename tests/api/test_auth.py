"""Member login: WeChat code → tokens or registration; phone binding; refresh rotation; logout; dev login."""

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from members.models import Member
from tests.api import fakes
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db

SESSION = "/sns/jscode2session"
TOKEN = "/cgi-bin/token"
PHONE = "/wxa/business/getuserphonenumber"


def wechat_knows(openid="o-123", phone="13800000009"):
    fakes.transport.route(SESSION, {"openid": openid, "session_key": "SECRET-SESSION-KEY"})
    fakes.transport.route(TOKEN, {"access_token": "AT-1", "expires_in": 7200})
    fakes.transport.route(PHONE, {"errcode": 0, "phone_info": {"purePhoneNumber": phone, "countryCode": "86"}})


def login(code="code-1"):
    return APIClient().post("/api/v1/auth/wechat-login", {"code": code}, format="json")


def test_known_openid_gets_tokens_and_never_the_session_key(member_a):
    # given
    member_a.openid = "o-123"
    member_a.save()
    wechat_knows()
    # when
    response = login()
    # then
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "authenticated"
    assert body["tokens"]["member_id"] == member_a.pk
    assert "SECRET-SESSION-KEY" not in response.content.decode()
    profile = APIClient().get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {body['tokens']['access']}")
    assert profile.json()["id"] == member_a.pk


def test_unknown_openid_registers_with_a_verified_phone(store_a):
    # given
    wechat_knows(phone="13800000009")
    # when
    first = login()
    registered = APIClient().post(
        "/api/v1/auth/wechat-register",
        {"registration_token": first.json()["registration_token"], "phone_code": "pc-1"},
        format="json",
    )
    # then
    assert first.json()["status"] == "registration_required"
    assert first.json()["tokens"] is None
    assert registered.status_code == 200, registered.json()
    member = Member.objects.get(mobile="13800000009")
    assert (member.openid, member.channel) == ("o-123", "mini_program")
    assert registered.json()["member_id"] == member.pk


def test_registration_links_an_existing_member_by_mobile(member_a):
    # given: the member registered in a store; WeChat vouches for their number
    wechat_knows(phone=member_a.mobile)
    token = login().json()["registration_token"]
    # when
    response = APIClient().post(
        "/api/v1/auth/wechat-register", {"registration_token": token, "phone_code": "pc-1"}, format="json"
    )
    # then
    assert response.json()["member_id"] == member_a.pk
    member_a.refresh_from_db()
    assert member_a.openid == "o-123"
    assert Member.objects.count() == 1


def test_a_number_bound_to_another_wechat_account_is_a_conflict(member_a):
    # given
    member_a.openid = "o-other"
    member_a.save()
    wechat_knows(phone=member_a.mobile)
    token = login().json()["registration_token"]
    # when
    response = APIClient().post(
        "/api/v1/auth/wechat-register", {"registration_token": token, "phone_code": "pc-1"}, format="json"
    )
    # then
    assert response.status_code == 409
    assert response.json()["fields"]["mobile"][0]["code"] == "duplicate"
    member_a.refresh_from_db()
    assert member_a.openid == "o-other"


def test_a_forged_registration_token_is_refused(db):
    wechat_knows()
    response = APIClient().post(
        "/api/v1/auth/wechat-register", {"registration_token": "x:y:z", "phone_code": "pc"}, format="json"
    )
    assert response.status_code == 400
    assert "registration_token" in response.json()["fields"]
    assert not Member.objects.exists()


def test_a_bad_code_is_a_field_error_and_wechat_down_is_503(db):
    fakes.transport.route(SESSION, {"errcode": 40029, "errmsg": "invalid code"})
    assert login().json()["fields"]["code"][0]["code"] == "invalid"
    fakes.transport.route(SESSION, lambda request, query: (502, b"bad gateway", {}))
    response = login()
    assert response.status_code == 503
    assert response.json()["code"] == "upstream_unavailable"


def test_login_is_throttled(db, settings):
    # given
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK}
    fakes.transport.route(SESSION, {"errcode": 40029, "errmsg": "invalid code"})
    cache.clear()
    # when
    statuses = [login().status_code for _ in range(25)]
    # then
    assert statuses[0] == 400
    assert statuses[-1] == 429


def dev_login(mobile="13800000001"):
    return APIClient().post("/api/v1/auth/dev-login", {"mobile": mobile}, format="json").json()


def test_refresh_rotates_and_the_old_refresh_token_stops_working(member_a):
    # given
    tokens = dev_login()
    # when
    rotated = APIClient().post("/api/v1/auth/refresh", {"refresh": tokens["refresh"]}, format="json")
    reused = APIClient().post("/api/v1/auth/refresh", {"refresh": tokens["refresh"]}, format="json")
    # then
    assert rotated.status_code == 200
    assert rotated.json()["refresh"] != tokens["refresh"]
    assert reused.status_code == 401
    assert reused.json()["code"] == "token_invalid"


def test_logout_revokes_the_refresh_token(member_a):
    # given
    tokens = dev_login()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    # when
    response = client.post("/api/v1/auth/logout", {"refresh": tokens["refresh"]}, format="json")
    again = client.post("/api/v1/auth/logout", {"refresh": tokens["refresh"]}, format="json")
    # then
    assert response.status_code == again.status_code == 204
    refused = APIClient().post("/api/v1/auth/refresh", {"refresh": tokens["refresh"]}, format="json")
    assert refused.status_code == 401


def test_a_member_cannot_revoke_anothers_token(member_a, member_b):
    # given
    theirs = dev_login(member_b.mobile)
    mine = dev_login(member_a.mobile)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {mine['access']}")
    # when
    response = client.post("/api/v1/auth/logout", {"refresh": theirs["refresh"]}, format="json")
    # then
    assert response.status_code == 403
    still = APIClient().post("/api/v1/auth/refresh", {"refresh": theirs["refresh"]}, format="json")
    assert still.status_code == 200


def test_an_access_token_is_not_a_refresh_token(member_a):
    tokens = dev_login()
    response = APIClient().post("/api/v1/auth/refresh", {"refresh": tokens["access"]}, format="json")
    assert response.status_code == 401


def test_a_refresh_token_is_not_an_access_token(member_a):
    tokens = dev_login()
    response = APIClient().get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {tokens['refresh']}")
    assert response.status_code == 401


def test_dev_login_registers_a_new_member_by_mobile(db):
    tokens = dev_login("+86 139 0000 0042")
    assert Member.objects.get(pk=tokens["member_id"]).mobile == "13900000042"


def test_dev_login_is_gone_when_the_setting_is_off(db, settings):
    # given
    settings.HUIYUAN_DEV_LOGIN = False
    # when
    response = APIClient().post("/api/v1/auth/dev-login", {"mobile": "13800000001"}, format="json")
    schema = APIClient().get("/api/schema/?format=json").json()
    # then
    assert response.status_code == 404
    assert "/api/v1/auth/dev-login" not in schema["paths"]
    assert not Member.objects.exists()


def test_binding_a_mobile_normalises_it_and_refuses_a_taken_one(client_a, member_a, member_b):
    # when
    ok = client_a.post("/api/v1/me/mobile", {"mobile": "+86 139-1111-2222"}, format="json")
    taken = client_a.post("/api/v1/me/mobile", {"mobile": member_b.mobile}, format="json")
    # then
    assert ok.json() == {"mobile": "13911112222"}
    assert taken.status_code == 409
    member_a.refresh_from_db()
    assert member_a.mobile == "13911112222"


def test_a_typed_mobile_is_refused_outside_development(client_a, member_a, settings):
    settings.HUIYUAN_DEV_LOGIN = False
    response = client_a.post("/api/v1/me/mobile", {"mobile": "13911112222"}, format="json")
    assert response.status_code == 400
    member_a.refresh_from_db()
    assert member_a.mobile == "13800000001"


def test_binding_a_mobile_verified_by_wechat(client_a, member_a):
    wechat_knows(phone="13911112222")
    response = client_a.post("/api/v1/me/mobile", {"phone_code": "pc-1"}, format="json")
    assert response.json() == {"mobile": "13911112222"}


def test_a_member_token_of_a_deleted_member_sees_nothing(db):
    member = MemberFactory()
    tokens = dev_login(member.mobile)
    member.delete()
    response = APIClient().get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    assert response.status_code == 401  # the token names no one any more (issue #20, finding 8)
    orders = APIClient().get("/api/v1/me/orders", HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    assert orders.status_code == 401
