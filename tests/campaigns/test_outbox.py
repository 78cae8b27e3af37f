"""The outbox and its channels: idempotent enqueue, delivery once, retries with backoff, permanent
failures, the WeChat and SMS clients against a fake transport (no network)."""

import datetime as dt
import hashlib
import hmac
import json
import threading
import time
from types import SimpleNamespace

import pytest
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from campaigns.channels.base import HttpResponse, TransportError
from campaigns.models import OutboxMessage
from campaigns.services.outbox import message_enqueue, outbox_deliver, outbox_flush, outbox_requeue
from campaigns.tasks import outbox_deliver_soon, outbox_deliver_task, outbox_flush_task
from tests.factories import MemberFactory

Status = OutboxMessage.Status


class FakeTransport:
    """Plays recorded answers in order: a dict is a 200 JSON answer, an exception is raised, an
    ``HttpResponse`` is returned as is. Records every request."""

    def __init__(self, *answers, delay: float = 0.0):
        self.answers = list(answers)
        self.requests = []
        self.delay = delay
        self.lock = threading.Lock()

    def add(self, *answers):
        self.answers.extend(answers)

    def request(self, method, url, *, body=None, headers=None, timeout):
        with self.lock:
            self.requests.append(
                SimpleNamespace(
                    method=method,
                    url=url,
                    raw=body,
                    body=json.loads(body) if body else None,
                    headers=headers or {},
                    timeout=timeout,
                )
            )
            answer = self.answers.pop(0)
        if self.delay:
            time.sleep(self.delay)
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, dict):
            return HttpResponse(status=200, body=json.dumps(answer).encode())
        return answer

    def sends(self):
        return [r for r in self.requests if "/message/subscribe/send" in r.url or r.url.endswith("/v1/send")]

    def token_requests(self):
        return [r for r in self.requests if "/cgi-bin/token" in r.url]


TOKEN = {"access_token": "TOKEN-1", "expires_in": 7200}
OK = {"errcode": 0, "errmsg": "ok", "msgid": 9001}


@pytest.fixture(autouse=True)
def channels(settings):
    cache.clear()
    settings.WECHAT_APP_ID = "wx-test-app"
    settings.WECHAT_APP_SECRET = "wx-secret"
    settings.HUIYUAN_WECHAT_TEMPLATES = {
        "win_back_coupon": {
            "template_id": "TPL-WINBACK",
            "page": "pages/coupons/index",
            "data": {"thing1": "title", "time2": "expires_on"},
        }
    }
    settings.HUIYUAN_SMS_URL = "https://sms.example.com/v1/send"
    settings.HUIYUAN_SMS_API_KEY = "key-1"
    settings.HUIYUAN_SMS_API_SECRET = "secret-1"
    settings.HUIYUAN_SMS_SIGN_NAME = "会员中心"
    settings.HUIYUAN_SMS_TEMPLATES = {"win_back_coupon": "SMS_100"}
    settings.HUIYUAN_OUTBOX_MAX_ATTEMPTS = 3
    settings.HUIYUAN_OUTBOX_RETRY_BASE_SECONDS = 60
    yield
    cache.clear()


@pytest.fixture
def transport(settings):
    fake = FakeTransport()
    settings.HUIYUAN_HTTP_TRANSPORT = fake
    return fake


def time_passes(message, delta):
    """Pretend ``delta`` has gone by for ``message`` (its retry is that much closer)."""
    OutboxMessage.objects.filter(pk=message.pk).update(next_attempt_at=F("next_attempt_at") - delta)


PAYLOAD = {"title": "我们想你了", "expires_on": "2025-07-31"}


def wechat_message(member=None, key="m-1"):
    member = member or MemberFactory(openid=f"openid-{key}")
    return message_enqueue(member=member, template="win_back_coupon", payload=PAYLOAD, dedupe_key=key, channel="wechat")


# --- enqueue ---


@pytest.mark.django_db
def test_enqueue_twice_with_one_key_writes_one_message():
    # given
    member = MemberFactory()
    # when
    first = message_enqueue(member=member, template="hello", payload={"a": 1}, dedupe_key="k-1")
    second = message_enqueue(member=member, template="other", payload={"b": 2}, dedupe_key="k-1")
    # then
    assert first.pk == second.pk
    assert OutboxMessage.objects.filter(dedupe_key="k-1").count() == 1
    assert second.template == "hello"
    assert second.channel == "log"


@pytest.mark.django_db
def test_enqueued_message_is_delivered_after_commit_by_the_default_log_channel(django_capture_on_commit_callbacks):
    # given
    member = MemberFactory()
    # when a grant writes a message and its caller queues the delivery
    with django_capture_on_commit_callbacks(execute=True):
        message = message_enqueue(member=member, template="hello", payload={"n": 1}, dedupe_key="k-2")
        outbox_deliver_soon([message.pk])
        assert OutboxMessage.objects.get(pk=message.pk).status == Status.PENDING
    # then
    message.refresh_from_db()
    assert message.status == Status.SENT
    assert message.attempts == 1
    assert message.sent_at is not None


@pytest.mark.django_db
def test_a_rolled_back_grant_leaves_no_message(django_capture_on_commit_callbacks):
    # given
    member = MemberFactory()
    # when
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        try:
            with transaction.atomic():
                message_enqueue(member=member, template="hello", payload={}, dedupe_key="k-3")
                raise RuntimeError("the grant failed")
        except RuntimeError:
            pass
    # then
    assert not OutboxMessage.objects.filter(dedupe_key="k-3").exists()
    assert callbacks == []


@pytest.mark.django_db
def test_an_unknown_channel_is_refused():
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        message_enqueue(member=MemberFactory(), template="t", payload={}, dedupe_key="k-4", channel="pigeon")


# --- retries -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_busy_wechat_is_retried_with_backoff_and_the_message_delivered_once(
    transport, django_capture_on_commit_callbacks
):
    # given WeChat is busy (-1) once, then accepts
    message = wechat_message()
    transport.add(TOKEN, {"errcode": -1, "errmsg": "system busy"}, OK)
    start = timezone.now()
    # when the first attempt fails
    outbox_deliver(message_id=message.pk, now=start)
    # then the message waits for its retry
    message.refresh_from_db()
    assert message.status == Status.PENDING
    assert message.attempts == 1
    assert "-1" in message.last_error
    assert message.next_attempt_at == start + dt.timedelta(seconds=60)
    # when a worker or the flush tries again too early, nothing is sent
    assert outbox_deliver(message_id=message.pk, now=start + dt.timedelta(seconds=30)) is None
    assert outbox_flush(now=start + dt.timedelta(seconds=30)) == []
    assert len(transport.sends()) == 1
    # when the flush runs after the backoff
    time_passes(message, dt.timedelta(seconds=61))
    with django_capture_on_commit_callbacks(execute=True):
        assert outbox_flush_task() == 1
    # then it is delivered, once, with the cached token
    message.refresh_from_db()
    assert message.status == Status.SENT
    assert message.attempts == 2
    assert message.provider_message_id == "9001"
    assert len(transport.sends()) == 2
    assert len(transport.token_requests()) == 1
    sent = transport.sends()[-1]
    assert "access_token=TOKEN-1" in sent.url
    assert sent.body["touser"] == message.member.openid
    assert sent.body["template_id"] == "TPL-WINBACK"
    assert sent.body["page"] == f"pages/coupons/index?message_id={message.pk}"  # the page reports the open
    assert sent.body["data"] == {"thing1": {"value": "我们想你了"}, "time2": {"value": "2025-07-31"}}
    # and delivering again (a retried task) sends nothing more
    assert outbox_deliver(message_id=message.pk, now=start + dt.timedelta(hours=1)) is None
    assert outbox_flush(now=start + dt.timedelta(hours=1)) == []
    assert len(transport.sends()) == 2


@pytest.mark.django_db
def test_the_delivery_task_queues_its_retry_at_the_next_attempt(transport, monkeypatch):
    # given WeChat is busy
    message = wechat_message()
    transport.add(TOKEN, {"errcode": -1, "errmsg": "system busy"})
    queued = []
    monkeypatch.setattr(outbox_deliver_task, "apply_async", lambda args, countdown: queued.append((args, countdown)))
    # when the task's attempt fails
    assert outbox_deliver_task(message.pk) == Status.PENDING
    # then it queued itself again for when the backoff is over
    assert len(queued) == 1
    args, countdown = queued[0]
    assert args == (message.pk,)
    assert 55 <= countdown <= 60


@pytest.mark.django_db
def test_no_answer_at_all_is_retried_with_doubling_delays_until_dead(transport):
    # given the network is down for good
    message = wechat_message()
    transport.add(TOKEN, TransportError("timed out"), TransportError("timed out"), TransportError("timed out"))
    start = timezone.now()
    # when three attempts fail (the maximum here)
    outbox_deliver(message_id=message.pk, now=start)
    message.refresh_from_db()
    first_retry = message.next_attempt_at
    outbox_deliver(message_id=message.pk, now=first_retry)
    message.refresh_from_db()
    second_retry = message.next_attempt_at
    outbox_deliver(message_id=message.pk, now=second_retry)
    # then the delays doubled and the message is dead
    assert first_retry - start == dt.timedelta(seconds=60)
    assert second_retry - first_retry == dt.timedelta(seconds=120)
    message.refresh_from_db()
    assert message.status == Status.DEAD
    assert message.attempts == 3
    assert "timed out" in message.last_error
    assert outbox_flush(now=second_retry + dt.timedelta(days=1)) == []


@pytest.mark.django_db
def test_a_refused_subscription_fails_at_once_without_retries(transport):
    # given the user refused the subscription (43101)
    message = wechat_message()
    transport.add(TOKEN, {"errcode": 43101, "errmsg": "user refuse to accept the msg"})
    # when
    outbox_deliver(message_id=message.pk)
    # then
    message.refresh_from_db()
    assert message.status == Status.FAILED
    assert message.attempts == 1
    assert "43101" in message.last_error
    assert outbox_flush(now=timezone.now() + dt.timedelta(days=1)) == []
    assert len(transport.sends()) == 1


@pytest.mark.django_db
def test_a_member_without_openid_fails_without_calling_wechat(transport):
    message = wechat_message(member=MemberFactory(openid=None))
    outbox_deliver(message_id=message.pk)
    message.refresh_from_db()
    assert message.status == Status.FAILED
    assert transport.requests == []


@pytest.mark.django_db
def test_requeue_gives_a_failed_message_new_attempts(transport, django_capture_on_commit_callbacks):
    # given a message failed for want of a template
    member = MemberFactory(openid="o-x")
    message = message_enqueue(member=member, template="unknown", payload={}, dedupe_key="k-rq", channel="wechat")
    outbox_deliver(message_id=message.pk)
    message.refresh_from_db()
    assert message.status == Status.FAILED
    # when an operator configured it and requeues
    from django.conf import settings

    settings.HUIYUAN_WECHAT_TEMPLATES["unknown"] = {"template_id": "TPL-2"}
    transport.add(TOKEN, OK)
    assert outbox_requeue(message_ids=[message.pk]) == [message.pk]
    # then it has new attempts, and is delivered once queued
    message.refresh_from_db()
    assert (message.status, message.attempts) == (Status.PENDING, 0)
    with django_capture_on_commit_callbacks(execute=True):
        outbox_deliver_soon([message.pk])
    message.refresh_from_db()
    assert message.status == Status.SENT
    assert message.attempts == 1
    # and requeueing a sent message does nothing
    assert outbox_requeue(message_ids=[message.pk]) == []


# --- the WeChat client -------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_access_token_is_fetched_once_and_cached(transport):
    # given
    first, second = wechat_message(key="a"), wechat_message(key="b")
    transport.add(TOKEN, OK, OK)
    # when
    outbox_deliver(message_id=first.pk)
    outbox_deliver(message_id=second.pk)
    # then
    assert len(transport.token_requests()) == 1
    token_url = transport.token_requests()[0].url
    assert "grant_type=client_credential" in token_url
    assert "appid=wx-test-app" in token_url
    assert "secret=wx-secret" in token_url
    assert all(r.timeout == 5 for r in transport.requests)
    assert OutboxMessage.objects.filter(status=Status.SENT).count() == 2


@pytest.mark.django_db
def test_an_expired_token_is_refreshed_once_and_the_send_retried(transport):
    # given a token in the cache that WeChat no longer accepts
    message = wechat_message()
    cache.set("wechat:access_token:wx-test-app", "OLD-TOKEN", 3600)
    transport.add({"errcode": 40001, "errmsg": "invalid credential"}, {"access_token": "NEW", "expires_in": 7200}, OK)
    # when
    outbox_deliver(message_id=message.pk)
    # then
    message.refresh_from_db()
    assert message.status == Status.SENT
    assert message.attempts == 1
    sends = transport.sends()
    assert "access_token=OLD-TOKEN" in sends[0].url
    assert "access_token=NEW" in sends[1].url
    assert cache.get("wechat:access_token:wx-test-app") == "NEW"


@pytest.mark.django_db
def test_a_token_refused_twice_is_retried_later_not_looped(transport):
    message = wechat_message()
    transport.add(TOKEN, {"errcode": 42001}, {"access_token": "T2", "expires_in": 7200}, {"errcode": 42001})
    outbox_deliver(message_id=message.pk)
    message.refresh_from_db()
    assert message.status == Status.PENDING
    assert len(transport.requests) == 4


# --- the SMS gateway ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_sms_is_signed_and_sent(transport):
    # given
    member = MemberFactory(mobile="13900001111")
    message = message_enqueue(
        member=member, template="win_back_coupon", payload={"name": "王", "amount": 20}, dedupe_key="s-1", channel="sms"
    )
    transport.add({"code": "OK", "biz_id": "B-1"})
    # when
    outbox_deliver(message_id=message.pk)
    # then
    message.refresh_from_db()
    assert message.status == Status.SENT
    assert message.provider_message_id == "B-1"
    sent = transport.requests[0]
    assert sent.url == "https://sms.example.com/v1/send"
    assert sent.body == {
        "phone": "13900001111",
        "sign_name": "会员中心",
        "template_code": "SMS_100",
        "params": {"name": "王", "amount": "20"},
        "out_id": str(message.pk),
    }
    headers = sent.headers
    expected = hmac.new(
        b"secret-1", f"{headers['X-Timestamp']}\n{headers['X-Nonce']}\n".encode() + sent.raw, hashlib.sha256
    ).hexdigest()
    assert headers["X-Api-Key"] == "key-1"
    assert headers["X-Signature"] == expected


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("answer", "status"),
    [
        ({"code": "isv.MOBILE_NUMBER_ILLEGAL", "message": "bad number"}, Status.FAILED),
        ({"code": "isv.BUSINESS_LIMIT_CONTROL", "message": "too fast"}, Status.PENDING),
        (HttpResponse(status=503, body=b"busy"), Status.PENDING),
        (HttpResponse(status=400, body=b"{}"), Status.FAILED),
        (HttpResponse(status=401, body=b"{}"), Status.PENDING),
    ],
)
def test_sms_errors_are_permanent_or_retryable(transport, answer, status):
    message = message_enqueue(
        member=MemberFactory(), template="win_back_coupon", payload={}, dedupe_key="s-2", channel="sms"
    )
    transport.add(answer)
    outbox_deliver(message_id=message.pk)
    message.refresh_from_db()
    assert message.status == status


# --- concurrency -------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_workers_delivering_one_message_send_it_once(settings):
    # given a slow provider and one message
    fake = FakeTransport(TOKEN, OK, OK, delay=0.2)
    settings.HUIYUAN_HTTP_TRANSPORT = fake
    member = MemberFactory(openid="o-race")
    message = OutboxMessage.objects.create(
        member=member,
        channel="wechat",
        template="win_back_coupon",
        payload=PAYLOAD,
        dedupe_key="race",
        next_attempt_at=timezone.now(),
    )
    barrier = threading.Barrier(2)
    results = []

    def worker():
        try:
            barrier.wait()
            results.append(outbox_deliver(message_id=message.pk))
        finally:
            connection.close()

    # when two workers take it at the same moment
    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then exactly one sent it
    assert sorted(r is None for r in results) == [False, True]
    assert len(fake.sends()) == 1
    message.refresh_from_db()
    assert message.status == Status.SENT
    assert message.attempts == 1


@pytest.mark.django_db
def test_a_message_stuck_in_sending_goes_back_to_pending(transport, django_capture_on_commit_callbacks):
    # given a worker died while sending
    message = wechat_message()
    long_ago = timezone.now() - dt.timedelta(hours=1)
    OutboxMessage.objects.filter(pk=message.pk).update(status=Status.SENDING, claimed_at=long_ago, attempts=1)
    transport.add(TOKEN, OK)
    # when
    with django_capture_on_commit_callbacks(execute=True):
        outbox_flush_task()
    # then
    message.refresh_from_db()
    assert message.status == Status.SENT
    assert message.attempts == 2


# --- the admin ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_outbox_admin_lists_messages_with_bounded_queries_and_retries_failed_ones(
    staff_client, transport, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    # given some messages, one failed for want of an openid
    failed = wechat_message(member=MemberFactory(openid=None), key="no-openid")
    outbox_deliver(message_id=failed.pk)
    for index in range(8):
        message_enqueue(member=MemberFactory(), template="hello", payload={}, dedupe_key=f"list-{index}")
    # when
    with django_assert_max_num_queries(10):
        response = staff_client.get("/admin/campaigns/outboxmessage/")
    # then
    assert response.status_code == 200
    assert response.content.decode().count('name="_selected_action"') == 9
    assert staff_client.get(f"/admin/campaigns/outboxmessage/{failed.pk}/change/").status_code == 200
    # when the member got an openid and an operator retries
    type(failed.member).objects.filter(pk=failed.member_id).update(openid="o-now")
    transport.add(TOKEN, OK)
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            "/admin/campaigns/outboxmessage/", {"action": "retry", "_selected_action": [failed.pk]}
        )
    assert response.status_code == 302
    failed.refresh_from_db()
    assert failed.status == Status.SENT
