"""Middleware that keeps the dashboard answering when what is under it fails.

- `CacheStatusMiddleware` marks an answer produced while the cache was unavailable with
  `X-Dashboard-Degraded: 1` (live.js then treats the refresh as a failure and backs off) and lets
  the templates say so (`cache_unavailable` in the context, see context_processors.py).
- `DatabaseUnavailableMiddleware` answers a clear 503 when the database is down or does not answer
  (with the bounded waits of dashboard_project/postgresql that takes seconds, not minutes), instead
  of a 500. `server_error` (handler500) does the same for a database error raised outside a view,
  in another middleware.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, HttpResponseServerError
from django.template import loader

from conversations import cachebackends

logger = logging.getLogger(__name__)

DEGRADED_HEADER = "X-Dashboard-Degraded"
# Seconds after which a client may try again when the database was unavailable.
DATABASE_RETRY_AFTER_SECONDS = 10
_DATABASE_DOWN = (OperationalError, InterfaceError)


class CacheStatusMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.started_monotonic = time.monotonic()
        response = self.get_response(request)
        if cache_unavailable(request):
            response[DEGRADED_HEADER] = "1"
        return response


def cache_unavailable(request: HttpRequest) -> bool:
    """Was a cache unavailable while this request ran (so far)?"""
    started = getattr(request, "started_monotonic", time.monotonic())
    return cachebackends.unavailable_since(started)


def database_unavailable_response() -> HttpResponse:
    # Rendered without the request: no context processor may touch the database (user, session).
    response = HttpResponse(loader.render_to_string("503.html"), status=503)
    response["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, _DATABASE_DOWN):
            logger.error(
                "database unavailable: %s %s answered 503 (%s: %s)",
                request.method,
                request.path,
                type(exception).__name__,
                str(exception)[:200],
            )
            return database_unavailable_response()
        return None


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: the plain 500 page, or the 503 page when the database is what failed."""
    if isinstance(sys.exc_info()[1], _DATABASE_DOWN):
        return database_unavailable_response()
    return HttpResponseServerError(loader.render_to_string("500.html"))
