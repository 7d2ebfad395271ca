"""Retention: stored history older than DASHBOARD_RETENTION_DAYS is deleted, in small batches.

Each batch is one short DELETE of at most `batch` rows by primary key, in its own transaction, so
webhook ingestion never waits long behind it, and a stopped purge keeps what it did.
Age is the store's own clock (`stored_at`, `received_at`, `first_seen_at`), never a time an event
body claims. A conversation goes once it is older than the cutoff and has no events left (with its
members); one with newer events stays, with its derived state (its `contiguous_event_id` still
says the reconciler need not read the deleted ones again).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
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
    empty = StoredConversation.objects.filter(first_seen_at__lt=cutoff).exclude(
        Exists(StoredEvent.objects.filter(conversation=OuterRef("pk")))
    )
    done.conversations = _in_batches(empty, batch, done)
    return done


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
