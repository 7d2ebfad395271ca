"""One deadline for everything a page asks of the API (UPSTREAM_PAGE_BUDGET_SECONDS).

Each read already waits at most the page budget; but a page makes several reads (some at once,
some one after another, a members panel up to fifty), and queued reads would each add their own.
`page_deadline()` (entered by the middleware for every request) sets one deadline in a context
variable; every read waits at most until then, and `concurrently` carries it into its threads. A
read past the deadline still answers from the cache; otherwise it is `StillLoading` at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.conf import settings
from django.http import HttpRequest, HttpResponse

_deadline: ContextVar[float | None] = ContextVar("upstream_page_deadline", default=None)


@contextmanager
def page_deadline(seconds: float) -> Iterator[None]:
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def wait_limit(own_seconds: float | None) -> float | None:
    """How long a read may wait now: its own limit, or less when the page's deadline is nearer."""
    deadline = _deadline.get()
    if deadline is None:
        return own_seconds
    left = max(0.0, deadline - time.monotonic())
    return left if own_seconds is None else min(own_seconds, left)


class PageBudgetMiddleware:
    """Every request's reads share one deadline, so no page waits longer than the budget."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with page_deadline(settings.UPSTREAM_PAGE_BUDGET_SECONDS):
            return self.get_response(request)
