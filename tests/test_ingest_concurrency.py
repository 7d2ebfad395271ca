"""Webhooks of one conversation stored at once by several threads (as gunicorn's do): the row lock
serialises them, so the derived state is the same as one by one. PostgreSQL only: it is the
production store, and SQLite serialises writers anyway (`make test-production` runs this)."""

from __future__ import annotations

import random
import threading
import uuid

import pytest
from django.db import connection, connections

from conversations.store import ingest
from conversations.store.models import StoredConversation, StoredMember
from tests.test_ingest import ALICE, BOB, CALL, CONVERSATION

pytestmark = pytest.mark.django_db(transaction=True)


def test_concurrent_deliveries_of_one_call_end_in_the_one_true_state():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (make test-production)")
    app = ingest.application("app")
    deliveries = CALL * 3  # each event three times, in any order, from 6 threads at once
    random.Random(3).shuffle(deliveries)
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def worker(share: list[dict]) -> None:
        try:
            start.wait()
            for body in share:
                ingest.store_webhook(app, str(uuid.uuid4()), body)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(deliveries[i::6],)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    conversation = StoredConversation.objects.get(vonage_id=CONVERSATION)
    assert conversation.events.count() == len(CALL)
    assert (conversation.last_event_id, conversation.contiguous_event_id) == (7, 7)
    assert dict(StoredMember.objects.values_list("vonage_id", "state")) == {
        ALICE: "LEFT",
        BOB: "LEFT",
    }
    assert (conversation.is_live, conversation.state) == (False, "ended")
