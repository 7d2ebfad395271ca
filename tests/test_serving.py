"""Production-like serving: gunicorn with the project's config, whitenoise's hashed and compressed
static files, DEBUG off, and the sandbox as upstream (what `make serve` runs, on a free port)."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def served(tmp_path_factory, sandbox):
    tmp = tmp_path_factory.mktemp("serve")
    key = tmp / "private.pem"
    key.write_text(sandbox.private_key_pem)
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp),
        "READ_DOT_ENV": "false",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "SECURE_SSL_REDIRECT": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
        "STATIC_ROOT": str(tmp / "static"),  # not the repository's staticfiles/
        "VONAGE_APPLICATION_ID": sandbox.application_id,
        "VONAGE_PRIVATE_KEY_PATH": str(key),
        "VONAGE_API_BASE_URL": sandbox.base_url,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "2",
        "GUNICORN_ACCESS_LOG": str(tmp / "access.log"),
    }
    manage = [sys.executable, "manage.py"]
    for command in (["collectstatic", "--noinput", "-v", "0"], ["migrate", "--noinput", "-v", "0"]):
        subprocess.run(manage + command, cwd=ROOT, env=env, check=True, timeout=120)
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "dashboard_project/gunicorn.conf.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(base + "/healthz", timeout=1).close()
                break
            except requests.ConnectionError:
                assert server.poll() is None, server.stderr.read()
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=15)
        server.stderr.close()


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
