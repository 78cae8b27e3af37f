"""The operators' reports of issue #19 in a real browser: the dashboard's activity card, the
activity and retention report, the segment growth report and the referral report, in Chinese (and
the activity report in English), at 1366 px. Screenshots go to ``var/test-artifacts/``:
``dashboard-activity-zh-hans.png``, ``report-activity-zh-hans.png``, ``report-activity-en.png``,
``report-growth-zh-hans.png`` and ``report-referrals-zh-hans.png``.
"""

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone, translation

from segmentation.services import segment_recompute
from tests.browser.conftest import BROWSER_TEST, TIMEOUT_MS, log_in
from tests.factories import (
    InteractionFactory,
    MemberFactory,
    OrderFactory,
    ReferralFactory,
    StoreFactory,
    install_default_scheme,
)
from tests.workspace.builders import PASSWORD, role_user
from workspace.activity_rollup import activity_rollup

SCREEN = {"width": 1366, "height": 800}
ARTIFACTS = Path(settings.BASE_DIR) / "var" / "test-artifacts"

pytestmark = BROWSER_TEST


def days_ago(days: float) -> dt.datetime:
    return timezone.now() - dt.timedelta(days=days)


@pytest.fixture
def brand(transactional_db):
    """Members in several segments, a month of orders and check-ins, new members who came back,
    referrals, two runs and the activity rollup."""
    install_default_scheme()
    store = StoreFactory(code="SH01", name="静安店")
    loyal = []
    for index in range(4):
        member = MemberFactory(home_store=store, mobile=f"1380000{index:04d}")
        loyal.append(member)
        for days in (5, 12, 25, 40):
            OrderFactory(member=member, paid_at=days_ago(days + index), amount=Decimal("260.00"))
    for index in range(6):
        member = MemberFactory(home_store=store, mobile=f"1390000{index:04d}")
        OrderFactory(member=member, paid_at=days_ago(150 + index), amount=Decimal("35.00"))
    segment_recompute(as_of=timezone.localdate() - dt.timedelta(days=20))
    for index in range(12):  # new members this month; most came back
        registered = days_ago(2 + index * 2)
        member = MemberFactory(home_store=store, mobile=f"1370000{index:04d}", registered_at=registered)
        OrderFactory(member=member, paid_at=registered, amount=Decimal("58.00"))
        if index % 3:
            InteractionFactory(member=member, occurred_at=registered + dt.timedelta(days=1))
        if index < 6:
            ReferralFactory(referrer=loyal[index % 4], referee=member)
    for days in range(30):  # daily check-ins of the loyal members
        for index, member in enumerate(loyal):
            if (days + index) % 3 == 0:
                InteractionFactory(member=member, occurred_at=days_ago(days))
    segment_recompute(as_of=timezone.localdate())
    activity_rollup(days=90)
    role_user("operator")


@pytest.fixture
def open_page(browser, live_server):
    contexts = []

    def new_page(locale: str):
        context = browser.new_context(locale=locale, base_url=live_server.url, viewport=SCREEN)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield new_page
    for context in contexts:
        context.close()


def url(name: str, language: str) -> str:
    with translation.override(language):
        return reverse(name)


def charts_drawn(page, *selectors: str) -> None:
    for selector in selectors:
        page.wait_for_function(
            "(s) => window.Chart && Chart.getChart(document.querySelector(s))", arg=selector, timeout=TIMEOUT_MS
        )
    page.wait_for_timeout(300)


def test_an_operator_reads_activity_growth_and_referrals(open_page, brand):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = open_page("zh-CN")
    log_in(page, "operator", PASSWORD, next_url=url("admin:index", "zh-hans"))
    # the dashboard's activity card
    page.wait_for_selector("#dashboard-activity")
    charts_drawn(page, "#chart-dau", "#chart-wau")
    card = page.locator("#dashboard-activity")
    assert "活跃与留存" in card.inner_text() and "次日留存" in card.inner_text()
    card.scroll_into_view_if_needed()
    card.screenshot(path=str(ARTIFACTS / "dashboard-activity-zh-hans.png"))
    # the activity report, from the card's link
    card.locator("a.dash-link").first.click()
    page.wait_for_selector("#activity-by-segment")
    charts_drawn(page, "#chart-dau canvas", "#chart-wau canvas")
    assert "日活跃会员" in page.inner_text("#content-main")
    assert page.evaluate("document.documentElement.scrollWidth") <= SCREEN["width"]
    page.screenshot(path=str(ARTIFACTS / "report-activity-zh-hans.png"), full_page=True)
    # the growth report (the current run against the one before)
    page.goto(url("admin:workspace_report_growth", "zh-hans"))
    page.wait_for_selector("#growth-report")
    assert "增长率" in page.inner_text("#growth-report")
    assert page.evaluate("document.documentElement.scrollWidth") <= SCREEN["width"]
    page.screenshot(path=str(ARTIFACTS / "report-growth-zh-hans.png"), full_page=True)
    # the referral report
    page.goto(url("admin:workspace_report_referrals", "zh-hans"))
    page.wait_for_selector("#referral-report")
    assert "推荐新会员数" in page.inner_text("#referral-report")
    assert page.evaluate("document.documentElement.scrollWidth") <= SCREEN["width"]
    page.screenshot(path=str(ARTIFACTS / "report-referrals-zh-hans.png"), full_page=True)
    # and the activity report in English
    page = open_page("en-US")
    log_in(page, "operator", PASSWORD, next_url=url("admin:workspace_report_activity", "en"))
    page.wait_for_selector("#activity-by-segment")
    charts_drawn(page, "#chart-dau canvas")
    assert "Daily active members" in page.inner_text("#content-main")
    page.screenshot(path=str(ARTIFACTS / "report-activity-en.png"), full_page=True)
