"""Issue 12 in a real browser: a conversation left open, polling, is one view per page and tab in
the audit log; the admin (/admin/, superusers only) runs under the dashboard's CSP in light and
dark mode, and /audit/ shows a hostile search escaped."""

from __future__ import annotations

import time

import pytest
from django_otp.oath import TOTP
from playwright.sync_api import expect

from conversations.audit.models import Action, AuditEntry
from conversations.twofactor import devices
from tests.browser.conftest import AXE, PASSWORD, REFRESH_SECONDS
from tests.browser.test_browser import active_conversation, poll_requests
from tests.browser.test_browser import audit as axe_violations

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
    user = django_user_model.objects.create_superuser("root", password=PASSWORD)
    device = devices.pending_app(user)  # an authenticator app, set up as enrolment does
    device.confirmed = True
    device.save()
    user.device = device
    return user


def log_in_as(page, user, next_path: str) -> None:
    """The login page (where anonymous visitors of `next_path` were sent), then the second
    factor every superuser gives: the code the user's app shows now."""
    page.fill("#id_username", user.get_username())
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/account/two-factor/verify/?next=*")
    device = user.device
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits)
    totp.time = time.time()
    page.fill("#id_code", f"{totp.token():0{device.digits}d}")
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url(f"**{next_path}")


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
        log_in_as(page, superuser, "/admin/")
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
        log_in_as(reader, superuser, "/audit/")
        expect(reader.locator("#result_list")).to_contain_text(hostile)
        assert reader.evaluate("() => window.__pwned") is None
        assert reader.locator("#result_list img").count() == 0
    finally:
        context.close()


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_no_serious_accessibility_violation_on_the_audit_and_lock_out_pages(
    browser, dashboard, superuser, theme, settings
):
    assert AXE.exists(), "`make test` installs axe-core with npm ci"
    settings.AXES_FAILURE_LIMIT = 1
    # axe is injected as a script, which the CSP rightly forbids: audit in a CSP-bypassing context.
    context = browser.new_context(
        bypass_csp=True, color_scheme=theme, viewport={"width": 1280, "height": 900}
    )
    try:
        page = context.new_page()
        found = {}
        for _ in range(2):  # a failure, then the lock-out page
            page.goto(f"{dashboard.url}/login/")
            page.fill("#id_username", "someone")
            page.fill("#id_password", "wrong")
            page.click("input[type=submit]")
        expect(page.locator("h1")).to_contain_text("Too many failed logins")
        found["locked-out"] = axe_violations(page)
        settings.AXES_FAILURE_LIMIT = 100
        page.goto(f"{dashboard.url}/login/?next=/audit/")
        log_in_as(page, superuser, "/audit/")
        found["audit"] = axe_violations(page)
        page.goto(f"{dashboard.url}/audit/?action=drop")
        found["audit-400"] = axe_violations(page)
        page.goto(f"{dashboard.url}/admin/")
        found["admin"] = axe_violations(page)
    finally:
        context.close()
    problems = {name: [v["id"] for v in found[name]] for name in found if found[name]}
    assert problems == {}, problems
