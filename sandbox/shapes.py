"""Render world records as the exact v1 JSON shapes (API.md section 4 and examples/).

Optional fields that are unset are omitted, as the live API does (e.g. users without a
display_name in examples/users_list.v1.json). ``base`` is the absolute origin for ``_links``.
"""

from __future__ import annotations

from typing import Any

from sandbox.model import Conversation, Event, Member, Session, User
from sandbox.timefmt import iso_ms


def _href(url: str) -> dict[str, str]:
    return {"href": url}


def conversation_url(base: str, conv_id: str) -> str:
    return f"{base}/v1/conversations/{conv_id}"


def user_url(base: str, user_id: str) -> str:
    return f"{base}/v1/users/{user_id}"


def _conv_timestamp(conv: Conversation) -> dict[str, str]:
    ts = {"created": iso_ms(conv.created), "updated": iso_ms(conv.updated)}
    if conv.destroyed is not None:
        ts["destroyed"] = iso_ms(conv.destroyed)
    return ts


def _names(obj: Conversation | User, out: dict[str, Any]) -> None:
    out["name"] = obj.name
    if obj.display_name is not None:
        out["display_name"] = obj.display_name
    if obj.image_url is not None:
        out["image_url"] = obj.image_url


def conversation_lite(base: str, conv: Conversation) -> dict[str, Any]:
    # No state/sequence_number/properties: "not all data is available in the list endpoint".
    out: dict[str, Any] = {"id": conv.id}
    _names(conv, out)
    out["timestamp"] = _conv_timestamp(conv)
    out["_links"] = {"self": _href(conversation_url(base, conv.id))}
    return out


def conversation(base: str, conv: Conversation) -> dict[str, Any]:
    out: dict[str, Any] = {"id": conv.id}
    _names(conv, out)
    out["state"] = conv.state
    out["sequence_number"] = conv.sequence_number
    out["timestamp"] = _conv_timestamp(conv)
    out["properties"] = conv.properties
    out["_links"] = {"self": _href(conversation_url(base, conv.id))}
    return out


def user_conversation(base: str, conv: Conversation, member: Member) -> dict[str, Any]:
    """Item of /v1/users/{id}/conversations: the full conversation plus the user's member."""
    out = conversation(base, conv)
    out["_embedded"] = {"id": member.id, "state": member.state}
    return out


def _embedded_user(base: str, user: User | None, user_id: str) -> dict[str, Any]:
    out: dict[str, Any] = {"id": user_id}
    if user is not None:
        out["name"] = user.name
        if user.display_name is not None:
            out["display_name"] = user.display_name
    out["_links"] = {"self": _href(user_url(base, user_id))}
    return out


def _member_href(base: str, member: Member) -> str:
    return f"{conversation_url(base, member.conversation_id)}/members/{member.id}"


def member_lite(base: str, member: Member, user: User | None) -> dict[str, Any]:
    return {
        "id": member.id,
        "state": member.state,
        "_embedded": {"user": _embedded_user(base, user, member.user_id)},
        # Not "self": members carry a bare "_links.href" (examples/members_list.v1.json).
        "_links": {"href": _member_href(base, member)},
    }


def member(base: str, m: Member, user: User | None) -> dict[str, Any]:
    timestamp = {}
    for key in ("invited", "joined", "left"):
        value = getattr(m, key)
        if value is not None:
            timestamp[key] = iso_ms(value)
    out: dict[str, Any] = {
        "id": m.id,
        "conversation_id": m.conversation_id,
        "_embedded": {"user": _embedded_user(base, user, m.user_id)},
        "state": m.state,
        "timestamp": timestamp,
        "initiator": m.initiator,
        "channel": m.channel,
        "media": m.media,
    }
    if m.knocking_id is not None:
        out["knocking_id"] = m.knocking_id
    if m.invited_by is not None:
        out["invited_by"] = m.invited_by
    out["_links"] = {"href": _member_href(base, m)}
    return out


def event(
    base: str,
    conv: Conversation,
    e: Event,
    users: dict[str, User] | Any,
    id_format: str = "number",
) -> dict[str, Any]:
    """``users`` maps user id -> User (anything with .get)."""
    out: dict[str, Any] = {
        "id": str(e.id) if id_format == "string" else e.id,
        "type": e.type,
    }
    if e.from_id is not None:
        out["from"] = e.from_id
    out["body"] = e.body
    out["timestamp"] = iso_ms(e.ts)
    sender = conv.member_index.get(e.from_id) if e.from_id else None
    if sender is not None:
        user = users.get(sender.user_id)
        from_user: dict[str, Any] = {"id": sender.user_id}
        if user is not None:
            from_user["name"] = user.name
            if user.display_name is not None:
                from_user["display_name"] = user.display_name
            if user.image_url is not None:
                from_user["image_url"] = user.image_url
            from_user["custom_data"] = user.custom_data
        out["_embedded"] = {"from_user": from_user, "from_member": {"id": sender.id}}
    out["_links"] = {"self": _href(f"{conversation_url(base, conv.id)}/events/{e.id}")}
    return out


def user_lite(base: str, user: User) -> dict[str, Any]:
    out: dict[str, Any] = {"id": user.id, "name": user.name}
    if user.display_name is not None:
        out["display_name"] = user.display_name
    out["_links"] = {"self": _href(user_url(base, user.id))}
    return out


def user(base: str, u: User) -> dict[str, Any]:
    out: dict[str, Any] = {"id": u.id}
    _names(u, out)
    out["properties"] = {"custom_data": u.custom_data}
    out["channels"] = u.channels
    out["_links"] = {"self": _href(user_url(base, u.id))}
    return out


def session(u: User, s: Session) -> dict[str, Any]:
    return {
        "id": s.id,
        "properties": {"ttl": s.ttl},
        "_embedded": {"user": {"id": u.id, "name": u.name}, "api_key": s.api_key},
    }
