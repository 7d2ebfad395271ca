"""Retention: stored history older than DASHBOARD_RETENTION_DAYS is deleted, in small batches.

Each batch is short and in its own transaction, so webhook ingestion never waits long behind it,
and a stopped purge keeps what it did. Age is the store's own clock (`stored_at`, `received_at`,
`first_seen_at`), never a time an event body claims.

Events and receipts: one DELETE of at most `batch` rows by primary key. Deleting event rows takes
no lock on their conversation, so it cannot deadlock with ingestion.

Conversations go once older than the cutoff, not live, and with no events left (with their
members); one with newer events stays, with its derived state (its `contiguous_event_id` and
`read_through_event_id` still say the reconciler need not read the deleted ones again). A webhook
may arrive for one at any moment, so each batch, in one transaction:
1. locks the candidates' rows (FOR UPDATE SKIP LOCKED: one a delivery is storing into is left for
   the next purge), as ingestion does first, so the two take locks in the same order (conversation,
   then members, then events) and never deadlock;
2. deletes them with the conditions checked again in the DELETE's own query: a statement after
   the lock sees every event committed before it, and none can be added until the commit (adding
   one locks the conversation first). An event accepted during the purge is never deleted, and a
   delivery that waited on the lock finds the row gone and creates the conversation again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, Model, OuterRef, QuerySet
from django.utils import timezone

from .models import StoredConversation, StoredEvent, WebhookReceipt

BATCH = 1000


@dataclass
class Purged:
    events: int = 0
    receipts: int = 0
    conversations: int = 0
    batches: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def purge(*, days: int | None = None, now: dt.datetime | None = None, batch: int = BATCH) -> Purged:
    """Delete what is older than `days` (default DASHBOARD_RETENTION_DAYS; 0 keeps everything)."""
    days = settings.DASHBOARD_RETENTION_DAYS if days is None else days
    done = Purged()
    if days <= 0:
        return done
    cutoff = (now or timezone.now()) - dt.timedelta(days=days)
    done.events = _in_batches(StoredEvent.objects.filter(stored_at__lt=cutoff), batch, done)
    done.receipts = _in_batches(WebhookReceipt.objects.filter(received_at__lt=cutoff), batch, done)
    done.conversations = _conversations_in_batches(cutoff, batch, done)
    return done


def _empty_conversations(cutoff: dt.datetime) -> QuerySet[StoredConversation]:
    return StoredConversation.objects.filter(first_seen_at__lt=cutoff, is_live=False).exclude(
        Exists(StoredEvent.objects.filter(conversation=OuterRef("pk")))
    )


def _conversations_in_batches(cutoff: dt.datetime, batch: int, done: Purged) -> int:
    deleted, after = 0, 0
    while True:
        with transaction.atomic():
            keys = list(
                _empty_conversations(cutoff)
                .filter(pk__gt=after)  # forward only: a row skipped or kept is not met again
                .select_for_update(skip_locked=True)
                .order_by("pk")
                .values_list("pk", flat=True)[:batch]
            )
            if not keys:
                return deleted
            # The conditions again, evaluated by the delete's own SELECT, after the lock: the
            # collector then deletes the members, then the conversations, of those rows only.
            _, by_model = _empty_conversations(cutoff).filter(pk__in=keys).delete()
        deleted += by_model.get(StoredConversation._meta.label, 0)
        done.batches += 1
        after = keys[-1]
        if len(keys) < batch:
            return deleted


def _in_batches(rows: QuerySet[Model], batch: int, done: Purged) -> int:
    deleted = 0
    while True:
        keys = list(rows.order_by("pk").values_list("pk", flat=True)[:batch])
        if not keys:
            return deleted
        # Counted from the keys: the total Django returns includes cascaded rows (members).
        rows.model.objects.filter(pk__in=keys).delete()
        deleted += len(keys)
        done.batches += 1
        if len(keys) < batch:
            return deleted
