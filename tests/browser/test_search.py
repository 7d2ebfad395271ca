"""Search in a real browser: the header's box on any page, a number typed as staff say it, the
results with what matched highlighted, the export links, no serious axe violation in either theme,
and a Support user seeing the same results with the number masked."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import AXE, PASSWORD, log_in, screenshot
from tests.browser.test_browser import audit
from tests.conftest import support
from tests.store_helpers import event, webhook

pytestmark = pytest.mark.django_db(transaction=True)

CALL = "CON-5ea7c400-0000-4000-8000-000000000001"
CALLER = "MEM-5ea7c400-0000-4000-8000-000000000002"


def store_call() -> None:
    webhook(
        event(
            CALL,
            1,
            "member:joined",
            CALLER,
            {
                "member_id": CALLER,
                "user": {"id": "USR-5ea7c400-0000-4000-8000-000000000003", "name": "grace"},
                "channel": {"type": "phone", "from": {"type": "phone", "number": "447700900123"}},
            },
        )
    )
    webhook(
        event(CALL, 2, "message", CALLER, {"message_type": "text", "text": "my parcel is late"})
    )


def test_staff_find_a_call_by_its_number_from_the_header(page, dashboard):
    store_call()
    page.goto(f"{dashboard.url}/conversations/")
    page.fill("#header-search", "+44 (0)7700 900123")
    page.press("#header-search", "Enter")
    page.wait_for_url("**/search/?q=*")
    row = page.locator("#result_list tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator(f"a[href='/conversations/{CALL}/']")).to_be_visible()
    expect(row.locator("mark")).to_have_text("447700900123")
    assert page.locator(".export-links a").count() == 2
    screenshot(page, "search")
    page.fill("#id_search_q", "parcel")
    page.press("#id_search_q", "Enter")
    expect(page.locator("#result_list mark")).to_have_text("parcel")
    row.locator(f"a[href='/conversations/{CALL}/']").click()
    page.wait_for_url(f"**/conversations/{CALL}/")


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_search_page_has_no_serious_accessibility_violation(browser, dashboard, theme):
    assert AXE.exists(), "`make test` installs axe-core with npm ci"
    store_call()
    context = browser.new_context(
        bypass_csp=True, color_scheme=theme, viewport={"width": 400, "height": 900}
    )
    page = context.new_page()
    log_in(page, dashboard.url)
    page.goto(f"{dashboard.url}/search/?q=parcel")
    expect(page.locator("#result_list mark")).to_be_visible()
    assert audit(page) == []
    context.close()


def test_a_support_user_finds_the_call_by_number_and_sees_it_masked(
    browser, dashboard, django_user_model
):
    store_call()
    support(django_user_model.objects.create_user("helpdesk", password=PASSWORD, is_staff=True))
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(dashboard.url + "/")
    page.fill("#id_username", "helpdesk")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/live/")
    page.fill("#header-search", "447700900123")
    page.press("#header-search", "Enter")
    row = page.locator("#result_list tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator("mark")).to_have_text("•••• 0123")
    assert "900123" not in row.inner_html() and "900123" not in page.title()
    page.goto(f"{dashboard.url}/conversations/{CALL}/events/")
    expect(page.locator("#result_list, .event-row").first).to_be_visible()
    assert "parcel" not in page.content() and "900123" not in page.content()
    context.close()
