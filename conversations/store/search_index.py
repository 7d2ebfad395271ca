"""What a stored conversation can be found by: search keys and searchable text, derived from the
events, members and API answers the store keeps (search.py reads them back).

Everything here reads hostile input. It walks at most `MAX_DEPTH` levels and `MAX_NODES` values
of a body, keeps at most `MAX_KEYS` keys per body and `TEXT_LIMIT` characters of text per event,
and takes only strings (or, for numbers, integers) where it expects them.

Normal forms, shared with the query side so that a query and a stored value meet:
- a phone number is its digits (E.164 without `+`), stored reversed: every form of a number
  (`+44 7700 900100`, `447700900100`, `(0)7700 900100`) ends with the same national digits, and a
  suffix search over reversed digits is a prefix search, which a btree index answers;
- a SIP address is `user@host` in lower case without scheme or parameters, plus its user part;
- a name is lower case, whole and word by word;
- an id is the canonical id in lower case.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from conversations import ids

from .models import SearchKey, StoredConversation, StoredEvent, StoredMember

MAX_DEPTH = 8
MAX_NODES = 2000  # values looked at in one body
MAX_KEYS = 40  # keys kept from one body
TEXT_LIMIT = 4000  # characters of searchable text kept per event
VALUE_LIMIT = 200  # the key column's width
MIN_NUMBER_DIGITS = 6
MAX_NUMBER_DIGITS = 15  # E.164
NAME_WORD_MIN = 2

NUMBER_FIELDS = frozenset({"number", "msisdn", "phone_number", "from_number", "to_number"})
NAME_FIELDS = frozenset({"name", "display_name"})
ID_IN_TEXT = re.compile(rf"\A(?:{ids.CONVERSATION_ID}|{ids.MEMBER_ID}|{ids.USER_ID})\Z", re.I)
_NOT_DIGIT = re.compile(r"\D")
_TRUNK_ZERO = re.compile(r"\(0\)")
_WORDS = re.compile(r"\w+")
_SPACES = re.compile(r"\s+")

Key = tuple[str, str, str]  # (kind, value, label)


# --- normal forms (the query side uses them too)


def phone_digits(value: Any) -> str | None:
    """The digits of a phone number as E.164 without `+` (a national form keeps its own digits,
    less its trunk zeros), or None when it is not shaped like a number."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    text = str(value).strip()
    if len(text) > 40 or not re.fullmatch(r"\+?[0-9\s().\-/]+", text):
        return None
    text = _TRUNK_ZERO.sub("", text)  # +44 (0)7700 …: the (0) is dialled at home only
    digits = _NOT_DIGIT.sub("", text)
    if text.startswith("00"):
        digits = digits[2:]  # 0044 …: the international prefix
    elif not text.startswith("+"):
        digits = digits.lstrip("0")  # 07700 …: the trunk prefix
    if not MIN_NUMBER_DIGITS <= len(digits) <= MAX_NUMBER_DIGITS:
        return None
    return digits


def number_key(digits: str) -> str:
    return digits[::-1]


def sip_parts(value: Any) -> tuple[str, str] | None:
    """(`user@host`, `user`) of a SIP URI in lower case, or None when it is not one."""
    if not isinstance(value, str) or len(value) > 500:
        return None
    text = value.strip().lower()
    scheme, colon, rest = text.partition(":")
    if colon and scheme in ("sip", "sips"):
        text = rest
    elif colon or "@" not in text:
        return None
    address = re.split(r"[;?>\s]", text, maxsplit=1)[0]
    user, at, host = address.partition("@")
    if not (at and user and host):
        return None
    return address[:VALUE_LIMIT], user[:VALUE_LIMIT]


def name_values(value: Any) -> list[str]:
    """A name's search values: the whole name in lower case, then each of its words."""
    if not isinstance(value, str):
        return []
    whole = _SPACES.sub(" ", value).strip().casefold()[:VALUE_LIMIT]
    if not whole:
        return []
    words = [word for word in _WORDS.findall(whole) if len(word) >= NAME_WORD_MIN]
    return list(dict.fromkeys([whole, *words]))


def id_value(value: str) -> str:
    return ids.canonical(value).lower()


# --- what a body holds


def _leaves(body: Any, skip: frozenset[str] = frozenset()) -> Iterator[tuple[str, Any, str]]:
    """(field name, value, parent field name) of every scalar in a body, depth first, bounded;
    not inside the fields named in `skip`."""
    stack: list[tuple[str, Any, str, int]] = [("", body, "", 0)]
    seen = 0
    while stack and seen < MAX_NODES:
        field, value, parent, depth = stack.pop()
        seen += 1
        if field in skip:
            continue
        if isinstance(value, dict):
            if depth < MAX_DEPTH:
                stack.extend((str(k), v, field, depth + 1) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            if depth < MAX_DEPTH:
                stack.extend((field, v, parent, depth + 1) for v in reversed(value))
        else:
            yield field, value, parent


def keys_of(body: Any, *, names_anywhere: bool = False) -> set[Key]:
    """The search keys a body mentions: numbers under number fields, SIP URIs, ids, and the
    names of users (or, with `names_anywhere`, any name field: a conversation's own body)."""
    found: dict[tuple[str, str], str] = {}

    def add(kind: str, value: str, label: str) -> None:
        if value and len(found) < MAX_KEYS:
            found.setdefault((kind, value[:VALUE_LIMIT]), label[:VALUE_LIMIT])

    # Custom data is the application's own, not a key to find a call by: its values are no one's
    # name, and a Support user must not see one as "what matched".
    for field, value, parent in _leaves(body, skip=frozenset({"custom_data"})):
        if field in NUMBER_FIELDS:
            digits = phone_digits(value)
            if digits:
                add(SearchKey.NUMBER, number_key(digits), str(value))
                continue
        if not isinstance(value, str):
            continue
        if ID_IN_TEXT.match(value):
            add(SearchKey.ID, id_value(value), ids.canonical(value))
        elif field == "uri" or value[:4].lower() == "sip:":
            parts = sip_parts(value)
            if parts:
                add(SearchKey.SIP, parts[0], value)
                add(SearchKey.SIP, parts[1], value)
        elif field in NAME_FIELDS and (names_anywhere or parent == "user"):
            for name in name_values(value):
                add(SearchKey.NAME, name, value)
    return {(kind, value, label) for (kind, value), label in found.items()}


def event_text(event_type: str, body: Any) -> str:
    """The words of an event that staff search for: a message's text, every string of a custom
    event's body. Other events (legs, audio, members) have none."""
    payload = body.get("body") if isinstance(body, dict) else None
    if not isinstance(payload, dict):
        return ""
    if event_type.startswith("custom:"):
        # Sorted: PostgreSQL's jsonb keeps keys in an order of its own, and the text derived
        # again from a stored body (reindex) must be the text derived on arrival.
        leaves = [(f, str(v)) for f, v, _ in _leaves(payload) if isinstance(v, str | int | float)]
        parts = [value for _, value in sorted(leaves)]
    elif event_type in ("message", "text") or event_type.startswith("message:"):
        parts = [v for f, v, _ in _leaves(payload) if f == "text" and isinstance(v, str)]
    else:
        return ""
    return " ".join(parts)[:TEXT_LIMIT]


# --- writing keys


def _save(conversation_id: int, keys: Iterable[Key]) -> None:
    rows = [
        SearchKey(conversation_id=conversation_id, kind=kind, value=value, label=label)
        for kind, value, label in keys
    ]
    if rows:
        SearchKey.objects.bulk_create(rows, ignore_conflicts=True)


def index_events(conversation: StoredConversation, rows: list[StoredEvent]) -> None:
    """Before new events are inserted: give each its searchable text; then keep the keys they
    mention, and the conversation's own id."""
    keys: set[Key] = {(SearchKey.ID, id_value(conversation.vonage_id), conversation.vonage_id)}
    for row in rows:
        row.text = event_text(row.type, row.body)
        names_anywhere = row.type.startswith("conversation:")
        keys |= keys_of(row.body, names_anywhere=names_anywhere)
    _save(conversation.pk, keys)


def index_conversation(conversation: StoredConversation) -> None:
    """What the API said of a conversation: its id, name and display name."""
    body = {"id": conversation.vonage_id}
    body |= {"name": conversation.name, "display_name": conversation.display_name}
    _save(conversation.pk, keys_of(body, names_anywhere=True))


def index_member(member: StoredMember) -> None:
    """What the API said of a member: its id, its user's id and name, its channel's addresses."""
    body = {
        "id": member.vonage_id,
        "user": {"id": member.user_id, "name": member.user_name},
        "channel": member.channel,
    }
    _save(member.conversation_id, keys_of(body))


def reindex(conversation: StoredConversation, batch: int = 2000) -> None:
    """Derive everything again for one conversation (after an upgrade, or to repair)."""
    index_conversation(conversation)
    for member in StoredMember.objects.filter(conversation=conversation):
        index_member(member)
    last = 0
    while True:
        rows = list(
            StoredEvent.objects.filter(conversation=conversation, event_id__gt=last).order_by(
                "event_id"
            )[:batch]
        )
        if not rows:
            return
        index_events(conversation, rows)
        StoredEvent.objects.bulk_update(rows, ["text"])
        last = rows[-1].event_id
