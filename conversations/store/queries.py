"""Reads of the event store for the pages, in the shapes the pages already show.

The API client gives pages `schema.Conversation`, `schema.Member`, `schema.Event` and `schema.Page`;
so does this module, built from stored rows, so a template does not know where its data came from.
Stored bodies are hostile input like any API answer: they go through the same parsers, and a body
those parsers refuse still gives a row (its id and type), never a failed page.

Everything here reads the configured application only (settings.VONAGE_APPLICATION_ID), and never
writes: a page view does not create an application row or change stored state.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, replace
from typing import Any

from django.conf import settings
from django.db.models import Prefetch, Q, QuerySet

from conversations import ids, schema

from .models import Application, StoredConversation, StoredEvent, StoredMember

# The largest value an event id column holds (a 32-bit integer on PostgreSQL): a boundary past it,
# typed by hand in a cursor or a poll, is clamped rather than sent to the database.
MAX_STORED_EVENT_ID = 2**31 - 1
LIVE_BOARD_LIMIT = 500  # rows on the live board at most; more says "and more"
MEMBERS_LIMIT = 100  # members shown on a conversation's page (the API's one page)

# A stored events page cursor: "b123" = the events before id 123, "a123" = those after it.
EVENTS_CURSOR = re.compile(r"\A([ab])(\d{1,10})\Z")
# A stored conversation list cursor: the offset of the page's first row.
LIST_CURSOR = re.compile(r"\Ao(\d{1,7})\Z")

STATES = ("live", "ended", "deleted")


class BadCursor(ValueError):
    """A cursor that is not one of the store's (an API cursor, or typed by hand)."""


def current_application() -> Application | None:
    """The configured application's row, or None when nothing was ever stored for it."""
    return Application.objects.filter(vonage_id=settings.VONAGE_APPLICATION_ID).first()


def _conversations() -> QuerySet[StoredConversation]:
    return StoredConversation.objects.filter(application__vonage_id=settings.VONAGE_APPLICATION_ID)


# --- one conversation


def find(conversation_id: str) -> StoredConversation | None:
    """The stored conversation with this id, or None."""
    return _conversations().filter(vonage_id=conversation_id).first()


def has_history(stored: StoredConversation | None) -> bool:
    """Whether pages read this conversation from the store rather than the API: it has events,
    or the API is known to have deleted it (then the store is all there is)."""
    return stored is not None and (
        stored.last_event_id > 0 or stored.deleted_upstream_at is not None
    )


def conversation(stored: StoredConversation) -> schema.Conversation:
    """The conversation as the header shows it: the API's last answer when there is one, with
    what the events say since (its state, its last update) taking precedence."""
    base: schema.Conversation | None = None
    if isinstance(stored.api_body, dict):
        try:
            base = schema.parse_conversation(stored.api_body)
        except schema.ShapeError:
            base = None
    if base is None or base.id != stored.vonage_id:
        base = schema.Conversation(id=stored.vonage_id)
    return replace(
        base,
        name=stored.name or base.name,
        display_name=stored.display_name or base.display_name,
        state=_api_state(stored),
        created=base.created or stored.started_at,
        updated=_latest(base.updated, stored.last_event_at),
        sequence_number=base.sequence_number
        if base.sequence_number is not None
        else (stored.last_event_id or None),
    )


def _api_state(stored: StoredConversation) -> str:
    """The stored state in the API's words, so `Conversation.is_over` means what it means for an
    API answer: a conversation that ended or was deleted upstream is over."""
    if stored.deleted_upstream_at is not None:
        return "DELETED"
    if stored.ended_at is not None:
        return "INACTIVE"
    return "ACTIVE"


def _latest(*times: dt.datetime | None) -> dt.datetime | None:
    known = [t for t in times if t is not None]
    return max(known) if known else None


def member(row: StoredMember, conversation_id: str) -> schema.Member:
    """A stored member as the API's member record; its channel goes through the same parser."""
    try:
        channel = schema.parse_channel(row.channel) if row.channel else None
    except schema.ShapeError:
        channel = schema.Channel(type=row.channel_type)
    user = schema.UserRef(id=row.user_id, name=row.user_name) if row.user_id else None
    return schema.Member(
        id=row.vonage_id,
        state=row.state,
        user=user,
        conversation_id=conversation_id,
        invited=row.invited_at,
        joined=row.joined_at,
        left=row.left_at,
        channel=channel,
    )


def members(stored: StoredConversation, limit: int = MEMBERS_LIMIT) -> schema.Page[schema.Member]:
    """The conversation's members in the order they first appeared; `next_cursor` is set (to a
    marker, never linked) when there are more than `limit`."""
    rows = list(stored.members.order_by("id")[: limit + 1])
    items = [member(row, stored.vonage_id) for row in rows[:limit]]
    return schema.Page(items=items, next_cursor="more" if len(rows) > limit else None)


MEMBERSHIP_TYPES = ("member:invited", "member:joined", "member:left")


def find_member(stored: StoredConversation, member_id: str) -> schema.Member | None:
    """A member with what its membership events say beyond the stored columns (its initiator,
    audio settings, who invited it), from the newest of them that says it."""
    row = stored.members.filter(vonage_id=member_id).first()
    if row is None:
        return None
    found = member(row, stored.vonage_id)
    events = stored.events.filter(type__in=MEMBERSHIP_TYPES).filter(
        Q(from_member=member_id) | Q(body__body__member_id=member_id)
    )
    extra: dict[str, Any] = {}
    for body in events.order_by("event_id").values_list("body", flat=True)[:50]:
        payload = body.get("body") if isinstance(body, dict) else None
        if not isinstance(payload, dict):
            continue
        # The member an event is about, as ingestion reads it: body.member_id, else the sender.
        if (payload.get("member_id") or body.get("from")) != member_id:
            continue
        for key in ("initiator", "media", "invited_by", "knocking_id"):
            if payload.get(key) not in (None, "", {}):
                extra[key] = payload[key]
    if not extra:
        return found
    try:
        details = schema.parse_member({"id": member_id, **extra})
    except schema.ShapeError:
        return found
    return replace(
        found,
        initiators=details.initiators,
        audio_enabled=details.audio_enabled,
        audio_earmuffed=details.audio_earmuffed,
        audio_muted=details.audio_muted,
        invited_by=details.invited_by,
        knocking_id=details.knocking_id,
    )


def event(row: StoredEvent) -> schema.Event:
    """A stored event as the API's event record. A body the parser refuses still shows its id
    and type (the columns ingestion validated), with the raw body under Details."""
    body = row.body if isinstance(row.body, dict) else {}
    try:
        parsed = schema.parse_event(body)
    except schema.ShapeError:
        parsed = None
    if parsed is None or parsed.id != row.event_id:
        return schema.Event(
            id=row.event_id,
            type=row.type or "(no type)",
            from_=row.from_member,
            timestamp=row.timestamp,
            raw=body,
        )
    return parsed


def events_page(
    stored: StoredConversation,
    *,
    page_size: int,
    order: str,
    cursor: str | None,
    event_type: str | None,
) -> schema.Page[schema.Event]:
    """One page of stored events, paged by event id (keyset, so a page never shifts as events
    arrive). Cursors: "b<id>" the events before that id, "a<id>" those after it.

    Raises BadCursor for a cursor that is not the store's (an API cursor from before the page
    switched to the store, or one typed by hand).
    """
    events = stored.events.all()
    if event_type:
        events = events.filter(type=event_type)
    desc = order == "desc"
    kind: str | None = None
    if cursor:
        match = EVENTS_CURSOR.match(cursor)
        if not match:
            raise BadCursor(cursor)
        kind, boundary = match.group(1), min(int(match.group(2)), MAX_STORED_EVENT_ID)
        if kind == "a":
            events = events.filter(event_id__gt=boundary)
        else:
            events = events.filter(event_id__lt=boundary)
    # Forward is the way "Next" goes: to older events newest-first, to newer ones oldest-first.
    forward_kind = "b" if desc else "a"
    backward_kind = "a" if desc else "b"
    forward = kind is None or kind == forward_kind
    walk_desc = desc if forward else not desc
    rows = list(events.order_by("-event_id" if walk_desc else "event_id")[: page_size + 1])
    more = len(rows) > page_size
    rows = rows[:page_size]
    if not forward:
        rows.reverse()
    if not rows:
        return schema.Page(items=[], page_size=page_size)
    first, last = rows[0].event_id, rows[-1].event_id
    has_next = more if forward else True
    has_prev = (kind is not None) if forward else more
    return schema.Page(
        items=[event(row) for row in rows],
        next_cursor=f"{forward_kind}{last}" if has_next else None,
        prev_cursor=f"{backward_kind}{first}" if has_prev else None,
        page_size=page_size,
    )


def events_after(
    stored: StoredConversation, after: int, *, limit: int, event_type: str | None
) -> tuple[list[schema.Event], bool]:
    """The events after id `after`, oldest first, at most `limit`; and whether there were more."""
    events = stored.events.filter(event_id__gt=min(after, MAX_STORED_EVENT_ID))
    if event_type:
        events = events.filter(type=event_type)
    rows = list(events.order_by("event_id")[: limit + 1])
    return [event(row) for row in rows[:limit]], len(rows) > limit


# --- lists


@dataclass(frozen=True)
class LiveRow:
    """One conversation on the live board."""

    id: str
    name: str
    display_name: str
    started: dt.datetime | None
    duration: dt.timedelta | None
    joined: list[schema.Member]
    channel_types: list[str]
    last_event_type: str
    last_event_at: dt.datetime | None
    linkable: bool  # a well-formed id (a link); any other is shown as text only


def live_board(now: dt.datetime, limit: int = LIVE_BOARD_LIMIT) -> tuple[list[LiveRow], bool]:
    """The conversations live now, most recently started first; and whether there were more."""
    joined = StoredMember.objects.filter(state="JOINED").order_by("id")
    rows = list(
        _conversations()
        .filter(is_live=True)
        .prefetch_related(Prefetch("members", queryset=joined, to_attr="joined_members"))
        .order_by("-started_at", "-id")[: limit + 1]
    )
    board = []
    for row in rows[:limit]:
        joined_members = [member(m, row.vonage_id) for m in row.joined_members]
        board.append(
            LiveRow(
                id=row.vonage_id,
                name=row.name,
                display_name=row.display_name,
                started=row.started_at,
                duration=(now - row.started_at) if row.started_at else None,
                joined=joined_members,
                channel_types=sorted(
                    {m.channel.type for m in joined_members if m.channel and m.channel.type}
                ),
                last_event_type=row.last_event_type,
                last_event_at=row.last_event_at,
                linkable=ids.is_valid("conversation", row.vonage_id),
            )
        )
    return board, len(rows) > limit


def states(conversation_ids: list[str]) -> dict[str, StoredConversation]:
    """The stored conversations among these ids (for the list's State column)."""
    return {row.vonage_id: row for row in _conversations().filter(vonage_id__in=conversation_ids)}


def in_state(
    state: str = "",
    *,
    date_start: dt.datetime | None = None,
    date_end: dt.datetime | None = None,
) -> QuerySet[StoredConversation]:
    """The stored conversations in `state` (live, ended, deleted; "": any) started between the
    dates: the conversation list's filters, for its stored pages and its export."""
    rows = _conversations()
    if state == "live":
        rows = rows.filter(is_live=True)
    elif state == "ended":
        rows = rows.filter(ended_at__isnull=False, deleted_upstream_at__isnull=True)
    elif state == "deleted":
        rows = rows.filter(deleted_upstream_at__isnull=False)
    elif state:
        raise ValueError(state)
    if date_start is not None:
        rows = rows.filter(started_at__gte=date_start)
    if date_end is not None:
        rows = rows.filter(started_at__lte=date_end)
    return rows


def conversations_in_state(
    state: str,
    *,
    page_size: int,
    order: str,
    cursor: str | None,
    date_start: dt.datetime | None,
    date_end: dt.datetime | None,
) -> schema.Page[schema.Conversation]:
    """A page of the stored conversations in `state` (live, ended or deleted), by start time."""
    if not state:
        raise ValueError(state)
    rows = in_state(state, date_start=date_start, date_end=date_end)
    offset = 0
    if cursor:
        match = LIST_CURSOR.match(cursor)
        if not match:
            raise BadCursor(cursor)
        offset = int(match.group(1))
    ordering = ("-started_at", "-id") if order == "desc" else ("started_at", "id")
    found = list(rows.order_by(*ordering)[offset : offset + page_size + 1])
    items = [conversation(row) for row in found[:page_size]]
    return schema.Page(
        items=items,
        next_cursor=f"o{offset + page_size}" if len(found) > page_size else None,
        prev_cursor=f"o{max(offset - page_size, 0)}" if offset else None,
        page_size=page_size,
    )


USER_MEMBERSHIPS_LIMIT = 50


def user_memberships(user_id: str, limit: int = USER_MEMBERSHIPS_LIMIT) -> list[StoredMember]:
    """The stored memberships of a user, the most recent conversations first (at most `limit`),
    each with its conversation (`.conversation`) for its name and state."""
    return list(
        StoredMember.objects.filter(
            user_id=user_id, conversation__application__vonage_id=settings.VONAGE_APPLICATION_ID
        )
        .select_related("conversation")
        .order_by("-conversation__started_at", "-id")[:limit]
    )


# --- the live board's chart

STARTED_HOURS = 24


def conversations_started_per_hour(
    now: dt.datetime, hours: int = STARTED_HOURS
) -> list[tuple[dt.datetime, int]]:
    """How many conversations started in each of the last `hours` whole hours (UTC), the
    current hour (so far) last: `hours` pairs (start of the hour, count), hours with none
    included. Counted by the database (one GROUP BY over the started_at index); a start later
    than `now` (a clock ahead, a hostile timestamp) is not counted."""
    # Imported here, beside their only use, so that this chart's query stays in one place.
    from django.db.models import Count
    from django.db.models.functions import TruncHour

    current = now.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    first = current - dt.timedelta(hours=hours - 1)
    counted = (
        _conversations()
        .filter(started_at__gte=first, started_at__lte=now)
        .annotate(hour=TruncHour("started_at", tzinfo=dt.UTC))
        .values("hour")
        .annotate(count=Count("id"))
        .order_by()
    )
    by_hour = {row["hour"].astimezone(dt.UTC): row["count"] for row in counted}
    starts = [first + dt.timedelta(hours=i) for i in range(hours)]
    return [(start, by_hour.get(start, 0)) for start in starts]
