"""The small family of errors every read from the Conversation API can raise.

Views catch `UpstreamError` and show a banner over the last good data (`stale`); they never see
`requests`' or `urllib3`'s own exceptions, which the transport turns into these.
"""

from __future__ import annotations

from typing import Any


class UpstreamError(Exception):
    """A read from the Conversation API failed. `stale` holds the last good result, if any."""

    summary = "The Conversation API failed"

    def __init__(self, detail: str = "", *, status: int | None = None, code: str = "") -> None:
        super().__init__(detail or self.summary)
        self.detail = detail or self.summary
        self.status = status
        self.code = code
        self.stale: Any = None
        self.stale_at: float | None = None  # epoch seconds of the stale copy
        self.retry_after: float | None = None


class NotFound(UpstreamError):
    summary = "Not found"


class AuthenticationFailed(UpstreamError):
    summary = "The Conversation API refused our credentials (401/403)"


class RateLimited(UpstreamError):
    summary = "The Conversation API is rate limiting us (429)"


class Unavailable(UpstreamError):
    summary = "The Conversation API is unavailable"


class StillLoading(Unavailable):
    """A read did not finish within the page's budget (UPSTREAM_PAGE_BUDGET_SECONDS).

    The read goes on in the background and fills the cache, so asking again a moment later usually
    answers at once. `stale` holds the last good data, if any.
    """

    summary = "Still loading from the Conversation API"


class BadResponse(UpstreamError):
    summary = "The Conversation API sent a response we could not read"


class BadRequest(UpstreamError):
    summary = "The Conversation API rejected the request (400)"


class NotConfigured(UpstreamError):
    """The dashboard cannot sign requests: its private key is missing or unreadable."""

    summary = "The dashboard's Vonage private key could not be loaded"


def copy_error(error: UpstreamError) -> UpstreamError:
    """A fresh copy of a shared (cached) error, so each reader can attach its own stale data."""
    copy = type(error)(error.detail, status=error.status, code=error.code)
    copy.retry_after = error.retry_after
    return copy
