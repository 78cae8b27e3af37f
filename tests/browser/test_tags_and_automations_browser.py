"""Tags and automations in a real browser (Debian Chromium, Playwright), in Chinese: an operator
reads the tag rules with how many members each tagged, and the playbook's automations (the
birthday greeting among them); a clerk sees a member's rule tags marked 自动 beside staff's own.
Screenshots are saved under ``var/test-artifacts/`` (not committed) for people to look at."""

import datetime as dt
from decimal import Decimal
from importlib import import_module

import pytest
from django.apps import apps as django_apps
from django.utils import timezone

from campaigns.playbook import playbook_install
from members.models import TagRule
from members.services.tags import member_tag_add
from segmentation.services import rule_tags_recompute
from tests.browser.conftest import BROWSER_TEST, TIMEOUT_MS, log_in
from tests.browser.test_workspace_browser import ARTIFACTS, TABLET, member_360
from tests.factories import OrderFactory, install_default_scheme
from tests.workspace.builders import PASSWORD, role_user, segment_with_orders, two_stores

pytestmark = BROWSER_TEST


@pytest.fixture
def member(transactional_db):
    stores = two_stores()
    install_default_scheme()
    playbook_install()
    member = stores.our_member
    member.birthday = timezone.localdate().replace(year=1990)
    member.save(update_fields=["birthday"])
    segment_with_orders(member)
    OrderFactory(
        member=member, store=stores.ours, amount=Decimal("120.00"), paid_at=timezone.now() - dt.timedelta(days=2)
    )
    # the shipped rules (members/0028; a transactional test before this one may have flushed them)
    import_module("members.migrations.0028_default_tag_rules").install(django_apps, None)
    TagRule.objects.update(is_active=True)
    TagRule.objects.filter(name="高客单").update(average_at_least=Decimal("20.00"), min_orders=1)
    rule_tags_recompute()
    clerk = role_user("staff", stores.ours, username="clerk")
    member_tag_add(member=member, name="爱喝少糖", actor=clerk)
    role_user("operator", stores.ours, username="operator")
    return member


def test_operators_read_tag_rules_and_automations_and_clerks_see_auto_tags(browser, live_server, member):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(locale="zh-CN", base_url=live_server.url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    log_in(page, "operator", PASSWORD)
    page.goto("/admin/members/tagrule/")
    rules = page.locator("#result_list").inner_text()
    assert "生日月" in rules and "高客单" in rules and "生日在本月" in rules
    page.screenshot(path=str(ARTIFACTS / "tag-rules-zh-hans.png"), full_page=True)
    page.goto("/admin/campaigns/trigger/")
    triggers = page.locator("#result_list").inner_text()
    assert "重要保持用户生日关怀" in triggers and "生日前 3 天" in triggers
    page.screenshot(path=str(ARTIFACTS / "triggers-playbook-zh-hans.png"), full_page=True)
    context.close()

    context = browser.new_context(locale="zh-CN", base_url=live_server.url, viewport=TABLET)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    log_in(page, "clerk", PASSWORD)
    page.goto(member_360(member))
    tags = page.locator("#member-tags")
    assert "爱喝少糖" in tags.inner_text() and "生日月" in tags.inner_text() and "自动" in tags.inner_text()
    assert page.locator("#member-tags .rule-tag").count() >= 2
    tags.screenshot(path=str(ARTIFACTS / "member-360-rule-tags-zh-hans.png"))
    page.screenshot(path=str(ARTIFACTS / "member-360-tags-zh-hans.png"), full_page=True)
    context.close()
