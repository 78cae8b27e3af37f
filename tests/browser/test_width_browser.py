"""No admin page is wider than a 1366 px screen, and the top bar's language switcher works, in a real
browser (issue #17, "Chinese first").

The demo operator opens a handful of the widest pages — the dashboard, lists with many columns,
the member 360, the campaign and scheme builders, the migration matrix, the role page with its
permission chooser, a periodic task — at 1366 × 800 in both languages; the document must not scroll
sideways (a wide table may scroll inside its own box). Screenshots go to ``var/test-artifacts/``.
"""

from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.urls import reverse

from tests.browser.conftest import BROWSER_TEST, TIMEOUT_MS, log_in
from tests.test_admin_crawl_zh import build_rows, chinese_by_default
from tests.workspace.builders import PASSWORD, role_user

SCREEN = {"width": 1366, "height": 800}
ARTIFACTS = Path(settings.BASE_DIR) / "var" / "test-artifacts"

pytestmark = BROWSER_TEST
__all__ = ["chinese_by_default"]  # the fixture, shared with the crawl


@pytest.fixture
def rows(transactional_db, chinese_by_default):
    return build_rows(role_user("operator"))


def wide_pages(rows) -> dict[str, str]:
    return {
        "dashboard": reverse("admin:index"),
        "members": reverse("admin:members_member_changelist"),
        "member-360": reverse("admin:members_member_change", args=[rows["members.Member"].pk]),
        "wallet-entries": reverse("admin:members_walletentry_changelist"),
        "orders": reverse("admin:members_order_changelist"),
        "campaign-new": reverse("admin:campaigns_campaign_add"),
        "coupon-templates": reverse("admin:campaigns_coupontemplate_changelist"),
        "scheme": reverse("admin:segmentation_scheme_change", args=[rows["segmentation.Scheme"].pk]),
        "matrix": reverse("admin:segmentation_rfmrun_matrix"),
        "role": reverse("admin:auth_group_change", args=[Group.objects.get(name="运营 operator").pk]),
        "periodic-task": reverse(
            "admin:django_celery_beat_periodictask_change", args=[rows["django_celery_beat.PeriodicTask"].pk]
        ),
    }


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(locale="zh-CN", base_url=live_server.url, viewport=SCREEN)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    log_in(page, "operator", PASSWORD)
    yield page
    context.close()


def test_no_page_is_wider_than_the_screen(rows, page):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    too_wide = {}
    for language, prefix in (("zh", ""), ("en", "/en")):
        for name, url in wide_pages(rows).items():
            response = page.goto(f"{prefix}{url}")
            assert response.ok, f"{prefix}{url}: {response.status}"
            page.wait_for_load_state("networkidle")
            width = page.evaluate("document.documentElement.scrollWidth")
            page.screenshot(path=str(ARTIFACTS / f"width-{name}-{language}.png"), full_page=True)
            if width > SCREEN["width"]:
                too_wide[f"{prefix}{url}"] = width
    assert too_wide == {}


def test_the_top_bar_switches_the_page_between_chinese_and_english(rows, page):
    # given a Chinese browser on the member list
    page.goto("/admin/members/member/")
    assert page.evaluate("document.documentElement.lang") == "zh-hans"
    # when English is chosen in the top bar
    page.click("#language-switch button[value=en]")
    # then the same list opens in English
    page.wait_for_url("**/en/admin/members/member/")
    assert page.evaluate("document.documentElement.lang") == "en"
    page.screenshot(path=str(ARTIFACTS / "language-switch-en.png"))
    # and an unprefixed link stays English (the choice outlives the Chinese browser)
    page.goto("/admin/")
    assert page.evaluate("document.documentElement.lang") == "en"
    # when Chinese is chosen again
    page.click("#language-switch button[value=zh-hans]")
    page.wait_for_url(lambda url: url.endswith("/admin/") and "/en/" not in url)
    assert page.evaluate("document.documentElement.lang") == "zh-hans"
    page.screenshot(path=str(ARTIFACTS / "language-switch-zh.png"))
