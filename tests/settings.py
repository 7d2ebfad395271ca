"""Test settings: the project's one settings.py, read with a fixed, production-like environment.

Only what a test run cannot have is changed here: no .env file, a throwaway secret key, no HTTPS
redirect (the test client speaks plain HTTP), and static files from the finders rather than a
collectstatic manifest. DATABASE_URL and CACHE_URL from the environment still apply, which is how
CI runs the same suite on PostgreSQL and Redis.
"""

import os
import tempfile
from pathlib import Path

os.environ["READ_DOT_ENV"] = "false"
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-not-for-production-0123456789")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.pop("VONAGE_APPLICATION_ID", None)  # tests build their own clients
os.environ["DASHBOARD_SANDBOX"] = "true"  # without credentials and DEBUG, on purpose

from dashboard_project.settings import *  # noqa: F403

# On SQLite, the test database is a file of this run's own, not Django's default in-memory one.
# pytest-django hands an in-memory database's connection to the live server of the browser tests,
# whose request threads then all use that one connection at once; Python's sqlite3 connection is
# not safe for that (two threads running the same query share its prepared statement, and one of
# them finds no row: a logged-in poll answered as anonymous, its session cookie deleted). With a
# file, each thread has a connection of its own, with production's WAL and busy timeout.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": str(Path(tempfile.gettempdir()) / f"dashboard-tests-{os.getpid()}.sqlite3")
    }
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Without CACHE_URL the dashboard caches in a database table; most tests have no database, so
# they get the same resilient interface in memory. The database cache has its own tests
# (test_cache_resilience.py) and serves the gunicorn of test_serving.py.
if CACHES["default"]["BACKEND"].endswith("ResilientDatabaseCache"):  # noqa: F405
    CACHES = {"default": {"BACKEND": "conversations.cachebackends.ResilientLocMemCache"}}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
# The job engine's queue in memory (no queue.sqlite3 in the repository), unless a test run sets
# QUEUE_URL to try the Redis one. Tasks are called directly by the tests; locks are real.
if not QUEUE_URL:  # noqa: F405
    HUEY = {"huey_class": "huey.MemoryHuey", "name": "tests", "immediate": False}
