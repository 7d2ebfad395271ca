"""Issue 12 in a real browser: a conversation left open, polling, is one view per page and tab in
the audit log; the admin (/admin/, superusers only) runs under the dashboard's CSP in light and
dark mode, and /audit/ shows a hostile search escaped."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from conversations.audit.models import Action, AuditEntry
from tests.browser.conftest import PASSWORD, REFRESH_SECONDS
from tests.browser.test_browser import active_conversation, poll_requests

pytestmark = pytest.mark.django_db(transaction=True)


def views_of(conversation_id: str) -> list[str]:
    rows = AuditEntry.objects.filter(
        action=Action.VIEW_CONVERSATION, object_id=conversation_id
    ).order_by("id")
    return [row.details["path"] for row in rows]


def test_a_conversation_left_open_is_one_view_per_page_and_tab(page, dashboard, sandbox):
    conversation = active_conversation(sandbox)
    base = f"/conversations/{conversation.id}/"
    requests = poll_requests(page)
    page.goto(f"{dashboard.url}{base}")
    expect(page.locator("#conversation-header")).to_be_visible()
    page.wait_for_timeout(3500 * REFRESH_SECONDS)
    polls = [url for url in requests if "/header/" in url or "/members/panel/" in url]
    assert len(polls) >= 3, f"the page polled ({requests})"
    page.click("#tab-events")
    expect(page.locator("#tab-events")).to_have_attribute("aria-selected", "true")
    page.wait_for_timeout(3500 * REFRESH_SECONDS)
    assert any("/events/poll/" in url for url in requests), "the events tab polled"
    assert views_of(conversation.id) == [base, f"{base}events/"]


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", password=PASSWORD)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_admin_runs_under_the_csp_in_light_and_dark(browser, dashboard, superuser, scheme):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme=scheme)
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{dashboard.url}/admin/")
        page.wait_for_url("**/login/?next=/admin/")
        page.fill("#id_username", "root")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_url("**/admin/")
        expect(page.locator("#site-name")).to_contain_text("Conversation dashboard administration")
        for path in ("/admin/auth/user/", f"/admin/auth/user/{superuser.pk}/change/",
                     "/admin/auth/group/add/", "/admin/axes/accessattempt/"):  # fmt: skip
            page.goto(f"{dashboard.url}{path}")
            expect(page.locator("#content")).to_be_visible()
        # The group form's permission picker is the admin's own script (SelectFilter2.js).
        page.goto(f"{dashboard.url}/admin/auth/group/add/")
        expect(page.locator("#id_permissions_filter")).to_be_visible()
        background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
        red, green, blue = (
            int(x) for x in background[background.index("(") + 1 : -1].split(",")[:3]
        )
        assert (red + green + blue < 150) == (scheme == "dark"), background
        assert errors == [], errors  # a CSP violation is reported as a console error
    finally:
        context.close()


def test_the_audit_page_shows_a_hostile_search_as_text(browser, dashboard, superuser, page):
    hostile = '<img src=x onerror="window.__pwned=1">'
    page.goto(f"{dashboard.url}/search/?q={hostile}")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        reader = context.new_page()
        reader.goto(f"{dashboard.url}/login/?next=/audit/")
        reader.fill("#id_username", "root")
        reader.fill("#id_password", PASSWORD)
        reader.click("input[type=submit]")
        reader.wait_for_url("**/audit/")
        expect(reader.locator("#result_list")).to_contain_text(hostile)
        assert reader.evaluate("() => window.__pwned") is None
        assert reader.locator("#result_list img").count() == 0
    finally:
        context.close()
