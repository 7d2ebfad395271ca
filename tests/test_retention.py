"""Retention: only what is older than DASHBOARD_RETENTION_DAYS goes, in batches; 0 keeps all."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
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


def store(app, n: int, event_ids: range, *, old: bool) -> StoredConversation:
    cid = conversation_id(n)
    ingest.store_events(
        app,
        cid,
        [
            {"id": i, "type": "member:joined", "body": {"member_id": member_id(n)}}
            if i == 1
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
    gone = store(app, 1, range(1, 6), old=True)  # 5 old events, then nothing left: goes
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
