"""The backfill (`manage.py backfill --days N`, and the worker's first one) and the worker's tasks:
scheduling at DASHBOARD_RECONCILE_SECONDS, the lock between runs, retention."""

from __future__ import annotations

import datetime as dt
import io
import itertools

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from conversations import tasks
from conversations.store import ingest
from conversations.store.models import Application, StoredConversation, StoredEvent
from sandbox.testing import running_sandbox
from tests.conftest import sandbox_client

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def sb():
    with running_sandbox(conversations=20, big_conversation_events=0, activity_interval=0) as sb:
        yield sb


@pytest.fixture
def api(sb, use_client):
    return use_client(sandbox_client(sb, cache_seconds=0))


@pytest.fixture(autouse=True)
def _empty_queue():
    tasks.HUEY.flush()
    yield
    tasks.HUEY.flush()


def started_within(sb, days: float) -> list:
    since = (timezone.now() - dt.timedelta(days=days)).timestamp() * 1000
    return [c for c in sb.world.conversations() if c.created >= since]


def test_backfill_reads_the_last_days_with_events_and_members(sb, api):
    expected = started_within(sb, 3)
    assert 0 < len(expected) < len(sb.world.conversations()), "the world reaches further back"
    out = io.StringIO()
    call_command("backfill", "--days", "3", stdout=out)
    stored = {c.vonage_id: c for c in StoredConversation.objects.all()}
    assert set(stored) == {c.id for c in expected}
    for model in expected:
        conversation = stored[model.id]
        ids = sorted(
            StoredEvent.objects.filter(conversation=conversation).values_list("event_id", flat=True)
        )
        assert ids == [e.id for e in model.events]
        assert set(conversation.members.values_list("vonage_id", flat=True)) == {
            m.id for m in model.members
        }
        assert conversation.api_body is not None and conversation.started_at is not None
        assert conversation.state == ("live" if model.state == "ACTIVE" else "ended")
    app = Application.objects.get(vonage_id=settings.VONAGE_APPLICATION_ID)
    assert app.backfilled_at is not None and app.listed_until is not None
    assert f"{len(expected)} conversations read" in out.getvalue()

    # Again: what is complete is not read again.
    sb.reset_stats()
    call_command("backfill", "--days", "3", stdout=io.StringIO())
    live = [m for m in expected if m.state == "ACTIVE"]
    assert sb.stats()["requests"] <= 1 + 3 * len(live)
    assert StoredEvent.objects.count() == sum(len(m.events) for m in expected)


@pytest.mark.parametrize("days", ["0", "-1", "many", "1e9"])
def test_backfill_refuses_bad_days(days, api):
    with pytest.raises(CommandError, match="--days"):
        call_command("backfill", "--days", days)


def test_backfill_stops_with_a_clear_error_when_the_api_refuses(sb, api):
    sb.set_fault(mode="429")
    try:
        with pytest.raises(CommandError, match="stopped the backfill"):
            call_command("backfill", "--days", "1")
    finally:
        sb.clear_faults()
    assert not Application.objects.filter(backfilled_at__isnull=False).exists()


def test_the_worker_backfills_an_empty_store_once(sb, api):
    assert tasks.needs_backfill()
    tasks.every_minute.call_local()
    assert "backfill_task" in [t.name for t in tasks.HUEY.pending()]
    tasks.backfill_task.call_local()
    assert StoredConversation.objects.count() == len(
        started_within(sb, settings.DASHBOARD_BACKFILL_DAYS)
    )
    assert not tasks.needs_backfill()
    tasks.HUEY.flush()
    tasks.every_minute.call_local()
    assert "backfill_task" not in [t.name for t in tasks.HUEY.pending()]


@pytest.mark.parametrize(("interval", "runs"), [(20, 3), (60, 1), (1, 60)])
def test_each_minute_schedules_the_runs_of_the_interval(interval, runs, settings, api):
    settings.DASHBOARD_RECONCILE_SECONDS = interval
    settings.DASHBOARD_BACKFILL_DAYS = 0
    tasks.every_minute.call_local()
    scheduled = tasks.HUEY.pending()  # with an eta: the consumer holds them until then
    assert len(scheduled) == runs
    assert {t.name for t in scheduled} == {"reconcile_task"}
    etas = sorted(t.eta for t in scheduled)
    gaps = {round((b - a).total_seconds()) for a, b in itertools.pairwise(etas)}
    assert gaps <= {interval}


def test_slots_honour_intervals_longer_than_a_minute():
    # 90 s: one run in every other minute window, and every 90 s over time.
    windows = [tasks.slots(start, 90) for start in range(0, 360, 60)]
    assert [t for window in windows for t in window] == [0, 90, 180, 270]


def test_a_run_while_another_holds_the_lock_reads_nothing(sb, api):
    app = ingest.application(settings.VONAGE_APPLICATION_ID)
    ingest.store_events(app, sb.world.conversations()[-1].id, [], "api")
    sb.reset_stats()
    with tasks.RECONCILE_LOCK:
        assert tasks.reconcile_task.call_local() is None
    assert sb.stats()["requests"] == 0
    tasks.HUEY.delete(tasks.LAST_RUN_KEY)
    assert tasks.reconcile_task.call_local()["listed"] is True
    assert sb.stats()["requests"] > 0
    # A second worker's run of the same instant finds the interval done.
    sb.reset_stats()
    assert tasks.reconcile_task.call_local() is None
    assert sb.stats()["requests"] == 0


def test_retention_task_runs_under_its_lock(settings):
    settings.DASHBOARD_RETENTION_DAYS = 1
    assert tasks.purge_old_history.call_local() == {
        "events": 0,
        "receipts": 0,
        "conversations": 0,
        "batches": 0,
    }
    with tasks.RETENTION_LOCK:
        assert tasks.purge_old_history.call_local() is None
