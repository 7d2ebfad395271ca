"""At 400 px wide (a phone): no page scrolls sideways, no table scrolls sideways inside its box, and
an event's "What happened" starts at the left of its row instead of past four narrow columns."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in, screenshot
from tests.browser.test_browser import active_conversation, member_with_avatar
from tests.store_helpers import api_conversation, membership, webhook

pytestmark = pytest.mark.django_db(transaction=True)

WIDTH = 400

# Everything that is wider than the viewport, or that scrolls sideways inside its own box.
OVERFLOWS = """(width) => {
  const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
    + (el.className && typeof el.className === 'string' ? '.' + el.className.split(' ')[0] : '');
  const found = [];
  if (document.documentElement.scrollWidth > width) {
    found.push(`the page is ${document.documentElement.scrollWidth}px wide`);
  }
  for (const el of document.querySelectorAll('body *')) {
    const style = getComputedStyle(el);
    if (['auto', 'scroll'].includes(style.overflowX) && el.scrollWidth > el.clientWidth + 1
        && el.tagName !== 'PRE') {
      found.push(`${name(el)} scrolls sideways: ${el.scrollWidth}px in ${el.clientWidth}px`);
    }
    // Only the outermost element that sticks out: its children stick out with it.
    const right = el.getBoundingClientRect().right;
    const parentRight = el.parentElement.getBoundingClientRect().right;
    if (right > width + 1 && parentRight <= width + 1) {
      found.push(`${name(el)} ends at ${Math.round(right)}px`);
    }
  }
  return found;
}"""


@pytest.fixture
def narrow(browser, dashboard):
    context = browser.new_context(viewport={"width": WIDTH, "height": 800})
    context.set_default_timeout(10_000)
    page = context.new_page()
    log_in(page, dashboard.url)
    yield page
    context.close()


def pages(sandbox):
    # A user with an avatar URL: with remote images off it is shown as text, and must wrap.
    conversation, member = member_with_avatar(sandbox)
    return {
        "live": "/live/",
        "conversation-events": f"/conversations/{conversation.id}/events/",
        "conversation-members": f"/conversations/{conversation.id}/",
        "conversation-list": "/conversations/",
        "users": "/users/",
        "user": f"/users/{member.user_id}/",
        "member": f"/conversations/{conversation.id}/members/{member.id}/",
        "hostile-events": f"/conversations/{sandbox.world.hostile_conversation_id}/events/",
        "hostile-user": f"/users/{sandbox.world.hostile_user_id}/",
    }


@pytest.fixture
def long_avatar_url(sandbox):
    """The avatar user's image URL made as long as a page shows one: one unbreakable word."""
    _conversation, member = member_with_avatar(sandbox)
    user = sandbox.world.user(member.user_id)
    original = user.image_url
    with sandbox.world.lock:
        user.image_url = "https://avatars.example.com/" + "a1b2c3d4" * 16 + ".png"
    yield
    with sandbox.world.lock:
        user.image_url = original


def test_no_page_is_wider_than_a_narrow_screen(narrow, dashboard, sandbox, long_avatar_url):
    # A live conversation on the board whose stored names are long unbreakable words.
    live = "CON-90000000-0000-4000-8000-000000000001"
    api_conversation(live, "n" * 300, "d" * 300)
    webhook(
        membership(
            live,
            1,
            "joined",
            "MEM-90000000-0000-4000-8000-000000000001",
            "USR-90000000-0000-4000-8000-000000000001",
            "u" * 300,
            "phone",
        )
    )
    found = {}
    for name, url in pages(sandbox).items():
        narrow.goto(dashboard.url + url)
        narrow.wait_for_load_state("networkidle")
        problems = narrow.evaluate(OVERFLOWS, WIDTH)
        if problems:
            found[name] = problems
        if name == "conversation-events":
            narrow.locator("#event-rows").evaluate("rows => rows.scrollIntoView()")
            screenshot(narrow, "conversation-events-narrow")
    assert found == {}, json.dumps(found, indent=1)


def test_what_happened_starts_at_the_left_of_an_event_row(narrow, dashboard, sandbox):
    conversation = active_conversation(sandbox)
    narrow.goto(f"{dashboard.url}/conversations/{conversation.id}/events/")
    row = narrow.locator("#event-rows tr.event-row").first
    expect(row).to_be_visible()
    row_box = row.bounding_box()
    summary = row.locator(".summary").first.bounding_box()
    assert summary["x"] - row_box["x"] < WIDTH / 3, (row_box, summary)
    # Names get room for words, not one character per line.
    for cell in narrow.locator("#event-rows .name-cell").all()[:5]:
        assert cell.bounding_box()["width"] >= 80
