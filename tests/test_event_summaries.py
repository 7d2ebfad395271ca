"""The one-line event summaries of the timeline: each event family, odd bodies, and sender names.

Payload shapes are copied from real examples (the Vonage docs' PSTN call, a live message event, the
v1 SDK fixture), then bent: missing fields, wrong types, numbers as strings, huge values.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Iterator, Mapping

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conversations import event_summaries
from conversations.event_summaries import (
    FAMILIES,
    KEY_LIMIT,
    TEXT_LIMIT,
    VALUE_LIMIT,
    Summary,
    sender_label,
    summarize,
)
from conversations.schema import Event, UserRef, parse_event

CALLER = "MEM-f44c872e-cba9-444f-88ae-0bfa630865a6"
AGENT = "MEM-0052a62c-d0ca-4237-8c59-1fed1edf0e15"
MEMBERS = {CALLER: "Caller (PSTN)", AGENT: "Agent Ana"}

_PHONE_CHANNEL_A = {
    "type": "phone",
    "id": "797168e24c19a3c45e74e05b10fef2b5",
    "from": {"type": "phone", "number": "447700000001"},
    "to": {"type": "phone", "number": "447700000002"},
    "leg_ids": ["797168e24c19a3c45e74e05b10fef2b5"],
}
_PHONE_CHANNEL_B = {
    "type": "phone",
    "id": "30cecc87-7ac9-4d03-910a-e9d69558263c",
    "from": {"number": "Unknown", "type": "phone"},
    "leg_ids": ["30cecc87-7ac9-4d03-910a-e9d69558263c"],
    "to": {"number": "447700000003", "type": "phone"},
    "cpa": False,
    "preanswer": False,
    "ring_timeout": 60000,
    "cpa_time": 5000,
    "max_length": 7200000,
}
_BETA_EXTRAS = {"to": "", "state": ""}

# The official docs' PSTN call (Nexmo/nexmo-developer, conversation concept page): beta-era shape,
# with `to`, `state` and `href` beside the v1 fields.
DOCS_CALL = [
    {
        "id": 1,
        "type": "member:joined",
        "from": CALLER,
        **_BETA_EXTRAS,
        "body": {
            "user": {"id": "USR-33a51f4d-d06b-42f6-a525-90d2859ab9f6"},
            "channel": _PHONE_CHANNEL_A,
            "timestamp": {"joined": "2018-10-25T09:26:19.204Z"},
        },
        "timestamp": "2018-10-25T09:26:19.207Z",
        "href": "https://api.nexmo.com/beta/conversations/CON-bc643220/events/1",
    },
    {
        "id": 2,
        "type": "sip:ringing",
        "from": CALLER,
        **_BETA_EXTRAS,
        "body": {"channel": _PHONE_CHANNEL_B},
        "timestamp": "2018-10-25T09:26:24.384Z",
    },
    {
        "id": 3,
        "type": "sip:answered",
        "from": CALLER,
        **_BETA_EXTRAS,
        "body": {"channel": _PHONE_CHANNEL_B, "direction": "outbound"},
        "timestamp": "2018-10-25T09:26:30.277Z",
    },
    {
        "id": 5,
        "type": "member:media",
        "from": CALLER,
        **_BETA_EXTRAS,
        "body": {
            "audio": True,
            "media": {
                "audio": True,
                "audio_settings": {"enabled": True, "earmuffed": False, "muted": False},
            },
            "channel": _PHONE_CHANNEL_B,
        },
        "timestamp": "2018-10-25T09:26:30.274Z",
    },
]

# A live message event (Vonage/vonage-java-sdk#539).
LIVE_MESSAGE = {
    "type": "message",
    "id": 3,
    "from": AGENT,
    "timestamp": "2024-07-04T15:32:44.303Z",
    "_embedded": {
        "from_user": {"id": "USR-5b39d44a-5023-4cad-b0fc-aaf0b9f9f9dc", "name": "user9"},
        "from_member": {"id": AGENT},
    },
    "body": {"message_type": "text", "text": "hello!"},
}

# The v1 events-list item of the .NET SDK fixture: spec placeholder values, `from` is "string".
SPEC_MESSAGE = {
    "id": 100,
    "type": "message",
    "from": "string",
    "body": {"message_type": "text", "text": "string"},
    "timestamp": "2020-01-01T14:00:00.00Z",
    "_embedded": {
        "from_user": {
            "id": "USR-82e028d9-5201-4f1e-8188-604b2d3471ec",
            "name": "my_user_name",
            "display_name": "My User Name",
            "image_url": "https://example.com/image.png",
            "custom_data": {"field_1": "value_1", "field_2": "value_2"},
        },
        "from_member": {"id": "string"},
    },
    "_links": {"self": {"href": "https://api.nexmo.com/v1/conversations/CON-123/events/100"}},
}


def event(event_type: str, body: object = None, *, from_: str = CALLER, **extra) -> Event:
    """An event built the way the client builds it: through the schema parser."""
    return parse_event({"id": 7, "type": event_type, "from": from_, "body": body, **extra})


@contextlib.contextmanager
def summary_errors() -> Iterator[list[logging.LogRecord]]:
    """The records the summariser logs: any one means a reader raised and was papered over."""
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect(level=logging.ERROR)
    event_summaries.logger.addHandler(handler)
    try:
        yield records
    finally:
        event_summaries.logger.removeHandler(handler)


def assert_well_formed(summary: Summary) -> None:
    assert summary.family in FAMILIES
    assert isinstance(summary.text, str) and 0 < len(summary.text) <= TEXT_LIMIT
    for label, value in summary.details:
        assert isinstance(label, str) and 0 < len(label) <= KEY_LIMIT
        assert isinstance(value, str) and 0 < len(value) <= VALUE_LIMIT


# --- real payloads


@pytest.mark.parametrize(
    ("index", "family", "named", "unnamed"),
    [
        (
            0,
            "member",
            "Caller (PSTN) joined via phone (447700000001 → 447700000002)",
            # No member list: the body's user id is all there is to name the member by.
            "USR-33a51f4d-d06b-42f6-a525-90d2859ab9f6 joined via phone "
            "(447700000001 → 447700000002)",
        ),
        (1, "sip", "SIP call ringing, Unknown → 447700000003", None),
        (2, "sip", "SIP call answered (outbound), Unknown → 447700000003", None),
        (3, "member", "Caller (PSTN): audio on", f"{CALLER}: audio on"),
    ],
)
def test_the_documented_pstn_call_reads_as_sentences(index, family, named, unnamed):
    call_event = parse_event(copy.deepcopy(DOCS_CALL[index]))
    summary = summarize(call_event, MEMBERS)
    assert summary == Summary(family, named, summary.details)
    assert summarize(call_event, {}).text == (unnamed or named)
    assert_well_formed(summary)


def test_the_call_events_carry_their_channel_details():
    ringing = summarize(parse_event(copy.deepcopy(DOCS_CALL[1])), MEMBERS)
    assert ringing.details == [
        ("Status", "ringing"),
        ("From", "Unknown"),
        ("To", "447700000003"),
        ("Channel", "phone"),
        ("Leg", "30cecc87-7ac9-4d03-910a-e9d69558263c"),
    ]
    joined = summarize(parse_event(copy.deepcopy(DOCS_CALL[0])), MEMBERS)
    assert ("User", "USR-33a51f4d-d06b-42f6-a525-90d2859ab9f6") in joined.details
    assert ("Channel", "phone") in joined.details
    media = summarize(parse_event(copy.deepcopy(DOCS_CALL[3])), MEMBERS)
    assert media.details == [
        ("Audio", "on"),
        ("Muted", "no"),
        ("Earmuffed", "no"),
        ("Channel", "phone"),
        ("From", "Unknown"),
        ("To", "447700000003"),
    ]


def test_a_live_text_message_shows_its_text_and_its_sender():
    live = parse_event(copy.deepcopy(LIVE_MESSAGE))
    assert summarize(live, MEMBERS) == Summary("message", "hello!", [])
    assert sender_label(live, MEMBERS) == "Agent Ana"
    assert sender_label(live, {}) == "user9", "the embedded user names an unknown member"
    assert sender_label(live) == "user9"


def test_the_spec_example_sender_is_its_users_display_name():
    spec = parse_event(copy.deepcopy(SPEC_MESSAGE))
    assert summarize(spec, {}).text == "string"
    assert sender_label(spec, {}) == "My User Name"
    assert sender_label(spec, {"string": "Looked up"}) == "Looked up"


# --- leg, sip and rtc


@pytest.mark.parametrize(
    ("event_type", "body", "text"),
    [
        (
            "leg:status:update",
            {
                "leg_id": "797168e24c19a3c45e74e05b10fef2b5",
                "status": "answered",
                "direction": "inbound",
                "type": "phone",
            },
            "Leg 797168e2… answered (inbound)",
        ),
        ("leg:status:update", {"leg_id": "short-leg"}, "Leg short-leg status updated"),
        ("leg:status:update", {}, "Leg status updated"),
        ("leg:status:update", {"leg_id": 12345, "status": 200}, "Leg 12345 200"),
        ("leg:transfer_done", {"leg_id": ["not", "a", "string"]}, "Leg: transfer done"),
        ("leg:", {}, "Leg"),
    ],
)
def test_leg_events(event_type, body, text):
    summary = summarize(event(event_type, body))
    assert summary.family == "leg"
    assert summary.text == text


def test_a_leg_event_keeps_the_whole_leg_id_in_its_details():
    leg = "797168e24c19a3c45e74e05b10fef2b5"
    summary = summarize(event("leg:status:update", {"leg_id": leg, "status": "ringing"}))
    assert summary.details == [("Leg", leg), ("Status", "ringing")]


@pytest.mark.parametrize(
    ("event_type", "body", "family", "text"),
    [
        (
            "sip:hangup",
            {
                "direction": "outbound",
                "reason": {"code": 486, "text": "Busy Here"},
                "channel": {
                    "from": {"type": "phone", "number": "447700000001"},
                    "to": {"type": "sip", "uri": "sip:desk@example.com"},
                },
            },
            "sip",
            "SIP call hung up (outbound), 447700000001 → sip:desk@example.com, "
            "reason: 486 Busy Here",
        ),
        ("sip:hangup", {"reason": "normal clearing"}, "sip", "SIP call hung up, reason: normal"
         " clearing"),
        ("sip:hangup", {"reason": {"sip_code": "503", "description": "Unavailable"}}, "sip",
         "SIP call hung up, reason: 503 Unavailable"),
        ("sip:machine", {"result": "human"}, "sip",
         "SIP call answering machine detection: human"),
        ("sip:amd_machine", {"machine_detection_result": "machine"}, "sip",
         "SIP call answering machine detection: machine"),
        ("sip:amd_machine", {}, "sip", "SIP call reached an answering machine"),
        ("sip:status", {"status": "early_media"}, "sip", "SIP call early_media"),
        ("sip:status", {}, "sip", "SIP call status"),
        ("sip:", {}, "sip", "SIP call status update"),
        ("rtc:status", {"status": "started"}, "rtc", "RTC call started"),
        ("rtc:answer", {}, "rtc", "RTC call answered"),
        ("rtc:transfer", {"channel": {"to": {"user": "USR-1"}}}, "rtc",
         "RTC call transferred, to USR-1"),
        ("rtc:terminate", {"channel": {"from": {"extension": 1234}}}, "rtc",
         "RTC call terminated, from 1234"),
        ("rtc:some_new_thing", {}, "rtc", "RTC call some new thing"),
    ],
)  # fmt: skip
def test_call_events(event_type, body, family, text):
    summary = summarize(event(event_type, body))
    assert (summary.family, summary.text) == (family, text)


def test_a_call_event_names_its_leg_from_the_channel_else_the_body():
    via_channel = summarize(event("sip:answered", {"channel": {"leg_ids": ["leg-from-list"]}}))
    assert ("Leg", "leg-from-list") in via_channel.details
    via_body = summarize(event("rtc:answered", {"leg_id": "leg-from-body", "channel": None}))
    assert ("Leg", "leg-from-body") in via_body.details


# --- audio


@pytest.mark.parametrize(
    ("event_type", "body", "text"),
    [
        ("audio:dtmf", {"digit": "5", "duration": 250}, "DTMF digits entered: 5"),
        ("audio:dtmf", {"digits": 1234}, "DTMF digits entered: 1234"),
        ("audio:dtmf", {"digit": None}, "DTMF digits entered"),
        ("audio:dtmf", {"digit": ["1", "2"]}, "DTMF digits entered"),
        ("audio:play", {"stream_url": "https://cdn.example/hold.mp3"},
         "Playing audio: https://cdn.example/hold.mp3"),
        ("audio:play", {"stream_url": ["https://a.example/1.mp3", "https://b.example/2.mp3"],
                        "loop": 0},
         "Playing audio: https://a.example/1.mp3 (+1 more), looping until stopped"),
        ("audio:play", {"stream_url": ["https://a.example/1.mp3"], "loop": "3"},
         "Playing audio: https://a.example/1.mp3, 3 times"),
        ("audio:play", {"stream_url": [None, 5, {"x": 1}], "loop": 1}, "Playing audio: 5"),
        ("audio:play", {}, "Playing audio"),
        ("audio:record", {"format": "mp3", "beep": True}, "Recording started (mp3, with a beep)"),
        ("audio:record", {"beep_start": False}, "Recording started"),
        ("audio:record", {"beep": "yes"}, "Recording started"),
        ("audio:record:done", {"size": 512}, "Recording finished (512 bytes)"),
        ("audio:record:done", {"size": 2048}, "Recording finished (2.0 KB)"),
        ("audio:record:done", {"size": 5 * 1024 * 1024}, "Recording finished (5.0 MB)"),
        ("audio:record:done", {"size": "2048"}, "Recording finished (2048)"),
        ("audio:record:done", {"size": True}, "Recording finished"),
        ("audio:say", {"text": "Your call is important", "voice_name": "Amy"},
         'Text to speech: "Your call is important"'),
        ("audio:say", {"text": 42}, 'Text to speech: "42"'),
        ("audio:say", {"text": {"ssml": "<speak/>"}}, "Text to speech started"),
        ("audio:asr:done", {"asr": {"results": [{"text": "billing", "confidence": 0.93}]}},
         'Speech recognised: "billing"'),
        ("audio:asr:done", {"asr": {"results": {"transcript": "sales"}}},
         'Speech recognised: "sales"'),
        ("audio:asr:done", {"results": ["yes", "no"]}, 'Speech recognised: "yes"'),
        ("audio:asr:done", {"asr": {"error": {"code": 1, "text": "no speech"}}},
         "Speech recognition failed: 1 no speech"),
        ("audio:asr:done", {"asr": {"results": ""}},
         "Speech recognition finished with no result"),
        ("audio:asr:record:done", {"destination_url": "https://api.nexmo.com/v1/files/abc"},
         "Speech recognition recording finished"),
        ("audio:mute:on", {}, "Audio muted"),
        ("audio:mute:off", {}, "Audio unmuted"),
        ("audio:earmuff:on", {}, "Earmuffed: can no longer hear the conversation"),
        ("audio:play:done", {"play_id": "p-1"}, "Audio playback finished"),
        ("audio:speaking:on", {}, "Started speaking"),
        ("audio:ringing:start", {}, "Ringing tone started"),
        ("audio:noise_gate:on", {}, "Audio event: noise gate on"),
        ("audio:", {}, "Audio event"),
        ("audio:__", {}, "Audio event"),
    ],
)  # fmt: skip
def test_audio_events(event_type, body, text):
    with summary_errors() as errors:
        summary = summarize(event(event_type, body))
    assert (summary.family, summary.text) == ("audio", text)
    assert errors == []
    assert_well_formed(summary)


def test_audio_event_details():
    play = summarize(
        event("audio:play", {"stream_url": [f"https://x.example/{i}" for i in range(9)]})
    )
    assert [value for label, value in play.details if label == "Stream URL"] == [
        f"https://x.example/{i}" for i in range(5)
    ], "at most five stream URLs are listed"
    assert summarize(event("audio:dtmf", {"digit": 7, "duration": "250"})).details == [
        ("Digits", "7"),
        ("Duration (ms)", "250"),
    ]
    assert summarize(event("audio:record", {"beep": False})).details == [("Beep", "no")]
    done = summarize(
        event("audio:record:done", {"recording_url": "https://r.example/1", "size": 1})
    )
    assert done.details == [("Recording URL", "https://r.example/1"), ("Size", "1 bytes")]
    asr = summarize(
        event("audio:asr:done", {"asr": {"results": [{"text": f"w{i}"} for i in range(6)]}})
    )
    assert [value for label, value in asr.details if label == "Result"] == ["w0", "w1", "w2"]
    assert summarize(event("audio:mute:on", {"play_id": "p-9"})).details == [("Play id", "p-9")]


@pytest.mark.parametrize(
    "size",
    [float("nan"), float("inf"), -float("inf"), 10**400, -(10**400)],
    ids=["nan", "inf", "-inf", "huge", "-huge"],
)
def test_a_recording_size_json_can_carry_but_no_float_can_hold_is_no_error(size):
    # Python's JSON parser (and so requests' .json()) accepts NaN, Infinity and 400-digit ints.
    with summary_errors() as errors:
        summary = summarize(event("audio:record:done", {"size": size, "format": "mp3"}))
    assert errors == [], "a reader raised and the timeline fell back to the generic line"
    assert summary.family == "audio"
    assert summary.text.startswith("Recording finished")
    assert "nan" not in summary.text and "inf" not in summary.text
    assert ("Format", "mp3") in summary.details
    assert_well_formed(summary)


# --- member


def test_member_invited_names_invitee_and_inviter():
    body = {"user": {"id": "USR-1", "name": "bob", "display_name": "Bob B."}, "invited_by": AGENT}
    summary = summarize(event("member:invited", body), MEMBERS)
    assert summary == Summary(
        "member",
        "Bob B. was invited by Agent Ana",
        [("User", "USR-1"), ("Invited by", "Agent Ana")],
    )


@pytest.mark.parametrize(
    ("body", "members", "extra", "text"),
    [
        ({"user": {"name": "bob"}}, {}, {}, f"bob was invited by {CALLER}"),
        ({"user": {"id": "USR-2"}, "invited_by": "MEM-unknown"}, {}, {},
         "USR-2 was invited by MEM-unknown"),
        ({"member_id": AGENT}, MEMBERS, {}, "Agent Ana was invited by Caller (PSTN)"),
        ({}, {}, {"_embedded": {"from_user": {"id": "USR-9", "display_name": "Dee"}}},
         "Someone was invited by Dee"),
        ({}, {}, {"from": ""}, "Someone was invited"),
    ],
)  # fmt: skip
def test_member_invited_fallbacks(body, members, extra, text):
    assert summarize(event("member:invited", body, **extra), members).text == text


@pytest.mark.parametrize(
    ("event_type", "body", "text"),
    [
        ("member:joined", {"user": {"name": "agent_ana"}, "channel": {"type": "app"}},
         "agent_ana joined via app"),
        ("member:joined", {"channel": {"type": "phone", "from": {"number": "447700900001"}}},
         "Caller (PSTN) joined via phone (from 447700900001)"),
        ("member:joined", {"channel": "phone"}, "Caller (PSTN) joined"),
        ("member:left", {"reason": {"code": "487", "text": "Request Terminated"}},
         "Caller (PSTN) left: 487 Request Terminated"),
        ("member:left", {"reason": None}, "Caller (PSTN) left"),
        ("member:media", {"media": {"audio_settings": {"enabled": False}}},
         "Caller (PSTN): audio off"),
        ("member:media", {"media": {"audio_settings": {"enabled": True, "muted": True,
                                                       "earmuffed": True}}},
         "Caller (PSTN): audio on, muted, earmuffed"),
        ("member:media", {"audio": False}, "Caller (PSTN): audio off"),
        ("member:media", {"media": {"audio": "true"}}, "Caller (PSTN): media changed"),
        ("member:message:status", {"status": "seen"}, "Caller (PSTN): message status seen"),
        ("member:message:status", {}, "Caller (PSTN): message status update"),
        ("member:knocking:cancel", {}, "Caller (PSTN): knocking cancel"),
        ("member:", {}, "Caller (PSTN): member event"),
    ],
)  # fmt: skip
def test_member_events(event_type, body, text):
    summary = summarize(event(event_type, body), MEMBERS)
    assert (summary.family, summary.text) == ("member", text)


def test_who_a_member_event_is_about_prefers_the_body_user_then_the_members_map():
    body = {"user": {"id": "USR-7"}, "member_id": AGENT}
    assert summarize(event("member:left", body), MEMBERS).text == "Agent Ana left"
    assert summarize(event("member:left", body), {}).text == "USR-7 left"
    assert summarize(event("member:left", {"member_id": AGENT}), {}).text == f"{CALLER} left"
    assert summarize(event("member:left", {}, from_=""), {}).text == "Someone left"


# --- messages


@pytest.mark.parametrize(
    ("event_type", "body", "text", "details"),
    [
        ("message", {"message_type": "text", "text": "hi <b>there</b>"}, "hi <b>there</b>", []),
        ("message", {"message_type": "text", "text": ""}, "Empty text message", []),
        ("message", {"text": "no message_type"}, "no message_type", []),
        ("text", {"text": "legacy text event"}, "legacy text event", []),
        ("message", {"message_type": "image",
                     "image": {"url": "https://img.example/a.png", "caption": "receipt",
                               "size": 3072}},
         "Image message: receipt",
         [("URL", "https://img.example/a.png"), ("Caption", "receipt"), ("Size", "3.0 KB")]),
        ("image", {"representations": {"original": {"url": "https://img.example/o.png"}}},
         "Image message", [("URL", "https://img.example/o.png")]),
        ("message", {"message_type": "file", "file": {"url": "https://f.example/x.pdf",
                                                      "name": "x.pdf"}},
         "File message: x.pdf", [("URL", "https://f.example/x.pdf"), ("Caption", "x.pdf")]),
        ("message", {"message_type": "location",
                     "location": {"name": "HQ", "latitude": 51.5, "longitude": "-0.12"}},
         "Location message: HQ",
         [("Name", "HQ"), ("Latitude", "51.5"), ("Longitude", "-0.12")]),
        ("message", {"message_type": "template", "template": {"name": "welcome_v2"}},
         "Template message: welcome_v2", [("Name", "welcome_v2")]),
        ("message", {"message_type": "custom", "custom": {"a": 1, "b": [1, 2], "c": None,
                                                          "d": True, "e": "x", "f": {}}},
         "Custom message: a, b, c, d (+2 more)",
         [("a", "1"), ("b", "[1,2]"), ("c", "null"), ("d", "true"), ("More keys", "2")]),
        ("message", {"message_type": "hologram"}, "Message of type hologram", []),
        ("message", {"message_type": "image", "image": "not an object"}, "Image message", []),
        ("message", {}, "Message with no content", []),
        ("message:delivered", {"event_id": "7"}, "Message #7 delivered", None),
        ("message:seen", {"message_id": "abc"}, "Message abc seen", None),
        ("message:submitted", {}, "Message submitted", None),
        ("message:rejected", {"event_id": 7, "reason": {"code": 1340, "text": "Outside window"}},
         "Message #7 rejected: 1340 Outside window", None),
        ("message:undeliverable", {"id": 9, "error": "expired"},
         "Message #9 undeliverable: expired", None),
        ("text:seen", {"event_id": 12}, "Text message #12 seen", None),
        ("text:update", {"event_id": 12}, "Text message #12 edited", None),
        ("image:delivered", {"event_id": 3}, "Image message #3 delivered", None),
        ("message:strange_status", {}, "Message strange status", None),
        ("text:typing:on", {}, "Typing", []),
        ("text:typing:off", {}, "Stopped typing", []),
    ],
)  # fmt: skip
def test_message_events(event_type, body, text, details):
    summary = summarize(event(event_type, body))
    assert (summary.family, summary.text) == ("message", text)
    if details is not None:
        assert summary.details == details


def test_a_message_status_event_has_its_details():
    summary = summarize(
        event("message:rejected", {"event_id": 7, "reason": "policy", "channel_type": "whatsapp"})
    )
    assert summary.details == [
        ("Message", "7"),
        ("Status", "rejected"),
        ("Reason", "policy"),
        ("Channel", "whatsapp"),
    ]


# --- custom, conversation, deleted and unknown events


@pytest.mark.parametrize(
    ("event_type", "body", "text", "details"),
    [
        ("custom:ticket_opened", {"ticket": "T-4411", "priority": 2},
         "Custom event ticket_opened: ticket, priority",
         [("ticket", "T-4411"), ("priority", "2")]),
        ("custom:bulk", {f"k{i}": i for i in range(6)},
         "Custom event bulk: k0, k1, k2, k3 (+2 more)",
         [("k0", "0"), ("k1", "1"), ("k2", "2"), ("k3", "3"), ("More keys", "2")]),
        ("custom:nested", {"deep": {"a": [1, {"b": None}]}}, "Custom event nested: deep",
         [("deep", '{"a":[1,{"b":null}]}')]),
        ("custom:odd", {"": "empty key"}, "Custom event odd", [("(empty key)", "empty key")]),
        ("custom:none", {}, "Custom event none", []),
        ("custom", {"x": 1}, "Custom event: x", [("x", "1")]),
    ],
)  # fmt: skip
def test_custom_events(event_type, body, text, details):
    assert summarize(event(event_type, body)) == Summary("custom", text, details)


def test_conversation_updated_lists_what_it_carries():
    body = {"name": "support_call_0142", "display_name": "Support call", "state": "ACTIVE"}
    assert summarize(event("conversation:updated", body)) == Summary(
        "conversation",
        "Conversation updated",
        [("Name", "support_call_0142"), ("Display name", "Support call"), ("State", "ACTIVE")],
    )
    assert summarize(event("conversation:updated", {"name": ["x"]})).details == []
    assert summarize(event("conversation:", {})).text == "Conversation event"


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"event_id": 5}, "Event #5 deleted"),
        ({"event_id": "5"}, "Event #5 deleted"),
        ({"id": "evt-x"}, "Event evt-x deleted"),
        ({"event_id": None}, "An event deleted"),
        (None, "An event deleted"),
    ],
)
def test_a_deleted_event(body, text):
    summary = summarize(event("event:delete", body))
    assert (summary.family, summary.text) == ("conversation", text)


def test_a_deleted_message_whose_body_was_emptied_says_so():
    assert summarize(event("message", {})).text == "Message with no content"


def test_an_ephemeral_event():
    assert summarize(event("ephemeral", {"cursor_at": 3})) == Summary(
        "conversation", "Ephemeral event (not stored): cursor_at", [("cursor_at", "3")]
    )


@pytest.mark.parametrize(
    ("event_type", "text"),
    [
        ("app:knocking", "app:knocking event"),
        ("conversation", "conversation event"),
        ("leg", "leg event"),
        ("sip", "sip event"),
        ("something:new:v2", "something:new:v2 event"),
        ("<script>alert(1)</script>", "<script>alert(1)</script> event"),
    ],
)
def test_unknown_types_are_rendered_generically(event_type, text):
    assert summarize(event(event_type, {"anything": 1})) == Summary("other", text, [])


def test_an_event_with_no_type():
    assert summarize(parse_event({"id": 1, "body": {}})).text == "(no type) event"
    untyped = Event(id=1, type=None, body={})  # type: ignore[arg-type]
    assert summarize(untyped) == Summary("other", "Event", [])


# --- odd bodies and values


def test_a_null_body_is_an_empty_one():
    for event_type, text in [
        ("message", "Message with no content"),
        ("member:joined", "Caller (PSTN) joined"),
        ("audio:dtmf", "DTMF digits entered"),
        ("custom:x", "Custom event x"),
    ]:
        summary = summarize(event(event_type, None), MEMBERS)
        assert summary.text == text


def test_a_list_or_scalar_body_is_kept_under_value_and_never_breaks_a_summary():
    assert summarize(event("message", [1, 2])).text == "Message with no content"
    assert summarize(event("custom:x", [1, 2])) == Summary(
        "custom", "Custom event x: value", [("value", "[1,2]")]
    )
    assert summarize(event("custom:x", "plain")).details == [("value", "plain")]
    assert summarize(event("member:left", 17), {}).text == f"{CALLER} left"


@pytest.mark.parametrize("body", [[1, 2], "text", 5, None, ("a",)])
def test_an_event_built_with_a_non_object_body_is_generic(body):
    built = Event(id=1, type="message", from_=CALLER, body=body)  # type: ignore[arg-type]
    assert summarize(built) == Summary("other", "message event", [])


def test_numbers_given_as_strings_are_shown_as_given():
    parsed = event("audio:dtmf", {"digit": "0042", "duration": "250"})
    assert parsed.id == 7
    assert summarize(parsed).details == [("Digits", "0042"), ("Duration (ms)", "250")]
    assert parse_event({"id": "12", "type": "message", "body": {"text": "x"}}).id == 12
    assert (
        summarize(event("audio:play", {"loop": "0"})).text == "Playing audio, looping until stopped"
    )
    assert summarize(event("message:seen", {"event_id": "0012"})).text == "Message #0012 seen"


def test_booleans_are_not_numbers():
    assert summarize(event("audio:dtmf", {"digit": True})).text == "DTMF digits entered"
    assert summarize(event("leg:status:update", {"status": False})).text == "Leg status updated"


def test_huge_strings_are_clipped():
    huge = "x" * 100_000
    for event_type, body in [
        ("message", {"message_type": "text", "text": huge}),
        ("leg:status:update", {"leg_id": huge, "status": huge, "direction": huge}),
        ("sip:hangup", {"reason": {"code": huge, "text": huge}, "direction": huge}),
        ("custom:" + huge, {huge: huge, huge + "y": [huge] * 10}),
        ("member:joined", {"user": {"name": huge}, "channel": {"type": huge}}),
        ("audio:say", {"text": huge, "voice_name": huge}),
        ("message", {"message_type": huge}),
    ]:
        summary = summarize(event(event_type, body))
        assert_well_formed(summary)
        assert "…" in summary.text
    text = summarize(event("message", {"text": huge})).text
    assert text == "x" * (VALUE_LIMIT - 1) + "…"


def test_an_int_too_long_to_print_is_treated_as_missing():
    built = Event(id=1, type="audio:dtmf", body={"digit": 10**5000})
    with summary_errors() as errors:
        assert summarize(built).text == "DTMF digits entered"
    assert errors == []


def test_non_string_keys_and_unserialisable_values_in_a_built_body():
    circular: list[object] = []
    circular.append(circular)
    built = Event(id=1, type="custom:x", body={1: "one", (None,): "tuple", "loop": circular})
    summary = summarize(built)
    assert summary.family == "custom"
    assert summary.text == "Custom event x: 1, [null], loop"
    assert summary.details[:2] == [("1", "one"), ("[null]", "tuple")]


def test_the_members_argument_is_optional_and_may_be_anything():
    joined = event("member:left", {})
    assert summarize(joined).text == f"{CALLER} left"
    assert summarize(joined, None).text == f"{CALLER} left"
    assert summarize(joined, ["not", "a", "mapping"]).text == f"{CALLER} left"  # type: ignore[arg-type]
    assert summarize(joined, {CALLER: None}).text == f"{CALLER} left"  # type: ignore[dict-item]
    assert summarize(joined, {CALLER: ["x"]}).text == f"{CALLER} left"  # type: ignore[dict-item]


class ExplodingMembers(Mapping):
    def __getitem__(self, key):
        raise RuntimeError("broken lookup")

    def __iter__(self):
        return iter(())

    def __len__(self):
        return 0

    def get(self, key, default=None):
        raise RuntimeError("broken lookup")


def test_a_members_mapping_that_raises_does_not_break_the_line():
    live = parse_event(copy.deepcopy(LIVE_MESSAGE))
    with summary_errors() as errors:
        assert summarize(event("member:left", {}), ExplodingMembers()).text == f"{CALLER} left"
        assert sender_label(live, ExplodingMembers()) == "user9"
    assert errors == []


# --- senders


@pytest.mark.parametrize(
    ("data", "members", "label"),
    [
        ({"from": AGENT}, MEMBERS, "Agent Ana"),
        ({"from": AGENT}, {}, AGENT),
        ({"from": AGENT}, None, AGENT),
        ({"from": AGENT}, {AGENT: ""}, AGENT),
        ({"from": "knocker:1a2b3c"}, MEMBERS, "knocker:1a2b3c"),
        ({"from": AGENT, "_embedded": {"from_user": {"id": "USR-1", "name": "ana"}}}, {}, "ana"),
        (
            {"from": AGENT, "_embedded": {"from_user": {"id": "USR-1", "display_name": "Ana"}}},
            {},
            "Ana",
        ),
        ({"from": AGENT, "_embedded": {"from_user": {"id": "USR-1"}}}, {}, "USR-1"),
        ({"from": "", "_embedded": {"from_user": {"id": "USR-1"}}}, {}, "USR-1"),
        ({}, MEMBERS, "—"),
        ({"from": 12345}, {}, "12345"),
        ({"from": "<script>alert(1)</script>"}, {}, "<script>alert(1)</script>"),
    ],
)
def test_sender_label(data, members, label):
    parsed = parse_event({"id": 1, "type": "message", "body": {}, **data})
    assert sender_label(parsed, members) == label


def test_a_huge_sender_is_clipped():
    parsed = parse_event({"id": 1, "type": "message", "from": "m" * 10_000})
    assert sender_label(parsed) == "m" * (VALUE_LIMIT - 1) + "…"
    assert sender_label(parsed, {"m" * 10_000: "n" * 10_000}) == "n" * (VALUE_LIMIT - 1) + "…"


def test_a_sender_label_for_an_object_that_is_barely_an_event():
    class Bare:
        pass

    assert sender_label(Bare()) == "—"  # type: ignore[arg-type]
    assert summarize(Bare()) == Summary("other", "Event", [])  # type: ignore[arg-type]
    user_only = Event(id=1, type="x", from_user=UserRef(id="USR-1", name="", display_name="D"))
    assert sender_label(user_only) == "D"


# --- any JSON body, for any known type


KNOWN_TYPES = [
    "leg:status:update",
    "sip:hangup",
    "sip:amd_machine",
    "rtc:status",
    "audio:dtmf",
    "audio:play",
    "audio:record",
    "audio:record:done",
    "audio:say",
    "audio:asr:done",
    "audio:asr:record:done",
    "audio:mute:on",
    "member:invited",
    "member:joined",
    "member:left",
    "member:media",
    "member:message:status",
    "message",
    "message:rejected",
    "text",
    "image",
    "custom:x",
    "conversation:updated",
    "event:delete",
    "ephemeral",
    "app:knocking",
]
KEYS = sorted(
    {
        "asr", "audio", "audio_settings", "beep", "channel", "code", "custom", "destination_url",
        "digit", "direction", "display_name", "earmuffed", "enabled", "error", "event_id", "file",
        "from", "id", "image", "invited_by", "leg_id", "leg_ids", "location", "loop", "media",
        "member_id", "message_type", "muted", "name", "number", "original", "reason",
        "representations", "result", "results", "size", "status", "stream_url", "text", "to",
        "type", "url", "user",
    }
)  # fmt: skip

# Everything Python's JSON parser can produce, biased towards the keys the summariser reads.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**300, max_value=10**400)
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["text", "image", "custom", "location", "0", "486", MEMBERS[AGENT]]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), children, max_size=5)
    ),
    max_leaves=25,
)
json_bodies = st.none() | json_values | st.dictionaries(st.sampled_from(KEYS), json_values)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    event_type=st.sampled_from(KNOWN_TYPES) | st.text(max_size=30),
    body=json_bodies,
    from_=st.sampled_from([CALLER, AGENT, "", "knocker:x"]) | st.text(max_size=10),
)
def test_any_body_gives_a_well_formed_summary_without_an_error(event_type, body, from_):
    parsed = event(event_type, body, from_=from_)
    with summary_errors() as errors:
        summary = summarize(parsed, MEMBERS)
        label = sender_label(parsed, MEMBERS)
    assert errors == [], f"a reader raised on {event_type!r}: {body!r}"
    assert_well_formed(summary)
    assert isinstance(label, str) and 0 < len(label) <= VALUE_LIMIT
    assert type(summary.text) is str, "plain text, never marked safe: templates escape it"
