"""Settings for the conversation dashboard: one file, read from the environment with django-environ.

Every variable is listed with a comment in `.env.example`. Values come from the process environment,
then from a `.env` file at the repository root if there is one. Production secrets have no defaults:
with `DEBUG` off, a missing `SECRET_KEY` stops the process at start with a message that names it.
"""

import re
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# The process environment wins over .env; the test settings turn .env off to stay reproducible.
if env.bool("READ_DOT_ENV", default=True):
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

# A development key only when DEBUG is on; production must set its own.
if DEBUG:
    SECRET_KEY = env.str("SECRET_KEY", default="insecure-development-key-only-for-debug-runs")
else:
    SECRET_KEY = env.str("SECRET_KEY", default="")
    if not SECRET_KEY:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it in the environment or in .env (see .env.example); "
            "it is only optional when DEBUG=true."
        )

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # The Django admin at /admin/, for superusers only (dashboard_project/admin.py).
    "dashboard_project.admin.DashboardAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "axes",
    # The second factor (conversations/twofactor): TOTP authenticator apps and recovery codes.
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    # The job engine (huey): `manage.py run_huey` runs conversations/tasks.py (see the Procfile).
    "huey.contrib.djhuey",
    "conversations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Marks answers produced while the cache was unavailable (X-Dashboard-Degraded, the banner).
    "conversations.middleware.CacheStatusMiddleware",
    # A database that is down or does not answer: a clear 503, never a 500.
    "conversations.middleware.DatabaseUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # request.user.is_verified(): whether this session passed the second factor (access.py).
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Records page views and searches by URL name (conversations/audit/middleware.py): after
    # the user and htmx's headers are known, around every view.
    "conversations.audit.middleware.AuditMiddleware",
    # One deadline for every upstream read of a request (UPSTREAM_PAGE_BUDGET_SECONDS).
    "conversations.client.budget.PageBudgetMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "dashboard_project.urls"

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
                "django.template.context_processors.csp",
                "conversations.context_processors.dashboard",
                "conversations.audit.context.admin_contact",
            ],
        },
    },
]

WSGI_APPLICATION = "dashboard_project.wsgi.application"

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
# A persistent connection is checked before it is reused, so the first request after the database
# came back does not fail on a connection that died meanwhile.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASE_CONNECT_TIMEOUT = env.int("DATABASE_CONNECT_TIMEOUT", default=3)
DATABASE_STATEMENT_TIMEOUT_MS = env.int("DATABASE_STATEMENT_TIMEOUT_MS", default=5000)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend with every wait on the server bounded (dashboard_project/postgresql): a
    # database that is down or hung answers a quick 503, never a worker stuck for minutes.
    DATABASES["default"]["ENGINE"] = "dashboard_project.postgresql"
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    _options.setdefault("connect_timeout", DATABASE_CONNECT_TIMEOUT)
    _server_options = f"-c statement_timeout={DATABASE_STATEMENT_TIMEOUT_MS}"
    _options["options"] = f"{_options.get('options', '')} {_server_options}".strip()
    # The client waits a little longer than the server's own statement timeout for any answer:
    # a live server cancels first (cleanly); a frozen one is given up on by the client.
    DATABASES["default"]["ANSWER_TIMEOUT"] = DATABASE_STATEMENT_TIMEOUT_MS / 1000 + 1
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several workers share the file (sessions, the cache): write-ahead logging lets readers go on
    # while one writes, IMMEDIATE transactions queue writers instead of failing them with
    # "database is locked", and a writer waits up to 5 s for its turn.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 5,
        }
    )

# The cache: upstream reads shared by every viewer, request coalescing, sessions' read-through
# copies. Every backend here is resilient (conversations/cachebackends.py): when it fails, pages
# go on without it (slower, marked degraded) and it is tried again CACHE_RETRY_SECONDS later.
# CACHE_URL wins; REDIS_URL is accepted as a shorthand for a Redis cache. Without either, the
# cache is a table in the default database, shared by the workers of a host (a per-process
# memory cache would make each worker read every upstream key itself).
_cache_url = env.str("CACHE_URL", default="") or env.str("REDIS_URL", default="")
_cache_options = {
    "RETRY_SECONDS": env.float("CACHE_RETRY_SECONDS", default=5.0),
}
_cache_prefix = env.str("CACHE_KEY_PREFIX", default="dashboard")
if _cache_url.startswith(("redis://", "rediss://")):
    CACHES = {
        "default": {
            "BACKEND": "conversations.cachebackends.ResilientRedisCache",
            "LOCATION": _cache_url,
            "KEY_PREFIX": _cache_prefix,
            "OPTIONS": _cache_options
            | {"SOCKET_TIMEOUT": env.float("CACHE_SOCKET_TIMEOUT", default=0.5)},
        }
    }
elif _cache_url:
    CACHES = {"default": env.cache_url_config(_cache_url)}
else:
    CACHES = {
        "default": {
            "BACKEND": "conversations.cachebackends.ResilientDatabaseCache",
            "LOCATION": "dashboard_cache",  # created by `migrate` (conversations/migrations)
            "KEY_PREFIX": _cache_prefix,
            # Room for the upstream reads of a busy dashboard; past it a third is culled.
            "OPTIONS": _cache_options | {"MAX_ENTRIES": 5000},
        }
    }
CACHE_IS_REDIS = CACHES["default"]["BACKEND"].endswith("RedisCache")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "conversations:list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
# Whitenoise serves the static files: collected into STATIC_ROOT with hashed, compressed names
# (`make serve`), or straight from the apps' directories with no collectstatic step (`make run`).
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", default=False)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG or WHITENOISE_USE_FINDERS
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Security
# Secure defaults; the plain-HTTP demo (`make run`) turns the HTTPS-only ones off through .env vars.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
# Behind a TLS-terminating proxy, e.g. SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO,https
_proxy_header = env.list("SECURE_PROXY_SSL_HEADER", default=[])
SECURE_PROXY_SSL_HEADER = tuple(_proxy_header) if len(_proxy_header) == 2 else None
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
# Sessions live in the database. With Redis, they are read through it (written through to the
# database, so a Redis outage loses none: the resilient cache answers a miss and the database
# serves). When the cache is the database itself, a read-through copy would only double the reads.
SESSION_ENGINE = (
    "django.contrib.sessions.backends.cached_db"
    if CACHE_IS_REDIS
    else "django.contrib.sessions.backends.db"
)
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 3600)
X_FRAME_OPTIONS = "DENY"

# Remote images (conversations' and users' image_url, set by whoever uses the API) are shown only
# from these hosts, over https; any other is shown as its URL. Host names only, e.g.
# DASHBOARD_IMAGE_HOSTS=images.example.com,cdn.example.net
DASHBOARD_IMAGE_HOSTS = [
    host.strip().lower() for host in env.list("DASHBOARD_IMAGE_HOSTS", default=[])
]
DASHBOARD_IMAGE_HOSTS = [host for host in DASHBOARD_IMAGE_HOSTS if host]
_HOST_NAME = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
for _host in DASHBOARD_IMAGE_HOSTS:
    if not _HOST_NAME.match(_host):
        raise ImproperlyConfigured(
            f"DASHBOARD_IMAGE_HOSTS: {_host!r} is not a host name (no scheme, port, path or *)."
        )

# Content Security Policy (Django's built-in): no inline script, no eval, no third-party origin;
# images from this site and the https hosts of DASHBOARD_IMAGE_HOSTS only, as the templates.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, *(f"https://{host}" for host in DASHBOARD_IMAGE_HOSTS)],
    "connect-src": [CSP.SELF],
    "font-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

# --- Login throttling (django-axes): see conversations/login_throttle.py
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_MINUTES", default=15) / 60  # hours
# Per username and address; an address alone is locked out after AXES_IP_FAILURE_LIMIT failures
# across usernames (DatabaseHandlerWithAddressLimit).
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_IP_FAILURE_LIMIT = env.int("AXES_IP_FAILURE_LIMIT", default=20)
AXES_RESET_ON_SUCCESS = True
# Counted in the database, never the cache: login keeps working while Redis is down.
AXES_HANDLER = "conversations.login_throttle.DatabaseHandlerWithAddressLimit"
# The client's address behind this many trusted proxies (X-Forwarded-For); 0: REMOTE_ADDR.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
if TRUSTED_PROXY_COUNT < 0:
    raise ImproperlyConfigured("TRUSTED_PROXY_COUNT must be 0 or more.")
AXES_CLIENT_IP_CALLABLE = "conversations.login_throttle.client_address"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False

# --- The second factor (conversations/twofactor, access.py): TOTP and recovery codes (django-otp)
# Superusers always need one; with DASHBOARD_REQUIRE_2FA every staff user does. Anyone may add
# one, and then needs it at every login.
DASHBOARD_REQUIRE_2FA = env.bool("DASHBOARD_REQUIRE_2FA", default=False)
# The name authenticator apps show next to the account (e.g. to tell two deployments apart).
OTP_TOTP_ISSUER = env.str("DASHBOARD_2FA_ISSUER", default="Conversation dashboard")
# Wrong codes make the next try wait 1, 2, 4, 8... seconds (django-otp's own throttling, kept in
# the database per device, so it holds across sessions and processes).
OTP_TOTP_THROTTLE_FACTOR = 1
OTP_STATIC_THROTTLE_FACTOR = 1
# TOTP keys are not shown in the Django admin's device pages.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

# --- Who may see what (conversations/audit): the audit log, the admin, the lock-out page
# Record every look (page views, searches, exports, logins) in the audit log. Off only to
# measure what it costs (bench/audit.py).
DASHBOARD_AUDIT = env.bool("DASHBOARD_AUDIT", default=True)
# Days audit entries are kept; older ones are deleted hourly by the worker. 0 keeps them for ever.
AUDIT_RETENTION_DAYS = env.int("AUDIT_RETENTION_DAYS", default=365)
if AUDIT_RETENTION_DAYS < 0:
    raise ImproperlyConfigured("AUDIT_RETENTION_DAYS must be 0 (keep for ever) or more.")
# Who can help someone locked out or without access, as the pages should say it (e.g. "the IT
# desk, it@example.com"). Empty: "a superuser of this dashboard".
DASHBOARD_ADMIN_CONTACT = env.str("DASHBOARD_ADMIN_CONTACT", default="")


def _check_private_key(pem: str) -> None:
    """Fail at start, naming the setting, when the key cannot sign RS256 JWTs."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ImproperlyConfigured(
            "The key in VONAGE_PRIVATE_KEY_PATH or VONAGE_PRIVATE_KEY is not an unencrypted PEM "
            "RSA private key (the one Vonage gave you for the application)."
        )


# --- The upstream Conversation API
# With no VONAGE_APPLICATION_ID the dashboard runs on its embedded default, the local sandbox that
# `make run` starts (python -m sandbox) with a key pair in .sandbox/. With one, it runs on Vonage.
SANDBOX_APPLICATION_ID = "aaaaaaaa-bbbb-4ccc-8ddd-000000000001"
VONAGE_APPLICATION_ID = env.str("VONAGE_APPLICATION_ID", default="")
USING_SANDBOX = not VONAGE_APPLICATION_ID
# A production process (DEBUG off) without credentials is a mistake, not a demo: unless the
# sandbox is asked for explicitly (the test suite, `make check-deploy`), stop and say so.
if USING_SANDBOX and not DEBUG and not env.bool("DASHBOARD_SANDBOX", default=False):
    raise ImproperlyConfigured(
        "VONAGE_APPLICATION_ID is not set. Set it (with VONAGE_PRIVATE_KEY_PATH or "
        "VONAGE_PRIVATE_KEY; see .env.example), or run the demo on the sandbox with `make run` "
        "(or DEBUG=true, or DASHBOARD_SANDBOX=true)."
    )
if USING_SANDBOX:
    SANDBOX_PORT = env.int("SANDBOX_PORT", default=8001)
    VONAGE_APPLICATION_ID = SANDBOX_APPLICATION_ID
    VONAGE_API_BASE_URL = f"http://127.0.0.1:{SANDBOX_PORT}"
    VONAGE_PRIVATE_KEY_PATH = str(BASE_DIR / ".sandbox" / "private.pem")
    VONAGE_PRIVATE_KEY = ""
else:
    VONAGE_API_BASE_URL = env.str("VONAGE_API_BASE_URL", default="https://api.nexmo.com")
    VONAGE_PRIVATE_KEY_PATH = env.str("VONAGE_PRIVATE_KEY_PATH", default="")
    VONAGE_PRIVATE_KEY = env.str("VONAGE_PRIVATE_KEY", default="", multiline=True)
    if not (VONAGE_PRIVATE_KEY_PATH or VONAGE_PRIVATE_KEY):
        raise ImproperlyConfigured(
            "VONAGE_APPLICATION_ID is set but neither VONAGE_PRIVATE_KEY_PATH nor "
            "VONAGE_PRIVATE_KEY is: set one (see .env.example)."
        )
    if VONAGE_PRIVATE_KEY_PATH and not Path(VONAGE_PRIVATE_KEY_PATH).is_file():
        raise ImproperlyConfigured(
            f"VONAGE_PRIVATE_KEY_PATH names no readable file: {VONAGE_PRIVATE_KEY_PATH}"
        )
    _check_private_key(VONAGE_PRIVATE_KEY or Path(VONAGE_PRIVATE_KEY_PATH).read_text())
VONAGE_API_BASE_URL = VONAGE_API_BASE_URL.rstrip("/")
VONAGE_JWT_TTL_SECONDS = env.int("VONAGE_JWT_TTL_SECONDS", default=900)
UPSTREAM_CONNECT_TIMEOUT = env.float("UPSTREAM_CONNECT_TIMEOUT", default=3.05)
UPSTREAM_READ_TIMEOUT = env.float("UPSTREAM_READ_TIMEOUT", default=10.0)
# The whole budget for one read including its retries: a page never waits longer than this.
UPSTREAM_TOTAL_BUDGET = env.float("UPSTREAM_TOTAL_BUDGET", default=15.0)
UPSTREAM_MAX_RETRIES = env.int("UPSTREAM_MAX_RETRIES", default=2)
# How long a page waits for the API: past it the page renders with the last good data (or a panel
# that loads itself a moment later) while the read finishes in the background.
UPSTREAM_PAGE_BUDGET_SECONDS = env.float("UPSTREAM_PAGE_BUDGET_SECONDS", default=3.0)
# A response larger than this once decompressed is a bad response (gzip bombs, runaway lists).
UPSTREAM_MAX_BYTES = env.int("UPSTREAM_MAX_BYTES", default=8 * 1024 * 1024)
# However long a 429's Retry-After asks for, reads pause at most this long (one probe read every
# 10 s ends the pause early when the API answers again).
UPSTREAM_MAX_COOLDOWN_SECONDS = env.int("UPSTREAM_MAX_COOLDOWN_SECONDS", default=120)

# --- The dashboard
DASHBOARD_REFRESH_SECONDS = env.int("DASHBOARD_REFRESH_SECONDS", default=5)
if DASHBOARD_REFRESH_SECONDS < 1:
    raise ImproperlyConfigured("DASHBOARD_REFRESH_SECONDS must be at least 1.")

# How long an upstream read is reused from the cache (whole seconds); the last good copy is kept
# longer so a failing upstream still shows (stale) data. By default one refresh interval: viewers
# polling every DASHBOARD_REFRESH_SECONDS then share one upstream read per endpoint per interval
# (a shorter lifetime re-reads every key more often than anyone refreshes: 3 s against a 5 s
# refresh read each key every 3 s).
UPSTREAM_CACHE_SECONDS = env.int("UPSTREAM_CACHE_SECONDS", default=DASHBOARD_REFRESH_SECONDS)
UPSTREAM_STALE_SECONDS = env.int("UPSTREAM_STALE_SECONDS", default=600)

# --- The event store (issue 9): signed RTC webhooks in, history kept, gaps filled from the API
# The account's signature secret (Vonage dashboard, API settings). Without it POST /webhooks/rtc
# refuses every request: an unverifiable event must never be stored.
VONAGE_SIGNATURE_SECRET = env.str("VONAGE_SIGNATURE_SECRET", default="")
# When set, a webhook's `api_key` claim must name this account.
VONAGE_API_KEY = env.str("VONAGE_API_KEY", default="")
# A webhook's `iat` must be within this many seconds of now, both ways (the tokens carry no exp).
VONAGE_WEBHOOK_MAX_AGE_SECONDS = env.int("VONAGE_WEBHOOK_MAX_AGE_SECONDS", default=300)
if VONAGE_WEBHOOK_MAX_AGE_SECONDS < 1:
    raise ImproperlyConfigured("VONAGE_WEBHOOK_MAX_AGE_SECONDS must be at least 1.")
# How often the reconciler reads the API to fill gaps in the stored history.
DASHBOARD_RECONCILE_SECONDS = env.int("DASHBOARD_RECONCILE_SECONDS", default=60)
if DASHBOARD_RECONCILE_SECONDS < 1:
    raise ImproperlyConfigured("DASHBOARD_RECONCILE_SECONDS must be at least 1.")
# Stored history older than this many days is deleted in batches; 0 keeps everything.
DASHBOARD_RETENTION_DAYS = env.int("DASHBOARD_RETENTION_DAYS", default=90)
if DASHBOARD_RETENTION_DAYS < 0:
    raise ImproperlyConfigured("DASHBOARD_RETENTION_DAYS must be 0 (keep all) or more.")

# Search over the stored history (conversations/store/search.py): the longest one search may run.
# A search that runs out asks for a narrower query (400) rather than hold a worker.
DASHBOARD_SEARCH_TIMEOUT_MS = env.int("DASHBOARD_SEARCH_TIMEOUT_MS", default=2000)
if DASHBOARD_SEARCH_TIMEOUT_MS < 1:
    raise ImproperlyConfigured("DASHBOARD_SEARCH_TIMEOUT_MS must be at least 1.")

# Staff without the permission conversations.view_pii (the Support group) see no stored history
# older than this many days (0: no limit). Their personal data is masked whatever the age.
SUPPORT_MAX_AGE_DAYS = env.int("SUPPORT_MAX_AGE_DAYS", default=0)
if SUPPORT_MAX_AGE_DAYS < 0:
    raise ImproperlyConfigured("SUPPORT_MAX_AGE_DAYS must be 0 (no limit) or more.")

# The first backfill (the worker's, on a store never backfilled): conversations started in the
# last this many days (the API keeps call conversations 2 days by default).
DASHBOARD_BACKFILL_DAYS = env.int("DASHBOARD_BACKFILL_DAYS", default=2)
if DASHBOARD_BACKFILL_DAYS < 0:
    raise ImproperlyConfigured("DASHBOARD_BACKFILL_DAYS must be 0 (no backfill) or more.")

# --- Background work: huey (conversations/tasks.py; the Procfile's `worker`)
# With QUEUE_URL (Redis) the queue, its schedule and its locks are shared by every worker on every
# host; without it they live in a SQLite file on this host (QUEUE_PATH): one host's workers only.
QUEUE_URL = env.str("QUEUE_URL", default="")
QUEUE_PATH = env.path("QUEUE_PATH", default=BASE_DIR / "queue.sqlite3")
# One name per database, so two deployments sharing a Redis never take each other's tasks.
_queue_name = f"dashboard-{DATABASES['default']['NAME']}"
if QUEUE_URL:
    # RedisExpireHuey: locks can expire (a killed worker's lock frees itself, on any Redis).
    HUEY = {"huey_class": "huey.RedisExpireHuey", "name": _queue_name, "url": QUEUE_URL}
else:
    HUEY = {"huey_class": "huey.SqliteHuey", "name": _queue_name, "filename": str(QUEUE_PATH)}
HUEY |= {
    "results": False,  # nothing reads task results: do not keep them
    "immediate": False,  # djhuey's default follows DEBUG; tasks always go through the queue
    "consumer": {
        "workers": 3,  # threads: reconcile, a long backfill and retention can run side by side
        "worker_type": "thread",
        # A SQLite queue cannot give its locks an expiry: a worker killed in a run would leave its
        # lock forever, so a starting worker clears them. Redis locks expire instead (tasks.py).
        "flush_locks": not QUEUE_URL,
    },
}

# --- Live push (conversations/push): notices to open pages over server-sent events
DASHBOARD_PUSH = env.bool("DASHBOARD_PUSH", default=True)  # false: every page polls, as before
# The page threads of one web process (every view but the stream runs in one of them); requests
# that find all busy wait up to SYNC_REQUEST_QUEUE_SECONDS, then get a 503 (asgi.py, bounded.py).
SYNC_REQUESTS_PER_PROCESS = env.int("SYNC_REQUESTS_PER_PROCESS", default=16)
SYNC_REQUEST_QUEUE_SECONDS = env.float("SYNC_REQUEST_QUEUE_SECONDS", default=10)
# Fan-out across processes and hosts: Redis pub/sub, by default on CACHE_URL's Redis. Without
# Redis, notices stay in the process that stored the event: run one web process.
PUSH_URL = env.str("PUSH_URL", default=_cache_url if CACHE_IS_REDIS else "")
if PUSH_URL and not PUSH_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ImproperlyConfigured("PUSH_URL must be a redis:// URL (or empty: in-process push).")
PUSH_CHANNEL_PREFIX = env.str("PUSH_CHANNEL_PREFIX", default=_queue_name)
DASHBOARD_STREAMS_PER_USER = env.int("DASHBOARD_STREAMS_PER_USER", default=10)
DASHBOARD_STREAMS_MAX = env.int("DASHBOARD_STREAMS_MAX", default=2000)  # per web process
# A comment this often keeps proxies from closing a quiet stream (most close after 30-60 s).
DASHBOARD_STREAM_HEARTBEAT_SECONDS = env.float("DASHBOARD_STREAM_HEARTBEAT_SECONDS", default=15)
if not 0 < DASHBOARD_STREAM_HEARTBEAT_SECONDS <= 20:
    raise ImproperlyConfigured("DASHBOARD_STREAM_HEARTBEAT_SECONDS must be above 0 and at most 20.")
# How often an open stream checks that its session and user are still valid (logging out, or an
# account losing staff status, ends the user's streams at once; this catches everything else).
DASHBOARD_STREAM_RECHECK_SECONDS = env.float("DASHBOARD_STREAM_RECHECK_SECONDS", default=60)
if DASHBOARD_STREAMS_PER_USER < 1 or DASHBOARD_STREAMS_MAX < 1:
    raise ImproperlyConfigured("DASHBOARD_STREAMS_PER_USER and DASHBOARD_STREAMS_MAX must be 1+.")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.server": {"level": env.str("ACCESS_LOG_LEVEL", default="INFO")},
        # uvicorn's access lines (`make run`; gunicorn's own access log is GUNICORN_ACCESS_LOG).
        "uvicorn.access": {"level": env.str("ACCESS_LOG_LEVEL", default="INFO")},
        # `run_huey` gives huey's logger a handler of its own: once is enough.
        "huey": {"propagate": False},
    },
}
