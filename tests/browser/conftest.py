"""Browser tests: Debian's Chromium driven by Playwright, the dashboard served by `live_server`,
reading from a sandbox started in this process.

With CI=true a missing browser fails the run; elsewhere it skips with the command that fixes it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from conversations import client as client_module
from tests.conftest import sandbox_client, supervisor

# Playwright's sync API runs an event loop in the test thread; the ORM calls the tests make
# (creating the staff user) are synchronous and safe there.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR", ROOT / "test-results" / "screenshots"))
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
REFRESH_SECONDS = 1
PASSWORD = "browser-password-1"


def chromium_path() -> str | None:
    return (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)
            # A real browser against a live server on a shared 2-core CI machine: a timing
            # failure gets one more try. A real fault fails both; the first failure stays in the
            # report ("rerun"), with its page journal.
            item.add_marker(pytest.mark.flaky(reruns=1, reruns_delay=2))


@pytest.fixture(scope="session")
def browser():
    executable = chromium_path()
    if executable is None:
        message = "Chromium is missing: `make browser-deps` (apt-get install chromium) installs it"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture
def dashboard(live_server, sandbox, monkeypatch, settings, django_user_model):
    """The live dashboard on the sandbox, refreshing every second, with a staff user."""
    settings.DASHBOARD_REFRESH_SECONDS = REFRESH_SECONDS
    # The cache in memory, whatever CACHE_URL says: each test starts with none. (It was first put
    # here for "database table is locked" errors of a cache table in the in-memory test database;
    # the test database is now a file, see tests/settings.py.)
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    settings.USING_SANDBOX = True
    api = sandbox_client(sandbox, read_timeout=2.0, total_budget=3.0)
    monkeypatch.setattr(client_module.registry, "_override", api)
    sandbox.clear_faults()
    supervisor(django_user_model.objects.create_user("staff", password=PASSWORD, is_staff=True))
    yield live_server
    sandbox.clear_faults()


@pytest.fixture
def context(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    yield context
    context.close()


@pytest.fixture
def page(context, dashboard):
    """A page logged in through the real login form."""
    page = context.new_page()
    # What the page did, printed at teardown (pytest shows it when the test failed): every
    # navigation of the main frame and every answer that was not a plain 200.
    journal: list[str] = []
    page.on(
        "framenavigated",
        lambda frame: frame == page.main_frame and journal.append(f"navigated {frame.url}"),
    )

    def note_response(response) -> None:
        htmx_headers = {k: v for k, v in response.headers.items() if k.startswith("hx-")}
        if response.status != 200 or htmx_headers:
            journal.append(f"{response.status} {response.url} {htmx_headers}")

    page.on("response", note_response)
    page.on("requestfailed", lambda request: journal.append(f"failed {request.url}"))
    log_in(page, dashboard.url)
    yield page
    print("page journal:", *journal, sep="\n  ")


def log_in(page, base_url: str) -> None:
    page.goto(base_url + "/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url("**/live/")  # "/" leads to the live board


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path
