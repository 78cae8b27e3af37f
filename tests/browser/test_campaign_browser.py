"""The operator builds a campaign in a real browser on a 1366 px screen: picks segments and a benefit
and watches the estimated reach and cost change before saving, saves, launches it through the
confirmation dialog, and opens effect reports — one of them with its messages' engagement: the
operator follows a member's tracked link in the browser, and the report counts it.

Headless Debian Chromium driven by Playwright against pytest-django's live server (see
``conftest.py``). Screenshots of the builder and of an effect report in both languages are saved
under ``var/test-artifacts/`` (not committed) for people to look at.
"""

from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from campaigns.models import Campaign, CampaignGrant, CouponTemplate, OutboxMessage
from campaigns.services.engagement import message_delivery_record, tracked_link_url
from campaigns.services.outbox import message_enqueue
from tests.browser.conftest import BROWSER_TEST, TIMEOUT_MS, log_in
from tests.campaigns.test_effect import scenario  # noqa: F401  (a campaign with a measured effect)
from tests.factories import MemberFactory
from tests.workspace.builders import PASSWORD, role_user

SCREEN = {"width": 1366, "height": 800}
ARTIFACTS = Path(settings.BASE_DIR) / "var" / "test-artifacts"

pytestmark = BROWSER_TEST


@pytest.fixture
def operator_page(browser, live_server):
    """A 1366 px page logged in as the operator (the shipped role)."""
    role_user("operator", username="operator")
    context = browser.new_context(locale="en-US", base_url=live_server.url, viewport=SCREEN)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    log_in(page, "operator", PASSWORD)
    yield page
    context.close()


@pytest.fixture
def audience(place, segments):
    """Four lost members and two champions; a ¥20 coupon."""
    for _ in range(4):
        place(MemberFactory(), "lost")
    for _ in range(2):
        place(MemberFactory(), "champions")
    template = CouponTemplate.objects.create(name="¥20 off", slug="browser-twenty-off", amount=Decimal("20.00"))
    return {"segments": segments, "template": template}


def estimate(page, figure: str) -> str:
    return page.locator(f"#estimate-{figure}").inner_text().strip()


def wait_for_estimate(page, figure: str, value: str) -> None:
    page.wait_for_function(
        "([id, value]) => { const el = document.getElementById(id); return el && el.innerText.trim() === value; }",
        arg=[f"estimate-{figure}", value],
    )


def snapshot(page, name: str) -> None:
    """The whole page at 1366 px: the window made as tall as the page, so the sticky bars sit where
    they belong instead of over the middle of a stitched full-page capture."""
    height = page.evaluate("document.documentElement.scrollHeight")
    page.set_viewport_size({"width": SCREEN["width"], "height": height})
    page.wait_for_timeout(200)
    page.screenshot(path=str(ARTIFACTS / name))
    page.set_viewport_size(SCREEN)


def segment_box(page, name: str):
    return page.locator("#id_segments label", has_text=name).locator("input")


def test_the_operator_builds_and_launches_a_campaign_seeing_the_estimate_first(operator_page, audience):
    page, segments = operator_page, audience["segments"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    before = Campaign.objects.count()
    # given: a new campaign
    page.goto("/admin/campaigns/campaign/add/")
    assert page.locator("#estimate-empty").is_visible()
    page.fill("#id_name", "Spring recall")
    # when: the lost members
    segment_box(page, segments["lost"].name_en).check()
    # then: the reach, before saving
    wait_for_estimate(page, "reach", "4")
    assert estimate(page, "cost") == "¥0.00"
    # when: a ¥20 coupon each
    page.locator(".add-row a, .add-row").first.click()
    page.select_option("select[name=benefits-0-kind]", "coupon")
    page.select_option("select[name=benefits-0-coupon_template]", str(audience["template"].pk))
    # then
    wait_for_estimate(page, "cost", "¥80.00")
    # when: the champions too, and a quarter held out
    segment_box(page, segments["champions"].name_en).check()
    page.fill("#id_control_percent", "25")
    # then: 6 members, 2 held out (25%, rounded), 4 granted at ¥20
    wait_for_estimate(page, "control", "2")
    assert (estimate(page, "reach"), estimate(page, "treated"), estimate(page, "cost")) == ("6", "4", "¥80.00")
    assert Campaign.objects.count() == before  # all of it before saving
    assert page.evaluate("document.documentElement.scrollWidth") <= SCREEN["width"]
    snapshot(page, "campaign-builder-en.png")
    # when: saved
    page.click("input[name=_continue], button[name=_continue]")
    page.wait_for_url("**/change/")
    campaign = Campaign.objects.get(name="Spring recall")
    assert campaign.status == Campaign.Status.DRAFT
    assert estimate(page, "reach") == "6"
    # when: launched, through the confirmation
    page.click(f"a[href$='/{campaign.pk}/launch/']")
    dialog = page.locator("#dialog")
    dialog.wait_for(state="visible")
    assert "Launch this campaign?" in dialog.inner_text()
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT  # not before the confirmation
    dialog.locator("button[type=submit]").click()
    page.wait_for_selector("text=Spring recall launched.")
    # then
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.RUNNING
    # when: its effect report, from its page
    page.click(f"a[href$='/{campaign.pk}/effect/']")
    page.wait_for_url(f"**/campaigneffect/{campaign.pk}/report/")
    assert "Spring recall" in page.locator("#effect-title").inner_text()
    # and the builder in Chinese
    page.goto("/zh-hans/admin/campaigns/campaign/add/")
    page.fill("#id_name", "春季召回")
    segment_box(page, segments["lost"].name_zh).check()
    wait_for_estimate(page, "reach", "4")
    page.locator(".add-row a, .add-row").first.click()
    page.select_option("select[name=benefits-0-kind]", "coupon")
    page.select_option("select[name=benefits-0-coupon_template]", str(audience["template"].pk))
    wait_for_estimate(page, "cost", "¥80.00")
    assert "预估花费" in page.locator("#campaign-estimate-panel").inner_text()
    snapshot(page, "campaign-builder-zh-hans.png")


def test_the_operator_reads_an_effect_report_in_both_languages(operator_page, scenario):  # noqa: F811
    page = operator_page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # when
    page.goto(f"/admin/campaigns/campaigneffect/{scenario.pk}/report/?days=14")
    # then: the figures, and two charts drawn
    assert page.locator("#uplift-per-member").inner_text() == "+¥50.00"
    assert page.locator("#effect-roi").inner_text() == "+455.6%"
    page.wait_for_function("document.querySelectorAll('#effect-charts canvas').length === 2")
    page.wait_for_function("Array.from(document.querySelectorAll('#effect-charts canvas')).every(c => c.height > 50)")
    assert page.evaluate("document.documentElement.scrollWidth") <= SCREEN["width"]
    snapshot(page, "effect-report-en.png")
    # and in Chinese
    page.goto(f"/zh-hans/admin/campaigns/campaigneffect/{scenario.pk}/report/?days=14")
    assert "人均增量" in page.locator("#campaign-uplift").inner_text()
    page.wait_for_function("document.querySelectorAll('#effect-charts canvas').length === 2")
    snapshot(page, "effect-report-zh-hans.png")


@pytest.fixture
def engaged(scenario, place, live_server):  # noqa: F811
    """The scenario's ten treated members (six lost, four champions when granted) each got a
    message with a link, all sent, eight reported delivered; returns the campaign and the tracked
    links (paths on this server) in grant order, pointing at this server's health check."""
    links = {}
    grants = list(CampaignGrant.objects.filter(campaign=scenario, is_control=False).order_by("pk"))
    for index, grant in enumerate(grants):
        place(grant.member, "lost" if index < 6 else "champions")
        target = f"{live_server.url}/healthz"
        message = message_enqueue(
            member=grant.member, template="spring", payload={"link": target}, dedupe_key=f"browser-{grant.pk}"
        )
        OutboxMessage.objects.filter(pk=message.pk).update(status=OutboxMessage.Status.SENT, sent_at=grant.granted_at)
        grant.details = {**grant.details, "message": message.pk}
        grant.save(update_fields=["details"])
        if index < 8:
            message_delivery_record(channels=["log"], message_id=message.pk, delivered=True)
        links[grant.member_id] = tracked_link_url(message_id=message.pk, url=target)
    return scenario, [links[grant.member_id] for grant in grants]


def test_the_operator_sees_open_and_click_rates_after_members_follow_tracked_links(operator_page, engaged):
    page = operator_page
    campaign, links = engaged
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # given: a member follows the link of their message in a browser, and lands on the page it names
    page.goto(links[0])
    assert page.url.endswith("/healthz")
    # and three more members follow theirs (one of them twice)
    member = Client()
    for link in [links[1], links[6], links[7], links[7]]:
        assert member.get(link).status_code == 302
    # when: the operator opens the effect report in Chinese
    page.goto(f"/zh-hans/admin/campaigns/campaigneffect/{campaign.pk}/report/?days=14")
    # then: 10 sent, 8 delivered, 4 opened and clicked: 40% over sent
    engagement = page.locator("#message-engagement")
    assert "消息互动" in page.content()
    assert page.locator("#engagement-sent").inner_text() == "10"
    assert page.locator("#engagement-delivered").inner_text() == "8"
    assert page.locator("#engagement-open-rate").inner_text() == "40.0%"
    assert page.locator("#engagement-click-rate").inner_text() == "40.0%"
    assert "占已发送消息" in engagement.inner_text()
    # and per segment when granted: lost 2 of 6 (33.3%), champions 2 of 4 (50.0%)
    rows = page.locator("#engagement-segments tbody tr").all_inner_texts()
    assert any("33.3%" in row for row in rows) and any("50.0%" in row for row in rows), rows
    page.wait_for_function("document.querySelectorAll('#effect-charts canvas').length === 2")
    assert page.evaluate("document.documentElement.scrollWidth") <= SCREEN["width"]
    snapshot(page, "effect-report-engagement-zh-hans.png")
