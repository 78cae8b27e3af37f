"""Production: every secret must be set; a missing value stops start-up with a clear message."""

from .base import *  # noqa: F403
from .base import env

SECRET_KEY = env.str("SECRET_KEY")
DATABASES = {"default": env.db("DATABASE_URL")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=None) or env.str("REDIS_URL")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
DEBUG = False
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
HUIYUAN_DEV_LOGIN = False
