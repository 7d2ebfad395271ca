"""Ingestion: a duplicate is a no-op, and derived state follows the highest event id whatever the
order of arrival."""

from __future__ import annotations

import itertools
import random

import pytest

from conversations.store import ingest
from conversations.store.models import StoredConversation, StoredEvent, StoredMember

pytestmark = pytest.mark.django_db

CONVERSATION = "CON-1f3a2c5e-8a57-4b6c-9a8e-7d2f0f6b1c11"
ALICE = "MEM-aaaaaaaa-1e2f-4a3b-8c4d-5e6f7a8b9c0d"
BOB = "MEM-bbbbbbbb-1e2f-4a3b-8c4d-5e6f7a8b9c0d"


def member_event(event_id: int, event_type: str, member: str, second: int) -> dict:
    state = event_type.split(":")[1]
    stamp = f"2026-11-27T09:00:{second:02d}.000Z"
    return {
        "conversation_id": CONVERSATION,
        "id": event_id,
        "type": event_type,
        "from": member,
        "timestamp": stamp,
        "body": {
            "user": {"id": f"USR-{member[4:]}", "name": f"user-{member[4:8]}"},
            "channel": {"type": "phone"},
            "timestamp": {state: stamp},
        },
    }


# A call: Alice and Bob join, talk, Bob leaves, Alice leaves (the call is over).
CALL = [
    member_event(1, "member:invited", ALICE, 1),
    member_event(2, "member:joined", ALICE, 2),
    member_event(3, "member:invited", BOB, 3),
    member_event(4, "member:joined", BOB, 4),
    {"conversation_id": CONVERSATION, "id": 5, "type": "audio:dtmf", "from": BOB, "body": {}},
    member_event(6, "member:left", BOB, 6),
    member_event(7, "member:left", ALICE, 7),
]


def deliver(events) -> None:
    app = ingest.application("app")
    for number, body in enumerate(events):
        ingest.store_webhook(app, f"jti-{random.random()}-{number}", body)


def snapshot() -> dict:
    conversation = StoredConversation.objects.get()
    return {
        "members": dict(StoredMember.objects.values_list("vonage_id", "state")),
        "live": conversation.is_live,
        "state": conversation.state,
        "last": conversation.last_event_id,
        "last_type": conversation.last_event_type,
        "contiguous": conversation.contiguous_event_id,
        "joined": conversation.joined_count,
        "events": list(StoredEvent.objects.order_by("event_id").values_list("event_id", flat=True)),
    }


def test_in_order_the_call_ends():
    deliver(CALL)
    assert snapshot() == {
        "members": {ALICE: "LEFT", BOB: "LEFT"},
        "live": False,
        "state": "ended",
        "last": 7,
        "last_type": "member:left",
        "contiguous": 7,
        "joined": 0,
        "events": [1, 2, 3, 4, 5, 6, 7],
    }


@pytest.mark.parametrize("seed", range(12))
def test_any_order_with_duplicates_gives_the_same_state(seed):
    deliver(CALL)
    expected = snapshot()
    StoredConversation.objects.all().delete()
    shuffled = CALL + random.Random(seed).sample(CALL, 4)  # duplicates too
    random.Random(seed).shuffle(shuffled)
    deliver(shuffled)
    assert snapshot() == expected


def test_live_while_a_member_is_joined_and_gaps_are_seen():
    deliver([CALL[0], CALL[1], CALL[3]])  # 1, 2 and 4: event 3 (Bob invited) is missing
    state = snapshot()
    assert state["live"] is True and state["state"] == "live"
    assert state["joined"] == 2
    assert (state["contiguous"], state["last"]) == (2, 4)
    deliver([CALL[2]])  # the gap filled later
    assert snapshot()["contiguous"] == 4


def test_a_late_older_event_does_not_undo_a_newer_state():
    deliver([CALL[5]])  # Bob left (6)
    deliver([CALL[3]])  # ... then his join (4) arrives late
    assert StoredMember.objects.get(vonage_id=BOB).state == "LEFT"


def test_the_api_saying_ended_ends_a_call_whose_left_events_were_lost():
    deliver(CALL[:4])
    assert snapshot()["live"] is True
    app = ingest.application("app")
    ingest.record_api_conversation(
        app,
        {
            "id": CONVERSATION,
            "name": "support-call",
            "state": "INACTIVE",
            "timestamp": {"created": "2026-11-27T09:00:00Z", "destroyed": "2026-11-27T09:10:00Z"},
        },
    )
    conversation = StoredConversation.objects.get()
    assert (conversation.is_live, conversation.state, conversation.name) == (
        False,
        "ended",
        "support-call",
    )


def test_deleted_upstream_is_never_live_and_keeps_its_events():
    deliver(CALL[:4])
    ingest.mark_deleted_upstream(ingest.application("app"), CONVERSATION)
    state = snapshot()
    assert (state["live"], state["state"], state["events"]) == (False, "deleted", [1, 2, 3, 4])
    deliver([CALL[4]])  # a straggler does not bring it back to life
    assert snapshot()["live"] is False


def test_api_events_are_stored_once_and_foreign_items_skipped():
    app = ingest.application("app")
    items = [dict(e) for e in CALL[:3]]
    for item in items:
        item.pop("conversation_id")
    hostile = [
        {"id": "x", "type": "custom:x"},
        {"id": 99, "type": "t", "conversation_id": "CON-other"},
    ]
    assert ingest.store_events(app, CONVERSATION, items + hostile, StoredEvent.API) == 3
    assert ingest.store_events(app, CONVERSATION, items, StoredEvent.API) == 0
    assert snapshot()["events"] == [1, 2, 3]
    assert set(StoredEvent.objects.values_list("source", flat=True)) == {"api"}


def test_every_arrival_order_of_a_short_call():
    """All 120 orders of five events: one final state."""
    calls = [*CALL[:4], CALL[5]]
    results = set()
    for order in itertools.permutations(calls):
        StoredConversation.objects.all().delete()
        deliver(order)
        state = snapshot()
        results.add((tuple(sorted(state["members"].items())), state["live"], state["last"]))
    assert results == {(((ALICE, "JOINED"), (BOB, "LEFT")), True, 6)}


def membership(event_id: int, event_type: str, channel: str, name: str) -> dict:
    body = member_event(event_id, event_type, ALICE, event_id)
    body["body"]["channel"] = {"type": channel}
    body["body"]["user"]["name"] = name
    return body


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_member_details_follow_the_newest_event_whatever_the_order(order):
    events = [
        membership(1, "member:invited", "app", "old-name"),
        membership(2, "member:joined", "phone", "new-name"),
    ]
    deliver([events[i] for i in order])
    member = StoredMember.objects.get()
    assert (member.state, member.channel_type, member.user_name) == ("JOINED", "phone", "new-name")
    assert member.invited_at is not None and member.joined_at is not None  # both kept


def test_a_full_refresh_never_lowers_the_contiguous_mark():
    """Retention deletes the oldest events; recomputing must not send the reconciler back to
    read (and store again) what the retention removed."""
    deliver(CALL[:5])
    StoredEvent.objects.filter(event_id__lte=3).delete()
    conversation = StoredConversation.objects.get()
    ingest.refresh_conversation(conversation)
    conversation.refresh_from_db()
    assert (conversation.contiguous_event_id, conversation.last_event_id) == (5, 5)
