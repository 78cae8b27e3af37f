"""Fault drill: the database connection of an order POST is killed while the request is inside its
transaction; the till retries with the same ``Idempotency-Key`` and gets one order, one points entry.

The request's own PostgreSQL backend is ended with ``pg_terminate_backend`` from another connection
(as a failover, a pooler restart or an operator would end it), at two points of the order's
transaction: after the order row and the tier, before the points; and after every write, just
before the stored answer for the key. The first POST fails with a server error and leaves nothing;
the retry is answered 201 and writes the order once; a third POST replays it.
"""

import datetime as dt

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from members.apis import idempotency
from members.models import ApiIdempotencyRecord, Order, PointsEntry
from members.services import orders as order_services
from tests.api.conftest import store_client
from tests.concurrency import in_another_connection
from tests.factories import MemberFactory, StoreFactory

pytestmark = pytest.mark.django_db(transaction=True)

DROP_POINTS = [
    pytest.param(order_services, "points_earn_for_new_order", id="before-the-points"),
    pytest.param(idempotency, "_record", id="before-the-stored-answer"),
]


def terminate_backend(pid: int) -> None:
    """End backend ``pid`` from another connection and wait until it is gone."""

    def terminate():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            for _attempt in range(200):
                cursor.execute("SELECT pg_stat_clear_snapshot()")
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
                if not cursor.fetchone()[0]:
                    return True
        return False

    assert in_another_connection(terminate) == {"value": True}


@pytest.mark.parametrize(("module", "name"), DROP_POINTS)
def test_order_post_survives_a_dropped_connection_and_its_retry(monkeypatch, module, name):
    # given a till and a member, and the request's connection ended at that point of its transaction
    store = StoreFactory(code="A001")
    member = MemberFactory(mobile="13800000001", home_store=store)
    till = store_client(store)
    till.raise_request_exception = False  # as gunicorn answers it: a 500, not a test error
    body = {
        "external_id": "POS-1001",
        "mobile": member.mobile,
        "paid_at": (timezone.now() - dt.timedelta(minutes=3)).isoformat(),
        "amount": "88.00",
    }
    real, dropped = getattr(module, name), []

    def drop_the_connection_first(*args, **kwargs):
        if not dropped:
            assert connection.in_atomic_block, "the drop must come inside the order's transaction"
            dropped.append(connection.connection.info.backend_pid)
            terminate_backend(dropped[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, drop_the_connection_first)

    # when the till posts the order, the connection drops, and it retries with the same key
    first = till.post("/api/v1/pos/orders", body, format="json", HTTP_IDEMPOTENCY_KEY="till-7-1001")
    left_by_the_failure = (Order.objects.count(), PointsEntry.objects.count(), ApiIdempotencyRecord.objects.count())
    retry = till.post("/api/v1/pos/orders", body, format="json", HTTP_IDEMPOTENCY_KEY="till-7-1001")
    again = till.post("/api/v1/pos/orders", body, format="json", HTTP_IDEMPOTENCY_KEY="till-7-1001")

    # then the failed attempt left nothing, the retry recorded the order once, with one points entry
    assert dropped, "the connection was never dropped"
    assert first.status_code == 500
    assert left_by_the_failure == (0, 0, 0)
    assert retry.status_code == 201, retry.content
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == retry.json()
    order = Order.objects.get()
    assert (order.external_id, order.member_id, str(order.amount)) == ("POS-1001", member.pk, "88.00")
    assert list(PointsEntry.objects.values_list("kind", "points")) == [("earn", 88)]
    assert ApiIdempotencyRecord.objects.count() == 1
    call_command("reconcile")  # raises CommandError on any balance that differs from its ledger
