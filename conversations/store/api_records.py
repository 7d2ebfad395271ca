"""What the API's typed records say, in the shapes the store keeps.

The client returns `schema` records; the store keeps raw bodies. Events carry theirs (`Event.raw`);
conversations and members do not, so they are written back here in the API's own shape (the
fields `ingest.record_api_conversation` and the member columns read).

Members read from the API fill only what newer events have not set. The list is a snapshot as of
some event id (`as_of`: the conversation's sequence number, or the last stored event id, taken
before the list was read): a member whose state came from a membership event of that id or later
is left alone, and a filled member gets `as_of` as its `state_event_id`, so a late webhook of an
older event cannot undo the API's newer answer, while a newer one still wins.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction

from conversations import ids
from conversations.schema import CONVERSATION_OVER_STATES, Channel, Conversation, Endpoint, Member

from . import ingest, search_index
from .models import Application, StoredConversation, StoredMember

MEMBER_STATES = ("INVITED", "JOINED", "LEFT")


def _iso(when: dt.datetime | None) -> str | None:
    return when.isoformat().replace("+00:00", "Z") if when is not None else None


def conversation_body(conversation: Conversation) -> dict[str, Any]:
    """The API's JSON for a conversation record. A list item (no state) stays a list item: the
    store keeps only full answers as `api_body`."""
    body: dict[str, Any] = {
        "id": conversation.id,
        "name": conversation.name,
        "display_name": conversation.display_name,
        "image_url": conversation.image_url,
        "timestamp": {
            key: value
            for key, value in (
                ("created", _iso(conversation.created)),
                ("updated", _iso(conversation.updated)),
                ("destroyed", _iso(conversation.destroyed)),
            )
            if value is not None
        },
    }
    if conversation.state:
        body["state"] = conversation.state
    if conversation.sequence_number is not None:
        body["sequence_number"] = conversation.sequence_number
    properties = {
        key: value
        for key, value in (
            ("ttl", conversation.ttl),
            ("type", conversation.type),
            ("custom_sort_key", conversation.custom_sort_key),
            ("custom_data", conversation.custom_data),
        )
        if value not in (None, "", {})
    }
    if properties:
        body["properties"] = properties
    return body


def _endpoint(endpoint: Endpoint) -> dict[str, Any]:
    return {"type": endpoint.type, "address": endpoint.address} if endpoint else {}


def channel_body(channel: Channel | None) -> dict[str, Any]:
    if channel is None:
        return {}
    body: dict[str, Any] = {"type": channel.type}
    if channel.id:
        body["id"] = channel.id
    if channel.from_:
        body["from"] = _endpoint(channel.from_)
    if channel.to:
        body["to"] = _endpoint(channel.to)
    if channel.leg_ids:
        body["leg_ids"] = list(channel.leg_ids)
    return body


def fill_members(
    app: Application, conversation_id: str, members: list[Member], *, as_of: int = 0
) -> int:
    """Store the API's members that no membership event as new as the list (`as_of`) has
    described; returns how many were filled. The conversation's derived state (live, ended) is
    then recomputed."""
    filled = 0
    with transaction.atomic():
        conversation = ingest.conversation_row(app, conversation_id)  # locked, like ingestion
        for member in members:
            if not ids.is_valid("member", member.id) or member.state not in MEMBER_STATES:
                continue
            row, _ = StoredMember.objects.get_or_create(
                conversation=conversation, vonage_id=ids.canonical(member.id)
            )
            if row.state_event_id > 0 and row.state_event_id >= as_of:
                continue  # an event at least as new as the list set it: events win
            _fill(row, member)
            row.state_event_id = max(as_of, 0)
            row.save()
            search_index.index_member(row)
            filled += 1
        if filled:
            ingest.refresh_conversation(conversation)
    return filled


def _fill(row: StoredMember, member: Member) -> None:
    row.state = member.state
    if member.user is not None and ids.is_valid("user", member.user.id):
        row.user_id = ids.canonical(member.user.id)
        row.user_name = (member.user.name or member.user.display_name)[:1000]
    channel = channel_body(member.channel)
    if channel.get("type"):
        row.channel = channel
        row.channel_type = channel["type"][:40]
    row.invited_at = member.invited or row.invited_at
    row.joined_at = member.joined or row.joined_at
    row.left_at = member.left or row.left_at


def is_over(conversation: StoredConversation) -> bool:
    """The API's last full answer says the conversation is over (INACTIVE, DELETED, destroyed)."""
    body = conversation.api_body
    if not isinstance(body, dict):
        return False
    stamps = body.get("timestamp") if isinstance(body.get("timestamp"), dict) else {}
    return body.get("state") in CONVERSATION_OVER_STATES or bool(stamps.get("destroyed"))
