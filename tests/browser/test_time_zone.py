"""The UTC / local time switch in the header: a real toggle button, remembered across pages and
reloads, applied to every timestamp including those that live updates swap in later."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in
from tests.browser.test_browser import LIVE_WAIT_MS, active_conversation, audit

pytestmark = pytest.mark.django_db(transaction=True)

# Asia/Kolkata: no summer time, and an offset in half hours, so no coincidence can pass for it.
ZONE = "Asia/Kolkata"
OFFSET = dt.timedelta(hours=5, minutes=30)


def as_utc(iso: str) -> str:
    when = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


def as_local(iso: str) -> str:
    when = dt.datetime.fromisoformat(iso.replace("Z", "+00:00")) + OFFSET
    return when.strftime("%Y-%m-%d %H:%M:%S UTC+05:30")


@pytest.fixture
def page_in_india(browser, dashboard):
    context = browser.new_context(timezone_id=ZONE, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    log_in(page, dashboard.url)
    yield page
    context.close()


def every_time_reads(page, render) -> None:
    stamps = page.locator("time[data-local-time]")
    assert stamps.count() > 0
    for stamp in stamps.all():
        expect(stamp).to_have_text(render(stamp.get_attribute("datetime")))


def test_the_switch_shows_local_times_everywhere_and_is_remembered(
    page_in_india, dashboard, sandbox
):
    page = page_in_india
    conversation = active_conversation(sandbox)
    page.goto(f"{dashboard.url}/conversations/{conversation.id}/events/")
    expect(page.locator("#event-rows tr.event-row").first).to_be_visible()
    toggle = page.get_by_role("button", name="Local time")
    expect(toggle).to_have_attribute("aria-pressed", "false")
    every_time_reads(page, as_utc)

    # A keyboard user can reach and press it.
    toggle.focus()
    page.keyboard.press("Space")
    expect(toggle).to_have_attribute("aria-pressed", "true")
    every_time_reads(page, as_local)
    expect(page.locator("#time-note")).to_contain_text("local time (UTC+05:30)")
    stamp = page.locator("#event-rows time[data-local-time]").first
    # Hovering shows UTC instead, to the millisecond as the server wrote it.
    utc_second = as_utc(stamp.get_attribute("datetime"))[: -len(" UTC")]
    expect(stamp).to_have_attribute("title", re.compile(rf"^{utc_second}\.\d{{3}} UTC$"))

    page.reload()
    expect(page.get_by_role("button", name="Local time")).to_have_attribute("aria-pressed", "true")
    every_time_reads(page, as_local)

    # Swapped in later: a new event's row, and the header that refreshes itself.
    event = sandbox.inject_event(conversation.id, "custom:time-zone", body={"note": "later"})
    new_stamp = page.locator(f"#event-{event['id']} time[data-local-time]")
    expect(new_stamp).to_be_visible(timeout=LIVE_WAIT_MS)
    expect(new_stamp).to_have_text(as_local(new_stamp.get_attribute("datetime")))
    page.wait_for_timeout(2500)  # the header has been swapped for a fresh one since
    every_time_reads(page, as_local)

    # Other pages follow the choice; switching back shows UTC again, also after a reload.
    page.goto(f"{dashboard.url}/conversations/")
    every_time_reads(page, as_local)
    page.get_by_role("button", name="Local time").click()
    every_time_reads(page, as_utc)
    page.reload()
    expect(page.get_by_role("button", name="Local time")).to_have_attribute("aria-pressed", "false")
    every_time_reads(page, as_utc)


def test_without_a_choice_times_are_utc_with_local_time_on_hover(page_in_india, dashboard, sandbox):
    conversation = active_conversation(sandbox)
    page_in_india.goto(f"{dashboard.url}/conversations/{conversation.id}/")
    stamp = page_in_india.locator("time[data-local-time]").first
    iso = stamp.get_attribute("datetime")
    expect(stamp).to_have_text(as_utc(iso))
    expect(stamp).to_have_attribute("title", f"Your local time: {as_local(iso)}")
    expect(page_in_india.locator("#time-note")).to_have_text(
        "Times are UTC; hover one to see your local time."
    )


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_switch_pressed_passes_axe(browser, dashboard, sandbox, theme):
    # axe is injected as a script, which the CSP forbids: audit in a CSP-bypassing context.
    context = browser.new_context(bypass_csp=True, color_scheme=theme, timezone_id=ZONE)
    page = context.new_page()
    log_in(page, dashboard.url)
    page.get_by_role("button", name="Local time").click()
    expect(page.get_by_role("button", name="Local time")).to_have_attribute("aria-pressed", "true")
    found = audit(page)
    context.close()
    assert found == [], found
