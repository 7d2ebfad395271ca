"""A conversation's pages read from the event store: no upstream read when the store has it, the
same page, tabs and panels as from the API, paging and filters on stored events, and the stored
history of a conversation the API no longer has.

The store is filled through real ingestion (store_webhook, store_events, record_api_conversation).
"""

from __future__ import annotations

import re

import pytest
import responses
from django.urls import reverse
from huey.contrib.djhuey import HUEY

from conversations import dom
from conversations.store import ingest, queries
from conversations.store.models import StoredEvent
from tests.conftest import API, sandbox_client
from tests.store_helpers import (
    api_conversation,
    app,
    event,
    forbid_upstream,
    membership,
    webhook,
)

CON = "CON-5a0c1e2d-3b4f-4a6b-8c7d-9e0f1a2b3c4d"
ALICE = "MEM-11111111-1111-4111-8111-111111111111"
BOB = "MEM-22222222-2222-4222-8222-222222222222"
USR_A = "USR-aaaaaaaa-1111-4111-8111-111111111111"
USR_B = "USR-bbbbbbbb-2222-4222-8222-222222222222"
HTMX = {"HTTP_HX_REQUEST": "true"}

pytestmark = pytest.mark.django_db


def url(name: str, *args: str) -> str:
    return reverse(f"conversations:{name}", args=[CON, *args])


def event_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr id="event-(\d+)"', html)]


@pytest.fixture
def no_upstream(monkeypatch):
    forbid_upstream(monkeypatch)


def fill(events: int = 25) -> None:
    """A live call: Alice and Bob joined, then text messages up to `events` in all."""
    api_conversation(CON, "support_call_7", "Support call")
    webhook(membership(CON, 1, "joined", ALICE, USR_A, "alice", "phone"))
    webhook(membership(CON, 2, "joined", BOB, USR_B, "bob", "app"))
    bodies = [
        event(CON, i, "message", ALICE, {"message_type": "text", "text": f"hello {i}"})
        for i in range(3, events + 1)
    ]
    ingest.store_events(app(), CON, bodies, StoredEvent.API)


def end_call(first_id: int = 26) -> None:
    webhook(membership(CON, first_id, "left", ALICE, USR_A, "alice", "phone"))
    webhook(membership(CON, first_id + 1, "left", BOB, USR_B, "bob", "app"))


# --- the page and its tabs


def test_the_page_comes_from_the_store_with_no_upstream_read(staff_client, no_upstream):
    fill()
    response = staff_client.get(url("detail"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "support_call_7" in html and "Support call" in html
    assert f'id="{dom.STORE_NOTE}"' in html and "events up to #25" in html
    # The members come whole (channel and times), and keep refreshing while the call lives.
    assert "alice" in html and "bob" in html
    assert "loading channel" not in html
    assert reverse("conversations:members_panel", args=[CON]) in html
    assert 'id="live-controls"' in html
    assert f'id="{dom.HISTORY_BANNER}"' not in html


def test_the_members_tab_fragment(staff_client, no_upstream):
    fill()
    response = staff_client.get(url("members"), **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html and f'id="{dom.TABS}"' in html
    assert "alice" in html and "phone" in html and "app" in html


def test_the_events_tab_pages_through_stored_events(staff_client, no_upstream):
    fill(25)
    first = staff_client.get(url("events"), {"page_size": "10"})
    assert first.status_code == 200
    assert event_ids(first.content.decode()) == list(range(25, 15, -1))
    older = first.context["events_next_url"]
    assert first.context["events_prev_url"] is None
    second = staff_client.get(older)
    assert event_ids(second.content.decode()) == list(range(15, 5, -1))
    last = staff_client.get(second.context["events_next_url"])
    assert event_ids(last.content.decode()) == [5, 4, 3, 2, 1]
    assert last.context["events_next_url"] is None
    # Back up again: "Newer" from the second page is the first page.
    newer = staff_client.get(second.context["events_prev_url"], **HTMX)
    assert event_ids(newer.content.decode()) == list(range(25, 15, -1))
    assert "<html" not in newer.content.decode()


def test_the_events_tab_oldest_first_and_filtered_by_type(staff_client, no_upstream):
    fill(25)
    ascending = staff_client.get(url("events"), {"order": "asc", "page_size": "10"})
    assert event_ids(ascending.content.decode()) == list(range(1, 11))
    following = staff_client.get(ascending.context["events_next_url"])
    assert event_ids(following.content.decode()) == list(range(11, 21))
    joined = staff_client.get(url("events"), {"event_type": "member:joined"})
    assert event_ids(joined.content.decode()) == [2, 1]


def test_each_event_row_shows_its_id_type_and_sender(staff_client, no_upstream):
    fill(5)
    html = staff_client.get(url("events")).content.decode()
    row = re.search(r'<tr id="event-5".*?</tr>', html, re.S).group(0)
    assert "<td>5</td>" in row and "<code>message</code>" in row
    assert "alice" in row and "hello 5" in row


def test_a_cursor_that_is_not_the_stores_is_refused(staff_client, no_upstream):
    fill(5)
    response = staff_client.get(url("events"), {"cursor": "abc123"})
    assert response.status_code == 400
    assert "does not belong to this conversation" in response.content.decode()


def test_a_huge_cursor_id_is_clamped_not_sent_to_the_database(staff_client, no_upstream):
    fill(5)
    response = staff_client.get(url("events"), {"cursor": "b9999999999"})
    assert response.status_code == 200
    assert event_ids(response.content.decode()) == [5, 4, 3, 2, 1]


# --- the panels


def test_the_events_poll_reads_the_store(staff_client, no_upstream):
    fill(20)
    response = staff_client.get(url("events_poll"), {"after": "18"}, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert event_ids(html) == [20, 19]  # newest first, as the tab shows them
    assert "after=20" in html  # the poller asks after the new newest next time
    nothing = staff_client.get(url("events_poll"), {"after": "20"}, **HTMX)
    assert nothing.status_code == 204
    webhook(event(CON, 21, "message", BOB, {"message_type": "text", "text": "new"}))
    added = staff_client.get(url("events_poll"), {"after": "20", "order": "asc"}, **HTMX)
    assert event_ids(added.content.decode()) == [21]


def test_a_huge_poll_id_is_clamped(staff_client, no_upstream):
    fill(3)
    response = staff_client.get(url("events_poll"), {"after": str(2**53)}, **HTMX)
    assert response.status_code == 204


def test_the_header_and_members_panel_read_the_store(staff_client, no_upstream):
    fill(3)
    header = staff_client.get(url("header"), **HTMX)
    assert header.status_code == 200
    assert "support_call_7" in header.content.decode()
    assert "ACTIVE" in header.content.decode()
    panel = staff_client.get(url("members_panel"), **HTMX)
    assert panel.status_code == 200
    assert "alice" in panel.content.decode() and "data-poll" in panel.content.decode()


def test_once_everyone_left_the_panels_take_their_last_look_and_stop(staff_client, no_upstream):
    fill(25)
    end_call(26)
    header = staff_client.get(url("header"), **HTMX)
    assert header.status_code == 286  # stop polling, and tell the others
    assert dom.CONVERSATION_OVER in header["HX-Trigger-After-Swap"]
    assert "INACTIVE" in header.content.decode()
    poll = staff_client.get(url("events_poll"), {"after": "25", "over": "1"}, **HTMX)
    assert poll.status_code == 286
    assert event_ids(poll.content.decode()) == [27, 26]
    panel = staff_client.get(url("members_panel"), {"over": "1"}, **HTMX)
    assert panel.status_code == 286
    page = staff_client.get(url("events")).content.decode()
    assert 'id="live-controls"' not in page and f'id="{dom.EVENTS_POLLER}"' not in page


# --- history: a conversation the API no longer has


def test_a_conversation_deleted_upstream_keeps_its_pages(staff_client, no_upstream):
    fill(25)
    ingest.mark_deleted_upstream(app(), CON)
    for name in ("detail", "members", "events"):
        response = staff_client.get(url(name), {"page_size": "100"} if name == "events" else {})
        html = response.content.decode()
        assert response.status_code == 200, name
        assert f'id="{dom.HISTORY_BANNER}"' in html and "From the stored history" in html
        assert "deleted from the Conversation API" in html
        assert 'id="live-controls"' not in html  # nothing polls
    assert event_ids(html) == list(range(25, 0, -1))  # every stored event
    header = staff_client.get(url("header"), **HTMX)
    assert header.status_code == 286 and "From the stored history" in header.content.decode()


def test_a_conversation_deleted_event_marks_the_history(staff_client, no_upstream):
    fill(3)
    webhook(event(CON, 4, "conversation:deleted"))
    html = staff_client.get(url("events")).content.decode()
    assert "From the stored history" in html
    assert event_ids(html) == [4, 3, 2, 1]


@pytest.fixture
def upstream(api, use_client):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        use_client(api)
        yield mock


def test_a_conversation_the_api_does_not_find_but_the_store_knows(staff_client, upstream):
    """Known from a list scan (no events yet), then gone upstream: its pages stay, from history."""
    api_conversation(CON, "known_call")
    upstream.get(f"{API}/v1/conversations/{CON}", status=404, json={"title": "Not found"})
    upstream.get(f"{API}/v1/conversations/{CON}/members", status=404, json={})
    upstream.get(f"{API}/v1/conversations/{CON}/events", status=404, json={})
    response = staff_client.get(url("detail"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "known_call" in html and "no longer finds this conversation" in html
    header = staff_client.get(url("header"), **HTMX)
    assert header.status_code == 286 and "From the stored history" in header.content.decode()
    poll = staff_client.get(url("events_poll"), {"after": "0"}, **HTMX)
    assert poll.status_code == 286


def test_an_unknown_conversation_still_reads_the_api(staff_client, upstream):
    upstream.get(f"{API}/v1/conversations/{CON}", status=404, json={"title": "Not found"})
    upstream.get(f"{API}/v1/conversations/{CON}/members", status=404, json={})
    assert staff_client.get(url("detail")).status_code == 404
    assert len(upstream.calls) >= 1


# --- hostile stored data, access


HOSTILE = '<script>alert("x")</script>'


def test_hostile_strings_in_stored_bodies_are_escaped(staff_client, no_upstream):
    api_conversation(CON, HOSTILE, HOSTILE)
    webhook(membership(CON, 1, "joined", ALICE, USR_A, HOSTILE, HOSTILE))
    webhook(event(CON, 2, "message", ALICE, {"message_type": "text", "text": HOSTILE}))
    webhook(event(CON, 3, HOSTILE.replace(" ", "")[:90], ALICE, {"x": HOSTILE}))
    for name in ("detail", "events"):
        html = staff_client.get(url(name)).content.decode()
        assert "<script>alert" not in html, name
        assert "&lt;script&gt;" in html
    poll = staff_client.get(url("events_poll"), {"after": "0"}, **HTMX).content.decode()
    assert "<script>alert" not in poll and "&lt;script&gt;" in poll


def test_a_stored_body_the_parser_refuses_still_shows_its_row(staff_client, no_upstream):
    fill(2)
    # An API page item whose body is not the shape of an event (from_user is not an object).
    ingest.store_events(
        app(), CON, [{"id": 3, "type": "custom:odd", "_embedded": {"from_user": "x"}}], "api"
    )
    html = staff_client.get(url("events")).content.decode()
    assert event_ids(html) == [3, 2, 1]
    assert "<code>custom:odd</code>" in html


@pytest.mark.parametrize("name", ["detail", "members", "events", "header", "members_panel"])
def test_stored_pages_are_staff_only(client, django_user_model, no_upstream, name):
    fill(3)
    anonymous = client.get(url(name))
    assert anonymous.status_code == 302 and anonymous["Location"].startswith(reverse("login"))
    user = django_user_model.objects.create_user("visitor", password="visitor-password-1")
    client.force_login(user)
    assert client.get(url(name)).status_code == 403


# --- a member's page and a user's page


def test_a_members_page_comes_from_the_store(staff_client, no_upstream):
    fill(3)
    response = staff_client.get(url("member", ALICE))
    assert response.status_code == 200
    html = response.content.decode()
    assert "alice" in html and "JOINED" in html and "phone" in html
    assert f'id="{dom.STORE_NOTE}"' in html
    assert (
        staff_client.get(url("member", "MEM-99999999-9999-4999-8999-999999999999")).status_code
        == 404
    )


def test_a_members_page_of_a_deleted_conversation(staff_client, no_upstream):
    fill(3)
    ingest.mark_deleted_upstream(app(), CON)
    html = staff_client.get(url("member", BOB)).content.decode()
    assert "From the stored history" in html and "bob" in html


def test_a_users_page_lists_the_stored_conversations_they_were_in(staff_client, upstream):
    fill(3)
    user_url = reverse("conversations:user", args=[USR_A])
    upstream.get(f"{API}/v1/users/{USR_A}", json={"id": USR_A, "name": "alice"})
    upstream.get(f"{API}/v1/users/{USR_A}/conversations", json={"page_size": 25, "_links": {}})
    upstream.get(f"{API}/v1/users/{USR_A}/sessions", json={"page_size": 25, "_links": {}})
    html = staff_client.get(user_url).content.decode()
    section = re.search(rf'id="{dom.USER_MEMBERSHIPS}".*?</table>', html, re.S).group(0)
    assert "Support call" in section and "live" in section and "phone" in section
    assert reverse("conversations:member", args=[CON, ALICE]) in section


def test_a_user_the_api_forgot_keeps_a_page_from_the_store(staff_client, upstream):
    fill(3)
    user_url = reverse("conversations:user", args=[USR_B])
    for path in ("", "/conversations", "/sessions"):
        upstream.get(f"{API}/v1/users/{USR_B}{path}", status=404, json={"title": "Not found"})
    response = staff_client.get(user_url)
    assert response.status_code == 200
    html = response.content.decode()
    assert "From the stored history" in html and "bob" in html and "Support call" in html
    assert "Not found" not in html
    nobody = reverse("conversations:user", args=["USR-99999999-9999-4999-8999-999999999999"])
    upstream.get(f"{API}/v1/users/USR-99999999-9999-4999-8999-999999999999", status=404, json={})
    assert staff_client.get(nobody).status_code == 404


def test_a_users_page_refreshed_while_the_api_is_down_still_shows_the_store(staff_client, upstream):
    # The page's live region (#user-live) fetches the page again on a stream notice; htmx swaps
    # only a 2xx, so that answer is a 200 with its banners (marked degraded), unlike the page's.
    fill(3)
    user_url = reverse("conversations:user", args=[USR_A])
    for path in ("", "/conversations", "/sessions"):
        upstream.get(f"{API}/v1/users/{USR_A}{path}", status=500, json={"title": "Broken"})
    assert staff_client.get(user_url).status_code == 503
    response = staff_client.get(user_url, **HTMX)
    assert response.status_code == 200
    assert response["X-Dashboard-Degraded"] == "1"
    html = response.content.decode()
    section = re.search(rf'id="{dom.USER_MEMBERSHIPS}".*?</table>', html, re.S).group(0)
    assert "Support call" in section and "phone" in section
    assert "Couldn&#x27;t load the user." in html


# --- against the sandbox: a stored conversation costs no upstream request


def test_viewing_a_stored_conversation_sends_no_request_to_the_sandbox(
    staff_client, sandbox, use_client
):
    import requests

    from tests.conftest import sandbox_client

    conversation = next(
        c
        for c in sandbox.world.conversations()
        if c.state == "ACTIVE" and c.members and len(c.events) > 3
    )
    con = conversation.id
    base = f"{sandbox.base_url}/v1/conversations/{con}"
    headers = sandbox.auth_headers()
    ingest.record_api_conversation(app(), requests.get(base, headers=headers, timeout=5).json())
    events = requests.get(f"{base}/events?page_size=100", headers=headers, timeout=5).json()
    items = events["_embedded"]
    items = items["events"] if isinstance(items, dict) else items
    assert ingest.store_events(app(), con, items, StoredEvent.API) == len(items)
    member = conversation.members[0].id

    use_client(sandbox_client(sandbox))
    sandbox.reset_stats()
    pages = [
        (reverse("conversations:detail", args=[con]), {}),
        (reverse("conversations:events", args=[con]), {}),
        (reverse("conversations:events", args=[con]), HTMX),
        (reverse("conversations:header", args=[con]), HTMX),
        (reverse("conversations:members_panel", args=[con]), HTMX),
        (reverse("conversations:events_poll", args=[con]) + "?after=1", HTMX),
        (reverse("conversations:member", args=[con, member]), {}),
    ]
    for page, extra in pages:
        response = staff_client.get(page, **extra)
        assert response.status_code in (200, 286), page
    assert sandbox.stats()["requests"] == 0, sandbox.stats()["by_path"]
    html = staff_client.get(reverse("conversations:events", args=[con])).content.decode()
    assert set(event_ids(html)) >= {
        i["id"] if isinstance(i["id"], int) else int(i["id"]) for i in items[-25:]
    }


def test_a_members_page_shows_what_its_membership_events_say(staff_client, no_upstream):
    fill(2)
    joined = membership(
        CON, 3, "joined", "MEM-33333333-3333-4333-8333-333333333333", USR_B, "carol"
    )
    joined["body"] |= {
        "media": {"audio_settings": {"enabled": True, "muted": False, "earmuffed": False}},
        "initiator": {"joined": {"is_system": False, "member_id": ALICE}},
    }
    webhook(joined)
    html = staff_client.get(
        url("member", "MEM-33333333-3333-4333-8333-333333333333")
    ).content.decode()
    media = re.search(r"<h2>Media</h2>.*?</dl>", html, re.S).group(0)
    assert "<dd>yes</dd>" in media and "<dd>no</dd>" in media
    assert "joined:" in html and reverse("conversations:member", args=[CON, ALICE]) in html


def test_a_stored_page_costs_a_few_queries_whatever_its_size(
    staff_client, no_upstream, django_assert_max_num_queries
):
    fill(120)
    staff_client.get(url("events"))  # the session and user, once
    for name, query, extra in [
        ("detail", {}, {}),
        ("events", {"page_size": "100"}, {}),
        ("events", {}, HTMX),
        ("header", {}, HTMX),
        ("members_panel", {}, HTMX),
        ("events_poll", {"after": "1"}, HTMX),
    ]:
        # The session, the user, the second-factor and personal-data checks (one each), the
        # store's reads (three at most), and an audit entry when the look is new (with its
        # savepoint and release, in a test).
        with django_assert_max_num_queries(10):
            assert staff_client.get(url(name), query, **extra).status_code == 200


def test_the_page_says_when_stored_events_have_a_gap(staff_client, no_upstream):
    fill(5)
    assert "have not arrived yet" not in staff_client.get(url("detail")).content.decode()
    webhook(event(CON, 9, "message", ALICE, {"message_type": "text", "text": "late"}))
    html = staff_client.get(url("events")).content.decode()
    assert "events up to #9" in html and "have not arrived yet" in html
    assert event_ids(html) == [9, 5, 4, 3, 2, 1]


def test_a_gap_filled_later_redraws_the_events_tab_in_order(staff_client, no_upstream):
    fill(5)
    webhook(event(CON, 9, "message", ALICE, {"message_type": "text", "text": "late"}))
    page = staff_client.get(url("events"), {"page_size": "10"})
    poller = re.search(rf'id="{dom.EVENTS_POLLER}"[^>]*hx-get="([^"]+)"', page.content.decode())
    poll = poller.group(1).replace("&amp;", "&")
    assert "gap=5" in poll and "after=9" in poll and "page_size=10" in poll
    assert staff_client.get(poll, **HTMX).status_code == 204  # nothing yet
    filled = [
        event(CON, i, "message", ALICE, {"message_type": "text", "text": f"filled {i}"})
        for i in (6, 7, 8)
    ]
    ingest.store_events(app(), CON, filled, StoredEvent.API)  # as the reconciler would
    redrawn = staff_client.get(poll, **HTMX)
    html = redrawn.content.decode()
    assert redrawn.status_code == 200
    assert redrawn["HX-Retarget"] == f"#{dom.TABS}" and redrawn["HX-Reswap"] == "outerHTML"
    assert html.lstrip().startswith(f'<div id="{dom.TABS}"')
    assert event_ids(html) == [9, 8, 7, 6, 5, 4, 3, 2, 1]
    assert "gap=" not in html and "after=9" in html


def test_a_page_without_a_gap_polls_without_one(staff_client, no_upstream):
    fill(5)
    html = staff_client.get(url("events")).content.decode()
    assert "gap=" not in html


# The task runs as the worker runs it, closing its database connection at the end (djhuey's
# db_task): outside a test transaction, which that would end.
@pytest.mark.django_db(transaction=True)
def test_a_conversation_read_from_the_api_is_queued_for_storing_then_read_from_the_store(
    staff_client, sandbox, use_client
):
    """The API (then stored): the page asks the worker to store what it had to read upstream;
    once stored, its next view reads the store alone."""
    use_client(sandbox_client(sandbox))
    HUEY.flush()
    conversation_id = sandbox.world.conversations()[0].id
    assert staff_client.get(f"/conversations/{conversation_id}/").status_code == 200
    queued = [task for task in HUEY.pending() if task.name.endswith("store_conversation")]
    assert [task.args for task in queued] == [(conversation_id,)]

    # A poll of the same page (an htmx region request) queues nothing more.
    staff_client.get(f"/conversations/{conversation_id}/", headers={"HX-Request": "true"})
    assert len(HUEY.pending()) == 1

    HUEY.execute(queued[0])  # what the worker does
    stored = queries.find(conversation_id)
    assert stored is not None and stored.last_event_id > 0
    sandbox.reset_stats()
    assert staff_client.get(f"/conversations/{conversation_id}/events/").status_code == 200
    assert sandbox.stats()["requests"] == 0
    HUEY.flush()
