"""Liveness and readiness probes for load balancers and orchestrators (no login, no page data)."""

from __future__ import annotations

import time

from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .client import RateLimited, UpstreamError, get_client


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up and serving: nothing else is checked."""
    return JsonResponse({"status": "ok"})


def _timed(check) -> dict:
    started = time.perf_counter()
    try:
        check()
        result = {"ok": True}
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


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_cache() -> None:
    cache.set("readyz:probe", 1, timeout=5)
    if cache.get("readyz:probe") != 1:
        raise RuntimeError("cache did not return what was stored")


def _check_upstream() -> None:
    # The cheapest authenticated read; served from the short cache when it is warm.
    get_client().list_conversations(page_size=1)


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Database, cache and upstream reachable, with timings; 503 when any is not."""
    checks = {
        "database": _timed(_check_database),
        "cache": _timed(_check_cache),
        "upstream": _timed(_check_upstream),
    }
    ready = all(check["ok"] for check in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
    )
