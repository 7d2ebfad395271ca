"""Liveness and readiness probes for load balancers and orchestrators (no login, no page data).

Anyone may call them, so they must never tie up workers. `/healthz` checks nothing. `/readyz`
answers from a result at most READY_MAX_AGE_SECONDS old: at most one request per process
refreshes it at a time (the others get the last result at once), and each check runs in its own
thread for at most CHECK_TIMEOUT_SECONDS, a check still running from an earlier refresh is waited
on, never started twice. So a hung database, cache or API costs the probe a few seconds and at
most three threads per process, whatever the number of probes.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from .client import RateLimited, UpstreamError, get_client

# How old a readiness result may be before a probe refreshes it.
READY_MAX_AGE_SECONDS = 5.0
# How long one refresh waits for each check (they run at the same time).
CHECK_TIMEOUT_SECONDS = 2.0


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up and serving: nothing else is checked."""
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        # This thread is no request: nothing else would close its connection (and a test
        # database could not be dropped while it is open).
        connection.close()


def _check_cache() -> None:
    # The resilient backends never raise: ask them whether they are in use, after trying.
    cache.set("readyz:probe", 1, timeout=5)
    if cache.get("readyz:probe") != 1:
        is_available = getattr(cache, "is_available", None)
        if is_available is not None and not is_available():
            raise ConnectionError("the cache is unavailable")
        raise RuntimeError("the cache did not return what was stored")


def _check_upstream() -> None:
    # The cheapest authenticated read; served from the short cache when it is warm.
    get_client().list_conversations(page_size=1)


def _timed(check) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        check()
        result: dict[str, Any] = {"ok": True}
    except RateLimited:
        # Reachable and answering: being rate limited is no reason to take this instance out of
        # a load balancer (every instance shares the limit, so all would go).
        result = {"ok": True, "note": "rate limited"}
    except UpstreamError as exc:
        result = {"ok": False, "error": type(exc).__name__}
    except Exception as exc:  # a probe reports any failure, it never raises
        result = {"ok": False, "error": type(exc).__name__}
    result["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


class _Check:
    """One check, run in its own thread; never two runs of it at the same time."""

    def __init__(self, name: str, function) -> None:
        self.name = name
        self.function = function
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"readyz-{name}")
        self._running: Future | None = None

    def start(self) -> Future:
        if self._running is None or self._running.done():
            self._running = self._executor.submit(_timed, self.function)
        return self._running


class Readiness:
    def __init__(self, checks: dict[str, Any]) -> None:
        self._functions = checks
        self._refreshing = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget the last result and any check still running (it finishes unheeded)."""
        self._checks = [_Check(name, function) for name, function in self._functions.items()]
        self._result: tuple[float, dict[str, Any]] | None = None

    def current(self) -> dict[str, Any]:
        result = self._result
        if result is not None and time.monotonic() - result[0] < READY_MAX_AGE_SECONDS:
            return result[1]
        if not self._refreshing.acquire(blocking=False):
            # Another request is refreshing: the last result, or "starting" before the first.
            return result[1] if result is not None else {"status": "starting", "checks": {}}
        try:
            body = self._refresh()
            self._result = (time.monotonic(), body)
            return body
        finally:
            self._refreshing.release()

    def _refresh(self) -> dict[str, Any]:
        running = {check.name: check.start() for check in self._checks}
        deadline = time.monotonic() + CHECK_TIMEOUT_SECONDS
        checks = {}
        for name, future in running.items():
            try:
                checks[name] = future.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                checks[name] = {
                    "ok": False,
                    "error": "Timeout",
                    "ms": round(CHECK_TIMEOUT_SECONDS * 1000, 1),
                }
        ready = all(check["ok"] for check in checks.values())
        return {"status": "ok" if ready else "unavailable", "checks": checks}


_readiness = Readiness(
    {"database": _check_database, "cache": _check_cache, "upstream": _check_upstream}
)


def reset() -> None:
    """Forget the last readiness result (tests; the next probe checks again)."""
    _readiness.reset()


@never_cache
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    """Database, cache and upstream reachable, with timings; 503 when any is not."""
    body = _readiness.current()
    return JsonResponse(body, status=200 if body["status"] == "ok" else 503)
