"""The reconciler against a real (in-process) sandbox: gaps filled once, deletions kept as history,
new conversations found, claims between concurrent runs, and runs stopped midway."""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from conversations import schema
from conversations.store import ingest
from conversations.store.api_records import fill_members
from conversations.store.models import StoredConversation, StoredEvent, StoredMember
from conversations.store.reconcile import reconcile
from sandbox.testing import running_sandbox
from tests.conftest import sandbox_client

pytestmark = pytest.mark.django_db

INTERVAL = settings.DASHBOARD_RECONCILE_SECONDS
LATER = dt.timedelta(seconds=INTERVAL)  # the next run: past every claim's lease


@pytest.fixture(scope="module")
def sb():
    """A sandbox of this module's own: the tests add, end and delete conversations in it."""
    with running_sandbox(conversations=8, big_conversation_events=0, activity_interval=0) as sb:
        yield sb


@pytest.fixture
def api(sb):
    return sandbox_client(sb, cache_seconds=0)


@pytest.fixture
def app():
    return ingest.application(settings.VONAGE_APPLICATION_ID)


def conversation_with_events(sb, count: int) -> str:
    """A new live conversation in the sandbox with exactly `count` events."""
    conversation_id = sb.create_conversation(members=1)["id"]  # 5 events: a live call
    model = sb.world.conversation(conversation_id)
    assert len(model.events) <= count
    while len(model.events) < count:
        sb.inject_event(conversation_id, "custom:note", {"n": len(model.events)})
    return conversation_id


def api_events(api, conversation_id: str) -> list[dict]:
    return [e.raw for e in api.list_events(conversation_id, order="asc", page_size=100).items]


def stored_ids(conversation_id: str) -> list[int]:
    return list(
        StoredEvent.objects.filter(conversation__vonage_id=conversation_id)
        .order_by("event_id")
        .values_list("event_id", flat=True)
    )


def event_reads(sb, conversation_id: str) -> int:
    return sb.stats()["by_path"].get(f"GET /v1/conversations/{conversation_id}/events", 0)


def test_a_gap_is_filled_exactly_once(sb, api, app):
    conversation_id = conversation_with_events(sb, 8)
    events = api_events(api, conversation_id)
    assert [e["id"] for e in events] == list(range(1, 9))
    ingest.store_events(app, conversation_id, [events[i] for i in (0, 1, 2, 5)], "webhook")
    conversation = StoredConversation.objects.get(vonage_id=conversation_id)
    assert conversation.contiguous_event_id == 3 and conversation.last_event_id == 6

    now = timezone.now()
    report = reconcile(app, api, now=now)
    assert stored_ids(conversation_id) == list(range(1, 9))
    by_source = dict(
        StoredEvent.objects.filter(conversation__vonage_id=conversation_id).values_list(
            "event_id", "source"
        )
    )
    assert [i for i, source in sorted(by_source.items()) if source == "api"] == [4, 5, 7, 8]
    conversation.refresh_from_db()
    assert conversation.contiguous_event_id == 8 and conversation.is_live
    assert report.events >= 4 and report.errors == 0
    # The bodies stored are the API's items, whole.
    stored = StoredEvent.objects.get(conversation=conversation, event_id=7)
    assert stored.body == events[6]

    # The next run reads only after the gap: nothing stored twice, nothing new.
    sb.reset_stats()
    again = reconcile(app, api, now=now + LATER)
    assert stored_ids(conversation_id) == list(range(1, 9))
    assert StoredEvent.objects.filter(conversation=conversation).count() == 8
    assert again.errors == 0
    assert event_reads(sb, conversation_id) == 1  # one page after 8: empty


def test_new_events_after_the_last_stored_are_read_too(sb, api, app):
    conversation_id = conversation_with_events(sb, 5)
    ingest.store_events(app, conversation_id, api_events(api, conversation_id), "webhook")
    sb.inject_event(conversation_id, "custom:late", {"dropped": "webhook"})  # never pushed
    reconcile(app, api, now=timezone.now())
    assert stored_ids(conversation_id) == [1, 2, 3, 4, 5, 6]


def test_a_conversation_deleted_upstream_keeps_its_history(sb, api, app):
    conversation_id = conversation_with_events(sb, 6)
    ingest.store_events(app, conversation_id, api_events(api, conversation_id)[:4], "webhook")
    with sb.world.lock:  # as Vonage deleting it (the control endpoint is another change's)
        model = sb.world._by_id.pop(conversation_id)
        sb.world._sorted.remove(model)

    report = reconcile(app, api, now=timezone.now())
    conversation = StoredConversation.objects.get(vonage_id=conversation_id)
    assert conversation.deleted_upstream_at is not None
    assert conversation.state == "deleted" and not conversation.is_live
    assert stored_ids(conversation_id) == [1, 2, 3, 4]
    assert report.deleted >= 1

    # Deleted conversations are not asked for again.
    sb.reset_stats()
    reconcile(app, api, now=timezone.now() + LATER)
    assert event_reads(sb, conversation_id) == 0


def test_new_conversations_are_found_from_the_list_and_the_cursor_advances(sb, api, app):
    app.listed_until = timezone.now() - dt.timedelta(minutes=1)
    app.save()
    created = sb.create_conversation(name="found-by-the-list", display_name="From the list")
    now = timezone.now()
    report = reconcile(app, api, now=now)
    found = StoredConversation.objects.get(vonage_id=created["id"])
    assert (found.name, found.display_name) == ("found-by-the-list", "From the list")
    assert found.started_at is not None
    assert report.listed and report.found >= 1
    app.refresh_from_db()
    assert app.listed_until == now
    # Its events are read in the same run (webhooks may never have come).
    assert stored_ids(created["id"]) == [e.id for e in sb.world.conversation(created["id"]).events]


def test_the_list_cursor_stays_when_the_list_fails(sb, api, app):
    before = timezone.now() - dt.timedelta(minutes=5)
    app.listed_until = before
    app.save()
    sb.set_fault(mode="500")
    try:
        report = reconcile(app, api, now=timezone.now())
    finally:
        sb.clear_faults()
    app.refresh_from_db()
    assert app.listed_until == before
    assert report.errors >= 1 and not report.listed


def test_an_ended_conversation_gets_its_final_read_once(sb, api, app):
    conversation_id = conversation_with_events(sb, 5)
    ingest.store_events(app, conversation_id, api_events(api, conversation_id), "webhook")
    assert StoredConversation.objects.get(vonage_id=conversation_id).is_live
    sb.end_conversation(conversation_id)  # its member:left webhooks are lost

    now = timezone.now()
    report = reconcile(app, api, now=now)
    conversation = StoredConversation.objects.get(vonage_id=conversation_id)
    assert conversation.state == "ended" and conversation.ended_at is not None
    assert conversation.api_body["state"] == "INACTIVE"
    assert stored_ids(conversation_id) == [
        e.id for e in sb.world.conversation(conversation_id).events
    ]
    assert report.finalized >= 1
    assert set(conversation.members.values_list("state", flat=True)) == {"LEFT"}

    sb.reset_stats()
    reconcile(app, api, now=now + LATER)
    assert sb.stats()["by_path"].get(f"GET /v1/conversations/{conversation_id}", 0) == 0
    assert event_reads(sb, conversation_id) == 0


def test_a_second_concurrent_run_does_not_read_the_same_gap(sb, api, app):
    conversation_id = conversation_with_events(sb, 7)
    ingest.store_events(app, conversation_id, api_events(api, conversation_id)[:2], "webhook")
    now = timezone.now()
    reconcile(app, api, now=now - LATER)  # the rest of the world is up to date
    StoredEvent.objects.filter(conversation__vonage_id=conversation_id, event_id__gt=2).delete()
    conversation = StoredConversation.objects.get(vonage_id=conversation_id)
    conversation.contiguous_event_id = conversation.last_event_id = 2
    conversation.save()

    second: list = []
    read_events = api.list_events

    def list_events(cid, **kwargs):
        if cid == conversation_id and not second:
            # While the first run is reading this gap, another worker starts a run.
            second.append(reconcile(app, sandbox_client(sb, cache_seconds=0), now=now))
        return read_events(cid, **kwargs)

    api.list_events = list_events
    sb.reset_stats()
    first = reconcile(app, api, now=now)
    assert second[0].skipped >= 1
    assert event_reads(sb, conversation_id) == 1, "the gap was read once"
    assert stored_ids(conversation_id) == list(range(1, 8))
    assert first.read >= 1


def test_a_run_stopped_midway_leaves_consistent_state_and_the_next_completes(sb, api, app):
    gaps = [conversation_with_events(sb, 6) for _ in range(3)]
    for conversation_id in gaps:
        ingest.store_events(app, conversation_id, api_events(api, conversation_id)[:1], "webhook")
    now = timezone.now()

    class Killed(BaseException):
        """As the worker being stopped: not an upstream error, nothing catches it."""

    calls: list[str] = []
    read_events = api.list_events

    def list_events(cid, **kwargs):
        if cid in gaps:
            calls.append(cid)
            if len(calls) == 2:
                raise Killed
        return read_events(cid, **kwargs)

    api.list_events = list_events
    with pytest.raises(Killed):
        reconcile(app, api, now=now)

    # Whatever was stored is whole, and each contiguous id covers stored events only.
    for conversation in StoredConversation.objects.filter(vonage_id__in=gaps):
        ids = stored_ids(conversation.vonage_id)
        assert ids[: conversation.contiguous_event_id] == list(
            range(1, conversation.contiguous_event_id + 1)
        )
        assert conversation.last_event_id == max(ids)
    done = [cid for cid in gaps if stored_ids(cid) == list(range(1, 7))]
    assert done == [calls[0]], "the first was filled, the rest not yet"

    api.list_events = read_events
    reconcile(app, api, now=now + LATER)
    for conversation_id in gaps:
        assert stored_ids(conversation_id) == list(range(1, 7))


def test_upstream_errors_are_counted_and_retried_next_run(sb, api, app):
    conversation_id = conversation_with_events(sb, 5)
    ingest.store_events(app, conversation_id, api_events(api, conversation_id)[:2], "webhook")
    now = timezone.now()
    sb.set_fault(mode="500")
    try:
        report = reconcile(app, api, now=now)
    finally:
        sb.clear_faults()
    assert report.errors >= 1
    assert stored_ids(conversation_id) == [1, 2]
    cache.clear()  # the client's memory of the failure (a second) is over by the next run
    reconcile(app, api, now=now + LATER)
    assert stored_ids(conversation_id) == [1, 2, 3, 4, 5]


def test_api_members_fill_only_what_events_have_not_set(app):
    conversation_id = "CON-" + "1" * 8 + "-1111-4111-8111-" + "1" * 12
    joined = "MEM-" + "2" * 8 + "-2222-4222-8222-" + "2" * 12
    other = "MEM-" + "3" * 8 + "-3333-4333-8333-" + "3" * 12
    ingest.store_events(
        app,
        conversation_id,
        [{"id": 1, "type": "member:joined", "from": joined, "body": {"member_id": joined}}],
        "webhook",
    )
    user = schema.UserRef(id="USR-" + "4" * 8 + "-4444-4444-8444-" + "4" * 12, name="alice")
    filled = fill_members(
        app,
        conversation_id,
        [
            schema.Member(id=joined, state="LEFT"),  # an older list: the event wins
            schema.Member(
                id=other, state="JOINED", user=user, channel=schema.Channel(type="phone")
            ),
            schema.Member(id="not-a-member-id", state="JOINED"),
        ],
    )
    assert filled == 1
    members = {
        m.vonage_id: m for m in StoredMember.objects.filter(conversation__vonage_id=conversation_id)
    }
    assert members[joined].state == "JOINED" and members[joined].state_event_id == 1
    assert members[other].state == "JOINED" and members[other].state_event_id == 0
    assert (members[other].user_name, members[other].channel_type) == ("alice", "phone")
    assert StoredConversation.objects.get(vonage_id=conversation_id).joined_count == 2


def test_a_conversation_the_database_refuses_does_not_stop_the_run(sb, api, app):
    """The sandbox's hostile conversation has a NUL in its bodies: PostgreSQL refuses to store
    it (SQLite takes it). Either way the run goes on to the next conversation."""
    hostile = sb.world.hostile_conversation_id
    StoredConversation.objects.create(application=app, vonage_id=hostile)  # read first
    other = conversation_with_events(sb, 5)
    ingest.store_events(app, other, api_events(api, other)[:1], "webhook")
    reconcile(app, api, now=timezone.now())
    assert stored_ids(other) == [1, 2, 3, 4, 5]
