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
    Unavailable,
    UpstreamError,
)

MAX_POLL_SECONDS = 120


@dataclass(frozen=True)
class Problem:
    what: str  # "Couldn't load the members"
    why: str  # a sentence about the cause, never a traceback
    retry_in: int | None  # seconds until the next automatic try, None when nothing retries
    stale_at: dt.datetime | None  # when the data still shown was fetched


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


def problem(what: str, exc: UpstreamError, retry_in: int | None) -> Problem:
    stale_at = dt.datetime.fromtimestamp(exc.stale_at, dt.UTC) if exc.stale_at else None
    return Problem(what=what, why=describe(exc), retry_in=retry_in, stale_at=stale_at)


def value_or_stale(outcome: Outcome) -> Any:
    """The fresh value, or on failure the last good one (None when there is none)."""
    if outcome.error is None:
        return outcome.value
    return outcome.error.stale
