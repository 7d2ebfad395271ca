"""Settings for the conversation dashboard: one file, read from the environment with django-environ.

Every variable is listed with a comment in `.env.example`. Values come from the process environment,
then from a `.env` file at the repository root if there is one. Production secrets have no defaults:
with `DEBUG` off, a missing `SECRET_KEY` stops the process at start with a message that names it.
"""

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
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "axes",
    "conversations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
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
            ],
        },
    },
]

WSGI_APPLICATION = "dashboard_project.wsgi.application"

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))

# CACHE_URL wins; REDIS_URL is accepted as a shorthand for a Redis cache.
_cache_url = env.str("CACHE_URL", default="") or env.str("REDIS_URL", default="")
if _cache_url.startswith(("redis://", "rediss://")):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": _cache_url,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="dashboard"),
        }
    }
elif _cache_url:
    CACHES = {"default": env.cache_url_config(_cache_url)}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

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
# Sessions read through the cache (Redis in production), written through to the database.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 3600)
X_FRAME_OPTIONS = "DENY"

# Content Security Policy (Django's built-in): no inline script, no eval, no third-party origin.
# Images may come from upstream image_url values, which the templates only render for http(s).
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "https:", "http:"],
    "connect-src": [CSP.SELF],
    "font-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

# --- Login throttling (django-axes) ---------------------------------------------------------------
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_MINUTES", default=15) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# With Redis, failures are counted there (shared by every worker and host, and cheap).
AXES_HANDLER = env.str(
    "AXES_HANDLER",
    default="axes.handlers.cache.AxesCacheHandler"
    if CACHES["default"]["BACKEND"].endswith("RedisCache")
    else "axes.handlers.database.AxesDatabaseHandler",
)
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False


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
# How long an upstream read is reused from the cache (seconds); the last good copy is kept longer
# so a failing upstream still shows (stale) data.
# Whole seconds; at least half the refresh interval, so that viewers polling every
# DASHBOARD_REFRESH_SECONDS share about one upstream read per endpoint per interval.
UPSTREAM_CACHE_SECONDS = env.int("UPSTREAM_CACHE_SECONDS", default=3)
UPSTREAM_STALE_SECONDS = env.int("UPSTREAM_STALE_SECONDS", default=600)

# --- The dashboard
DASHBOARD_REFRESH_SECONDS = env.int("DASHBOARD_REFRESH_SECONDS", default=5)
if DASHBOARD_REFRESH_SECONDS < 1:
    raise ImproperlyConfigured("DASHBOARD_REFRESH_SECONDS must be at least 1.")

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
    },
}
