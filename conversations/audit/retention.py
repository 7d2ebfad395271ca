"""Audit retention: entries older than AUDIT_RETENTION_DAYS (default 365; 0 keeps them for ever)
are deleted in small batches, by the worker (tasks.purge_old_audit_entries, hourly).

This is the only deletion of audit entries: the model refuses any other (models.py). It goes
through the model's plain base manager, by primary key, oldest first, a batch at a time (each in
its own short transaction: writers of new entries never wait long), and only ever below a cutoff
computed once per run, so an entry written meanwhile is never a candidate.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.utils import timezone

from .models import AuditEntry

BATCH = 1000


def purge(*, days: int | None = None, now: dt.datetime | None = None, batch: int = BATCH) -> int:
    """Delete the entries older than `days` (default AUDIT_RETENTION_DAYS); how many went."""
    days = settings.AUDIT_RETENTION_DAYS if days is None else days
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - dt.timedelta(days=days)
    rows = AuditEntry._base_manager.filter(at__lt=cutoff)
    deleted = 0
    while True:
        keys = list(rows.order_by("pk").values_list("pk", flat=True)[:batch])
        if not keys:
            return deleted
        AuditEntry._base_manager.filter(pk__in=keys, at__lt=cutoff).delete()
        deleted += len(keys)
        if len(keys) < batch:
            return deleted
