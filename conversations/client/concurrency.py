"""Several reads at once, so that a page waits for the slowest, not for the sum."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .errors import UpstreamError

# Page threads wait here on reads; the reads' fetches run in readcache's own pool.
_pages = ThreadPoolExecutor(max_workers=16, thread_name_prefix="upstream-page")


@dataclass(frozen=True)
class Outcome:
    """The result of one of several concurrent reads: a value, or the error it raised."""

    value: Any = None
    error: UpstreamError | None = None


def concurrently(**calls: Callable[[], Any]) -> dict[str, Outcome]:
    """Run the reads at once; each is bounded by the page budget, so this is too."""
    futures = {name: _pages.submit(call) for name, call in calls.items()}
    outcomes = {}
    for name, future in futures.items():
        try:
            outcomes[name] = Outcome(value=future.result())
        except UpstreamError as exc:
            outcomes[name] = Outcome(error=exc)
    return outcomes
