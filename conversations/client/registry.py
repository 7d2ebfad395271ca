"""Which client serves which Vonage application: one per application, built from settings.

There is one application today; the registry is keyed by application id so that several can be
served later without touching the views. Each client has its own token, connection pool and
cache scope (keys carry the application id and the API base URL).
"""

from __future__ import annotations

from functools import cache

from django.conf import settings

from .config import ClientConfig
from .endpoints import ConversationClient

# Set by the test suite's `use_client` fixture: every view then uses that client.
_override: ConversationClient | None = None


def get_client(application_id: str | None = None) -> ConversationClient:
    """The process-wide client of an application (the configured one by default)."""
    if _override is not None:
        return _override
    application_id = application_id or settings.VONAGE_APPLICATION_ID
    if application_id != settings.VONAGE_APPLICATION_ID:
        raise LookupError("no such application is configured")
    return _client_for(application_id)


def forget_clients() -> None:
    """Drop the built clients (after settings change, in tests)."""
    _client_for.cache_clear()


@cache
def _client_for(application_id: str) -> ConversationClient:
    return ConversationClient(
        ClientConfig(
            base_url=settings.VONAGE_API_BASE_URL,
            application_id=application_id,
            private_key_pem=_private_key_pem(),
            connect_timeout=settings.UPSTREAM_CONNECT_TIMEOUT,
            read_timeout=settings.UPSTREAM_READ_TIMEOUT,
            total_budget=settings.UPSTREAM_TOTAL_BUDGET,
            page_budget=settings.UPSTREAM_PAGE_BUDGET_SECONDS,
            max_retries=settings.UPSTREAM_MAX_RETRIES,
            jwt_ttl_seconds=settings.VONAGE_JWT_TTL_SECONDS,
            cache_seconds=settings.UPSTREAM_CACHE_SECONDS,
            stale_seconds=settings.UPSTREAM_STALE_SECONDS,
            max_bytes=settings.UPSTREAM_MAX_BYTES,
            max_cooldown_seconds=settings.UPSTREAM_MAX_COOLDOWN_SECONDS,
        )
    )


def _private_key_pem() -> str:
    """The PEM text, or "" when the file is missing (on the sandbox before `make run` made it)."""
    if settings.VONAGE_PRIVATE_KEY:
        return settings.VONAGE_PRIVATE_KEY
    try:
        with open(settings.VONAGE_PRIVATE_KEY_PATH, encoding="utf-8") as key_file:
            return key_file.read()
    except OSError:
        return ""
