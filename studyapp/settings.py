"""Settings for CollabStudy, driven entirely by environment variables (see .env.example).

With nothing configured the app runs on embedded defaults: SQLite, an in-memory channel layer,
eager Celery tasks and the offline model backend. Setting ``DATABASE_URL`` and ``REDIS_URL``
switches to PostgreSQL, the Redis channel layer and a Redis Celery broker.
"""

import re
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from studyapp.env import DEVELOPMENT_SECRET_KEY, env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", default=False)
# Sessions and the participants' socket tokens are signed with it. Commands that sign nothing
# (makemigrations, check) run on the development key; the server refuses it with DEBUG off
# (studyapp/asgi.py).
SECRET_KEY = env_str("SECRET_KEY", "") or DEVELOPMENT_SECRET_KEY
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "axes",
    "django_ratelimit",
    "studyapp.studies",
    "studyapp.participants",
    "studyapp.writing",
    "studyapp.feedback",
    "studyapp.dashboards",
    "studyapp.exports",
    "studyapp.sidebyside",
    "studyapp.scoring",
    "studyapp.payments",
    "studyapp.erasure",
    "studyapp.simulation",
]

MIDDLEWARE = [
    "studyapp.operations.middleware.probes_middleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "studyapp.framing.FrameAncestorsMiddleware",
    "studyapp.dbunavailable.DatabaseUnavailableMiddleware",
    "axes.middleware.AxesMiddleware",
]
# /metrics answers only a scraper that sends this bearer token; empty turns it off.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
X_FRAME_OPTIONS = env_str("X_FRAME_OPTIONS", "DENY")
# Origins allowed to show the study in an iframe; MTurk needs
# "https://worker.mturk.com,https://workersandbox.mturk.com" (and HTTPS for this site).
FRAME_ANCESTORS = env_list("FRAME_ANCESTORS")

ROOT_URLCONF = "studyapp.urls"
ASGI_APPLICATION = "studyapp.asgi.application"

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
            ]
        },
    }
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"), conn_max_age=0
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default: writers queue for the lock (up to 20 s) instead of failing at once.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    )
DB_POOL_MAX_SIZE = env_int("DB_POOL_MAX_SIZE", 16)
# How long a request waits for a PostgreSQL connection before it is answered 503
# (studyapp/dbunavailable.py): while the database is down, pages fail at once, not after 30 s.
DB_CONNECT_TIMEOUT = max(2, env_int("DB_CONNECT_TIMEOUT", 3))
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = DB_CONNECT_TIMEOUT
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and DB_POOL_MAX_SIZE > 0:
    # A psycopg pool per process: the socket's database calls run in worker threads, and
    # opening a PostgreSQL connection for each one cost more than the query under load.
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": DB_POOL_MAX_SIZE,
        "timeout": DB_CONNECT_TIMEOUT,
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env_bool(
    "DB_PREPARED_STATEMENTS", default=True
):
    # The statements every chat message runs are prepared once per connection
    # (studyapp/realtime/fastsql.py). The threshold is for everything else: Django binds
    # parameters on the client, so its queries rarely repeat as text and are in effect never
    # prepared. Set DB_PREPARED_STATEMENTS=0 behind a pooler that cannot keep prepared
    # statements (PgBouncer in transaction mode before 1.21).
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 100
# Where each ASGI process runs the chat's database calls (studyapp/realtime/dbcalls.py), on
# PostgreSQL: in this many worker processes of its own, or, with 0, in WRITING_DB_THREADS
# threads, which take the GIL from the event loop that relays the replies. SQLite uses one
# thread.
WRITING_DB_PROCESSES = max(0, env_int("WRITING_DB_PROCESSES", 1))
WRITING_DB_THREADS = max(1, env_int("WRITING_DB_THREADS", 2))
# The hand-written pieces of the real-time path, each kept only for a gain measured side by side
# with the library it replaces (bench/README.md, Hand-written pieces); off, the library runs.
# Worker processes reached over a pipe of their own, or concurrent.futures.ProcessPoolExecutor.
WRITING_DB_PIPE = env_bool("WRITING_DB_PIPE", default=True)
# The send path's statements built once and prepared (studyapp/realtime/fastsql.py), or the ORM.
WRITING_FAST_SQL = env_bool("WRITING_FAST_SQL", default=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # channels_redis polls with a 5 s BZPOPMIN; redis-py's own 5 s default read timeout
            # would end an idle socket's receive with TimeoutError (and the consumer with it).
            "CONFIG": {
                # redis-py's pool refuses a 101st connection. Replies no longer travel through
                # the channel layer (studyapp/realtime/framebus.py); a larger cap costs nothing.
                "hosts": [{"address": REDIS_URL, "socket_timeout": 30, "max_connections": 1024}],
                "capacity": 1000,
                "expiry": 60,
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Counters of the per-address limits below live in this cache: Redis, shared by every process,
# or with no Redis (`make run`, one process) in memory.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "collabstudy",
            "OPTIONS": {"socket_timeout": 2, "socket_connect_timeout": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# django-ratelimit warns of every cache but memcached and django-redis; Django's own RedisCache
# increments atomically too. Its in-memory cache is per process, which `make run`'s one is.
SILENCED_SYSTEM_CHECKS = ["django_ratelimit.W001"]
if not REDIS_URL:
    SILENCED_SYSTEM_CHECKS.append("django_ratelimit.E003")

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or None
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_DEFAULT_QUEUE = "default"
# Background work: named queues (a worker runs `-Q default,exports,scoring,maintenance`) and the
# periodic jobs, all declared here. Exports are long and few; scoring waits on a model server;
# maintenance must never queue behind either.
CELERY_TASK_ROUTES = {
    # Deleting old export files must not wait behind a long export.
    "exports.expire_files": {"queue": "maintenance"},
    "exports.*": {"queue": "exports"},
    "scoring.*": {"queue": "scoring"},
    "participants.*": {"queue": "maintenance"},
    "payments.*": {"queue": "maintenance"},
}
CELERY_BEAT_SCHEDULE = {
    "time-out-abandoned-participations": {
        "task": "participants.time_out_abandoned",
        "schedule": 60.0,
    },
    "score-finished-documents": {
        "task": "scoring.score_pending",
        "schedule": 300.0,
    },
    "expire-export-files": {
        "task": "exports.expire_files",
        "schedule": 3600.0,
    },
    "import-prolific-submissions": {
        "task": "payments.prolific_import",
        "schedule": 600.0,
    },
}

# Researchers' logins are throttled (django-axes, in the database): after LOGIN_FAILURE_LIMIT
# wrong passwords for one username from one address, that pair is refused (429) for
# LOGIN_LOCKOUT_MINUTES, or until `manage.py axes_reset`. LOGIN_THROTTLE=0 turns it off.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED = env_bool("LOGIN_THROTTLE", default=True)
AXES_FAILURE_LIMIT = max(1, env_int("LOGIN_FAILURE_LIMIT", 5))
AXES_COOLOFF_TIME = timedelta(minutes=max(1, env_int("LOGIN_LOCKOUT_MINUTES", 15)))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Only failed attempts are kept, and nothing about them is logged (the logs carry no addresses).
AXES_DISABLE_ACCESS_LOG = True
AXES_VERBOSE = False

# Per-address limits on participants (studyapp/clientlimits.py, django-ratelimit): entry links
# opened, consent forms sent and writing sockets opened from one client address, as
# django-ratelimit rates ("30/10m": 30 per 10 minutes). An empty value turns that limit off,
# RATE_LIMITS=0 all of them. The address is the one uvicorn gives the app (behind a proxy: set
# FORWARDED_ALLOW_IPS to the proxy's address) and is only ever counted as a keyed hash.
_RATE = re.compile(r"^\d+/\d*[smhd]$")


def _rate(name: str, default: str) -> str:
    value = env_str(name, default).strip()
    if value and not _RATE.match(value):
        raise ImproperlyConfigured(f"{name} must be a rate such as 30/10m, not {value!r}")
    return value


RATELIMIT_ENABLE = env_bool("RATE_LIMITS", default=True)
RATELIMIT_FAIL_OPEN = True  # a cache outage must not lock every participant out
ENTRY_RATE_LIMIT = _rate("ENTRY_RATE_LIMIT", "30/10m")
CONSENT_RATE_LIMIT = _rate("CONSENT_RATE_LIMIT", "10/10m")
SOCKET_RATE_LIMIT = _rate("SOCKET_RATE_LIMIT", "60/m")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
# collectstatic writes a gzip copy of every text file beside it (and a Brotli one when the brotli
# package is installed); WhiteNoise serves it to browsers that accept it. Not the manifest
# variant: the servers the tests and benchmarks start have no collectstatic step.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
LOGIN_URL = "/admin/login/"

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
# Production (DEBUG off) is served over HTTPS only; each protection can be turned off by its
# environment variable (a local HTTP test server does).
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", default=not DEBUG)
if FRAME_ANCESTORS:  # a framed page only gets its cookies back when they are SameSite=None
    SESSION_COOKIE_SAMESITE = CSRF_COOKIE_SAMESITE = "None"
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
# Behind a TLS-terminating proxy: the header it sets and its value, e.g. "X-Forwarded-Proto,https"
# (the proxy must overwrite that header on every request, or clients could claim HTTPS).
_PROXY_SSL_HEADER = env_list("SECURE_PROXY_SSL_HEADER")
if _PROXY_SSL_HEADER:
    if len(_PROXY_SSL_HEADER) != 2:
        raise ImproperlyConfigured("SECURE_PROXY_SSL_HEADER must be NAME,VALUE")
    _name = "HTTP_" + _PROXY_SSL_HEADER[0].upper().replace("-", "_").removeprefix("HTTP_")
    SECURE_PROXY_SSL_HEADER = (_name, _PROXY_SSL_HEADER[1])
# Every page's Content-Security-Policy (django-csp): scripts from this site or inline with the
# request's nonce; inline styles stay allowed because the dashboards' figures inject them.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, "'unsafe-inline'"],
        "img-src": [SELF, "data:", "blob:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
    }
}

# Study runtime knobs.
PARTICIPANT_TOKEN_MAX_AGE = env_int("PARTICIPANT_TOKEN_MAX_AGE", 6 * 3600)
MAX_MESSAGE_CHARS = env_int("MAX_MESSAGE_CHARS", 4000)
MAX_DOCUMENT_CHARS = env_int("MAX_DOCUMENT_CHARS", 50_000)
# Document saves past either bound update the latest stored version instead of adding one, so a
# flood of saves stores a bounded history and still keeps the last text (docs/protocol.md).
DOC_VERSIONS_PER_MINUTE = max(1, env_int("DOC_VERSIONS_PER_MINUTE", 20))
MAX_STORED_DOCUMENT_CHARS = env_int("MAX_STORED_DOCUMENT_CHARS", 10 * MAX_DOCUMENT_CHARS)
MAX_WS_FRAME_BYTES = env_int("MAX_WS_FRAME_BYTES", 256 * 1024)
# Objects and lists a client frame may nest (the chat's own frames need 3).
MAX_FRAME_DEPTH = max(3, env_int("MAX_FRAME_DEPTH", 32))
OFFLINE_TOKENS_PER_SECOND = env_int("OFFLINE_TOKENS_PER_SECOND", 40)
RELAY_FLUSH_MS = max(1, env_int("RELAY_FLUSH_MS", 100))
# The model calls' HTTP/1.1 client of collab_models/http1.py, or httpx (collab_models reads the
# same variable itself when Django is not set up).
COLLAB_MODELS_FAST_HTTP = env_bool("COLLAB_MODELS_FAST_HTTP", default=True)
# A socket's next frames sent in the generation's own turn of the event loop
# (studyapp/realtime/eagerstart.py), or in a task of their own (asyncio.create_task).
RELAY_EAGER_START = env_bool("RELAY_EAGER_START", default=True)
# The relay's Redis scripts run on its own lean connection ("pipe") or through redis-py.
RELAY_SCRIPT_CLIENT = env_str("RELAY_SCRIPT_CLIENT", "pipe")
if RELAY_SCRIPT_CLIENT not in ("pipe", "redis-py"):
    raise ImproperlyConfigured(
        f"RELAY_SCRIPT_CLIENT must be pipe or redis-py, not {RELAY_SCRIPT_CLIENT!r}"
    )
# A relay script call Redis has not answered in this many seconds fails, and its connection is
# opened again.
REDIS_CALL_TIMEOUT_S = max(1, env_int("REDIS_CALL_TIMEOUT_S", 5))
# How long a streaming reply's in-flight marker lives in Redis unrefreshed: a server process that
# died is noticed this long after its last frame, and its reply then ends as a failed turn.
GENERATION_TTL_S = max(3, env_int("GENERATION_TTL_S", 30))
# On SIGTERM, how long an ASGI process lets the replies it streams finish before it stops the
# rest (each is stored as a failed turn the participant can retry).
SHUTDOWN_DRAIN_S = max(0, env_int("SHUTDOWN_DRAIN_S", 20))
# How long a reply that has ended is retried into an unreachable database before it is given up
# (the participant then gets turn_error); keep it well under the claim on a lost reply (600 s).
TURN_STORE_RETRY_S = max(0, env_int("TURN_STORE_RETRY_S", 120))
# How long a socket's `send` waits out Redis being away before it is refused for now
# (`unavailable` with `retry_after`: the page sends it again by itself).
SEND_REDIS_WAIT_S = max(0, env_int("SEND_REDIS_WAIT_S", 12))
EXPORT_DIR = Path(env_str("EXPORT_DIR", str(BASE_DIR / "exports")))
# Export archives hold participant data: they are deleted this many days after they were written
# (the periodic task exports.expire_files; 0 keeps them forever).
EXPORT_RETENTION_DAYS = max(0, env_int("EXPORT_RETENTION_DAYS", 30))
# A running export that has not reported progress for this long lost its worker: it may be
# claimed again by a redelivered message or retried from the dashboard.
EXPORT_JOB_STALE_S = max(60, env_int("EXPORT_JOB_STALE_S", 600))
# Prolific's API (optional): without a token, submissions are reviewed and bonuses paid by hand.
PROLIFIC_API_TOKEN = env_str("PROLIFIC_API_TOKEN", "")
PROLIFIC_API_URL = env_str("PROLIFIC_API_URL", "https://api.prolific.com")
PROLIFIC_API_TIMEOUT = float(env_int("PROLIFIC_API_TIMEOUT_S", 30))
# Prolific pays a bulk bonus "in the following minutes": a sent batch whose bonuses are still
# missing from every submission after this long is taken as not paid and may be paid again.
PROLIFIC_PAY_SETTLE_S = max(0, env_int("PROLIFIC_PAY_SETTLE_S", 6 * 3600))

# Every handler drops client addresses and redacts participant ids and tokens in query strings
# (studyapp/logprivacy.py), as the consent promises; uvicorn's own loggers are routed through
# them too, keeping uvicorn's formats and the levels its --log-level gives them.
_PRIVATE = ["privacy"]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"privacy": {"()": "studyapp.logprivacy.PrivacyFilter"}},
    "formatters": {
        # The level leads each line, so an operator (or a test) can tell a warning from an error.
        "plain": {"format": "%(levelname)s %(name)s %(message)s"},
        "uvicorn": {"()": "uvicorn.logging.DefaultFormatter", "fmt": "%(levelprefix)s %(message)s"},
        "uvicorn_access": {
            "()": "uvicorn.logging.AccessFormatter",
            "fmt": '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s',
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": _PRIVATE, "formatter": "plain"},
        "uvicorn": {"class": "logging.StreamHandler", "filters": _PRIVATE, "formatter": "uvicorn"},
        "uvicorn_access": {
            "class": "logging.StreamHandler",
            "filters": _PRIVATE,
            "formatter": "uvicorn_access",
            "stream": "ext://sys.stdout",
        },
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "uvicorn": {"handlers": ["uvicorn"], "propagate": False},
        "uvicorn.error": {"handlers": [], "propagate": True},
        "uvicorn.access": {"handlers": ["uvicorn_access"], "propagate": False},
        # httpx logs every model call at INFO (COLLAB_MODELS_FAST_HTTP=0): a line per reply.
        "httpx": {"level": "WARNING"},
    },
}
