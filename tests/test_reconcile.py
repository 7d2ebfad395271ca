"""The reconciler against a real (in-process) sandbox: gaps filled once, deletions kept as history,
new conversations found, claims between concurrent runs, and runs stopped midway."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import uuid
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import DataError, connection
from django.utils import timezone

from conversations import schema
from conversations.store import ingest
from conversations.store.api_records import fill_members
from conversations.store.models import Application, StoredConversation, StoredEvent, StoredMember
from conversations.store.reconcile import Report, final_read, reconcile
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
    conversation.read_through_event_id = 2
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


def refused_marker() -> str:
    """A string of this test's own (the sandbox is shared by the module's tests)."""
    return f"refused-{uuid.uuid4().hex}"


@contextlib.contextmanager
def database_refusing(refusal: type[Exception], marker: str) -> Iterator[None]:
    """The database refuses every statement carrying a value with `marker` in it: as PostgreSQL
    refuses a value it cannot store (DataError) or a driver one it cannot encode (a lone
    surrogate: UnicodeEncodeError). Whatever the store makes storable, this stays refused."""

    def carries(value) -> bool:
        if isinstance(value, str):
            return marker in value
        if isinstance(value, list | tuple):  # a column's values (PostgreSQL's bulk UNNEST)
            return any(carries(item) for item in value)
        wrapped = getattr(value, "obj", None)  # a JSON value, as psycopg's Jsonb wraps it
        return wrapped is not None and marker in json.dumps(wrapped)

    def refuse(execute, sql, params, many, context):
        rows = params if many else [params]
        values = [v for row in rows or [] for v in (row or [])]
        if any(carries(value) for value in values):
            if refusal is UnicodeEncodeError:
                raise UnicodeEncodeError("utf-8", marker, 0, 1, "surrogates not allowed")
            raise refusal(f"value refused: {marker}")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(refuse):
        yield


@pytest.mark.parametrize("refusal", [DataError, UnicodeEncodeError])
def test_a_conversation_the_database_refuses_does_not_stop_the_run(sb, api, app, refusal):
    """The database refuses the API's answer for an ended conversation (its name): that one
    conversation is counted as an error, and the run goes on to the next."""
    marker = refused_marker()
    hostile = sb.create_conversation(name=marker, members=1)["id"]
    sb.end_conversation(hostile)
    StoredConversation.objects.create(application=app, vonage_id=hostile)  # read first
    other = conversation_with_events(sb, 5)
    ingest.store_events(app, other, api_events(api, other)[:1], "webhook")
    with database_refusing(refusal, marker):
        report = reconcile(app, api, now=timezone.now())
    assert stored_ids(other) == [1, 2, 3, 4, 5]
    assert report.errors == 1, "the refused conversation was reached, and counted"
    assert StoredConversation.objects.get(vonage_id=hostile).api_body is None


@pytest.mark.parametrize("refusal", [DataError, UnicodeEncodeError])
def test_one_refused_event_does_not_keep_the_rest_of_its_page_out(sb, api, app, refusal):
    marker = refused_marker()
    conversation_id = conversation_with_events(sb, 5)
    sb.inject_event(conversation_id, "custom:note", {"text": marker})  # event 6
    for _ in range(4):
        sb.inject_event(conversation_id, "custom:note", {"text": "fine"})  # 7 to 10
    ingest.store_events(app, conversation_id, api_events(api, conversation_id)[:1], "webhook")
    with database_refusing(refusal, marker):
        report = reconcile(app, api, now=timezone.now())
    assert stored_ids(conversation_id) == [1, 2, 3, 4, 5, 7, 8, 9, 10]
    assert report.errors == 1
    conversation = StoredConversation.objects.get(vonage_id=conversation_id)
    assert conversation.contiguous_event_id == 5 and conversation.read_through_event_id == 10


@pytest.mark.parametrize("refusal", [DataError, UnicodeEncodeError])
def test_a_refused_name_in_the_list_stops_neither_the_run_nor_the_cursor(sb, api, app, refusal):
    """A listed conversation whose name the database refuses (a name cut mid-emoji is a lone
    surrogate: no driver encodes it). The sandbox cannot serve a lone surrogate (it writes UTF-8),
    so the database refuses a marked name instead."""
    app.listed_until = timezone.now() - dt.timedelta(minutes=1)
    app.save()
    other = conversation_with_events(sb, 5)
    ingest.store_events(app, other, api_events(api, other)[:1], "webhook")
    marker = refused_marker()
    evil = sb.create_conversation(name=f"support {marker}", members=1)["id"]
    now = timezone.now()
    with database_refusing(refusal, marker):
        report = reconcile(app, api, now=now)
    app.refresh_from_db()
    assert app.listed_until == now, "the cursor moved on"
    assert report.listed and report.errors == 1
    assert stored_ids(other) == [1, 2, 3, 4, 5]
    # Its row stays, without the refused name: its events are read all the same.
    assert StoredConversation.objects.get(vonage_id=evil).name == ""
    assert stored_ids(evil) == [e.id for e in sb.world.conversation(evil).events]


def delete_upstream_events(sb, conversation_id: str, event_ids: set[int]) -> None:
    """As Vonage deleting events: the API never lists them again."""
    model = sb.world.conversation(conversation_id)
    with sb.world.lock:
        model.events[:] = [e for e in model.events if e.id not in event_ids]


def spy_start_ids(api, conversation_id: str) -> list[int]:
    """The start_id of each events read of the conversation (the real read still runs)."""
    starts: list[int] = []
    read_events = api.list_events

    def list_events(cid, **kwargs):
        if cid == conversation_id:
            starts.append(kwargs.get("start_id"))
        return read_events(cid, **kwargs)

    api.list_events = list_events
    return starts


def test_an_event_id_the_api_never_returns_is_not_read_again_every_run(sb, api, app):
    conversation_id = conversation_with_events(sb, 8)
    delete_upstream_events(sb, conversation_id, {6})
    ingest.store_events(app, conversation_id, api_events(api, conversation_id)[:5], "webhook")
    starts = spy_start_ids(api, conversation_id)
    now = timezone.now()
    reconcile(app, api, now=now)
    assert stored_ids(conversation_id) == [1, 2, 3, 4, 5, 7, 8]
    conversation = StoredConversation.objects.get(vonage_id=conversation_id)
    assert (conversation.contiguous_event_id, conversation.read_through_event_id) == (5, 8)
    for run in (1, 2):
        reconcile(app, api, now=now + run * LATER)
    assert starts == [6, 9, 9], "after the first run, only what follows the last event"
    sb.inject_event(conversation_id, "custom:late", {})  # 9: still read
    reconcile(app, api, now=now + 3 * LATER)
    assert stored_ids(conversation_id) == [1, 2, 3, 4, 5, 7, 8, 9]


def test_an_ended_conversation_with_a_hole_leaves_the_candidates(sb, api, app):
    conversation_id = conversation_with_events(sb, 5)
    sb.end_conversation(conversation_id)
    delete_upstream_events(sb, conversation_id, {3})
    ingest.store_events(app, conversation_id, api_events(api, conversation_id)[:1], "webhook")
    now = timezone.now()
    report = reconcile(app, api, now=now)
    assert report.finalized >= 1
    assert 3 not in stored_ids(conversation_id)
    sb.reset_stats()
    reconcile(app, api, now=now + LATER)
    assert sb.stats()["by_path"].get(f"GET /v1/conversations/{conversation_id}", 0) == 0
    assert event_reads(sb, conversation_id) == 0


def test_a_claim_is_stamped_when_it_is_taken_not_when_the_run_started(sb, api, app):
    first, second = conversation_with_events(sb, 5), conversation_with_events(sb, 5)
    for conversation_id in (first, second):
        ingest.store_events(app, conversation_id, api_events(api, conversation_id)[:1], "webhook")
    during_first: list[dt.datetime] = []
    read_events = api.list_events

    def list_events(cid, **kwargs):
        if cid == first and not during_first:
            during_first.append(timezone.now())
        return read_events(cid, **kwargs)

    api.list_events = list_events
    now = timezone.now()
    reconcile(app, api, now=now)
    claimed = StoredConversation.objects.get(vonage_id=second).reconciled_at
    assert claimed >= during_first[0] > now


def test_a_conversation_two_list_scans_find_at_once_is_read_by_one_of_them(
    sb, api, app, monkeypatch
):
    app.listed_until = timezone.now() - dt.timedelta(minutes=1)
    app.save()
    created = sb.create_conversation(name="found-twice", members=1)["id"]
    now = timezone.now()
    second: list[Report] = []
    started: list[bool] = []
    record = ingest.record_api_conversation

    def record_api_conversation(application, body):
        if body.get("id") == created and not started:
            started.append(True)
            # Between this run's look at what the store knows and its record, another worker's
            # run scans the same list.
            second.append(
                reconcile(
                    Application.objects.get(pk=app.pk),
                    sandbox_client(sb, cache_seconds=0),
                    now=now,
                )
            )
        return record(application, body)

    monkeypatch.setattr(ingest, "record_api_conversation", record_api_conversation)
    sb.reset_stats()
    reconcile(app, api, now=now)
    assert second and second[0].skipped >= 1
    assert event_reads(sb, created) == 1, "read by one run only"
    assert stored_ids(created) == [e.id for e in sb.world.conversation(created).events]


def test_api_members_are_as_new_as_the_list_so_an_older_late_webhook_cannot_undo_them(sb, api, app):
    conversation_id = sb.create_conversation(members=1)["id"]
    sb.end_conversation(conversation_id)
    sb.inject_event(conversation_id, "custom:after", {})
    model = sb.world.conversation(conversation_id)
    joined = next(e for e in model.events if e.type == "member:joined")
    late = next(e for e in api_events(api, conversation_id) if e["id"] == joined.id)
    # The API lists the member (LEFT) but none of its membership events.
    delete_upstream_events(
        sb, conversation_id, {e.id for e in model.events if e.type.startswith("member:")}
    )
    sequence_number = model.sequence_number
    assert final_read(app, api, conversation_id, report=Report())
    member = StoredMember.objects.get(conversation__vonage_id=conversation_id)
    assert (member.state, member.state_event_id) == ("LEFT", sequence_number)
    # The member:joined webhook, long delayed, is older than the list: it stays LEFT.
    ingest.store_webhook(app, "late-joined", {**late, "conversation_id": conversation_id})
    member.refresh_from_db()
    assert member.state == "LEFT"
    assert not StoredConversation.objects.get(vonage_id=conversation_id).is_live


def test_a_newer_event_still_wins_over_the_api_members(app):
    conversation_id = "CON-" + "5" * 8 + "-5555-4555-8555-" + "5" * 12
    member_id = "MEM-" + "6" * 8 + "-6666-4666-8666-" + "6" * 12
    ingest.store_events(app, conversation_id, [{"id": 1, "type": "custom:x"}], "webhook")
    assert fill_members(app, conversation_id, [schema.Member(id=member_id, state="LEFT")], as_of=9)
    member = StoredMember.objects.get(vonage_id=member_id)
    assert (member.state, member.state_event_id) == ("LEFT", 9)
    joined = {"type": "member:joined", "from": member_id, "body": {"member_id": member_id}}
    ingest.store_events(app, conversation_id, [{"id": 5, **joined}], "webhook")
    member.refresh_from_db()
    assert member.state == "LEFT", "event 5 is older than the list"
    ingest.store_events(app, conversation_id, [{"id": 10, **joined}], "webhook")
    member.refresh_from_db()
    assert (member.state, member.state_event_id) == ("JOINED", 10)
    # A list older than the last membership event changes nothing.
    assert not fill_members(
        app, conversation_id, [schema.Member(id=member_id, state="LEFT")], as_of=10
    )
