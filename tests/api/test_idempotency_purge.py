"""Stored responses to retried requests are purged after HUIYUAN_IDEMPOTENCY_KEEP_DAYS; a retry
after that is still never written twice."""

import datetime as dt

import pytest
from django.utils import timezone

from members.models import ApiIdempotencyRecord, Order
from members.services import idempotency as idempotency_service
from members.tasks import idempotency_records_purge_task

pytestmark = pytest.mark.django_db

BODY = {
    "external_id": "POS-P1",
    "mobile": "+86 138-0000-0001",
    "paid_at": "2026-01-05T12:30:00+08:00",
    "amount": "38.50",
}


def post_order(client, key="purge-1"):
    return client.post("/api/v1/pos/orders", BODY, format="json", HTTP_IDEMPOTENCY_KEY=key)


def age(days: int) -> None:
    ApiIdempotencyRecord.objects.update(created_at=timezone.now() - dt.timedelta(days=days))


def test_records_older_than_the_setting_are_purged_in_chunks_and_recent_ones_kept(
    pos_a, member_a, settings, monkeypatch
):
    # given three old records and one recent one
    settings.HUIYUAN_IDEMPOTENCY_KEEP_DAYS = 7
    monkeypatch.setattr(idempotency_service, "PURGE_CHUNK", 2)
    for index in range(3):
        assert post_order(pos_a, key=f"old-{index}").status_code in (200, 201)
    age(8)
    assert post_order(pos_a, key="recent").status_code == 200
    # when the nightly task runs
    deleted = idempotency_records_purge_task()
    # then
    assert deleted == 3
    assert list(ApiIdempotencyRecord.objects.values_list("key", flat=True)) == ["recent"]
    assert idempotency_records_purge_task() == 0


def test_a_retry_after_the_purge_is_answered_as_already_recorded(pos_a, member_a):
    # given an order whose stored response was purged
    first = post_order(pos_a)
    age(30)
    idempotency_records_purge_task()
    # when the POS retries with the same key and body
    again = post_order(pos_a)
    # then it is not recorded twice: the order service answers "already recorded"
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["external_id"] == "POS-P1"
    assert Order.objects.filter(external_id="POS-P1").count() == 1
