"""The live board and the stored history in a real browser: rows appear and leave by themselves
as events are stored, and a conversation deleted upstream keeps its pages."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from conversations import dom
from conversations.store import ingest
from tests.browser.conftest import screenshot
from tests.store_helpers import api_conversation, app, event, membership, webhook

pytestmark = pytest.mark.django_db(transaction=True)

# The board's 3 s target: a row appears or leaves within 3 s of the webhook that causes it.
BOARD_WAIT_MS = 3000
# The events tab has no such target: its poll (every second here) redraws a filled gap or appends
# a new event, given time for a poll on a busy CI machine.
EVENTS_WAIT_MS = 10_000

CALL = "CON-60000000-0000-4000-8000-000000000001"
OTHER = "CON-60000000-0000-4000-8000-000000000002"
AGENT = "MEM-70000000-0000-4000-8000-000000000001"
CALLER = "MEM-70000000-0000-4000-8000-000000000002"
U1 = "USR-80000000-0000-4000-8000-000000000001"
U2 = "USR-80000000-0000-4000-8000-000000000002"


def row(page, conversation_id: str):
    return page.locator(f'#{dom.LIVE_BOARD} tr[data-conversation="{conversation_id}"]')


def test_rows_appear_and_leave_by_themselves(page, dashboard):
    api_conversation(CALL, "support_call_9", "Support call")
    webhook(membership(CALL, 1, "joined", AGENT, U1, "agent-7", "app"))
    webhook(membership(CALL, 2, "joined", CALLER, U2, "caller", "phone"))
    webhook(event(CALL, 3, "audio:dtmf", CALLER, {"digit": "5"}))
    page.goto(dashboard.url + "/live/")
    expect(row(page, CALL)).to_contain_text("support_call_9")
    expect(row(page, CALL)).to_contain_text("app, phone")
    screenshot(page, "live-board")

    webhook(membership(OTHER, 1, "joined", AGENT, U1, "agent-7", "sip"))
    expect(row(page, OTHER)).to_be_visible(timeout=BOARD_WAIT_MS)

    webhook(membership(CALL, 4, "left", AGENT, U1, "agent-7", "app"))
    webhook(membership(CALL, 5, "left", CALLER, U2, "caller", "phone"))
    expect(row(page, CALL)).to_have_count(0, timeout=BOARD_WAIT_MS)
    expect(row(page, OTHER)).to_be_visible()


def test_a_conversation_deleted_upstream_keeps_its_history(page, dashboard):
    api_conversation(CALL, "deleted_call_1", "Deleted call")
    webhook(membership(CALL, 1, "joined", AGENT, U1, "agent-7", "phone"))
    for event_id in range(2, 12):
        webhook(event(CALL, event_id, "message", AGENT, {"message_type": "text", "text": "hi"}))
    ingest.mark_deleted_upstream(app(), CALL)
    page.goto(f"{dashboard.url}/live/")
    expect(page.locator(f"#{dom.LIVE_BOARD}")).to_contain_text("No conversation is live")
    page.goto(f"{dashboard.url}/conversations/{CALL}/events/")
    expect(page.locator(f"#{dom.HISTORY_BANNER}")).to_contain_text("From the stored history")
    expect(page.locator("#event-rows tr.event-row")).to_have_count(11)
    expect(page.locator("#live-controls")).to_have_count(0)
    screenshot(page, "history-events")
    page.click("#tab-members")
    expect(page.locator(".member-table")).to_contain_text("agent-7")
    expect(page.locator(f"#{dom.HISTORY_BANNER}")).to_be_visible()


def test_events_filled_into_a_gap_show_in_order_and_polling_goes_on(page, dashboard):
    api_conversation(CALL, "gappy_call")
    webhook(membership(CALL, 1, "joined", AGENT, U1, "agent-7", "phone"))
    for event_id in (2, 3, 6):  # 4 and 5 were dropped on the way
        webhook(event(CALL, event_id, "message", AGENT, {"message_type": "text", "text": "x"}))
    page.goto(f"{dashboard.url}/conversations/{CALL}/events/")
    rows = page.locator("#event-rows tr.event-row")
    expect(rows).to_have_count(4)
    for event_id in (4, 5):  # the reconciler reads them from the API
        ingest.store_events(
            app(),
            CALL,
            [event(CALL, event_id, "message", AGENT, {"message_type": "text", "text": "y"})],
            "api",
        )
    expect(rows).to_have_count(6, timeout=EVENTS_WAIT_MS)
    ids = [int(i) for i in rows.evaluate_all("rows => rows.map(r => r.id.slice(6))")]
    assert ids == [6, 5, 4, 3, 2, 1]
    webhook(event(CALL, 7, "message", AGENT, {"message_type": "text", "text": "z"}))
    expect(rows).to_have_count(7, timeout=EVENTS_WAIT_MS)
    assert rows.first.get_attribute("id") == "event-7"
