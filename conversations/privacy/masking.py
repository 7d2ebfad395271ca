"""How personal data is masked for a viewer who may not see it: pure functions over the shapes the
pages show (schema dataclasses, stored rows, raw JSON), no request and no settings here.

Personal data (issue 12): phone numbers (at most the last 4 digits: `•••• 0100`), the user part of
SIP URIs (`sip:•••@pbx.example.com`), email addresses (`•••@example.com`), custom data values (keys
stay), message and custom event texts, user image URLs, and any of these inside raw JSON. Names,
ids, types, states and times stay: staff need them to follow a call.

Three layers, so that a shape nobody thought of is still covered:
1. known fields by name (a `number`, a `uri`, `custom_data`, a message's `text`...);
2. known types (a custom event's whole body, an endpoint by its channel type);
3. every other string is scrubbed for anything shaped like a number, an email or a SIP URI.
Masking is idempotent: masking masked data changes nothing.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from typing import Any

from django.db import models

MASK = "•••"
MAX_DEPTH = 40  # deeper JSON is cut (the display layer has already pruned it at 32)

NUMBER_KEYS = frozenset({"number", "msisdn", "phone_number", "from_number", "to_number", "phone"})
TEXT_KEYS = frozenset({"text", "transcript"})
EMAIL_KEYS = frozenset({"email", "email_address"})
IMAGE_KEYS = frozenset({"image_url"})
CUSTOM_KEYS = frozenset({"custom_data"})
MESSAGE_TYPES = frozenset({"message", "text", "image"})  # events whose whole body is a message
NUMBER_CHANNELS = frozenset({"phone", "pstn", "sms", "mms", "whatsapp", "viber", "messenger"})

# A phone number inside text: 7+ digits with the separators people write, wherever it is (inside
# a word too: `callback-447700900100`, `tel447700900100`). Ids are kept whole: they are found
# first (`_KEPT`) and the rest of the text is scrubbed around them.
_NUMBER_IN_TEXT = re.compile(r"\+?\(?\d(?:[\d\s().\-/]{5,24})\d")
_KEPT = re.compile(
    r"(?:CON|MEM|USR|SES|KNK|APP)-[0-9A-Za-z][0-9A-Za-z-]{0,79}"
    r"|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_EMAIL_IN_TEXT = re.compile(r"[\w.%+-]+@([\w-]+(?:\.[\w-]+)+)")
_SIP_IN_TEXT = re.compile(r"\b(sips?):([^@\s;>]+)@", re.IGNORECASE)
_LONG_DIGITS = re.compile(r"\d{7,}")
_UUID_IN = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_DATE_LIKE = re.compile(r"\A\d{4}-\d{2}-\d{2}")
_NOT_DIGIT = re.compile(r"\D")


def number(value: Any) -> str:
    """`•••• 0100`: the last 4 digits of a number at most, nothing when it has 4 digits or fewer."""
    if isinstance(value, str) and value.startswith(MASK):
        return value  # masked already
    digits = _NOT_DIGIT.sub("", str(value))
    return f"•••• {digits[-4:]}" if len(digits) > 4 else MASK


def sip(value: str) -> str:
    """A SIP URI without its user part: `sip:•••@pbx.example.com;transport=tls`."""
    scheme, colon, rest = value.partition(":")
    if colon and scheme.lower() in ("sip", "sips"):
        _, at, host = rest.partition("@")
        return f"{scheme}:{MASK}@{host}" if at else f"{scheme}:{MASK}"
    return scrub(value)


def email(value: str) -> str:
    _, at, domain = value.rpartition("@")
    return f"{MASK}@{domain}" if at else MASK


def _number_in_text(found: re.Match[str]) -> str:
    text = found.group(0)
    digits = _NOT_DIGIT.sub("", text)
    if len(digits) < 7 or _DATE_LIKE.match(text.lstrip("+(")):
        return text  # a short count, a date: not a phone number
    return number(digits)


def _scrub_part(value: str) -> str:
    value = _SIP_IN_TEXT.sub(lambda m: f"{m.group(1)}:{MASK}@", value)
    value = _EMAIL_IN_TEXT.sub(lambda m: f"{MASK}@{m.group(1)}", value)
    return _NUMBER_IN_TEXT.sub(_number_in_text, value)


def scrub(value: str) -> str:
    """Any string: numbers, emails and SIP users inside it masked; ids (CON-…, uuids) kept."""
    if not any(ch.isdigit() for ch in value) and "@" not in value:
        return value
    pieces, last = [], 0
    for kept in _KEPT.finditer(value):
        if _LONG_DIGITS.search(kept.group(0)) and not _UUID_IN.search(kept.group(0)):
            continue  # shaped like an id, but a number is in it (`CON-447700900100`)
        pieces += [_scrub_part(value[last : kept.start()]), kept.group(0)]
        last = kept.end()
    pieces.append(_scrub_part(value[last:]))
    return "".join(pieces)


def message_body(value: Any, depth: int = 0) -> Any:
    """A message's body: its kind kept (`message_type`), everything it carries masked (the text,
    an image's or a file's URL, a location...)."""
    if not isinstance(value, dict):
        return leaves(value, depth)
    return {
        key: item if key == "message_type" and isinstance(item, str) else leaves(item, depth + 1)
        for key, item in value.items()
    }


def leaves(value: Any, depth: int = 0) -> Any:
    """Every value masked, keys kept (custom data, a custom event's body)."""
    if depth > MAX_DEPTH:
        return MASK
    if isinstance(value, dict):
        return {key: leaves(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [leaves(item, depth + 1) for item in value]
    if value is None or isinstance(value, bool):
        return value
    return MASK


def json(value: Any, key: str = "", depth: int = 0) -> Any:
    """Raw JSON (an event body, the API's answer, a channel) with personal data masked."""
    if depth > MAX_DEPTH:
        return MASK
    key = key.lower() if isinstance(key, str) else ""
    if isinstance(value, dict):
        if key in CUSTOM_KEYS:
            return leaves(value, depth)
        masked = {k: json(v, k, depth + 1) for k, v in value.items()}
        event_type = value.get("type")
        if isinstance(event_type, str) and "body" in masked:
            if event_type.startswith("custom:"):
                masked["body"] = leaves(value["body"], depth + 1)
            elif event_type in MESSAGE_TYPES:
                masked["body"] = message_body(value["body"], depth + 1)
        return masked
    if isinstance(value, list):
        return [json(item, key, depth + 1) for item in value]
    if key in CUSTOM_KEYS and value is not None:
        return MASK
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int) and (key in NUMBER_KEYS or abs(value) >= 10**6):
        return number(value)  # a number sent as a JSON integer (7 digits or more: not a count)
    if isinstance(value, int | float):
        return value
    if not isinstance(value, str):
        return value_of(value, depth)  # a row or a record inside a dict
    if key in NUMBER_KEYS:
        return number(value)
    if key in TEXT_KEYS or key in IMAGE_KEYS:
        return MASK
    if key in EMAIL_KEYS:
        return email(value)
    if value[:4].lower() == "sip:" or value[:5].lower() == "sips:":
        return sip(value)
    return scrub(value)


def endpoint_address(channel_type: str, address: str) -> str:
    """An endpoint's or a user channel's address, by the kind of channel it is."""
    kind = (channel_type or "").lower()
    if kind in NUMBER_CHANNELS:
        return number(address) if address else address
    if kind == "sip" or address[:4].lower() == "sip:":
        return sip(address)
    if kind == "email":
        return email(address)
    return scrub(address)


# --- whole objects


def _mask_dataclass(value: Any, depth: int) -> Any:
    changes: dict[str, Any] = {}
    channel_type = getattr(value, "type", "")
    is_custom_event = isinstance(channel_type, str) and channel_type.startswith("custom:")
    is_message = isinstance(channel_type, str) and channel_type in MESSAGE_TYPES
    for f in dataclasses.fields(value):
        if not f.init:
            continue
        item = getattr(value, f.name)
        name = f.name.rstrip("_")
        if name in ("address",) and isinstance(item, str):
            masked = endpoint_address(channel_type if isinstance(channel_type, str) else "", item)
        elif name in CUSTOM_KEYS:
            masked = leaves(item)
        elif name in IMAGE_KEYS and isinstance(item, str):
            masked = "" if item else item  # not shown at all rather than a broken image
        elif name == "body" and isinstance(item, dict) and (is_custom_event or is_message):
            masked = leaves(item) if is_custom_event else message_body(item)
        elif isinstance(item, dict):
            masked = json(item, name, depth + 1)
        else:
            masked = value_of(item, depth + 1, key=name)
        if masked is not item:
            changes[f.name] = masked
    if not changes:
        return value
    if (
        getattr(type(value), "__dataclass_params__", None)
        and type(value).__dataclass_params__.frozen
    ):
        return dataclasses.replace(value, **changes)
    clone = copy.copy(value)
    for name, item in changes.items():
        setattr(clone, name, item)
    return clone


# Stored rows: the fields that hold personal data, by model name (the rest are ids, times, states).
_MODEL_FIELDS = {
    "StoredConversation": {"api_body": "json", "name": "scrub", "display_name": "scrub"},
    "StoredMember": {"channel": "json", "user_name": "scrub"},
    "StoredEvent": {"body": "event", "text": "text"},
    "SearchKey": {"label": "scrub"},
}


def _mask_model(row: models.Model) -> models.Model:
    rules = _MODEL_FIELDS.get(type(row).__name__)
    if rules is None:
        return row
    clone = copy.copy(row)
    clone._state = copy.copy(row._state)
    for field, rule in rules.items():
        item = getattr(row, field, None)
        if rule == "json":
            masked = json(item)
        elif rule == "event":  # the whole event as it arrived: its type decides
            event_type = getattr(row, "type", "")
            masked = json({**item, "type": event_type} if isinstance(item, dict) else item)
        elif rule == "text":
            masked = MASK if item else item
        else:
            masked = scrub(item) if isinstance(item, str) else item
        setattr(clone, field, masked)
    # Related rows fetched with it (select_related) are masked too.
    cache = getattr(row._state, "fields_cache", None)
    if cache:
        clone._state.fields_cache = {k: value_of(v) for k, v in cache.items()}
    for name, item in vars(row).items():  # prefetched to_attr lists (the live board's members)
        if isinstance(item, list) and item and isinstance(item[0], models.Model):
            setattr(clone, name, [value_of(i) for i in item])
    return clone


def value_of(value: Any, depth: int = 0, *, key: str = "") -> Any:
    """Any value the pages may be given, with every piece of personal data in it masked."""
    if depth > MAX_DEPTH:
        return value
    if isinstance(value, str):
        if key in TEXT_KEYS:
            return MASK if value else value
        if key in NUMBER_KEYS:
            return number(value) if value else value
        return scrub(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    own = getattr(value, "__masked__", None)
    if callable(own) and not isinstance(value, type):
        return own()  # a shape that knows which of its parts are personal (a search match)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _mask_dataclass(value, depth)
    if isinstance(value, models.Model):
        return _mask_model(value)
    if isinstance(value, dict):
        return json(value, key, depth)
    if isinstance(value, list):
        return [value_of(item, depth + 1, key=key) for item in value]
    if isinstance(value, tuple):
        return tuple(value_of(item, depth + 1, key=key) for item in value)
    return value
