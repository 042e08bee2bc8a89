"""Nexus settings: one module, driven by environment variables (see .env.example).

Defaults give an embedded demo (SQLite file + kombu filesystem broker under
``NEXUS_DATA_DIR``); production sets ``DATABASE_URL`` (PostgreSQL) and
``CELERY_BROKER_URL`` (Redis). Bad values stop start-up with the variable named.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from nexus_site.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("NEXUS_DATA_DIR", str(BASE_DIR / "data"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DJANGO_DEBUG", False)
# The embedded default's key: the file scripts/run writes on first start, so
# `python manage.py ...` in the same checkout needs no variable.
SECRET_KEY_FILE = DATA_DIR / "secret-key"
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "")
if not SECRET_KEY and SECRET_KEY_FILE.is_file():
    SECRET_KEY = SECRET_KEY_FILE.read_text().strip()
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off: set it, or "
            f"run scripts/run once to create {SECRET_KEY_FILE} "
            "(or set DJANGO_DEBUG=true for local development)."
        )
    SECRET_KEY = "django-insecure-local-development-only"  # noqa: S105
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "routing",
]

MIDDLEWARE = [
    # Outermost: X-Request-ID on every response; 503 during a database outage.
    "routing.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "routing.middleware.StaticFilesMiddleware",  # WhiteNoise, async capable
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

# The load benchmark swaps in nexus_site.urls_bench (adds a one-INSERT endpoint).
ROOT_URLCONF = env_choice(
    "NEXUS_ROOT_URLCONF",
    "nexus_site.urls",
    ["nexus_site.urls", "nexus_site.urls_bench"],
)
WSGI_APPLICATION = "nexus_site.wsgi.application"

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
            ],
        },
    },
]


def _database() -> dict[str, object]:
    default_url = f"sqlite:///{DATA_DIR / 'nexus.sqlite3'}"
    url = env_str("DATABASE_URL", default_url)
    scheme = urlparse(url).scheme
    if scheme not in {"sqlite", "postgres", "postgresql", "pgsql"}:
        raise ImproperlyConfigured(
            "DATABASE_URL must start with sqlite:/// or postgres://; "
            f"got scheme {scheme!r}."
        )
    try:
        config: dict[str, object] = dict(dj_database_url.parse(url, conn_max_age=60))
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a valid URL: {exc}") from None
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # Django's backend, with writers queued on a file lock (see the module).
        config["ENGINE"] = "nexus_site.sqlite"
        config["OPTIONS"] = {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
        config["CONN_MAX_AGE"] = 0
    else:
        # Under ASGI every request runs its sync code in a thread of its own, so
        # connections kept per thread would never be reused: a pool per process
        # hands each request a connection and takes it back at the request's end.
        config["CONN_MAX_AGE"] = 0
        options: dict[str, object] = {
            "pool": {
                "min_size": 1,
                "max_size": env_int("NEXUS_PG_POOL_SIZE", 10, minimum=1),
                # Waiting longer for a connection than this is an outage: 503.
                "timeout": 5,
            }
        }
        if env_bool("NEXUS_PG_PREPARED_STATEMENTS", True):
            # Parameters bound by the server, and statements run 5 times on a
            # connection kept prepared: ~20% less time per route call. Turn off
            # behind PgBouncer in transaction mode older than 1.21.
            options.update(server_side_binding=True, prepare_threshold=5)
        config["OPTIONS"] = options
    return config


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "explorer:decisions"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    # A request failed by a database outage logs one line, not a traceback.
    "filters": {"outage_one_line": {"()": "routing.request_log.OutageOneLineFilter"}},
    "loggers": {
        "django.request": {"filters": ["outage_one_line"]},
        # One line per proxied upstream call is noise; failures are logged by Nexus.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
    "root": {"handlers": ["console"], "level": env_str("NEXUS_LOG_LEVEL", "INFO")},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "routing.api.auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["routing.api.parsers.StrictJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "routing.api.exceptions.api_exception_handler",
    "COERCE_DECIMAL_TO_STRING": False,
}
SPECTACULAR_SETTINGS = {
    # Two choice sets are both called "outcome": the decision's and a usage report's.
    "ENUM_NAME_OVERRIDES": {
        "DecisionOutcomeEnum": [(o, o) for o in ("route", "queue", "reject")],
        "ReportedOutcomeEnum": "routing.services.proxy.REPORTED_OUTCOMES",
    },
    "TITLE": "Nexus routing API",
    "DESCRIPTION": "Decides where each LLM inference request runs, and records why.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    # Swagger UI and ReDoc from Nexus's own static files: no CDN, works offline and under
    # the Content-Security-Policy below.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Transport security ---------------------------------------------------------
# Production serves Nexus over HTTPS (usually TLS ends at a reverse proxy); these
# turn on what `manage.py check --deploy` asks for. All off by default so the
# embedded demo works on plain http://127.0.0.1.
# Session and CSRF cookies only over HTTPS.
NEXUS_SECURE_COOKIES = env_bool("NEXUS_SECURE_COOKIES", False)
SESSION_COOKIE_SECURE = NEXUS_SECURE_COOKIES
CSRF_COOKIE_SECURE = NEXUS_SECURE_COOKIES
# Strict-Transport-Security max-age in seconds (0 = no header).
SECURE_HSTS_SECONDS = env_int("NEXUS_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("NEXUS_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("NEXUS_HSTS_PRELOAD", False)
# Redirect plain-HTTP requests to HTTPS, except the probes a load balancer or
# Prometheus makes from inside the network.
SECURE_SSL_REDIRECT = env_bool("NEXUS_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto (and strips it from
# clients): trust it to tell HTTPS requests apart. Never set this without one.
if env_bool("NEXUS_TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Content-Security-Policy: every script, style and image comes from Nexus itself
# (htmx is the vendored copy; charts are inline SVG elements, not data URLs).
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

# --- Nexus --------------------------------------------------------------------
# Extra reconcilers (dotted paths), inserted before selection in this order.
NEXUS_EXTRA_RECONCILERS = env_list("NEXUS_EXTRA_RECONCILERS", [])
NEXUS_SELECTION_STRATEGY = env_choice(
    "NEXUS_SELECTION_STRATEGY", "smart", ["smart", "round_robin", "priority", "random"]
)
# The smart strategy's scorers and weights, in order: built-in names or dotted
# paths of custom scorers ("myapp.scorers.Affinity:0.3"). Checked at start-up.
NEXUS_SCORERS = env_str(
    "NEXUS_SCORERS", "priority:0.4,load:0.25,latency:0.2,errors:0.15,cost:0.5"
)
# A reservation not settled by POST /api/v1/usage within this time is released.
# Processes a backtest replays on: 0 = one per core for backtests of 20,000+
# decisions (smaller ones replay in the task's own process); N = always N.
NEXUS_BACKTEST_WORKERS = env_int("NEXUS_BACKTEST_WORKERS", 0)
NEXUS_RESERVATION_TTL_SECONDS = env_int("NEXUS_RESERVATION_TTL_SECONDS", 900, minimum=1)
NEXUS_DECISION_RETENTION_DAYS = env_int("NEXUS_DECISION_RETENTION_DAYS", 90, minimum=1)
# PostgreSQL only (routing/services/partitions.py): decisions are partitioned by
# created_at, one partition per period (month: a handful of partitions per query at
# the default retention), created this many periods ahead; an expired partition is
# dropped, or detached (kept as a table of its own for the operator to archive).
# Exact retention also deletes, in batches, the rows of the partition straddling
# the cutoff; without it they stay until their whole partition expires.
NEXUS_DECISION_PARTITION_PERIOD = env_choice(
    "NEXUS_DECISION_PARTITION_PERIOD", "month", ["month", "week", "day"]
)
NEXUS_DECISION_PARTITIONS_AHEAD = env_int(
    "NEXUS_DECISION_PARTITIONS_AHEAD", 2, minimum=1
)
NEXUS_DECISION_PARTITION_EXPIRY = env_choice(
    "NEXUS_DECISION_PARTITION_EXPIRY", "drop", ["drop", "detach"]
)
NEXUS_DECISION_RETENTION_EXACT = env_bool("NEXUS_DECISION_RETENTION_EXACT", False)
NEXUS_API_KEY_CACHE_SECONDS = env_int("NEXUS_API_KEY_CACHE_SECONDS", 5)  # 0: no cache
# POST /api/v1/route refuses (400) more messages, or more content parts in all
# messages together, so that one request cannot cost many times a normal one.
NEXUS_MAX_MESSAGES = env_int("NEXUS_MAX_MESSAGES", 1024, minimum=1)
NEXUS_MAX_CONTENT_PARTS = env_int("NEXUS_MAX_CONTENT_PARTS", 1024, minimum=1)
# Background work (routing/tasks.py): how often budgets are reconciled and backends
# probed, the probe's HTTP timeout, and failures in a row before "unhealthy".
NEXUS_BUDGET_RECONCILE_INTERVAL_SECONDS = env_int(
    "NEXUS_BUDGET_RECONCILE_INTERVAL_SECONDS", 60, minimum=1
)
NEXUS_HEALTH_PROBE_INTERVAL_SECONDS = env_int(
    "NEXUS_HEALTH_PROBE_INTERVAL_SECONDS", 30, minimum=1
)
# How often usage reports are summed into the daily spend rollup.
NEXUS_SPEND_ROLLUP_INTERVAL_SECONDS = env_int(
    "NEXUS_SPEND_ROLLUP_INTERVAL_SECONDS", 60, minimum=1
)
NEXUS_HEALTH_PROBE_TIMEOUT_SECONDS = env_int(
    "NEXUS_HEALTH_PROBE_TIMEOUT_SECONDS", 2, minimum=1
)
NEXUS_HEALTH_FAILURES_BEFORE_UNHEALTHY = env_int(
    "NEXUS_HEALTH_FAILURES_BEFORE_UNHEALTHY", 3, minimum=1
)
# Budget alerts (routing/services/alerts.py): how often thresholds are checked,
# the webhook's HTTP timeout, attempts per alert, and the delay before the first
# retry (doubling after each failed attempt, at most 5 minutes).
NEXUS_BUDGET_ALERT_CHECK_INTERVAL_SECONDS = env_int(
    "NEXUS_BUDGET_ALERT_CHECK_INTERVAL_SECONDS", 30, minimum=1
)
NEXUS_BUDGET_ALERT_TIMEOUT_S = env_float("NEXUS_BUDGET_ALERT_TIMEOUT_S", 5.0, minimum=0)
NEXUS_BUDGET_ALERT_MAX_ATTEMPTS = env_int(
    "NEXUS_BUDGET_ALERT_MAX_ATTEMPTS", 5, minimum=1
)
NEXUS_BUDGET_ALERT_RETRY_BACKOFF_S = env_float(
    "NEXUS_BUDGET_ALERT_RETRY_BACKOFF_S", 2.0, minimum=0
)

# Threads per web process that run sync views (REST API, explorer, admin).
NEXUS_WEB_THREADS = env_int("NEXUS_WEB_THREADS", 2, minimum=1)

# The proxy (/v1/, routing/proxy): attempts per request, the four timeouts (s),
# and passive health (failed attempts in a row before the circuit opens, and
# how long it stays open before one trial request is let through).
NEXUS_PROXY_MAX_ATTEMPTS = env_int("NEXUS_PROXY_MAX_ATTEMPTS", 3, minimum=1)
NEXUS_PROXY_CONNECT_TIMEOUT_S = env_float(
    "NEXUS_PROXY_CONNECT_TIMEOUT_S", 5.0, minimum=0
)
NEXUS_PROXY_FIRST_BYTE_TIMEOUT_S = env_float(
    "NEXUS_PROXY_FIRST_BYTE_TIMEOUT_S", 60.0, minimum=0
)
NEXUS_PROXY_IDLE_TIMEOUT_S = env_float("NEXUS_PROXY_IDLE_TIMEOUT_S", 60.0, minimum=0)
NEXUS_PROXY_TOTAL_TIMEOUT_S = env_float("NEXUS_PROXY_TOTAL_TIMEOUT_S", 600.0, minimum=0)
NEXUS_PROXY_FAILURES_TO_OPEN = env_int("NEXUS_PROXY_FAILURES_TO_OPEN", 3, minimum=1)
NEXUS_PROXY_COOLDOWN_S = env_float("NEXUS_PROXY_COOLDOWN_S", 30.0, minimum=0)

# Shared state (routing/shared_state.py): Redis when NEXUS_REDIS_URL is set, else
# a SQLite file under NEXUS_DATA_DIR shared by the processes of this machine.
NEXUS_REDIS_URL = env_str("NEXUS_REDIS_URL", "").strip()
if NEXUS_REDIS_URL and urlparse(NEXUS_REDIS_URL).scheme not in {
    "redis",
    "rediss",
    "unix",
}:
    raise ImproperlyConfigured(
        "NEXUS_REDIS_URL must be redis://, rediss:// or unix:// (or empty); "
        f"got {NEXUS_REDIS_URL!r}."
    )
NEXUS_SHARED_STATE_FILE = DATA_DIR / "shared-state.sqlite3"
# /metrics: when set, scrapes must send ``Authorization: Bearer <token>``.
NEXUS_METRICS_TOKEN = env_str("NEXUS_METRICS_TOKEN", "").strip()
# Prometheus multiprocess mode (routing/metrics_dir.py), read by prometheus_client
# itself: empty counts as unset (else it would write metric files into the current
# directory); set, it must be a directory.
_metrics_dir = env_str("PROMETHEUS_MULTIPROC_DIR", "").strip()
if not _metrics_dir:
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
elif not Path(_metrics_dir).is_dir():
    raise ImproperlyConfigured(
        "PROMETHEUS_MULTIPROC_DIR must be an existing directory (run "
        f"`python -m routing.metrics_dir prepare`); got {_metrics_dir!r}."
    )
# Rate limits on failures (routing/rate_limits.py), per client address (REMOTE_ADDR).
NEXUS_LOGIN_FAILURES_PER_USER = env_int("NEXUS_LOGIN_FAILURES_PER_USER", 5, minimum=1)
NEXUS_LOGIN_FAILURES_PER_ADDRESS = env_int(
    "NEXUS_LOGIN_FAILURES_PER_ADDRESS", 20, minimum=1
)
NEXUS_LOGIN_LOCKOUT_SECONDS = env_int("NEXUS_LOGIN_LOCKOUT_SECONDS", 900, minimum=1)
NEXUS_API_KEY_FAILURES_PER_ADDRESS = env_int(
    "NEXUS_API_KEY_FAILURES_PER_ADDRESS", 20, minimum=1
)
NEXUS_API_KEY_FAILURE_WINDOW_SECONDS = env_int(
    "NEXUS_API_KEY_FAILURE_WINDOW_SECONDS", 60, minimum=1
)

# --- Celery -------------------------------------------------------------------


def _broker_url() -> tuple[str, dict[str, object]]:
    url = env_str("CELERY_BROKER_URL", "filesystem://")
    scheme = urlparse(url).scheme
    if scheme not in {"filesystem", "redis", "rediss", "amqp", "memory"}:
        raise ImproperlyConfigured(
            "CELERY_BROKER_URL must be filesystem://, redis://, rediss:// or amqp://; "
            f"got {url!r}."
        )
    if scheme in {"redis", "rediss"}:
        # Give up connecting after 2 s (the OS default is minutes): a web request
        # that enqueues follow-up work must not hang on an unreachable broker.
        return url, {"socket_connect_timeout": 2}
    if scheme != "filesystem":
        return url, {}
    folders = {
        key: DATA_DIR / "broker" / sub
        for key, sub in (
            ("data_folder_in", "queue"),
            ("data_folder_out", "queue"),
            ("processed_folder", "processed"),
            ("control_folder", "control"),
        )
    }
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    options: dict[str, object] = {key: str(path) for key, path in folders.items()}
    options["store_processed"] = False
    return url, options


CELERY_BROKER_URL, CELERY_BROKER_TRANSPORT_OPTIONS = _broker_url()
CELERY_RESULT_BACKEND = None
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_TASK_SOFT_TIME_LIMIT = 50
CELERY_TASK_TIME_LIMIT = 60
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
# Periodic tasks. Each run "expires" when a newer one is due anyway, so a worker that
# was down does not work through a backlog of stale runs. Sub-minute intervals are
# timedeltas (crontab cannot express them); daily work is a crontab.
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    # Period rollover, expired reservations, drift in cached budget totals.
    "budget-reconcile-all": {
        "task": "routing.budget_reconcile_all",
        "schedule": timedelta(seconds=NEXUS_BUDGET_RECONCILE_INTERVAL_SECONDS),
        "options": {"expires": NEXUS_BUDGET_RECONCILE_INTERVAL_SECONDS},
    },
    # Health, latency, error rate and served models of every enabled backend.
    "backend-probe-all": {
        "task": "routing.backend_probe_all",
        "schedule": timedelta(seconds=NEXUS_HEALTH_PROBE_INTERVAL_SECONDS),
        "options": {"expires": NEXUS_HEALTH_PROBE_INTERVAL_SECONDS},
    },
    # Usage reports summed into the daily spend rollup (GET /api/v1/spend/).
    "spend-rollup": {
        "task": "routing.spend_rollup",
        "schedule": timedelta(seconds=NEXUS_SPEND_ROLLUP_INTERVAL_SECONDS),
        "options": {"expires": NEXUS_SPEND_ROLLUP_INTERVAL_SECONDS},
    },
    # Budget thresholds crossed this period: create each alert once, send its webhook.
    "budget-alerts-check": {
        "task": "routing.budget_alerts_check",
        "schedule": timedelta(seconds=NEXUS_BUDGET_ALERT_CHECK_INTERVAL_SECONDS),
        "options": {"expires": NEXUS_BUDGET_ALERT_CHECK_INTERVAL_SECONDS},
    },
    # PostgreSQL: create decision partitions ahead, drop (or detach) expired ones;
    # hourly at :07 (a no-op that says so on SQLite).
    "decision-partitions-maintain": {
        "task": "routing.decision_partitions_maintain",
        "schedule": crontab(minute="7"),
        "options": {"expires": 60 * 60},
    },
    # Delete decisions past NEXUS_DECISION_RETENTION_DAYS, daily at 03:17 UTC.
    "decision-prune-expired": {
        "task": "routing.decision_prune_expired",
        "schedule": crontab(hour="3", minute="17"),
        "options": {"expires": 6 * 60 * 60},
    },
}
