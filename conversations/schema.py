"""Typed records of the Conversation API v1, and the parsers that build them from JSON.

Upstream data is hostile input: a parser takes only the fields it knows, checks their types, and
raises `ShapeError` when a payload is not the shape the contract promises. Strings are kept as
given (templates escape them); ids that the dashboard turns into links are validated in `ids.py`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

T = TypeVar("T")

CONVERSATION_OVER_STATES = frozenset({"INACTIVE", "DELETED"})


class ShapeError(ValueError):
    """A payload is not the shape the API contract describes."""


# --- small typed readers


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ShapeError(f"{what} is not an object")
    return value


def _opt_obj(value: Any, what: str) -> dict[str, Any]:
    return {} if value is None else _obj(value, what)


def _str(value: Any, what: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ShapeError(f"{what} is not a string")
    return str(value)


def _required_str(data: dict[str, Any], key: str, what: str) -> str:
    value = _str(data.get(key), f"{what}.{key}")
    if not value:
        raise ShapeError(f"{what} has no {key}")
    return value


def _opt_int(value: Any, what: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ShapeError(f"{what} is not a number")
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: JSON's 1e999 is infinity
        raise ShapeError(f"{what} is not a number") from None


def _opt_bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def parse_time(value: Any) -> dt.datetime | None:
    """An ISO 8601 timestamp (`2019-09-03T18:40:24.324Z`) as an aware UTC datetime, or None.

    An unparsable time is shown as missing rather than failing the page: it is one field of many.
    """
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace(" ", "T", 1)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    try:
        return parsed.astimezone(dt.UTC)
    except OverflowError:  # year 1 or 9999 with an offset that leaves the calendar
        return None


def cursor_from_href(href: Any) -> str | None:
    """The `cursor` query value of a `_links` href, whatever host the href names.

    Vonage answers with absolute hrefs on regional hosts; the client re-sends the cursor to its
    configured base URL instead of following a host named by the response.
    """
    if not isinstance(href, str) or not href:
        return None
    values = parse_qs(urlsplit(href).query).get("cursor")
    return values[0] if values and values[0] else None


def _link_cursor(links: dict[str, Any], name: str) -> str | None:
    link = links.get(name)
    return cursor_from_href(link.get("href")) if isinstance(link, dict) else None


def _custom_data(value: Any, what: str) -> dict[str, Any]:
    return _opt_obj(value, what)


# --- records


@dataclass(frozen=True)
class Page[T]:
    """One page of a cursor-paged list. There is no total count in the API."""

    items: list[T]
    next_cursor: str | None = None
    prev_cursor: str | None = None
    page_size: int | None = None


@dataclass(frozen=True)
class UserRef:
    """A user as embedded in members and events."""

    id: str
    name: str = ""
    display_name: str = ""

    @property
    def label(self) -> str:
        return self.display_name or self.name or self.id


@dataclass(frozen=True)
class Conversation:
    id: str
    name: str = ""
    display_name: str = ""
    image_url: str = ""
    state: str = ""  # empty in list items: the list endpoint does not carry it
    sequence_number: int | None = None
    created: dt.datetime | None = None
    updated: dt.datetime | None = None
    destroyed: dt.datetime | None = None
    ttl: int | None = None
    type: str = ""
    custom_sort_key: str = ""
    custom_data: dict[str, Any] = field(default_factory=dict)
    # Only in a user's conversation list: that user's member in it.
    member_id: str = ""
    member_state: str = ""

    @property
    def is_over(self) -> bool:
        return self.state in CONVERSATION_OVER_STATES or self.destroyed is not None


@dataclass(frozen=True)
class Endpoint:
    """One side (`from` or `to`) of a member's channel."""

    type: str = ""
    address: str = ""  # number, uri, user or id, whichever the channel type has

    def __bool__(self) -> bool:
        return bool(self.type or self.address)


@dataclass(frozen=True)
class Channel:
    type: str = ""
    id: str = ""
    from_: Endpoint = field(default_factory=Endpoint)
    to: Endpoint = field(default_factory=Endpoint)
    leg_ids: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)  # cpa, ring_timeout and the rest


@dataclass(frozen=True)
class Initiator:
    action: str  # "invited" or "joined"
    is_system: bool | None = None
    user_id: str = ""
    member_id: str = ""


@dataclass(frozen=True)
class Member:
    id: str
    state: str = ""
    user: UserRef | None = None
    conversation_id: str = ""
    invited: dt.datetime | None = None
    joined: dt.datetime | None = None
    left: dt.datetime | None = None
    initiators: list[Initiator] = field(default_factory=list)
    channel: Channel | None = None
    audio_enabled: bool | None = None
    audio_earmuffed: bool | None = None
    audio_muted: bool | None = None
    knocking_id: str = ""
    invited_by: str = ""

    @property
    def label(self) -> str:
        return self.user.label if self.user else self.id


@dataclass(frozen=True)
class Event:
    id: int
    type: str
    from_: str = ""  # a MEM- id, or knocker:…
    timestamp: dt.datetime | None = None
    body: dict[str, Any] = field(default_factory=dict)
    from_user: UserRef | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class UserChannel:
    type: str
    address: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class User:
    id: str
    name: str = ""
    display_name: str = ""
    image_url: str = ""
    custom_data: dict[str, Any] = field(default_factory=dict)
    channels: list[UserChannel] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.display_name or self.name or self.id


@dataclass(frozen=True)
class Session:
    id: str
    ttl: int | None = None
    user_id: str = ""
    user_name: str = ""


# --- parsers


def parse_user_ref(data: Any) -> UserRef | None:
    if data is None:
        return None
    data = _obj(data, "user")
    if not data.get("id"):
        return None
    return UserRef(
        id=_str(data.get("id"), "user.id"),
        name=_str(data.get("name"), "user.name"),
        display_name=_str(data.get("display_name"), "user.display_name"),
    )


def parse_conversation(data: Any) -> Conversation:
    data = _obj(data, "conversation")
    timestamp = _opt_obj(data.get("timestamp"), "conversation.timestamp")
    properties = _opt_obj(data.get("properties"), "conversation.properties")
    membership = data.get("_embedded")
    membership = membership if isinstance(membership, dict) else {}
    return Conversation(
        id=_required_str(data, "id", "conversation"),
        name=_str(data.get("name"), "conversation.name"),
        display_name=_str(data.get("display_name"), "conversation.display_name"),
        image_url=_str(data.get("image_url"), "conversation.image_url"),
        state=_str(data.get("state"), "conversation.state").upper(),
        sequence_number=_opt_int(data.get("sequence_number"), "conversation.sequence_number"),
        created=parse_time(timestamp.get("created")),
        updated=parse_time(timestamp.get("updated")),
        destroyed=parse_time(timestamp.get("destroyed")),
        ttl=_opt_int(properties.get("ttl"), "conversation.properties.ttl"),
        type=_str(properties.get("type"), "conversation.properties.type"),
        custom_sort_key=_str(properties.get("custom_sort_key"), "custom_sort_key"),
        custom_data=_custom_data(properties.get("custom_data"), "conversation custom_data"),
        member_id=_str(membership.get("id"), "conversation._embedded.id"),
        member_state=_str(membership.get("state"), "conversation._embedded.state").upper(),
    )


def _parse_endpoint(data: Any) -> Endpoint:
    data = _opt_obj(data, "channel endpoint")
    address = ""
    for key in ("number", "uri", "user", "id", "extension"):
        if data.get(key) not in (None, ""):
            address = _str(data.get(key), f"channel endpoint.{key}")
            break
    return Endpoint(type=_str(data.get("type"), "channel endpoint.type"), address=address)


def parse_channel(data: Any) -> Channel | None:
    if data is None:
        return None
    data = _obj(data, "channel")
    leg_ids = data.get("leg_ids") or []
    if not isinstance(leg_ids, list):
        raise ShapeError("channel.leg_ids is not a list")
    known = {"type", "id", "from", "to", "leg_ids"}
    return Channel(
        type=_str(data.get("type"), "channel.type"),
        id=_str(data.get("id"), "channel.id"),
        from_=_parse_endpoint(data.get("from")),
        to=_parse_endpoint(data.get("to")),
        leg_ids=[_str(leg, "channel.leg_ids[]") for leg in leg_ids],
        settings={k: v for k, v in data.items() if k not in known},
    )


def _parse_initiators(data: Any) -> list[Initiator]:
    initiators = []
    for action, details in _opt_obj(data, "member.initiator").items():
        if not isinstance(details, dict):
            continue
        is_system = details.get("is_system", details.get("isSystem"))  # v0.3 spells it isSystem
        initiators.append(
            Initiator(
                action=_str(action, "initiator action"),
                is_system=_opt_bool(is_system),
                user_id=_str(details.get("user_id"), "initiator.user_id"),
                member_id=_str(details.get("member_id"), "initiator.member_id"),
            )
        )
    return initiators


def parse_member(data: Any) -> Member:
    data = _obj(data, "member")
    embedded = _opt_obj(data.get("_embedded"), "member._embedded")
    timestamp = _opt_obj(data.get("timestamp"), "member.timestamp")
    media = _opt_obj(data.get("media"), "member.media")
    audio = _opt_obj(media.get("audio_settings"), "member.media.audio_settings")
    return Member(
        id=_required_str(data, "id", "member"),
        state=_str(data.get("state"), "member.state").upper(),
        user=parse_user_ref(embedded.get("user")),
        conversation_id=_str(data.get("conversation_id"), "member.conversation_id"),
        invited=parse_time(timestamp.get("invited")),
        joined=parse_time(timestamp.get("joined")),
        left=parse_time(timestamp.get("left")),
        initiators=_parse_initiators(data.get("initiator")),
        channel=parse_channel(data.get("channel")),
        audio_enabled=_opt_bool(audio.get("enabled")),
        audio_earmuffed=_opt_bool(audio.get("earmuffed")),
        audio_muted=_opt_bool(audio.get("muted")),
        knocking_id=_str(data.get("knocking_id"), "member.knocking_id"),
        invited_by=_str(data.get("invited_by"), "member.invited_by"),
    )


def parse_event(data: Any) -> Event:
    data = _obj(data, "event")
    event_id = _opt_int(data.get("id"), "event.id")  # a JSON number live, a string in the spec
    if event_id is None:
        raise ShapeError("event has no id")
    embedded = _opt_obj(data.get("_embedded"), "event._embedded")
    body = data.get("body")
    return Event(
        id=event_id,
        type=_str(data.get("type"), "event.type") or "(no type)",
        from_=_str(data.get("from"), "event.from"),
        timestamp=parse_time(data.get("timestamp")),
        body=body if isinstance(body, dict) else ({} if body is None else {"value": body}),
        from_user=parse_user_ref(embedded.get("from_user")),
        raw=data,
    )


def _parse_user_channels(data: Any) -> list[UserChannel]:
    channels = []
    for channel_type, entries in _opt_obj(data, "user.channels").items():
        if not isinstance(entries, list):
            continue
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            address = ""
            for key in ("number", "uri", "id", "extension"):
                if entry.get(key) not in (None, ""):
                    address = _str(entry.get(key), f"user channel {key}")
                    break
            # SIP passwords and websocket headers are credentials: never kept for display.
            details = {
                k: v for k, v in entry.items() if k not in {"password", "headers"} and k != key
            }
            channels.append(
                UserChannel(
                    type=_str(channel_type, "channel type"), address=address, details=details
                )
            )
    return channels


def parse_user(data: Any) -> User:
    data = _obj(data, "user")
    properties = _opt_obj(data.get("properties"), "user.properties")
    return User(
        id=_required_str(data, "id", "user"),
        name=_str(data.get("name"), "user.name"),
        display_name=_str(data.get("display_name"), "user.display_name"),
        image_url=_str(data.get("image_url"), "user.image_url"),
        custom_data=_custom_data(properties.get("custom_data"), "user custom_data"),
        channels=_parse_user_channels(data.get("channels")),
    )


def parse_session(data: Any) -> Session:
    data = _obj(data, "session")
    properties = _opt_obj(data.get("properties"), "session.properties")
    embedded = _opt_obj(data.get("_embedded"), "session._embedded")
    user = _opt_obj(embedded.get("user"), "session._embedded.user")
    return Session(
        id=_required_str(data, "id", "session"),
        ttl=_opt_int(properties.get("ttl"), "session.properties.ttl"),
        user_id=_str(user.get("id"), "session user id"),
        user_name=_str(user.get("name"), "session user name"),
    )


def list_items(payload: Any, key: str) -> list[Any]:
    """The items of a list response, allowing for the live quirks of `_embedded`.

    - `_embedded: {"<key>": [...]}`, the documented shape;
    - `_embedded: [...]`, a bare array (events, in the spec-derived SDKs);
    - no `_embedded` at all when the list is empty.
    """
    payload = _obj(payload, "list response")
    embedded = payload.get("_embedded")
    if embedded is None:
        # An empty list still has its paging fields; an object with none of them is not a list.
        if not ("page_size" in payload or "_links" in payload):
            raise ShapeError("list response has neither _embedded nor paging fields")
        return []
    if isinstance(embedded, list):
        return embedded
    if isinstance(embedded, dict):
        items = embedded.get(key, [])
        if isinstance(items, list):
            return items
    raise ShapeError(f"list response has no {key} list")


def parse_page(payload: Any, key: str, parse_item: Any, *, limit: int | None = None) -> Page[Any]:
    """One page of a list; with `limit`, items past it are dropped before they are parsed into
    records (a hostile upstream answering a page of 10 with 100,000 items shows 10; the body's
    size and complexity are capped by the transport)."""
    links = _opt_obj(payload.get("_links") if isinstance(payload, dict) else None, "_links")
    items = [parse_item(item) for item in list_items(payload, key)[:limit]]
    return Page(
        items=items,
        next_cursor=_link_cursor(links, "next") if items else None,
        prev_cursor=_link_cursor(links, "prev"),
        page_size=_opt_int(payload.get("page_size"), "page_size"),
    )
