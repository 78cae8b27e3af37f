"""Finding 2 (issue #20): staff passwords cannot be guessed.

- django-axes locks a user name out from an address after ``AXES_FAILURE_LIMIT`` wrong passwords,
  the right one included, for ``AXES_COOLOFF_MINUTES``; rotating ``X-Forwarded-For`` escapes
  nothing while no proxy is trusted (``NUM_PROXIES = 0``), neither the lockout nor the throttles.
- The staff report API takes no password (no HTTP Basic): the admin's session only, throttled.
"""

import base64
import datetime as dt

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

pytestmark = pytest.mark.django_db

PASSWORD = "pw-right-1"
LOGIN = "/admin/login/"


@pytest.fixture
def axes_on(settings):
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 5
    settings.AXES_COOLOFF_TIME = dt.timedelta(minutes=15)
    return settings


@pytest.fixture
def boss(db):
    return get_user_model().objects.create_superuser("boss", "boss@example.com", PASSWORD)


def sign_in(client, password, **headers):
    return client.post(LOGIN, {"username": "boss", "password": password, "next": "/admin/"}, **headers)


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_five_wrong_passwords_lock_the_right_one_out(axes_on, boss):
    client = Client(REMOTE_ADDR="203.0.113.7")
    # given five wrong passwords, each an ordinary failed sign-in
    for _attempt in range(4):
        assert sign_in(client, "guess").status_code == 200
    # when the fifth fails, and then the right password is sent
    assert sign_in(client, "guess").status_code == 429
    response = sign_in(client, PASSWORD)
    # then it is refused, saying why, and nobody is signed in
    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.content.decode()
    assert 'name="password"' in response.content.decode()  # the login page again, not a bare text
    assert not signed_in(client)


def test_rotating_x_forwarded_for_does_not_escape_the_lockout(axes_on, boss):
    client = Client(REMOTE_ADDR="203.0.113.7")
    for attempt in range(5):
        sign_in(client, "guess", HTTP_X_FORWARDED_FOR=f"198.51.100.{attempt}")
    response = sign_in(client, PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.99")
    assert response.status_code == 429
    assert not signed_in(client)


def test_the_lockout_is_per_address_and_ends_after_the_cool_off(axes_on, boss):
    attacker = Client(REMOTE_ADDR="203.0.113.7")
    for _attempt in range(5):
        sign_in(attacker, "guess")
    # the owner, from another address, is not locked out by the attacker
    owner = Client(REMOTE_ADDR="192.0.2.10")
    assert sign_in(owner, PASSWORD).status_code == 302
    assert signed_in(owner)
    # and the attacker's address is let in again after the cool-off
    with time_machine.travel(timezone.now() + dt.timedelta(minutes=16)):
        response = sign_in(attacker, PASSWORD)
    assert response.status_code == 302
    assert signed_in(attacker)


def test_the_staff_report_api_takes_no_basic_credentials(boss):
    client = Client()
    credentials = base64.b64encode(f"boss:{PASSWORD}".encode()).decode()
    response = client.get("/api/v1/campaigns/segment-report", HTTP_AUTHORIZATION=f"Basic {credentials}")
    assert response.status_code == 403
    assert response.json()["code"] == "not_authenticated"


def test_the_staff_report_api_is_throttled_per_user(boss, settings):
    cache.clear()
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "staff_report": "2/min"},
    }
    client = Client()
    client.force_login(boss)
    statuses = [client.get("/api/v1/campaigns/segment-report").status_code for _ in range(3)]
    assert statuses == [400, 400, 429]  # (no runs named: 400) until the rate is spent


def test_rotating_x_forwarded_for_does_not_escape_the_api_throttles(settings):
    cache.clear()
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,  # NUM_PROXIES as configured: 0 by default
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "auth": "3/min"},
    }
    settings.HUIYUAN_DEV_LOGIN = True
    client = Client(REMOTE_ADDR="203.0.113.7")
    statuses = [
        client.post(
            "/api/v1/auth/dev-login",
            {"mobile": "13800000009"},
            content_type="application/json",
            HTTP_X_FORWARDED_FOR=f"198.51.100.{attempt}",
        ).status_code
        for attempt in range(4)
    ]
    assert statuses[-1] == 429, statuses


def test_behind_one_trusted_proxy_the_client_is_the_address_it_added(settings):
    cache.clear()
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "NUM_PROXIES": 1,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "auth": "1/min"},
    }
    settings.HUIYUAN_DEV_LOGIN = True
    proxy = Client(REMOTE_ADDR="10.0.0.2")

    def login(forwarded):
        return proxy.post(
            "/api/v1/auth/dev-login",
            {"mobile": "13800000009"},
            content_type="application/json",
            HTTP_X_FORWARDED_FOR=forwarded,
        ).status_code

    # a forged left part does not change who the proxy says the client is
    assert login("1.1.1.1, 203.0.113.7") != 429
    assert login("2.2.2.2, 203.0.113.7") == 429
    assert login("203.0.113.8") != 429  # another client behind the same proxy has its own count
