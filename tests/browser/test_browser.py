"""Staff's journeys in a real browser, under the production Content Security Policy."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import AXE, REFRESH_SECONDS, log_in, screenshot

pytestmark = pytest.mark.django_db(transaction=True)

# Two refresh intervals plus rendering slack: "within two refresh intervals".
LIVE_WAIT_MS = (2 * REFRESH_SECONDS + 1.5) * 1000


def active_conversation(sandbox):
    for conversation in sandbox.world.conversations():
        if (
            conversation.state == "ACTIVE"
            and conversation.id
            not in (sandbox.world.big_conversation_id, sandbox.world.hostile_conversation_id)
            and conversation.members
        ):
            return conversation
    raise AssertionError("the sandbox world has no active conversation")


def mark_window(page) -> None:
    page.evaluate("() => { window.__noReload = 'still here'; }")


def window_survived(page) -> bool:
    return page.evaluate("() => window.__noReload === 'still here'")


def test_login_list_detail_tabs_and_back(page, dashboard, sandbox):
    expect(page.locator("#live-board")).to_be_visible()
    page.click("#user-tools a[href='/conversations/']")
    page.wait_for_url("**/conversations/")
    expect(page.locator("#result_list tbody tr").first).to_be_visible()
    screenshot(page, "conversation-list")
    conversation = active_conversation(sandbox)
    page.goto(f"{dashboard.url}/conversations/{conversation.id}/")
    expect(page.locator("#tab-members")).to_have_attribute("aria-selected", "true")
    expect(page.locator(".member-table tbody tr").first).to_be_visible()
    expect(page.locator(".member-table")).not_to_contain_text("loading channel", timeout=5000)
    screenshot(page, "conversation-members")

    mark_window(page)
    page.click("#tab-events")
    page.wait_for_url(f"**/conversations/{conversation.id}/events/")
    expect(page.locator("#tab-events")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#event-rows tr.event-row").first).to_be_visible()
    assert window_survived(page), "the tab switch was an htmx swap, not a page load"
    screenshot(page, "conversation-events")

    page.go_back()
    page.wait_for_url(f"**/conversations/{conversation.id}/")
    expect(page.locator("#tab-members")).to_have_attribute("aria-selected", "true")
    expect(page.locator(".member-table")).to_be_visible()


def test_the_list_pages_through_every_conversation(page, dashboard, sandbox):
    page.goto(f"{dashboard.url}/conversations/?page_size=10")
    seen: list[str] = []
    for _ in range(20):
        links = page.locator("#result_list tbody a[href*='/conversations/CON-']")
        hrefs = links.evaluate_all("els => els.map(e => e.getAttribute('href'))")
        seen.extend(re.search(r"(CON-[^/]+)/", h).group(1) for h in hrefs)
        next_link = page.locator("a[rel=next]")
        if next_link.count() == 0:
            break
        next_link.click()
        page.wait_for_load_state()
    expected = {c.id for c in sandbox.world.conversations()}
    assert len(seen) == len(set(seen)), "no conversation twice"
    assert set(seen) == expected


def test_an_injected_event_is_appended_without_rerendering(page, dashboard, sandbox):
    conversation = active_conversation(sandbox)
    page.goto(f"{dashboard.url}/conversations/{conversation.id}/events/")
    first_row = page.locator("#event-rows tr.event-row").first
    expect(first_row).to_be_visible()
    first_row.evaluate("row => { row.__kept = true; }")
    mark_window(page)

    event = sandbox.inject_event(
        conversation.id, "custom:browser-test", body={"note": "appeared live"}
    )
    new_row = page.locator(f"#event-{event['id']}")
    expect(new_row).to_be_visible(timeout=LIVE_WAIT_MS)
    expect(new_row).to_have_class(re.compile(r"event-new"))
    assert page.locator("#event-rows tr").first.get_attribute("id") == f"event-{event['id']}"
    kept = page.locator("#event-rows tr.event-row").nth(1)
    assert kept.evaluate("row => row.__kept === true"), "existing rows were not re-rendered"
    assert window_survived(page)


def poll_requests(page) -> list[str]:
    requests: list[str] = []
    page.on(
        "request",
        lambda request: requests.append(request.url) if request.headers.get("hx-request") else None,
    )
    return requests


def test_pause_stops_polling_and_resume_restarts_it(page, dashboard):
    requests = poll_requests(page)
    page.goto(f"{dashboard.url}/conversations/")
    page.wait_for_timeout(2500 * REFRESH_SECONDS)
    assert requests, "the list polls while live"

    page.click("#pause-toggle")
    expect(page.locator("#pause-toggle")).to_have_attribute("aria-pressed", "true")
    page.wait_for_timeout(300)
    requests.clear()
    page.wait_for_timeout(3000 * REFRESH_SECONDS)
    assert requests == [], "no requests while paused"
    expect(page.locator("#updated-ago")).to_contain_text("paused")

    page.click("#pause-toggle")
    expect(page.locator("#pause-toggle")).to_have_attribute("aria-pressed", "false")
    page.wait_for_timeout(500)
    assert requests, "resuming asks for fresh data at once"


def test_a_hidden_page_does_not_poll(context, dashboard):
    # Emulate the tab being hidden: the Page Visibility API reads these two properties.
    context.add_init_script(
        """
        window.__hidden = false;
        Object.defineProperty(document, 'hidden', {get: () => window.__hidden});
        Object.defineProperty(document, 'visibilityState',
            {get: () => (window.__hidden ? 'hidden' : 'visible')});
        """
    )
    page = context.new_page()
    log_in(page, dashboard.url)
    requests = poll_requests(page)
    page.evaluate(
        "() => { window.__hidden = true; document.dispatchEvent(new Event('visibilitychange')); }"
    )
    page.wait_for_timeout(300)
    requests.clear()
    page.wait_for_timeout(3000 * REFRESH_SECONDS)
    assert requests == [], "no requests while hidden"
    page.evaluate(
        "() => { window.__hidden = false; document.dispatchEvent(new Event('visibilitychange')); }"
    )
    page.wait_for_timeout(400)
    assert requests, "a visible page refreshes at once"


def test_a_fault_shows_a_banner_and_the_page_recovers_by_itself(page, dashboard, sandbox):
    conversation = active_conversation(sandbox)
    page.goto(f"{dashboard.url}/conversations/{conversation.id}/")
    expect(page.locator(".member-table tbody tr").first).to_be_visible()
    sandbox.set_fault(mode="500")
    banner = page.locator("#conversation-header .problem-banner")
    expect(banner).to_be_visible(timeout=LIVE_WAIT_MS * 2)
    expect(banner).to_contain_text("Couldn't load the conversation")
    expect(page.locator(".facts")).to_be_visible()  # the last good data stays
    screenshot(page, "fault-banner")
    sandbox.clear_faults()
    # Back-off after a failure is interval x 2^n; one or two steps here.
    expect(banner).to_have_count(0, timeout=LIVE_WAIT_MS * 4)


def member_with_avatar(sandbox):
    """A live conversation's member whose user has an avatar URL (the sandbox's do not load)."""
    for conversation in sandbox.world.conversations():
        if conversation.state != "ACTIVE" or conversation.id in (
            sandbox.world.big_conversation_id,
            sandbox.world.hostile_conversation_id,
        ):
            continue
        for member in conversation.members:
            user = sandbox.world.user(member.user_id) if member.user_id else None
            if user and (user.image_url or "").startswith("https://avatars.example.com/"):
                return conversation, member
    raise AssertionError("no live member of the sandbox world has an avatar")


def test_member_link_to_user_page_and_search_box_jump(page, dashboard, sandbox, settings):
    # Remote images are off unless their host is allowed; the page and the CSP then agree.
    settings.DASHBOARD_IMAGE_HOSTS = ["avatars.example.com"]
    settings.SECURE_CSP = settings.SECURE_CSP | {
        "img-src": [*settings.SECURE_CSP["img-src"], "https://avatars.example.com"]
    }
    conversation, member = member_with_avatar(sandbox)
    page.goto(f"{dashboard.url}/conversations/{conversation.id}/")
    page.locator(f"a[href$='/members/{member.id}/']").first.click()
    page.wait_for_url(f"**/members/{member.id}/")
    screenshot(page, "member")
    page.locator(f"a[href$='/users/{member.user_id}/']").first.click()
    page.wait_for_url(f"**/users/{member.user_id}/")
    expect(page.locator("h1, h2").first).to_be_visible()
    # The sandbox's avatar URLs do not load here: a broken image is hidden, not shown broken.
    page.wait_for_function("() => [...document.images].every(i => i.complete)", timeout=5000)
    broken = page.locator("img").evaluate_all(
        "imgs => imgs.filter(i => i.naturalWidth === 0).map(i => i.hidden)"
    )
    assert broken, "the user's avatar is an image that cannot load here"
    assert all(broken), "a broken image is hidden"
    screenshot(page, "user")

    page.fill("#header-search", f"  {conversation.id}  ")
    page.press("#header-search", "Enter")
    page.wait_for_url(f"**/conversations/{conversation.id}/")


def test_hostile_data_renders_as_text(page, dashboard, sandbox):
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    hostile = sandbox.world.hostile_conversation_id
    for path in ("", "events/"):
        page.goto(f"{dashboard.url}/conversations/{hostile}/{path}")
        page.wait_for_timeout(300)
    page.goto(f"{dashboard.url}/users/{sandbox.world.hostile_user_id}/")
    page.wait_for_timeout(300)
    assert dialogs == [], "no payload ran"
    assert page.evaluate("() => window.__pwned === undefined")
    hrefs = page.locator("a[href], img[src]").evaluate_all(
        "els => els.map(e => e.getAttribute('href') || e.getAttribute('src'))"
    )
    assert not [h for h in hrefs if h.strip().lower().startswith(("javascript:", "data:"))]


def audit(page) -> list[dict]:
    page.evaluate(AXE.read_text())
    result = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
    )
    return [v for v in result if v["impact"] in ("serious", "critical")]


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_no_serious_accessibility_violation_on_any_page(browser, dashboard, sandbox, theme):
    assert AXE.exists(), "`make test` installs axe-core with npm ci"
    # axe is injected as a script, which the CSP rightly forbids: audit in a CSP-bypassing context.
    context = browser.new_context(
        bypass_csp=True, color_scheme=theme, viewport={"width": 1280, "height": 900}
    )
    page = context.new_page()
    page.goto(dashboard.url + "/login/")
    found = {"login": audit(page)}
    log_in(page, dashboard.url)
    conversation = active_conversation(sandbox)
    member = conversation.members[0]
    urls = {
        "live": "/live/",
        "conversation-list": "/conversations/",
        "conversation-members": f"/conversations/{conversation.id}/",
        "conversation-events": f"/conversations/{conversation.id}/events/",
        "member": f"/conversations/{conversation.id}/members/{member.id}/",
        "users": "/users/",
        "user": f"/users/{member.user_id}/",
        "not-found": "/conversations/CON-00000000-0000-4000-8000-000000000000/",
        "hostile-events": f"/conversations/{sandbox.world.hostile_conversation_id}/events/",
    }
    for name, url in urls.items():
        page.goto(dashboard.url + url)
        page.wait_for_load_state("networkidle")
        found[name] = audit(page)
        if theme == "dark":
            screenshot(page, f"{name}-dark")
    context.close()
    problems = {
        name: [(v["id"], v["impact"], [n["target"] for n in v["nodes"]]) for v in violations]
        for name, violations in found.items()
        if violations
    }
    assert problems == {}, json.dumps(problems, indent=1)
