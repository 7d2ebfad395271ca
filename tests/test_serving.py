"""Production-like serving: gunicorn with the project's config, whitenoise's hashed and compressed
static files, DEBUG off, the default cache (a table in SQLite, shared by both workers), and the
sandbox as upstream (what `make serve` runs without Redis, on a free port)."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.gunicorn import ROOT, gunicorn_on_sandbox


class Served(str):
    """The base URL of the served dashboard, with the path of its log."""

    log: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory, sandbox):
    tmp = tmp_path_factory.mktemp("serve")
    plain_http = {"SESSION_COOKIE_SECURE": "false", "CSRF_COOKIE_SECURE": "false"}
    with gunicorn_on_sandbox(tmp, sandbox, **plain_http) as (base, env):
        subprocess.run(
            [sys.executable, "manage.py", "ensure_staff_user", "--username", "ops"],
            cwd=ROOT,
            env=env | {"DEMO_PASSWORD": "serving-password-1"},
            check=True,
            timeout=60,
            capture_output=True,
        )
        served = Served(base)
        served.log = tmp / "gunicorn.log"
        yield served


def logged_in(base: str) -> requests.Session:
    session = requests.Session()
    # A new connection per request: gunicorn closes an idle keep-alive connection after 5 s, and a
    # session reusing one it has just closed fails on the client's side, not the server's.
    session.headers["Connection"] = "close"
    session.get(base + "/login/", timeout=10)
    response = session.post(
        base + "/login/",
        data={
            "username": "ops",
            "password": "serving-password-1",
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        headers={"Referer": base + "/login/"},
        timeout=10,
    )
    assert response.url == base + "/conversations/", response.status_code
    return session


def test_gunicorn_serves_the_probes(served):
    assert requests.get(served + "/healthz", timeout=5).json() == {"status": "ok"}
    ready = requests.get(served + "/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["upstream"]["ok"] is True


def test_pages_are_served_with_security_headers(served):
    response = requests.get(served + "/login/", timeout=5)
    assert response.status_code == 200
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "Server" not in response.headers or "Django" not in response.headers["Server"]
    anonymous = requests.get(served + "/conversations/", timeout=5, allow_redirects=False)
    assert anonymous.status_code == 302


def test_static_files_are_hashed_compressed_and_cached_for_ever(served):
    page = requests.get(served + "/login/", timeout=5).text
    css = re.search(r'href="(/static/dashboard/dashboard\.[0-9a-f]{12}\.css)"', page)
    assert css, "the stylesheet link carries a content hash"
    response = requests.get(served + css.group(1), headers={"Accept-Encoding": "gzip"}, timeout=5)
    assert response.status_code == 200
    assert response.headers.get("Content-Encoding") == "gzip"
    assert "max-age=315360000" in response.headers["Cache-Control"]
    script = re.search(r"src=\"(/static/django_htmx/htmx-2\.min\.[0-9a-f]{12}\.js)\"", page)
    assert script, re.findall(r"src=\"[^\"]+\"", page)  # htmx from django-htmx, not a CDN


def test_an_error_page_shows_no_debug_detail(served):
    response = requests.get(served + "/nowhere/", timeout=5)
    assert response.status_code == 404
    assert "Traceback" not in response.text and "URLconf" not in response.text


def test_sqlite_under_concurrent_load_fails_no_page(served, sandbox):
    """Both workers, 12 staff at once, SQLite holding the sessions and the cache: every page is
    served, and "database is locked" reaches no one (not even the log)."""
    sessions = [logged_in(served) for _ in range(12)]
    sandbox.set_fault(latency_ms=100)  # reads overlap
    try:
        start = threading.Barrier(len(sessions))

        def browse(session: requests.Session) -> list[int]:
            start.wait(timeout=30)
            return [
                session.get(served + "/conversations/" + query, timeout=30).status_code
                for query in ("?page_size=25", "?page_size=50", "?order=asc", "")
            ]

        with ThreadPoolExecutor(len(sessions)) as pool:
            statuses = [code for codes in pool.map(browse, sessions) for code in codes]
    finally:
        sandbox.clear_faults()
    assert statuses == [200] * 48
    log = served.log.read_text()
    assert "database is locked" not in log and "Traceback" not in log


def test_healthz_answers_at_once_while_readyz_probes_pile_up(served, sandbox):
    """Fault 1: 30 anonymous /readyz while the API takes 8 s must not use up the workers."""
    import conversations.health as health

    requests.get(served + "/readyz", timeout=10)  # warm: the next ones answer from it or refresh
    time.sleep(health.READY_MAX_AGE_SECONDS)
    sandbox.set_fault(latency_ms=8000)
    try:
        with ThreadPoolExecutor(30) as pool:
            started = time.monotonic()
            probes = [pool.submit(requests.get, served + "/readyz", timeout=30) for _ in range(30)]
            time.sleep(0.5)
            healthz = requests.get(served + "/healthz", timeout=5)
            healthz_seconds = time.monotonic() - started - 0.5
            answers = [probe.result() for probe in probes]
            probes_seconds = time.monotonic() - started
    finally:
        sandbox.clear_faults()
    assert healthz.status_code == 200
    assert healthz_seconds < 1
    assert {answer.status_code for answer in answers} <= {200, 503}
    assert probes_seconds < health.CHECK_TIMEOUT_SECONDS + 2
