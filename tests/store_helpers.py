"""Events as Vonage sends them, for tests that fill the event store through real ingestion."""

from __future__ import annotations

import itertools
from typing import Any

from django.conf import settings

from conversations.client import registry
from conversations.store import ingest
from conversations.store.models import Application

_jti = itertools.count(1)


def app() -> Application:
    """The configured application's row (the pages read this one only)."""
    return ingest.application(settings.VONAGE_APPLICATION_ID)


def stamp(second: int) -> str:
    minute, second = divmod(second, 60)
    return f"2026-11-27T09:{minute:02d}:{second:02d}.000Z"


def event(
    conversation_id: str,
    event_id: int,
    event_type: str,
    member_id: str = "",
    body: dict[str, Any] | None = None,
    second: int | None = None,
) -> dict[str, Any]:
    return {
        "application_id": settings.VONAGE_APPLICATION_ID,
        "conversation_id": conversation_id,
        "id": event_id,
        "type": event_type,
        "from": member_id,
        "timestamp": stamp(event_id if second is None else second),
        "body": body or {},
    }


def membership(
    conversation_id: str,
    event_id: int,
    kind: str,
    member_id: str,
    user_id: str,
    user_name: str,
    channel_type: str = "phone",
) -> dict[str, Any]:
    """A member:invited, member:joined or member:left event."""
    return event(
        conversation_id,
        event_id,
        f"member:{kind}",
        member_id,
        {
            "member_id": member_id,
            "user": {"id": user_id, "name": user_name},
            "channel": {
                "type": channel_type,
                "from": {"type": channel_type, "number": "447700900100"},
            },
            "timestamp": {kind: stamp(event_id)},
        },
    )


def webhook(body: dict[str, Any]) -> bool:
    """Store one event as a verified webhook would."""
    return ingest.store_webhook(app(), f"jti-{next(_jti)}", body)


def api_conversation(conversation_id: str, name: str, display_name: str = "", **extra: Any):
    """What GET /v1/conversations/{id} answers, kept by the store."""
    body = {
        "id": conversation_id,
        "name": name,
        "display_name": display_name,
        "state": "ACTIVE",
        "sequence_number": 0,
        "timestamp": {"created": stamp(0)},
        **extra,
    }
    return ingest.record_api_conversation(app(), body)


class NoUpstream:
    """A client that fails the test on any use: the page must not read the API."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the page read the API: client.{name}")


def forbid_upstream(monkeypatch) -> None:
    monkeypatch.setattr(registry, "_override", NoUpstream())
