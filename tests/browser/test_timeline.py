"""A conversation's timeline and the live board's hourly chart in a real browser, on a phone-sized
screen in dark mode, under the production Content Security Policy: drawn, inside the screen,
coloured by the stylesheet, updated live with the page, and without serious axe violations."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.core.cache import cache
from playwright.sync_api import expect

from tests.browser.conftest import AXE, log_in, screenshot
from tests.browser.test_browser import audit
from tests.browser.test_narrow import OVERFLOWS
from tests.store_helpers import event, webhook

pytestmark = pytest.mark.django_db(transaction=True)

WIDTH = 400
CALL = "CON-61000000-0000-4000-8000-000000000001"
AGENT = "MEM-71000000-0000-4000-8000-000000000001"
CALLER = "MEM-71000000-0000-4000-8000-000000000002"
USER = "USR-81000000-0000-4000-8000-000000000001"
# The page refreshes every second here; a new event reaches the timeline within a few.
LIVE_WAIT_MS = 10_000
DARK_LINK_FG = "rgb(129, 212, 250)"  # the admin's --link-fg in dark mode: the joined bars


class LiveCall:
    """A call going on now: its events' times are the last two minutes."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)
        self.next_id = 1

    def add(self, event_type: str, member: str, body: dict, seconds_ago: float) -> None:
        when = self.now - dt.timedelta(seconds=seconds_ago)
        stamp = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        webhook({**event(CALL, self.next_id, event_type, member, body), "timestamp": stamp})
        self.next_id += 1

    def member(self, kind: str, member: str, name: str, leg: str, seconds_ago: float) -> None:
        body = {
            "member_id": member,
            "user": {"id": USER, "name": name},
            "channel": {"type": "phone", "id": leg},
        }
        self.add(f"member:{kind}", member, body, seconds_ago)

    def leg(self, member: str, leg: str, status: str, seconds_ago: float) -> None:
        self.add("leg:status:update", member, {"leg_id": leg, "status": status}, seconds_ago)


def a_live_call() -> LiveCall:
    call = LiveCall()
    call.leg(AGENT, "leg-a", "started", 120)
    call.member("joined", AGENT, "agent-7", "leg-a", 119)
    call.leg(AGENT, "leg-a", "answered", 118)
    call.member("invited", CALLER, "caller with a rather long name", "leg-c", 100)
    call.leg(CALLER, "leg-c", "ringing", 99)
    call.member("joined", CALLER, "caller with a rather long name", "leg-c", 90)
    call.leg(CALLER, "leg-c", "answered", 89)
    call.add("audio:dtmf", CALLER, {"digit": "5", "channel": {"id": "leg-c"}}, 60)
    call.add("audio:record", AGENT, {"format": "mp3"}, 50)
    call.add("audio:record:done", AGENT, {"size": 16000}, 30)
    call.add("rtc:transfer", AGENT, {"channel": {"id": "leg-a"}}, 25)
    return call


@pytest.fixture
def phone(browser, dashboard):
    """A 400 px wide page in dark mode, with the CSP enforced; CSP reports are collected."""
    context = browser.new_context(viewport={"width": WIDTH, "height": 800}, color_scheme="dark")
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.csp_errors = []
    page.on(
        "console",
        lambda message: (
            "Content Security Policy" in message.text and page.csp_errors.append(message.text)
        ),
    )
    log_in(page, dashboard.url)
    yield page
    context.close()


def test_the_timeline_on_a_phone_in_dark_mode_and_live(phone, dashboard):
    call = a_live_call()
    phone.goto(f"{dashboard.url}/conversations/{CALL}/")
    chart = phone.locator("#timeline svg.timeline-chart")
    expect(chart).to_be_visible()
    expect(phone.locator("#timeline .timeline-chart .tl-bar-joined")).to_have_count(2)
    expect(phone.locator("#timeline .timeline-chart .tl-mark-dtmf")).to_have_count(1)
    # Drawn with the stylesheet's dark colours, not the SVG default (black) nor a blocked style.
    fill = phone.locator("#timeline .timeline-chart .tl-bar-joined").first.evaluate(
        "el => getComputedStyle(el).fill"
    )
    assert fill == DARK_LINK_FG
    assert phone.csp_errors == []
    # Inside the screen: nothing sticks out or scrolls sideways.
    box = chart.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= WIDTH
    assert phone.evaluate(OVERFLOWS, WIDTH) == []
    # Each bar and mark says what it is.
    titles = phone.locator("#timeline svg rect > title, #timeline svg use > title")
    assert any("DTMF 5" in text for text in titles.all_text_contents())

    # The table of the same rows, opened by the reader, stays open while the timeline updates.
    phone.locator("summary", has_text="The timeline as a table").click()
    table = phone.locator("#timeline-table")
    expect(table).to_contain_text("DTMF 5")
    call.add("audio:dtmf", AGENT, {"digit": "9", "channel": {"id": "leg-a"}}, 0)
    call.leg(AGENT, "leg-a", "completed", 0)
    call.add("sip:hangup", AGENT, {"channel": {"id": "leg-a"}, "reason": "normal"}, 0)
    expect(table).to_contain_text("DTMF 9", timeout=LIVE_WAIT_MS)
    expect(table).to_contain_text("Hung up (normal)")
    expect(phone.locator("#timeline .timeline-chart .tl-mark-hangup")).to_have_count(1)
    assert phone.locator("details.timeline-details").get_attribute("open") is not None
    assert phone.evaluate(OVERFLOWS, WIDTH) == []
    chart.scroll_into_view_if_needed()
    screenshot(phone, "conversation-timeline-narrow-dark")


def test_the_hourly_chart_on_a_phone_in_dark_mode(phone, dashboard):
    a_live_call()
    cache.clear()  # a minute later: logging in showed /live/, whose counts are kept a minute
    phone.goto(f"{dashboard.url}/live/")
    chart = phone.locator("#started-chart svg.started-chart")
    expect(chart).to_be_visible()
    expect(phone.locator("#started-chart .started-bar")).to_have_count(1)
    expect(phone.locator("#started-chart .started-column")).to_have_count(24)
    assert phone.evaluate(OVERFLOWS, WIDTH) == []
    assert phone.csp_errors == []
    phone.locator("summary", has_text="The chart as a table").click()
    counts = phone.locator("#started-table tbody td:nth-child(2)").all_text_contents()
    started = [count for count in counts if count != "0"]
    assert len(counts) == 24 and started in (["1"], ["1 (so far)"])  # this hour or the last
    screenshot(phone, "live-started-chart-narrow-dark")


def test_no_serious_accessibility_violation_in_the_charts(browser, dashboard):
    assert AXE.exists(), "`make test` installs axe-core with npm ci"
    a_live_call()
    # axe is injected as a script, which the CSP rightly forbids: audit in a CSP-bypassing context.
    context = browser.new_context(
        bypass_csp=True, color_scheme="dark", viewport={"width": WIDTH, "height": 800}
    )
    page = context.new_page()
    log_in(page, dashboard.url)
    found = {}
    for name, url, summary in (
        ("timeline", f"/conversations/{CALL}/", "The timeline as a table"),
        ("timeline-page", f"/conversations/{CALL}/timeline/", "The timeline as a table"),
        ("live", "/live/", "The chart as a table"),
    ):
        page.goto(dashboard.url + url)
        expect(page.locator("svg[role=img]").first).to_be_visible()
        page.locator("summary", has_text=summary).click()
        found[name] = audit(page)
    context.close()
    problems = {
        name: [(v["id"], v["impact"], [n["target"] for n in v["nodes"]]) for v in violations]
        for name, violations in found.items()
        if violations
    }
    assert problems == {}, json.dumps(problems, indent=1)


def test_the_timeline_draws_what_happened_in_time_order(page, dashboard):
    a_live_call()
    page.goto(f"{dashboard.url}/conversations/{CALL}/")
    chart = page.locator("#timeline .timeline-chart")
    expect(chart).to_be_visible()

    def left(selector: str) -> float:
        return chart.locator(selector).first.bounding_box()["x"]

    # The agent joined 29 s before the caller was invited; DTMF (60 s ago), recording (50 s),
    # transfer (25 s) follow one another from left to right.
    agent, caller = chart.locator(".tl-row").all()
    assert left(".tl-row >> nth=0 >> .tl-bar-joined") < left(".tl-row >> nth=1 >> .tl-bar")
    assert left(".tl-mark-dtmf") < left(".tl-mark-record") < left(".tl-mark-transfer")
    assert agent.locator(".tl-leg").count() == 2 and caller.locator(".tl-leg").count() == 2
    box = chart.bounding_box()
    assert box["width"] > 1000  # as wide as its box at 1280 px
    screenshot(page, "conversation-timeline")
