"""Trellis settings: everything comes from environment variables, parsed strictly."""

from __future__ import annotations

import logging
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from runs.ops.embedded_redis import embedded_url
from runs.rules.config import KNOBS

from .env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_limits,
    env_list,
    env_rate,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent


def knob(name: str):
    """A Trellis knob from the environment, with runs.rules.config's default and minimum."""
    spec = KNOBS[name]
    if isinstance(spec.default, bool):
        return env_bool(name, spec.default)
    if isinstance(spec.default, int):
        return env_int(name, spec.default, minimum=spec.minimum)
    if isinstance(spec.default, float):
        return env_float(name, spec.default, minimum=spec.minimum)
    if isinstance(spec.default, list):
        return env_list(name, spec.default)
    return env_str(name, spec.default)


DEBUG = env_bool("DEBUG", True)
_DEV_SECRET = "trellis-dev-secret-key-not-for-production-use-0123456789abcdef"
SECRET_KEY = env_str("SECRET_KEY", _DEV_SECRET)
if not DEBUG and SECRET_KEY == _DEV_SECRET:
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is false.")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])

TRELLIS_DATA_DIR = Path(env_str("TRELLIS_DATA_DIR", str(BASE_DIR / ".trellis"))).resolve()
TRELLIS_DATA_DIR.mkdir(parents=True, exist_ok=True)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "django_celery_beat",
    "channels",
    "handlers",
    "runs",
    "frontend",
    *env_list("TRELLIS_EXTRA_APPS", []),
]

MIDDLEWARE = [
    "runs.middleware.json_errors",  # outermost: sees every error under the API's paths
    "django.middleware.security.SecurityMiddleware",
    "runs.middleware.request_size_limit",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "runs.logcontext.RunLogContextMiddleware",
]

ROOT_URLCONF = "orchestration.urls"
ASGI_APPLICATION = "orchestration.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
_SQLITE_OPTIONS = {
    # Several worker processes write at once: take the write lock at BEGIN, wait for it,
    # and let readers proceed during writes (STACK.md, trap 3).
    "transaction_mode": "IMMEDIATE",
    "timeout": 30,
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}
_database_url = env_str("DATABASE_URL")
if _database_url:
    try:
        DATABASES = {"default": dj_database_url.parse(_database_url, conn_max_age=60)}
    except Exception as exc:  # dj_database_url raises several types for bad URLs
        raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from exc
    if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        DATABASES["default"]["OPTIONS"] = dict(_SQLITE_OPTIONS)
        DATABASES["default"]["CONN_MAX_AGE"] = 0
    elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # A worker cut off mid-transaction (a network partition) would keep its row locks
        # until the server's TCP keepalive gives up, hours by default, and block the
        # reconciler's repair of that very node. The server drops such a session after
        # TRELLIS_PG_IDLE_IN_TRANSACTION seconds (Trellis never idles inside a transaction)
        # and probes silent clients every 30 s.
        _idle = env_int("TRELLIS_PG_IDLE_IN_TRANSACTION", 60, minimum=0)
        _pg_options = DATABASES["default"].setdefault("OPTIONS", {})
        _pg_options["options"] = (
            _pg_options.get("options", "")
            + f" -c idle_in_transaction_session_timeout={_idle * 1000}"
            + " -c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10"
            + " -c tcp_keepalives_count=3"
        ).strip()
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(TRELLIS_DATA_DIR / "db.sqlite3"),
            "OPTIONS": dict(_SQLITE_OPTIONS),
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: broker, chord results and channel layer -----------------------------------
REDIS_URL = env_str("REDIS_URL")
TRELLIS_EMBEDDED_REDIS = not REDIS_URL
if not REDIS_URL:
    # Names the data dir's Valkey without starting it: each process that talks to Redis
    # starts or finds it (runs.ops.embedded_redis), so importing settings stays cheap.
    REDIS_URL = embedded_url(TRELLIS_DATA_DIR)
elif not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ImproperlyConfigured(
        f"REDIS_URL={REDIS_URL!r} must start with redis://, rediss:// or unix://."
    )

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # redis-py 8 times reads out after 5 s unless told otherwise (STACK.md, trap 1).
        "CONFIG": {
            "hosts": [{"address": REDIS_URL, "socket_timeout": None}],
            "prefix": env_str("TRELLIS_CHANNEL_PREFIX", "trellis"),
        },
    }
}
# Shared by every web process: the API's throttle counters live here.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env_str("TRELLIS_CHANNEL_PREFIX", "trellis") + ":cache",
    }
}

# --- Celery (read by orchestration/celery.py through the CELERY_ namespace) ------------
TRELLIS_MAX_NODE_TIMEOUT = knob("TRELLIS_MAX_NODE_TIMEOUT")
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL  # only chords of map items keep results here
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # A message not acknowledged within this time is delivered again; it must outlive the
    # longest node (acks_late keeps a message unacknowledged while its node runs).
    "visibility_timeout": TRELLIS_MAX_NODE_TIMEOUT + 600,
    "global_keyprefix": env_str("TRELLIS_REDIS_PREFIX", ""),
}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {
    "global_keyprefix": env_str("TRELLIS_REDIS_PREFIX", ""),
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Celery's Django fixup closes every database connection before and after each task unless
# this is set: a new connection per node (0.5 ms on SQLite, 2.6 ms on PostgreSQL here). With
# it, the fixup recycles connections every 1000 tasks; runs.workers also drops a connection
# after an error or TRELLIS_WORKER_DB_MAX_AGE seconds, as Django does between requests.
CELERY_DB_REUSE_MAX = 1000
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"

# --- Engine knobs ---------------------------------------------------------------------
TRELLIS_MAX_NODES = knob("TRELLIS_MAX_NODES")
TRELLIS_MAX_SPEC_BYTES = knob("TRELLIS_MAX_SPEC_BYTES")
TRELLIS_MAX_TEMPLATE_LENGTH = knob("TRELLIS_MAX_TEMPLATE_LENGTH")
TRELLIS_MAX_RENDERED_BYTES = knob("TRELLIS_MAX_RENDERED_BYTES")
TRELLIS_MAX_RENDER_SECONDS = knob("TRELLIS_MAX_RENDER_SECONDS")
TRELLIS_MAX_MAP_ITEMS = knob("TRELLIS_MAX_MAP_ITEMS")
TRELLIS_MAX_EVENT_BYTES = knob("TRELLIS_MAX_EVENT_BYTES")
TRELLIS_MAX_JSON_DEPTH = knob("TRELLIS_MAX_JSON_DEPTH")
TRELLIS_MAX_OUTPUT_BYTES = knob("TRELLIS_MAX_OUTPUT_BYTES")
TRELLIS_DEFAULT_NODE_TIMEOUT = knob("TRELLIS_DEFAULT_NODE_TIMEOUT")
TRELLIS_DEFAULT_RETRIES = knob("TRELLIS_DEFAULT_RETRIES")
TRELLIS_DEFAULT_BACKOFF = knob("TRELLIS_DEFAULT_BACKOFF")
TRELLIS_MAX_BACKOFF = knob("TRELLIS_MAX_BACKOFF")
TRELLIS_LLM_BASE_URL = knob("TRELLIS_LLM_BASE_URL")
TRELLIS_LLM_API_KEY = knob("TRELLIS_LLM_API_KEY")
TRELLIS_LLM_MODEL = knob("TRELLIS_LLM_MODEL")
TRELLIS_EGRESS_ALLOW = knob("TRELLIS_EGRESS_ALLOW")
TRELLIS_CAPTURE_LOG_LEVEL = knob("TRELLIS_CAPTURE_LOG_LEVEL")
TRELLIS_CAPTURE_LOG_LINES = knob("TRELLIS_CAPTURE_LOG_LINES")
TRELLIS_CAPTURE_LINE_BYTES = knob("TRELLIS_CAPTURE_LINE_BYTES")
TRELLIS_EXAMPLES_DIR = Path(env_str("TRELLIS_EXAMPLES_DIR", str(BASE_DIR / "examples")))

TRELLIS_HEARTBEAT_SECONDS = knob("TRELLIS_HEARTBEAT_SECONDS")
TRELLIS_WORKER_DEAD_AFTER = knob("TRELLIS_WORKER_DEAD_AFTER")
TRELLIS_RECONCILE_SECONDS = knob("TRELLIS_RECONCILE_SECONDS")
TRELLIS_RESEND_QUEUED_AFTER = knob("TRELLIS_RESEND_QUEUED_AFTER")
TRELLIS_QUEUE_LIMITS = env_limits("TRELLIS_QUEUE_LIMITS")
TRELLIS_QUEUE_RETRY_SECONDS = knob("TRELLIS_QUEUE_RETRY_SECONDS")
TRELLIS_SHUTDOWN_GRACE = knob("TRELLIS_SHUTDOWN_GRACE")
TRELLIS_LOST_ATTEMPTS = knob("TRELLIS_LOST_ATTEMPTS")
# Continue in the worker: a node that becomes ready on the queue of the node that just
# finished runs in the same task, without a broker round trip (runs.engine.scheduler.Carry).
TRELLIS_CONTINUE_HOPS = knob("TRELLIS_CONTINUE_HOPS")
TRELLIS_CONTINUE_SECONDS = knob("TRELLIS_CONTINUE_SECONDS")
# How long a worker process keeps a database connection across tasks (CONN_MAX_AGE for the
# worker only: daphne serves ASGI, where Django advises against persistent connections).
TRELLIS_WORKER_DB_MAX_AGE = knob("TRELLIS_WORKER_DB_MAX_AGE")
# Event streams (WebSocket and SSE): a comment line after this many idle seconds keeps proxies
# from closing an SSE stream; an idle stream re-reads the event table this often, in case a
# channel-layer notification was lost (Redis restarted, a full channel).
TRELLIS_STREAM_HEARTBEAT_SECONDS = knob("TRELLIS_STREAM_HEARTBEAT_SECONDS")
TRELLIS_STREAM_RECHECK_SECONDS = knob("TRELLIS_STREAM_RECHECK_SECONDS")
# daphne serves no static files (STACK.md, trap 5): the dashboard's CSS and JS are served by
# the ASGI app unless a proxy or WhiteNoise does it (then set this to false).
TRELLIS_SERVE_STATIC = knob("TRELLIS_SERVE_STATIC")
# /metrics answers a staff session, or `Authorization: Bearer <this>` when it is set.
TRELLIS_METRICS_TOKEN = knob("TRELLIS_METRICS_TOKEN")
# The reconciler's and retention's periodic tasks are registered by runs.tasks on the Celery
# app itself (a host project's beat gets them too).
TRELLIS_RETENTION_DAYS = knob("TRELLIS_RETENTION_DAYS")

# --- Auth, API ------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/dashboard/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "runs.api.exception_handler",
    "DEFAULT_PAGINATION_CLASS": None,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_PARSER_CLASSES": ["runs.parsers.LimitedJSONParser"],
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_rate("TRELLIS_THROTTLE_ANON", "60/min"),
        "user": env_rate("TRELLIS_THROTTLE_USER", "1200/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Trellis API",
    "DESCRIPTION": "Workflow DAGs on Celery: definitions, runs, control and events.",
    "VERSION": "1.0.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_INCLUDE_SCHEMA": False,
}

TRELLIS_MAX_REQUEST_BYTES = env_int(
    "TRELLIS_MAX_REQUEST_BYTES", TRELLIS_MAX_SPEC_BYTES + 64 * 1024, minimum=1024
)
DATA_UPLOAD_MAX_MEMORY_SIZE = TRELLIS_MAX_REQUEST_BYTES

# --- Security (DESIGN §13; README "Production") ----------------------------------------
# Cookies are sent over HTTPS only unless DEBUG; HTTPS redirect and HSTS are the operator's
# choice (a proxy may do them), and `manage.py check --deploy` says when they are off.
SESSION_COOKIE_SECURE = env_bool("TRELLIS_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SECURE_SSL_REDIRECT = env_bool("TRELLIS_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^ready$"]  # probes speak plain HTTP to the pod
SECURE_HSTS_SECONDS = env_int("TRELLIS_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("TRELLIS_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("TRELLIS_HSTS_PRELOAD", False)
if env_bool("TRELLIS_BEHIND_PROXY", False):
    # The proxy terminates TLS and says so; only set this behind a proxy that strips the
    # header from clients.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# No CORS headers are ever sent: browsers keep other origins out of the API and the
# dashboard. (Add django-cors-headers yourself if another origin must call the API.)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = TRELLIS_DATA_DIR / "static"

# `json`: one JSON object per line (time, level, logger, message, and run_id / node_id while
# a worker executes a node), for log shippers; `text` for people.
TRELLIS_LOG_FORMAT = env_choice("TRELLIS_LOG_FORMAT", "text", ("text", "json"))
if TRELLIS_LOG_FORMAT == "json":
    # Python warnings (Celery's "running as root", deprecations) become records too, rather
    # than raw lines on stderr in the middle of the JSON.
    logging.captureWarnings(True)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"run_context": {"()": "runs.logcontext.ContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "runs.logcontext.JSONFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if TRELLIS_LOG_FORMAT == "json" else "plain",
            "filters": ["run_context"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("TRELLIS_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # One line per Celery task is noise for an engine that runs a task per node (the
        # event log is the record) and for the reconciler's pass every few seconds.
        "celery.app.trace": {"level": "WARNING"},
        "celery.worker.strategy": {"level": "WARNING"},
        "celery.beat": {"level": "WARNING"},
    },
}
