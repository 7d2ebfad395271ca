"""Production-like serving: gunicorn with the project's config, whitenoise's hashed and compressed
static files, DEBUG off, and the sandbox as upstream (what `make serve` runs, on a free port)."""

from __future__ import annotations

import re

import pytest
import requests

from tests.gunicorn import gunicorn_on_sandbox


@pytest.fixture(scope="module")
def served(tmp_path_factory, sandbox):
    with gunicorn_on_sandbox(tmp_path_factory.mktemp("serve"), sandbox) as (base, _):
        yield base


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
