"""The second factor in a real browser, under the real Content Security Policy: a superuser's
first login leads to enrolment (QR code, key as text), a code computed from the key shown on the
page turns it on, the recovery codes are shown, and the next login asks for a code."""

from __future__ import annotations

import time
from base64 import b32decode

import pytest
from django_otp.oath import TOTP
from playwright.sync_api import expect

from tests.browser.conftest import AXE, PASSWORD, screenshot
from tests.browser.test_browser import audit


def app_code(manual_key: str, at: float) -> str:
    """What an authenticator app given the page's key shows at `at`."""
    totp = TOTP(b32decode(manual_key.replace(" ", "")))
    totp.time = at
    return f"{totp.token():06d}"


def wrong_code(manual_key: str) -> str:
    now = time.time()
    near = {app_code(manual_key, now + seconds) for seconds in (-60, -30, 0, 30, 60)}
    return next(code for code in (f"{n:06d}" for n in range(10)) if code not in near)


def log_in_with_password(page, base_url: str, username: str) -> None:
    page.goto(base_url + "/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")


def enrol(page) -> str:
    """Set up the app on the enrolment page; the key it showed."""
    expect(page.locator("svg.qr-code")).to_be_visible()
    key = page.locator("#manual-key").inner_text()
    page.fill("#id_code", app_code(key, time.time()))
    page.get_by_role("button", name="Turn on").click()
    return key


@pytest.fixture
def superuser(dashboard, django_user_model):
    return django_user_model.objects.create_user(
        "root", password=PASSWORD, is_staff=True, is_superuser=True
    )


def test_a_superuser_enrols_then_logs_in_with_a_code(context, dashboard, superuser, settings):
    # No wait after the wrong code below (the throttle has tests of its own).
    settings.OTP_TOTP_THROTTLE_FACTOR = settings.OTP_STATIC_THROTTLE_FACTOR = 0
    page = context.new_page()
    refused: list[str] = []  # what the CSP blocked, as the console reports it
    page.on(
        "console",
        lambda message: "Content Security Policy" in message.text and refused.append(message.text),
    )
    log_in_with_password(page, dashboard.url, "root")
    page.wait_for_url("**/account/two-factor/enrol/?next=*")
    page.goto(dashboard.url + "/conversations/")
    page.wait_for_url("**/account/two-factor/enrol/?next=*")  # nothing else before it
    screenshot(page, "two-factor-enrol")
    key = enrol(page)

    codes = page.locator("#recovery-codes code")
    expect(codes).to_have_count(10)
    screenshot(page, "two-factor-recovery-codes")
    page.get_by_role("link", name="I have saved them: continue").click()
    page.wait_for_url("**/conversations/")

    page.get_by_role("button", name="Log out").click()
    log_in_with_password(page, dashboard.url, "root")
    page.wait_for_url("**/account/two-factor/verify/?next=*")
    page.fill("#id_code", wrong_code(key))
    page.get_by_role("button", name="Verify").click()
    expect(page.locator(".errornote")).to_have_text("That code is not valid.")
    screenshot(page, "two-factor-verify")
    page.fill("#id_code", app_code(key, time.time() + 30))  # the next step: not a replay
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url("**/live/")
    expect(page.get_by_role("link", name="Two-factor")).to_be_visible()
    assert refused == []


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_two_factor_pages_pass_axe(browser, dashboard, superuser, theme):
    assert AXE.exists(), "`make test` installs axe-core with npm ci"
    # axe is injected as a script, which the CSP rightly forbids: audit in a CSP-bypassing context.
    context = browser.new_context(bypass_csp=True, color_scheme=theme)
    page = context.new_page()
    log_in_with_password(page, dashboard.url, "root")
    page.wait_for_url("**/account/two-factor/enrol/?next=*")
    found = {"enrol": audit(page)}
    enrol(page)
    expect(page.locator("#recovery-codes code")).to_have_count(10)
    found["recovery-codes"] = audit(page)
    page.goto(dashboard.url + "/account/two-factor/")
    found["overview"] = audit(page)
    if theme == "dark":
        screenshot(page, "two-factor-overview-dark")
    page.get_by_role("button", name="Log out").click()
    log_in_with_password(page, dashboard.url, "root")
    page.wait_for_url("**/account/two-factor/verify/?next=*")
    found["verify"] = audit(page)
    context.close()
    assert found == {name: [] for name in found}, found
