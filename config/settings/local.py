"""Local development and the embedded default: works with nothing configured."""

from config import embedded_postgres

from .base import *  # noqa: F403
from .base import CONN_MAX_AGE, DATABASES, VAR_DIR, env

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env.str("SECRET_KEY", default="insecure-local-development-key-change-me")

VAR_DIR.mkdir(parents=True, exist_ok=True)
if not DATABASES:  # nothing configured: the embedded PostgreSQL server under var/, started if need be
    DATABASES["default"] = {**embedded_postgres.database_settings(VAR_DIR), "CONN_MAX_AGE": CONN_MAX_AGE}

# A development login (POST /api/v1/auth/dev-login with a mobile number) instead of WeChat.
HUIYUAN_DEV_LOGIN = env.bool("HUIYUAN_DEV_LOGIN", default=True)
