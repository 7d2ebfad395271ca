"""What a page shows when an upstream read fails, and how fast a live panel polls.

Views catch the client's errors and hand them here: a `Problem` is the banner (what failed, why, and
when it will be retried) plus the last good data, when the client had some.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from .client import (
    AuthenticationFailed,
    BadRequest,
    BadResponse,
    NotConfigured,
    NotFound,
    Outcome,
    RateLimited,
    StillLoading,
    Unavailable,
    UpstreamError,
)

MAX_POLL_SECONDS = 120
# A read still going on past the page's budget is asked for again this soon (then 2, 4, ... s).
STILL_LOADING_SECONDS = 1


@dataclass(frozen=True)
class Problem:
    what: str  # "Couldn't load the members", "Still loading the members"
    why: str  # a sentence about the cause, never a traceback
    retry_in: int | None  # seconds until the next automatic try, None when nothing retries
    stale_at: dt.datetime | None  # when the data still shown was fetched
    loading: bool = False  # the API is slow, not failing: the panel fills in by itself
    rejected: bool = False  # the API refused the request as asked (400): retrying cannot help


def describe(exc: UpstreamError) -> str:
    if isinstance(exc, NotConfigured):
        if settings.USING_SANDBOX:
            return (
                "The sandbox's key pair is missing (.sandbox/private.pem): start the dashboard "
                "with `make run`, which creates it and starts the sandbox."
            )
        return (
            "The private key in VONAGE_PRIVATE_KEY_PATH or VONAGE_PRIVATE_KEY could not be "
            "loaded: check that it is the application's unencrypted PEM private key."
        )
    if isinstance(exc, RateLimited):
        return "The Conversation API is rate limiting requests (429)."
    if isinstance(exc, AuthenticationFailed):
        return (
            "The Conversation API refused the dashboard's credentials (401/403): check "
            "VONAGE_APPLICATION_ID and the private key."
        )
    if isinstance(exc, StillLoading):
        return "The Conversation API is slow to answer; the read goes on in the background."
    if isinstance(exc, Unavailable):
        if settings.USING_SANDBOX and exc.status is None:  # no answer at all, not an HTTP error
            return f"The local sandbox does not answer ({exc.detail}): `make run` starts it."
        return f"The Conversation API is unavailable: {exc.detail}."
    if isinstance(exc, BadResponse):
        return "The Conversation API sent a response the dashboard could not read."
    if isinstance(exc, BadRequest):
        return f"The Conversation API rejected the request: {exc.detail}"
    if isinstance(exc, NotFound):
        return "It does not exist, or this application cannot see it."
    return "The Conversation API failed."


def poll_seconds(backoff: int = 0, retry_after: float | None = None) -> int:
    """The interval of a live panel: the configured one, doubled for each failure in a row."""
    seconds = settings.DASHBOARD_REFRESH_SECONDS * 2**backoff
    if retry_after:
        seconds = max(seconds, int(retry_after + 0.999))
    return int(min(seconds, MAX_POLL_SECONDS))


def retry_seconds(errors: list[UpstreamError], backoff: int) -> int:
    """When a panel whose reads failed asks again: soon while the API is only slow (a read past
    the budget goes on and fills the cache), else after the usual back-off."""
    if errors and all(isinstance(e, StillLoading) for e in errors):
        return min(STILL_LOADING_SECONDS * 2 ** max(backoff - 1, 0), poll_seconds(0))
    retry_after = max((e.retry_after or 0 for e in errors), default=0)
    return poll_seconds(backoff, retry_after)


def problem(subject: str, exc: UpstreamError, retry_in: int | None) -> Problem:
    """The banner for a failed read of `subject` ("the members"). A request the API refused (400)
    is never retried."""
    stale_at = dt.datetime.fromtimestamp(exc.stale_at, dt.UTC) if exc.stale_at else None
    rejected = isinstance(exc, BadRequest)
    return Problem(
        what=f"Still loading {subject}"
        if isinstance(exc, StillLoading)
        else f"Couldn't load {subject}",
        why=describe(exc),
        retry_in=None if rejected else retry_in,
        stale_at=stale_at,
        loading=isinstance(exc, StillLoading),
        rejected=rejected,
    )


def value_or_stale(outcome: Outcome) -> Any:
    """The fresh value, or on failure the last good one (None when there is none)."""
    if outcome.error is None:
        return outcome.value
    return outcome.error.stale
