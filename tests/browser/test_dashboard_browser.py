"""The operator dashboard in a real browser (issue #17): an operator opens the admin home, follows a
segment's bar to its member list, and starts a recompute that finishes without a page reload.
Screenshots ``dashboard-zh-hans.png`` and ``dashboard-en.png`` go to ``var/test-artifacts/``.

Headless Debian Chromium driven by Playwright against pytest-django's live server, at 1366 × 800
(the widest screen the product promises to fit).
"""

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone, translation

from segmentation.models import RfmRun, Segment
from segmentation.services import segment_recompute
from tests.browser.conftest import BROWSER_TEST, TIMEOUT_MS, log_in
from tests.factories import MemberFactory, OrderFactory, StoreFactory, install_default_scheme
from tests.workspace.builders import PASSWORD, role_user

SCREEN = {"width": 1366, "height": 800}
ARTIFACTS = Path(settings.BASE_DIR) / "var" / "test-artifacts"

pytestmark = BROWSER_TEST


def days_ago(days: int) -> dt.datetime:
    return timezone.now() - dt.timedelta(days=days)


@pytest.fixture
def brand(transactional_db):
    """Members in several segments of the default scheme and two runs ten days apart."""
    install_default_scheme()
    store = StoreFactory(code="SH01", name="静安店")
    champions = [MemberFactory(home_store=store, mobile=f"1380000{index:04d}") for index in range(3)]
    for member in champions:
        for days in (5, 12, 25):
            OrderFactory(member=member, paid_at=days_ago(days), amount=Decimal("260.00"))
    for index in range(5):
        member = MemberFactory(home_store=store, mobile=f"1390000{index:04d}")
        OrderFactory(member=member, paid_at=days_ago(3 + index), amount=Decimal("58.00"))
    for index in range(4):
        member = MemberFactory(home_store=store, mobile=f"1370000{index:04d}")
        OrderFactory(member=member, paid_at=days_ago(150 + index), amount=Decimal("35.00"))
    for index in range(2):
        MemberFactory(home_store=store, mobile=f"1360000{index:04d}")
    segment_recompute(as_of=timezone.localdate() - dt.timedelta(days=10))
    segment_recompute(as_of=timezone.localdate())
    role_user("operator")
    return {"champions": champions}


@pytest.fixture
def open_page(browser, live_server):
    """``open_page("zh-CN")``: a 1366 px page whose browser asks for that language."""
    contexts = []

    def new_page(locale: str):
        context = browser.new_context(locale=locale, base_url=live_server.url, viewport=SCREEN)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield new_page
    for context in contexts:
        context.close()


def home(language: str) -> str:
    """The admin home in ``language`` whichever language the settings make the default."""
    with translation.override(language):
        return reverse("admin:index")


def charts_drawn(page) -> None:
    page.wait_for_function("() => window.Chart && Chart.getChart(document.getElementById('chart-segments'))")
    page.wait_for_timeout(300)  # the click handlers are attached right after unfold draws the charts


def test_an_operator_follows_a_segment_bar_and_watches_a_recompute(open_page, brand):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    champions = Segment.objects.get(scheme__slug="rfm-default", slug="champions")
    # given: the operator on the admin home
    page = open_page("zh-CN")
    log_in(page, "operator", PASSWORD, next_url=home("zh-hans"))
    page.wait_for_selector("#dashboard")
    charts_drawn(page)
    # then: the dashboard, in Chinese, no wider than the screen
    assert "重要价值用户" in page.locator("#dashboard-segments").inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= SCREEN["width"]
    page.screenshot(path=str(ARTIFACTS / "dashboard-zh-hans.png"), full_page=True)
    # when: a click on the champions' bar
    index = page.evaluate(
        "(slug) => [...document.querySelectorAll('#dashboard-segments a.segment-link')]"
        ".findIndex((a) => a.dataset.segment === slug)",
        "champions",
    )
    point = page.evaluate(
        """(index) => {
            const canvas = document.getElementById('chart-segments');
            const bar = Chart.getChart(canvas).getDatasetMeta(0).data[index];
            const box = canvas.getBoundingClientRect();
            return {x: box.left + bar.x, y: box.top + (bar.y + bar.base) / 2};
        }""",
        index,
    )
    page.mouse.click(point["x"], point["y"])
    page.wait_for_url(f"**segment={champions.pk}*")
    # then: the member list filtered by that segment, with exactly its members
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == len(brand["champions"])
    assert all("重要价值用户" in rows.nth(number).inner_text() for number in range(rows.count()))
    # when: back on the dashboard, the recompute button
    runs = RfmRun.objects.count()
    page.goto(home("zh-hans"))
    page.wait_for_selector("#recompute-start")
    page.evaluate("window.__notReloaded = true")
    page.click("#recompute-start")
    # then: the box says it finished, with the new figures, and the page was never reloaded
    page.wait_for_selector("#recompute-box[data-state=finished]", timeout=60_000)
    assert page.evaluate("window.__notReloaded === true")
    assert RfmRun.objects.count() == runs + 1
    figures = page.locator("#recompute-figures").inner_text()
    assert "14" in figures  # members in the new run
    # and in English
    page = open_page("en-US")
    log_in(page, "operator", PASSWORD, next_url=home("en"))
    page.wait_for_selector("#dashboard")
    charts_drawn(page)
    assert "Champions" in page.locator("#dashboard-segments").inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= SCREEN["width"]
    page.screenshot(path=str(ARTIFACTS / "dashboard-en.png"), full_page=True)
