"""The operator edits a segmentation scheme and sees the segment sizes, and how many members would
change segment, update before saving; uploads an orders file and watches the check's progress bar
move and finish without a reload, then imports it.

Headless Debian Chromium driven by Playwright against pytest-django's live server (see
``conftest.py``). Screenshots of the scheme builder in both languages and of an import in progress
are saved under ``var/test-artifacts/`` (not committed) for people to look at.
"""

import datetime as dt
import threading
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections
from django.utils import timezone

from members.admin import imports as admin_imports
from members.models import ImportJob, Order
from members.services import import_jobs
from segmentation.services import segment_recompute
from tests.browser.conftest import BROWSER_TEST, TIMEOUT_MS, log_in
from tests.factories import MemberFactory, OrderFactory, StoreFactory, install_default_scheme
from tests.workspace.builders import PASSWORD, role_user

SCREEN = {"width": 1366, "height": 800}
ARTIFACTS = Path(settings.BASE_DIR) / "var" / "test-artifacts"

pytestmark = BROWSER_TEST


@pytest.fixture
def operator_page(browser, live_server):
    """``operator_page("zh-CN")``: a 1366 px page logged in as the operator (the shipped role)."""
    role_user("operator", username="operator")
    contexts = []

    def open_page(locale: str = "zh-CN"):
        context = browser.new_context(locale=locale, base_url=live_server.url, viewport=SCREEN)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        log_in(page, "operator", PASSWORD)
        return page

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def customers(transactional_db):
    """The default scheme, active and computed today over a dozen buyers and a few who never bought."""
    scheme = install_default_scheme()
    store = StoreFactory(code="S001")
    now = timezone.now()
    for index in range(12):
        buyer = MemberFactory(home_store=store)
        for order in range(1 + index % 4):
            OrderFactory(
                member=buyer,
                store=store,
                paid_at=now - dt.timedelta(days=5 + index * 15 + order),
                amount=f"{80 + index * 40}.00",
            )
    for _ in range(3):
        MemberFactory(home_store=store)
    segment_recompute(as_of=timezone.localdate())
    return {"scheme": scheme, "store": store}


def changing(page) -> int:
    return int(page.get_attribute("#scheme-live-preview-body .scheme-preview", "data-changing"))


def test_the_operator_sees_the_segment_sizes_change_before_saving(operator_page, customers):
    scheme = customers["scheme"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # The browser's language chooses the page's (a Chinese browser is sent to the Chinese pages).
    for locale, shot in (("zh-CN", "scheme-builder-zh-hans.png"), ("en-US", "scheme-builder-en.png")):
        page = operator_page(locale)
        page.goto(f"/admin/segmentation/scheme/{scheme.pk}/change/")
        # the saved scheme, measured on load: everyone is where today's run put them
        page.wait_for_selector("#scheme-live-preview-body .scheme-preview")
        assert changing(page) == 0
        assert page.locator(".scheme-preview-unsaved").count() == 0
        page.evaluate("window.__notReloaded = true")
        # when: R is high up to 400 days, not saved
        page.fill("#id_r_max_days", "400")
        page.press("#id_r_max_days", "Tab")
        # then: the panel follows the unsaved form
        page.wait_for_selector(".scheme-preview-unsaved")
        assert changing(page) > 0
        assert page.evaluate("window.__notReloaded") is True
        assert page.evaluate("document.documentElement.scrollWidth") <= SCREEN["width"]
        names = page.locator(".scheme-preview-sizes tbody").inner_text()
        assert ("重要价值用户" if locale == "zh-CN" else "Champions") in names
        assert "champions" not in names
        # the panel, whole, on the screen
        page.evaluate("document.querySelector('#scheme-live-preview').scrollIntoView({block: 'center'})")
        page.screenshot(path=str(ARTIFACTS / shot))
        scheme.refresh_from_db()
        assert scheme.r_max_days == 30  # nothing was saved


def test_the_operator_gives_f_its_own_window_and_r_a_medium_level(operator_page, customers):
    """Issue #19: F over 30 days while M stays over the year, and R 高/中/低 — the new fields sit
    with the ones they refine, and the live preview follows them before saving."""
    scheme = customers["scheme"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for locale, shot, label in (
        ("zh-CN", "scheme-windows-levels-zh-hans.png", "F 统计周期"),
        ("en-US", "scheme-windows-levels-en.png", "F window"),
    ):
        page = operator_page(locale)
        page.goto(f"/admin/segmentation/scheme/{scheme.pk}/change/")
        page.wait_for_selector("#scheme-live-preview-body .scheme-preview")
        assert label in page.inner_text("body")
        # when: F counts the last 30 days, R is medium up to 90 days, not saved
        page.fill("#id_f_window_days", "30")
        page.fill("#id_r_mid_days", "90")
        page.press("#id_r_mid_days", "Tab")
        page.wait_for_selector(".scheme-preview-unsaved")
        # then: the fields are on screen next to the limits they refine, without a horizontal scroll
        assert page.is_visible("#id_m_window_days") and page.is_visible("#id_f_mid_min")
        assert page.evaluate("document.documentElement.scrollWidth") <= SCREEN["width"]
        page.evaluate("document.querySelector('#id_window_days').scrollIntoView({block: 'start'})")
        page.screenshot(path=str(ARTIFACTS / shot))
        # and each rule may require a member tag (a column of the rules)
        rules = page.locator("#rules-group")
        assert ("会员标签" if locale == "zh-CN" else "member tag") in rules.inner_text().lower()
        rules.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / shot.replace("windows-levels", "rules")))
        scheme.refresh_from_db()
        assert (scheme.f_window_days, scheme.r_mid_days) == (None, None)  # nothing was saved


@pytest.fixture
def slow_worker(monkeypatch):
    """Jobs run in a thread of their own, as in a worker, and the check pauses after its first batch
    until ``resume`` is set: the page has something to poll."""
    start, paused, resume = threading.Event(), threading.Event(), threading.Event()
    threads = []
    monkeypatch.setattr(import_jobs, "LOYALTY_BATCH_SIZE", 20)
    original = import_jobs._ProgressWriter.on_rows

    def on_rows(writer, rows):
        original(writer, rows)
        if writer.job.phase == ImportJob.Phase.CHECK and rows < writer.job.rows_total:
            paused.set()
            resume.wait(timeout=30)

    monkeypatch.setattr(import_jobs._ProgressWriter, "on_rows", on_rows)

    def work(job_id):
        start.wait(timeout=30)
        try:
            import_jobs.import_job_run(job_id=job_id)
        finally:
            connections.close_all()

    def queue(job):
        thread = threading.Thread(target=work, args=[job.pk], daemon=True)
        threads.append(thread)
        thread.start()

    monkeypatch.setattr(admin_imports, "queue_import_job", queue)
    yield {"start": start, "paused": paused, "resume": resume}
    start.set()
    resume.set()
    for thread in threads:
        thread.join(timeout=30)


def test_the_operator_watches_an_import_progress_and_finish(operator_page, customers, slow_worker, tmp_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    buyer = MemberFactory(mobile="13800138000", home_store=customers["store"])
    paid = timezone.localtime() - dt.timedelta(days=2)
    lines = [f"W-{index},{buyer.mobile},S001,{paid:%Y-%m-%d %H:%M},{20 + index % 9}.50" for index in range(100)]
    file = tmp_path / "orders.csv"
    file.write_text("order_id,member_mobile,store_code,paid_at,amount\n" + "\n".join(lines) + "\n", encoding="utf-8")
    page = operator_page("zh-CN")
    page.goto("/admin/members/order/import/")
    # when: the upload
    page.set_input_files("#id_import_file", str(file))
    page.click("input[type=submit]")
    page.wait_for_selector('#import-job[data-status="queued"]')
    page.evaluate("window.__notReloaded = true")
    assert "等待后台任务开始" in page.inner_text("#import-job")
    # then: the worker starts, and the bar moves without a reload
    slow_worker["start"].set()
    assert slow_worker["paused"].wait(timeout=30)
    page.wait_for_function("document.querySelector('#import-job').innerText.includes('20 / 100')")
    assert page.get_attribute("#import-job", "data-status") == "running"
    assert page.evaluate("window.__notReloaded") is True
    page.screenshot(path=str(ARTIFACTS / "import-progress-zh-hans.png"), full_page=False)
    # when: it goes on to the end
    slow_worker["resume"].set()
    page.wait_for_selector('#import-job[data-status="succeeded"]', timeout=30_000)
    assert page.evaluate("window.__notReloaded") is True
    assert "共 100 行：新增 100，未变 0，更新 0。" in page.inner_text("#import-job")
    assert Order.objects.filter(external_id__startswith="W-").count() == 0  # a check writes nothing
    # when: imported
    page.click("button[name=confirm]")
    page.wait_for_selector('#import-job[data-phase="import"][data-status="succeeded"]', timeout=30_000)
    # then
    assert Order.objects.filter(external_id__startswith="W-").count() == 100
    assert "导入完成" in page.inner_text("#import-job")
    assert page.evaluate("document.documentElement.scrollWidth") <= SCREEN["width"]
