"""One-line, plain-text summaries of Conversation API events for the event timeline.

An event body is hostile input whose shape depends on the event type (API.md sections 4-5). Every
reader here takes only values of the type it expects, treats anything else as missing, and clips
each value it keeps, so a malformed or oversized body gives a vaguer sentence, never an exception.
The sentences are plain text: templates escape them.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .schema import Event

logger = logging.getLogger(__name__)

FAMILIES = ("leg", "sip", "rtc", "audio", "member", "message", "custom", "conversation", "other")

VALUE_LIMIT = 200  # the longest value kept in a sentence or a detail
TEXT_LIMIT = 400  # the longest sentence (it may hold a few values)
KEY_LIMIT = 60  # the longest custom-body key shown as a label
SHORT_ID = 8  # characters of a leg id kept in a sentence
MAX_KEYS = 4  # custom/ephemeral body keys shown
MAX_URLS = 5  # audio:play stream URLs listed
ELLIPSIS = "…"

_ADDRESS_KEYS = ("number", "uri", "user", "id", "extension")


@dataclass(frozen=True)
class Summary:
    family: str
    text: str
    details: list[tuple[str, str]] = field(default_factory=list)


# --- readers that never raise


def clip(value: str, limit: int = VALUE_LIMIT) -> str:
    """`value` cut to `limit` characters, the last one an ellipsis when it was longer."""
    return value if len(value) <= limit else value[: limit - 1] + ELLIPSIS


# Bidi embeddings, overrides and isolates: inside a summary sentence, one in a name (U+202E) would
# reorder the words after it. Right-to-left text itself needs none of them to show correctly.
_BIDI_CONTROLS = dict.fromkeys(map(ord, "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"))


def _s(value: Any, limit: int = VALUE_LIMIT) -> str:
    """A string or number as clipped text; "" for None, booleans, containers and the rest."""
    if isinstance(value, str):
        return clip(value.translate(_BIDI_CONTROLS), limit)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return ""
    try:
        return clip(str(value), limit)
    except ValueError:  # an int with more digits than Python will convert
        return ""


def _obj(value: Any) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _compact(value: Any) -> str:
    """Any JSON value as short text: scalars as themselves, containers as compact JSON."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return _s(value)
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    except (TypeError, ValueError, RecursionError):
        return ""
    return clip(text)


def _details(*pairs: tuple[str, str]) -> list[tuple[str, str]]:
    return [(label, value) for label, value in pairs if value]


def _words(suffix: str) -> str:
    return suffix.replace(":", " ").replace("_", " ").strip()


def _short(identifier: str) -> str:
    return identifier if len(identifier) <= SHORT_ID + 1 else identifier[:SHORT_ID] + ELLIPSIS


def _lookup(names: Mapping[str, str], member_id: Any) -> str:
    if not isinstance(member_id, str) or not member_id:
        return ""
    try:
        return _s(names.get(member_id))
    except Exception:  # a caller's mapping misbehaving must not break the timeline
        return ""


def _user_label(user: Any) -> str:
    if user is None:
        return ""
    return (
        _s(getattr(user, "display_name", None))
        or _s(getattr(user, "name", None))
        or _s(getattr(user, "id", None))
    )


def _reason(value: Any) -> str:
    """A reason given as a string or as `{code, text}`, e.g. "486 Busy"."""
    if isinstance(value, dict):
        code = _s(value.get("code")) or _s(value.get("sip_code"))
        text = _s(value.get("text")) or _s(value.get("reason")) or _s(value.get("description"))
        return clip(" ".join(part for part in (code, text) if part))
    return _s(value)


def _address(endpoint: Any) -> str:
    endpoint = _obj(endpoint)
    for key in _ADDRESS_KEYS:
        text = _s(endpoint.get(key))
        if text:
            return text
    return ""


def _route(source: str, target: str) -> str:
    if source and target:
        return f"{source} → {target}"
    if source:
        return f"from {source}"
    if target:
        return f"to {target}"
    return ""


def _channel_leg(channel: dict[Any, Any]) -> str:
    legs = channel.get("leg_ids")
    first = legs[0] if isinstance(legs, list) and legs else None
    return _s(channel.get("id")) or _s(first)


def _size(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):  # NaN and Infinity parse as JSON
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return _s(value)
    if value < 1024:
        return f"{int(value)} bytes"
    if value < 1024 * 1024:
        return f"{value / 1024:.1f} KB"
    try:
        return f"{value / (1024 * 1024):.1f} MB"
    except OverflowError:  # an int too large for a float
        return _s(value)


def _key_details(body: dict[Any, Any]) -> tuple[list[str], list[tuple[str, str]]]:
    """Up to MAX_KEYS top-level keys of a free-form body, and their values as details."""
    keys = [_s(key, KEY_LIMIT) or _compact(key)[:KEY_LIMIT] for key in list(body)[:MAX_KEYS]]
    details = [
        (key or "(empty key)", _compact(value))
        for key, value in zip(keys, list(body.values())[:MAX_KEYS], strict=True)
    ]
    if len(body) > MAX_KEYS:
        details.append(("More keys", str(len(body) - MAX_KEYS)))
    return keys, details


def _key_list(body: dict[Any, Any], keys: list[str]) -> str:
    listed = ", ".join(key for key in keys if key)
    more = len(body) - MAX_KEYS
    return f"{listed} (+{more} more)" if more > 0 and listed else listed


# --- families


def family_of(event_type: str) -> str:
    """The family of an event type (one of FAMILIES); "other" for anything unrecognised."""
    if not isinstance(event_type, str):
        return "other"
    head, colon, _ = event_type.partition(":")
    if head == "leg" and colon:
        return "leg"
    if head in ("sip", "rtc", "audio", "member") and colon:
        return head
    if head in ("message", "text", "image"):
        return "message"
    if head == "custom":
        return "custom"
    if (head == "conversation" and colon) or event_type in ("event:delete", "ephemeral"):
        return "conversation"
    return "other"


def _leg(event_type: str, body: dict[Any, Any]) -> Summary:
    leg_id = _s(body.get("leg_id"))
    status = _s(body.get("status"))
    direction = _s(body.get("direction"))
    subject = f"Leg {_short(leg_id)}" if leg_id else "Leg"
    if status:
        text = f"{subject} {status}"
    elif event_type == "leg:status:update":
        text = f"{subject} status updated"
    else:
        words = _words(event_type.partition(":")[2])
        text = f"{subject}: {words}" if words else subject
    if direction:
        text += f" ({direction})"
    return Summary(
        "leg",
        text,
        _details(
            ("Leg", leg_id),
            ("Status", status),
            ("Direction", direction),
            ("Type", _s(body.get("type"))),
        ),
    )


_CALL_PHRASES = {
    "ringing": "ringing",
    "answered": "answered",
    "answer": "answered",
    "hangup": "hung up",
    "terminate": "terminated",
    "transfer": "transferred",
    "machine": "reached an answering machine",
    "amd_machine": "reached an answering machine",
}


def _call(family: str, suffix: str, body: dict[Any, Any]) -> Summary:
    status = _s(body.get("status"))
    direction = _s(body.get("direction"))
    reason = _reason(body.get("reason"))
    result = _s(body.get("result")) or _s(body.get("machine_detection_result"))
    channel = _obj(body.get("channel"))
    source = _address(channel.get("from"))
    target = _address(channel.get("to"))
    if suffix in ("machine", "amd_machine") and result:
        phrase = f"answering machine detection: {result}"
    else:
        phrase = _CALL_PHRASES.get(suffix) or status or _words(suffix) or "status update"
    text = f"{'SIP' if family == 'sip' else 'RTC'} call {phrase}"
    if direction:
        text += f" ({direction})"
    route = _route(source, target)
    if route:
        text += f", {route}"
    if reason:
        text += f", reason: {reason}"
    return Summary(
        family,
        text,
        _details(
            ("Status", status or _CALL_PHRASES.get(suffix, "")),
            ("Direction", direction),
            ("Reason", reason),
            ("Result", result),
            ("From", source),
            ("To", target),
            ("Channel", _s(channel.get("type"))),
            ("Leg", _channel_leg(channel) or _s(body.get("leg_id"))),
        ),
    )


_AUDIO_FIXED = {
    "mute:on": "Audio muted",
    "mute:off": "Audio unmuted",
    "earmuff:on": "Earmuffed: can no longer hear the conversation",
    "earmuff:off": "Earmuff removed: can hear the conversation again",
    "play:stop": "Audio playback stopped",
    "play:done": "Audio playback finished",
    "record:stop": "Recording stopped",
    "say:stop": "Text to speech stopped",
    "say:done": "Text to speech finished",
    "speaking:on": "Started speaking",
    "speaking:off": "Stopped speaking",
    "ringing:start": "Ringing tone started",
    "ringing:stop": "Ringing tone stopped",
}


def _audio(suffix: str, body: dict[Any, Any]) -> Summary:
    handler = _AUDIO_HANDLERS.get(suffix)
    if handler is not None:
        text, details = handler(body)
    elif suffix in _AUDIO_FIXED:
        text = _AUDIO_FIXED[suffix]
        details = _details(("Play id", _s(body.get("play_id"))))
    else:
        words = _words(suffix)
        text, details = (f"Audio event: {words}" if words else "Audio event"), []
    return Summary("audio", text, details)


def _dtmf(body: dict[Any, Any]) -> tuple[str, list[tuple[str, str]]]:
    digits = _s(body.get("digit")) or _s(body.get("digits"))
    text = f"DTMF digits entered: {digits}" if digits else "DTMF digits entered"
    return text, _details(("Digits", digits), ("Duration (ms)", _s(body.get("duration"))))


def _play(body: dict[Any, Any]) -> tuple[str, list[tuple[str, str]]]:
    raw = body.get("stream_url")
    candidates = raw if isinstance(raw, list) else [raw]
    urls = [url for url in (_s(item) for item in candidates) if url]
    loop = _s(body.get("loop"))
    if urls:
        text = f"Playing audio: {urls[0]}"
        if len(urls) > 1:
            text += f" (+{len(urls) - 1} more)"
    else:
        text = "Playing audio"
    if loop == "0":
        text += ", looping until stopped"
    elif loop and loop != "1":
        text += f", {loop} times"
    details = [("Stream URL", url) for url in urls[:MAX_URLS]]
    details += _details(
        ("Loop", "0 (until stopped)" if loop == "0" else loop),
        ("Level", _s(body.get("level"))),
        ("Play id", _s(body.get("play_id"))),
    )
    return text, details


def _record(body: dict[Any, Any]) -> tuple[str, list[tuple[str, str]]]:
    fmt = _s(body.get("format"))
    beep = _flag(body.get("beep"))
    if beep is None:
        beep = _flag(body.get("beep_start"))
    notes = [note for note in (fmt, "with a beep" if beep else "") if note]
    text = "Recording started" + (f" ({', '.join(notes)})" if notes else "")
    beep_text = "" if beep is None else ("yes" if beep else "no")
    return text, _details(("Format", fmt), ("Beep", beep_text))


def _record_done(body: dict[Any, Any]) -> tuple[str, list[tuple[str, str]]]:
    url = _s(body.get("recording_url")) or _s(body.get("destination_url"))
    size = _size(body.get("size"))
    text = "Recording finished" + (f" ({size})" if size else "")
    return text, _details(
        ("Recording URL", url),
        ("Size", size),
        ("Format", _s(body.get("format"))),
        ("Recording id", _s(body.get("recording_id"))),
    )


def _say(body: dict[Any, Any]) -> tuple[str, list[tuple[str, str]]]:
    said = _s(body.get("text"))
    text = f'Text to speech: "{said}"' if said else "Text to speech started"
    return text, _details(
        ("Text", said),
        ("Voice", _s(body.get("voice_name"))),
        ("Language", _s(body.get("language"))),
    )


def _asr(body: dict[Any, Any]) -> tuple[str, list[tuple[str, str]]]:
    asr = _obj(body.get("asr")) or body
    results = asr.get("results")
    if isinstance(results, (str, dict)):
        results = [results]
    found: list[tuple[str, str]] = []
    for item in results if isinstance(results, list) else []:
        if isinstance(item, dict):
            said = _s(item.get("text")) or _s(item.get("transcript"))
            confidence = _s(item.get("confidence"))
        else:
            said, confidence = _s(item), ""
        if said:
            found.append((said, confidence))
    error = _reason(asr.get("error"))
    timeout = _s(asr.get("timeout_reason"))
    if found:
        text = f'Speech recognised: "{found[0][0]}"'
    elif error:
        text = f"Speech recognition failed: {error}"
    else:
        text = "Speech recognition finished with no result"
    details: list[tuple[str, str]] = []
    for said, confidence in found[:3]:
        details += _details(("Result", said), ("Confidence", confidence))
    details += _details(("Error", error), ("Timeout reason", timeout))
    return text, details


def _asr_record(body: dict[Any, Any]) -> tuple[str, list[tuple[str, str]]]:
    url = _s(body.get("destination_url")) or _s(body.get("recording_url"))
    return "Speech recognition recording finished", _details(("Recording URL", url))


_AUDIO_HANDLERS = {
    "dtmf": _dtmf,
    "play": _play,
    "record": _record,
    "record:done": _record_done,
    "say": _say,
    "asr:done": _asr,
    "asr:record:done": _asr_record,
}


def _member_name(event: Event, body: dict[Any, Any], names: Mapping[str, str]) -> str:
    """Who a joined/left/media event is about: the body's user, else the sender's member."""
    user = _obj(body.get("user"))
    return (
        _s(user.get("display_name"))
        or _s(user.get("name"))
        or _lookup(names, body.get("member_id"))
        or _lookup(names, event.from_)
        or _user_label(event.from_user)
        or _s(user.get("id"))
        or _s(event.from_)
        or "Someone"
    )


def _actor(event: Event, member_id: Any, names: Mapping[str, str]) -> str:
    """A member id (or name) as a label: the members map, the sender's user, else as given."""
    label = _lookup(names, member_id)
    if label:
        return label
    if isinstance(member_id, str) and member_id and member_id == event.from_:
        label = _user_label(event.from_user)
    return label or _s(member_id)


def _member(suffix: str, event: Event, body: dict[Any, Any], names: Mapping[str, str]) -> Summary:
    user = _obj(body.get("user"))
    channel = _obj(body.get("channel"))
    channel_type = _s(channel.get("type"))
    source = _address(channel.get("from"))
    target = _address(channel.get("to"))
    reason = _reason(body.get("reason"))
    details = _details(("User", _s(user.get("id"))))
    if suffix == "invited":
        invitee = (
            _s(user.get("display_name"))
            or _s(user.get("name"))
            or _lookup(names, body.get("member_id"))
            or _s(user.get("id"))
            or "Someone"
        )
        inviter = _actor(event, body.get("invited_by"), names) or _actor(event, event.from_, names)
        text = f"{invitee} was invited" + (f" by {inviter}" if inviter else "")
        details += _details(("Invited by", inviter))
    elif suffix == "media":
        who = _member_name(event, body, names)
        media = _obj(body.get("media"))
        settings = _obj(media.get("audio_settings"))
        enabled = _flag(settings.get("enabled"))
        for fallback in (media.get("audio"), body.get("audio")):
            if enabled is None:
                enabled = _flag(fallback)
        muted = _flag(settings.get("muted"))
        earmuffed = _flag(settings.get("earmuffed"))
        state = {True: "audio on", False: "audio off", None: "media changed"}[enabled]
        notes = [note for note, on in (("muted", muted), ("earmuffed", earmuffed)) if on]
        text = f"{who}: {', '.join([state, *notes])}"
        details += _details(
            ("Audio", {True: "on", False: "off", None: ""}[enabled]),
            ("Muted", {True: "yes", False: "no", None: ""}[muted]),
            ("Earmuffed", {True: "yes", False: "no", None: ""}[earmuffed]),
        )
    elif suffix == "joined":
        who = _member_name(event, body, names)
        text = f"{who} joined" + (f" via {channel_type}" if channel_type else "")
        route = _route(source, target)
        if route:
            text += f" ({route})"
    elif suffix == "left":
        who = _member_name(event, body, names)
        text = f"{who} left" + (f": {reason}" if reason else "")
    elif suffix == "message:status":
        who = _member_name(event, body, names)
        status = _s(body.get("status"))
        text = f"{who}: message status {status}" if status else f"{who}: message status update"
        details += _details(("Status", status))
    else:
        who = _member_name(event, body, names)
        text = f"{who}: {_words(suffix) or 'member event'}"
    details += _details(
        ("Reason", reason),
        ("Channel", channel_type),
        ("From", source),
        ("To", target),
    )
    return Summary("member", text, details)


_MESSAGE_KINDS = {
    "image": "Image message",
    "audio": "Audio message",
    "video": "Video message",
    "file": "File message",
    "vcard": "vCard message",
    "location": "Location message",
    "template": "Template message",
    "custom": "Custom message",
    "random": "Random message",
}

_MESSAGE_STATUS = {
    "delivered": "delivered",
    "seen": "seen",
    "submitted": "submitted",
    "rejected": "rejected",
    "undeliverable": "undeliverable",
    "update": "edited",
}


def _message_content(event_type: str, body: dict[Any, Any]) -> Summary:
    message_type = _s(body.get("message_type"))
    if not message_type and event_type == "image":
        message_type = "image"
    if not message_type and isinstance(body.get("text"), str):
        message_type = "text"
    if message_type == "text":
        said = _s(body.get("text"))
        return Summary("message", said or "Empty text message", [])
    if not message_type:
        return Summary("message", "Message with no content", [])
    content = _obj(body.get(message_type))
    label = _MESSAGE_KINDS.get(message_type, f"Message of type {message_type}")
    if message_type == "location":
        place = _s(content.get("name")) or _s(content.get("address"))
        return Summary(
            "message",
            label + (f": {place}" if place else ""),
            _details(
                ("Name", _s(content.get("name"))),
                ("Address", _s(content.get("address"))),
                ("Latitude", _s(content.get("latitude"))),
                ("Longitude", _s(content.get("longitude"))),
            ),
        )
    if message_type == "template":
        name = _s(content.get("name"))
        return Summary("message", label + (f": {name}" if name else ""), _details(("Name", name)))
    if message_type == "custom":
        keys, details = _key_details(content)
        listed = _key_list(content, keys)
        return Summary("message", label + (f": {listed}" if listed else ""), details)
    original = _obj(_obj(body.get("representations")).get("original"))  # legacy image events
    url = _s(content.get("url")) or _s(original.get("url")) or _s(body.get("url"))
    caption = _s(content.get("caption")) or _s(content.get("name"))
    return Summary(
        "message",
        label + (f": {caption}" if caption else ""),
        _details(("URL", url), ("Caption", caption), ("Size", _size(content.get("size")))),
    )


def _message(event_type: str, body: dict[Any, Any]) -> Summary:
    head, _, suffix = event_type.partition(":")
    if not suffix:
        return _message_content(event_type, body)
    if suffix in ("typing:on", "typing:off"):
        return Summary("message", "Typing" if suffix == "typing:on" else "Stopped typing", [])
    ref = _s(body.get("event_id")) or _s(body.get("message_id")) or _s(body.get("id"))
    noun = {"text": "Text message", "image": "Image message"}.get(head, "Message")
    subject = f"{noun} #{ref}" if ref.isdigit() else (f"{noun} {ref}" if ref else noun)
    status = _MESSAGE_STATUS.get(suffix, _words(suffix))
    reason = _reason(body.get("reason")) or _reason(body.get("error"))
    text = f"{subject} {status}" + (f": {reason}" if reason else "")
    return Summary(
        "message",
        text,
        _details(
            ("Message", ref),
            ("Status", status),
            ("Reason", reason),
            ("Channel", _s(body.get("channel_type")) or _s(_obj(body.get("channel")).get("type"))),
        ),
    )


def _custom(event_type: str, body: dict[Any, Any]) -> Summary:
    name = event_type.partition(":")[2]
    keys, details = _key_details(body)
    listed = _key_list(body, keys)
    text = f"Custom event {name}" if name else "Custom event"
    if listed:
        text += f": {listed}"
    return Summary("custom", text, details)


def _conversation(event_type: str, body: dict[Any, Any]) -> Summary:
    if event_type == "event:delete":
        ref = _s(body.get("event_id")) or _s(body.get("id"))
        subject = f"Event #{ref}" if ref.isdigit() else (f"Event {ref}" if ref else "An event")
        return Summary("conversation", f"{subject} deleted", _details(("Event", ref)))
    if event_type == "ephemeral":
        keys, details = _key_details(body)
        listed = _key_list(body, keys)
        text = "Ephemeral event (not stored)" + (f": {listed}" if listed else "")
        return Summary("conversation", text, details)
    suffix = event_type.partition(":")[2]
    text = f"Conversation {_words(suffix) or 'event'}"
    return Summary(
        "conversation",
        text,
        _details(
            ("Name", _s(body.get("name"))),
            ("Display name", _s(body.get("display_name"))),
            ("State", _s(body.get("state"))),
        ),
    )


def _generic(event_type: str) -> Summary:
    return Summary("other", f"{event_type} event" if event_type else "Event", [])


def _summarize(event: Event, event_type: str, names: Mapping[str, str]) -> Summary:
    body = getattr(event, "body", None)
    family = family_of(event_type)
    if not isinstance(body, dict) or family == "other":
        return _generic(event_type)
    suffix = event_type.partition(":")[2]
    if family == "leg":
        return _leg(event_type, body)
    if family in ("sip", "rtc"):
        return _call(family, suffix, body)
    if family == "audio":
        return _audio(suffix, body)
    if family == "member":
        return _member(suffix, event, body, names)
    if family == "message":
        return _message(event_type, body)
    if family == "custom":
        return _custom(event_type, body)
    return _conversation(event_type, body)


def summarize(event: Event, members: Mapping[str, str] | None = None) -> Summary:
    """A family, a one-line sentence and label/value details for one event; never raises."""
    names: Mapping[str, str] = members if isinstance(members, Mapping) else {}
    event_type = _s(getattr(event, "type", None))
    try:
        summary = _summarize(event, event_type, names)
    except Exception:  # a summary must never break the timeline; the raw JSON is still shown
        logger.exception("could not summarize event %r", _s(getattr(event, "id", None)))
        return _generic(event_type)
    return Summary(summary.family, clip(summary.text, TEXT_LIMIT), summary.details)


def sender_label(event: Event, members: Mapping[str, str] | None = None) -> str:
    """Who sent an event: the member's name where known, else the raw `from` value, else "—"."""
    names: Mapping[str, str] = members if isinstance(members, Mapping) else {}
    from_ = getattr(event, "from_", None)
    return (
        _lookup(names, from_) or _user_label(getattr(event, "from_user", None)) or _s(from_) or "—"
    )
