"""The end of a call, in a real browser (issue 8, section 2 items 2 and 3): every event up to the
end is on screen when polling stops, and the page stops saying it is live."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import REFRESH_SECONDS

pytestmark = pytest.mark.django_db(transaction=True)

LIVE_WAIT_MS = (2 * REFRESH_SECONDS + 1.5) * 1000


def shown_event_ids(page) -> set[int]:
    ids = page.locator("#event-rows tr.event-row").evaluate_all("rows => rows.map(r => r.id)")
    return {int(i.removeprefix("event-")) for i in ids}


@pytest.mark.parametrize("trial", range(3))
def test_every_event_up_to_the_end_is_on_screen_when_polling_stops(page, dashboard, sandbox, trial):
    conversation = sandbox.create_conversation(name=f"call-end-{uuid.uuid4().hex[:12]}")
    cid = conversation["id"]
    # htmx logs a target, an include or an out-of-band swap that finds nothing as an error
    # (an upstream image that cannot load here is one too, and no concern of this test).
    htmx_errors: list[str] = []
    page.on(
        "console",
        lambda m: (
            htmx_errors.append(m.text)
            if m.type == "error" and "Failed to load resource" not in m.text
            else None
        ),
    )
    page.goto(f"{dashboard.url}/conversations/{cid}/events/")
    expect(page.locator("#event-rows tr.event-row").first).to_be_visible()
    # What the new user did: Pause, then Resume (every panel asks at once), then the call ends.
    page.click("#pause-toggle")
    page.click("#pause-toggle")
    expect(page.locator("#pause-toggle")).to_have_attribute("aria-pressed", "false")
    for n in range(3):
        sandbox.inject_event(cid, "custom:before-the-end", body={"n": n})
    ended = sandbox.end_conversation(cid)
    last = ended["sequence_number"]

    # Generous waits: on a loaded machine a refresh interval is not always one second.
    expect(page.locator("#live-controls")).to_contain_text("stopped", timeout=LIVE_WAIT_MS * 3)
    expect(page.locator(f"#event-{last}")).to_be_visible(timeout=LIVE_WAIT_MS * 2)
    page.wait_for_function("() => !document.querySelector('[data-poll]')", timeout=LIVE_WAIT_MS)
    shown = shown_event_ids(page)
    assert set(range(min(shown), last + 1)) <= shown, "no event missing up to the end"
    expect(page.locator("#conversation-header")).to_contain_text("over")
    expect(page.locator("#pause-toggle")).to_have_count(0)

    # Everything has stopped: no more requests, and the last events stay.
    page.wait_for_timeout(500)  # an answer still on its way
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if r.headers.get("hx-request") else None)
    page.wait_for_timeout(3000 * REFRESH_SECONDS)
    assert requests == [], requests
    assert max(shown_event_ids(page)) == last
    assert htmx_errors == []
