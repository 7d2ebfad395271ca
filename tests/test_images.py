"""Fault 11: upstream image URLs load in staff browsers only from chosen https hosts (issue 8).

Anyone with API access sets a conversation's or user's image_url: loaded as is, it is a tracking
pixel, or a request from staff browsers to internal hosts. Off by default (the URL shown as text);
on for the https hosts of DASHBOARD_IMAGE_HOSTS, and the Content Security Policy says the same.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import responses
from django.template import Context, Template
from django.urls import reverse

from tests.conftest import API, fixture
from tests.test_settings import ROOT, load_settings

CON = fixture("conversation.json")["id"]
TRACKER = "https://tracker.example/pixel.gif?viewer=staff"


def render(url, hosts, settings) -> str:
    settings.DASHBOARD_IMAGE_HOSTS = hosts
    return Template("{% load dashboard %}{% upstream_image url %}").render(Context({"url": url}))


@pytest.fixture
def upstream(api, use_client):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        use_client(api)
        yield mock


@pytest.mark.django_db
def test_a_conversation_image_from_anywhere_is_shown_as_its_url(staff_client, upstream):
    conversation = fixture("conversation.json") | {"image_url": TRACKER}
    upstream.get(f"{API}/v1/conversations/{CON}", json=conversation)
    upstream.get(f"{API}/v1/conversations/{CON}/members", json={"_embedded": {"members": []}})
    upstream.get(f"{API}/v1/conversations/{CON}/events", json={"_embedded": []})
    response = staff_client.get(reverse("conversations:detail", args=[CON]))
    html = response.content.decode()
    assert response.status_code == 200
    assert 'src="https://tracker.example' not in html, "nothing loads it"
    assert "tracker.example/pixel.gif" in html, "staff still see where it points"
    img_src = response["Content-Security-Policy"].split("img-src ")[1].split(";")[0]
    assert img_src == "'self'", "and the browser would refuse it anyway"


@pytest.mark.parametrize(
    "url",
    [
        "https://images.example.com/a.png",
        "HTTPS://IMAGES.EXAMPLE.COM/a.png",
        "https://images.example.com:443/a.png",
    ],
)
def test_an_image_on_a_chosen_https_host_is_shown(url, settings):
    html = render(url, ["images.example.com"], settings)
    assert html.startswith('<img class="conversation-image" src="')
    assert 'referrerpolicy="no-referrer"' in html


@pytest.mark.parametrize(
    "url",
    [
        "http://images.example.com/a.png",  # not https
        "https://images.example.com:8443/a.png",  # another port: not what the CSP allows
        "https://user@images.example.com/a.png",
        "https://evil.example\\@images.example.com/a.png",  # a browser goes to evil.example
        "https://images.example.com.evil.example/a.png",
        "https://evil.example/images.example.com/a.png",
        "https://cdn.images.example.com/a.png",  # a subdomain is another host
    ],
)
def test_an_image_anywhere_else_is_shown_as_text(url, settings):
    html = render(url, ["images.example.com"], settings)
    assert "<img" not in html
    assert html.startswith('<span class="upstream-image-url"')


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:image/png;base64,AA==", "", None, 3])
def test_an_unsafe_or_missing_url_shows_nothing(url, settings):
    assert render(url, ["images.example.com"], settings) == ""


def test_the_url_text_is_escaped(settings):
    html = render('https://x.example/"><script>alert(1)</script>', [], settings)
    assert "<script>" not in html and "&lt;script&gt;" in html


def img_src(tmp_path, **env: str) -> list[str]:
    """The img-src of the Content Security Policy that settings.py builds from this environment."""
    code = (
        "import json, dashboard_project.settings as s; "
        "print(json.dumps([str(source) for source in s.SECURE_CSP['img-src']]))"
    )
    base = {"PATH": os.environ["PATH"], "READ_DOT_ENV": "false", "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=base | {"DEBUG": "true"} | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout)


def test_the_policy_allows_images_from_exactly_the_chosen_hosts(tmp_path):
    assert img_src(tmp_path) == ["'self'"]
    assert img_src(tmp_path, DASHBOARD_IMAGE_HOSTS="images.example.com, CDN.example.net") == [
        "'self'",
        "https://images.example.com",
        "https://cdn.example.net",
    ]


@pytest.mark.parametrize(
    "hosts", ["https://images.example.com", "*.example.com", "a.example; script-src *", "a b"]
)
def test_an_image_host_that_is_not_a_host_name_stops_the_start(tmp_path, hosts):
    result = load_settings(tmp_path, DEBUG="true", DASHBOARD_IMAGE_HOSTS=hosts)
    assert result.returncode != 0
    assert "DASHBOARD_IMAGE_HOSTS" in result.stderr
