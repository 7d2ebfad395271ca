"""The read-through cache in front of the API: shared answers, bounded waits, cool-downs.

Every read goes through `ReadCache.read`:
- a fresh answer in Django's cache (shared by every thread, process and host using that cache) is
  returned at once; so is a failure of the last second, rather than asking again;
- otherwise one background fetch per key per process (later callers of the same key join it), and
  one per key across processes (a lock taken with `cache.add`; the others wait for its answer);
- a caller waits at most the page budget: past it, `StillLoading` with the last good copy, while
  the fetch goes on and fills the cache for the next request;
- after a 429 every read of the application waits out the cool-down (at most
  `max_cooldown_seconds`, however long Retry-After asks), except one probe every
  `cooldown_probe_seconds` that ends it early when the API answers; after no answer at all
  (timeout, refused, reset) every read fails fast for a few seconds instead of waiting its own;
- the last good copy of every read is kept for `stale_seconds` and handed over on failure.
Keys carry the API base URL and the application id, so deployments sharing a Redis never serve
each other's data. A cache that fails (Redis down) never fails a read: it is read around.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from django.core.cache import caches

from . import budget
from .config import ClientConfig
from .errors import (
    NotFound,
    RateLimited,
    StillLoading,
    Unavailable,
    UpstreamError,
    copy_error,
)

logger = logging.getLogger("conversations.upstream")

T = TypeVar("T")

_PREFIX = "capi:v2:"
FAILURE_SECONDS = 1  # a failed read answers every caller for this long without a new call
UNREACHABLE_SECONDS = 3  # after no answer at all, every read fails fast for this long
_COALESCE_POLL_SECONDS = 0.01
_COALESCE_MAX_POLL_SECONDS = 0.2

# Fetches run here, so that a caller can stop waiting while the fetch goes on. Pages' own
# concurrent reads use another pool (concurrency.py): a fetch never waits on a page thread.
_fetches = ThreadPoolExecutor(max_workers=16, thread_name_prefix="upstream-fetch")


def whole_seconds(seconds: float) -> int:
    """A cache timeout in whole seconds, rounded up: Django's Redis backend truncates floats, and
    a timeout that truncates to 0 means "do not store" (so no sharing and no coalescing)."""
    return math.ceil(seconds) if seconds > 0 else 0


class ReadCache:
    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.cache = caches[config.cache_alias]
        scope = f"{config.base_url.rstrip('/')}\n{config.application_id}"
        self.prefix = f"{_PREFIX}{hashlib.sha256(scope.encode()).hexdigest()[:16]}:"
        self.cooldown_key = self.prefix + "cooldown"
        self.probe_key = self.prefix + "cooldown-probe"
        self.clock: Callable[[], float] = time.time  # tests move it to end cool-downs
        self.sleep: Callable[[float], None] = time.sleep
        self._inflight: dict[str, Future] = {}
        self._inflight_guard = threading.RLock()

    def key(self, path: str, params: dict[str, Any], variant: str = "") -> str:
        what = repr((path, sorted(params.items()), variant))
        return self.prefix + hashlib.sha256(what.encode()).hexdigest()

    def read(
        self,
        key: str,
        load: Callable[[], T],
        *,
        fresh_seconds: float,
        wait_seconds: float | None,
        label: str = "",
    ) -> T:
        """The value for `key`, from the cache or from `load()`, within `wait_seconds`.

        `label` names the read in the log (the path, never a token)."""
        entry = self._get(key)
        if entry is not None:
            logger.debug("upstream GET %s cache=hit", label)
            return self._answer(entry, key)
        future = self._fetch_once(key, load, fresh_seconds)
        wait_seconds = budget.wait_limit(wait_seconds)
        try:
            return future.result(timeout=wait_seconds)
        except FutureTimeout:
            logger.info("upstream GET %s still loading after %.1f s", label, wait_seconds)
            raise self._with_stale(StillLoading(), key) from None
        except UpstreamError as shared:
            # One error object is shared by every caller of this fetch: give each its own.
            mine = copy_error(shared)
            mine.stale, mine.stale_at = shared.stale, shared.stale_at
            raise mine from None

    # --- one fetch per key per process, one per key across processes

    def _fetch_once(self, key: str, load: Callable[[], T], fresh_seconds: float) -> Future:
        with self._inflight_guard:
            future = self._inflight.get(key)
            if future is None:
                future = _fetches.submit(self._fetch_coalesced, key, load, fresh_seconds)
                self._inflight[key] = future
                future.add_done_callback(lambda done: self._forget(key, done))
            return future

    def _forget(self, key: str, done: Future) -> None:
        with self._inflight_guard:
            if self._inflight.get(key) is done:
                del self._inflight[key]

    def _fetch_coalesced(self, key: str, load: Callable[[], T], fresh_seconds: float) -> T:
        entry = self._get(key)  # another process may have answered while this one queued
        if entry is not None:
            return self._answer(entry, key)
        lock_key, token = key + ":lock", uuid.uuid4().hex
        lock_seconds = whole_seconds(self.config.total_budget + 1)
        deadline = time.monotonic() + self.config.total_budget
        pause = _COALESCE_POLL_SECONDS
        while True:
            taken = self._add(lock_key, token, lock_seconds)
            if taken is not False:  # ours, or no working cache: read without coalescing
                break
            # Another process is reading this key: wait for its answer instead of asking too,
            # with reads only (an add is a write: a transaction on the database cache) and
            # longer pauses the longer it takes.
            while self._get(lock_key) is not None:
                if time.monotonic() > deadline:
                    error = Unavailable("Timed out waiting for a concurrent read")
                    raise self._with_stale(error, key)
                self.sleep(pause)
                pause = min(pause * 2, _COALESCE_MAX_POLL_SECONDS)
                entry = self._get(key)
                if entry is not None:
                    return self._answer(entry, key)
        if taken:
            entry = self._get(key)  # answered by the process whose lock this was, just before
            if entry is not None:
                self._release(lock_key, token)
                return self._answer(entry, key)
        try:
            cooling = self._check_cooldown(key)
            return self._fetch_and_store(key, load, fresh_seconds, cooling)
        finally:
            if taken:
                self._release(lock_key, token)

    def _fetch_and_store(
        self, key: str, load: Callable[[], T], fresh_seconds: float, cooling: bool
    ) -> T:
        try:
            value = load()
        except UpstreamError as exc:
            if exc.retry_after is not None:  # however long upstream asks, never past the ceiling
                exc.retry_after = min(exc.retry_after, self.config.max_cooldown_seconds)
            # Every caller gets this failure for a moment rather than asking upstream again.
            self._set(key, ("error", exc), FAILURE_SECONDS)
            if isinstance(exc, RateLimited):
                # A rate limit is for the whole application: every read waits it out.
                self._cool_down("rate-limited", max(FAILURE_SECONDS, exc.retry_after or 0))
            elif isinstance(exc, Unavailable) and exc.status is None:
                # No answer at all (timeout, refused, reset): the API is down, not one resource.
                self._cool_down("unreachable", UNREACHABLE_SECONDS)
            elif cooling and exc.status is not None:
                # The probe had an HTTP answer that is not a 429 (a 404, a 500): the API is
                # answering again, so the rate-limit pause is over.
                self._delete(self.cooldown_key)
            raise self._with_stale(exc, key) from None
        self._set(key, ("ok", value), fresh_seconds)
        self._set(key + ":stale", (self.clock(), value), self.config.stale_seconds)
        if cooling:
            logger.info("upstream answered the cool-down probe: cool-down over")
            self._delete(self.cooldown_key)
        return value

    # --- cool-downs

    def _cool_down(self, reason: str, seconds: float) -> None:
        seconds = min(seconds, self.config.max_cooldown_seconds)
        current = self._get(self.cooldown_key)
        if current is not None and current[0] > self.clock() + seconds:
            return  # never shorten a pause (a probe that found the API down during a 429's)
        self._set(self.cooldown_key, (self.clock() + seconds, reason), seconds)
        # The first probe comes one interval into the cool-down, not at once.
        self._set(self.probe_key, 1, self.config.cooldown_probe_seconds)

    def _check_cooldown(self, key: str) -> bool:
        """Raise while the application cools down; True when this read is the probe."""
        cooldown = self._get(self.cooldown_key)
        if cooldown is None:
            return False
        until, reason = cooldown
        left = until - self.clock()
        if left <= 0:
            return False
        if self._add(self.probe_key, 1, self.config.cooldown_probe_seconds) is True:
            logger.info("upstream cool-down (%s): probing with one read", reason)
            return True
        error: UpstreamError
        if reason == "rate-limited":
            error = RateLimited("Waiting out the API's rate limit", status=429)
        else:
            error = Unavailable("The Conversation API did not answer a moment ago")
        error.retry_after = left
        logger.info("upstream read skipped: %s cool-down", reason)
        raise self._with_stale(error, key)

    # --- answers

    def _answer(self, entry: Any, key: str) -> Any:
        kind, value = entry
        if kind == "ok":
            return value
        raise self._with_stale(copy_error(value), key)

    def _with_stale(self, exc: UpstreamError, key: str) -> UpstreamError:
        if not isinstance(exc, NotFound):
            stale = self._get(key + ":stale")
            if stale is not None:
                exc.stale_at, exc.stale = stale
        return exc

    # --- the cache, read around when it fails (Redis down, a value pickle refuses, ...)

    def _available(self) -> bool:
        is_available = getattr(self.cache, "is_available", None)
        return is_available() if callable(is_available) else True

    def _get(self, key: str) -> Any:
        try:
            return self.cache.get(key)
        except Exception:
            logger.warning("cache read failed; reading around the cache", exc_info=True)
            return None

    def _set(self, key: str, value: Any, seconds: float) -> None:
        try:
            self.cache.set(key, value, timeout=whole_seconds(seconds))
        except Exception:  # RecursionError from pickle, a full or unreachable cache, ...
            logger.warning("cache write failed; the page goes on without it", exc_info=True)

    def _add(self, key: str, value: Any, seconds: float) -> bool | None:
        """True if added, False if the key exists, None when the cache does not work now."""
        try:
            added = self.cache.add(key, value, timeout=whole_seconds(seconds))
        except Exception:
            logger.warning("cache add failed; reading without coalescing", exc_info=True)
            return None
        if not added and not self._available():
            return None  # the add failed because the cache did, not because the key exists
        return bool(added)

    def _delete(self, key: str) -> None:
        try:
            self.cache.delete(key)
        except Exception:
            logger.warning("cache delete failed", exc_info=True)

    def _release(self, lock_key: str, token: str) -> None:
        # Only our own lock: a read that outlived its lock must not drop another process's.
        if self._get(lock_key) == token:
            self._delete(lock_key)
