"""Finding 7 (issue #20): production serves its static files, insists on HTTPS, sends a
Content-Security-Policy, keeps the API docs for staff, and ``check --deploy`` has nothing to say."""

import importlib
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

PRODUCTION_ENV = {
    "SECRET_KEY": "k" * 20 + "-production-like-secret-" + "q" * 30,
    "DATABASE_URL": "postgres://huiyuan@db.internal:5432/huiyuan",
    "REDIS_URL": "redis://redis.internal:6379/0",
    "ALLOWED_HOSTS": "huiyuan.example.com",
}


def test_check_deploy_is_clean():
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(PRODUCTION_ENV)
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "check",
            "--deploy",
            "--fail-level",
            "WARNING",
            "--settings",
            "config.settings.production",
        ],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.fixture
def production(monkeypatch):
    for name, value in PRODUCTION_ENV.items():
        monkeypatch.setenv(name, value)
    sys.modules.pop("config.settings.production", None)
    module = importlib.import_module("config.settings.production")
    yield module
    sys.modules.pop("config.settings.production", None)


def test_production_serves_static_files_and_insists_on_https(production):
    middleware = production.MIDDLEWARE
    assert middleware[:2] == [
        "django.middleware.security.SecurityMiddleware",
        "whitenoise.middleware.WhiteNoiseMiddleware",
    ]
    assert "csp.middleware.CSPMiddleware" in middleware
    assert production.STORAGES["staticfiles"]["BACKEND"] == "whitenoise.storage.CompressedManifestStaticFilesStorage"
    assert production.SECURE_SSL_REDIRECT is True
    assert production.SECURE_HSTS_SECONDS >= 365 * 24 * 3600
    assert production.SESSION_COOKIE_SECURE and production.CSRF_COOKIE_SECURE
    assert production.HUIYUAN_API_DOCS_PUBLIC is False
    assert production.HUIYUAN_DEV_LOGIN is False


def test_https_can_be_turned_off_for_a_plain_http_setup(production, monkeypatch):
    monkeypatch.setenv("SECURE_SSL_REDIRECT", "false")
    monkeypatch.setenv("SECURE_HSTS_SECONDS", "0")
    sys.modules.pop("config.settings.production", None)
    module = importlib.import_module("config.settings.production")
    assert (module.SECURE_SSL_REDIRECT, module.SECURE_HSTS_SECONDS) == (False, 0)


@pytest.mark.django_db
def test_every_page_carries_a_content_security_policy(client):
    policy = client.get("/admin/login/")["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    assert directives["default-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "http" not in policy  # no outside origin anywhere
    assert "Content-Security-Policy" in client.get("/healthz")


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/docs/", "/api/schema/", "/api/redoc/"])
def test_api_docs_are_for_staff_unless_public(settings, path):
    settings.HUIYUAN_API_DOCS_PUBLIC = False
    anonymous = Client()
    response = anonymous.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    staff = Client()
    staff.force_login(get_user_model().objects.create_user("clerk", password="x", is_staff=True))
    assert staff.get(path).status_code == 200
    settings.HUIYUAN_API_DOCS_PUBLIC = True
    assert anonymous.get(path).status_code == 200
