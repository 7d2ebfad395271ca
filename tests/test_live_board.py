"""The live board (/live/) and the conversation list's states, read from the event store.

The store is filled through real ingestion, as signed webhooks and API reads would fill it.
"""

from __future__ import annotations

import re

import pytest
import responses
from django.urls import reverse

from conversations import dom
from conversations.store import ingest
from tests.conftest import API
from tests.store_helpers import (
    api_conversation,
    app,
    event,
    forbid_upstream,
    membership,
    stamp,
    webhook,
)

LIVE = "CON-10000000-0000-4000-8000-000000000001"
ENDED = "CON-10000000-0000-4000-8000-000000000002"
DELETED = "CON-10000000-0000-4000-8000-000000000003"
WAITING = "CON-10000000-0000-4000-8000-000000000004"
UNKNOWN = "CON-10000000-0000-4000-8000-000000000005"
HALF = "CON-10000000-0000-4000-8000-000000000006"  # one of two members left: still live
M1 = "MEM-20000000-0000-4000-8000-000000000001"
M2 = "MEM-20000000-0000-4000-8000-000000000002"
U1 = "USR-30000000-0000-4000-8000-000000000001"
U2 = "USR-30000000-0000-4000-8000-000000000002"
HTMX = {"HTTP_HX_REQUEST": "true"}

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_upstream(monkeypatch):
    forbid_upstream(monkeypatch)


def board_ids(html: str) -> list[str]:
    return re.findall(r'<tr class="live-row" data-conversation="([^"]+)"', html)


def world() -> None:
    """One conversation in each state."""
    api_conversation(LIVE, "live_call", "Live call")
    webhook(membership(LIVE, 1, "joined", M1, U1, "agent-7", "phone"))
    webhook(membership(LIVE, 2, "joined", M2, U2, "caller", "sip"))
    webhook(event(LIVE, 3, "audio:dtmf", M2, {"digit": "5"}))

    api_conversation(HALF, "half_call")
    webhook(membership(HALF, 1, "joined", M1, U1, "agent-7", "app"))
    webhook(membership(HALF, 2, "joined", M2, U2, "caller", "phone"))
    webhook(membership(HALF, 3, "left", M2, U2, "caller", "phone"))

    api_conversation(ENDED, "ended_call")
    webhook(membership(ENDED, 1, "joined", M1, U1, "agent-7"))
    webhook(membership(ENDED, 2, "left", M1, U1, "agent-7"))

    api_conversation(DELETED, "deleted_call")
    webhook(membership(DELETED, 1, "joined", M1, U1, "agent-7"))
    ingest.mark_deleted_upstream(app(), DELETED)

    api_conversation(WAITING, "waiting_call")
    webhook(membership(WAITING, 1, "invited", M1, U1, "agent-7"))


# --- the board


def test_the_board_lists_exactly_the_live_conversations(staff_client, no_upstream):
    world()
    response = staff_client.get(reverse("conversations:live"))
    assert response.status_code == 200
    assert sorted(board_ids(response.content.decode())) == sorted([LIVE, HALF])


def test_each_row_says_who_is_in_it_and_what_happened_last(staff_client, no_upstream):
    world()
    html = staff_client.get(reverse("conversations:live")).content.decode()
    row = re.search(rf'data-conversation="{LIVE}".*?</tr>', html, re.S).group(0)
    assert reverse("conversations:detail", args=[LIVE]) in row  # a link to its page
    assert "live_call" in row and "Live call" in row
    assert "<strong>2</strong> (phone, sip)" in row
    assert "agent-7" in row and "caller" in row
    assert "<code>audio:dtmf</code>" in row
    assert stamp(0)[:16] in row  # started when the API says it was created, UTC
    half = re.search(rf'data-conversation="{HALF}".*?</tr>', html, re.S).group(0)
    assert "<strong>1</strong> (app)" in half and "caller" not in half


def test_rows_leave_when_the_last_member_leaves(staff_client, no_upstream):
    world()
    webhook(membership(LIVE, 4, "left", M1, U1, "agent-7", "phone"))
    assert LIVE in board_ids(staff_client.get(reverse("conversations:live")).content.decode())
    webhook(membership(LIVE, 5, "left", M2, U2, "caller", "sip"))
    region = staff_client.get(reverse("conversations:live"), **HTMX).content.decode()
    assert board_ids(region) == [HALF]


def test_events_out_of_order_follow_the_highest_id(staff_client, no_upstream):
    # The leave (id 2) arrives before the join (id 1): the conversation is not live.
    webhook(membership(LIVE, 2, "left", M1, U1, "agent-7"))
    webhook(membership(LIVE, 1, "joined", M1, U1, "agent-7"))
    assert board_ids(staff_client.get(reverse("conversations:live")).content.decode()) == []


def test_the_board_is_a_polling_region_and_its_fragment(staff_client, no_upstream):
    world()
    page = staff_client.get(reverse("conversations:live")).content.decode()
    assert f'id="{dom.LIVE_BOARD}"' in page and "data-poll" in page
    assert 'id="live-controls"' in page  # pause and "updated N s ago"
    region = staff_client.get(reverse("conversations:live"), **HTMX)
    html = region.content.decode()
    assert region.status_code == 200
    assert "<html" not in html and html.strip().startswith(f'<div id="{dom.LIVE_BOARD}"')
    assert f'hx-get="{reverse("conversations:live")}"' in html
    assert sorted(board_ids(html)) == sorted([LIVE, HALF])


def test_the_empty_board_says_so(staff_client, no_upstream):
    html = staff_client.get(reverse("conversations:live")).content.decode()
    assert "No conversation is live right now" in html
    assert board_ids(html) == []


def test_hostile_names_are_escaped_on_the_board(staff_client, no_upstream):
    hostile = "<script>alert(1)</script>"
    api_conversation(LIVE, hostile, hostile)
    webhook(membership(LIVE, 1, "joined", M1, U1, hostile, hostile))
    webhook(event(LIVE, 2, "custom:<b>x</b>", M1))
    html = staff_client.get(reverse("conversations:live")).content.decode()
    assert "<script>alert" not in html and "<b>x</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_navigation_offers_live_conversations_and_users(staff_client, no_upstream):
    html = staff_client.get(reverse("conversations:live")).content.decode()
    nav = re.search(r'<nav class="site-nav".*?</nav>', html, re.S).group(0)
    links = re.findall(r'<a href="([^"]+)">([^<]+)</a>', nav)
    assert links == [
        (reverse("conversations:live"), "Live"),
        (reverse("conversations:list"), "Conversations"),
        (reverse("conversations:users"), "Users"),
    ]


def test_the_board_is_staff_only(client, django_user_model, no_upstream):
    anonymous = client.get(reverse("conversations:live"))
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith(reverse("login"))
    user = django_user_model.objects.create_user("visitor", password="visitor-password-1")
    client.force_login(user)
    assert client.get(reverse("conversations:live")).status_code == 403


def test_the_board_reads_only_the_configured_application(staff_client, no_upstream):
    other = ingest.application("ffffffff-0000-4000-8000-000000000000")
    ingest.store_webhook(other, "jti-other", membership(LIVE, 1, "joined", M1, U1, "elsewhere"))
    html = staff_client.get(reverse("conversations:live")).content.decode()
    assert board_ids(html) == [] and "elsewhere" not in html


# --- the conversation list's states


@pytest.fixture
def upstream(api, use_client):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        use_client(api)
        yield mock


def api_list(*conversation_ids: str) -> dict:
    return {
        "page_size": 10,
        "_links": {"self": {"href": f"{API}/v1/conversations"}},
        "_embedded": {
            "conversations": [
                {"id": c, "name": f"name-{c[-1]}", "timestamp": {"created": stamp(0)}}
                for c in conversation_ids
            ]
        },
    }


def state_cells(html: str) -> dict[str, str]:
    rows = re.findall(r"<tr>\s*<td.*?</tr>", html, re.S)
    cells = {}
    for row in rows:
        conversation = re.search(r"CON-[0-9a-f-]+", row).group(0)
        last = re.findall(r"<td>(.*?)</td>", row, re.S)[-1]
        cells[conversation] = re.sub(r"<[^>]+>", "", last).strip()
    return cells


def test_the_list_shows_each_rows_state_from_the_store(staff_client, upstream):
    world()
    upstream.get(f"{API}/v1/conversations", json=api_list(LIVE, ENDED, DELETED, WAITING, UNKNOWN))
    html = staff_client.get(reverse("conversations:list")).content.decode()
    cells = state_cells(html)
    assert cells[LIVE] == "live"
    assert cells[ENDED].startswith("ended 2026-11-27")
    assert cells[DELETED].startswith("deleted upstream")
    assert cells[WAITING] == "waiting"
    assert cells[UNKNOWN] == "—"  # the store does not know it


@pytest.mark.parametrize(
    ("state", "expected"),
    [("live", {LIVE, HALF}), ("ended", {ENDED}), ("deleted", {DELETED})],
)
def test_the_list_filters_by_state_from_the_store(staff_client, upstream, state, expected):
    world()
    response = staff_client.get(reverse("conversations:list"), {"state": state})
    assert response.status_code == 200
    assert set(state_cells(response.content.decode())) == expected
    assert len(upstream.calls) == 0
    region = staff_client.get(reverse("conversations:list"), {"state": state}, **HTMX)
    assert set(state_cells(region.content.decode())) == expected
    assert "<html" not in region.content.decode()


def test_the_state_filter_pages(staff_client, upstream):
    for n in range(12):
        conversation = f"CON-40000000-0000-4000-8000-0000000000{n:02d}"
        webhook(membership(conversation, 1, "joined", M1, U1, "agent", "phone"))
    first = staff_client.get(reverse("conversations:list"), {"state": "live", "page_size": "10"})
    assert len(state_cells(first.content.decode())) == 10
    second = staff_client.get(first.context["next_url"])
    assert len(state_cells(second.content.decode())) == 2
    assert second.context["next_url"] is None and second.context["prev_url"]


@pytest.mark.parametrize("query", [{"state": "bogus"}, {"state": "live", "cursor": "zzz"}])
def test_a_bad_state_or_stored_cursor_is_refused(staff_client, upstream, query):
    response = staff_client.get(reverse("conversations:list"), query)
    assert response.status_code == 400
    assert len(upstream.calls) == 0


def test_the_board_refreshes_within_the_3_s_target(staff_client, no_upstream):
    html = staff_client.get(reverse("conversations:live")).content.decode()
    seconds = int(re.search(rf'id="{dom.LIVE_BOARD}"[^>]*hx-trigger="every (\d+)s', html).group(1))
    assert seconds <= 2
    assert f"Live: every {seconds} s" in html


def test_a_very_long_stored_name_is_clipped_on_the_board(staff_client, no_upstream):
    api_conversation(LIVE, "n" * 1000)
    webhook(membership(LIVE, 1, "joined", M1, U1, "u" * 1000))
    html = staff_client.get(reverse("conversations:live")).content.decode()
    assert "n" * 499 + "…" in html and "n" * 501 not in html
    assert "u" * 499 + "…" in html and "u" * 501 not in html


def test_the_board_costs_a_few_queries_however_many_are_live(
    staff_client, no_upstream, django_assert_max_num_queries
):
    for n in range(30):
        conversation = f"CON-50000000-0000-4000-8000-0000000000{n:02d}"
        webhook(membership(conversation, 1, "joined", M1, U1, "agent", "phone"))
        webhook(membership(conversation, 2, "joined", M2, U2, "caller", "sip"))
    staff_client.get(reverse("conversations:live"))
    # The session, the user, whether they set up a second factor (access.py), their permission
    # (the masking), and the board's own queries.
    with django_assert_max_num_queries(7):
        html = staff_client.get(reverse("conversations:live"), **HTMX).content.decode()
    assert len(board_ids(html)) == 30
