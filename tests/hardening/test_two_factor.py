"""Two-factor sign-in for staff (issue #20, *Also build*; ``config.two_factor``).

- A staff user with a confirmed authenticator signs in only with its current code as well; a wrong
  code is a failed sign-in for the lockout.
- With ``HUIYUAN_OPERATOR_2FA_REQUIRED`` an operator without one is sent to set it up (a QR code,
  then a first code) before any admin page; without the setting, everybody signs in as before.
"""

import datetime as dt
import io
import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.workspace.builders import PASSWORD, role_user

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/"
SETUP = "/admin/two-factor/"


def code(device, *, steps_ago=0) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=-steps_ago):06d}"


def sign_in(client, username, token=None):
    data = {"username": username, "password": PASSWORD, "next": "/admin/"}
    if token is not None:
        data["otp_token"] = token
    return client.post(LOGIN, data)


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


@pytest.fixture
def operator(db):
    return role_user("operator")


@pytest.fixture
def authenticator(operator):
    return TOTPDevice.objects.create(user=operator, name="phone", confirmed=True)


@pytest.fixture
def required(settings):
    settings.HUIYUAN_OPERATOR_2FA_REQUIRED = True
    return settings


def test_the_login_page_asks_for_the_code():
    html = Client().get(LOGIN).content.decode()
    assert 'name="otp_token"' in html
    assert 'autocomplete="one-time-code"' in html


def test_an_operator_with_an_authenticator_is_refused_without_a_code(authenticator, operator):
    client = Client()
    response = sign_in(client, operator.username)
    assert response.status_code == 200
    assert "Enter the 6-digit code" in response.content.decode()
    assert not signed_in(client)


def test_a_wrong_code_is_refused(authenticator, operator):
    client = Client()
    wrong = f"{(int(code(authenticator)) + 1) % 1_000_000:06d}"
    response = sign_in(client, operator.username, wrong)
    assert response.status_code == 200
    assert "wrong or has expired" in response.content.decode()
    assert not signed_in(client)


def test_the_right_code_signs_in_with_a_verified_session(authenticator, operator, required):
    client = Client()
    response = sign_in(client, operator.username, code(authenticator))
    assert response.status_code == 302
    assert signed_in(client)
    assert client.session["otp_device_id"] == authenticator.persistent_id
    # the operator, verified, opens the admin (2FA required: no detour to the setup page)
    assert client.get("/admin/").status_code == 200


def test_a_code_is_accepted_once(authenticator, operator):
    token = code(authenticator)
    assert sign_in(Client(), operator.username, token).status_code == 302
    replay = Client()
    assert sign_in(replay, operator.username, token).status_code == 200
    assert not signed_in(replay)


def test_wrong_codes_lock_the_sign_in_out_like_wrong_passwords(authenticator, operator, settings):
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = dt.timedelta(minutes=15)
    client = Client(REMOTE_ADDR="203.0.113.7")
    wrong = f"{(int(code(authenticator)) + 1) % 1_000_000:06d}"
    statuses = [sign_in(client, operator.username, wrong).status_code for _attempt in range(3)]
    assert statuses == [200, 200, 429]
    # then even the right code is refused until the cool-off
    response = sign_in(client, operator.username, code(authenticator))
    assert response.status_code == 429
    assert not signed_in(client)


def test_required_an_operator_without_authenticator_sets_one_up_first(operator, required):
    required.OTP_TOTP_THROTTLE_FACTOR = 0  # no pause after the wrong code (django-otp waits 1 s, 2 s…)
    client = Client()
    # given the operator signs in with the password alone
    assert sign_in(client, operator.username).status_code == 302
    # when they open the admin, they are sent to the setup page, with a QR code of a new key
    response = client.get("/admin/members/member/")
    assert response.status_code == 302
    assert response["Location"].startswith(SETUP)
    setup = client.get(response["Location"])
    html = setup.content.decode()
    assert setup.status_code == 200
    assert "<svg" in html
    device = TOTPDevice.objects.get(user=operator)
    assert not device.confirmed
    key = re.search(r'id="two-factor-key">([A-Z2-7 ]+)<', html).group(1)
    assert key.replace(" ", "") and device.config_url.find(f"secret={key.replace(' ', '')}") > 0
    # a wrong code does not confirm it, and the admin stays closed
    wrong = f"{(int(code(device)) + 1) % 1_000_000:06d}"
    assert client.post(SETUP, {"otp_token": wrong, "next": "/admin/members/member/"}).status_code == 200
    assert client.get("/admin/").status_code == 302
    # the app's current code confirms it, verifies the session and goes on where they were headed
    response = client.post(SETUP, {"otp_token": code(device), "next": "/admin/members/member/"})
    assert response.status_code == 302
    assert response["Location"] == "/admin/members/member/"
    device.refresh_from_db()
    assert device.confirmed
    assert client.get("/admin/").status_code == 200
    # and the next sign-in asks for a code
    later = Client()
    assert sign_in(later, operator.username).status_code == 200
    assert not signed_in(later)


def test_required_applies_to_operators_not_to_store_staff(required):
    clerk = role_user("staff", username="clerk")
    client = Client()
    assert sign_in(client, clerk.username).status_code == 302
    assert client.get("/admin/").status_code == 200


def test_not_required_an_operator_signs_in_with_the_password_as_before(operator, settings):
    settings.HUIYUAN_OPERATOR_2FA_REQUIRED = False
    client = Client()
    assert sign_in(client, operator.username).status_code == 302
    assert signed_in(client)
    assert client.get("/admin/").status_code == 200
    assert not TOTPDevice.objects.exists()


def test_the_setup_page_is_for_signed_in_staff_only():
    response = Client().get(SETUP)
    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN)


def test_a_lost_authenticator_is_reset_on_the_server_and_the_user_sets_up_a_new_one(authenticator, operator, required):
    # given an operator who lost the phone: the password alone does not sign in
    client = Client()
    assert sign_in(client, operator.username).status_code == 200
    assert not signed_in(client)
    # when the authenticator is reset
    out = io.StringIO()
    call_command("reset_two_factor", operator.username, stdout=out)
    # then the password signs in, and the next admin page is the set-up of a new authenticator
    assert "1" in out.getvalue() and not TOTPDevice.objects.filter(user=operator).exists()
    sign_in(client, operator.username)
    assert signed_in(client)
    assert client.get("/admin/").url.startswith(SETUP)
    with pytest.raises(CommandError):
        call_command("reset_two_factor", "nobody-here", stdout=io.StringIO())
