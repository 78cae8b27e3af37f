"""Two-factor sign-in in a real browser (config.two_factor): the login page's code field, and an
operator who must set up an authenticator scanning the QR code and confirming a first code.
Screenshots of both pages go to ``var/`` (``two_factor_login.png``, ``two_factor_setup.png``).
"""

import pytest
from django.conf import settings
from django.test import override_settings
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.browser.conftest import BROWSER_TEST, TIMEOUT_MS
from tests.workspace.builders import PASSWORD, role_user

pytestmark = BROWSER_TEST


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(locale="zh-CN", base_url=live_server.url, viewport={"width": 1024, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


@override_settings(HUIYUAN_OPERATOR_2FA_REQUIRED=True)
def test_an_operator_sets_up_an_authenticator_from_the_qr_code(page):
    operator = role_user("operator")
    # the login page: user name, password, and the code, styled like the others
    page.goto("/admin/login/?next=/admin/")
    token_field = page.locator("#id_otp_token")
    assert token_field.is_visible()
    assert token_field.get_attribute("autocomplete") == "one-time-code"
    assert token_field.bounding_box()["width"] == page.locator("#id_password").bounding_box()["width"]
    page.screenshot(path=str(settings.VAR_DIR / "two_factor_login.png"), full_page=True)
    # the operator has no authenticator yet: the password signs in, then the setup page opens
    page.fill("#id_username", operator.username)
    page.fill("#id_password", PASSWORD)
    page.press("#id_password", "Enter")
    page.wait_for_url("**/admin/two-factor/**")
    qr = page.locator("#two-factor-qr svg")
    assert qr.is_visible()
    box = qr.bounding_box()
    assert box["width"] >= 150 and abs(box["width"] - box["height"]) < 2  # a square big enough to scan
    page.screenshot(path=str(settings.VAR_DIR / "two_factor_setup.png"), full_page=True)
    # the app's first code confirms it and opens the admin
    device = TOTPDevice.objects.get(user=operator)
    page.fill("#id_otp_token", f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}")
    page.press("#id_otp_token", "Enter")
    page.wait_for_url("**/admin/")
    device.refresh_from_db()
    assert device.confirmed
