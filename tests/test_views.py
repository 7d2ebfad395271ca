"""The pages against a `responses`-faked API: what each page shows, its htmx fragments, its errors.

The fault, hostile-data and browser tests run the same pages against the sandbox; these pin the
exact upstream requests and the exact failure modes.
"""

from __future__ import annotations

import copy
import json
import re

import pytest
import responses
from django.urls import reverse

from tests.conftest import API, fixture, make_client

CON = "CON-1b7f3c2e-5a8d-4e21-9c0f-7d6e5b4a3c21"
MEM = "MEM-0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
USR = "USR-9f8e7d6c-5b4a-4392-8170-6e5d4c3b2a19"

HTMX = {"HTTP_HX_REQUEST": "true"}


def htmx(target: str) -> dict[str, str]:
    return {**HTMX, "HTTP_HX_TARGET": target}


def header_url() -> str:
    return reverse("conversations:header", args=[CON])


def panel_url() -> str:
    return reverse("conversations:members_panel", args=[CON])


def poll_url() -> str:
    return reverse("conversations:events_poll", args=[CON])


@pytest.fixture
def upstream(api, use_client):
    """The views' client is `api`, talking to a `responses` mock that fails on unmatched URLs."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        use_client(api)
        yield mock


def con_url(path: str = "") -> str:
    return f"{API}/v1/conversations/{CON}{path}"


def events_page(*ids: int, next_cursor: str | None = None) -> dict:
    page = {
        "page_size": 10,
        "_links": {"self": {"href": con_url("/events")}},
        "_embedded": [
            {
                "id": i,
                "type": "message",
                "from": MEM,
                "timestamp": "2026-11-20T09:16:00.000Z",
                "body": {"message_type": "text", "text": f"hello number {i}"},
            }
            for i in ids
        ],
    }
    if next_cursor:
        page["_links"]["next"] = {"href": con_url(f"/events?cursor={next_cursor}")}
    return page


def detail_mocks(mock, conversation: dict | None = None) -> None:
    mock.get(con_url(), json=conversation or fixture("conversation.json"))
    mock.get(con_url("/members"), json=fixture("members_page.json"))


# --- access


PAGES = [
    reverse("conversations:live"),
    reverse("conversations:list"),
    reverse("conversations:detail", args=[CON]),
    reverse("conversations:members", args=[CON]),
    reverse("conversations:events", args=[CON]),
    reverse("conversations:member", args=[CON, MEM]),
    reverse("conversations:users"),
    reverse("conversations:user", args=[USR]),
    reverse("conversations:jump") + f"?id={CON}",
    reverse("conversations:header", args=[CON]),
    reverse("conversations:members_panel", args=[CON]),
    reverse("conversations:events_poll", args=[CON]) + "?after=1",
    "/",
]


@pytest.mark.django_db
@pytest.mark.parametrize("url", PAGES)
def test_anonymous_users_are_sent_to_the_login_page(client, upstream, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")
    assert len(upstream.calls) == 0


@pytest.mark.django_db
@pytest.mark.parametrize("url", PAGES)
def test_an_expired_session_polling_is_told_to_load_the_login_page(client, upstream, url):
    response = client.get(url, **htmx("results"))
    assert response.status_code == 200
    assert response["HX-Redirect"].startswith(reverse("login"))
    assert len(upstream.calls) == 0


@pytest.mark.django_db
@pytest.mark.parametrize("url", PAGES)
def test_logged_in_users_who_are_not_staff_get_403(client, django_user_model, upstream, url):
    user = django_user_model.objects.create_user("visitor", password="visitor-password-1")
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 403
    assert b"Staff only" in response.content
    assert len(upstream.calls) == 0


@pytest.mark.django_db
def test_inactive_staff_cannot_log_in(client, django_user_model):
    django_user_model.objects.create_user(
        "former", password="former-password-1", is_staff=True, is_active=False
    )
    response = client.post(
        reverse("login"), {"username": "former", "password": "former-password-1"}
    )
    assert response.status_code == 200  # the form again, with its error
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_staff_log_in_and_land_on_the_conversations(client, staff_user, upstream):
    upstream.get(f"{API}/v1/conversations", json=fixture("conversations_page.json"))
    response = client.post(
        reverse("login"), {"username": "staff", "password": "staff-password-1"}, follow=True
    )
    assert response.redirect_chain[-1][0] == reverse("conversations:list")
    assert b"Support call" in response.content


@pytest.mark.django_db
def test_staff_sent_to_log_in_from_the_home_url_land_on_the_live_board(
    client, staff_user, upstream
):
    login = client.get("/", follow=True).redirect_chain[-1][0]
    response = client.post(
        login, {"username": "staff", "password": "staff-password-1"}, follow=True
    )
    assert response.redirect_chain[-1][0] == reverse("conversations:live")
    assert b"No conversation is live right now" in response.content
    assert len(upstream.calls) == 0  # the board reads the event store only


@pytest.mark.django_db
def test_the_home_url_leads_to_the_live_board(staff_client, upstream):
    response = staff_client.get("/")
    assert response.status_code == 302
    assert response["Location"] == reverse("conversations:live")


@pytest.mark.django_db
def test_logout_is_a_post_and_ends_the_session(staff_client):
    assert staff_client.get(reverse("logout")).status_code == 405
    response = staff_client.post(reverse("logout"))
    assert response.status_code == 302
    assert staff_client.get(reverse("conversations:list")).status_code == 302


def test_healthz_needs_no_login(client):
    response = client.get("/healthz")
    assert response.status_code == 200


@pytest.mark.django_db
def test_pages_refuse_other_methods(staff_client, upstream):
    response = staff_client.post(reverse("conversations:list"))
    assert response.status_code == 405
    assert len(upstream.calls) == 0


# --- conversation list


@pytest.mark.django_db
def test_the_list_shows_conversations_with_links_and_paging(staff_client, upstream):
    upstream.get(f"{API}/v1/conversations", json=fixture("conversations_page.json"))
    response = staff_client.get(reverse("conversations:list"))
    assert response.status_code == 200
    html = response.content.decode()
    assert reverse("conversations:detail", args=[CON]) in html
    assert "Support call" in html
    request = upstream.calls[0].request
    assert "page_size=25" in request.url
    assert 'id="results"' in html and "data-poll" in html  # the first page stays live
    next_link = re.search(r'href="([^"]*cursor=[^"]*)"[^>]*rel="next"', html)
    assert next_link, "a next-page link with the upstream cursor"


@pytest.mark.django_db
def test_the_list_follows_the_cursor_and_stops_polling_off_the_first_page(staff_client, upstream):
    upstream.get(f"{API}/v1/conversations", json=fixture("conversations_page.json"))
    response = staff_client.get(reverse("conversations:list") + "?cursor=abc123")
    assert "cursor=abc123" in upstream.calls[0].request.url
    assert "data-poll" not in response.content.decode().split('id="results"')[1].split(">")[0]


@pytest.mark.django_db
def test_the_list_passes_its_filters_upstream(staff_client, upstream):
    upstream.get(f"{API}/v1/conversations", json=fixture("conversations_page.json"))
    response = staff_client.get(
        reverse("conversations:list"),
        {"date_start": "2026-11-01T00:00", "order": "desc", "page_size": "50"},
    )
    assert response.status_code == 200
    url = upstream.calls[0].request.url
    assert "order=desc" in url and "page_size=50" in url
    # The API reads a time without a zone as its own: the filter says UTC, so it sends the Z.
    assert "date_start=2026-11-01T00%3A00%3A00Z" in url


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    [
        {"page_size": "1000"},
        {"page_size": "ten"},
        {"order": "sideways"},
        {"date_start": "yesterday"},
        {"date_start": "2026-11-02T00:00", "date_end": "2026-11-01T00:00"},
        {"cursor": "x" * 5000},
        {"backoff": "-1"},
    ],
)
def test_bad_list_parameters_are_a_400_with_no_upstream_call(staff_client, upstream, query):
    response = staff_client.get(reverse("conversations:list"), query)
    assert response.status_code == 400
    assert b"problem-banner" in response.content or b"errornote" in response.content
    assert len(upstream.calls) == 0


@pytest.mark.django_db
def test_a_list_poll_gets_only_the_results_region(staff_client, upstream):
    upstream.get(f"{API}/v1/conversations", json=fixture("conversations_page.json"))
    response = staff_client.get(reverse("conversations:list"), **htmx("results"))
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="results"')
    assert "<html" not in html
    assert response["Vary"].count("HX-Request") == 1


@pytest.mark.django_db
def test_an_unavailable_api_gives_a_banner_and_a_503_page(staff_client, upstream, api):
    upstream.get(f"{API}/v1/conversations", status=503, json={"title": "Service Unavailable"})
    response = staff_client.get(reverse("conversations:list"))
    assert response.status_code == 503
    html = response.content.decode()
    assert "Couldn&#x27;t load the conversations" in html
    assert "unavailable" in html
    assert "Traceback" not in html


@pytest.mark.django_db
def test_a_failed_poll_keeps_the_last_good_list_and_backs_off(
    staff_client, upstream, key_pair, use_client
):
    use_client(make_client(key_pair[0], cache_seconds=0, max_retries=0))  # every read goes upstream
    upstream.get(f"{API}/v1/conversations", json=fixture("conversations_page.json"))
    staff_client.get(reverse("conversations:list"))
    upstream.replace(responses.GET, f"{API}/v1/conversations", status=500, json={})
    response = staff_client.get(reverse("conversations:list") + "?backoff=0", **htmx("results"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Support call" in html, "the last good data stays on screen"
    assert "problem-banner" in html
    assert "backoff=1" in html, "the next poll comes later"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("status", "words"),
    [
        (401, "refused the dashboard"),
        (403, "refused the dashboard"),
        (429, "rate limiting"),
        (500, "unavailable"),
    ],
)
def test_each_upstream_failure_has_its_own_message(staff_client, upstream, status, words):
    upstream.get(f"{API}/v1/conversations", status=status, json={"title": "x"})
    response = staff_client.get(reverse("conversations:list"))
    assert response.status_code == 503
    assert words in response.content.decode()


@pytest.mark.django_db
def test_a_malformed_response_is_reported_not_a_500(staff_client, upstream):
    upstream.get(f"{API}/v1/conversations", body="<html>gateway</html>", status=200)
    response = staff_client.get(reverse("conversations:list"))
    assert response.status_code == 503
    assert "could not read" in response.content.decode()


# --- conversation detail


@pytest.mark.django_db
def test_the_detail_page_shows_metadata_and_the_members_tab(staff_client, upstream):
    detail_mocks(upstream)
    response = staff_client.get(reverse("conversations:detail", args=[CON]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "support_call_0142" in html
    assert "T-4411" in html  # custom data
    assert re.search(r'id="tab-members"[^>]*aria-selected="true"', html.replace("\n", " "))
    assert reverse("conversations:member", args=[CON, MEM]) in html
    assert reverse("conversations:user", args=[USR]) in html
    assert 'id="conversation-header"' in html and "data-poll" in html


@pytest.mark.django_db
def test_the_members_panel_loads_each_members_record(staff_client, upstream):
    detail_mocks(upstream)
    upstream.get(con_url(f"/members/{MEM}"), json=fixture("member.json"))
    page = staff_client.get(reverse("conversations:detail", args=[CON])).content.decode()
    assert "loading channel and times" in page, "the page itself reads only the list"
    panel = re.search(r'<div id="members-panel"[^>]*>', page.replace("\n", " ")).group(0)
    assert 'hx-trigger="load"' in panel and f'hx-get="{panel_url()}"' in panel
    assert "data-poll" not in panel, "pausing live updates must not stop this one-off load"
    assert not any(f"/members/{MEM}" in call.request.url for call in upstream.calls)

    response = staff_client.get(panel_url(), **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="members-panel"')
    assert "loading channel and times" not in html
    assert "447700900" in html, "the member's channel, from its own record"
    assert 'hx-trigger="every' in html and "data-poll" in html, "then it refreshes, pausably"
    assert any(call.request.url == con_url(f"/members/{MEM}") for call in upstream.calls)


@pytest.mark.django_db
def test_a_member_whose_record_fails_keeps_its_list_row(staff_client, upstream):
    detail_mocks(upstream)
    upstream.get(con_url(f"/members/{MEM}"), status=503, json={})
    response = staff_client.get(panel_url(), **HTMX)
    assert response.status_code == 200
    assert MEM in response.content.decode()


@pytest.mark.django_db
def test_an_ended_conversation_still_loads_its_members_once(staff_client, upstream):
    ended = copy.deepcopy(fixture("conversation.json"))
    ended["state"] = "INACTIVE"
    detail_mocks(upstream, ended)
    page = staff_client.get(reverse("conversations:detail", args=[CON])).content.decode()
    panel = re.search(r'<div id="members-panel"[^>]*>', page.replace("\n", " ")).group(0)
    assert 'hx-trigger="load"' in panel and "data-poll" not in panel
    assert f'hx-get="{panel_url()}?over=1"' in panel, "its one look is its last"


@pytest.mark.django_db
def test_the_events_tab_is_a_real_url(staff_client, upstream):
    detail_mocks(upstream)
    upstream.get(con_url("/events"), json=events_page(7, 6, 5, next_cursor="older"))
    response = staff_client.get(reverse("conversations:events", args=[CON]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "hello number 7" in html
    assert re.search(r'id="tab-events"[^>]*aria-selected="true"', html.replace("\n", " "))
    events_call = next(c for c in upstream.calls if "/events" in c.request.url)
    assert "order=desc" in events_call.request.url
    assert "after=7" in html, "the poller asks for what comes after the newest event"
    assert "cursor=older" in html


@pytest.mark.django_db
def test_the_events_tab_filters_by_type_and_order_and_keeps_them_in_its_links(
    staff_client, upstream
):
    detail_mocks(upstream)
    upstream.get(con_url("/events"), json=events_page(1, 2, next_cursor="newer"))
    response = staff_client.get(
        reverse("conversations:events", args=[CON]),
        {"event_type": "member:joined", "order": "asc", "page_size": "10"},
    )
    html = response.content.decode().replace("&amp;", "&")
    url = next(c.request.url for c in upstream.calls if "/events" in c.request.url)
    assert "event_type=member%3Ajoined" in url and "order=asc" in url and "page_size=10" in url
    next_link = re.search(r'href="([^"]*cursor=newer[^"]*)"', html).group(1)
    assert "event_type=member%3Ajoined" in next_link and "order=asc" in next_link
    assert 'value="member:joined"' in html


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    [
        {"event_type": "x" * 101},
        {"event_type": "member:*"},
        {"event_type": "nonsense type"},
        {"event_type": "member:"},
        {"order": "up"},
        {"page_size": "7"},
    ],
)
def test_bad_events_filters_are_a_400_in_the_tab_with_the_page_kept(staff_client, upstream, query):
    detail_mocks(upstream)
    response = staff_client.get(reverse("conversations:events", args=[CON]), query)
    html = response.content.decode()
    assert response.status_code == 400
    assert "support_call_0142" in html, "the conversation stays on screen"
    banner = re.search(r'<div id="events-banner">(.*?)</div>\s*</div>', html, re.S).group(1)
    assert "problem-banner" in banner, "the reason is in the events tab"
    assert 'id="events-retry"' not in html and 'id="events-poller"' not in html
    assert not any("/events" in call.request.url for call in upstream.calls)


@pytest.mark.django_db
@pytest.mark.parametrize("event_type", ["member:*", "member:"])
def test_a_family_of_types_is_refused_with_a_sentence_that_says_so(
    staff_client, upstream, event_type
):
    detail_mocks(upstream)
    url = reverse("conversations:events", args=[CON])
    response = staff_client.get(url, {"event_type": event_type}, **htmx("tabs"))
    html = response.content.decode()
    assert response.status_code == 200, "htmx swaps the tab, with the reason in it"
    assert html.lstrip().startswith('<div id="tabs"')
    assert "one exact type" in html
    assert f'value="{event_type}"' in html, "what was typed stays in the box to fix"


@pytest.mark.django_db
def test_switching_tabs_swaps_only_the_tabs(staff_client, upstream):
    detail_mocks(upstream)
    upstream.get(con_url("/events"), json=events_page(3, 2, 1))
    response = staff_client.get(reverse("conversations:events", args=[CON]), **HTMX)
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="tabs"')
    assert "<html" not in html and "conversation-header" not in html
    assert "hello number 3" in html


@pytest.mark.django_db
def test_the_header_poll_reads_only_the_conversation(staff_client, upstream):
    detail_mocks(upstream)
    response = staff_client.get(header_url(), **HTMX)
    assert response.status_code == 200
    assert [c.request.url for c in upstream.calls] == [con_url()]
    assert response.content.decode().lstrip().startswith('<section id="conversation-header"')


@pytest.mark.django_db
def test_an_ended_conversation_stops_polling(staff_client, upstream):
    ended = copy.deepcopy(fixture("conversation.json"))
    ended["state"] = "INACTIVE"
    ended["timestamp"]["destroyed"] = "2026-11-20T09:30:00.000Z"
    detail_mocks(upstream, ended)
    response = staff_client.get(header_url(), **HTMX)
    assert response.status_code == 286
    # After the swap, so the flag the other panels send with their last request is in place.
    assert json.loads(response["HX-Trigger-After-Swap"]) == {"conversation-over": {}}
    html = response.content.decode()
    assert "data-poll" not in html
    assert re.search(
        r'<input id="conversation-over-flag" type="hidden" name="over" value="1">', html
    )
    page = staff_client.get(reverse("conversations:detail", args=[CON])).content.decode()
    assert "data-poll" not in page
    assert "live updates stopped" in page


@pytest.mark.django_db
def test_an_unknown_conversation_is_a_404_page(staff_client, upstream):
    upstream.get(
        con_url(),
        status=404,
        json={"title": "Not found.", "code": "conversation:error:not-found"},
    )
    upstream.get(con_url("/members"), status=404, json={"title": "Not found."})
    response = staff_client.get(reverse("conversations:detail", args=[CON]))
    assert response.status_code == 404
    assert CON in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/conversations/not-an-id/",
        "/conversations/CON-%3Cscript%3E/",
        "/conversations/CON-abc/members/MEM-../",
        "/users/USR-a%2Fb/",
        "/conversations/CON-abc",  # no trailing slash: APPEND_SLASH redirects, never 500
    ],
)
def test_malformed_ids_never_reach_the_api(staff_client, upstream, path):
    response = staff_client.get(path)
    assert response.status_code in (301, 404)
    assert len(upstream.calls) == 0


@pytest.mark.django_db
def test_members_failing_while_the_conversation_loads_shows_a_banner_in_the_tab(
    staff_client, upstream
):
    upstream.get(con_url(), json=fixture("conversation.json"))
    upstream.get(con_url("/members"), status=503, json={})
    response = staff_client.get(reverse("conversations:detail", args=[CON]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Couldn&#x27;t load the members" in html
    assert "support_call_0142" in html


# --- events polling contract


def poll(staff_client, after: int, **query):
    return staff_client.get(poll_url(), {"after": after, **query}, **HTMX)


@pytest.mark.django_db
def test_a_poll_with_nothing_new_is_204_and_one_small_read(staff_client, upstream):
    upstream.get(con_url("/events"), json={"page_size": 100, "_links": {}})
    response = poll(staff_client, 41)
    assert response.status_code == 204
    assert len(upstream.calls) == 1
    url = upstream.calls[0].request.url
    assert "start_id=42" in url and "order=asc" in url


@pytest.mark.django_db
def test_a_poll_with_new_events_returns_rows_and_moves_the_poller_on(staff_client, upstream):
    upstream.get(con_url("/events"), json=events_page(42, 43))
    upstream.get(con_url("/members"), json=fixture("members_page.json"))
    response = poll(staff_client, 41)
    html = response.content.decode()
    assert response.status_code == 200
    assert html.index('id="event-43"') < html.index('id="event-42"'), "newest first"
    assert "event-new" in html
    assert re.search(r'id="events-poller"[^>]*hx-get="[^"]*after=43', html)
    assert 'hx-swap-oob="true"' in html


@pytest.mark.django_db
def test_a_poll_in_oldest_first_order_appends(staff_client, upstream):
    upstream.get(con_url("/events"), json=events_page(42, 43))
    upstream.get(con_url("/members"), json=fixture("members_page.json"))
    html = poll(staff_client, 41, order="asc").content.decode()
    assert html.index('id="event-42"') < html.index('id="event-43"')
    assert 'hx-swap="beforeend"' in html


@pytest.mark.django_db
def test_a_failed_poll_shows_the_banner_and_slows_down(staff_client, upstream, settings):
    settings.DASHBOARD_REFRESH_SECONDS = 5
    upstream.get(con_url("/events"), status=429, headers={"Retry-After": "30"}, json={})
    response = poll(staff_client, 41)
    html = response.content.decode()
    assert response.status_code == 200
    assert "rate limiting" in html
    assert "every 30s" in html
    assert "backoff=1" in html


@pytest.mark.django_db
def test_a_poll_for_a_deleted_conversation_stops(staff_client, upstream):
    upstream.get(con_url("/events"), status=404, json={"title": "Not found."})
    assert poll(staff_client, 41).status_code == 286


@pytest.mark.django_db
def test_a_panel_asking_with_bad_parameters_reloads_its_page(staff_client, upstream):
    # htmx does not swap a 400; the page gives its panels good parameters again.
    for url, query in [
        (poll_url(), {"after": "x"}),
        (header_url(), {"backoff": "-1"}),
        (panel_url(), {"backoff": "99"}),
    ]:
        response = staff_client.get(url, query, **HTMX)
        assert response.status_code == 200
        assert response["HX-Refresh"] == "true"
        assert staff_client.get(url, query).status_code == 400, "without htmx, a 400 page"
    assert len(upstream.calls) == 0


# --- member and user pages


@pytest.mark.django_db
def test_the_member_page_shows_the_member_and_its_channel(staff_client, upstream):
    upstream.get(con_url(f"/members/{MEM}"), json=fixture("member.json"))
    upstream.get(con_url(), json=fixture("conversation.json"))
    response = staff_client.get(reverse("conversations:member", args=[CON, MEM]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Ana (agent)" in html
    assert "447700900" in html
    assert reverse("conversations:user", args=[USR]) in html


@pytest.mark.django_db
def test_the_user_page_shows_profile_conversations_and_sessions(staff_client, upstream):
    upstream.get(f"{API}/v1/users/{USR}", json=fixture("user.json"))
    upstream.get(
        f"{API}/v1/users/{USR}/conversations",
        json={
            "page_size": 25,
            "_embedded": {
                "conversations": [
                    {
                        "id": CON,
                        "name": "support_call_0142",
                        "state": "ACTIVE",
                        "_embedded": {"member": {"id": MEM, "state": "JOINED"}},
                    }
                ]
            },
            "_links": {"self": {"href": f"{API}/v1/users/{USR}/conversations"}},
        },
    )
    upstream.get(f"{API}/v1/users/{USR}/sessions", json=fixture("user_sessions.json"))
    response = staff_client.get(reverse("conversations:user", args=[USR]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Ana (agent)" in html
    assert reverse("conversations:detail", args=[CON]) in html
    assert "SES-6a5b4c3d-2e1f-4a0b-9c8d-7e6f5a4b3c2d" in html
    assert "sip:ana@example.com" in html
    assert "s3cret" not in html, "channel passwords are never shown"
    assert "javascript:" not in html, "an unsafe image URL is dropped"


@pytest.mark.django_db
def test_an_unknown_user_is_a_404_even_without_an_error_code(staff_client, upstream):
    for path in ("", "/conversations", "/sessions"):
        upstream.get(f"{API}/v1/users/{USR}{path}", status=404, json=fixture("user_not_found.json"))
    response = staff_client.get(reverse("conversations:user", args=[USR]))
    assert response.status_code == 404


@pytest.mark.django_db
def test_the_user_list_searches_by_name(staff_client, upstream):
    upstream.get(
        f"{API}/v1/users",
        json={
            "page_size": 10,
            "_embedded": {"users": [{"id": USR, "name": "agent_ana", "display_name": "Ana"}]},
            "_links": {"self": {"href": f"{API}/v1/users"}},
        },
    )
    response = staff_client.get(reverse("conversations:users"), {"name": "agent_ana"})
    assert response.status_code == 200
    assert "name=agent_ana" in upstream.calls[0].request.url
    assert reverse("conversations:user", args=[USR]) in response.content.decode()


# --- jump


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("text", "target"),
    [
        (CON, reverse("conversations:detail", args=[CON])),
        (f"  {USR} ", reverse("conversations:user", args=[USR])),
        (
            f"https://dash.example/conversations/{CON}/members/{MEM}/",
            reverse("conversations:member", args=[CON, MEM]),
        ),
    ],
)
def test_jump_goes_to_the_page_of_a_pasted_id(staff_client, upstream, text, target):
    response = staff_client.get(reverse("conversations:jump"), {"id": text})
    assert response.status_code == 302
    assert response["Location"] == target


@pytest.mark.django_db
@pytest.mark.parametrize("text", ["", "hello", MEM, "javascript:alert(1)"])
def test_jump_explains_what_it_cannot_use(staff_client, upstream, text):
    response = staff_client.get(reverse("conversations:jump"), {"id": text})
    assert response.status_code == 400
    assert len(upstream.calls) == 0


# --- review fixes: deleted conversations, recovery, retries, odd upstream data


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("target", "url"),
    [
        ("conversation-header", reverse("conversations:header", args=[CON])),
        ("members-panel", reverse("conversations:members_panel", args=[CON])),
        ("tabs", reverse("conversations:members", args=[CON])),
        ("tabs", reverse("conversations:events", args=[CON])),
    ],
)
def test_a_deleted_conversation_stops_its_panels_with_a_message(
    staff_client, upstream, target, url
):
    upstream.get(con_url(), status=404, json={"title": "Not found."})
    upstream.get(con_url("/members"), status=404, json={"title": "Not found."})
    upstream.get(con_url("/events"), status=404, json={"title": "Not found."})
    response = staff_client.get(url, **HTMX)
    html = response.content.decode()
    assert response.status_code == 286, "htmx swaps it, then stops polling"
    assert f'id="{target}"' in html
    assert "no longer exists" in html


@pytest.mark.django_db
def test_a_deleted_conversation_stops_the_events_poller_with_a_message(staff_client, upstream):
    upstream.get(con_url("/events"), status=404, json={"title": "Not found."})
    response = poll(staff_client, 41)
    assert response.status_code == 286
    assert 'id="events-banner" hx-swap-oob="true"' in response.content.decode()
    assert "no longer exists" in response.content.decode()


@pytest.mark.django_db
def test_a_backed_off_poller_returns_to_its_interval_when_nothing_is_new(
    staff_client, upstream, settings
):
    settings.DASHBOARD_REFRESH_SECONDS = 5
    upstream.get(con_url("/events"), json={"page_size": 100, "_links": {}})
    response = poll(staff_client, 41, backoff=3)
    html = response.content.decode()
    assert response.status_code == 200, "a 204 would leave the slow poller in place"
    poller = re.search(r'<div id="events-poller"[^>]*>', html).group(0)
    assert 'hx-trigger="every 5s' in poller and "backoff" not in poller and "after=41" in poller
    assert "problem-banner" not in html


@pytest.mark.django_db
def test_an_events_tab_that_failed_with_nothing_to_show_retries_itself(staff_client, upstream):
    detail_mocks(upstream)
    upstream.get(con_url("/events"), status=503, json={})
    html = staff_client.get(reverse("conversations:events", args=[CON])).content.decode()
    retry = re.search(r'<div id="events-retry"[^>]*>', html).group(0)
    assert 'hx-target="#tabs"' in retry and "backoff=1" in retry
    assert 'id="events-poller"' not in html, "no poller asks after an unknown newest event"


@pytest.mark.django_db
def test_hostile_event_ids_never_reach_the_poller_url(staff_client, upstream):
    detail_mocks(upstream)
    page = events_page(5)
    page["_embedded"].append(dict(page["_embedded"][0], id=-7))
    page["_embedded"].append(dict(page["_embedded"][0], id=2**60))
    upstream.get(con_url("/events"), json=page)
    html = staff_client.get(reverse("conversations:events", args=[CON])).content.decode()
    assert re.search(r'id="events-poller"[^>]*after=5"', html)


@pytest.mark.django_db
def test_malformed_member_ids_from_upstream_are_not_read(staff_client, upstream):
    members = copy.deepcopy(fixture("members_page.json"))
    members["_embedded"]["members"][0]["id"] = "MEM-../../v1/users"
    upstream.get(con_url(), json=fixture("conversation.json"))
    upstream.get(con_url("/members"), json=members)
    response = staff_client.get(panel_url(), **HTMX)
    assert response.status_code == 200
    assert all("/members/MEM-" not in call.request.url for call in upstream.calls)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    [
        {"id": "hello", "conversation": "CON--x"},
        {"id": MEM, "conversation": "CON-../x"},
        {"id": "hello", "conversation": CON},
    ],
)
def test_jump_refuses_what_is_not_an_id_whatever_the_page(staff_client, upstream, query):
    assert staff_client.get(reverse("conversations:jump"), query).status_code == 400


@pytest.mark.django_db
def test_a_member_id_pasted_on_a_conversation_page_goes_to_that_member(staff_client, upstream):
    response = staff_client.get(reverse("conversations:jump"), {"id": MEM, "conversation": CON})
    assert response["Location"] == reverse("conversations:member", args=[CON, MEM])


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        '{"id": "CON-1", "sequence_number": 1e999, "name": "x"}',
        '{"id": "CON-1", "properties": {"ttl": -1e999}}',
        "[" * 100_000 + "]" * 100_000,
    ],
)
def test_absurd_numbers_and_nesting_are_a_banner_not_a_500(staff_client, upstream, body):
    upstream.get(con_url(), body=body, content_type="application/json")
    upstream.get(con_url("/members"), json=fixture("members_page.json"))
    response = staff_client.get(reverse("conversations:detail", args=[CON]))
    assert response.status_code == 503
    assert "could not read" in response.content.decode()


@pytest.mark.django_db
def test_a_degraded_panel_says_so_to_live_js(staff_client, upstream):
    upstream.get(f"{API}/v1/conversations", status=500, json={})
    response = staff_client.get(reverse("conversations:list"), **htmx("results"))
    assert response["X-Dashboard-Degraded"] == "1"


@pytest.mark.django_db
def test_dashboard_pages_are_never_cached(staff_client, upstream):
    upstream.get(f"{API}/v1/conversations", json=fixture("conversations_page.json"))
    response = staff_client.get(reverse("conversations:list"))
    assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"]


@pytest.mark.django_db
def test_a_poll_never_moves_its_poller_to_a_hostile_event_id(staff_client, upstream):
    page = events_page(42)
    page["_embedded"].append(dict(page["_embedded"][0], id=2**60))
    upstream.get(con_url("/events"), json=page)
    upstream.get(con_url("/members"), json=fixture("members_page.json"))
    html = poll(staff_client, 41).content.decode()
    assert re.search(r'id="events-poller"[^>]*after=42"', html)


# --- issue 8, section 2: what a new user hit


@pytest.mark.django_db
def test_the_search_box_names_the_conversation_only_on_its_pages(staff_client, upstream):
    upstream.get(f"{API}/v1/conversations", json=fixture("conversations_page.json"))
    detail_mocks(upstream)
    on_list = staff_client.get(reverse("conversations:list")).content.decode()
    assert 'id="header-search"' in on_list
    assert 'name="conversation"' not in on_list, "the list page cannot take a bare member id"
    on_detail = staff_client.get(reverse("conversations:detail", args=[CON])).content.decode()
    assert f'name="conversation" value="{CON}"' in on_detail
    # ...so a member id pasted there goes to the member's page.
    response = staff_client.get(reverse("conversations:search"), {"q": MEM, "conversation": CON})
    assert response.status_code == 302
    assert response["Location"] == reverse("conversations:member", args=[CON, MEM])


UPPER = CON.upper()  # CON-1B7F3C2E-…: the uuid typed in capitals


@pytest.mark.django_db
@pytest.mark.parametrize(
    "text", [CON.lower(), "Con-" + CON[4:], UPPER, f"https://dash.example/conversations/{UPPER}/"]
)
def test_jump_takes_an_id_typed_in_any_case(staff_client, upstream, text):
    response = staff_client.get(reverse("conversations:jump"), {"id": text})
    assert response.status_code == 302
    assert response["Location"] == reverse("conversations:detail", args=[CON])


@pytest.mark.django_db
def test_jump_takes_a_member_page_url_in_any_case(staff_client, upstream):
    text = f"https://dash.example/conversations/{UPPER}/members/{MEM.lower()}/"
    response = staff_client.get(reverse("conversations:jump"), {"id": text})
    assert response["Location"] == reverse("conversations:member", args=[CON, MEM])


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "canonical"),
    [
        (f"/conversations/{CON.lower()}/", reverse("conversations:detail", args=[CON])),
        (f"/conversations/{UPPER}/events/?order=asc", f"/conversations/{CON}/events/?order=asc"),
        (f"/conversations/{CON}/members/{MEM.upper()}/", f"/conversations/{CON}/members/{MEM}/"),
        (f"/users/{USR.lower()}/", reverse("conversations:user", args=[USR])),
    ],
)
def test_an_id_in_another_case_in_the_path_redirects_to_the_apis_spelling(
    staff_client, upstream, path, canonical
):
    response = staff_client.get(path)
    assert response.status_code == 302
    assert response["Location"] == canonical
    assert len(upstream.calls) == 0


@pytest.mark.django_db
def test_an_id_whose_body_is_not_a_uuid_keeps_its_case(staff_client, upstream):
    odd = "CON-46edebIO0391"
    response = staff_client.get(reverse("conversations:jump"), {"id": "con-46edebIO0391"})
    assert response["Location"] == reverse("conversations:detail", args=[odd])


@pytest.mark.django_db
@pytest.mark.parametrize("text", ["icon-1234", "falcon-abc", "nothing here"])
def test_jump_does_not_find_an_id_inside_a_word(staff_client, upstream, text):
    assert staff_client.get(reverse("conversations:jump"), {"id": text}).status_code == 400


@pytest.mark.django_db
def test_start_again_without_the_filters_is_offered_only_where_there_are_filters(
    staff_client, upstream
):
    refused = staff_client.get(reverse("conversations:jump"), {"id": "hello"})
    assert refused.status_code == 400
    assert "without the filters" not in refused.content.decode()
    filtered = staff_client.get(reverse("conversations:list"), {"page_size": "7"})
    assert filtered.status_code == 400
    assert f'<a href="{reverse("conversations:list")}">Start again without the filters' in (
        filtered.content.decode()
    )


@pytest.mark.django_db
def test_the_type_suggestions_include_the_conversations_own_types(staff_client, upstream):
    detail_mocks(upstream)
    page = events_page(3, 2, 1)
    page["_embedded"][0]["type"] = "custom:ticket-opened"
    page["_embedded"][1]["type"] = "custom:<script>"  # not a type the filter would take
    upstream.get(con_url("/events"), json=page)
    html = staff_client.get(reverse("conversations:events", args=[CON])).content.decode()
    options = re.search(r'<datalist id="event-type-options">(.*?)</datalist>', html).group(1)
    assert '<option value="custom:ticket-opened">' in options
    assert '<option value="member:joined">' in options
    assert "script" not in options


@pytest.mark.django_db
def test_event_rows_are_compact_with_their_details_on_demand(staff_client, upstream):
    detail_mocks(upstream)
    page = events_page(3)
    page["_embedded"].append(
        {"id": 4, "type": "member:joined", "from": MEM, "body": {"user": {"id": USR}}}
    )
    upstream.get(con_url("/events"), json=page)
    html = staff_client.get(reverse("conversations:events", args=[CON])).content.decode()
    for row in re.findall(r'<tr id="event-\d+".*?</tr>', html, re.S):
        outside = re.sub(r"<details.*?</details>", "", row, flags=re.S)
        assert "<dl" not in outside and "<pre" not in outside, "details wait in a <details>"
        assert re.search(r"<details[^>]*>\s*<summary>", row)
    assert 'class="summary-details"' in html, "the details are there, folded"


@pytest.mark.django_db
def test_the_filters_render_from_the_forms_with_the_values_in_use(staff_client, upstream):
    upstream.get(f"{API}/v1/conversations", json=fixture("conversations_page.json"))
    html = staff_client.get(reverse("conversations:list")).content.decode()
    # Nothing asked: the selects show the defaults the page uses, not their first option.
    assert re.search(r'<option value="25" selected>', html)
    assert re.search(r'<option value="desc" selected>', html)
    detail_mocks(upstream)
    upstream.get(con_url("/events"), json=events_page(3))
    html = staff_client.get(
        reverse("conversations:events", args=[CON]), {"order": "asc", "page_size": "50"}
    ).content.decode()
    assert re.search(r'<select name="order" id="id_events_order">', html)
    assert re.search(r'<option value="asc" selected>', html)
    assert re.search(r'<option value="50" selected>', html)


@pytest.mark.django_db
def test_breadcrumbs_lead_back_up_from_a_member(staff_client, upstream):
    upstream.get(con_url(f"/members/{MEM}"), json=fixture("member.json"))
    upstream.get(con_url(), json=fixture("conversation.json"))
    html = staff_client.get(reverse("conversations:member", args=[CON, MEM])).content.decode()
    trail = re.search(r'<ol class="breadcrumbs">(.*?)</ol>', html, re.S).group(1)
    links = re.findall(r'<a href="([^"]+)">([^<]+)</a>', trail)
    assert links == [
        (reverse("conversations:list"), "Conversations"),
        (reverse("conversations:detail", args=[CON]), "Support call"),
        (reverse("conversations:members", args=[CON]), "Members"),
    ]
    assert '<li aria-current="page">Ana (agent)</li>' in trail
