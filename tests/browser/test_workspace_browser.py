"""Store staff at the counter, in a real browser on a 1024 px tablet: find a member by the last four
digits, read their 360, record a follow-up; fail to reach another store's member; a manager reveals
a full number and the reveal is in the audit.

Headless Debian Chromium driven by Playwright against pytest-django's live server, as in
``test_admin_browser.py``. Screenshots of the 360 in English and Chinese are saved under
``var/test-artifacts/`` (not committed) for people to look at.
"""

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from campaigns.models import FollowUpTask
from members.models import StaffAccess
from tests.browser.conftest import BROWSER_TEST, TIMEOUT_MS, log_in
from tests.factories import (
    CouponFactory,
    FollowUpTaskFactory,
    MemberFactory,
    OutboxMessageFactory,
    PointsAccountFactory,
    ReferralFactory,
    TopUpOfferFactory,
    WalletFactory,
    install_default_scheme,
    tier_ladder,
)
from tests.workspace.builders import PASSWORD, role_user, segment_with_orders, two_stores

TABLET = {"width": 1024, "height": 768}
ARTIFACTS = Path(settings.BASE_DIR) / "var" / "test-artifacts"

pytestmark = BROWSER_TEST


@pytest.fixture
def open_page(browser, live_server):
    """``open_page("clerk")``: a tablet-sized page logged in as that user."""
    contexts = []

    def login(username: str):
        context = browser.new_context(locale="en-US", base_url=live_server.url, viewport=TABLET)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        log_in(page, username, PASSWORD)
        return page

    yield login
    for context in contexts:
        context.close()


@pytest.fixture
def stores(transactional_db):
    return two_stores()


@pytest.fixture
def counter(stores, django_user_model):
    """Our store's member with a history worth a 360, a clerk and a manager of our store, a superuser."""
    install_default_scheme()
    member = stores.our_member
    member.tier = tier_ladder()["silver"]
    member.birthday = dt.date(1990, 5, 1)
    member.save(update_fields=["tier", "birthday"])
    segment_with_orders(member)
    PointsAccountFactory(member=member, balance=320)
    WalletFactory(member=member, principal=Decimal("90.00"), bonus=Decimal("9.00"))
    CouponFactory(member=member, template__name="¥20 off ¥100", template__amount=Decimal("20.00"))
    TopUpOfferFactory(name="Top up ¥100, get ¥10")
    ReferralFactory(referrer=member, referee=MemberFactory(mobile="13700001111", name="李雷", home_store=stores.ours))
    OutboxMessageFactory(member=member, template="birthday_greeting", channel="wechat")
    task = FollowUpTaskFactory(
        member=member, reason="Ask why they stopped coming", due_date=timezone.localdate() - dt.timedelta(days=1)
    )
    role_user("staff", stores.ours, username="clerk")
    role_user("manager", stores.ours, username="boss")
    django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    return {"member": member, "task": task}


def member_360(member) -> str:
    return f"/admin/members/member/{member.pk}/change/"


def test_store_staff_serve_their_member_and_cannot_reach_another_stores(open_page, stores, counter):
    member, task = counter["member"], counter["task"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = open_page("clerk")
    # when: the last four digits in the counter's search box
    page.fill("#workspace-q", "2213")
    page.press("#workspace-q", "Enter")
    page.wait_for_url("**q=2213*")
    rows = page.locator("#result_list tbody tr")
    # then: our member only, masked
    assert rows.count() == 1
    assert "138****2213" in rows.first.inner_text()
    # when: their 360
    rows.first.locator("th a").click()
    page.wait_for_selector("#member-who")
    # then
    assert page.locator("#member-mobile").inner_text() == "138****2213"
    assert page.locator("#reveal-mobile").count() == 0
    assert "13800002213" not in page.content()
    sentence = page.locator("#segment-sentence").inner_text()
    assert sentence == "R = 45 days > 30, F = 4 ≥ 3, M = ¥820 ≥ ¥500 → Loyal at risk"
    page.screenshot(path=str(ARTIFACTS / "member-360-en.png"), full_page=True)
    # and in Chinese
    page.goto(f"/zh-hans{member_360(member)}")
    assert "重要保持用户" in page.locator("#segment-sentence").inner_text()
    page.screenshot(path=str(ARTIFACTS / "member-360-zh-hans.png"), full_page=True)
    # when: what came of the follow-up
    page.goto(member_360(member))
    task_box = page.locator(f"#task-{task.pk}")
    task_box.locator("input[value=reached]").check()
    task_box.locator("textarea").fill("comes by on Saturday")
    task_box.locator("input[type=submit]").click()
    page.wait_for_selector("ul.messagelist")
    # then
    task.refresh_from_db()
    assert (task.status, task.outcome) == (FollowUpTask.Status.DONE, "Reached: comes by on Saturday")
    assert "No open task." in page.locator("#member-tasks").inner_text()
    # when: another store's member, by address and by search
    by_address = page.goto(member_360(stores.their_member))
    # then
    assert by_address.status == 404
    page.goto("/admin/members/member/?q=" + "王强")
    assert page.locator("#result_list tbody tr").count() == 0
    assert not StaffAccess.objects.exists()


def test_a_manager_reveals_a_full_number_and_the_audit_shows_it(open_page, stores, counter):
    member = counter["member"]
    # given
    page = open_page("boss")
    page.goto(member_360(member))
    assert page.locator("#member-mobile").inner_text() == "138****2213"
    # when
    page.click("#reveal-mobile")
    page.wait_for_selector("#member-who .revealed-note")
    # then
    assert page.locator("#member-mobile").inner_text() == "13800002213"
    # when: the operator looks at the audit
    audit = open_page("root")
    audit.goto("/admin/members/staffaccess/")
    rows = audit.locator("#result_list tbody tr")
    # then
    assert rows.count() == 1
    text = rows.first.inner_text()
    assert "boss" in text and "Full mobile number revealed" in text and "138****2213" in text
    assert re.search(r"13800002213", audit.content()) is None
