"""Several reads at once, so that a page waits for the slowest, not for the sum."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from . import budget
from .errors import StillLoading, UpstreamError

# Page threads only wait here (the fetches run in readcache's own pool), each at most until its
# page's deadline; a page never waits past its own deadline for calls queued behind others'.
_pages = ThreadPoolExecutor(max_workers=64, thread_name_prefix="upstream-page")


@dataclass(frozen=True)
class Outcome:
    """The result of one of several concurrent reads: a value, or the error it raised."""

    value: Any = None
    error: UpstreamError | None = None


def concurrently(**calls: Callable[[], Any]) -> dict[str, Outcome]:
    """Run the reads at once, each within the caller's page deadline (carried in its context)."""
    futures = {
        name: _pages.submit(contextvars.copy_context().run, call) for name, call in calls.items()
    }
    outcomes = {}
    for name, future in futures.items():
        try:
            # Bounded here too: a call still queued behind other pages' calls when this page's
            # deadline passes is given up (its read, if it started, goes on for the cache).
            outcomes[name] = Outcome(value=future.result(timeout=budget.wait_limit(None)))
        except FutureTimeout:
            future.cancel()
            outcomes[name] = Outcome(error=StillLoading())
        except UpstreamError as exc:
            outcomes[name] = Outcome(error=exc)
    return outcomes
