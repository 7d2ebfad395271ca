"""Gap filling (the reconciler) and the first backfill: the API read to complete the stored history.

Webhooks are the primary source, and they can be dropped, late or refused. Each run:
1. finds new conversations in the API's list (`date_start` since `Application.listed_until`, a
   little before it since clocks differ) and records them (their events are read in step 2);
   the cursor advances only once the whole list was read, so a failed or killed scan is redone;
2. for each stored conversation that is live or was active in the last hour, reads the events
   after `read_from` (the larger of `contiguous_event_id` and `read_through_event_id`), page by
   page, each page stored in its own transaction: a killed run keeps what it stored, and the next
   run reads on from there. `read_through_event_id` is the highest id an ascending API read has
   returned: an id the API never returns (a deleted event, an item the database refused) is a
   hole that `contiguous_event_id` never passes, and without it every run would re-read from the
   hole to the end. A page the database refuses is stored item by item, so one bad event costs
   only itself;
3. gives a conversation that ended one final read: the API's answer for it, its remaining events
   and its members (filling only members no event as new as the list described);
4. marks a conversation the API answers 404 for as deleted upstream (its history stays).

Several workers on several hosts: a conversation is claimed for a run by a conditional UPDATE of its
`reconciled_at` (only when older than the lease), so two runs at once never read the same gap: the
second sees the claim and skips. A claim is stamped when it is taken (the run's clock has moved on
since the run started: a long run must not claim its last conversations with a stamp that is already
old). A conversation the list scan finds is claimed by creating its row with the stamp: of two runs
scanning at once, only the one that created the row reads it. The lease (half the interval) needs no
release: a run killed after claiming blocks that conversation until the lease ends, and the next run
takes it again. The engine's own lock (tasks.py) keeps runs from overlapping in the first place; the
claims make that a safety net rather than the only guard, and hold for a run started by hand.

Data the database refuses (DataError: a value PostgreSQL will not store; UnicodeError: a lone
surrogate, which no driver can encode) is logged and counted per conversation and per list item:
one such conversation must never stop every run, nor pin the list cursor.

Everything here takes the client and the time as arguments: it runs and is tested without the
engine.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.db import DataError
from django.db.models import Q
from django.utils import timezone

from conversations import ids
from conversations.client import (
    AuthenticationFailed,
    ConversationClient,
    NotConfigured,
    NotFound,
    RateLimited,
    UpstreamError,
)

from . import ingest
from .api_records import conversation_body, fill_members, is_over
from .models import Application, StoredConversation, StoredEvent

Clock = Callable[[], dt.datetime]

logger = logging.getLogger("conversations.reconcile")

RECENT = dt.timedelta(hours=1)  # "live or had events in the last hour"
LIST_OVERLAP = dt.timedelta(minutes=2)  # the list is read again from a little before the cursor
PAGE_SIZE = 100  # the API's largest page
MAX_PAGES = 10_000  # a paging loop that never ends is the API's bug, not a reason to hang

# Failures that every further read of this run would meet too: the run stops at the first.
RUN_STOPPERS = (RateLimited, AuthenticationFailed, NotConfigured)
# Data the database refuses: that item or conversation is skipped (and counted), never the run.
UNSTORABLE = (DataError, UnicodeError)


@dataclass
class Report:
    """What one run did (logged by the worker, returned to tests and commands)."""

    found: int = 0  # new conversations from the list
    read: int = 0  # conversations whose events were read
    events: int = 0  # new events stored
    finalized: int = 0  # conversations given their final read
    members: int = 0  # members filled from the API
    deleted: int = 0  # conversations the API no longer has
    skipped: int = 0  # claimed by another run
    errors: int = 0  # upstream failures (retried next run)
    stopped: bool = False  # the run stopped early (rate limited, credentials refused)
    listed: bool = False  # the list was read to its end (the cursor advanced)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def reconcile(
    app: Application,
    client: ConversationClient,
    *,
    now: dt.datetime | None = None,
    interval: float | None = None,
) -> Report:
    """One run of the reconciler. Upstream errors are logged and counted, never raised: what
    failed is read again next run. Anything else (a bug, the process being stopped) propagates,
    leaving only whole, stored pages behind."""
    refuse_masked(client)
    now = now or timezone.now()
    clock = run_clock(now)
    interval = interval or settings.DASHBOARD_RECONCILE_SECONDS
    report = Report()
    found: set[str] = set()
    try:
        found = set(scan_new_conversations(app, client, now=now, report=report, clock=clock))
    except RUN_STOPPERS as exc:
        return _stop(report, "listing conversations", exc)
    except UpstreamError as exc:
        report.errors += 1
        logger.warning("reconcile: listing conversations failed: %s", exc)
    lease = dt.timedelta(seconds=max(interval / 2, 1))
    for conversation in candidates(app, now):
        # One this run's scan created is claimed already (its row was created with the stamp).
        if conversation.vonage_id not in found and not claim(conversation, clock(), lease):
            report.skipped += 1
            continue
        try:
            fill_conversation(app, client, conversation, now=now, interval=interval, report=report)
        except NotFound:
            ingest.mark_deleted_upstream(app, conversation.vonage_id)
            report.deleted += 1
        except RUN_STOPPERS as exc:
            return _stop(report, conversation.vonage_id, exc)
        except UpstreamError as exc:
            report.errors += 1
            logger.warning("reconcile: %s failed: %s", conversation.vonage_id, exc)
        except UNSTORABLE as exc:
            # Data the database refuses: that transaction rolled back whole; one such
            # conversation must not stop every other one, run after run.
            report.errors += 1
            logger.error("reconcile: %s not storable: %s", conversation.vonage_id, exc)
    return report


def run_clock(now: dt.datetime) -> Clock:
    """The run's clock: `now` (the run's start; tests give a later one to stand for a later run)
    plus the real time elapsed since. In production `now` is timezone.now(): the clock is the
    current time."""
    offset = now - timezone.now()
    return lambda: timezone.now() + offset


def _stop(report: Report, what: str, exc: UpstreamError) -> Report:
    report.errors += 1
    report.stopped = True
    logger.warning("reconcile: stopped at %s: %s", what, exc)
    return report


def _api_time(when: dt.datetime) -> str:
    """`date_start` as the API's examples write it (UTC, whole seconds)."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def scan_new_conversations(
    app: Application,
    client: ConversationClient,
    *,
    now: dt.datetime,
    report: Report,
    since: dt.datetime | None = None,
    clock: Clock | None = None,
) -> list[str]:
    """Record the conversations the API lists as started since the cursor that the store does not
    know yet; returns the ids of those this run created (and so claimed). The cursor moves to
    `now` once every page was read, whatever single items the database refused."""
    clock = clock or timezone.now
    if since is None:
        since = app.listed_until - LIST_OVERLAP if app.listed_until else now - RECENT
    found: list[str] = []
    for page_items in _pages(
        lambda cursor: client.list_conversations(
            page_size=PAGE_SIZE, order="asc", date_start=_api_time(since), cursor=cursor
        )
    ):
        listed = {ids.canonical(i.id): i for i in page_items if ids.is_valid("conversation", i.id)}
        known = set(
            StoredConversation.objects.filter(
                application=app, vonage_id__in=list(listed)
            ).values_list("vonage_id", flat=True)
        )
        for conversation_id, item in listed.items():
            if conversation_id in known:
                continue  # known already (from webhooks, or an earlier scan)
            # The row is created with this run's claim: a run scanning at the same time finds
            # it created and leaves it (its claim then fails on the fresh stamp).
            _, created = StoredConversation.objects.get_or_create(
                application=app, vonage_id=conversation_id, defaults={"reconciled_at": clock()}
            )
            if created:
                found.append(conversation_id)
            try:
                ingest.record_api_conversation(app, conversation_body(item))
            except UNSTORABLE as exc:
                # Its name or another field: the row stays (its events are still read).
                report.errors += 1
                logger.error("reconcile: %s not storable: %s", conversation_id, exc)
    # Only forward, and only now that the whole list was read.
    Application.objects.filter(pk=app.pk).filter(
        Q(listed_until__isnull=True) | Q(listed_until__lt=now)
    ).update(listed_until=now)
    app.refresh_from_db(fields=["listed_until"])
    report.found += len(found)
    report.listed = True
    return found


def candidates(app: Application, now: dt.datetime) -> list[StoredConversation]:
    """Stored conversations that may have a gap to fill: live, or active in the last hour (by
    their events, their start, or when the store first saw them)."""
    recent = now - RECENT
    rows = StoredConversation.objects.filter(
        application=app, deleted_upstream_at__isnull=True
    ).filter(
        Q(is_live=True)
        | Q(last_event_at__gte=recent)
        | Q(started_at__gte=recent)
        | Q(first_seen_at__gte=recent)
    )
    # One given its final read and read to its last event has nothing left to read (holes the
    # API never fills included).
    return [row for row in rows.order_by("pk") if not read_to_the_end(row)]


def read_from(conversation: StoredConversation) -> int:
    """The id after which the API has events the store may lack."""
    return conversation.complete_through


def read_to_the_end(conversation: StoredConversation) -> bool:
    """Over, and every event the API has was read."""
    return is_over(conversation) and read_from(conversation) >= conversation.last_event_id


def claim(conversation: StoredConversation, now: dt.datetime, lease: dt.timedelta) -> bool:
    """Take the conversation for this run unless another run took it within the lease; `now` is
    the time of the claim (not of the run's start). One conditional UPDATE: atomic on PostgreSQL
    (the row is re-checked after any wait) and SQLite."""
    taken = (
        StoredConversation.objects.filter(pk=conversation.pk)
        .filter(Q(reconciled_at__isnull=True) | Q(reconciled_at__lte=now - lease))
        .update(reconciled_at=now)
    )
    return taken == 1


def _pages(read_page: Any) -> Any:
    """The items of each page of a cursor-paged list, following `next` until it ends."""
    cursor, seen = None, set()
    for _ in range(MAX_PAGES):
        page = read_page(cursor)
        if page.items:
            yield page.items
        if not page.items or not page.next_cursor or page.next_cursor in seen:
            return
        seen.add(page.next_cursor)
        cursor = page.next_cursor


def read_events(
    app: Application,
    client: ConversationClient,
    conversation_id: str,
    after: int,
    *,
    after_end: bool = False,
    report: Report | None = None,
) -> int:
    """Read and store the events after `after`; returns how many were new. Each page is stored
    as it arrives: what a stopped run read is kept. After each page the conversation remembers
    that the API was read through that page's highest id (holes included)."""
    report = report if report is not None else Report()
    new = 0
    for items in _pages(
        lambda cursor: client.list_events(
            conversation_id,
            start_id=after + 1,  # start_id is inclusive
            order="asc",
            page_size=PAGE_SIZE,
            cursor=cursor,
            after_end=after_end,
        )
    ):
        new += _store_page(app, conversation_id, [event.raw for event in items], report)
        highest = max((event.id for event in items if isinstance(event.id, int)), default=0)
        # Only forward; a plain UPDATE of one row, in its own statement (no lock held after it).
        StoredConversation.objects.filter(
            application=app, vonage_id=conversation_id, read_through_event_id__lt=highest
        ).update(read_through_event_id=highest)
    return new


def _store_page(
    app: Application, conversation_id: str, bodies: list[dict[str, Any]], report: Report
) -> int:
    """One page in one transaction; if the database refuses it, each item in its own (a
    savepoint when nested): one bad event must not keep the rest of its page out for ever."""
    try:
        return ingest.store_events(app, conversation_id, bodies, StoredEvent.API)
    except UNSTORABLE:
        pass
    new = 0
    for body in bodies:
        try:
            new += ingest.store_events(app, conversation_id, [body], StoredEvent.API)
        except UNSTORABLE as exc:
            report.errors += 1
            logger.error(
                "reconcile: %s event %r not storable: %s",
                conversation_id,
                str(body.get("id"))[:20] if isinstance(body, dict) else None,
                exc,
            )
    return new


def fill_conversation(
    app: Application,
    client: ConversationClient,
    conversation: StoredConversation,
    *,
    now: dt.datetime,
    interval: float,
    report: Report,
) -> None:
    """Read one conversation's gap. When it has ended (or, live, has gone quiet: a call can end
    with its last webhooks lost), ask the API whether it is over; if so, give it its final read."""
    new = read_events(app, client, conversation.vonage_id, read_from(conversation), report=report)
    report.read += 1
    report.events += new
    conversation.refresh_from_db()
    if is_over(conversation):
        return
    quiet = (
        conversation.is_live
        and new == 0
        and (
            conversation.last_event_at is None
            or conversation.last_event_at < now - dt.timedelta(seconds=interval)
        )
    )
    if conversation.ended_at is not None or quiet:
        final_read(app, client, conversation.vonage_id, report=report)


def final_read(
    app: Application, client: ConversationClient, conversation_id: str, *, report: Report
) -> bool:
    """The API's answer for the conversation; if it is over, its remaining events and its
    members too. Returns whether it was over. NotFound propagates (the caller marks it)."""
    answer = client.get_conversation(conversation_id)
    stored = ingest.record_api_conversation(app, conversation_body(answer))
    if stored is None or not answer.is_over:
        return False
    # after_end: an answer cached before the end may lack the last events or member changes.
    report.events += read_events(
        app, client, conversation_id, read_from(stored), after_end=True, report=report
    )
    # The list below is at least as new as this: a later event of a lower id must not undo it.
    stored.refresh_from_db(fields=["last_event_id"])
    as_of = max(answer.sequence_number or 0, stored.last_event_id)
    members = [
        member
        for items in _pages(
            lambda cursor: client.list_members(
                conversation_id, page_size=PAGE_SIZE, cursor=cursor, after_end=True
            )
        )
        for member in items
    ]
    report.members += fill_members(app, conversation_id, members, as_of=as_of)
    report.finalized += 1
    return True


def backfill(
    app: Application,
    client: ConversationClient,
    *,
    days: float,
    now: dt.datetime | None = None,
) -> Report:
    """Read what the API still has of the conversations started in the last `days` days: each
    one's answer, events and members. Idempotent and resumable (a second run reads only what is
    missing). `backfilled_at` is set once the whole list was read, whatever single conversations
    failed (the reconciler retries the recent ones): a conversation the API cannot answer for
    must not make every start backfill again. Run-stopping errors (429, credentials) raise."""
    refuse_masked(client)
    now = now or timezone.now()
    report = Report()
    since = now - dt.timedelta(days=days)
    for items in _pages(
        lambda cursor: client.list_conversations(
            page_size=PAGE_SIZE, order="asc", date_start=_api_time(since), cursor=cursor
        )
    ):
        for item in items:
            if not ids.is_valid("conversation", item.id):
                continue  # a list item is hostile input too; its id never reaches a URL
            conversation_id = ids.canonical(item.id)
            try:
                _backfill_one(app, client, conversation_id, report)
            except NotFound:
                ingest.mark_deleted_upstream(app, conversation_id)
                report.deleted += 1
            except RUN_STOPPERS:
                raise
            except UpstreamError as exc:
                report.errors += 1
                logger.warning("backfill: %s failed: %s", conversation_id, exc)
            except UNSTORABLE as exc:
                report.errors += 1
                logger.error("backfill: %s not storable: %s", conversation_id, exc)
    report.listed = True
    Application.objects.filter(pk=app.pk).filter(
        Q(listed_until__isnull=True) | Q(listed_until__lt=now)
    ).update(listed_until=now)
    Application.objects.filter(pk=app.pk).update(backfilled_at=timezone.now())
    app.refresh_from_db(fields=["listed_until", "backfilled_at"])
    return report


def refuse_masked(client: Any) -> None:
    """The store keeps what the API says: a client seen through a viewer's privacy policy
    (conversations/privacy/sources.py) would store masked data for good."""
    if getattr(client, "masks_for_a_viewer", False):
        raise TypeError("the store reads with the application's own client, not a masked one")


def store_one(app: Application, client: ConversationClient, conversation_id: str) -> Report:
    """Read one conversation the store does not have yet (a page read it from the API): its
    answer, events and members, as the backfill does. A 404 marks it deleted upstream."""
    refuse_masked(client)
    report = Report()
    try:
        _backfill_one(app, client, conversation_id, report)
    except NotFound:
        ingest.mark_deleted_upstream(app, conversation_id)
        report.deleted += 1
    return report


def _backfill_one(
    app: Application, client: ConversationClient, conversation_id: str, report: Report
) -> None:
    stored = StoredConversation.objects.filter(application=app, vonage_id=conversation_id).first()
    new = stored is None
    if stored is not None and read_to_the_end(stored):
        return  # read to its end before
    report.read += 1
    if final_read(app, client, conversation_id, report=report):
        report.found += new
        return
    # Still going: its events so far and its members (the reconciler follows it from here).
    stored = StoredConversation.objects.get(application=app, vonage_id=conversation_id)
    report.events += read_events(app, client, conversation_id, read_from(stored), report=report)
    stored.refresh_from_db(fields=["last_event_id"])
    as_of = stored.last_event_id  # the list below is at least this new
    members = [
        member
        for items in _pages(
            lambda cursor: client.list_members(conversation_id, page_size=PAGE_SIZE, cursor=cursor)
        )
        for member in items
    ]
    report.members += fill_members(app, conversation_id, members, as_of=as_of)
    report.found += new
