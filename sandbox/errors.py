"""Vonage-style error bodies (API.md section 6): title, type, code, detail, instance.

The live API is not fully consistent: the recorded user 404 has no ``code`` and its ``type`` is on
developer.vonage.com, while every other error uses developer.nexmo.com. We reproduce both so
that clients key off the status first, as API.md recommends.
"""

from __future__ import annotations

import uuid
from typing import Any

NEXMO_DOCS = "https://developer.nexmo.com/api/conversation#"
VONAGE_DOCS = "https://developer.vonage.com/api/conversation#"


class ApiError(Exception):
    """Raised by handlers; the app turns it into a JSON error response."""

    def __init__(
        self, status: int, body: dict[str, Any], headers: list[tuple[str, str]] | None = None
    ) -> None:
        super().__init__(f"{status} {body.get('code') or body.get('type')}")
        self.status = status
        self.body = body
        self.headers = headers or []


def instance_id() -> str:
    """32 hex chars, like the live ``instance`` field (a request trace id, not reproducible)."""
    return uuid.uuid4().hex


def error_body(
    title: str,
    code: str,
    detail: str,
    *,
    docs: str = NEXMO_DOCS,
    include_code: bool = True,
    invalid_parameters: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"title": title, "type": docs + code}
    if include_code:
        body["code"] = code
    body["detail"] = detail
    body["instance"] = instance_id()
    if invalid_parameters is not None:
        body["invalid_parameters"] = invalid_parameters
    return body


def invalid_token() -> ApiError:
    return ApiError(
        401,
        error_body(
            "Unauthorized",
            "system:error:invalid-token",
            "You did not provide a valid token. Please provide a valid token.",
        ),
    )


def validation_failed(invalid: list[tuple[str, str]]) -> ApiError:
    """400 with every invalid parameter listed; ``detail`` repeats the first reason."""
    params = [{"name": name, "reason": reason} for name, reason in invalid]
    return ApiError(
        400,
        error_body(
            "Bad request.",
            "http:error:validation-fail",
            invalid[0][1],
            invalid_parameters=params,
        ),
    )


def conversation_not_found() -> ApiError:
    return ApiError(
        404,
        error_body(
            "Not found.",
            "conversation:error:not-found",
            "Conversation does not exist, or you do not have access.",
        ),
    )


def member_not_found() -> ApiError:
    return ApiError(
        404,
        error_body(
            "Not found.",
            "conversation:error:member-not-found",
            "Member does not exist, or you do not have access.",
        ),
    )


def event_not_found() -> ApiError:
    return ApiError(
        404,
        error_body(
            "Not found.",
            "event:error:not-found",
            "Event does not exist, or you do not have access.",
        ),
    )


def user_not_found() -> ApiError:
    # Exactly like examples/error_user_not_found.v1.json: no "code", type on developer.vonage.com.
    return ApiError(
        404,
        error_body(
            "Not found.",
            "user:error:not-found",
            "User does not exist, or you do not have access.",
            docs=VONAGE_DOCS,
            include_code=False,
        ),
    )


def path_not_found() -> ApiError:
    return ApiError(
        404,
        error_body("Not found.", "http:error:not-found", "The requested resource does not exist."),
    )


def method_not_allowed(allowed: str) -> ApiError:
    return ApiError(
        405,
        error_body(
            "Method Not Allowed.",
            "http:error:method-not-allowed",
            "The requested method is not allowed for this resource.",
        ),
        headers=[("Allow", allowed)],
    )


def internal_error() -> ApiError:
    return ApiError(
        500,
        error_body("Internal Error.", "system:error:internal-error", "Something went wrong."),
    )


def rate_limited(retry_after: int) -> ApiError:
    return ApiError(
        429,
        error_body(
            "Too Many Requests.",
            "http:error:too-many-requests",
            "You have exceeded the rate limit. Please retry later.",
        ),
        headers=[("Retry-After", str(retry_after))],
    )


def sandbox_error(status: int, detail: str, code: str = "sandbox:error:bad-request") -> ApiError:
    """Errors of the /_sandbox control endpoints (same body format, sandbox-specific code)."""
    titles = {400: "Bad request.", 404: "Not found.", 405: "Method Not Allowed."}
    return ApiError(status, error_body(titles.get(status, "Error."), code, detail))


def service_unavailable(retry_after: int) -> ApiError:
    return ApiError(
        503,
        error_body(
            "Service Unavailable.",
            "system:error:service-unavailable",
            "The service is temporarily unavailable. Please retry later.",
        ),
        headers=[("Retry-After", str(retry_after))],
    )


def duplicate_conversation_name() -> ApiError:
    return ApiError(
        409,
        error_body(
            "Conflict.",
            "conversation:error:duplicate-name",
            "We found an existing conversation with the same name.",
        ),
    )
