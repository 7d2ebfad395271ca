"""Around the pages: the favicon, and the 404 page (one heading, and the search box for staff)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from tests.conftest import sandbox_client

UNKNOWN_CONVERSATION = "CON-00000000-0000-4000-8000-000000000000"


@pytest.fixture
def on_sandbox(sandbox, use_client):
    return use_client(sandbox_client(sandbox))


def headings(html: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", h).strip() for h in re.findall(r"<h1\b.*?</h1>", html, re.S)]


def has_jump_box(html: str) -> bool:
    return f'action="{reverse("conversations:search")}"' in html


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "head"])
def test_favicon_ico_leads_to_an_icon_that_is_served(client, method):
    response = getattr(client, method)("/favicon.ico")
    assert response.status_code == 302
    icon = client.get(response["Location"])
    body = b"".join(icon.streaming_content)
    icon.close()  # whitenoise streams the file
    assert icon.status_code == 200
    assert icon["Content-Type"].startswith("image/svg+xml")
    assert body.lstrip().startswith(b"<svg")


@pytest.mark.django_db
def test_every_page_names_its_icon(client, staff_user, on_sandbox):
    icons = []
    for path in ("/login/", "/nowhere/"):
        html = client.get(path).content.decode()
        icons += re.findall(r'<link rel="icon" href="([^"]+)"', html)
    client.force_login(staff_user)
    html = client.get(reverse("conversations:list")).content.decode()
    icons += re.findall(r'<link rel="icon" href="([^"]+)"', html)
    assert len(icons) == 3
    for href in set(icons):
        icon = client.get(href)
        icon.close()
        assert icon.status_code == 200


@pytest.mark.django_db
def test_an_unknown_conversation_has_one_heading_and_the_jump_box(staff_client, on_sandbox):
    response = staff_client.get(reverse("conversations:detail", args=[UNKNOWN_CONVERSATION]))
    assert response.status_code == 404
    html = response.content.decode()
    assert headings(html) == ["Conversation not found"]
    assert UNKNOWN_CONVERSATION in html
    assert has_jump_box(html)


@pytest.mark.django_db
def test_an_unknown_address_has_one_heading_and_the_jump_box_for_staff(staff_client):
    response = staff_client.get("/no/such/page/")
    assert response.status_code == 404
    html = response.content.decode()
    assert headings(html) == ["Page not found"]
    assert has_jump_box(html)


@pytest.mark.django_db
def test_an_unknown_address_offers_no_jump_box_to_strangers(client, django_user_model):
    assert not has_jump_box(client.get("/no/such/page/").content.decode())
    # Logged in without staff status: the jump box would only lead to "staff only".
    client.force_login(django_user_model.objects.create_user("visitor", password="x-password-1"))
    html = client.get("/no/such/page/").content.decode()
    assert headings(html) == ["Page not found"]
    assert not has_jump_box(html)


@pytest.mark.django_db
def test_the_staff_only_page_has_one_heading(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("visitor", password="x-password-1"))
    response = client.get(reverse("conversations:list"))
    assert response.status_code == 403
    assert headings(response.content.decode()) == ["Staff only"]
