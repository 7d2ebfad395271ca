"""What the push browser tests share (tests/browser/test_push.py, test_push_panels.py): the
Procfile's processes on a database of their own (tests/push_stack.py), pages logged in through
the login form with their requests and navigations recorded, and conversations fed by webhooks.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import expect

from tests import push_stack
from tests.push_stack import (
    Server,
    custom_event,
    member_event,
    new_conversation_id,
    new_member_id,
    send_webhook,
)

# Every event row's first appearance (Date.now()) and how many times a row with its id was added.
WATCH_ROWS = """() => {
  const rows = window.__rows = {seen: {}, added: {}};
  const note = node => {
    if (node.nodeType !== 1) return;
    const found = node.matches('tr.event-row') ? [node] : node.querySelectorAll('tr.event-row');
    found.forEach(row => {
      const id = Number(row.id.replace('event-', ''));
      if (!(id in rows.seen)) rows.seen[id] = Date.now();
      rows.added[id] = (rows.added[id] || 0) + 1;
    });
  };
  new MutationObserver(records => records.forEach(r => r.addedNodes.forEach(note)))
    .observe(document.body, {childList: true, subtree: true});
}"""


@contextlib.contextmanager
def procfile_stack(tmp: Path, users: dict[str, bool], **env: str) -> Iterator[Server]:
    """The Procfile's processes under honcho on a database of their own, with these users (name
    -> is staff) and these settings; stopped, and the database dropped, at the end."""
    with push_stack.database() as database:
        environment = push_stack.dashboard_env(tmp, database, **env)
        push_stack.prepare(environment, users)
        server = push_stack.start_procfile(environment, tmp)
        try:
            yield server
        finally:
            server.stop()


@dataclass
class Request:
    at: float  # time.monotonic()
    url: str
    kind: str  # Playwright's resource type: document, xhr, eventsource, ...


@dataclass
class Watched:
    page: object
    requests: list[Request] = field(default_factory=list)
    navigations: list[str] = field(default_factory=list)

    def since(self, mark: int, *, streams: bool = False) -> list[Request]:
        """Requests made after the mark, other than the stream's own unless asked for."""
        return [r for r in self.requests[mark:] if streams or r.kind != "eventsource"]


def watched_page(context, stack: Server, username: str) -> Watched:
    """A page logged in through the login form, its requests and navigations recorded."""
    page = context.new_page()
    watched = Watched(page)
    page.on(
        "request",
        lambda request: watched.requests.append(
            Request(time.monotonic(), request.url, request.resource_type)
        ),
    )
    page.on(
        "framenavigated",
        lambda frame: frame == page.main_frame and watched.navigations.append(frame.url),
    )
    page.goto(stack.base + "/")  # to the login page, then back to "/", which leads to /live/
    page.fill("#id_username", username)
    page.fill("#id_password", push_stack.PASSWORD)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url("**/live/")
    return watched


def expect_pushed(page) -> None:
    expect(page.locator("#live-status")).to_have_attribute("data-mode", "pushed")
    expect(page.locator("#live-mode")).to_have_text("Live: pushed")


def stored_conversation(base: str, events: int) -> str:
    """A conversation the store knows from webhooks: a member joined, then custom events."""
    conversation_id = new_conversation_id()
    send_webhook(base, member_event(conversation_id, 1, "joined", new_member_id(), "alice"))
    for event_id in range(2, events + 1):
        send_webhook(base, custom_event(conversation_id, event_id, n=event_id))
    return conversation_id


def shown_event_ids(page) -> list[int]:
    return page.locator("#event-rows tr.event-row").evaluate_all(
        "rows => rows.map(row => Number(row.id.replace('event-', '')))"
    )
