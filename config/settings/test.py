"""Settings for the test suite. ``DATABASE_URL`` and ``CELERY_BROKER_URL`` come from the
environment (PostgreSQL and Redis in CI); tasks run eagerly unless a test says otherwise."""

from config import embedded_postgres

from .base import *  # noqa: F403
from .base import CONN_MAX_AGE, DATABASES, VAR_DIR

SECRET_KEY = "test-secret-key-not-for-production"  # noqa: S105
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
LANGUAGE_CODE = "en"

VAR_DIR.mkdir(parents=True, exist_ok=True)
if not DATABASES:  # nothing configured: the embedded PostgreSQL server under var/, started if need be
    DATABASES["default"] = {**embedded_postgres.database_settings(VAR_DIR), "CONN_MAX_AGE": CONN_MAX_AGE}
HUIYUAN_DEV_LOGIN = True
# Tests change settings rows with QuerySet.update and in rolled-back transactions: no per-process caching
# of them (members.caching; its own tests turn it on).
HUIYUAN_SETTINGS_CACHE_SECONDS = 0
# django-axes needs the request in authenticate(), which Client.login() does not pass: off here;
# the lockout's own tests (tests/hardening) turn it on.
AXES_ENABLED = False
