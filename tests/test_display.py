"""Fault 5 (display): no upstream string makes a page huge. Every displayed string is cut with "…"
(display.TEXT_LIMIT), and the raw JSON view, where the full values are, is itself cut with a note
(display.JSON_LIMIT)."""

from __future__ import annotations

import copy

import pytest
import responses
from django.urls import reverse

from conversations import display
from conversations.schema import Conversation, Event, Page, UserRef
from tests.conftest import API, fixture
from tests.test_views import CON, MEM, USR, con_url, detail_mocks, events_page

MEGABYTE_NAME = "N" * 1_000_000
HUGE_DATA = {f"key{i}": "v" * 1000 for i in range(2000)}  # about 2 MB of JSON


@pytest.fixture
def upstream(api, use_client):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        use_client(api)
        yield mock


def hostile_conversation() -> dict:
    conversation = copy.deepcopy(fixture("conversation.json"))
    conversation["name"] = MEGABYTE_NAME
    conversation["display_name"] = "D" * 1_000_000
    conversation["properties"]["custom_data"] = HUGE_DATA
    return conversation


# --- the pages


@pytest.mark.django_db
def test_a_megabyte_name_and_huge_custom_data_make_a_small_conversation_page(
    staff_client, upstream
):
    detail_mocks(upstream, hostile_conversation())
    response = staff_client.get(reverse("conversations:detail", args=[CON]))
    html = response.content.decode()
    assert response.status_code == 200
    assert len(html) < 200_000, f"{len(html):,} characters"
    assert "N" * (display.TEXT_LIMIT - 1) + "…" in html, "the name, cut with an ellipsis"
    assert "N" * display.TEXT_LIMIT not in html
    assert "cut here" in html, "the custom data's JSON says it was cut"


@pytest.mark.django_db
def test_a_megabyte_name_makes_a_small_list_page(staff_client, upstream):
    page = copy.deepcopy(fixture("conversations_page.json"))
    for item in page["_embedded"]["conversations"]:
        item["name"] = MEGABYTE_NAME
        item["display_name"] = MEGABYTE_NAME
    upstream.get(f"{API}/v1/conversations", json=page)
    html = staff_client.get(reverse("conversations:list")).content.decode()
    assert len(html) < 100_000, f"{len(html):,} characters"
    assert "N" * (display.TEXT_LIMIT - 1) + "…" in html


@pytest.mark.django_db
def test_a_huge_event_shows_a_short_row_and_a_capped_raw_view(staff_client, upstream):
    detail_mocks(upstream)
    page = events_page(5)
    page["_embedded"][0]["type"] = "custom:" + "t" * 1_000_000
    page["_embedded"][0]["body"] = {"text": "x" * 1_000_000, "data": HUGE_DATA}
    upstream.get(con_url("/events"), json=page)
    html = staff_client.get(reverse("conversations:events", args=[CON])).content.decode()
    assert len(html) < 200_000, f"{len(html):,} characters"
    assert "t" * display.TEXT_LIMIT not in html, "the type is cut"
    assert "cut here" in html, "the raw JSON says it was cut"


@pytest.mark.django_db
def test_huge_member_and_user_records_make_small_pages(staff_client, upstream):
    member = copy.deepcopy(fixture("member.json"))
    member["_embedded"]["user"]["display_name"] = MEGABYTE_NAME
    member["channel"]["to"] = {"type": "phone", "number": "4" * 1_000_000}
    member["channel"]["cpa"] = {"x": "y" * 1_000_000}
    upstream.get(con_url(f"/members/{MEM}"), json=member)
    upstream.get(con_url(), json=hostile_conversation())
    html = staff_client.get(reverse("conversations:member", args=[CON, MEM])).content.decode()
    assert len(html) < 200_000, f"member page: {len(html):,} characters"

    user = copy.deepcopy(fixture("user.json"))
    user["name"] = MEGABYTE_NAME
    user["properties"] = {"custom_data": HUGE_DATA}
    upstream.get(f"{API}/v1/users/{USR}", json=user)
    for path in ("/conversations", "/sessions"):
        upstream.get(f"{API}/v1/users/{USR}{path}", json={"_links": {}})
    html = staff_client.get(reverse("conversations:user", args=[USR])).content.decode()
    assert len(html) < 200_000, f"user page: {len(html):,} characters"


@pytest.mark.django_db
def test_an_overlong_upstream_cursor_is_not_linked(staff_client, upstream):
    page = copy.deepcopy(fixture("conversations_page.json"))
    page["_links"]["next"] = {"href": f"{API}/v1/conversations?cursor={'c' * 1_000_000}"}
    upstream.get(f"{API}/v1/conversations", json=page)
    html = staff_client.get(reverse("conversations:list")).content.decode()
    assert len(html) < 100_000
    assert 'rel="next"' not in html, "a link the cursor form would refuse leads nowhere"


# --- the one place that cuts


def test_shown_cuts_every_string_field_of_nested_records_and_keeps_the_raw_payload():
    raw = {"name": MEGABYTE_NAME}
    event = Event(
        id=1,
        type="t" * 1000,
        from_="MEM-1",
        body=raw,
        from_user=UserRef(id="USR-1", name=MEGABYTE_NAME),
        raw=raw,
    )
    page = Page(items=[event], next_cursor="c" * 1000)
    shown = display.shown(page)
    item = shown.items[0]
    assert len(item.type) == display.TEXT_LIMIT and item.type.endswith("…")
    assert len(item.from_user.name) == display.TEXT_LIMIT
    assert item.raw is raw and item.body is raw, "the raw payload stays whole"
    assert shown.next_cursor == page.next_cursor, "a cursor is opaque: never cut"


def test_shown_copies_nothing_when_nothing_is_long():
    conversation = Conversation(id="CON-1", name="short", custom_data={"a": 1})
    page = Page(items=[conversation])
    assert display.shown(page) is page


def test_json_view_is_cut_with_a_note_that_says_how_big_the_whole_is():
    text = display.json_view(HUGE_DATA)
    assert len(text) < display.JSON_LIMIT + 200
    assert text.endswith("KiB shown.") and "cut here" in text
    assert display.json_view({"a": 1}) == '{\n  "a": 1\n}'
