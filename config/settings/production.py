"""Production: every secret must be set; a missing value stops start-up with a clear message.

Served by gunicorn behind a reverse proxy that terminates TLS (README, *Production*):

- static files (the admin's styles and scripts, the API docs) by the app itself with WhiteNoise,
  from ``STATIC_ROOT`` filled by ``python manage.py collectstatic --noinput`` at each deploy
  (compressed, with content hashes in the names, cached for a year);
- HTTPS only: SSL redirect and HSTS on unless turned off (``SECURE_SSL_REDIRECT``,
  ``SECURE_HSTS_SECONDS``…), secure cookies; ``/healthz`` answers over plain HTTP for probes;
- ``NUM_PROXIES`` (base settings) must say how many proxies add to ``X-Forwarded-For`` — 1 behind
  one nginx — or every client shares the proxy's address in throttles and the sign-in lockout;
- ``/api/docs/`` and the schema for staff only unless ``HUIYUAN_API_DOCS_PUBLIC``.
"""

from .base import *  # noqa: F403
from .base import MIDDLEWARE, STATIC_ROOT, env

SECRET_KEY = env.str("SECRET_KEY")
DATABASES = {"default": env.db("DATABASE_URL")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=None) or env.str("REDIS_URL")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
DEBUG = False
HUIYUAN_DEV_LOGIN = False
HUIYUAN_API_DOCS_PUBLIC = env.bool("HUIYUAN_API_DOCS_PUBLIC", default=False)
# Operators and superusers sign in with an authenticator code as well (config.two_factor).
HUIYUAN_OPERATOR_2FA_REQUIRED = env.bool("HUIYUAN_OPERATOR_2FA_REQUIRED", default=True)

# --- Static files: WhiteNoise, right after the security middleware -----------------------------
MIDDLEWARE = [
    *MIDDLEWARE[:1],
    "whitenoise.middleware.WhiteNoiseMiddleware",
    *MIDDLEWARE[1:],
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
STATIC_ROOT = env.str("STATIC_ROOT", default="") or STATIC_ROOT  # default: var/static

# --- HTTPS ---------------------------------------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers probe over plain HTTP
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
# Preloading (browsers' built-in HTTPS-only list) is the domain owner's decision and hard to undo:
# off unless asked for; then ``check --deploy`` is told so rather than warning on every deploy.
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
