"""The operators' report pages (issue #19) and the dashboard's activity card: what an operator
sees and downloads, in Chinese, and who may not see them."""

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.urls import reverse
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

ACTIVITY = "admin:workspace_report_activity"
GROWTH = "admin:workspace_report_growth"
REFERRALS = "admin:workspace_report_referrals"


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()
    yield
    cache.clear()


def stats(count: int, frequency: str, monetary: str) -> dict:
    return {"count": count, "avg_frequency": frequency, "avg_monetary": monetary}


@pytest.fixture
def runs():
    scheme = SchemeFactory()
    SegmentFactory(scheme=scheme, slug="loyal", name_zh="重要价值客户", name_en="Loyal", ordering=1)
    now = timezone.now()
    a = RfmRunFactory(
        scheme=scheme, started_at=now - dt.timedelta(days=30), segment_stats={"loyal": stats(10, "3.00", "500.00")}
    )
    b = RfmRunFactory(
        scheme=scheme, started_at=now, is_current=True, segment_stats={"loyal": stats(15, "2.40", "420.50")}
    )
    return a, b


def zh_get(client, url, **params):
    client.cookies["django_language"] = "zh-hans"
    return client.get(url, params, HTTP_ACCEPT_LANGUAGE="zh-hans", follow=True)


def csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))


def test_the_dashboard_shows_a_member_who_only_checked_in_today_as_active(client, make_user):
    # given: a member with no order who checked in today
    InteractionFactory(member=MemberFactory(), occurred_at=timezone.now())
    client.force_login(make_user("operator"))
    # when
    response = zh_get(client, reverse("admin:index"))
    # then: the activity card counts them, with its definition and link to the report
    card = response.context["dashboard"]["activity"]
    assert card["today_active"] == 1
    html = response.content.decode()
    assert 'id="dashboard-activity"' in html and "活跃与留存" in html
    assert "次日留存" in html
    assert reverse(ACTIVITY) in html
    assert "rollup_activity --days 90" in html  # no rollup yet: the card says how to fill the history


def test_the_activity_report_in_chinese_and_its_csv(client, make_user):
    # given: a member registered three days ago who ordered that day and checked in the next day,
    # and the nightly rollup
    now = timezone.localtime()
    member = MemberFactory(registered_at=now - dt.timedelta(days=3))
    OrderFactory(member=member, paid_at=now - dt.timedelta(days=3))
    InteractionFactory(member=member, occurred_at=now - dt.timedelta(days=2))
    activity_rollup(days=5)
    client.force_login(make_user("analyst"))
    # when
    response = zh_get(client, reverse(ACTIVITY), days=14, weeks=6)
    # then
    assert response.status_code == 200
    html = response.content.decode()
    assert "日活跃会员" in html and "次日留存" in html and "今日活跃为实时数据" in html
    assert response.context["total"]["rates"][0] == Decimal("1.0000")
    assert len(response.context["report"]["daily"]) == 14
    # and: the CSV has the day series and the cohorts
    rows = csv_rows(client.get(reverse(ACTIVITY), {"days": 14, "weeks": 6, "format": "csv"}))
    assert rows[0] == ["series", "start", "segment", "active"]
    two_days_ago = str(timezone.localdate() - dt.timedelta(days=2))
    assert ["day", two_days_ago, "*", "1"] in rows
    assert [str(timezone.localdate() - dt.timedelta(days=3)), "1", "1.0000", "", ""] in rows


def test_before_the_first_rollup_the_page_says_how_to_fill_it(client, make_user):
    client.force_login(make_user("operator"))
    html = zh_get(client, reverse(ACTIVITY)).content.decode()
    assert "rollup_activity --days 90" in html


def test_the_growth_report_shows_plus_fifty_percent(client, make_user, runs):
    client.force_login(make_user("operator"))
    response = zh_get(client, reverse(GROWTH))  # default: the current run and the one before
    assert response.status_code == 200
    html = response.content.decode()
    assert "重要价值客户" in html and "+50.0%" in html
    a, b = runs
    rows = csv_rows(client.get(reverse(GROWTH), {"from_run": a.pk, "to_run": b.pk, "format": "csv"}))
    assert dict(zip(rows[2], rows[3], strict=True))["size_growth"] == "0.5000"


def test_the_growth_form_refuses_a_second_run_before_the_first(client, make_user, runs):
    a, b = runs
    RfmRun = type(a)
    RfmRun.objects.filter(pk=a.pk).update(as_of=b.as_of + dt.timedelta(days=1))
    client.force_login(make_user("operator"))
    response = zh_get(client, reverse(GROWTH), from_run=a.pk, to_run=b.pk)
    assert response.status_code == 200 and response.context["report"] is None
    assert response.context["form"].non_field_errors()


def test_the_referral_report_by_the_referrers_segment(client, make_user):
    run = RfmRunFactory(is_current=True)
    referrer = MemberRfmFactory(run=run).member
    referee = ReferralFactory(referrer=referrer, referee=MemberFactory(registered_at=timezone.now())).referee
    OrderFactory(member=referee, amount=Decimal("66.00"))
    client.force_login(make_user("operator"))
    response = zh_get(client, reverse(REFERRALS))
    assert response.status_code == 200
    html = response.content.decode()
    assert "推荐新会员" in html and "¥66.00" in html
    today = timezone.localdate()
    rows = csv_rows(client.get(reverse(REFERRALS), {"start": today, "end": today, "format": "csv"}))
    row = dict(zip(rows[2], rows[3], strict=True))
    assert (row["referred"], row["first_order_value"]) == ("1", "66.00")


@pytest.mark.parametrize("url_name", [ACTIVITY, GROWTH, REFERRALS])
def test_store_staff_cannot_see_the_reports(client, make_user, stores, url_name):
    client.force_login(make_user("manager", stores.ours))
    assert client.get(reverse(url_name)).status_code == 403
