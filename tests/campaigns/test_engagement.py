"""Message engagement, end to end: a campaign's messages go out through the outbox (the SMS
gateway and WeChat mocked at the transport) with their link rewritten to a signed tracked link;
members follow it; the providers report delivery; the effect report (API and page) shows sent,
delivered, opened and clicked with open and click rates over sent — per campaign and per segment.
"""

import datetime as dt
import hashlib
import json
import re
import time

import pytest
from django.core import signing
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from campaigns.channels.sms import sign
from campaigns.models import Campaign, CampaignBenefit, OutboxMessage
from campaigns.services.campaigns import campaign_launch, campaign_run_batch
from campaigns.services.engagement import tracked_link_read, tracked_link_token
from campaigns.services.outbox import message_enqueue, outbox_deliver
from tests.api.conftest import member_client
from tests.campaigns.test_outbox import OK, TOKEN, FakeTransport
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db

LINK = "https://shop.example.com/spring?from=sms&x=1"
PUSH_TOKEN = "push-token-1"
QUERIES_API = 10  # the session, the user, the campaign, the report's statements
QUERIES_PAGE = 17
TRACKED = re.compile(r"https://vip\.example\.com/t/[^\s\"]+")


@pytest.fixture(autouse=True)
def providers(settings):
    cache.clear()
    settings.HUIYUAN_TRACKED_LINK_BASE = "https://vip.example.com"
    settings.WECHAT_APP_ID = "wx-test-app"
    settings.WECHAT_APP_SECRET = "wx-secret"
    settings.HUIYUAN_WECHAT_PUSH_TOKEN = PUSH_TOKEN
    settings.HUIYUAN_WECHAT_TEMPLATES = {
        "spring_news": {"template_id": "TPL-SPRING", "page": "pages/index", "data": {"thing1": "campaign"}}
    }
    settings.HUIYUAN_SMS_URL = "https://sms.example.com/v1/send"
    settings.HUIYUAN_SMS_API_KEY = "key-1"
    settings.HUIYUAN_SMS_API_SECRET = "secret-1"
    settings.HUIYUAN_SMS_SIGN_NAME = "会员中心"
    settings.HUIYUAN_SMS_TEMPLATES = {"spring_news": "SMS_200"}
    yield
    cache.clear()


@pytest.fixture
def transport(settings):
    fake = FakeTransport()
    settings.HUIYUAN_HTTP_TRANSPORT = fake
    return fake


def spring_campaign(segments, *, channel: str) -> Campaign:
    campaign = Campaign.objects.create(name="Spring news", slug=f"spring-{channel}")
    campaign.segments.set([segments["lost"], segments["champions"]])
    CampaignBenefit.objects.create(
        campaign=campaign,
        kind=CampaignBenefit.Kind.MESSAGE,
        message_template="spring_news",
        message_channel=channel,
        message_link=LINK,
    )
    campaign_launch(campaign=campaign)
    return campaign


def send_all(message_ids) -> None:
    for message_id in message_ids:
        outbox_deliver(message_id=message_id)


@pytest.fixture
def sms_campaign(segments, place, transport):
    """Four lost members and two champions get the campaign's SMS; the gateway accepts all six."""
    members = {"lost": [MemberFactory() for _ in range(4)], "champions": [MemberFactory() for _ in range(2)]}
    for slug, group in members.items():
        for member in group:
            place(member, slug)
    campaign = spring_campaign(segments, channel="sms")
    result = campaign_run_batch(campaign_id=campaign.pk)
    transport.add(*({"code": "OK", "biz_id": f"BIZ-{n}"} for n in range(6)))
    send_all(result.message_ids)
    links = {}
    for request in transport.sends():
        message_id = int(request.body["out_id"])
        links[OutboxMessage.objects.get(pk=message_id).member_id] = request.body["params"]["link"]
    return campaign, members, links


def path_of(url: str) -> str:
    return url.removeprefix("https://vip.example.com")


def effect(client, campaign) -> dict:
    response = client.get(f"/api/v1/campaigns/{campaign.pk}/effect")
    assert response.status_code == 200, response.content
    return response.json()["engagement"]


# --- tracked links -----------------------------------------------------------------------------------


def test_the_effect_report_shows_open_and_click_rates_of_a_campaign_opened_through_tracked_links(
    sms_campaign, staff_client
):
    campaign, members, links = sms_campaign
    client = Client()  # members follow links signed in to nothing
    # given: every member's SMS carried a tracked link, not the bare address, and each its own
    assert len(links) == 6 and len(set(links.values())) == 6
    assert all(TRACKED.fullmatch(link) for link in links.values()), links
    # and the stored message keeps the original address
    assert OutboxMessage.objects.filter(payload__link=LINK).count() == 6
    # when: three lost members follow the link (one of them twice), no champion does
    followers = members["lost"][:3]
    for member in [*followers, followers[0]]:
        response = client.get(path_of(links[member.pk]))
        # then: each is sent on to the campaign's page
        assert response.status_code == 302
        assert response["Location"] == LINK
    # then: the report shows 6 sent, 3 opened and 3 clicked: 50% over sent (the repeat counts once)
    report = effect(staff_client, campaign)
    assert (report["sent"], report["opened"], report["clicked"]) == (6, 3, 3)
    assert (report["open_rate"], report["click_rate"]) == ("0.5000", "0.5000")
    assert report["rate_base"] == "sent"
    # and per segment: lost 3 of 4, champions 0 of 2
    by_segment = {row["slug"]: row for row in report["segments"]}
    assert by_segment["lost"]["sent"] == 4 and by_segment["lost"]["open_rate"] == "0.7500"
    assert by_segment["lost"]["click_rate"] == "0.7500"
    assert by_segment["champions"]["sent"] == 2 and by_segment["champions"]["click_rate"] == "0.0000"
    # and the twice-followed message counted its clicks, its first click kept
    twice = OutboxMessage.objects.get(member=followers[0])
    assert (twice.click_count, twice.open_count) == (2, 1)
    assert twice.first_clicked_at is not None and twice.first_opened_at == twice.first_clicked_at


def test_the_effect_page_shows_the_rates_in_chinese(sms_campaign, client, staff_client):
    campaign, members, links = sms_campaign
    client.get(path_of(links[members["lost"][0].pk]))
    response = staff_client.get(f"/zh-hans/admin/campaigns/campaigneffect/{campaign.pk}/report/")
    assert response.status_code == 200
    page = response.content.decode()
    # 1 of 6 sent: 16.7%
    assert "消息互动" in page and "打开率" in page and "点击率" in page and "占已发送消息" in page
    assert re.search(r'id="engagement-open-rate">\s*16\.7%', page), page
    assert 'id="engagement-segments"' in page


def test_a_tampered_or_foreign_token_is_not_found_and_counts_nothing(sms_campaign, client):
    _campaign, members, links = sms_campaign
    token = path_of(links[members["lost"][0].pk]).removeprefix("/t/")
    message_id, _url = tracked_link_read(token)
    # a changed character, a token for another address signed with another salt, garbage
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    foreign = signing.dumps([message_id, "https://evil.example.com/"], compress=True)
    for bad in (tampered, foreign, "nothing", token + "x"):
        response = client.get(f"/t/{bad}")
        assert response.status_code == 404, bad
        assert "Location" not in response
    assert OutboxMessage.objects.filter(click_count__gt=0).count() == 0


def test_a_token_never_redirects_outside_the_web(client):
    message = message_enqueue(member=MemberFactory(), template="t", payload={}, dedupe_key="k")
    token = tracked_link_token(message_id=message.pk, url="javascript:alert(1)")
    assert client.get(f"/t/{token}").status_code == 404


def test_a_link_preview_head_request_redirects_without_counting(sms_campaign, client):
    _campaign, members, links = sms_campaign
    response = client.head(path_of(links[members["lost"][0].pk]))
    assert response.status_code == 302
    assert OutboxMessage.objects.filter(click_count__gt=0).count() == 0


def test_following_links_is_rate_limited_per_address(sms_campaign, client, settings):
    _campaign, members, links = sms_campaign
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"tracked_link": "3/min"}}
    link = path_of(links[members["lost"][0].pk])
    statuses = [client.get(link).status_code for _ in range(4)]
    assert statuses == [302, 302, 302, 429]


def test_the_effect_report_reads_engagement_in_one_statement_and_bounded_queries(
    sms_campaign, client, staff_client, django_assert_num_queries, django_assert_max_num_queries
):
    campaign, members, links = sms_campaign
    client.get(path_of(links[members["lost"][0].pk]))
    staff_client.get(f"/api/v1/campaigns/{campaign.pk}/effect")  # the session read once
    with CaptureQueriesContext(connection) as queries:
        staff_client.get(f"/api/v1/campaigns/{campaign.pk}/effect")
    # one statement for the total and every segment
    assert len([q for q in queries.captured_queries if "GROUPING" in q["sql"]]) == 1
    with django_assert_num_queries(QUERIES_API):
        staff_client.get(f"/api/v1/campaigns/{campaign.pk}/effect")
    with django_assert_max_num_queries(QUERIES_PAGE):
        staff_client.get(f"/admin/campaigns/campaigneffect/{campaign.pk}/report/")


# --- WeChat: send results ----------------------------------------------------------------------------


def push_query(token: str = PUSH_TOKEN, *, timestamp: str = "", nonce: str = "n0nce") -> str:
    timestamp = timestamp or str(int(time.time()))
    signature = hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()
    return f"signature={signature}&timestamp={timestamp}&nonce={nonce}"


@pytest.fixture
def wechat_messages(segments, place, transport):
    """Three members got the campaign's WeChat message; WeChat answered msgids 9101..9103."""
    members = [MemberFactory(openid=f"o-{n}") for n in range(3)]
    for member in members:
        place(member, "lost")
    campaign = spring_campaign(segments, channel="wechat")
    result = campaign_run_batch(campaign_id=campaign.pk)
    transport.add(TOKEN, *({**OK, "msgid": 9101 + n} for n in range(3)))
    send_all(result.message_ids)
    return campaign, {m.provider_message_id: m for m in OutboxMessage.objects.filter(channel="wechat")}


def sent_event_json(*items) -> bytes:
    rows = [
        {"TemplateId": "TPL-SPRING", "MsgID": msg, "ErrorCode": code, "ErrorStatus": status}
        for msg, code, status in items
    ]
    return json.dumps(
        {
            "ToUserName": "gh_123",
            "FromUserName": "o-0",
            "CreateTime": 1700000000,
            "MsgType": "event",
            "Event": "subscribe_msg_sent_event",
            "SubscribeMsgSentEvent": {"List": rows if len(rows) > 1 else rows[0]},
        }
    ).encode()


def test_wechat_send_results_mark_messages_delivered_or_failed(wechat_messages, client, staff_client):
    campaign, by_msgid = wechat_messages
    assert set(by_msgid) == {"9101", "9102", "9103"}
    # when: WeChat pushes one delivered and one refused (JSON), then the third delivered (XML)
    body = sent_event_json(("9101", "0", "success"), ("9102", "43101", "fail: user refuse to accept the msg"))
    response = client.post(f"/api/v1/messages/wechat/push?{push_query()}", body, content_type="application/json")
    assert response.status_code == 200 and response.content == b"success"
    xml = (
        "<xml><ToUserName><![CDATA[gh_123]]></ToUserName><FromUserName><![CDATA[o-2]]></FromUserName>"
        "<CreateTime>1700000001</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        "<Event><![CDATA[subscribe_msg_sent_event]]></Event><SubscribeMsgSentEvent><List>"
        "<TemplateId><![CDATA[TPL-SPRING]]></TemplateId><MsgID><![CDATA[9103]]></MsgID>"
        "<ErrorCode>0</ErrorCode><ErrorStatus><![CDATA[success]]></ErrorStatus></List></SubscribeMsgSentEvent></xml>"
    )
    response = client.post(f"/api/v1/messages/wechat/push?{push_query(nonce='x2')}", xml, content_type="text/xml")
    assert response.status_code == 200
    # then
    delivered, refused, third = (OutboxMessage.objects.get(pk=by_msgid[k].pk) for k in ("9101", "9102", "9103"))
    assert delivered.delivered_at is not None and delivered.status == OutboxMessage.Status.SENT
    assert third.delivered_at is not None
    assert refused.status == OutboxMessage.Status.FAILED and "43101" in refused.last_error
    # when: WeChat repeats the first push (no answer reached it), and later a failure for a delivered one
    first_time = delivered.delivered_at
    client.post(f"/api/v1/messages/wechat/push?{push_query()}", body, content_type="application/json")
    late = sent_event_json(("9101", "43101", "fail"))
    client.post(f"/api/v1/messages/wechat/push?{push_query()}", late, content_type="application/json")
    # then: nothing moves
    delivered.refresh_from_db()
    assert delivered.delivered_at == first_time and delivered.status == OutboxMessage.Status.SENT
    # and the report counts 2 delivered of 3 sent
    report = effect(staff_client, campaign)
    assert (report["sent"], report["delivered"]) == (3, 2)


def test_a_wechat_push_without_our_signature_is_refused(wechat_messages, client):
    _campaign, _by_msgid = wechat_messages
    body = sent_event_json(("9101", "0", "success"))
    an_hour_ago = str(int(time.time()) - 3600)
    for query in (
        push_query("another-token"),
        "",
        "signature=abc&timestamp=1&nonce=2",
        push_query(timestamp=an_hour_ago),
    ):
        response = client.post(f"/api/v1/messages/wechat/push?{query}", body, content_type="application/json")
        assert response.status_code == 401
    assert not OutboxMessage.objects.filter(delivered_at__isnull=False).exists()


def test_wechat_checks_the_push_url_with_an_echo(client):
    response = client.get(f"/api/v1/messages/wechat/push?{push_query()}&echostr=hello-123")
    assert response.status_code == 200 and response.content == b"hello-123"
    assert client.get("/api/v1/messages/wechat/push?echostr=x").status_code == 401


def test_a_wechat_push_with_a_doctype_is_refused(client):
    xml = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><xml><Event>&a;</Event></xml>'
    response = client.post(f"/api/v1/messages/wechat/push?{push_query()}", xml, content_type="text/xml")
    assert response.status_code == 400


def test_the_mini_program_reports_opens_of_wechat_messages(wechat_messages, transport, staff_client):
    campaign, by_msgid = wechat_messages
    message = by_msgid["9101"]
    # given: the page the message opens names the message
    pages = {request.body["page"] for request in transport.sends()}
    assert f"pages/index?message_id={message.pk}" in pages
    # when: the member opens it, twice
    client = member_client(message.member)
    for _ in range(2):
        assert client.post(f"/api/v1/me/messages/{message.pk}/opened").status_code == 204
    # then: opened once for the rate, twice in the count; nothing clicked
    message.refresh_from_db()
    assert message.open_count == 2 and message.first_opened_at is not None and message.click_count == 0
    report = effect(staff_client, campaign)
    assert (report["opened"], report["clicked"], report["open_rate"]) == (1, 0, "0.3333")
    # and another member cannot report it: not found
    other = by_msgid["9102"]
    assert client.post(f"/api/v1/me/messages/{other.pk}/opened").status_code == 404
    other.refresh_from_db()
    assert other.open_count == 0


# --- SMS: delivery receipts --------------------------------------------------------------------------


def signed_receipt(receipts, *, secret="secret-1", key="key-1", timestamp=None) -> dict:
    body = json.dumps(receipts).encode()
    timestamp = str(timestamp or int(time.time()))
    return {
        "data": body,
        "content_type": "application/json",
        "headers": {
            "X-Api-Key": key,
            "X-Timestamp": timestamp,
            "X-Nonce": "abc",
            "X-Signature": sign(secret, timestamp, "abc", body),
        },
    }


def test_sms_receipts_mark_messages_delivered_or_failed(sms_campaign, client, staff_client):
    campaign, members, _links = sms_campaign
    first, second = (OutboxMessage.objects.get(member=m) for m in members["lost"][:2])
    receipts = [
        {
            "out_id": str(first.pk),
            "biz_id": first.provider_message_id,
            "success": True,
            "err_code": "DELIVERED",
            "report_time": "2026-12-06 10:00:00",
        },
        {"out_id": str(second.pk), "success": False, "err_code": "MK:0001", "err_msg": "空号"},
    ]
    response = client.post("/api/v1/messages/sms/receipts", **signed_receipt(receipts))
    assert response.status_code == 200, response.content
    assert response.json()["code"] == 0
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.delivered_at is not None
    assert second.status == OutboxMessage.Status.FAILED and "MK:0001" in second.last_error
    assert effect(staff_client, campaign)["delivered"] == 1


def test_sms_receipts_must_be_signed_recently_with_our_secret(sms_campaign, client):
    _campaign, members, _links = sms_campaign
    message = OutboxMessage.objects.get(member=members["lost"][0])
    receipts = [{"out_id": str(message.pk), "success": True}]
    for kwargs in ({"secret": "other"}, {"key": "other"}, {"timestamp": int(time.time()) - 3600}):
        response = client.post("/api/v1/messages/sms/receipts", **signed_receipt(receipts, **kwargs))
        assert response.status_code == 401, kwargs
    message.refresh_from_db()
    assert message.delivered_at is None


def test_a_receipt_for_a_message_of_another_channel_changes_nothing(wechat_messages, client):
    _campaign, by_msgid = wechat_messages
    message = by_msgid["9101"]
    response = client.post(
        "/api/v1/messages/sms/receipts", **signed_receipt([{"out_id": str(message.pk), "success": False}])
    )
    assert response.status_code == 200
    message.refresh_from_db()
    assert message.status == OutboxMessage.Status.SENT


def test_the_first_delivery_time_is_never_in_the_future(sms_campaign, client):
    _campaign, members, _links = sms_campaign
    message = OutboxMessage.objects.get(member=members["lost"][0])
    later = (timezone.now() + dt.timedelta(days=2)).isoformat()
    client.post(
        "/api/v1/messages/sms/receipts",
        **signed_receipt([{"out_id": str(message.pk), "success": True, "report_time": later}]),
    )
    message.refresh_from_db()
    assert message.delivered_at <= timezone.now()
