"""The operators' report API (issue #19): ``/api/v1/reports/…`` for the dashboard's users only,
JSON or CSV, field-level 400s, and a number of queries that does not grow with the data."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.factories import (
    InteractionFactory,
    MemberFactory,
    MemberRfmFactory,
    OrderFactory,
    ReferralFactory,
    RfmRunFactory,
    SchemeFactory,
    SegmentFactory,
)
from workspace.activity_rollup import activity_rollup

pytestmark = pytest.mark.django_db

ACTIVITY = "/api/v1/reports/activity"
GROWTH = "/api/v1/reports/segment-growth"
REFERRALS = "/api/v1/reports/referrals"


@pytest.fixture
def operator_client(client, make_user):
    client.force_login(make_user("operator"))
    return client


def stats(count: int, frequency: str, monetary: str) -> dict:
    return {"count": count, "avg_frequency": frequency, "avg_monetary": monetary}


def test_growth_of_a_segment_from_10_to_15_members_is_fifty_percent(operator_client, django_assert_max_num_queries):
    scheme = SchemeFactory()
    SegmentFactory(scheme=scheme, slug="loyal", name_zh="重要价值客户", name_en="Loyal")
    now = timezone.now()
    a = RfmRunFactory(
        scheme=scheme, started_at=now - dt.timedelta(days=7), segment_stats={"loyal": stats(10, "3.00", "500.00")}
    )
    b = RfmRunFactory(
        scheme=scheme, started_at=now, is_current=True, segment_stats={"loyal": stats(15, "2.40", "420.50")}
    )
    with django_assert_max_num_queries(8):  # session and user, the two runs, the segments
        body = operator_client.get(GROWTH).json()
    assert (body["from_run"]["id"], body["to_run"]["id"]) == (a.pk, b.pk)
    loyal = next(row for row in body["segments"] if row["slug"] == "loyal")
    assert (loyal["size_growth"], loyal["spend_b"], loyal["new"]) == ("0.5000", "6307.50", False)
    csv = operator_client.get(GROWTH, {"from_run": a.pk, "to_run": b.pk, "format": "csv"})
    assert csv.status_code == 200 and csv["Content-Type"].startswith("text/csv")
    # and: one run alone is a field error; a run before the first is refused
    response = operator_client.get(GROWTH, {"from_run": a.pk})
    assert response.status_code == 400 and "to_run" in str(response.json())
    response = operator_client.get(GROWTH, {"from_run": b.pk, "to_run": a.pk})
    assert response.status_code in (200, 400)  # same as-of day: allowed


def test_activity_counts_a_check_in_and_its_queries_do_not_grow(operator_client):
    def build(n):
        for _ in range(n):
            member = MemberFactory(registered_at=timezone.now() - dt.timedelta(days=3))
            InteractionFactory(member=member, occurred_at=timezone.now() - dt.timedelta(days=2))
            OrderFactory(member=member, paid_at=timezone.now())
        activity_rollup(days=5)

    counts = []
    for n in (1, 3):
        build(n)
        with CaptureQueriesContext(connection) as queries:
            response = operator_client.get(ACTIVITY, {"days": 7, "weeks": 4})
        assert response.status_code == 200
        counts.append(len(queries))
    body = response.json()
    assert body["daily"][-1]["active"] == 4  # today, live: four orders
    two_days_ago = str(timezone.localdate() - dt.timedelta(days=2))
    assert next(day for day in body["daily"] if day["start"] == two_days_ago)["active"] == 4  # check-ins only
    assert body["retention"]["next_day"] == "1.0000"
    assert counts[0] == counts[1] and counts[1] <= 12, counts
    assert operator_client.get(ACTIVITY, {"days": 3}).status_code == 400


def test_referrals_by_the_referrers_segment(operator_client, django_assert_max_num_queries):
    run = RfmRunFactory(is_current=True)
    referrer = MemberRfmFactory(run=run).member
    referee = ReferralFactory(referrer=referrer, referee=MemberFactory(registered_at=timezone.now())).referee
    OrderFactory(member=referee, amount=Decimal("66.00"))
    with django_assert_max_num_queries(8):  # session and user, the figures, the current run's segments
        body = operator_client.get(REFERRALS).json()
    row = next(item for item in body["segments"] if item["slug"] == referrer.rfm.segment.slug)
    assert (row["referred"], row["buyers"], row["first_order_value"]) == (1, 1, "66.00")
    today = timezone.localdate()
    response = operator_client.get(REFERRALS, {"start": today, "end": today - dt.timedelta(days=1)})
    assert response.status_code == 400 and "end" in str(response.json())


@pytest.mark.parametrize("url", [ACTIVITY, GROWTH, REFERRALS])
def test_store_managers_and_anonymous_callers_are_refused(client, make_user, stores, url):
    assert client.get(url).status_code in (401, 403)
    client.force_login(make_user("manager", stores.ours))
    assert client.get(url).status_code == 403
