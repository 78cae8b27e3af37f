"""The WeChat client against a fake transport: errcodes, access-token caching, the session key."""

import pytest
from django.core.cache import cache

from members import wechat
from tests.api import fakes

TOKEN = "/cgi-bin/token"
PHONE = "/wxa/business/getuserphonenumber"


@pytest.fixture
def client():
    cache.clear()
    fakes.transport.reset()
    return wechat.WeChatClient(app_id="wx-app", app_secret="s3cret", transport=fakes.transport)


def test_code2session_sends_the_app_credentials_and_keeps_the_session_key_private(client):
    # given
    seen = {}

    def answer(request, query):
        seen.update(query)
        return 200, {"openid": "o-1", "unionid": "u-1", "session_key": "SK"}, {}

    fakes.transport.route("/sns/jscode2session", answer)
    # when
    session = client.code2session("the-code")
    # then
    assert (session.openid, session.unionid) == ("o-1", "u-1")
    assert seen == {"appid": "wx-app", "secret": "s3cret", "js_code": "the-code", "grant_type": "authorization_code"}
    assert "SK" not in repr(session)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ({"errcode": 40029, "errmsg": "invalid code"}, wechat.WeChatInvalidCode),
        ({"errcode": 40163, "errmsg": "code been used"}, wechat.WeChatInvalidCode),
        ({"errcode": -1, "errmsg": "system busy"}, wechat.WeChatUnavailable),
        ({"errcode": 45011, "errmsg": "api minute-quota reach limit"}, wechat.WeChatUnavailable),
        ({"errcode": 40125, "errmsg": "invalid appsecret"}, wechat.WeChatError),
        ({"session_key": "SK"}, wechat.WeChatUnavailable),
    ],
)
def test_code2session_errors(client, answer, error):
    fakes.transport.route("/sns/jscode2session", answer)
    with pytest.raises(error):
        client.code2session("c")


def test_garbage_and_server_errors_are_unavailable(client):
    fakes.transport.route("/sns/jscode2session", lambda r, q: (200, b"<html>", {}), lambda r, q: (500, b"{}", {}))
    with pytest.raises(wechat.WeChatUnavailable):
        client.code2session("c")
    with pytest.raises(wechat.WeChatUnavailable):
        client.code2session("c")


def test_access_token_is_cached_until_it_expires(client):
    # given
    fakes.transport.route(
        TOKEN, {"access_token": "AT-1", "expires_in": 7200}, {"access_token": "AT-2", "expires_in": 7200}
    )
    fakes.transport.route(PHONE, {"errcode": 0, "phone_info": {"purePhoneNumber": "13800000001", "countryCode": "86"}})
    # when
    first = client.phone_number("p1")
    second = client.phone_number("p2")
    # then
    assert first == second == "13800000001"
    assert len(fakes.transport.calls_to(TOKEN)) == 1
    assert [call.url.split("access_token=")[1] for call in fakes.transport.calls_to(PHONE)] == ["AT-1", "AT-1"]


def test_a_stale_access_token_is_renewed_once(client):
    # given
    fakes.transport.route(
        TOKEN, {"access_token": "AT-1", "expires_in": 7200}, {"access_token": "AT-2", "expires_in": 7200}
    )
    fakes.transport.route(
        PHONE,
        {"errcode": 40001, "errmsg": "invalid credential"},
        {"errcode": 0, "phone_info": {"purePhoneNumber": "5551234", "countryCode": "1"}},
    )
    # when
    number = client.phone_number("p1")
    # then
    assert number == "+15551234"
    assert [call.url.split("access_token=")[1] for call in fakes.transport.calls_to(PHONE)] == ["AT-1", "AT-2"]


def test_a_refused_token_another_worker_already_replaced_is_not_fetched_again(client):
    # given: WeChat refuses AT-1 — and meanwhile another worker has cached a new token
    fakes.transport.route(
        TOKEN, {"access_token": "AT-1", "expires_in": 7200}, {"access_token": "AT-3", "expires_in": 7200}
    )

    def refused_after_another_worker_refreshed(request, query):
        cache.set(wechat.ACCESS_TOKEN_CACHE_KEY.format(app_id="wx-app"), "AT-2", 3600)
        return 200, {"errcode": 40001, "errmsg": "invalid credential"}, {}

    fakes.transport.route(
        PHONE,
        refused_after_another_worker_refreshed,
        {"errcode": 0, "phone_info": {"purePhoneNumber": "13800000001", "countryCode": "86"}},
    )
    # when
    number = client.phone_number("p1")
    # then: the retry used the other worker's token; fetching one more would have invalidated it
    assert number == "13800000001"
    assert len(fakes.transport.calls_to(TOKEN)) == 1
    assert [call.url.split("access_token=")[1] for call in fakes.transport.calls_to(PHONE)] == ["AT-1", "AT-2"]


def test_a_stale_token_twice_gives_up(client):
    fakes.transport.route(TOKEN, {"access_token": "AT", "expires_in": 7200})
    fakes.transport.route(PHONE, {"errcode": 42001, "errmsg": "access_token expired"})
    with pytest.raises(wechat.WeChatError):
        client.phone_number("p1")
    assert len(fakes.transport.calls_to(PHONE)) == 2


def test_the_default_transport_refuses_non_http_urls():
    with pytest.raises(wechat.WeChatUnavailable):
        wechat.urllib_transport(wechat.HttpRequest(method="GET", url="file:///etc/passwd"))
