"""Retention: only what is older than DASHBOARD_RETENTION_DAYS goes, in batches; 0 keeps all."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection, connections
from django.db.models.query import QuerySet
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conversations.store import ingest
from conversations.store.models import (
    StoredConversation,
    StoredEvent,
    StoredMember,
    WebhookReceipt,
)
from conversations.store.retention import purge

pytestmark = pytest.mark.django_db

OLD = timezone.now() - dt.timedelta(days=100)


def conversation_id(n: int) -> str:
    return f"CON-{n:08d}-0000-4000-8000-000000000000"


def member_id(n: int) -> str:
    return f"MEM-{n:08d}-0000-4000-8000-000000000000"


def store(app, n: int, event_ids: range, *, old: bool, left: bool = False) -> StoredConversation:
    """A conversation whose first event is a member joining (live), and with `left` whose last
    is that member leaving (ended)."""
    cid = conversation_id(n)
    kinds = {event_ids[0]: "member:joined"}
    if left:
        kinds[event_ids[-1]] = "member:left"
    ingest.store_events(
        app,
        cid,
        [
            {"id": i, "type": kinds[i], "body": {"member_id": member_id(n)}}
            if i in kinds
            else {"id": i, "type": "text", "body": {"text": f"#{i}"}}
            for i in event_ids
        ],
        "webhook",
    )
    conversation = StoredConversation.objects.get(vonage_id=cid)
    if old:
        conversation.events.update(stored_at=OLD)
        StoredConversation.objects.filter(pk=conversation.pk).update(first_seen_at=OLD)
    return conversation


@pytest.fixture
def app():
    return ingest.application("0b2d4f6a-8c1e-4a3b-9d5f-7e9a1c3b5d7f")


def test_only_old_history_is_deleted_in_batches(app):
    gone = store(app, 1, range(1, 6), old=True, left=True)  # 5 old events, ended: goes
    mixed = store(app, 2, range(1, 4), old=True)  # 3 old events...
    ingest.store_events(app, mixed.vonage_id, [{"id": 4, "type": "text"}], "webhook")  # ...1 new
    fresh = store(app, 3, range(1, 3), old=False)
    empty_but_new = StoredConversation.objects.create(application=app, vonage_id=conversation_id(4))
    for jti, old in (("old-1", True), ("old-2", True), ("new-1", False)):
        receipt = WebhookReceipt.objects.create(application=app, jti=jti, body={})
        if old:
            WebhookReceipt.objects.filter(pk=receipt.pk).update(received_at=OLD)

    with CaptureQueriesContext(connection) as queries:
        done = purge(days=90, batch=3)

    assert (done.events, done.receipts, done.conversations) == (8, 2, 1)
    assert not StoredConversation.objects.filter(pk=gone.pk).exists()
    assert not StoredMember.objects.filter(conversation_id=gone.pk).exists()
    assert list(mixed.events.values_list("event_id", flat=True)) == [4]
    mixed.refresh_from_db()
    assert mixed.contiguous_event_id == 4, "deleted events are not a gap to read again"
    assert fresh.events.count() == 2
    assert StoredConversation.objects.filter(pk=empty_but_new.pk).exists()
    assert list(WebhookReceipt.objects.values_list("jti", flat=True)) == ["new-1"]
    # 8 old events in batches of 3: three DELETE statements, none over the batch size.
    event_deletes = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith('DELETE FROM "conversations_storedevent" WHERE')
        and '"id" IN' in q["sql"]
    ]
    assert len(event_deletes) == 3
    assert [sql.count(",") + 1 for sql in event_deletes] == [3, 3, 2]
    assert done.batches == 3 + 1 + 1


def test_a_live_conversation_is_never_deleted(app):
    """Its events are old (a call older than the retention, or its leaving never seen): the
    live board still shows it."""
    live = store(app, 7, range(1, 3), old=True)
    assert live.is_live
    assert purge(days=90).as_dict()["conversations"] == 0
    assert StoredConversation.objects.filter(pk=live.pk).exists()
    assert StoredMember.objects.filter(conversation=live).exists()


def test_an_event_accepted_during_the_purge_is_never_deleted(app, monkeypatch):
    """A webhook is stored for an empty old conversation between the purge's choice of rows and
    its DELETE (here in the same transaction: the worst case of a delivery committing then)."""
    ended = store(app, 8, range(1, 3), old=True, left=True)
    StoredEvent.objects.filter(conversation=ended).delete()  # its history is gone already
    original = QuerySet.delete

    def delete(self):
        if self.model is StoredConversation:
            ingest.store_webhook(
                app, "jti-late", {"conversation_id": ended.vonage_id, "id": 3, "type": "text"}
            )
        return original(self)

    monkeypatch.setattr(QuerySet, "delete", delete)
    done = purge(days=90)
    assert done.conversations == 0
    assert StoredEvent.objects.filter(conversation__vonage_id=ended.vonage_id, event_id=3).exists()
    assert StoredMember.objects.filter(conversation=ended).exists(), "its members stay too"


def test_zero_days_keeps_everything(app):
    store(app, 5, range(1, 4), old=True)
    assert purge(days=0).as_dict() == {"events": 0, "receipts": 0, "conversations": 0, "batches": 0}
    assert StoredEvent.objects.count() == 3


def test_the_setting_is_the_default(app, settings):
    store(app, 6, range(1, 3), old=True)
    settings.DASHBOARD_RETENTION_DAYS = 200
    assert purge().events == 0
    settings.DASHBOARD_RETENTION_DAYS = 30
    assert purge().events == 2


@pytest.mark.django_db(transaction=True)
def test_the_purge_and_a_webhook_for_the_same_conversation_do_not_deadlock():
    """Ingestion locks the conversation, then its members, then inserts its events. A purge
    that deleted the members first and the conversation then waited on the delivery while the
    delivery waited on a member row: PostgreSQL broke the deadlock by failing one of them."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL")
    app = ingest.application("0b2d4f6a-8c1e-4a3b-9d5f-7e9a1c3b5d7f")
    ended = store(app, 9, range(1, 3), old=True, left=True)
    now = timezone.now()
    at_conversation_delete = threading.Event()
    webhook_waiting = threading.Event()
    errors: dict[str, BaseException] = {}

    def pause(execute, sql, params, many, context):
        deleting = sql.startswith('DELETE FROM "conversations_storedconversation"')
        if deleting and not at_conversation_delete.is_set():
            at_conversation_delete.set()
            webhook_waiting.wait(10)
        return execute(sql, params, many, context)

    def purging() -> None:
        try:
            with connection.execute_wrapper(pause):
                purge(days=90, now=now)
        except BaseException as exc:  # reported by the assertion below
            errors["purge"] = exc
        finally:
            connections.close_all()

    def delivering() -> None:
        assert at_conversation_delete.wait(10), "the purge never reached the conversation"
        # By the time this fires the delivery waits on its lock.
        timer = threading.Timer(1.0, webhook_waiting.set)
        timer.start()
        try:
            ingest.store_webhook(
                app,
                "jti-rejoined",
                {
                    "conversation_id": ended.vonage_id,
                    "id": 3,
                    "type": "member:joined",
                    "from": member_id(9),
                    "body": {"member_id": member_id(9)},
                },
            )
        except BaseException as exc:
            errors["webhook"] = exc
        finally:
            timer.cancel()
            webhook_waiting.set()
            connections.close_all()

    threads = [threading.Thread(target=purging), threading.Thread(target=delivering)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == {}
    # The delivery found its conversation gone and stored the event in a new one.
    conversation = StoredConversation.objects.get(vonage_id=ended.vonage_id)
    assert list(conversation.events.values_list("event_id", flat=True)) == [3]
    assert conversation.members.get().state == "JOINED" and conversation.is_live
