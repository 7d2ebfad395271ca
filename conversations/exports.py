"""Exports: conversations, or one conversation's events, as a CSV or JSON file, streamed.

The files
- CSV: a header row, then one row per conversation or event (RFC 4180, UTF-8 without a byte order
  mark, `\\r\\n` line ends), written by Python's `csv` module.
- JSON: one array of objects: `[`, the objects joined by `,`, `]`; `[]` when nothing matches. An
  event's `body` is the stored body, embedded as the database gives its text (never parsed and
  serialised again), so it parses to exactly what is stored.
- Attachments (`Content-Disposition`) named after what they hold and the day (UTC):
  `conversations-live-2026-11-28.csv`, `CON-…-events-2026-11-28.json`, `search-<query>-….csv`.

Constant memory
Rows are read CHUNK_SIZE at a time by keyset (events: `event_id > last ORDER BY event_id LIMIT n`;
conversations: after the last (ordering column, pk) seen), as tuples (`values_list`), never as
model instances. Each chunk goes out as one piece of a `StreamingHttpResponse` (Django's "Streaming
large CSV files" recipe: a pseudo-buffer whose `write` returns what it is given), so the worker
holds one chunk at a time whatever the size of the export. The first chunk is read before the
response starts: a database that fails then gives an error page, not an empty file. A failure
later can only cut the download short (the browser reports it as failed; the JSON is then invalid).
An event export holds the events stored when it began (ids up to the conversation's newest then):
events arriving meanwhile are not chased.

Formula injection (OWASP "CSV injection")
Spreadsheets run a cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage return as a
formula (`=HYPERLINK(...)`, `@SUM(...)`, DDE payloads). In the CSV every such cell gets a leading
apostrophe `'`, which spreadsheets read as "this is text" (and do not show), EXCEPT a cell that is
exactly one phone number in E.164 (`^\\+[0-9]{6,15}$`): no spreadsheet runs that as a formula, and
staff need it intact. Conversations carry their members' numbers in a column of their own
(`numbers`), in E.164; a cell holding several numbers (`+447700900100; +14155550100`) is not one
number and gets the apostrophe like any other cell. The rule applies to every cell, whatever its
column. JSON is not neutralised: it is no spreadsheet format, and it holds exactly what is stored.

Personal data (issue 12): an export is made for the viewer of the request that asked for it,
taken when the response is made (the file is streamed after the view returned). For a viewer
without `conversations.view_pii`, `_masked_conversation` and `_masked_event` mask every row as
the pages do (conversations/privacy/masking.py), CSV and JSON alike; the bodies are then parsed
and written again (the fast path, the database's own JSON text, is for viewers who see it all).
History older than the viewer may see (SUPPORT_MAX_AGE_DAYS) is left out.
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from django.db.models import F, Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.http import HttpRequest, QueryDict, StreamingHttpResponse
from django.utils import timezone
from django.utils.http import content_disposition_header, urlencode

from conversations import audit
from conversations.privacy import masking, viewer
from conversations.store import queries, search_index
from conversations.store.models import StoredConversation, StoredEvent, StoredMember

CHUNK_SIZE = 2000  # rows read, and written out, at a time (tests set it small)
FORMATS = ("csv", "json")
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json"}
MEMBERS_PER_CONVERSATION = 100  # members named in a conversation's row; more says "and N more"
LIST_SEPARATOR = "; "  # between the items of a list cell in the CSV (members, numbers)
FILENAME_PART_LIMIT = 60

CONVERSATION_COLUMNS = (
    "id",
    "name",
    "display_name",
    "state",
    "started_at",
    "ended_at",
    "last_event_at",
    "members",
    "numbers",
)
EVENT_COLUMNS = ("conversation_id", "id", "type", "from", "timestamp", "source", "body")

_FORMULA_STARTS = frozenset("=+-@\t\r")
_E164 = re.compile(r"\+[0-9]{6,15}")
_NOT_FILENAME = re.compile(r"[^A-Za-z0-9]+")


class RawJSON:
    """JSON text as the database gave it: embedded as it is in a JSON export, a string in CSV.
    (A wrapper, not a str subclass, which would copy every body once more.)"""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


@dataclass(frozen=True)
class ExtraColumn:
    """One more column for a conversations export (the search's "matched"): `values` gets the
    pks of one chunk of conversations and answers a cell for each (a string, a list of strings,
    or None), so it reads at most CHUNK_SIZE conversations' worth at a time."""

    name: str
    values: Callable[[list[int]], Mapping[int, Any]]


# --- cells: the one place each kind of export's values come from (masking goes here)


@dataclass
class _People:
    """A conversation's members, as its row names them, and their numbers in E.164."""

    members: list[str] = field(default_factory=list)
    more: int = 0
    numbers: dict[str, None] = field(default_factory=dict)  # ordered, no repeats


def conversation_cells(row: tuple, people: _People | None, extra: tuple = ()) -> tuple:
    """One conversation's values, in CONVERSATION_COLUMNS order, then the extra column's."""
    _pk, vonage_id, name, display_name, deleted_at, is_live, ended_at, started_at, last_at = row
    # The model's own rule for the state (live, ended, deleted, waiting), on an unsaved row.
    state = StoredConversation(deleted_upstream_at=deleted_at, is_live=is_live, ended_at=ended_at)
    members, numbers = [], []
    if people is not None:
        members = people.members + ([f"and {people.more} more"] if people.more else [])
        numbers = list(people.numbers)
    return (
        vonage_id,
        name,
        display_name,
        state.state,
        started_at,
        ended_at,
        last_at,
        members,
        numbers,
        *extra,
    )


def event_cells(conversation_id: str, row: tuple) -> tuple:
    """One event's values, in EVENT_COLUMNS order; the body as the database's JSON text."""
    event_id, event_type, from_member, timestamp, source, body_text = row
    body = RawJSON(body_text) if body_text is not None else None
    return (conversation_id, event_id, event_type, from_member, timestamp, source, body)


def _masked_conversation(cells: tuple) -> tuple:
    """A conversation's cells as a viewer without personal data sees them: names scrubbed of
    numbers and addresses, each number its last 4 digits, the extra column masked like a page."""
    vonage_id, name, display_name, state, started, ended, last_at, members, numbers, *extra = cells
    return (
        vonage_id,
        masking.scrub(name),
        masking.scrub(display_name),
        state,
        started,
        ended,
        last_at,
        [masking.scrub(member) for member in members],
        [masking.number(number) for number in numbers],
        *(masking.value_of(value) for value in extra),
    )


def _masked_event(cells: tuple) -> tuple:
    """An event's cells as a viewer without personal data sees them: its body masked by key
    and by shape (a custom event's whole body, message texts, numbers, SIP users)."""
    conversation_id, event_id, event_type, from_member, timestamp, source, body = cells
    if body is not None:
        try:
            parsed = json.loads(body.text)
        except ValueError:
            parsed = None
        # The stored body is the whole event: its own type decides (a custom event's payload).
        masked = masking.json(
            {**parsed, "type": event_type} if isinstance(parsed, dict) else parsed
        )
        body = RawJSON(json.dumps(masked, ensure_ascii=False, separators=(",", ":")))
    return (conversation_id, event_id, event_type, from_member, timestamp, source, body)


def e164(value: Any) -> str | None:
    """A phone number as E.164 (`+447700900100`), or None: not a number, or a national form
    (`07700 900100`) whose country is unknown. Vonage sends numbers as E.164 digits without the
    `+` (`447700900100`)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    text = str(value).strip()
    digits = search_index.phone_digits(text)
    if digits is None:
        return None
    international = text.startswith(("+", "00")) or text[0] in "123456789"
    return f"+{digits}" if international else None


def _channel_numbers(channel: Any) -> Iterator[str]:
    """The numbers of a member's channel: its own, and its `from` and `to` ends'."""
    if not isinstance(channel, dict):
        return
    for end in (channel, channel.get("from"), channel.get("to")):
        if isinstance(end, dict):
            number = e164(end.get("number"))
            if number:
                yield number


def _member_label(member_id: str, user_name: str, channel_type: str) -> str:
    who = user_name or member_id
    return f"{who} ({channel_type})" if channel_type else who


def _people(conversation_pks: list[int]) -> dict[int, _People]:
    """The members of a chunk of conversations, streamed from the database (a conversation with
    a hostile number of members costs its first MEMBERS_PER_CONVERSATION, and a count)."""
    found: dict[int, _People] = {}
    rows = (
        StoredMember.objects.filter(conversation_id__in=conversation_pks)
        .order_by("conversation_id", "id")
        .values_list("conversation_id", "vonage_id", "user_name", "channel_type", "channel")
    )
    for conversation_pk, member_id, user_name, channel_type, channel in rows.iterator(
        chunk_size=CHUNK_SIZE
    ):
        people = found.setdefault(conversation_pk, _People())
        if len(people.members) >= MEMBERS_PER_CONVERSATION:
            people.more += 1
            continue
        people.members.append(_member_label(member_id, user_name, channel_type))
        for number in _channel_numbers(channel):
            people.numbers.setdefault(number, None)
    return found


# --- formula injection


def neutralise(value: Any) -> str:
    """The value as a CSV cell that no spreadsheet runs as a formula (see the module's doc);
    the audit log's CSV uses it too."""
    text = "" if value is None else str(value)
    if text and text[0] in _FORMULA_STARTS and not _E164.fullmatch(text):
        return "'" + text
    return text


# --- writing values


def _iso(value: dt.datetime) -> str:
    if value.utcoffset():  # the databases give UTC; anything else is converted first
        value = value.astimezone(dt.UTC)
    return value.isoformat().replace("+00:00", "Z")


def _csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, RawJSON):
        return value.text
    if isinstance(value, dt.datetime):
        return _iso(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return LIST_SEPARATOR.join(_csv_text(item) for item in value)
    return str(value)


def _csv_cells(cells: tuple) -> list[str]:
    # neutralise(_csv_text(value)) for each cell, inlined: this runs for every cell of a
    # million-row export.
    row = []
    for value in cells:
        text = value if type(value) is str else _csv_text(value)
        if text and text[0] in _FORMULA_STARTS and not _E164.fullmatch(text):
            text = "'" + text
        row.append(text)
    return row


_json_string = json.encoder.encode_basestring  # the C encoder; keeps non-ASCII as it is


def _json_value(value: Any) -> str:
    if type(value) is str:
        return _json_string(value)
    if isinstance(value, RawJSON):
        return value.text
    if isinstance(value, str):
        return _json_string(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dt.datetime):
        return f'"{_iso(value)}"'
    if isinstance(value, float):
        return repr(value) if value == value and abs(value) != float("inf") else "null"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_json_value(item) for item in value) + "]"
    if isinstance(value, dict):
        items = (f"{_json_string(str(k))}:{_json_value(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    return _json_string(str(value))


class Echo:
    """The pseudo-buffer of Django's streaming CSV recipe: `write` hands back the line."""

    def write(self, value: str) -> str:
        return value


def _csv_pieces(columns: tuple[str, ...], chunks: Iterable[list[tuple]]) -> Iterator[str]:
    writer = csv.writer(Echo())
    yield writer.writerow(columns)
    for chunk in chunks:
        yield "".join([writer.writerow(_csv_cells(cells)) for cells in chunk])


def _json_pieces(columns: tuple[str, ...], chunks: Iterable[list[tuple]]) -> Iterator[str]:
    keys = [f"{_json_string(name)}:" for name in columns]
    separator = "["
    for chunk in chunks:
        if not chunk:
            continue
        objects = (
            "{" + ",".join([key + _json_value(v) for key, v in zip(keys, cells, strict=True)]) + "}"
            for cells in chunk
        )
        yield separator + "\n" + ",\n".join(objects)
        separator = ","
    yield "[]\n" if separator == "[" else "\n]\n"


def _encoded(pieces: Iterator[str]) -> Iterator[bytes]:
    # A lone surrogate (which ingestion replaces, so only a hand-made row has one) is written as
    # its escape, `\udc80`, never a failed download: inside a JSON string that is a valid escape.
    for piece in pieces:
        yield piece.encode("utf-8", "backslashreplace")


def _primed(chunks: Iterator[list[tuple]]) -> Iterator[list[tuple]]:
    """The chunks, the first one read now: before the response starts, while an error can
    still be an error page."""
    first = next(chunks, None)
    return chunks if first is None else itertools.chain([first], chunks)


@dataclass(frozen=True)
class Recorded:
    """Who asked for an export and with what filters: the audit log records it, with the rows
    handed on, when the stream ends (or is closed half-way: audit.audited_rows)."""

    request: HttpRequest
    what: str
    filters: Mapping[str, Any]
    object_id: str = ""

    def rows(self, chunks: Iterator[list[tuple]]) -> Iterator[tuple[tuple, ...]]:
        counted = audit.audited_rows(
            self.request,
            self.what,
            self.filters,
            itertools.chain.from_iterable(chunks),
            object_id=self.object_id,
        )
        return itertools.batched(counted, CHUNK_SIZE)


def _response(
    columns: tuple[str, ...],
    chunks: Iterator[list[tuple]],
    fmt: str,
    filename: str,
    recorded: Recorded | None = None,
) -> StreamingHttpResponse:
    if fmt not in FORMATS:
        raise ValueError(f"not an export format: {fmt!r}")
    chunks = _primed(chunks)
    if recorded is not None:
        chunks = recorded.rows(chunks)
    pieces = _csv_pieces(columns, chunks) if fmt == "csv" else _json_pieces(columns, chunks)
    response = StreamingHttpResponse(_encoded(pieces), content_type=CONTENT_TYPES[fmt])
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return response


# --- names and links


def export_filename(*parts: str | None, fmt: str, day: dt.date | None = None) -> str:
    """`conversations-live-2026-11-28.csv`: the parts made safe (ASCII letters, digits and
    dashes; an id keeps its case), then the day (UTC) and the format."""
    day = day or timezone.now().date()
    words = [_filename_part(part) for part in parts if part]
    return "-".join([*[w for w in words if w], day.isoformat()]) + f".{fmt}"


def _filename_part(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _NOT_FILENAME.sub("-", ascii_text).strip("-")[:FILENAME_PART_LIMIT].strip("-")


def link_queries(params: QueryDict, keep: Iterable[str]) -> dict[str, str]:
    """The query strings of a page's two export links: the page's own parameters among `keep`
    (its filters, as given and in its order; a repeated one once, as the page reads it), then
    `format`. Put after `{% url %}` and a `?`; the template escapes them like any value."""
    wanted = set(keep)
    kept = [(name, value) for name, value in params.items() if name in wanted and value]
    return {fmt: urlencode([*kept, ("format", fmt)]) for fmt in FORMATS}


# --- events


def _event_chunks(
    stored: StoredConversation,
    event_type: str | None,
    through: int,
    oldest: dt.datetime | None = None,
) -> Iterator[list[tuple]]:
    events = StoredEvent.objects.filter(conversation=stored, event_id__lte=through)
    if oldest is not None:  # SUPPORT_MAX_AGE_DAYS
        events = events.filter(timestamp__gte=oldest)
    if event_type:
        events = events.filter(type=event_type)
    # The body as the database's JSON text: PostgreSQL's jsonb output, SQLite's stored text.
    rows = (
        events.annotate(body_text=Cast("body", output_field=TextField()))
        .order_by("event_id")
        .values_list("event_id", "type", "from_member", "timestamp", "source", "body_text")
    )
    last = 0
    while True:
        chunk = list(rows.filter(event_id__gt=last)[:CHUNK_SIZE])
        if chunk:
            yield chunk
        if len(chunk) < CHUNK_SIZE:
            return
        last = chunk[-1][0]


def stream_events(
    stored: StoredConversation,
    fmt: str,
    *,
    event_type: str | None = None,
    recorded: Recorded | None = None,
) -> StreamingHttpResponse:
    """A conversation's whole stored history (of one type, with `event_type`), every event once,
    oldest first: the events stored when the export began."""
    conversation_id = stored.vonage_id
    who = viewer.current()
    chunks = _event_chunks(stored, event_type, stored.last_event_id, who.oldest)
    rows = ([event_cells(conversation_id, row) for row in chunk] for chunk in chunks)
    if not who.sees_pii:
        rows = ([_masked_event(cells) for cells in chunk] for chunk in rows)
    filename = export_filename(conversation_id, "events", event_type, fmt=fmt)
    return _response(EVENT_COLUMNS, rows, fmt, filename, recorded)


# --- conversations


_CONVERSATION_FIELDS = (
    "pk",
    "vonage_id",
    "name",
    "display_name",
    "deleted_upstream_at",
    "is_live",
    "ended_at",
    "started_at",
    "last_event_at",
)


def stored_conversations(
    *,
    state: str = "",
    date_start: dt.datetime | None = None,
    date_end: dt.datetime | None = None,
    order: str = "desc",
) -> QuerySet[StoredConversation]:
    """The stored conversations the list page's filters select, in its order (by start)."""
    rows = queries.in_state(state, date_start=date_start, date_end=date_end)
    return (
        rows.order_by("-started_at", "-pk")
        if order == "desc"
        else rows.order_by("started_at", "pk")
    )


def _ordering(queryset: QuerySet) -> tuple[str, bool]:
    """(column, descending) of a queryset ordered by one column then pk (or by pk alone)."""
    order = [str(term) for term in queryset.query.order_by] or ["pk"]
    names = [term.lstrip("-") for term in order]
    directions = {term.startswith("-") for term in order}
    pk_names = ("pk", "id")
    if len(directions) == 1 and (
        (len(order) == 1 and names[0] in pk_names)
        or (len(order) == 2 and names[0] not in pk_names and names[1] in pk_names)
    ):
        return ("pk" if names[0] in pk_names else names[0]), directions.pop()
    raise ValueError(
        f"an export reads by keyset: order by one column then pk, both one way (not {order})"
    )


def _keyset_chunks(queryset: QuerySet, fields: tuple[str, ...]) -> Iterator[list[tuple]]:
    """The rows (`fields`, the first of which is "pk", then the ordering column's value) in the
    queryset's order, by keyset:
    those with a value in the ordering column first, then those without one (NULL) by pk, on
    PostgreSQL and SQLite alike."""
    column, descending = _ordering(queryset)
    rows = queryset.annotate(export_key=F(column)).values_list(*fields, "export_key")
    after, after_or_at = ("lt", "lte") if descending else ("gt", "gte")
    by_pk = "-pk" if descending else "pk"
    if column != "pk":
        key = F(column).desc() if descending else F(column).asc()
        keyed = rows.filter(**{f"{column}__isnull": False}).order_by(key, by_pk)
        last: tuple | None = None
        while True:
            page = keyed
            if last is not None:
                # The first condition bounds the index scan; the second skips what was written.
                page = page.filter(**{f"{column}__{after_or_at}": last[-1]}).filter(
                    Q(**{f"{column}__{after}": last[-1]}) | Q(**{f"pk__{after}": last[0]})
                )
            chunk = list(page[:CHUNK_SIZE])
            if chunk:
                yield chunk
            if len(chunk) < CHUNK_SIZE:
                break
            last = chunk[-1]
        rows = rows.filter(**{f"{column}__isnull": True})
    rows = rows.order_by(by_pk)
    last_pk: int | None = None
    while True:
        page = rows if last_pk is None else rows.filter(**{f"pk__{after}": last_pk})
        chunk = list(page[:CHUNK_SIZE])
        if chunk:
            yield chunk
        if len(chunk) < CHUNK_SIZE:
            return
        last_pk = chunk[-1][0]


def _conversation_chunks(
    conversations: QuerySet[StoredConversation],
    extra: ExtraColumn | None,
    around_chunk: Callable[[], AbstractContextManager[Any]],
) -> Iterator[list[tuple]]:
    rows = _keyset_chunks(conversations, _CONVERSATION_FIELDS)
    while True:
        with around_chunk():
            chunk = next(rows, None)
            if chunk is None:
                return
            pks = [row[0] for row in chunk]
            people = _people(pks)
            extras = extra.values(pks) if extra is not None else {}
        yield [
            conversation_cells(row[:-1], people.get(row[0]), (extras.get(row[0]),) if extra else ())
            for row in chunk
        ]


def stream_conversations(
    conversations: QuerySet[StoredConversation],
    fmt: str,
    *,
    filename: str,
    extra: ExtraColumn | None = None,
    around_chunk: Callable[[], AbstractContextManager[Any]] = nullcontext,
    recorded: Recorded | None = None,
) -> StreamingHttpResponse:
    """Stream the conversations of a queryset as a CSV or JSON file, in its order.

    `conversations` is ordered by one column then pk, both the same way (`-started_at, -pk`),
    or by pk alone; rows without a value in that column come last. `filename` is the file's
    name (export_filename). `extra` adds a column (the search's "matched"). `around_chunk`
    is entered around the reading of each chunk (a time limit, say); the first chunk is read
    before this returns, so what it raises then, the caller can answer as a page.
    """
    columns = CONVERSATION_COLUMNS + ((extra.name,) if extra else ())
    who = viewer.current()
    if who.oldest is not None:  # SUPPORT_MAX_AGE_DAYS
        conversations = conversations.filter(started_at__gte=who.oldest)
    chunks = _conversation_chunks(conversations, extra, around_chunk)
    if not who.sees_pii:
        chunks = ([_masked_conversation(cells) for cells in chunk] for chunk in chunks)
    return _response(columns, chunks, fmt, filename, recorded)
