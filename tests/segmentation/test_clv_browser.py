"""The CLV pages in a real browser: the dashboard's CLV cards with their charts drawn, the member
360's lifetime value, and "fit now" from the CLV runs list ending on the run's page at 100 %.
Screenshots ``clv-*.png`` go to ``var/test-artifacts/``.

Headless Debian Chromium driven by Playwright against pytest-django's live server, at 1366 × 800.
"""

from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone, translation

import segmentation.clv_tasks  # noqa: F401 - registers the task in this process, as the worker does
from segmentation.models import ClvRun, MemberClv
from segmentation.services import segment_recompute
from segmentation.services.clv import clv_fit
from tests.browser.conftest import BROWSER_TEST, TIMEOUT_MS, log_in
from tests.browser.conftest import browser as browser  # the fixture, for a test outside tests/browser
from tests.factories import install_default_scheme
from tests.workspace.builders import PASSWORD, role_user

from .clv_simulation import Truth, simulate

SCREEN = {"width": 1366, "height": 800}
ARTIFACTS = Path(settings.BASE_DIR) / "var" / "test-artifacts"

pytestmark = BROWSER_TEST


@pytest.fixture
def brand(transactional_db):
    install_default_scheme()
    simulate(members=400, as_of=timezone.localdate(), truth=Truth(), seed=8)
    segment_recompute()
    clv_fit()
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


def url(name: str, language: str, *args) -> str:
    with translation.override(language):
        return reverse(name, args=args)


def drawn(page, canvas_id: str) -> None:
    page.wait_for_function(f"() => window.Chart && Chart.getChart(document.getElementById('{canvas_id}'))")


@pytest.mark.parametrize(
    ("locale", "language", "title"), [("zh-CN", "zh-hans", "存活概率"), ("en-US", "en", "P(alive)")]
)
def test_the_dashboard_and_the_360_show_the_lifetime_value(open_page, brand, locale, language, title):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = open_page(locale)
    home = url("admin:index", language)
    log_in(page, "operator", PASSWORD, next_url=home)
    # the dashboard: CLV by segment, the P(alive) bars and the calibration lines, drawn
    page.wait_for_selector("#dashboard-clv")
    drawn(page, "chart-p-alive")
    drawn(page, "chart-calibration")
    assert title in page.locator("#dashboard-clv").inner_text()
    assert page.locator("#clv-by-segment tbody tr").count() >= 2
    assert page.evaluate("Chart.getChart(document.getElementById('chart-calibration')).data.datasets.length") == 2
    assert page.evaluate("document.documentElement.scrollWidth") <= SCREEN["width"]
    page.locator("#dashboard-clv").screenshot(path=str(ARTIFACTS / f"clv-dashboard-{language}.png"))
    # the 360 of a member who came back several times
    score = MemberClv.objects.filter(frequency__gte=3).order_by("-p_alive").first()
    page.goto(url("admin:members_member_change", language, score.member_id))
    section = page.locator("#member-clv")
    assert f"{round(score.p_alive * 100)}%" in section.inner_text()
    page.locator("#member-segment").screenshot(path=str(ARTIFACTS / f"clv-360-{language}.png"))


def test_an_operator_fits_from_the_runs_list(open_page, brand):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = open_page("zh-CN")
    changelist = url("admin:segmentation_clvrun_changelist", "zh-hans")
    log_in(page, "operator", PASSWORD, next_url=changelist)
    page.fill("#id_horizon_days", "180")
    with page.expect_navigation(timeout=120_000):  # the test's Celery runs the task inside the request
        page.click("#clv-fit-start", timeout=120_000)
    page.wait_for_selector("#clv-progress[data-status=succeeded]", timeout=120_000)
    run = ClvRun.objects.order_by("-pk").first()
    assert (run.status, run.horizon_days) == ("succeeded", 180)
    assert "100%" in page.locator("#clv-progress").inner_text()
    page.screenshot(path=str(ARTIFACTS / "clv-run-zh-hans.png"), full_page=True)
