"""Settings, all from the environment (see .env.example for every name).

The embedded default needs no configuration at all: SQLite under var/, the django-q2 ORM
broker, the sandbox CRM. Production sets DATABASE_URL, REDIS_URL, SECRET_KEY and DEBUG=false.
"""

import ipaddress
import os
from pathlib import Path
import secrets

from django.core.exceptions import ImproperlyConfigured
import environ

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")

# Local state for the embedded default: the SQLite file and generated local secrets.
VAR_DIR = Path(env.str("CRMSYNC_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

# Local runs are the default (as in healthchecks); production sets DEBUG=false and its secrets.
DEBUG = env.bool("DEBUG", default=True)


def _local_secret(name: str, make) -> str:
    """A secret generated once into var/ so local runs survive restarts without configuration."""
    path = VAR_DIR / name
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


if env.str("SECRET_KEY", default=""):
    SECRET_KEY = env.str("SECRET_KEY")
elif DEBUG:
    SECRET_KEY = _local_secret("secret_key", lambda: secrets.token_urlsafe(50))
else:
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")

# Fernet key(s) for credentials at rest. Comma-separated: the first encrypts, all decrypt,
# so a key can be rotated by prepending a new one.
if env.str("CRMSYNC_ENCRYPTION_KEYS", default=""):
    CRMSYNC_ENCRYPTION_KEYS = env.list("CRMSYNC_ENCRYPTION_KEYS")
elif DEBUG:
    CRMSYNC_ENCRYPTION_KEYS = [_local_secret("encryption_key", _fernet_key)]
else:
    raise ImproperlyConfigured("CRMSYNC_ENCRYPTION_KEYS must be set when DEBUG is off.")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
PORT = env.int("PORT", default=8000)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    # The stages, in the order data flows through them (docs/architecture.md).
    "ingestion",
    "mapping",
    "leads",
    "delivery",
    "crmsync",
    "monitoring",  # alerts and the dashboard, on top of every stage
    "sandbox",
    "audit",
]

MIDDLEWARE = [
    # Outermost: every answer (the JSON errors below included) carries X-Request-ID, and every
    # line logged while it is made carries the request's ID.
    "audit.logging.RequestIdMiddleware",
    # First, so it sees every answer under /api/ (a bad Host, no route, a crash) and makes it JSON.
    "ingestion.middleware.ApiJsonErrors",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "crmsync.urls"
WSGI_APPLICATION = "crmsync.wsgi.application"
ASGI_APPLICATION = "crmsync.asgi.application"

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

# --- Database -------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'crmsync.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the one writer; synchronous=FULL makes a commit durable
    # before we answer 202; IMMEDIATE takes the write lock at BEGIN so two writers queue on
    # busy_timeout instead of failing with "database is locked" on lock upgrade.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;",
        }
    )
    # Tests that start real web and worker processes need a file they can all open.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"{env.str('CRMSYNC_TEST_DB', default='test')}.sqlite3")}
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if env.str("CRMSYNC_TEST_DB", default=""):
        DATABASES["default"]["TEST"] = {"NAME": env.str("CRMSYNC_TEST_DB")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Queue (django-q2) -----------------------------------------------------------------------
# The queue is a doorbell: tasks carry IDs only, and the sweeper finds anything a lost message
# left behind, so django-q2's own retries stay minimal (max_attempts=1) and are never used as
# business retries. retry > timeout, as django-q2 requires, so a slow task is not run twice.
REDIS_URL = env.str("REDIS_URL", default="")
Q_CLUSTER = {
    "name": env.str("Q_CLUSTER_NAME", default="crmsync"),
    "workers": env.int("Q_WORKERS", default=2),
    "timeout": env.int("Q_TIMEOUT", default=120),
    "retry": env.int("Q_TIMEOUT", default=120) + 60,
    "max_attempts": 1,
    "catch_up": False,
    "ack_failures": True,
    "save_limit": 1000,
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["poll"] = 0.2

# --- Pipeline --------------------------------------------------------------------------------
CRMSYNC = {
    # A claimed push job whose worker died is re-dispatched once its lease has expired. A live
    # worker renews the lease every third of it while it works (delivery/leases.py).
    "PUSH_LEASE_SECONDS": env.int("CRMSYNC_PUSH_LEASE_SECONDS", default=15),
    # `manage.py worker` exits this long at most after SIGTERM: work in flight finishes, or is
    # handed back without counting an attempt if its request has not gone out (one that has
    # stays leased until it can no longer land: delivery/leases.py). Below docker's
    # stop_grace_period (10 s).
    "WORKER_STOP_GRACE_SECONDS": env.float("CRMSYNC_WORKER_STOP_GRACE_SECONDS", default=8.0),
    # Each worker process writes its heartbeat this often; /readyz fails when the newest is
    # older than the max age (no worker is running, or none can reach the database).
    "WORKER_HEARTBEAT_SECONDS": env.float("CRMSYNC_WORKER_HEARTBEAT_SECONDS", default=5.0),
    "WORKER_HEARTBEAT_MAX_AGE_SECONDS": env.float("CRMSYNC_WORKER_HEARTBEAT_MAX_AGE_SECONDS", default=30.0),
    # The alert rules are evaluated by the worker's schedule every minute. So that a stopped
    # worker is still told (the heartbeat alert), each web process checks this often whether
    # any evaluation ran within the stale age, and if none did, one of them evaluates
    # (monitoring/watchdog.py). 0 turns the web's watch off.
    "ALERTS_WATCHDOG_SECONDS": env.float("CRMSYNC_ALERTS_WATCHDOG_SECONDS", default=60.0),
    "ALERTS_STALE_SECONDS": env.float("CRMSYNC_ALERTS_STALE_SECONDS", default=180.0),
    # Two-way sync (README, "Two-way sync"): each poll re-reads this much before its watermark
    # (CRM search lags its writes by seconds), holds its destination for this long per page, and
    # checks for deleted records this often.
    "SYNC_POLL_OVERLAP_SECONDS": env.int("CRMSYNC_SYNC_POLL_OVERLAP_SECONDS", default=30),
    "SYNC_POLL_LEASE_SECONDS": env.int("CRMSYNC_SYNC_POLL_LEASE_SECONDS", default=60),
    "SYNC_DELETIONS_EVERY_SECONDS": env.int("CRMSYNC_SYNC_DELETIONS_EVERY_SECONDS", default=300),
    "SYNC_MAX_WAIT_SECONDS": env.float("CRMSYNC_SYNC_MAX_WAIT_SECONDS", default=5.0),
    "SYNC_MAX_HINTS": 10_000,
    # Pages one poll task reads before handing over to the next (a task must end within
    # django-q2's timeout); an unfinished poll is queued again at once.
    "SYNC_MAX_PAGES_PER_POLL": env.int("CRMSYNC_SYNC_MAX_PAGES_PER_POLL", default=25),
    "PUSH_MAX_ATTEMPTS": env.int("CRMSYNC_PUSH_MAX_ATTEMPTS", default=8),
    "PUSH_BACKOFF_BASE_SECONDS": env.float("CRMSYNC_PUSH_BACKOFF_BASE_SECONDS", default=10.0),
    "PUSH_BACKOFF_CAP_SECONDS": env.float("CRMSYNC_PUSH_BACKOFF_CAP_SECONDS", default=3600.0),
    # How often each worker looks for new submissions to queue.
    "POLL_SECONDS": env.float("CRMSYNC_POLL_SECONDS", default=0.5),
    # A claimed submission still "received" after this long is queued again.
    "SWEEP_STALE_SECONDS": env.int("CRMSYNC_SWEEP_STALE_SECONDS", default=60),
    "HTTP_CONNECT_TIMEOUT": env.float("CRMSYNC_HTTP_CONNECT_TIMEOUT", default=5.0),
    "HTTP_READ_TIMEOUT": env.float("CRMSYNC_HTTP_READ_TIMEOUT", default=30.0),
    # A worker waits this long at most for a slot of a destination's rate budget; beyond it the
    # jobs go back to pending until the slot frees up (no attempt is counted).
    "RATE_MAX_WAIT_SECONDS": env.float("CRMSYNC_RATE_MAX_WAIT_SECONDS", default=15.0),
    # Salesforce sends no Retry-After with REQUEST_LIMIT_EXCEEDED; wait this long instead.
    "SALESFORCE_RETRY_AFTER_SECONDS": env.float("CRMSYNC_SALESFORCE_RETRY_AFTER_SECONDS", default=60.0),
    # Stop calling Salesforce when Sforce-Limit-Info shows this share of the daily allocation used.
    "SALESFORCE_USAGE_CEILING": env.float("CRMSYNC_SALESFORCE_USAGE_CEILING", default=0.95),
    # SyncLog keeps what was sent and received per record; personal data in it is masked unless
    # this is false.
    "SYNC_LOG_REDACT": env.bool("CRMSYNC_SYNC_LOG_REDACT", default=True),
    # How long another process may use a source or credential it cached after it changed.
    "INTAKE_CACHE_SECONDS": env.int("CRMSYNC_INTAKE_CACHE_SECONDS", default=10),
    # How long a sender's idempotency key is remembered (then a scheduled job forgets it).
    "IDEMPOTENCY_RETENTION_DAYS": env.int("CRMSYNC_IDEMPOTENCY_RETENTION_DAYS", default=7),
}

# Throttle counters must be shared by every web process: Redis when configured, else a table.
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                          "KEY_PREFIX": "crmsync"}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "crmsync_cache"}}

# The sandbox CRM answers under /sandbox/; on by default only for local (DEBUG) runs.
SANDBOX_ENABLED = env.bool("SANDBOX_ENABLED", default=DEBUG)
SANDBOX_HUBSPOT_TOKEN = env.str("SANDBOX_HUBSPOT_TOKEN", default="sandbox-hubspot-token")
# The sandbox's OAuth apps: HubSpot's refresh-token grant and Salesforce's connected app.
SANDBOX_HUBSPOT_CLIENT_ID = env.str("SANDBOX_HUBSPOT_CLIENT_ID", default="sandbox-hubspot-client-id")
SANDBOX_HUBSPOT_CLIENT_SECRET = env.str("SANDBOX_HUBSPOT_CLIENT_SECRET", default="sandbox-hubspot-client-secret")
SANDBOX_HUBSPOT_REFRESH_TOKEN = env.str("SANDBOX_HUBSPOT_REFRESH_TOKEN", default="sandbox-hubspot-refresh-token")
SANDBOX_SALESFORCE_CLIENT_ID = env.str("SANDBOX_SALESFORCE_CLIENT_ID", default="sandbox-salesforce-client-id")
SANDBOX_SALESFORCE_CLIENT_SECRET = env.str("SANDBOX_SALESFORCE_CLIENT_SECRET", default="sandbox-salesforce-client-secret")

# --- Metrics (/metrics, core/metrics.py) ---------------------------------------------------
# Every process writes its counts under this directory and a scrape adds them up (Prometheus
# multiprocess mode); prometheus_client reads the variable when crmsync first imports it.
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default=str(VAR_DIR / "metrics"))
Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = PROMETHEUS_MULTIPROC_DIR
# Who may scrape: a request with "Authorization: Bearer <token>", or from one of these addresses
# or networks (comma-separated). Neither set: nobody (`make run` allows the loopback addresses).
CRMSYNC_METRICS_TOKEN = env.str("CRMSYNC_METRICS_TOKEN", default="")


def _networks(name: str, values: list[str]) -> list:
    try:
        return [ipaddress.ip_network(value, strict=False) for value in values if value]
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc} (give IP addresses or networks such as 10.0.0.0/8).") from None


CRMSYNC_METRICS_ALLOWED_IPS = _networks("CRMSYNC_METRICS_ALLOWED_IPS", env.list("CRMSYNC_METRICS_ALLOWED_IPS", default=[]))

# --- HTTP and admin --------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "ingestion.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "crmsync intake API",
    "DESCRIPTION": "Send leads from web forms and webhooks. Every refusal is {\"error\": code, \"detail\": text}.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# The intake reads bodies itself, with each source's own limit (Source.max_body_bytes).
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # filled by collectstatic in production; whitenoise wants it present
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "monitoring.staticfiles.PlotlyFinder",  # the dashboard's chart library, from the plotly package
]
# Links in alert notifications start with this (e.g. https://crmsync.example.com); empty: paths only.
CRMSYNC_PUBLIC_URL = env.str("CRMSYNC_PUBLIC_URL", default="")
# Alert emails: one URL, e.g. smtp+tls://user:password@smtp.example.com:587 (django-environ's
# email_url). `make run` prints them on the console unless told otherwise.
vars().update(env.email_url("EMAIL_URL", default="consolemail://" if DEBUG else "smtp://localhost:25"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="crmsync@localhost")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "audit.logging.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "django_q": {"level": env.str("Q_LOG_LEVEL", default="WARNING")},
    },
}
