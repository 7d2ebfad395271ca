"""The worker's tasks, on huey (`manage.py run_huey`, the Procfile's `worker`).

- `every_minute` (periodic): schedules this minute's reconciler runs, and the first backfill.
  huey's periodic tasks have minute granularity, so DASHBOARD_RECONCILE_SECONDS is honoured with
  the engine's own scheduling: each minute's tick schedules (`delay=`) the runs that fall in the
  next 60 s at the instants n x interval (aligned on the epoch, so every worker computes the same
  ones). 20 s gives three runs a minute; 90 s one run every minute and a half. No loop of ours
  sleeps: a killed worker loses at most the runs it had scheduled, and the next tick schedules more.
- `reconcile_task`: one run of `store.reconcile`, under a lock in the queue's storage (shared by
  every worker on every host with a Redis queue). Several workers all schedule the same instants:
  the first takes the lock, the others skip (locked, or "a run started less than half an interval
  ago"). Inside a run, conversations are claimed in the database too (see reconcile.py).
- `backfill_task`: once, while the application was never backfilled (a new install).
- `purge_old_history` (periodic, hourly): retention, in batches.
- `purge_old_audit_entries` (periodic, hourly): the audit log's retention (AUDIT_RETENTION_DAYS),
  in batches: the only deletion of audit entries (conversations/audit/retention.py).
- `store_conversation`: one conversation a page read from the API because the store lacked it
  (older than the backfill, or not yet seen): stored, so that its next views read the store.

Locks expire on Redis (RedisExpireHuey), so a worker killed mid-run frees them by itself; the
SQLite queue cannot expire a key, so a starting worker clears them (`flush_locks` in settings).
Nothing of this is retried by huey: a failed run is simply the next run's work.
"""

from __future__ import annotations

import logging
import math
import time

from django.conf import settings
from huey import crontab
from huey.api import TaskLock
from huey.contrib.djhuey import HUEY, db_periodic_task, db_task
from huey.exceptions import TaskLockedException
from huey.storage import MemoryStorage, RedisExpireStorage

from conversations.audit import retention as audit_retention
from conversations.client import UpstreamError, get_client
from conversations.store import ingest, reconcile, retention
from conversations.store.models import Application

logger = logging.getLogger("conversations.tasks")

LAST_RUN_KEY = "reconcile.last-started"
MINUTE = 60


def _lock(name: str, ttl: int) -> TaskLock:
    """A lock in the queue's storage; with an expiry where the storage can expire keys. Made at
    import so that `flush_locks` knows it."""
    expires = isinstance(HUEY.storage, RedisExpireStorage | MemoryStorage)
    return HUEY.lock_task(name, ttl=ttl if expires else None)


# Two intervals (at least 30 s): a worker killed mid-run holds the others back that long at most.
# A run longer than that may overlap the next one, which the claims then guard.
RECONCILE_LOCK = _lock("reconcile", max(30, 2 * settings.DASHBOARD_RECONCILE_SECONDS))
BACKFILL_LOCK = _lock("backfill", 6 * 3600)
RETENTION_LOCK = _lock("retention", 3600)
AUDIT_RETENTION_LOCK = _lock("audit-retention", 3600)


def slots(start: float, interval: int, span: float = MINUTE) -> list[float]:
    """The instants n x interval (epoch seconds) in [start, start + span)."""
    first = math.ceil(start / interval) * interval
    return [float(t) for t in range(first, math.ceil(start + span), interval) if t < start + span]


@db_periodic_task(crontab())  # every minute: huey's finest periodic granularity
def every_minute() -> None:
    now = time.time()
    interval = settings.DASHBOARD_RECONCILE_SECONDS
    for instant in slots(now, interval):
        delay = max(instant - now, 0)
        # A run not started within its interval (a worker down, a long backlog) is dropped:
        # the next one does its work.
        reconcile_task.schedule(delay=delay, expires=delay + interval)
    if needs_backfill():
        backfill_task()


def _application() -> Application:
    # Fresh from the database: another worker may have moved its cursors since this process
    # first saw the row (ingest.application remembers rows per process).
    app = ingest.application(settings.VONAGE_APPLICATION_ID)
    app.refresh_from_db()
    return app


@db_task()
def reconcile_task() -> dict | None:
    try:
        with RECONCILE_LOCK:
            interval = settings.DASHBOARD_RECONCILE_SECONDS
            last = HUEY.get(LAST_RUN_KEY, peek=True)
            started = time.time()
            if isinstance(last, float | int) and 0 <= started - last < interval / 2:
                logger.debug("reconcile: another worker ran this interval; skipped")
                return None
            HUEY.put(LAST_RUN_KEY, started)
            report = reconcile.reconcile(_application(), get_client())
    except TaskLockedException:
        logger.info("reconcile: another run holds the lock; skipped")
        return None
    level = logging.WARNING if report.errors else logging.INFO
    logger.log(level, "reconcile: %s", report.as_dict())
    return report.as_dict()


def needs_backfill() -> bool:
    return (
        settings.DASHBOARD_BACKFILL_DAYS > 0
        and not Application.objects.filter(
            vonage_id=settings.VONAGE_APPLICATION_ID, backfilled_at__isnull=False
        ).exists()
    )


@db_task()
def backfill_task() -> dict | None:
    try:
        with BACKFILL_LOCK:
            if not needs_backfill():
                return None
            report = reconcile.backfill(
                _application(), get_client(), days=settings.DASHBOARD_BACKFILL_DAYS
            )
    except TaskLockedException:
        return None  # a backfill is running (a tick during a long one)
    except UpstreamError as exc:
        logger.warning("backfill: stopped, tried again next minute: %s", exc)
        return None
    logger.info("backfill: %s", report.as_dict())
    return report.as_dict()


@db_task()
def store_conversation(conversation_id: str) -> dict | None:
    try:
        report = reconcile.store_one(_application(), get_client(), conversation_id)
    except UpstreamError as exc:
        logger.warning("store %s: not now (%s); a later view asks again", conversation_id, exc)
        return None
    return report.as_dict()


def store_now(conversation_id: str) -> None:
    """Store one conversation in this process, now (an export that needs its history): the
    worker's read, with the application's own client, never a viewer's masked one."""
    reconcile.store_one(_application(), get_client(), conversation_id)


def ask_to_store(conversation_id: str) -> None:
    """Queue `store_conversation`: a page must never fail, nor wait, because the queue does."""
    try:
        store_conversation(conversation_id)
    except Exception:  # the queue's storage unavailable (a locked SQLite file, Redis down)
        logger.warning("could not queue the storing of %s", conversation_id, exc_info=True)


@db_periodic_task(crontab(minute="7"))  # hourly
def purge_old_history() -> dict | None:
    try:
        with RETENTION_LOCK:
            done = retention.purge()
    except TaskLockedException:
        return None
    logger.info("retention: %s", done.as_dict())
    return done.as_dict()


@db_periodic_task(crontab(minute="37"))  # hourly, away from the history's purge
def purge_old_audit_entries() -> int | None:
    try:
        with AUDIT_RETENTION_LOCK:
            deleted = audit_retention.purge()
    except TaskLockedException:
        return None
    logger.info("audit retention: %d entries deleted", deleted)
    return deleted
