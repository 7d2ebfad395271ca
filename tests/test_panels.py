"""The live panels of a conversation's page, each at its own URL: what each answers, how each
backs off and recovers, how each says it is degraded, and how they all stop when the
conversation ends without losing its last events. Also a read still loading past the page's
budget, and a request the API refuses (400)."""

from __future__ import annotations

import copy
import json
import re
import time
from html.parser import HTMLParser

import pytest
import responses
from django.core.cache import cache
from django.urls import reverse

from conversations import dom
from conversations.client import StillLoading
from tests.conftest import API, fixture, make_client
from tests.test_views import CON, MEM, con_url, detail_mocks, events_page

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def upstream(api, use_client):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        use_client(api)
        yield mock


def url(name: str, **query: object) -> str:
    base = reverse(f"conversations:{name}", args=[CON])
    return base + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def ended_conversation() -> dict:
    ended = copy.deepcopy(fixture("conversation.json"))
    ended["state"] = "INACTIVE"
    ended["timestamp"]["destroyed"] = "2026-11-20T09:30:00.000Z"
    return ended


def element(html: str, element_id: str) -> str:
    """The opening tag of the element with this id."""
    found = re.search(rf'<[a-z]+ id="{element_id}"[^>]*>', html.replace("\n", " "))
    assert found, f"no #{element_id}"
    return found.group(0)


def attribute(tag: str, name: str) -> str | None:
    found = re.search(rf'\s{name}="([^"]*)"', tag)
    return found.group(1).replace("&amp;", "&") if found else None


# --- each panel has its own URL, and the page names them


@pytest.mark.django_db
def test_the_page_points_each_live_panel_at_its_own_url(staff_client, upstream):
    detail_mocks(upstream)
    upstream.get(con_url("/events"), json=events_page(7, 6))
    html = staff_client.get(url("events")).content.decode()
    assert attribute(element(html, dom.HEADER), "hx-get") == url("header")
    assert attribute(element(html, dom.EVENTS_POLLER), "hx-get") == url("events_poll", after=7)
    html = staff_client.get(url("members")).content.decode()
    assert attribute(element(html, dom.MEMBERS_PANEL), "hx-get") == url("members_panel")


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.references: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "id" and value:
                self.ids.append(value)
            if name in ("hx-target", "hx-include", "hx-select") and value:
                self.references.append((name, value))


@pytest.mark.django_db
@pytest.mark.parametrize("tab", ["members", "events"])
def test_every_region_a_page_swaps_or_includes_is_on_it_once(staff_client, upstream, tab):
    detail_mocks(upstream, ended_conversation() if tab == "members" else None)
    upstream.get(con_url("/events"), json=events_page(7, 6))
    parser = _Ids()
    parser.feed(staff_client.get(url(tab)).content.decode())
    duplicates = {i for i in parser.ids if parser.ids.count(i) > 1}
    assert not duplicates
    for name, selector in parser.references:
        assert selector.startswith("#") and selector[1:] in parser.ids, (name, selector)


@pytest.mark.django_db
def test_each_panel_answers_its_own_region_and_reads_only_what_it_shows(staff_client, upstream):
    detail_mocks(upstream)
    upstream.get(con_url(f"/members/{MEM}"), json=fixture("member.json"))
    upstream.get(con_url("/events"), json=events_page(9))

    header = staff_client.get(url("header"), **HTMX)
    assert header.content.decode().lstrip().startswith(f'<section id="{dom.HEADER}"')
    assert [c.request.url for c in upstream.calls] == [con_url()]

    upstream.calls.reset()
    panel = staff_client.get(url("members_panel"), **HTMX)
    assert panel.content.decode().lstrip().startswith(f'<div id="{dom.MEMBERS_PANEL}"')
    assert sorted(c.request.url.split("?")[0] for c in upstream.calls) == [
        con_url("/members"),
        con_url(f"/members/{MEM}"),
    ], "no read of the conversation: the header's flag says when it is over"

    upstream.calls.reset()
    rows = staff_client.get(url("events_poll", after=8), **HTMX).content.decode()
    assert rows.lstrip().startswith('<tr id="event-9"')
    assert con_url() not in [c.request.url for c in upstream.calls]


# --- Section 3: the degraded header on every panel, and back-off that resets


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("panel", "path"),
    [("header", ""), ("members_panel", "/members"), ("events_poll", "/events")],
)
def test_a_panel_showing_a_failure_says_so_to_live_js(staff_client, upstream, panel, path):
    upstream.get(con_url(path), status=503, json={})
    response = staff_client.get(url(panel, after=3), **HTMX)
    assert response.status_code == 200
    assert "problem-banner" in response.content.decode()
    assert response["X-Dashboard-Degraded"] == "1"


@pytest.mark.django_db
@pytest.mark.parametrize("tab", ["members", "events"])
def test_a_tab_swap_showing_a_failure_says_so_to_live_js(staff_client, upstream, tab):
    detail_mocks(upstream)
    upstream.replace(responses.GET, con_url("/members"), status=503, json={})
    upstream.get(con_url("/events"), json=events_page(3))
    response = staff_client.get(url(tab), **HTMX)
    assert response["X-Dashboard-Degraded"] == "1"


@pytest.mark.django_db
@pytest.mark.parametrize("panel", ["header", "members_panel", "events_poll"])
def test_a_healthy_panel_is_not_marked_degraded(staff_client, upstream, panel):
    detail_mocks(upstream)
    upstream.get(con_url(f"/members/{MEM}"), json=fixture("member.json"))
    upstream.get(con_url("/events"), json=events_page(4))
    response = staff_client.get(url(panel, after=3), **HTMX)
    assert response.status_code == 200
    assert "X-Dashboard-Degraded" not in response


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("panel", "region"),
    [("header", dom.HEADER), ("members_panel", dom.MEMBERS_PANEL)],
)
def test_a_panel_backs_off_while_failing_and_resets_once_it_recovers(
    staff_client, upstream, settings, key_pair, use_client, panel, region
):
    settings.DASHBOARD_REFRESH_SECONDS = 5
    use_client(make_client(key_pair[0], cache_seconds=0, max_retries=0))
    path = "" if panel == "header" else "/members"
    upstream.get(con_url(path), status=503, json={})
    upstream.get(con_url(f"/members/{MEM}"), json=fixture("member.json"))
    failing = element(staff_client.get(url(panel, backoff=2), **HTMX).content.decode(), region)
    assert "backoff=3" in attribute(failing, "hx-get")
    assert attribute(failing, "hx-trigger").startswith("every 40s")

    cache.clear()  # past the moment the client shares a failure for
    upstream.replace(
        responses.GET,
        con_url(path),
        json=fixture("conversation.json" if panel == "header" else "members_page.json"),
    )
    recovered = element(staff_client.get(url(panel, backoff=3), **HTMX).content.decode(), region)
    assert "backoff" not in attribute(recovered, "hx-get"), "back to no back-off"
    assert attribute(recovered, "hx-trigger").startswith("every 5s")


@pytest.mark.django_db
def test_a_healthy_page_starts_its_panels_without_the_back_off_it_was_asked_with(
    staff_client, upstream, settings
):
    settings.DASHBOARD_REFRESH_SECONDS = 5
    detail_mocks(upstream)
    html = staff_client.get(url("detail", backoff=4)).content.decode()
    header = element(html, dom.HEADER)
    assert attribute(header, "hx-get") == url("header")
    assert attribute(header, "hx-trigger").startswith("every 5s")


# --- Section 2 item 2 and 3: the end of a call


@pytest.mark.django_db
def test_the_headers_last_answer_stops_it_and_tells_the_other_panels(staff_client, upstream):
    upstream.get(con_url(), json=ended_conversation())
    response = staff_client.get(url("header"), **HTMX)
    html = response.content.decode()
    assert response.status_code == 286
    assert json.loads(response["HX-Trigger-After-Swap"]) == {dom.CONVERSATION_OVER: {}}
    flag = element(html, dom.OVER_FLAG)
    assert attribute(flag, "name") == "over" and "disabled" not in flag, "sent from now on"
    # It must not stop the events poller itself: that poller still has the last events to fetch.
    assert dom.EVENTS_POLLER not in html


@pytest.mark.django_db
def test_the_headers_last_answer_ends_the_live_controls(staff_client, upstream):
    upstream.get(con_url(), json=ended_conversation())
    html = staff_client.get(url("header"), **HTMX).content.decode()
    controls = re.search(rf'<div id="{dom.LIVE_CONTROLS}"[^>]*>(.*?)</div>', html, re.S)
    assert controls, "the live controls are replaced"
    assert 'hx-swap-oob="true"' in controls.group(0)
    assert "Pause" not in controls.group(1) and "every" not in controls.group(1)
    assert "stopped" in controls.group(1)


@pytest.mark.django_db
def test_the_live_pollers_ask_again_when_the_conversation_ends_carrying_the_flag(
    staff_client, upstream
):
    detail_mocks(upstream)
    upstream.get(con_url("/events"), json=events_page(7))
    upstream.get(con_url(f"/members/{MEM}"), json=fixture("member.json"))
    poller = element(staff_client.get(url("events")).content.decode(), dom.EVENTS_POLLER)
    panel = element(
        staff_client.get(url("members_panel"), **HTMX).content.decode(), dom.MEMBERS_PANEL
    )
    for tag in (poller, panel):
        assert f"{dom.CONVERSATION_OVER} from:body" in attribute(tag, "hx-trigger")
        assert attribute(tag, "hx-include") == f"#{dom.OVER_FLAG}"
    page = staff_client.get(url("events")).content.decode()
    assert "disabled" in element(page, dom.OVER_FLAG), "not sent while the conversation lives"


@pytest.mark.django_db
def test_the_last_events_poll_brings_the_last_events_then_stops(staff_client, upstream):
    upstream.get(con_url("/events"), json=events_page(99, 100, 101))
    upstream.get(con_url("/members"), json=fixture("members_page.json"))
    response = staff_client.get(url("events_poll", after=98, over=1), **HTMX)
    html = response.content.decode()
    assert response.status_code == 286, "htmx swaps it, then stops"
    assert all(f'id="event-{i}"' in html for i in (99, 100, 101))
    poller = element(html, dom.EVENTS_POLLER)
    assert attribute(poller, "hx-get") is None and "data-poll" not in poller, "nothing asks again"


@pytest.mark.django_db
def test_the_last_events_poll_with_nothing_new_still_stops(staff_client, upstream):
    upstream.get(con_url("/events"), json={"page_size": 100, "_links": {}})
    response = staff_client.get(url("events_poll", after=98, over=1), **HTMX)
    assert response.status_code == 286, "not a 204, which would leave the poller running"
    assert attribute(element(response.content.decode(), dom.EVENTS_POLLER), "hx-get") is None


@pytest.mark.django_db
def test_the_last_events_poll_goes_on_while_more_events_wait(staff_client, upstream):
    upstream.get(con_url("/events"), json=events_page(99, 100, next_cursor="more"))
    upstream.get(con_url("/members"), json=fixture("members_page.json"))
    response = staff_client.get(url("events_poll", after=98, over=1), **HTMX)
    assert response.status_code == 200
    poller = element(response.content.decode(), dom.EVENTS_POLLER)
    assert "after=100" in attribute(poller, "hx-get"), "the next poll fetches the rest"


@pytest.mark.django_db
def test_the_last_events_poll_that_fails_is_tried_again(staff_client, upstream):
    upstream.get(con_url("/events"), status=503, json={})
    response = staff_client.get(url("events_poll", after=98, over=1), **HTMX)
    assert response.status_code == 200
    assert "after=98" in attribute(element(response.content.decode(), dom.EVENTS_POLLER), "hx-get")


@pytest.mark.django_db
def test_the_members_panels_last_look_stops_it(staff_client, upstream):
    detail_mocks(upstream)
    upstream.get(con_url(f"/members/{MEM}"), json=fixture("member.json"))
    response = staff_client.get(url("members_panel", over=1), **HTMX)
    assert response.status_code == 286
    panel = element(response.content.decode(), dom.MEMBERS_PANEL)
    assert attribute(panel, "hx-get") is None and "data-poll" not in panel


# --- Section 2 item 9: member records re-read only when new or changed


@pytest.mark.django_db
def test_the_members_panel_rereads_a_members_record_only_when_its_state_changes(
    staff_client, upstream, key_pair, use_client
):
    use_client(make_client(key_pair[0], cache_seconds=0))  # the list is read on every refresh
    detail_mocks(upstream)
    upstream.get(con_url(f"/members/{MEM}"), json=fixture("member.json"))

    def record_reads() -> int:
        return sum(c.request.url == con_url(f"/members/{MEM}") for c in upstream.calls)

    for _ in range(3):
        assert "447700900" in staff_client.get(url("members_panel"), **HTMX).content.decode()
    assert record_reads() == 1, "an unchanged member is not read again"

    members = copy.deepcopy(fixture("members_page.json"))
    members["_embedded"]["members"][0]["state"] = "LEFT"
    upstream.replace(responses.GET, con_url("/members"), json=members)
    staff_client.get(url("members_panel"), **HTMX)
    assert record_reads() == 2, "a member whose state changed is read again"


# --- Fault 8: past the page's budget


def slow(seconds: float, payload: dict):
    def answer(request):
        time.sleep(seconds)
        return 200, {}, json.dumps(payload)

    return answer


@pytest.mark.django_db
def test_a_page_waits_no_longer_than_the_budget_and_shows_the_read_once_done(
    staff_client, upstream, key_pair, use_client
):
    client = use_client(make_client(key_pair[0], page_budget=0.2, cache_seconds=5))
    upstream.add_callback(
        responses.GET,
        f"{API}/v1/conversations",
        callback=slow(2.0, fixture("conversations_page.json")),
    )
    started = time.monotonic()
    response = staff_client.get(reverse("conversations:list"))
    assert time.monotonic() - started < 1.5, "the page did not wait out the slow read"
    html = response.content.decode()
    assert response.status_code == 200 and "Still loading the conversations" in html
    poll = attribute(element(html, dom.RESULTS), "hx-get")

    deadline = time.monotonic() + 5
    while client.reads._inflight and time.monotonic() < deadline:
        time.sleep(0.02)  # the read goes on in the background and fills the cache
    again = staff_client.get(poll, **HTMX)
    assert "Support call" in again.content.decode()
    assert "Still loading" not in again.content.decode()
    assert len(upstream.calls) == 1, "the page's own read, finished behind it"


class SlowClient:
    """The real client, but the named reads do not finish within the page's budget."""

    def __init__(self, client, *slow: str, stale: dict | None = None) -> None:
        self.client = client
        self.slow = set(slow)
        self.stale = stale or {}

    def __getattr__(self, name):
        if name not in self.slow:
            return getattr(self.client, name)

        def still_loading(*args, **kwargs):
            error = StillLoading("The read did not finish within 3 s")
            error.stale = self.stale.get(name)
            raise error

        return still_loading


@pytest.mark.django_db
def test_a_list_still_loading_is_a_page_that_fetches_itself_soon(
    staff_client, upstream, api, use_client
):
    use_client(SlowClient(api, "list_conversations"))
    response = staff_client.get(reverse("conversations:list"))
    html = response.content.decode()
    assert response.status_code == 200, "not an error page"
    assert "Still loading the conversations" in html
    results = element(html, dom.RESULTS)
    assert attribute(results, "hx-trigger").startswith("every 1s"), "asks again a moment later"
    assert "<script" not in html.split('id="content-main"')[1], "no inline script (CSP)"


@pytest.mark.django_db
def test_an_older_list_page_still_loading_fetches_itself_then_stops(
    staff_client, upstream, api, use_client
):
    use_client(SlowClient(api, "list_conversations"))
    list_url = reverse("conversations:list") + "?cursor=abc"
    results = element(staff_client.get(list_url).content.decode(), dom.RESULTS)
    assert "cursor=abc" in attribute(results, "hx-get") and "data-poll" not in results

    use_client(api)
    upstream.get(f"{API}/v1/conversations", json=fixture("conversations_page.json"))
    again = staff_client.get(attribute(results, "hx-get"), **HTMX)
    html = again.content.decode()
    assert "Support call" in html
    assert attribute(element(html, dom.RESULTS), "hx-get") is None, "loaded: no more asking"


@pytest.mark.django_db
def test_a_conversation_still_loading_shows_its_last_good_data(
    staff_client, upstream, api, use_client
):
    detail_mocks(upstream)
    stale = api.get_conversation(CON)
    use_client(SlowClient(api, "get_conversation", stale={"get_conversation": stale}))
    response = staff_client.get(url("detail"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "support_call_0142" in html, "the last good data"
    assert "Still loading the conversation" in html
    assert attribute(element(html, dom.HEADER), "hx-trigger").startswith("every 1s")


@pytest.mark.django_db
def test_a_conversation_still_loading_with_nothing_to_show_fills_in_by_itself(
    staff_client, upstream, api, use_client
):
    use_client(SlowClient(api, "get_conversation", "list_members", "list_events"))
    response = staff_client.get(url("events"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Still loading" in html
    assert attribute(element(html, dom.HEADER), "hx-trigger").startswith("every 1s")
    retry = element(html, dom.EVENTS_RETRY)
    assert attribute(retry, "hx-trigger").startswith("every 1s")


@pytest.mark.django_db
@pytest.mark.parametrize("page", ["member", "user", "users"])
def test_a_page_still_loading_fetches_its_content_again(
    staff_client, upstream, api, use_client, page
):
    from tests.test_views import USR

    use_client(
        SlowClient(
            api,
            "get_member",
            "get_conversation",
            "get_user",
            "list_user_conversations",
            "list_user_sessions",
            "list_users",
        )
    )
    target = {
        "member": reverse("conversations:member", args=[CON, MEM]),
        "user": reverse("conversations:user", args=[USR]),
        "users": reverse("conversations:users"),
    }[page]
    response = staff_client.get(target)
    html = response.content.decode()
    assert response.status_code == 200
    assert "Still loading" in html
    region = dom.RESULTS if page == "users" else dom.CONTENT
    tag = element(html, region)
    assert attribute(tag, "hx-get").startswith(target)
    if page != "users":
        assert attribute(tag, "hx-select") == f"#{region}"
        assert attribute(tag, "hx-trigger") == "load delay:1s"


# --- Fault 13: a request the API refuses


BAD_CURSOR = {
    "title": "Bad Request",
    "detail": "Invalid cursor",
    "code": "http:error:validation-fail",
}


@pytest.mark.django_db
def test_a_bad_cursor_in_the_events_tab_is_a_400_with_the_reason_and_no_retry(
    staff_client, upstream
):
    detail_mocks(upstream)
    upstream.get(con_url("/events"), status=400, json=BAD_CURSOR)
    response = staff_client.get(url("events", cursor="nonsense"))
    html = response.content.decode()
    assert response.status_code == 400
    assert "Invalid cursor" in html and "support_call_0142" in html
    assert dom.EVENTS_RETRY not in html and dom.EVENTS_POLLER not in html, "nothing retries"
    assert "Retrying" not in html

    swapped = staff_client.get(url("events", cursor="nonsense"), **HTMX)
    assert swapped.status_code == 200, "htmx swaps the tab, with the reason in it"
    assert "Invalid cursor" in swapped.content.decode()
    assert dom.EVENTS_RETRY not in swapped.content.decode()


@pytest.mark.django_db
def test_an_events_poll_the_api_refuses_stops_with_the_reason(staff_client, upstream):
    refused = {"title": "Bad Request", "detail": "Unsupported event_type", "code": "x"}
    upstream.get(con_url("/events"), status=400, json=refused)
    response = staff_client.get(url("events_poll", after=3, event_type="custom:x"), **HTMX)
    html = response.content.decode()
    assert response.status_code == 286, "no endless retry"
    assert "Unsupported event_type" in html
    assert attribute(element(html, dom.EVENTS_POLLER), "hx-get") is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("page", "api_path", "query"),
    [
        ("list", "/v1/conversations", {"cursor": "nonsense"}),
        ("users", "/v1/users", {"cursor": "nonsense"}),
    ],
)
def test_a_bad_cursor_in_a_list_is_a_400_with_the_reason(
    staff_client, upstream, page, api_path, query
):
    upstream.get(f"{API}{api_path}", status=400, json=BAD_CURSOR)
    response = staff_client.get(reverse(f"conversations:{page}"), query)
    html = response.content.decode()
    assert response.status_code == 400
    assert "Invalid cursor" in html
    assert "Retrying" not in html and "hx-trigger" not in element(html, dom.RESULTS)
    assert "start again without it" in html


@pytest.mark.django_db
def test_a_bad_cursor_on_a_users_page_is_a_400_with_the_reason(staff_client, upstream):
    from tests.test_views import USR

    upstream.get(f"{API}/v1/users/{USR}", json=fixture("user.json"))
    upstream.get(f"{API}/v1/users/{USR}/conversations", status=400, json=BAD_CURSOR)
    upstream.get(f"{API}/v1/users/{USR}/sessions", json=fixture("user_sessions.json"))
    response = staff_client.get(
        reverse("conversations:user", args=[USR]), {"conversations_cursor": "nonsense"}
    )
    assert response.status_code == 400
    assert "Invalid cursor" in response.content.decode()
    assert "Ana (agent)" in response.content.decode(), "the rest of the page is kept"
