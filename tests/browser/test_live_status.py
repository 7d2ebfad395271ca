"""The live status next to Pause: "updated N s ago" resets on every refresh of every live page,
and says "(last try failed)" while polls fail, whatever the failure, until they succeed again."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import REFRESH_SECONDS
from tests.browser.test_browser import LIVE_WAIT_MS, active_conversation

pytestmark = pytest.mark.django_db(transaction=True)

# Refreshed within the last two intervals: the label never gets to count up.
FRESH = re.compile(r"^updated (just now|[1-2] s ago)$")
FAILED = re.compile(r"\(last try failed\)")


def live_pages(sandbox) -> dict[str, str]:
    conversation = active_conversation(sandbox)
    return {
        "list": "/conversations/",
        "members": f"/conversations/{conversation.id}/",
        "events": f"/conversations/{conversation.id}/events/",
    }


@pytest.mark.parametrize("which", ["list", "members", "events"])
def test_updated_resets_after_each_refresh(page, dashboard, sandbox, which):
    page.goto(dashboard.url + live_pages(sandbox)[which])
    label = page.locator("#updated-ago")
    # Long enough for the label to reach "4 s ago" if refreshes were not counted.
    page.wait_for_timeout(4500 * REFRESH_SECONDS)
    expect(label).to_have_text(FRESH)
    page.wait_for_timeout(2000 * REFRESH_SECONDS)
    expect(label).to_have_text(FRESH)


@pytest.mark.parametrize("which", ["list", "members"])
def test_a_failing_upstream_says_the_last_try_failed_and_recovers(page, dashboard, sandbox, which):
    page.goto(dashboard.url + live_pages(sandbox)[which])
    label = page.locator("#updated-ago")
    expect(label).to_have_text(FRESH, timeout=LIVE_WAIT_MS)

    sandbox.set_fault(mode="500")  # the panels answer 200 with a banner over the last good data
    expect(label).to_have_text(FAILED, timeout=LIVE_WAIT_MS * 2)
    expect(page.locator(".problem-banner").first).to_be_visible()

    sandbox.clear_faults()
    # Back-off after a failure is interval x 2^n; one or two steps here.
    expect(label).not_to_have_text(FAILED, timeout=LIVE_WAIT_MS * 4)
    expect(label).to_have_text(FRESH)


def refuse_polls(page, answer) -> None:
    """What a proxy in front of the dashboard may do to the pages' polls."""
    page.route(
        re.compile(r".*/(conversations|users)/.*"),
        lambda route: (
            answer(route) if route.request.headers.get("hx-request") else route.fallback()
        ),
    )


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(lambda route: route.abort("connectionreset"), id="network-error"),
        pytest.param(lambda route: route.fulfill(status=502, body="Bad gateway"), id="502"),
    ],
)
def test_a_failing_connection_says_the_last_try_failed(page, dashboard, sandbox, answer):
    page.goto(dashboard.url + live_pages(sandbox)["members"])
    label = page.locator("#updated-ago")
    expect(label).to_have_text(FRESH, timeout=LIVE_WAIT_MS)

    refuse_polls(page, answer)
    expect(label).to_have_text(FAILED, timeout=LIVE_WAIT_MS)
    page.wait_for_timeout(3000 * REFRESH_SECONDS)
    expect(label).to_have_text(re.compile(r"^updated \d+ s ago \(last try failed\)$"))

    page.unroute_all()
    expect(label).to_have_text(FRESH, timeout=LIVE_WAIT_MS * 2)
