"""The admin under production settings in a real browser (issue #20, finding 7): gunicorn with
``config.settings.production`` — WhiteNoise serving the collected static files, the
Content-Security-Policy — and a superuser on the dashboard and the API docs. The page must be
styled, its charts drawn, and the browser must report no CSP violation and no console error.
Screenshot ``csp-dashboard.png`` goes to ``var/test-artifacts/``.
"""

import datetime as dt
import os
import socket
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connection
from django.utils import timezone

from segmentation.services import segment_recompute
from tests.browser.conftest import BROWSER_TEST, TIMEOUT_MS, log_in
from tests.factories import MemberFactory, OrderFactory, StoreFactory, install_default_scheme

pytestmark = BROWSER_TEST

ARTIFACTS = Path(settings.BASE_DIR) / "var" / "test-artifacts"
PASSWORD = "pw-csp-admin-1"
# Every violation the page reports, and where (listened to before any script of the page runs).
LISTEN = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
});
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def production_env(static_root: Path, port: int) -> dict:
    db = connection.settings_dict
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        SECRET_KEY="csp-browser-" + "s" * 50,
        DATABASE_URL=(
            f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
            f"/{db['NAME']}"
        ),
        REDIS_URL=settings.CELERY_BROKER_URL,
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        ALLOWED_HOSTS="127.0.0.1",
        STATIC_ROOT=str(static_root),
        # plain HTTP on loopback: what the TLS-terminating proxy would otherwise provide
        SECURE_SSL_REDIRECT="false",
        SESSION_COOKIE_SECURE="false",
        CSRF_COOKIE_SECURE="false",
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS="1",
        # this test is about the static files and the policy; two-factor sign-in has its own tests
        HUIYUAN_OPERATOR_2FA_REQUIRED="false",
    )
    return env


@pytest.fixture(scope="module")
def static_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("static")
    env = production_env(root, 0)
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=settings.BASE_DIR,
        env=env,
        check=True,
        timeout=300,
    )
    return root


@pytest.fixture
def production_server(static_root, transactional_db):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi", "-c", "config/gunicorn.py"],
        cwd=settings.BASE_DIR,
        env=production_env(static_root, port),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/admin/login/", timeout=2):
                break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise AssertionError(server.stderr.read().decode()[-3000:]) from None
            time.sleep(0.3)
    yield url
    server.terminate()
    server.wait(timeout=20)


@pytest.fixture
def brand(transactional_db):
    install_default_scheme()
    store = StoreFactory(code="SH01", name="静安店")
    for index in range(6):
        member = MemberFactory(home_store=store, mobile=f"1380000{index:04d}")
        for days in (3 + index, 40 + index * 20):
            OrderFactory(member=member, paid_at=timezone.now() - dt.timedelta(days=days), amount=Decimal("88.00"))
    segment_recompute(as_of=timezone.localdate() - dt.timedelta(days=7))
    segment_recompute(as_of=timezone.localdate())
    user = get_user_model().objects.create_superuser("root", "root@example.com", None)
    # hashed as production hashes (the test settings' fast hasher is not one production reads)
    user.password = PBKDF2PasswordHasher().encode(PASSWORD, PBKDF2PasswordHasher().salt())
    user.save(update_fields=["password"])


def test_the_dashboard_and_api_docs_work_under_the_production_policy(browser, brand, production_server):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(base_url=production_server, locale="zh-CN", viewport={"width": 1366, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(LISTEN)
    page = context.new_page()
    console_errors, failed = [], []
    page.on(
        "console",
        lambda message: (
            message.type == "error" and console_errors.append(f"{message.text} {message.location.get('url', '')}")
        ),
    )
    page.on("response", lambda response: response.status >= 400 and failed.append(f"{response.status} {response.url}"))
    page.on("requestfailed", lambda request: failed.append(f"failed {request.url}"))
    # the login page (served and styled by the production stack), then the dashboard
    log_in(page, "root", PASSWORD)
    page.wait_for_url("**/admin/")
    page.wait_for_selector("#dashboard")
    page.wait_for_function(
        "() => window.Chart && document.querySelector('canvas') && Chart.getChart(document.querySelector('canvas'))"
    )
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "csp-dashboard.png"), full_page=True)
    response_headers = page.request.get("/admin/").headers
    # then: the policy is in force, and nothing on the page broke it
    assert "content-security-policy" in response_headers
    assert page.evaluate("window.__csp") == []
    assert page.evaluate("typeof window.Alpine") == "object"  # Alpine.js started (it needs 'unsafe-eval')
    # the frame's stylesheet applied: the sidebar is laid out, not an unstyled list
    assert page.evaluate("getComputedStyle(document.body).fontFamily") != '"Times New Roman"'
    static_css = page.evaluate("[...document.styleSheets].filter((s) => s.href && s.href.includes('/static/')).length")
    assert static_css > 0
    # the API docs, for staff, render under the same policy
    page.goto("/api/docs/")
    page.wait_for_selector(".swagger-ui .info", timeout=TIMEOUT_MS)
    assert page.evaluate("window.__csp") == []
    assert not [error for error in console_errors if "Content Security Policy" in error or "Refused" in error], (
        console_errors
    )
    assert failed == [], failed
    # (the browser's own /favicon.ico request: no favicon is configured, which is not the policy's doing)
    assert [error for error in console_errors if not error.endswith("/favicon.ico")] == [], console_errors
    context.close()
