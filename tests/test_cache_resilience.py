"""Fault 3: Redis stopped or hung must not take the dashboard down (issue 8).

Real Redis behind a TCP proxy that the tests stop (connections refused) or hang (accepted, never
answered). These run in the default `make test` run whenever a Redis answers on TEST_REDIS_URL
(default redis://127.0.0.1:6379/14; it does here and in CI) and are skipped otherwise. Every
cache here has its own key prefix and none is ever cleared: other runs may share the Redis.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.urls import reverse

from conversations.cachebackends import (
    ResilientDatabaseCache,
    ResilientRedisCache,
    unavailable_since,
)
from tests.conftest import sandbox_client
from tests.tcp_proxy import proxy_to, require_server

REDIS_URL = urlsplit(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/14"))
RETRY_SECONDS = 1.0


@pytest.fixture
def redis_proxy():
    require_server(REDIS_URL.hostname, REDIS_URL.port or 6379, "Redis")
    with proxy_to(REDIS_URL.hostname, REDIS_URL.port or 6379) as proxy:
        yield proxy


def proxied_location(proxy, password: str = "") -> str:
    auth = f":{password}@" if password else ""
    return f"redis://{auth}127.0.0.1:{proxy.port}{REDIS_URL.path or '/0'}"


def cache_config(proxy, **options) -> dict:
    return {
        "BACKEND": "conversations.cachebackends.ResilientRedisCache",
        "LOCATION": proxied_location(proxy),
        "KEY_PREFIX": f"test-{uuid.uuid4().hex}",  # a fresh circuit breaker for each test
        "OPTIONS": {"RETRY_SECONDS": RETRY_SECONDS} | options,
    }


@pytest.fixture
def redis_cache(redis_proxy):
    config = cache_config(redis_proxy)
    return ResilientRedisCache(config["LOCATION"], config)


def timed(operation):
    started = time.monotonic()
    result = operation()
    return result, time.monotonic() - started


# --- the backend


def test_a_stopped_redis_answers_misses_instead_of_errors(redis_cache, redis_proxy):
    redis_cache.set("key", "value")
    assert redis_cache.get("key") == "value"
    assert redis_cache.is_available()

    redis_proxy.refuse()
    assert redis_cache.get("key", "default") == "default"
    assert redis_cache.add("lock", 1) is False
    assert redis_cache.is_available() is False
    redis_cache.set("key", "other")
    redis_cache.delete("key")
    assert redis_cache.get_many(["key", "other"]) == {}
    assert redis_cache.has_key("key") is False
    with pytest.raises(ValueError):
        redis_cache.incr("counter")


def test_a_hung_redis_costs_one_short_timeout_then_is_skipped(redis_cache, redis_proxy):
    redis_cache.set("key", "value")
    redis_proxy.hang()
    value, seconds = timed(lambda: redis_cache.get("key", "default"))
    assert value == "default"
    assert seconds < 1.5, "a short socket timeout, not the OS default"
    assert redis_cache.add("lock", 1) is False and redis_cache.is_available() is False

    connections = redis_proxy.accepted
    _, seconds = timed(lambda: [redis_cache.get("key") for _ in range(50)])
    assert seconds < 0.2, "skipped while the breaker is open: no request waits out a timeout"
    assert redis_proxy.accepted == connections, "not even a connection attempt"


def test_the_cache_is_used_again_within_seconds_of_redis_returning(redis_cache, redis_proxy):
    for outage in (redis_proxy.refuse, redis_proxy.hang):
        outage()
        assert redis_cache.get("key") is None and not redis_cache.is_available()
        redis_proxy.forward()
        deadline = time.monotonic() + RETRY_SECONDS + 3
        while not (redis_cache.add("key", "back") and redis_cache.get("key") == "back"):
            assert time.monotonic() < deadline, "the cache came back"
            time.sleep(0.1)
        assert redis_cache.is_available()
        redis_cache.delete("key")


def test_an_outage_is_logged_without_the_redis_password(redis_proxy, caplog):
    config = cache_config(redis_proxy)
    location = proxied_location(redis_proxy, password="s3cret-redis-password")
    cache = ResilientRedisCache(location, config)
    redis_proxy.refuse()
    with caplog.at_level(logging.WARNING, logger="conversations.cachebackends"):
        for _ in range(3):
            cache.get("key")
            cache.set("key", 1)
    assert "unavailable" in caplog.text
    assert len(caplog.records) == 1, "logged once in a while, not on every operation"
    assert "s3cret" not in caplog.text


def test_a_value_that_cannot_be_stored_is_dropped_and_the_cache_stays_up(redis_cache):
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    redis_cache.set("deep", deep)
    assert redis_cache.get("deep") is None
    assert redis_cache.is_available()


# --- the dashboard with Redis down


@pytest.fixture
def redis_down_settings(settings, redis_proxy):
    """The dashboard's default cache and sessions on the proxied Redis, as with CACHE_URL."""
    settings.CACHES = {"default": cache_config(redis_proxy)}
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
    return redis_proxy


def test_requests_that_ran_while_the_cache_was_down_are_known(redis_down_settings):
    cache = caches["default"]
    started = time.monotonic()
    cache.get("key")
    assert not unavailable_since(started)
    redis_down_settings.refuse()
    cache.get("key")
    assert unavailable_since(started)
    redis_down_settings.forward()
    time.sleep(RETRY_SECONDS)
    cache.get("key")
    assert not unavailable_since(time.monotonic()), "a request after the return is not degraded"


def log_in(client) -> object:
    return client.post(
        reverse("login"), {"username": "staff", "password": "staff-password-1"}, follow=False
    )


@pytest.mark.django_db
@pytest.mark.parametrize("outage", ["refuse", "hang"])
def test_login_works_with_redis_down(client, staff_user, redis_down_settings, outage):
    getattr(redis_down_settings, outage)()
    response, seconds = timed(lambda: log_in(client))
    assert response.status_code == 302, response.content[:500]
    assert response["Location"] == reverse("conversations:list")
    assert seconds < 3


@pytest.mark.django_db
@pytest.mark.parametrize("outage", ["refuse", "hang"])
def test_pages_serve_marked_degraded_with_redis_down(
    client, staff_user, redis_down_settings, sandbox, use_client, outage
):
    assert log_in(client).status_code == 302
    use_client(sandbox_client(sandbox))
    healthy = client.get(reverse("conversations:list"))
    assert healthy.status_code == 200
    assert "X-Dashboard-Degraded" not in healthy

    getattr(redis_down_settings, outage)()
    page = client.get(reverse("conversations:list"))
    assert page.status_code == 200
    assert page["X-Dashboard-Degraded"] == "1"
    assert "The cache is unavailable" in page.content.decode()


@pytest.mark.django_db
def test_pages_are_normal_again_within_seconds_of_redis_returning(
    client, staff_user, redis_down_settings, sandbox, use_client
):
    assert log_in(client).status_code == 302
    use_client(sandbox_client(sandbox))
    redis_down_settings.refuse()
    assert client.get(reverse("conversations:list"))["X-Dashboard-Degraded"] == "1"
    redis_down_settings.forward()
    deadline = time.monotonic() + RETRY_SECONDS + 5
    while True:
        page = client.get(reverse("conversations:list"))
        if page.status_code == 200 and "X-Dashboard-Degraded" not in page:
            break
        assert time.monotonic() < deadline, "normal again"
        time.sleep(0.2)
    assert "The cache is unavailable" not in page.content.decode()


@pytest.fixture
def fresh_readiness():
    from conversations import health

    health.reset()
    yield
    health.reset()


@pytest.mark.django_db
def test_readyz_names_the_cache_when_redis_is_down(
    client, redis_down_settings, sandbox, use_client, fresh_readiness
):
    use_client(sandbox_client(sandbox))
    redis_down_settings.refuse()
    response = client.get("/readyz")
    checks = response.json()["checks"]
    assert response.status_code == 503
    assert checks["cache"] == {"ok": False, "error": "ConnectionError", "ms": checks["cache"]["ms"]}
    assert checks["database"]["ok"] is True


@pytest.mark.django_db
def test_readyz_does_not_blame_the_upstream_for_the_cache(
    client, redis_down_settings, sandbox, use_client, fresh_readiness
):
    """The client reads upstream uncoalesced while the cache is unavailable (is_available())."""
    use_client(sandbox_client(sandbox))
    redis_down_settings.refuse()
    assert client.get("/readyz").json()["checks"]["upstream"]["ok"] is True


# --- the default cache: a table in the database


@pytest.fixture
def database_cache(settings, db):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "table": {
            "BACKEND": "conversations.cachebackends.ResilientDatabaseCache",
            "LOCATION": "dashboard_cache",
            "KEY_PREFIX": f"test-{uuid.uuid4().hex}",
        },
    }
    call_command("createcachetable", verbosity=0)
    return caches["table"]


def test_the_database_cache_coalesces_with_add(database_cache):
    assert database_cache.add("lock", 1, timeout=10) is True
    assert database_cache.add("lock", 2, timeout=10) is False
    assert database_cache.get("lock") == 1
    assert database_cache.is_available()


@pytest.mark.django_db
def test_a_database_cache_that_fails_is_a_miss(settings):
    missing = ResilientDatabaseCache("no_such_table", {"KEY_PREFIX": uuid.uuid4().hex})
    assert missing.get("key", "default") == "default"
    missing.set("key", "value")
    assert missing.add("key", "value") is False
    assert missing.is_available() is False


# One process of "a dashboard worker" on the project's own settings (no CACHE_URL: the database
# cache): N threads read the same conversation at the same instant.
WORKER = """
import json, os, threading, time
import django
django.setup()
from conversations.client import ClientConfig, ConversationClient
config = json.loads(os.environ["WORKER_CONFIG"])
client = ConversationClient(ClientConfig(**config["client"]))
results = []
def read():
    time.sleep(max(0, config["start_at"] - time.time()))
    results.append(client.get_conversation(config["conversation_id"]).id)
threads = [threading.Thread(target=read) for _ in range(config["threads"])]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"reads": len(results)}))
"""


def test_two_workers_share_upstream_reads_through_the_default_cache(tmp_path, sandbox):
    """Section 2 item 9: without Redis, the workers of a host share one cache (a table in the
    default database), so 2 processes x 10 threads reading one conversation cost one read."""
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "READ_DOT_ENV": "false",
        "DJANGO_SETTINGS_MODULE": "dashboard_project.settings",
        "DEBUG": "false",
        "SECRET_KEY": "k" * 50,
        "DASHBOARD_SANDBOX": "true",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=root, env=env, check=True
    )
    conversation = next(c for c in sandbox.world.conversations() if c.state == "ACTIVE")
    config = {
        "client": {
            "base_url": sandbox.base_url,
            "application_id": sandbox.application_id,
            "private_key_pem": sandbox.private_key_pem,
            "cache_seconds": 5,
        },
        "conversation_id": conversation.id,
        "threads": 10,
        "start_at": time.time() + 4,  # both processes are up by then
    }
    sandbox.set_fault(latency_ms=300)  # a slow upstream: everyone arrives while the read is out
    sandbox.reset_stats()
    try:
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", WORKER],
                cwd=root,
                env=env | {"WORKER_CONFIG": json.dumps(config)},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [worker.communicate(timeout=60) for worker in workers]
    finally:
        sandbox.clear_faults()
    for worker, (out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1])["reads"] == 10
    by_path = sandbox.stats()["by_path"]
    assert by_path.get(f"GET /v1/conversations/{conversation.id}") == 1, by_path
