"""Storing events: one transaction per delivery, idempotent, and order-independent.

Idempotency comes from the unique constraint on (conversation, event id): an insert that conflicts
is a duplicate and changes nothing. Derived state (each member's state, the conversation's last
event, live or ended) is recomputed from what is stored after every new event, under a row lock on
the conversation, so it follows the highest event id applied, whatever the order of arrival.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from conversations import ids
from conversations.push import notices
from conversations.schema import parse_time

from . import search_index
from .models import Application, StoredConversation, StoredEvent, StoredMember, WebhookReceipt

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
MEMBER_STATES = {"member:invited": "INVITED", "member:joined": "JOINED", "member:left": "LEFT"}
MAX_TYPE_LENGTH = 100
MAX_EVENT_ID = 2**31 - 1  # the column is a 32-bit integer on PostgreSQL
# What ingestion derives and writes back (the rest of the row is the reconciler's).
DERIVED_FIELDS = [
    "last_event_id",
    "last_event_type",
    "last_event_at",
    "contiguous_event_id",
    "started_at",
    "ended_at",
    "deleted_upstream_at",
    "joined_count",
    "is_live",
]


class BadEvent(ValueError):
    """An event body whose fields cannot be trusted enough to store as a conversation's event."""


class Replay(Exception):
    """A webhook whose jti was accepted before."""


@dataclass(frozen=True)
class EventFields:
    conversation_id: str  # "" for events that belong to no conversation yet (app:knocking)
    event_id: int | None
    type: str
    from_member: str
    timestamp: dt.datetime | None

    @property
    def in_conversation(self) -> bool:
        """An event of a conversation, with its id there: what the store orders and dedupes."""
        return bool(self.conversation_id) and self.event_id is not None


def event_fields(body: dict[str, Any]) -> EventFields:
    """The columns of an event body (webhook or API item), validated before any of it is used."""
    event_type = body.get("type")
    if not isinstance(event_type, str) or not 0 < len(event_type) <= MAX_TYPE_LENGTH:
        raise BadEvent("type is missing or not a short string")
    conversation_id = body.get("conversation_id") or ""
    if conversation_id and not ids.is_valid("conversation", conversation_id):
        raise BadEvent("conversation_id is not a conversation id")
    raw_id = body.get("id")
    event_id: int | None = None
    if raw_id is not None:
        # Ids come as numbers or as strings of digits (API.md); nothing else is an event id.
        if isinstance(raw_id, bool) or not isinstance(raw_id, int | str):
            raise BadEvent("id is not an integer")
        try:
            event_id = int(raw_id)
        except ValueError:
            raise BadEvent("id is not an integer") from None
        if not 0 < event_id <= MAX_EVENT_ID:
            raise BadEvent("id is out of range")
    sender = body.get("from")
    return EventFields(
        conversation_id=ids.canonical(conversation_id) if conversation_id else "",
        event_id=event_id,
        type=event_type,
        from_member=sender[:100] if isinstance(sender, str) else "",
        timestamp=parse_time(body.get("timestamp")),
    )


# Application rows are created once and never deleted: each process remembers them, which saves
# a query on every webhook. (Tests, whose transactions roll rows back, forget them in between.)
_applications: dict[str, Application] = {}


def storable(value: Any) -> Any:
    """The value as PostgreSQL can store it in text and jsonb: NUL characters and lone surrogates
    (half an emoji) replaced by U+FFFD, NaN and infinities by None. One hostile string must not
    make a delivery fail for ever (a 5xx makes Vonage retry the same body)."""
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value) if _UNSTORABLE.search(value) else value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [storable(item) for item in value]
    return value


def application(vonage_id: str) -> Application:
    """The application's row, created on first use."""
    found = _applications.get(vonage_id)
    if found is None:
        found, created = Application.objects.get_or_create(vonage_id=vonage_id)
        if created and connection.vendor == "postgresql":
            # A table of one row is never analysed by autovacuum (it counts 50 changes first):
            # without statistics the planner takes it for 49 applications, and every page that
            # reads the application's conversations (search above all) is planned for a fraction
            # of them.
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE conversations_application")
        _applications[vonage_id] = found
    return found


def forget_applications() -> None:
    _applications.clear()


def store_webhook(app: Application, jti: str, body: dict[str, Any]) -> bool:
    """Store one verified webhook: its receipt and, when it is a conversation event, the event.

    All or nothing, in one transaction. Returns True when the event was new. Raises Replay when
    the jti was accepted before (nothing stored). A verified body that is no event the store can
    place (no id, an id that is no number, an unknown shape) is kept as a receipt: Vonage sent it,
    and a refusal would lose it for good.
    """
    body = storable(body)
    try:
        fields: EventFields | None = event_fields(body)
    except BadEvent:
        fields = None  # authentic, but no event the store can place: kept as a receipt only
    with transaction.atomic():
        stored = 0
        if fields is not None and fields.in_conversation:
            stored = _store(app, fields.conversation_id, [(fields, body)], StoredEvent.WEBHOOK)
        try:
            WebhookReceipt.objects.create(
                application=app,
                jti=jti,
                type=_short_text(body.get("type"), MAX_TYPE_LENGTH),
                conversation_vonage_id=fields.conversation_id if fields else "",
                event_id=fields.event_id if fields else None,
                # A new event's row holds its body: the receipt keeps no second copy.
                body=None if stored else body,
                stored=bool(stored),
            )
        except IntegrityError:
            # No savepoint needed: leaving the atomic block with Replay undoes the event too.
            raise Replay(jti) from None
        return bool(stored)


def _short_text(value: Any, length: int) -> str:
    return value[:length] if isinstance(value, str) else ""


def store_events(
    app: Application, conversation_id: str, bodies: Iterable[dict[str, Any]], source: str
) -> int:
    """Store events read from the API for one conversation; returns how many were new.

    Items that are not trustworthy events of this conversation are skipped (an API page is
    hostile input too), never stored under another conversation.
    """
    parsed = []
    for body in map(storable, bodies):
        try:
            fields = event_fields({"conversation_id": conversation_id, **body})
        except BadEvent:
            continue
        if fields.in_conversation and fields.conversation_id == conversation_id:
            parsed.append((fields, body))
    with transaction.atomic():
        return _store(app, conversation_id, parsed, source)


def conversation_row(app: Application, conversation_id: str) -> StoredConversation:
    """The conversation's row, created when first seen, locked until the transaction ends.

    The lock serialises the writers of one conversation (their derived state would race), and
    only them: other conversations ingest in parallel.
    """
    locked = StoredConversation.objects.select_for_update()
    row = locked.filter(application=app, vonage_id=conversation_id).first()
    if row is None:
        StoredConversation.objects.get_or_create(application=app, vonage_id=conversation_id)
        row = locked.get(application=app, vonage_id=conversation_id)
    return row


def _store(
    app: Application,
    conversation_id: str,
    events: list[tuple[EventFields, dict[str, Any]]],
    source: str,
) -> int:
    conversation = conversation_row(app, conversation_id)
    if not events:
        return 0
    rows = [
        StoredEvent(
            conversation=conversation,
            event_id=fields.event_id,
            type=fields.type,
            from_member=fields.from_member,
            timestamp=fields.timestamp,
            body=body,
            source=source,
        )
        for fields, body in events
    ]
    # Under the conversation's row lock nobody else inserts its events, so the row tells most of
    # what is stored without a query: every id up to the contiguous mark is (or was, before the
    # retention: not to be stored again), none above the newest is. Only ids in a gap between
    # the two need a look. (ignore_conflicts still guards a batch that repeats an id.)
    contiguous, newest = conversation.contiguous_event_id, conversation.last_event_id
    existing = {row.event_id for row in rows if row.event_id <= contiguous}
    unsure = [row.event_id for row in rows if contiguous < row.event_id <= newest]
    if unsure:
        existing |= set(
            StoredEvent.objects.filter(conversation=conversation, event_id__in=unsure).values_list(
                "event_id", flat=True
            )
        )
    new = [row for row in rows if row.event_id not in existing]
    search_index.index_events(conversation, new)
    StoredEvent.objects.bulk_create(new, ignore_conflicts=True)
    if new:
        applied = [(f, b) for f, b in events if f.event_id not in existing]
        changed_members = _apply_members(conversation, applied)
        was_live = conversation.is_live
        _advance(conversation, [f for f, _ in applied], bool(changed_members))
        notices.conversation_changed(
            conversation_id,
            newest_event_id=conversation.last_event_id,
            members=bool(changed_members),
            board=was_live or conversation.is_live,
            user_ids=[member.user_id for member in changed_members if member.user_id],
        )
    return len({row.event_id for row in new})


def _apply_members(
    conversation: StoredConversation, events: list[tuple[EventFields, dict[str, Any]]]
) -> list[StoredMember]:
    """Membership events set a member's state only when newer than the one it has. Returns
    the members that a membership event was applied to."""
    changed: list[StoredMember] = []
    for fields, body in sorted(events, key=lambda pair: pair[0].event_id or 0):
        state = MEMBER_STATES.get(fields.type)
        payload = body.get("body") if isinstance(body.get("body"), dict) else {}
        member_id = payload.get("member_id") or fields.from_member
        if state is None or not ids.is_valid("member", member_id):
            continue
        member, _ = StoredMember.objects.get_or_create(
            conversation=conversation, vonage_id=ids.canonical(member_id)
        )
        newer = fields.event_id > member.state_event_id
        _fill_member(member, payload, overwrite=newer)
        if newer:
            member.state = state
            member.state_event_id = fields.event_id
        member.save()
        changed.append(member)
    return changed


def _fill_member(member: StoredMember, payload: dict[str, Any], *, overwrite: bool) -> None:
    """What a membership event body says about the member. The newest event (by id) wins; an
    older one arriving late only fills what is still unknown, so arrival order never matters."""

    def put(field: str, value: Any) -> None:
        if value and (overwrite or not getattr(member, field)):
            setattr(member, field, value)

    user = payload.get("user") if isinstance(payload.get("user"), dict) else {}
    if ids.is_valid("user", user.get("id")):
        put("user_id", ids.canonical(user["id"]))
    put("user_name", _short_text(user.get("name"), 1000))
    channel = payload.get("channel")
    if isinstance(channel, dict) and channel:
        put("channel", channel)
        put("channel_type", _short_text(channel.get("type"), 40))
    stamps = payload.get("timestamp") if isinstance(payload.get("timestamp"), dict) else {}
    for key in ("invited", "joined", "left"):
        put(f"{key}_at", parse_time(stamps.get(key)))


def _advance(
    conversation: StoredConversation, new: list[EventFields], members_changed: bool
) -> None:
    """Derived state after new events, from what is already known plus those events: the usual
    webhook (the next id, not a membership event) costs no query beyond the row's update."""
    top = max(new, key=lambda fields: fields.event_id or 0)
    if top.event_id > conversation.last_event_id:
        conversation.last_event_id = top.event_id
        conversation.last_event_type = top.type
        conversation.last_event_at = top.timestamp or conversation.last_event_at
    new_ids = {fields.event_id for fields in new}
    if conversation.contiguous_event_id + 1 in new_ids:
        _walk_contiguous(conversation, new_ids)
    stamps = [fields.timestamp for fields in new if fields.timestamp is not None]
    if stamps and (conversation.started_at is None or min(stamps) < conversation.started_at):
        conversation.started_at = min(stamps)
    deleted = [fields for fields in new if fields.type == "conversation:deleted"]
    if deleted and conversation.deleted_upstream_at is None:
        conversation.deleted_upstream_at = deleted[0].timestamp or timezone.now()
    if members_changed:
        _derive_membership(conversation)
    _derive_liveness(conversation)
    conversation.save(update_fields=DERIVED_FIELDS)


def _walk_contiguous(conversation: StoredConversation, new_ids: set[int]) -> None:
    """Every id up to `contiguous_event_id` is stored: walk on from the last known point (from
    the new ids alone when they reach the newest stored id, else through the stored ones)."""
    contiguous = conversation.contiguous_event_id
    while contiguous + 1 in new_ids:
        contiguous += 1
    if contiguous < conversation.last_event_id:  # a gap was just filled: more may follow it
        stored = (
            StoredEvent.objects.filter(conversation=conversation, event_id__gt=contiguous)
            .order_by("event_id")
            .values_list("event_id", flat=True)
        )
        for event_id in stored.iterator():
            if event_id != contiguous + 1:
                break
            contiguous = event_id
    conversation.contiguous_event_id = contiguous


def _derive_membership(conversation: StoredConversation) -> None:
    """Joined members, and the end: the API's word, else the last member leaving."""
    members = list(conversation.members.values("state", "left_at"))
    conversation.joined_count = sum(1 for m in members if m["state"] == "JOINED")
    api_ended = _api_ended_at(conversation.api_body)
    if api_ended is not None:
        conversation.ended_at = api_ended
    elif members and all(m["state"] == "LEFT" for m in members):
        lefts = [m["left_at"] for m in members if m["left_at"] is not None]
        conversation.ended_at = max(lefts) if lefts else conversation.last_event_at
    else:
        conversation.ended_at = None


def _derive_liveness(conversation: StoredConversation) -> None:
    conversation.is_live = (
        conversation.joined_count > 0
        and conversation.ended_at is None
        and conversation.deleted_upstream_at is None
    )


def refresh_conversation(conversation: StoredConversation) -> None:
    """Recompute everything the stored events and members say about the conversation (after
    the API's answer changed, or to repair): the slow, complete form of `_advance`."""
    events = StoredEvent.objects.filter(conversation=conversation)
    newest = events.order_by("-event_id").values("event_id", "type", "timestamp").first()
    if newest is not None:
        conversation.last_event_id = newest["event_id"]
        conversation.last_event_type = newest["type"]
        conversation.last_event_at = newest["timestamp"] or conversation.last_event_at
    # Walked on from where it is, never back from 0: ids below it may have been deleted by the
    # retention since, and must not be read from the API again.
    _walk_contiguous(conversation, set())
    if conversation.started_at is None:
        conversation.started_at = (
            events.exclude(timestamp=None)
            .order_by("timestamp")
            .values_list("timestamp", flat=True)
            .first()
        )
    _derive_membership(conversation)
    _derive_liveness(conversation)
    conversation.save()


def _api_ended_at(api_body: Any) -> dt.datetime | None:
    """The end the API reported (state INACTIVE, or a `destroyed` time), or None."""
    if not isinstance(api_body, dict):
        return None
    timestamps = api_body.get("timestamp") if isinstance(api_body.get("timestamp"), dict) else {}
    destroyed = parse_time(timestamps.get("destroyed"))
    if destroyed is not None:
        return destroyed
    if api_body.get("state") == "INACTIVE":
        return parse_time(timestamps.get("updated")) or timezone.now()
    return None


def record_api_conversation(app: Application, body: dict[str, Any]) -> StoredConversation | None:
    """Keep what the API says about a conversation (GET /v1/conversations/{id} or a list item)."""
    body = storable(body)
    conversation_id = body.get("id")
    if not ids.is_valid("conversation", conversation_id):
        return None
    with transaction.atomic():
        conversation = conversation_row(app, ids.canonical(conversation_id))
        for key in ("name", "display_name"):
            if isinstance(body.get(key), str):
                setattr(conversation, key, body[key][:1000])
        timestamps = body.get("timestamp") if isinstance(body.get("timestamp"), dict) else {}
        created = parse_time(timestamps.get("created"))
        if created is not None:
            conversation.started_at = created
        if "state" in body or "sequence_number" in body:  # a full answer, not a list item
            conversation.api_body = body
        conversation.reconciled_at = timezone.now()
        was_live = conversation.is_live
        refresh_conversation(conversation)
        search_index.index_conversation(conversation)
        # The header shows what the API said; the board, a conversation that is or was live.
        notices.conversation_changed(conversation.vonage_id, board=was_live or conversation.is_live)
        return conversation


def mark_deleted_upstream(app: Application, conversation_id: str) -> None:
    """The API no longer has it (404): its stored history stays, marked as such."""
    marked = StoredConversation.objects.filter(
        application=app, vonage_id=conversation_id, deleted_upstream_at__isnull=True
    ).update(deleted_upstream_at=timezone.now(), is_live=False)
    if marked:
        notices.conversation_changed(conversation_id, board=True)
