"""Search over the stored history: what staff typed, parsed once into what it can be (an id or
the prefix of one, a phone number, a SIP address, a name, words), each part answered by its own
index, the conversations that match any part newest first.

- ids, numbers, SIP addresses and names: `SearchKey` rows (search_index.py's normal forms), by
  prefix on an indexed column;
- words: every word (letters and digits; punctuation, `_` included, separates words) as a whole
  word, all of them: on PostgreSQL the events' generated `text_vector` (GIN; the text with its
  punctuation turned to spaces, so an email or a URL is words too) with `plainto_tsquery`
  ('simple' configuration: no stemming); on SQLite a regular expression over the same text. The
  same answers on both: no operators (`or`, `-word`) on either;
- a query of symbols only (`%`, `'`, an emoji) has no words: it is looked for literally.

Every query runs under a time limit (`DASHBOARD_SEARCH_TIMEOUT_MS`): PostgreSQL's
`statement_timeout`, SQLite's progress handler. One that runs out is `TooBroad`, never a hung page.
Input is never part of SQL: values are parameters, and LIKE patterns are escaped by Django.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import BooleanField, Exists, OuterRef, Q, QuerySet
from django.db.models.expressions import RawSQL

from conversations import ids

from . import search_index
from .models import SearchKey, StoredConversation, StoredEvent
from .queries import LIST_CURSOR, BadCursor, _conversations

MAX_QUERY_LENGTH = 200
MIN_ID_PREFIX = 8
MIN_NAME_PREFIX = 2
SNIPPET_RADIUS = 60  # characters of text shown around a matched word

_WORD = re.compile(r"[^\W_]+")  # letters and digits in any script; `_` is a symbol
_ID_PREFIX = re.compile(r"\A(?:(con|mem|usr)-)?([0-9a-z][0-9a-z-]*)\Z")
_SPACES = re.compile(r"\s+")
_HEX = re.compile(r"[0-9a-f-]+")


class TooBroad(Exception):
    """The search ran out of time: it needs more words, a date range or an event type."""


@dataclass(frozen=True)
class Query:
    """What a query can be. Empty parts are not searched."""

    text: str
    id_prefixes: tuple[str, ...] = ()  # lower case ids or prefixes of ids (8+ characters)
    number: str = ""  # reversed digits: numbers ending with these digits
    address: str = ""  # a SIP address (user@host) or its start
    name: str = ""  # the start of a name, a SIP user part, in lower case
    words: tuple[str, ...] = ()  # whole words of messages and custom events
    literal: str = ""  # no words: the text itself, looked for as it is

    @property
    def empty(self) -> bool:
        return not (self.id_prefixes or self.number or self.address or self.name or self.words)


@dataclass(frozen=True)
class Filters:
    date_start: dt.datetime | None = None
    date_end: dt.datetime | None = None
    event_type: str = ""
    live_only: bool = False


@dataclass
class Match:
    """One reason a conversation was found: what kind of value, the value as stored, and the
    parts of it to highlight (`terms`; empty: the whole value)."""

    kind: str
    text: str
    terms: tuple[str, ...] = ()
    whole: bool = False

    def __masked__(self) -> Match:
        """As a viewer without personal data sees it (conversations/privacy/masking.py): a
        number's last 4 digits, an address without its user, no text; names and ids stay."""
        from conversations.privacy import masking

        if self.kind == _KIND_LABELS[SearchKey.NUMBER]:
            return replace(self, text=masking.number(self.text))
        if self.kind == _KIND_LABELS[SearchKey.SIP]:
            text = self.text if ":" in self.text else f"sip:{self.text}"
            return replace(self, text=masking.sip(text))
        if self.kind == "Text":
            return replace(self, text=masking.MASK, terms=())
        return replace(self, text=masking.scrub(self.text))


@dataclass
class Hit:
    conversation: StoredConversation
    matches: list[Match] = field(default_factory=list)


@dataclass
class Results:
    hits: list[Hit]
    next_cursor: str | None
    prev_cursor: str | None


def normalise(text: str) -> str:
    return _SPACES.sub(" ", text).strip()[:MAX_QUERY_LENGTH]


def parse(text: str) -> Query:
    """Everything a query could mean; search() looks for all of it at once."""
    text = normalise(text)
    folded = text.casefold()
    id_prefixes: tuple[str, ...] = ()
    match = _ID_PREFIX.match(folded)
    if match and len(folded) >= MIN_ID_PREFIX:
        if match.group(1):
            id_prefixes = (folded,)
        elif _HEX.fullmatch(folded):  # a bare uuid or its start: of any kind of id
            id_prefixes = tuple(f"{prefix}-{folded}" for prefix in ("con", "mem", "usr"))
    digits = search_index.phone_digits(text)
    sip = search_index.sip_parts(text)
    # Words as typed (each database folds case its own way, the same way on both sides), once.
    words: list[str] = []
    for word in _WORD.findall(text):
        if word.casefold() not in {w.casefold() for w in words}:
            words.append(word)
    name = folded if len(folded) >= MIN_NAME_PREFIX and not digits else ""
    return Query(
        text=text,
        id_prefixes=id_prefixes,
        number=search_index.number_key(digits) if digits else "",
        address=sip[0] if sip else "",
        name=name,
        words=() if digits else tuple(words),
        literal="" if words or not text else text,
    )


# --- time limits


@contextlib.contextmanager
def time_limit() -> Iterator[None]:
    """Run the queries inside under the search's time limit; running out raises TooBroad."""
    limit_ms = settings.DASHBOARD_SEARCH_TIMEOUT_MS
    try:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT set_config('statement_timeout', %s, true)", [str(limit_ms)]
                    )
                yield
            elif connection.vendor == "sqlite":
                deadline = time.monotonic() + limit_ms / 1000
                connection.ensure_connection()
                raw = connection.connection
                # Called every N virtual machine steps; a true answer interrupts the query.
                raw.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
                try:
                    yield
                finally:
                    raw.set_progress_handler(None, 0)
            else:  # pragma: no cover - the two databases the dashboard supports
                yield
    except OperationalError as exc:
        if _timed_out(exc):
            raise TooBroad() from None
        raise


def _timed_out(exc: OperationalError) -> bool:
    text = str(exc).lower()
    return "statement timeout" in text or "interrupted" in text or "canceling statement" in text


# --- matching


def _key_matches(query: Query) -> Q | None:
    parts = Q()
    for prefix in query.id_prefixes:
        parts |= Q(kind=SearchKey.ID, value__startswith=prefix)
    if query.number:
        parts |= Q(kind=SearchKey.NUMBER, value__startswith=query.number)
    if query.address:
        parts |= Q(kind=SearchKey.SIP, value__startswith=query.address)
    if query.name:
        parts |= Q(kind__in=(SearchKey.NAME, SearchKey.SIP), value__startswith=query.name)
    return parts or None


def _text_condition(query: Query) -> Q | None:
    """Events whose text holds every word (or, with no words, the literal text)."""
    if query.words:
        if connection.vendor == "postgresql":
            return Q(
                RawSQL(
                    "text_vector @@ plainto_tsquery('simple'::regconfig, %s)",
                    [" ".join(query.words)],
                    output_field=BooleanField(),
                )
            )
        condition = Q()
        for word in query.words:  # a whole word: no letter or digit either side (`_` is none)
            condition &= Q(text__iregex=rf"(?<![^\W_]){re.escape(word)}(?![^\W_])")
        return condition
    if query.literal:
        return Q(text__icontains=query.literal)
    return None


def _events(filters: Filters) -> QuerySet[StoredEvent]:
    events = StoredEvent.objects.all()
    if filters.event_type:
        events = events.filter(type=filters.event_type)
    return events


def matching(query: Query, filters: Filters) -> QuerySet[StoredConversation]:
    """The conversations that match, newest first (by start, then by row)."""
    found = Q(pk__in=[])
    keys = _key_matches(query)
    if keys is not None:
        found |= Q(pk__in=SearchKey.objects.filter(keys).values("conversation_id"))
    text = _text_condition(query)
    if text is not None:
        found |= Q(pk__in=_events(filters).filter(text).values("conversation_id"))
    rows = _conversations().filter(found)
    if filters.event_type:  # only conversations with an event of that type
        rows = rows.filter(Exists(_events(filters).filter(conversation=OuterRef("pk"))))
    if filters.live_only:
        rows = rows.filter(is_live=True)
    if filters.date_start is not None:
        rows = rows.filter(started_at__gte=filters.date_start)
    if filters.date_end is not None:
        rows = rows.filter(started_at__lte=filters.date_end)
    return rows.order_by("-started_at", "-pk")


def search(query: Query, filters: Filters, *, page_size: int, cursor: str | None) -> Results:
    """One page of the conversations that match, each with what matched."""
    offset = 0
    if cursor:
        found = LIST_CURSOR.match(cursor)
        if not found:
            raise BadCursor(cursor)
        offset = int(found.group(1))
    if query.empty and not query.literal:
        return Results(hits=[], next_cursor=None, prev_cursor=None)
    with time_limit():
        rows = list(matching(query, filters)[offset : offset + page_size + 1])
        hits = [Hit(conversation=row) for row in rows[:page_size]]
        _explain(query, filters, hits)
    return Results(
        hits=hits,
        next_cursor=f"o{offset + page_size}" if len(rows) > page_size else None,
        prev_cursor=f"o{max(offset - page_size, 0)}" if offset else None,
    )


# --- what matched


def _explain(query: Query, filters: Filters, hits: list[Hit]) -> None:
    """Each hit's matches: its keys that match, and the first event text that does."""
    by_pk = {hit.conversation.pk: hit for hit in hits}
    if not by_pk:
        return
    keys = _key_matches(query)
    if keys is not None:
        # Every matching key of these conversations (each conversation keeps its first three):
        # one conversation with many must not leave the others with nothing said.
        found = SearchKey.objects.filter(keys, conversation_id__in=by_pk).order_by("pk")
        for key in found.iterator(chunk_size=2000):
            hit = by_pk[key.conversation_id]
            if any(m.text == key.label for m in hit.matches) or len(hit.matches) >= 3:
                continue
            whole = key.kind != SearchKey.NAME
            terms = () if whole else (query.name,)
            hit.matches.append(Match(_KIND_LABELS[key.kind], key.label, terms, whole))
    text = _text_condition(query)
    if text is None:
        return
    events = _events(filters).filter(text, conversation_id__in=by_pk)
    for pk in by_pk:
        first = events.filter(conversation_id=pk).order_by("event_id").values("text").first()
        if first is not None:
            terms = query.words or (query.literal,)
            by_pk[pk].matches.append(Match("Text", snippet(first["text"], terms), terms))


def matched(
    query: Query, filters: Filters, pks: list[int], *, masked: bool
) -> dict[int, list[str]]:
    """What matched, as text, for conversations of a search (by pk): the export's column.
    `masked`: as a viewer without personal data sees it (Match.__masked__)."""
    hits = [Hit(conversation=row) for row in StoredConversation.objects.filter(pk__in=pks)]
    _explain(query, filters, hits)
    return {
        hit.conversation.pk: [
            f"{m.kind}: {(m.__masked__() if masked else m).text}" for m in hit.matches
        ]
        for hit in hits
    }


_KIND_LABELS = {
    SearchKey.ID: "Id",
    SearchKey.NUMBER: "Number",
    SearchKey.SIP: "SIP address",
    SearchKey.NAME: "Name",
}


def snippet(text: str, terms: tuple[str, ...]) -> str:
    """The part of a long text around the first term found in it."""
    folded = text.casefold()
    positions = [folded.find(term.casefold()) for term in terms]
    first = min((p for p in positions if p >= 0), default=0)
    start = max(first - SNIPPET_RADIUS, 0)
    end = min(first + SNIPPET_RADIUS * 2, len(text))
    return ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")


def jump_target(text: str) -> tuple[str, str] | None:
    """(kind, id) when the whole query is one full conversation or user id: its page."""
    value = ids.canonical(normalise(text))
    kind = ids.kind_of(value)
    return (kind, value) if kind in ("conversation", "user") else None
