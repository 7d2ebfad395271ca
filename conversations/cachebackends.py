"""Cache backends that a failing cache cannot take down: Redis, the database, local memory.

The cache holds things the dashboard can live without for a while: upstream reads (shared between
viewers), request coalescing, sessions' read-through copies. So when the cache fails, the pages must
go on, slower: every operation on a resilient backend catches the backend's own errors and answers
as a miss (`get` gives the default, `add` gives False, `set`/`delete` do nothing). After a
failure the backend is skipped for a few seconds (a small circuit breaker), so that requests do
not each wait out a socket timeout; then one caller tries it again, and a success closes the
breaker.

`is_available()` says whether the cache is in use right now: the API client asks it before request
coalescing (waiting for another worker's read through the cache makes no sense while `add` always
fails). `unavailable_since()` tells the middleware and the template context whether a request ran
while a cache was unavailable, to mark its answer degraded.

The breaker is per process and per cache (Django builds one backend object per thread, but all the
threads of a worker see the same Redis), and it is keyed by location, never logged with it: a Redis
URL may hold a password.
"""

from __future__ import annotations

import logging
import pickle
import re
import threading
import time
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.db import DatabaseCache
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from django.db import DatabaseError

logger = logging.getLogger(__name__)

# Seconds a cache is skipped after a failure before one caller tries it again.
DEFAULT_RETRY_SECONDS = 5.0
# At most one warning per cache per this many seconds while it keeps failing.
_LOG_EVERY_SECONDS = 60.0
# Values that cannot be pickled (too deep, an open socket...) are not a cache outage: the write
# is dropped, the breaker stays closed.
_UNSTORABLE = (pickle.PicklingError, RecursionError, TypeError, AttributeError)
_WRITES = frozenset({"add", "set", "set_many"})
_MISSING = object()
_USERINFO = re.compile(r"//[^/@\s]*@")


class CircuitBreaker:
    """Whether one cache may be used now, shared by every thread of the process."""

    def __init__(self, name: str, retry_seconds: float) -> None:
        self.name = name
        self.retry_seconds = retry_seconds
        self._lock = threading.Lock()
        self._open_until = 0.0  # monotonic; 0 while the cache works
        self._probing = False
        self._last_unavailable = float("-inf")
        self._last_logged = float("-inf")

    def is_available(self) -> bool:
        return self._open_until == 0.0

    def allow(self) -> bool:
        """May this caller use the cache? While open: no, except one probe once the wait is over."""
        if self._open_until == 0.0:
            return True
        now = time.monotonic()
        with self._lock:
            if self._open_until == 0.0:
                return True
            if now >= self._open_until and not self._probing:
                self._probing = True  # this caller tries; the others keep skipping meanwhile
                return True
            self._last_unavailable = now
            return False

    def succeeded(self) -> None:
        if self._open_until == 0.0 and not self._probing:
            return
        with self._lock:
            if self._open_until:
                logger.info("cache %s is available again", self.name)
            self._open_until = 0.0
            self._probing = False

    def failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        with self._lock:
            self._open_until = now + self.retry_seconds
            self._probing = False
            self._last_unavailable = now
            if now - self._last_logged < _LOG_EVERY_SECONDS:
                return
            self._last_logged = now
        logger.warning(
            "cache %s unavailable (%s: %s): pages go on without it, trying again in %g s",
            self.name,
            type(exc).__name__,
            _USERINFO.sub("//***@", str(exc))[:200],
            self.retry_seconds,
        )

    def unavailable_since(self, moment: float) -> bool:
        return not self.is_available() or self._last_unavailable >= moment


_breakers: dict[tuple[str, str], CircuitBreaker] = {}
_breakers_lock = threading.Lock()


def _breaker_for(backend: Any, location: str, retry_seconds: float) -> CircuitBreaker:
    key = (type(backend).__name__, location)
    with _breakers_lock:
        breaker = _breakers.get(key)
        if breaker is None:
            # The name says which cache, never where: a location may carry a password.
            name = f"{type(backend).__name__}#{len(_breakers) + 1}"
            breaker = _breakers[key] = CircuitBreaker(name, retry_seconds)
        return breaker


def unavailable_since(moment: float) -> bool:
    """Was one of the configured resilient caches unavailable at or after this
    `time.monotonic()` moment (or is it now)?"""
    from django.conf import settings
    from django.core.cache import caches

    for alias in settings.CACHES:
        breaker = getattr(caches[alias], "_breaker", None)
        if breaker is not None and breaker.unavailable_since(moment):
            return True
    return False


class ResilientCacheMixin:
    """Put before a Django cache backend: its failures become misses, and it is skipped a while.

    OPTIONS["RETRY_SECONDS"] (default 5) is how long the cache is skipped after a failure.
    """

    # The exceptions that mean "the cache backend failed"; each backend class sets its own.
    backend_errors: tuple[type[BaseException], ...] = ()
    key_prefix: str

    def _init_breaker(self, location: str, params: dict[str, Any]) -> dict[str, Any]:
        options = dict(params.get("OPTIONS") or {})
        retry_seconds = float(options.pop("RETRY_SECONDS", DEFAULT_RETRY_SECONDS))
        location = f"{location}|{params.get('KEY_PREFIX', '')}"
        self._breaker = _breaker_for(self, location, retry_seconds)
        return {**params, "OPTIONS": options}

    def is_available(self) -> bool:
        """False while the cache is being skipped after a failure (no I/O: cheap to ask)."""
        return self._breaker.is_available()

    def _guarded(self, method: str, fallback: Any, *args: Any) -> Any:
        breaker = self._breaker
        if not breaker.allow():
            return fallback
        operation = getattr(super(), method)
        backend_failed = False
        try:
            return operation(*args)
        except self.backend_errors as exc:
            backend_failed = True
            breaker.failed(exc)
            return fallback
        except _UNSTORABLE as exc:
            if method not in _WRITES:
                raise
            # A value that cannot be serialised (too deep, say): the cache itself is fine.
            logger.warning("cache write dropped: %s: %s", type(exc).__name__, str(exc)[:200])
            return fallback
        finally:
            if not backend_failed:
                breaker.succeeded()  # the backend answered, even if with an exception of its own

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None) -> bool:
        return self._guarded("add", False, key, value, timeout, version)

    def get(self, key, default=None, version=None):
        return self._guarded("get", default, key, default, version)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None) -> None:
        self._guarded("set", None, key, value, timeout, version)

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None) -> bool:
        return self._guarded("touch", False, key, timeout, version)

    def delete(self, key, version=None) -> bool:
        return self._guarded("delete", False, key, version)

    def get_many(self, keys, version=None) -> dict:
        return self._guarded("get_many", {}, keys, version)

    def has_key(self, key, version=None) -> bool:
        return self._guarded("has_key", False, key, version)

    def incr(self, key, delta=1, version=None):
        result = self._guarded("incr", _MISSING, key, delta, version)
        if result is _MISSING:
            # What incr() says of a key it does not have: without the cache, no key is there.
            raise ValueError(f"Key '{key}' not found (the cache is unavailable)")
        return result

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None) -> list:
        return self._guarded("set_many", list(data), data, timeout, version)

    def delete_many(self, keys, version=None) -> None:
        self._guarded("delete_many", None, keys, version)

    def clear(self) -> None:
        self._guarded("clear", None)


class ResilientRedisCache(ResilientCacheMixin, RedisCache):
    """Django's RedisCache with short socket timeouts, its failures turned into misses.

    OPTIONS may override the redis-py connection options; the defaults wait at most
    `socket_timeout` (0.5 s) to connect or for an answer, and reconnect once at once when a pooled
    connection turns out dead (Redis restarted), without retrying a timeout.
    """

    def __init__(self, server, params):
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.backend_errors = (redis.RedisError, OSError)
        params = self._init_breaker(str(server), params)
        options = params["OPTIONS"]
        timeout = float(options.pop("SOCKET_TIMEOUT", 0.5))
        options.setdefault("socket_connect_timeout", timeout)
        options.setdefault("socket_timeout", timeout)
        options.setdefault(
            "retry", Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,))
        )
        super().__init__(server, params)


class ResilientDatabaseCache(ResilientCacheMixin, DatabaseCache):
    """Django's DatabaseCache (shared by every worker of a host), its failures turned into misses:
    a locked SQLite file or a database that went away never fails a page through the cache."""

    backend_errors = (DatabaseError,)

    def __init__(self, table, params):
        super().__init__(table, self._init_breaker(str(table), params))


class ResilientLocMemCache(ResilientCacheMixin, LocMemCache):
    """Django's LocMemCache with the same interface (`is_available`), for tests and one process."""

    backend_errors = ()

    def __init__(self, name, params):
        super().__init__(name, self._init_breaker(str(name), params))
