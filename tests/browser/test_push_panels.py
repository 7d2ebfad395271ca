"""Issue 10, "What updates live", in Chromium against the Procfile's processes: the parts that
tests/browser/test_push.py does not cover.

- The Events tab, newest first (the default) and oldest first: with the reader scrolled down,
  pushed events are added once each and in order, the first row in view stays where it was
  (by live.js: the browser's own scroll anchoring is turned off), and
  "N new events" counts the rows that arrived out of sight; a click on it shows them and hides it.
- The Members tab: a member joining and then leaving changes their row.
- The header: the newest event ("Sequence number", "events up to #N") and the state.
- The user page: a conversation the user joins appears in "In the event store".
- The live status when the stream drops mid-way (Redis ends the web processes' subscriptions):
  it says polling, the page keeps receiving events by polling, and it says "Live: pushed" again
  once the listener has subscribed anew and the stream reopened.

Every change is checked without a reload (no navigation of the page). The stack is the one of
test_push.py (tests/browser/push_pages.py): web (2 processes) and worker under honcho, on a
database of their own and Redis (PUSH_TESTS_REDIS_URL), fed by signed webhooks.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import redis
from playwright.sync_api import expect

from tests import push_stack
from tests.browser.push_pages import (
    WATCH_ROWS,
    expect_pushed,
    procfile_stack,
    shown_event_ids,
    stored_conversation,
    watched_page,
)
from tests.push_stack import (
    Server,
    custom_event,
    member_event,
    new_conversation_id,
    new_member_id,
    send_webhook,
)

REFRESH_SECONDS = 2
WEB_WORKERS = 2
STORED_EVENTS = 40  # with 50 a page and a 600 px viewport, several screens of rows
NEW_EVENTS = 3

# The first event row whose top is in the viewport, and where it is.
FIRST_IN_VIEW = """() => {
  for (const row of document.querySelectorAll('#event-rows tr.event-row')) {
    const top = row.getBoundingClientRect().top;
    if (top >= 0) return {id: row.id, top: top};
  }
  return null;
}"""

NO_SCROLL_ANCHORING = """() => {
  document.documentElement.style.overflowAnchor = 'none';
  document.body.style.overflowAnchor = 'none';
}"""

# The page's live mode (data-mode of #live-status) at each event row's first appearance.
WATCH_MODES = """() => {
  const modes = window.__modes = {};
  new MutationObserver(records => records.forEach(r => r.addedNodes.forEach(node => {
    if (node.nodeType !== 1) return;
    const rows = node.matches('tr.event-row') ? [node] : node.querySelectorAll('tr.event-row');
    rows.forEach(row => {
      if (!(row.id in modes)) {
        modes[row.id] = document.getElementById('live-status').getAttribute('data-mode');
      }
    });
  }))).observe(document.body, {childList: true, subtree: true});
}"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory, browser) -> Iterator[Server]:
    with procfile_stack(
        tmp_path_factory.mktemp("push-panels"),
        {"ops": True},
        GUNICORN_WORKERS=str(WEB_WORKERS),
        DASHBOARD_REFRESH_SECONDS=str(REFRESH_SECONDS),
    ) as server:
        yield server


@pytest.fixture(autouse=True)
def stack_alive(stack):
    yield
    assert stack.alive(), stack.output()


def user_id_of(name: str) -> str:
    """The user id push_stack.member_event gives a member of that name."""
    return f"USR-{uuid.uuid5(uuid.NAMESPACE_URL, name)}"


def in_viewport(page, selector: str) -> bool:
    return page.evaluate(
        """selector => {
          const box = document.querySelector(selector).getBoundingClientRect();
          return box.bottom > 0 && box.top < window.innerHeight;
        }""",
        selector,
    )


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_events_pushed_to_a_reader_scrolled_down_keep_their_place_and_are_counted(
    stack, context, order
):
    watched = watched_page(context, stack, "ops")
    page = watched.page
    page.set_viewport_size({"width": 1280, "height": 600})
    conversation_id = stored_conversation(stack.base, STORED_EVENTS)
    query = "?page_size=50" + ("&order=asc" if order == "asc" else "")
    page.goto(f"{stack.base}/conversations/{conversation_id}/events/{query}")
    expect(page.locator(f"#event-{STORED_EVENTS}")).to_be_attached()
    expect_pushed(page)
    # The order select shows what the tab shows: newest first unless asked otherwise.
    expect(page.locator("select[name=order]")).to_have_value(order)
    page.wait_for_timeout(500)  # the refresh that follows the stream's opening is answered
    page.evaluate(WATCH_ROWS)
    navigations = len(watched.navigations)

    # Chromium keeps the reader's place by itself (CSS scroll anchoring), which would hide a
    # fault of live.js's own: off, as in a browser without it (Safari).
    page.evaluate(NO_SCROLL_ANCHORING)
    # Down among the rows, wherever the panels above them (header, timeline) put them.
    page.evaluate("() => document.querySelectorAll('tr.event-row')[8].scrollIntoView()")
    page.wait_for_function("() => window.scrollY > 0")
    before = page.evaluate(FIRST_IN_VIEW)
    assert before is not None

    new_ids = list(range(STORED_EVENTS + 1, STORED_EVENTS + 1 + NEW_EVENTS))
    for event_id in new_ids:
        send_webhook(stack.base, custom_event(conversation_id, event_id, n=event_id))
        time.sleep(0.4)  # a notice each, not one for the three
    marker = page.locator("#new-events")
    expect(marker).to_have_text(f"{NEW_EVENTS} new events")
    expect(marker).to_be_visible()
    page.wait_for_timeout(300)  # anything still on its way

    everything = list(range(1, new_ids[-1] + 1))
    assert shown_event_ids(page) == (everything if order == "asc" else everything[::-1])
    added = page.evaluate("() => window.__rows.added")
    assert {int(k): v for k, v in added.items()} == dict.fromkeys(new_ids, 1)
    after = page.evaluate(
        "id => document.getElementById(id).getBoundingClientRect().top", before["id"]
    )
    print(
        f"\n{order}: first row in view {before['id']} at {before['top']:.1f} px before, "
        f"{after:.1f} px after {NEW_EVENTS} pushed events"
    )
    assert abs(after - before["top"]) <= 3, (before, after)
    for event_id in new_ids:
        assert not in_viewport(page, f"#event-{event_id}"), f"event {event_id} is in sight"

    marker.click()
    expect(marker).to_be_hidden()
    page.wait_for_timeout(300)  # a smooth scroll, if the browser makes one
    assert in_viewport(page, f"#event-{new_ids[0]}")
    expect_pushed(page)
    assert len(watched.navigations) == navigations, watched.navigations


def test_a_member_joining_then_leaving_changes_their_row_in_an_open_members_tab(stack, context):
    watched = watched_page(context, stack, "ops")
    page = watched.page
    conversation_id = stored_conversation(stack.base, 1)
    page.goto(f"{stack.base}/conversations/{conversation_id}/members/")
    panel = page.locator("#members-panel")
    expect(panel.locator("tbody tr")).to_have_count(1)
    expect_pushed(page)
    page.wait_for_timeout(500)
    navigations = len(watched.navigations)

    bob = new_member_id()
    send_webhook(stack.base, member_event(conversation_id, 2, "joined", bob, "bob"))
    row = panel.locator("tbody tr", has_text=bob)
    expect(row.locator(".state")).to_have_text(re.compile("^joined$", re.I))
    expect(panel.locator("tbody tr")).to_have_count(2)

    send_webhook(stack.base, member_event(conversation_id, 3, "left", bob, "bob"))
    expect(row.locator(".state")).to_have_text(re.compile("^left$", re.I))
    expect(panel.locator("tbody tr")).to_have_count(2)
    expect(row).not_to_contain_text("loading")  # the full record: channel and times
    expect_pushed(page)
    assert len(watched.navigations) == navigations, watched.navigations


def test_the_header_shows_the_newest_event_and_the_state_pushed_by_webhooks(stack, context):
    watched = watched_page(context, stack, "ops")
    page = watched.page
    alice = new_member_id()
    conversation_id = new_conversation_id()
    send_webhook(stack.base, member_event(conversation_id, 1, "joined", alice, "alice"))
    page.goto(f"{stack.base}/conversations/{conversation_id}/events/")
    header = page.locator("#conversation-header")
    sequence = header.locator("dt:text-is('Sequence number') + dd")
    state = header.locator("dt:text-is('State') + dd .state")
    expect(header.locator("#store-note")).to_contain_text("events up to #1.")
    expect(sequence).to_have_text("1")
    expect(state).to_have_text("ACTIVE")
    expect_pushed(page)
    page.wait_for_timeout(500)
    navigations = len(watched.navigations)

    send_webhook(stack.base, custom_event(conversation_id, 2, n=2))
    expect(header.locator("#store-note")).to_contain_text("events up to #2.")
    expect(sequence).to_have_text("2")
    expect(state).to_have_text("ACTIVE")

    # The last member leaves: the conversation is over, as the header says at once.
    send_webhook(stack.base, member_event(conversation_id, 3, "left", alice, "alice"))
    expect(sequence).to_have_text("3")
    expect(state).to_have_text("INACTIVE")
    expect(header).to_contain_text("over: live updates stopped")
    assert len(watched.navigations) == navigations, watched.navigations


def test_a_conversation_the_user_joins_appears_on_their_open_page(stack, context):
    watched = watched_page(context, stack, "ops")
    page = watched.page
    name = f"carol-{uuid.uuid4().hex[:8]}"
    first, second = new_conversation_id(), new_conversation_id()
    send_webhook(stack.base, member_event(first, 1, "joined", new_member_id(), name))
    # The API is a closed port here (push_stack.dashboard_env): its parts of the page say so,
    # and the page still shows what the store knows, and follows its stream. The page has no
    # live status (it has no timed poll either): the stream's opening is watched instead.
    page.add_init_script(
        "document.addEventListener('htmx:sseOpen', () => { window.__opened = true; })"
    )
    user_id = user_id_of(name)
    page.goto(f"{stack.base}/users/{user_id}/")
    expect(page.locator("#user-conversations")).to_contain_text("Couldn't load")
    stored = page.locator("#user-live #user-memberships")
    expect(stored.locator("tbody tr")).to_have_count(1)
    expect(stored).to_contain_text(first)
    expect(page.locator("[data-stream]")).to_have_attribute(
        "sse-connect", f"/stream/?topic=user%3A{user_id}"
    )
    page.wait_for_function("() => window.__opened === true")
    navigations = len(watched.navigations)

    send_webhook(stack.base, member_event(second, 1, "joined", new_member_id(), name))
    expect(stored.locator("tbody tr")).to_have_count(2)
    expect(stored).to_contain_text(second)
    expect(stored.locator("tbody tr", has_text=second)).to_contain_text("live")
    assert len(watched.navigations) == navigations, watched.navigations


class ListenerKiller:
    """Ends the web processes' Redis subscriptions (their notice listeners), again and again
    while it runs: CLIENT KILL for every pub/sub connection on the tests' Redis database (no
    other run's, whose connections select another database)."""

    def __init__(self) -> None:
        url = push_stack.REDIS_URL
        self.db = (urlsplit(url).path.strip("/") or "0").split("/")[0]
        self.client = redis.Redis.from_url(url)
        self.killed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def listeners(self) -> list[dict]:
        return [c for c in self.client.client_list(_type="pubsub") if str(c["db"]) == self.db]

    def _run(self) -> None:
        while not self._stop.is_set():
            for connection in self.listeners():
                self.killed += self.client.client_kill_filter(_id=connection["id"])
            self._stop.wait(0.02)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.client.close()


def test_a_stream_that_drops_mid_way_falls_back_to_polling_and_comes_back(stack, context):
    watched = watched_page(context, stack, "ops")
    page = watched.page
    conversation_id = stored_conversation(stack.base, 2)
    page.goto(f"{stack.base}/conversations/{conversation_id}/events/")
    expect(page.locator("#event-2")).to_be_visible()
    expect_pushed(page)
    page.evaluate(WATCH_MODES)
    navigations = len(watched.navigations)

    killer = ListenerKiller()
    assert len(killer.listeners()) == WEB_WORKERS, killer.listeners()
    killer.start()
    try:
        expect(page.locator("#live-mode")).to_have_text(
            f"Live: polling every {REFRESH_SECONDS} s (push unavailable)"
        )
        expect(page.locator("#live-status")).to_have_attribute("data-mode", "polling")
        mark = len(watched.requests)
        page.wait_for_timeout(1000)
        send_webhook(stack.base, custom_event(conversation_id, 3, n=3))
        expect(page.locator("#event-3")).to_be_visible(timeout=3 * REFRESH_SECONDS * 1000)
        page.wait_for_timeout(REFRESH_SECONDS * 1000)
        polls = [r for r in watched.since(mark) if "/events/poll/" in r.url]
        expect(page.locator("#live-mode")).to_contain_text("(push unavailable)")
    finally:
        killer.stop()
    kills_stopped = time.monotonic()
    assert page.evaluate("() => window.__modes['event-3']") == "polling"
    assert len(polls) >= 2, [r.url for r in watched.since(mark)]  # on its timer

    # The listeners subscribe again (their backoff), the page's stream reopens by itself.
    expect(page.locator("#live-mode")).to_have_text("Live: pushed", timeout=20_000)
    print(
        f"\nlisteners' connections killed {killer.killed} times; "
        f"pushed again {time.monotonic() - kills_stopped:.1f} s after the kills stopped"
    )
    assert len(killer.listeners()) == WEB_WORKERS
    send_webhook(stack.base, custom_event(conversation_id, 4, n=4))
    expect(page.locator("#event-4")).to_be_visible(timeout=REFRESH_SECONDS * 1000)
    assert page.evaluate("() => window.__modes['event-4']") == "pushed"
    assert shown_event_ids(page) == [4, 3, 2, 1]
    assert len(watched.navigations) == navigations, watched.navigations
