"""An operator tops a sleeping member's wallet up at the counter with the member's top-up offer, in a
real browser (#18, point 2): the form's chooser offers only the member's offers, in the page's
language; choosing one credits its bonus.

Headless Debian Chromium driven by Playwright against pytest-django's live server, as in
``test_workspace_browser.py``. Screenshots of the form in Chinese and English are saved under
``var/test-artifacts/`` (not committed) for people to look at.
"""

from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings

from campaigns.models import TopUpOffer
from campaigns.playbook import playbook_install
from members.models import Wallet
from tests.browser.conftest import BROWSER_TEST, TIMEOUT_MS, log_in
from tests.factories import MemberFactory

ARTIFACTS = Path(settings.BASE_DIR) / "var" / "test-artifacts"
PASSWORD = "pw-operator-1"

pytestmark = BROWSER_TEST


@pytest.fixture
def counter(default_scheme, place, django_user_model):
    """A sleeping member (seed 002's offers turned on) and an operator."""
    playbook_install()
    TopUpOffer.objects.update(is_active=True)
    member = MemberFactory(name="王小明", mobile="13800002213")
    place(member, "lost")
    django_user_model.objects.create_superuser("operator", "operator@example.com", PASSWORD)
    return member


@pytest.mark.parametrize(
    ("language", "prefix", "label"),
    [
        ("zh-hans", "/zh-hans", "沉睡会员储值 300 送 50(限唤醒商品) — 充值满 ¥300.00，赠送 ¥50.00"),
        (
            "en",
            "",
            "Sleeping members: top up 300, get 50 (wake-up products only) — top up at least ¥300.00, bonus ¥50.00",
        ),
    ],
)
def test_an_operator_tops_up_with_the_members_offer(browser, live_server, counter, language, prefix, label):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(locale="en-US", base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        log_in(page, "operator", PASSWORD)
        page.goto(f"{prefix}/admin/members/wallet/top-up/?member={counter.pk}")
        # then: the chooser holds "no offer" and the sleeping members' offer only
        options = page.locator("select[name=offer] option").all_inner_texts()
        assert [option.strip() for option in options][1:] == [label]
        # when: ¥300 with the offer
        page.fill("input[name=amount_paid]", "300.00")
        page.select_option("select[name=offer]", label=label)
        page.fill("input[name=reason]", "柜台充值" if language == "zh-hans" else "paid at the counter")
        page.screenshot(path=str(ARTIFACTS / f"offer-top-up-{language}.png"), full_page=True)
        page.locator("input[type=submit]").click()
        page.wait_for_url("**/admin/members/wallet/*/change/")
        # then: ¥50 bonus
        wallet = Wallet.objects.get(member=counter)
        assert (wallet.principal, wallet.bonus) == (Decimal("300.00"), Decimal("50.00"))
    finally:
        context.close()
