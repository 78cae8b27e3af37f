"""Settings shared by every environment. Values come from the environment (django-environ).

With nothing configured the platform runs on an embedded default: a PostgreSQL server from a pip
wheel and a Celery broker on the filesystem, both under ``var/`` (``config.embedded_postgres``), so
it can be tried with only Python. Set ``DATABASE_URL`` and
``CELERY_BROKER_URL`` (or ``REDIS_URL``) for PostgreSQL and Redis, the production configuration.
"""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.templatetags.static import static
from django.utils.translation import gettext_lazy as _

from config import embedded_postgres

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = embedded_postgres.var_dir()

env = environ.Env()
env.read_env(BASE_DIR / ".env", overwrite=False) if (BASE_DIR / ".env").exists() else None

SECRET_KEY = env.str("SECRET_KEY", default="")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # The admin frame (django-unfold): its templates, Tailwind styles, Chart.js and htmx, served
    # by the project (no CDN). Before django.contrib.admin, whose templates it overrides.
    "unfold",
    "unfold.contrib.filters",
    "unfold.contrib.import_export",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",  # staff sign-in lockout (AXES_* below)
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "import_export",
    "django_celery_beat",
    "members",
    "segmentation",
    "campaigns",
    "workspace",
    "demo",
    "django_otp",  # staff two-factor sign-in (config.two_factor)
    "config.apps.TotpConfig",  # django_otp.plugins.otp_totp, named in Chinese
    "pgtrigger",  # the audit trail's triggers (audit)
    "audit.apps.PghistoryConfig",  # pghistory, named in Chinese
    "audit",  # the highest layer: it names the audited models of the apps above
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "config.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",  # request.user.is_verified(): signed in with a token
    "config.two_factor.TwoFactorRequiredMiddleware",  # HUIYUAN_OPERATOR_2FA_REQUIRED
    "audit.middleware.AuditContextMiddleware",  # who made the changes the audit trail records
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",  # CONTENT_SECURITY_POLICY below
    "axes.middleware.AxesMiddleware",  # turns a lockout into its answer; last
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# ``DATABASE_URL`` selects a server; without it, ``local`` and ``test`` use the embedded default
# (``config.embedded_postgres``), which is started on demand — never in ``production``.
DATABASES = {"default": env.db("DATABASE_URL")} if env.str("DATABASE_URL", default="") else {}
CONN_MAX_AGE = env.int("CONN_MAX_AGE", default=60)
if DATABASES:
    DATABASES["default"]["CONN_MAX_AGE"] = CONN_MAX_AGE
if DATABASES and DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("Huiyuan runs on PostgreSQL only: DATABASE_URL must be a postgres:// URL.")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Internationalisation -------------------------------------------------------------------
LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="zh-hans")
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="Asia/Shanghai")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Staff sign-in (django-axes) ---------------------------------------------------------------
# AXES_FAILURE_LIMIT wrong passwords for one user name from one address lock that pair out for
# AXES_COOLOFF_MINUTES (the right password included); a success resets the count. The address is
# the client's as NUM_PROXIES trusts it (config.security.client_ip). ``manage.py axes_reset`` unlocks.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_ENABLE_ADMIN = False  # lockouts are listed and cleared with manage.py axes_list_attempts / axes_reset
AXES_CLIENT_IP_CALLABLE = "config.security.client_ip"
AXES_LOCKOUT_CALLABLE = "config.security.lockout_response"

# --- Staff two-factor sign-in (django-otp, TOTP; config.two_factor) ------------------------------
# A staff user with a confirmed authenticator always signs in with its 6-digit code as well. With
# HUIYUAN_OPERATOR_2FA_REQUIRED, operators and superusers must have one: without it they are sent
# to set one up (a QR code for the app, then a first code) before any admin page.
HUIYUAN_OPERATOR_2FA_REQUIRED = env.bool("HUIYUAN_OPERATOR_2FA_REQUIRED", default=False)
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="Huiyuan")

# --- Content-Security-Policy (django-csp): everything from this origin, nothing from elsewhere ---
# Tried in a browser (tests/browser/test_csp_browser.py): Alpine.js in the admin frame evaluates its
# expressions with ``new Function`` ('unsafe-eval'); the dashboard, the campaign builder, unfold and
# the API docs have inline scripts, and unfold inline styles ('unsafe-inline'). No CDN anywhere.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'", "'unsafe-inline'", "'unsafe-eval'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# --- The admin frame (django-unfold) ----------------------------------------------------------
# The sidebar groups the admin by what operators do (workspace.navigation); the index is the
# dashboard for operators and analysts and the counter for store staff (workspace.dashboard).
UNFOLD = {
    "SITE_TITLE": _("Huiyuan"),
    "SITE_HEADER": _("Huiyuan"),
    "SITE_SUBHEADER": _("Member management"),
    "SITE_SYMBOL": "loyalty",
    "SITE_URL": None,
    "SHOW_HISTORY": True,
    "DASHBOARD_CALLBACK": "workspace.admin.dashboard.dashboard_callback",  # the operator dashboard
    "SHOW_VIEW_ON_SITE": False,
    "SHOW_LANGUAGES": True,
    "BORDER_RADIUS": "6px",
    "COLORS": {
        "primary": {
            "50": "oklch(97.1% .013 17.38)",
            "100": "oklch(93.6% .032 17.717)",
            "200": "oklch(88.5% .062 18.334)",
            "300": "oklch(80.8% .114 19.571)",
            "400": "oklch(70.4% .191 22.216)",
            "500": "oklch(63.7% .237 25.331)",
            "600": "oklch(57.7% .245 27.325)",
            "700": "oklch(50.5% .213 27.518)",
            "800": "oklch(44.4% .177 26.899)",
            "900": "oklch(39.6% .141 25.723)",
            "950": "oklch(25.8% .092 26.042)",
        },
    },
    # The stock admin's colour variables and boxes that the project's own templates use, in the
    # frame's palette (workspace/static/workspace/admin.css).
    "STYLES": [lambda request: static("workspace/admin.css")],
    "SIDEBAR": {
        "show_search": True,
        "show_all_applications": False,
        "navigation": "workspace.navigation.sidebar",
    },
}

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=env.str("REDIS_URL", default="filesystem://localhost//"))
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
    # The filesystem transport expects its folders to exist.
    for _folder in ("queue", "processed", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
CELERY_BROKER_CONNECTION_TIMEOUT = 3
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=60 * 60)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=55 * 60)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# --- Cache -----------------------------------------------------------------------------------
# Throttling counts requests in the default cache. Per process (LocMem) unless ``CACHE_URL`` (or
# ``REDIS_URL``) names a Redis server, which several web workers then share.
_CACHE_URL = env.str("CACHE_URL", default=env.str("REDIS_URL", default=""))
if _CACHE_URL.startswith(("redis://", "rediss://")):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _CACHE_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "huiyuan"}}

# --- REST framework -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "members.apis.pagination.CappedLimitOffsetPagination",
    "PAGE_SIZE": 20,
    "COERCE_DECIMAL_TO_STRING": True,
    "EXCEPTION_HANDLER": "members.apis.errors.api_exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # Scoped throttles (``members.apis.throttling``): login per client address, money per caller.
    "DEFAULT_THROTTLE_RATES": {
        "auth": env.str("THROTTLE_AUTH", default="20/min"),
        "member_money": env.str("THROTTLE_MEMBER_MONEY", default="10/min"),
        "pos_money": env.str("THROTTLE_POS_MONEY", default="600/min"),
        "payment_notify": env.str("THROTTLE_PAYMENT_NOTIFY", default="600/min"),
        "pos_lookup": env.str("THROTTLE_POS_LOOKUP", default="30/min"),  # member lookups, per store key
        "staff_report": env.str("THROTTLE_STAFF_REPORT", default="120/min"),  # effect reports, per user
        "member_events": env.str("THROTTLE_MEMBER_EVENTS", default="60/min"),  # batches of interactions
        "pos_events": env.str("THROTTLE_POS_EVENTS", default="600/min"),
        # tracked links, per client address (carriers put many members behind one address)
        "tracked_link": env.str("THROTTLE_TRACKED_LINK", default="300/min"),
        "message_callback": env.str("THROTTLE_MESSAGE_CALLBACK", default="600/min"),  # WeChat push, SMS receipts
    },
    # Reverse proxies in front of the app whose X-Forwarded-For is trusted (throttles, sign-in
    # lockout). 0: the connecting address, whatever the header says.
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Huiyuan API",
    "DESCRIPTION": (
        "Member management for store brands: members, orders, loyalty and campaigns.\n\n"
        "Members of the mini-program authenticate with a bearer token from `/api/v1/auth/`; store "
        "systems (POS) with their store's API key in the `X-Api-Key` header. Amounts are decimal "
        "strings with two places, times ISO 8601 with a UTC offset. Errors have one shape: "
        "`{code, message, fields}`, where `fields` maps each invalid field to its problems."
    ),
    "VERSION": "1.0.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "members.models.core.Order.Status",
        "ReferralStatusEnum": "members.models.referrals.Referral.Status",
        "TopUpStatusEnum": "members.models.api.TopUpIntent.Status",
        "PointsEntryKindEnum": "members.models.points.PointsEntry.Kind",
        "WalletEntryKindEnum": "members.models.wallet.WalletEntry.Kind",
        "GenderEnum": "members.models.core.Member.Gender",
    },
}

# Member tokens (djangorestframework-simplejwt): a short-lived access token and a refresh token
# that rotates on every use; used and logged-out refresh tokens are blacklisted.
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("JWT_REFRESH_DAYS", default=30)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "ALGORITHM": "HS256",
    "ISSUER": "huiyuan",
    "AUDIENCE": "huiyuan-members",
    "LEEWAY": 5,
}
if env.str("JWT_SIGNING_KEY", default=""):  # otherwise SECRET_KEY signs them
    SIMPLE_JWT["SIGNING_KEY"] = env.str("JWT_SIGNING_KEY")

# A login without WeChat (``POST /api/v1/auth/dev-login`` with a mobile number), for local use and
# tests. Never in production.
HUIYUAN_DEV_LOGIN = env.bool("HUIYUAN_DEV_LOGIN", default=False)
# How long a process keeps the settings rows read on every order (tier ladder, loyalty program)
# before reading them again; the process that saves a change sees it at once (members.caching).
HUIYUAN_SETTINGS_CACHE_SECONDS = env.float("HUIYUAN_SETTINGS_CACHE_SECONDS", default=10.0)
# ``/api/v1/bench/floor``: the benchmark's floor (two primary-key lookups), only when asked for.
HUIYUAN_BENCH_FLOOR = env.bool("HUIYUAN_BENCH_FLOOR", default=False)
# A member's QR code (shown in the mini-program, scanned by the POS) is valid this many seconds.
HUIYUAN_MEMBER_QR_MAX_AGE = env.int("HUIYUAN_MEMBER_QR_MAX_AGE", default=300)
# The largest order a POS may record (yuan): a larger amount is refused on the field (points stay in range).
HUIYUAN_ORDER_MAX_AMOUNT = env.str("HUIYUAN_ORDER_MAX_AMOUNT", default="1000000.00")
# /api/docs/, /api/redoc/ and /api/schema/ for anyone (True) or for staff signed in to the admin.
HUIYUAN_API_DOCS_PUBLIC = env.bool("HUIYUAN_API_DOCS_PUBLIC", default=True)
# How long a retried API write (same Idempotency-Key) is answered with its stored first response.
HUIYUAN_IDEMPOTENCY_KEEP_DAYS = env.int("HUIYUAN_IDEMPOTENCY_KEEP_DAYS", default=7)
# Interactions (page views, check-ins, services used…) older than this are pruned daily; none older is accepted.
HUIYUAN_INTERACTION_KEEP_DAYS = env.int("HUIYUAN_INTERACTION_KEEP_DAYS", default=400)

# --- WeChat mini-program and WeChat Pay (v3) ---------------------------------------------------
WECHAT_APP_ID = env.str("WECHAT_APP_ID", default="")
WECHAT_APP_SECRET = env.str("WECHAT_APP_SECRET", default="")
WECHAT_API_BASE = env.str("WECHAT_API_BASE", default="https://api.weixin.qq.com")
WECHAT_TIMEOUT = env.float("WECHAT_TIMEOUT", default=5.0)
# The HTTP transport of both clients, as a dotted path (tests put a fake here).
WECHAT_TRANSPORT = env.str("WECHAT_TRANSPORT", default="members.wechat.urllib_transport")
WECHATPAY_API_BASE = env.str("WECHATPAY_API_BASE", default="https://api.mch.weixin.qq.com")
WECHATPAY_MCH_ID = env.str("WECHATPAY_MCH_ID", default="")
WECHATPAY_APP_ID = env.str("WECHATPAY_APP_ID", default="") or WECHAT_APP_ID
WECHATPAY_API_V3_KEY = env.str("WECHATPAY_API_V3_KEY", default="")
# The key WeChat Pay signs callbacks and responses with (PEM text), and its id (Wechatpay-Serial).
WECHATPAY_PUBLIC_KEY = env.str("WECHATPAY_PUBLIC_KEY", default="", multiline=True)
WECHATPAY_PUBLIC_KEY_ID = env.str("WECHATPAY_PUBLIC_KEY_ID", default="")
# The merchant's own key (PEM text) and its certificate serial, to sign requests and pay params.
WECHATPAY_MERCHANT_PRIVATE_KEY = env.str("WECHATPAY_MERCHANT_PRIVATE_KEY", default="", multiline=True)
WECHATPAY_MERCHANT_SERIAL_NO = env.str("WECHATPAY_MERCHANT_SERIAL_NO", default="")
WECHATPAY_NOTIFY_URL = env.str("WECHATPAY_NOTIFY_URL", default="")
# How old a signed callback may be (seconds) before it is refused.
WECHATPAY_MAX_CLOCK_SKEW = env.int("WECHATPAY_MAX_CLOCK_SKEW", default=300)

# --- django-import-export (exports only; imports go through members.services.imports) ---------
IMPORT_EXPORT_ESCAPE_FORMULAE_ON_EXPORT = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "huiyuan.audit": {"level": "INFO"},  # who looked up which member (members.apis.pos), whatever LOG_LEVEL
    },
}

# --- Messages (campaigns outbox) and triggers ------------------------------------------------
# Channels are pluggable like Django's email backends: name → class path.
HUIYUAN_MESSAGE_CHANNELS = {
    "log": "campaigns.channels.log.LogChannel",
    "wechat": "campaigns.channels.wechat.WeChatSubscribeChannel",
    "sms": "campaigns.channels.sms.SmsChannel",
}
HUIYUAN_DEFAULT_CHANNEL = env.str("HUIYUAN_DEFAULT_CHANNEL", default="log")
HUIYUAN_OUTBOX_MAX_ATTEMPTS = env.int("HUIYUAN_OUTBOX_MAX_ATTEMPTS", default=5)
HUIYUAN_OUTBOX_RETRY_BASE_SECONDS = env.int("HUIYUAN_OUTBOX_RETRY_BASE_SECONDS", default=60)
HUIYUAN_OUTBOX_RETRY_MAX_SECONDS = env.int("HUIYUAN_OUTBOX_RETRY_MAX_SECONDS", default=6 * 3600)
HUIYUAN_OUTBOX_STALE_SECONDS = env.int("HUIYUAN_OUTBOX_STALE_SECONDS", default=600)
HUIYUAN_WECHAT_TEMPLATES = env.json("HUIYUAN_WECHAT_TEMPLATES", default={})
HUIYUAN_WECHAT_MINIPROGRAM_STATE = env.str("HUIYUAN_WECHAT_MINIPROGRAM_STATE", default="formal")
HUIYUAN_SMS_URL = env.str("HUIYUAN_SMS_URL", default="")
HUIYUAN_SMS_API_KEY = env.str("HUIYUAN_SMS_API_KEY", default="")
HUIYUAN_SMS_API_SECRET = env.str("HUIYUAN_SMS_API_SECRET", default="")
HUIYUAN_SMS_SIGN_NAME = env.str("HUIYUAN_SMS_SIGN_NAME", default="")
HUIYUAN_SMS_TEMPLATES = env.json("HUIYUAN_SMS_TEMPLATES", default={})
# The public origin members' tracked links point at (https://club.example.com); empty: bare paths
# (/t/<token>), which only work inside the mini-program's web view (campaigns.services.engagement).
HUIYUAN_TRACKED_LINK_BASE = env.str("HUIYUAN_TRACKED_LINK_BASE", default="")
HUIYUAN_TRIGGER_CATCHUP_DAYS = env.int("HUIYUAN_TRIGGER_CATCHUP_DAYS", default=7)
# Birthday triggers act from this local hour on (not from the first sweep after midnight).
HUIYUAN_TRIGGER_BIRTHDAY_HOUR = env.int("HUIYUAN_TRIGGER_BIRTHDAY_HOUR", default=10)
# The nightly CLV run's horizon (days of expected spend added up) and annual discount rate; also the
# admin's "fit now" defaults.
HUIYUAN_CLV_HORIZON_DAYS = env.int("HUIYUAN_CLV_HORIZON_DAYS", default=365)
HUIYUAN_CLV_DISCOUNT_RATE = env.str("HUIYUAN_CLV_DISCOUNT_RATE", default="0.10")
# The nightly CLV fit waits for an RFM recompute still running (retrying this often, this many times).
HUIYUAN_CLV_WAIT_SECONDS = env.int("HUIYUAN_CLV_WAIT_SECONDS", default=600)
HUIYUAN_CLV_WAIT_TRIES = env.int("HUIYUAN_CLV_WAIT_TRIES", default=18)

# --- Segmentation --------------------------------------------------------------------------
# Split the nightly recompute into N member-id ranges across workers (a Celery chord; needs a
# result backend, e.g. CELERY_RESULT_BACKEND=redis://127.0.0.1:6379/1). 1 = one task.
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=None)
SEGMENTATION_RECOMPUTE_CHUNKS = env.int("SEGMENTATION_RECOMPUTE_CHUNKS", default=1)
SEGMENTATION_WORK_MEM = env.str("SEGMENTATION_WORK_MEM", default="256MB")
SEGMENTATION_INDEX_WORK_MEM = env.str("SEGMENTATION_INDEX_WORK_MEM", default="64MB")  # the new table's index builds
# The swap's ACCESS EXCLUSIVE lock waits at most this long per attempt (refunds queue behind it),
# then backs off (doubling) and retries; after the last attempt the run fails and its task retries
# SEGMENTATION_RECOMPUTE_RETRY_SECONDS later (doubling, 3 times).
SEGMENTATION_SWAP_LOCK_TIMEOUT_MS = env.int("SEGMENTATION_SWAP_LOCK_TIMEOUT_MS", default=2000)
SEGMENTATION_SWAP_LOCK_ATTEMPTS = env.int("SEGMENTATION_SWAP_LOCK_ATTEMPTS", default=4)
SEGMENTATION_SWAP_LOCK_BACKOFF_SECONDS = env.float("SEGMENTATION_SWAP_LOCK_BACKOFF_SECONDS", default=2.0)
SEGMENTATION_RECOMPUTE_RETRY_SECONDS = env.int("SEGMENTATION_RECOMPUTE_RETRY_SECONDS", default=300)
# After an order, the member's segment is refreshed in a batch this many seconds later, with every
# other member who bought meanwhile (one statement; needs a Redis broker). 0 = at once, per order.
SEGMENTATION_LIVE_BATCH_SECONDS = env.float("SEGMENTATION_LIVE_BATCH_SECONDS", default=1.0)
HUIYUAN_PREPARE_STATEMENTS = env.bool(
    "HUIYUAN_PREPARE_STATEMENTS", default=env.bool("SEGMENTATION_PREPARE_STATEMENTS", default=True)
)
