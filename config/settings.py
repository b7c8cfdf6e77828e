"""PayLab settings, read from the environment.

Two ways to run from one code base (DESIGN.md):
- embedded (default): SQLite in WAL mode, the in-memory channel layer and a
  Celery broker on the filesystem, so `make run` needs nothing but Python;
- full: `DATABASE_URL=postgres://…` switches to PostgreSQL through psycopg 3
  with a connection pool, `REDIS_URL=redis://…` to the Redis channel layer,
  Celery on Redis, and a rate limiter shared by every process.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import Env

BASE_DIR = Path(__file__).resolve().parent.parent
env = Env()

# --- Core -----------------------------------------------------------------

DEBUG = env.boolean("PAYLAB_DEBUG", False)
_secret = env.string("PAYLAB_SECRET_KEY")
if _secret is None:
    if not DEBUG:
        raise ImproperlyConfigured(
            "PAYLAB_SECRET_KEY is not set. Set it (50+ random characters), "
            "or set PAYLAB_DEBUG=true for a development-only fallback key."
        )
    _secret = "django-insecure-paylab-development-only-key-never-use-in-production"  # noqa: S105
SECRET_KEY: str = _secret
# Keyed hashes of card numbers (fingerprints) use their own key, so rotating
# the session key does not change every stored fingerprint.
CARD_FINGERPRINT_KEY: str = env.string("PAYLAB_FINGERPRINT_KEY", SECRET_KEY) or SECRET_KEY

ALLOWED_HOSTS = env.csv("PAYLAB_ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.csv("PAYLAB_CSRF_TRUSTED_ORIGINS")
# "development" lets webhooks target localhost; "production" refuses loopback,
# private and link-local addresses.
PAYLAB_PROFILE = env.string("PAYLAB_PROFILE", "development")
if PAYLAB_PROFILE not in {"development", "production"}:
    raise ImproperlyConfigured(
        f"PAYLAB_PROFILE={PAYLAB_PROFILE!r} must be 'development' or 'production'."
    )
# Where merchants' customers reach hosted pages (3-D Secure) when PayLab
# cannot tell from the request (tasks, commands).
PAYLAB_PUBLIC_URL = env.string("PAYLAB_PUBLIC_URL", "http://127.0.0.1:8000") or ""
VAR_DIR = Path(env.string("PAYLAB_VAR_DIR", str(BASE_DIR / "var")) or "var")
# The SQLite database, the embedded broker and static files live here; a
# missing folder would otherwise surface as SQLite's "unable to open database file".
VAR_DIR.mkdir(parents=True, exist_ok=True)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "axes",
    "accounts",
    "payments",
    "analytics",
    "simulator",
]

MIDDLEWARE = [
    "config.middleware.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks, so it sees the outcome of authentication.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = "config.wsgi.application"

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
                "accounts.context_processors.role_flags",
            ],
        },
    }
]

# --- Database -------------------------------------------------------------

DATABASE_URL = env.url("DATABASE_URL", schemes=("postgres", "postgresql", "sqlite"))
if DATABASE_URL and not DATABASE_URL.startswith("sqlite"):
    _db = dj_database_url.parse(DATABASE_URL)
    _db["ENGINE"] = "django.db.backends.postgresql"
    # Under ASGI every sync view runs in a fresh thread with its own
    # connection; persistent connections would pile up until PostgreSQL
    # refuses them, so a bounded psycopg pool serves every thread instead.
    if env.boolean("PAYLAB_DB_POOL", True):
        _db["CONN_MAX_AGE"] = 0
        _db["OPTIONS"] = {
            "pool": {
                "min_size": env.integer("PAYLAB_DB_POOL_MIN", 2, minimum=0),
                "max_size": env.integer("PAYLAB_DB_POOL_MAX", 20, minimum=1),
                "timeout": env.number("PAYLAB_DB_POOL_TIMEOUT", 10.0, minimum=0.1),
            }
        }
    else:
        _db["CONN_MAX_AGE"] = env.integer("PAYLAB_DB_CONN_MAX_AGE", 60, minimum=0)
    DATABASES = {"default": _db}
else:
    _sqlite_path = (
        DATABASE_URL.removeprefix("sqlite:///") if DATABASE_URL else str(VAR_DIR / "paylab.sqlite3")
    )
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": _sqlite_path,
            "OPTIONS": {
                # WAL lets the web process read while the worker writes;
                # IMMEDIATE takes the write lock at BEGIN so two writers queue
                # on the busy timeout instead of failing with "database is
                # locked" when one upgrades a read lock.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": env.number("PAYLAB_SQLITE_TIMEOUT", 20.0, minimum=0.1),
            },
        }
    }
DATABASE_IS_POSTGRES = DATABASES["default"]["ENGINE"].endswith("postgresql")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis, channels, Celery ----------------------------------------------

REDIS_URL = env.url("REDIS_URL", schemes=("redis", "rediss"))

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "capacity": 5000, "expiry": 30},
        }
    }
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        # Longer than any task may run, so an unacknowledged task is not
        # handed to a second worker while the first is still on it.
        "visibility_timeout": env.integer("PAYLAB_CELERY_VISIBILITY_TIMEOUT", 3600, minimum=60),
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        # Exchange tables; kombu's default is ./control in the working directory.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }

CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {
    "settle-pending-refunds": {"task": "payments.tasks.sweep_pending_refunds", "schedule": 5.0},
    "expire-authorizations": {"task": "payments.tasks.expire_authorizations", "schedule": 60.0},
    "expire-3ds-challenges": {
        "task": "payments.tasks.expire_three_ds_challenges",
        "schedule": 30.0,
    },
    "purge-idempotency-keys": {"task": "payments.tasks.purge_idempotency_keys", "schedule": 3600.0},
    # UPI settlement and confirmations whose web process died mid-latency.
    "settle-pending-authorizations": {
        "task": "payments.tasks.settle_pending_authorizations",
        "schedule": 2.0,
    },
    # Safety nets behind the nudged relay and the on-commit delivery tasks.
    "sweep-outbox": {"task": "payments.tasks.sweep_outbox", "schedule": 5.0},
    "sweep-webhook-deliveries": {
        "task": "payments.tasks.sweep_webhook_deliveries",
        "schedule": 5.0,
    },
    # Analytics: count newly published events into the rollups (docs/analytics.md).
    "project-rollups": {"task": "analytics.tasks.project_rollups", "schedule": 1.0},
    "prune-rollups": {"task": "analytics.tasks.prune_rollups", "schedule": 3600.0},
    # Hands the slices of dead workers on (simulator.services.runs_sweep).
    "sweep-simulation-runs": {
        "task": "simulator.tasks.sweep_runs",
        "schedule": env.number("PAYLAB_SIMULATOR_SWEEP_SECONDS", 5.0, minimum=0.1),
    },
}
# A simulation slice whose worker is silent this long (seconds) is handed on
# by the sweep above (docs/simulator.md).
PAYLAB_SIMULATOR_LEASE_SECONDS = env.number("PAYLAB_SIMULATOR_LEASE_SECONDS", 10.0, minimum=0.5)
# Minute rollup cells are kept this long (hours); hour and day cells forever.
PAYLAB_ANALYTICS_MINUTE_RETENTION_HOURS = env.integer(
    "PAYLAB_ANALYTICS_MINUTE_RETENTION_HOURS", 48, minimum=2
)

# --- Simulated processors ----------------------------------------------------

# Processor settings and breaker states are cached per process this long
# (seconds); a change made in another process is seen within it.
PAYLAB_PROCESSOR_CACHE_SECONDS = env.number("PAYLAB_PROCESSOR_CACHE_SECONDS", 1.0, minimum=0)
# Off: processors answer at once (a PayLab-Simulate latency still applies).
PAYLAB_PROCESSOR_LATENCY = env.boolean("PAYLAB_PROCESSOR_LATENCY", True)
# Off: processors never fail on their own (timeouts, unavailable, soft declines);
# scheduled outages and PayLab-Simulate directives still apply.
PAYLAB_PROCESSOR_FAULTS = env.boolean("PAYLAB_PROCESSOR_FAULTS", True)

# --- Outbox relay and webhooks ----------------------------------------------

# Embedded mode: the in-memory channel layer lives in the daphne process, so
# that process runs the relay loop itself; full mode runs `manage.py relay`.
PAYLAB_RELAY_IN_WEB = env.boolean("PAYLAB_RELAY_IN_WEB", not REDIS_URL)
PAYLAB_RELAY_POLL_SECONDS = env.number("PAYLAB_RELAY_POLL_SECONDS", 0.05, minimum=0.005)
PAYLAB_RELAY_BATCH = env.integer("PAYLAB_RELAY_BATCH", 200, minimum=1)
# `manage.py relay`: seconds it waits after a nudge so that window's commits
# leave as one batch (payments.relay.run_forever; docs/benchmarks.md, "Events").
PAYLAB_RELAY_LINGER_SECONDS = env.number("PAYLAB_RELAY_LINGER_SECONDS", 0.01, minimum=0.0)
# The worker's sweep leaves rows this young to the nudged relay (in embedded
# mode its pushes would reach no page: its channel layer is its own).
PAYLAB_OUTBOX_SWEEP_GRACE_SECONDS = env.number("PAYLAB_OUTBOX_SWEEP_GRACE_SECONDS", 5.0, minimum=0)
# /readyz answers 503 when the oldest unpublished outbox row is older than this.
PAYLAB_OUTBOX_MAX_LAG_SECONDS = env.number("PAYLAB_OUTBOX_MAX_LAG_SECONDS", 60.0, minimum=1)
PAYLAB_WEBHOOK_CONNECT_TIMEOUT = env.number("PAYLAB_WEBHOOK_CONNECT_TIMEOUT", 5.0, minimum=0.05)
PAYLAB_WEBHOOK_READ_TIMEOUT = env.number("PAYLAB_WEBHOOK_READ_TIMEOUT", 10.0, minimum=0.05)
# Multiplies every delay of the retry schedule; tests compress three days.
PAYLAB_WEBHOOK_RETRY_SCALE = env.number("PAYLAB_WEBHOOK_RETRY_SCALE", 1.0, minimum=0)
# An endpoint failing without a success for this long is disabled.
PAYLAB_WEBHOOK_DISABLE_AFTER_HOURS = env.number(
    "PAYLAB_WEBHOOK_DISABLE_AFTER_HOURS", 72.0, minimum=0
)

CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# --- Auth -----------------------------------------------------------------

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "accounts:login"

# Lockout: the (account, IP) pair is locked after this many failures, for the
# cool-off period; every attempt is recorded by django-axes.
AXES_FAILURE_LIMIT = env.integer("PAYLAB_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env.integer("PAYLAB_LOGIN_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_USERNAME_FORM_FIELD = "username"
AXES_RESET_ON_SUCCESS = True
# AccessAttempt rows are reset on success and expire with the cool-off; the
# failure log keeps every failed attempt for the record.
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
AXES_VERBOSE = False

# --- Security ---------------------------------------------------------------

_https = env.boolean("PAYLAB_HTTPS", False)
SECURE_SSL_REDIRECT = _https
SESSION_COOKIE_SECURE = _https
CSRF_COOKIE_SECURE = _https
SECURE_HSTS_SECONDS = env.integer("PAYLAB_HSTS_SECONDS", 31536000 if _https else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = _https
SECURE_HSTS_PRELOAD = _https
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if _https else None
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# --- i18n, static -----------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# --- API --------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.HasApiKey"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "config.api.StripeFormParser",
        "rest_framework.parsers.JSONParser",
    ],
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "config.api.AlwaysJson",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "PayLab API",
    "DESCRIPTION": (
        "The merchant API of PayLab, a self-hosted payment gateway simulator, in Stripe's "
        "dialect: form-encoded or JSON bodies, secret keys `sk_test_…` as the HTTP Basic "
        "username or a Bearer token, Stripe's object shapes and error envelope."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Docs are public and served from PayLab itself, so they work offline.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Enums stay inline, as in Stripe's own spec: hoisting them into shared
    # components collides on Stripe's generic names (`object`, `type`, `status`).
    "POSTPROCESSING_HOOKS": [],
}
# Requests per second per API key unless the merchant's settings say otherwise.
PAYLAB_RATE_LIMIT_DEFAULT = env.integer("PAYLAB_RATE_LIMIT", 100, minimum=1)
# How long each process reuses an API key row it looked up (accounts.services):
# a revoke elsewhere, or a merchant's new settings, take effect within it.
PAYLAB_API_KEY_CACHE_SECONDS = env.number("PAYLAB_API_KEY_CACHE_SECONDS", 2.0, minimum=0.0)

# --- Logging ----------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "config.logging.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["console"], "level": env.string("PAYLAB_LOG_LEVEL", "INFO")},
    "loggers": {
        # The request log line replaces Django's and daphne's access logs.
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "ERROR"},
        "daphne": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
    },
}
