"""The sandbox's hostile corpus, placed in every string field, renders escaped on every page."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from sandbox import hostile
from tests.conftest import sandbox_client

MARKUP = [p for p in hostile.PAYLOADS if "<" in p or '"' in p]


@pytest.fixture
def hostile_pages(sandbox, use_client, staff_client):
    use_client(sandbox_client(sandbox))
    world = sandbox.world
    conversation = world.conversation(world.hostile_conversation_id)
    con = conversation.id
    pages = {
        "list": reverse("conversations:list") + "?page_size=100",
        "detail": reverse("conversations:detail", args=[con]),
        "events": reverse("conversations:events", args=[con]) + "?page_size=100",
        "events poll": reverse("conversations:events_poll", args=[con]) + "?after=0",
        "members panel": reverse("conversations:members_panel", args=[con]),
        "header poll": reverse("conversations:header", args=[con]),
        "events tab swap": reverse("conversations:events", args=[con]),
        "users": reverse("conversations:users") + "?page_size=100",
        "user": reverse("conversations:user", args=[world.hostile_user_id]),
    }
    for member in conversation.members:
        pages[f"member {member.id}"] = reverse("conversations:member", args=[con, member.id])
    responses = {}
    htmx = {"events poll", "members panel", "header poll", "events tab swap"}
    for name, url in pages.items():
        headers = {"HTTP_HX_REQUEST": "true"} if name in htmx else {}
        response = staff_client.get(url, **headers)
        assert response.status_code in (200, 286), name  # 286: a final look at an ended one
        responses[name] = response.content.decode()
    return responses


@pytest.mark.django_db
def test_the_corpus_reaches_the_pages(hostile_pages):
    """Guard for the test below: the payloads are really there (escaped)."""
    everything = "\n".join(hostile_pages.values())
    assert "&lt;script&gt;" in everything
    assert "&lt;img" in everything or "&lt;svg" in everything


@pytest.mark.django_db
def test_no_payload_renders_unescaped(hostile_pages):
    assert MARKUP, "the corpus has markup payloads"
    for name, html in hostile_pages.items():
        for payload in MARKUP:
            assert payload not in html, f"{name} renders {payload!r} raw"


@pytest.mark.django_db
def test_no_script_or_data_url_becomes_a_link_or_an_image(hostile_pages):
    for name, html in hostile_pages.items():
        for attribute, value in re.findall(r'\s(href|src|action|hx-get)="([^"]*)"', html):
            lowered = re.sub(r"[\s\x00-\x1f]", "", value).lower()
            assert not lowered.startswith(("javascript:", "data:", "vbscript:")), (
                f"{name}: {attribute}={value!r}"
            )
        assert "<script>alert" not in html
