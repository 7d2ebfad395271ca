"""The client's read-through cache: the page budget, coalescing within and across processes,
keys scoped to one API and application, a cache that fails, and members re-read on change."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests
import responses
from django.core.cache import caches

from conversations import client as c

from .conftest import API, APPLICATION_ID, fixture, free_port, make_client

CON = "CON-1b7f3c2e-5a8d-4e21-9c0f-7d6e5b4a3c21"
MEM = "MEM-0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
CONVERSATION_URL = f"{API}/v1/conversations/{CON}"


def finish_background_reads(client, seconds: float = 3.0) -> None:
    """Let a test's background fetches end before the next test (they would fill its cache)."""
    deadline = time.monotonic() + seconds
    while client.reads._inflight and time.monotonic() < deadline:
        time.sleep(0.02)


def slow_conversation(seconds: float, name: str = "first"):
    def answer(request):
        time.sleep(seconds)
        return 200, {}, json.dumps(fixture("conversation.json") | {"name": name})

    return answer


# --- the page budget


@responses.activate
def test_a_slow_read_gives_up_at_the_page_budget_and_fills_the_cache_behind(key_pair):
    client = make_client(key_pair[0], page_budget=0.2, cache_seconds=5)
    responses.add_callback(responses.GET, CONVERSATION_URL, callback=slow_conversation(0.6))
    started = time.monotonic()
    with pytest.raises(c.StillLoading) as caught:
        client.get_conversation(CON)
    assert time.monotonic() - started < 0.5
    assert caught.value.stale is None  # nothing was ever read
    time.sleep(0.6)  # the read finishes in the background...
    assert client.get_conversation(CON).name == "first"  # ...and the next caller has it
    assert len(responses.calls) == 1


@responses.activate
def test_still_loading_carries_the_last_good_data(key_pair):
    client = make_client(key_pair[0], page_budget=0.2, cache_seconds=1)
    responses.get(CONVERSATION_URL, json=fixture("conversation.json") | {"name": "old"})
    client.get_conversation(CON)
    time.sleep(1.05)
    responses.remove(responses.GET, CONVERSATION_URL)
    responses.add_callback(responses.GET, CONVERSATION_URL, callback=slow_conversation(0.6))
    with pytest.raises(c.StillLoading) as caught:
        client.get_conversation(CON)
    assert caught.value.stale.name == "old" and caught.value.stale_at is not None
    finish_background_reads(client)


@responses.activate
def test_callers_of_a_slow_key_join_one_read_instead_of_queueing_new_ones(key_pair):
    client = make_client(key_pair[0], page_budget=0.1)
    responses.add_callback(responses.GET, CONVERSATION_URL, callback=slow_conversation(1.0))
    fetches = []
    fetch = client.reads._fetch_coalesced

    def counted(*args):
        fetches.append(args[0])
        return fetch(*args)

    client.reads._fetch_coalesced = counted  # fetches started, joined or not
    for _ in range(5):
        with pytest.raises(c.StillLoading):
            client.get_conversation(CON)
    assert len(fetches) == 1
    finish_background_reads(client)


# --- coalescing across processes (two clients sharing one cache are two processes' worth)


@responses.activate
def test_two_processes_sharing_the_cache_make_one_upstream_call(key_pair):
    """Each client has its own in-process coalescing; only the cache's `add` lock joins them."""
    first, second = make_client(key_pair[0]), make_client(key_pair[0])
    responses.add_callback(responses.GET, CONVERSATION_URL, callback=slow_conversation(0.3))
    results = []
    threads = [
        threading.Thread(target=lambda client=client: results.append(client.get_conversation(CON)))
        for client in (first, second)
        for _ in range(10)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 20
    assert len(responses.calls) == 1


@responses.activate
def test_a_lock_is_released_only_by_its_owner(key_pair):
    client = make_client(key_pair[0])
    responses.get(CONVERSATION_URL, json=fixture("conversation.json"))
    key = client.reads.key(f"/v1/conversations/{CON}", {}) + ":lock"

    def someone_else_takes_the_lock(request):
        caches["default"].set(key, "another process", 30)  # ours expired; another took it
        return 200, {}, json.dumps(fixture("conversation.json"))

    responses.remove(responses.GET, CONVERSATION_URL)
    responses.add_callback(responses.GET, CONVERSATION_URL, callback=someone_else_takes_the_lock)
    client.get_conversation(CON)
    assert caches["default"].get(key) == "another process"


# --- what a cache key holds


@responses.activate
def test_different_query_parameters_are_different_reads(api):
    responses.get(f"{API}/v1/conversations", json=fixture("conversations_page.json"))
    api.list_conversations(page_size=10)
    api.list_conversations(page_size=10)
    api.list_conversations(page_size=20)
    api.list_conversations(page_size=10, order="asc")
    assert len(responses.calls) == 3


@responses.activate
def test_two_deployments_sharing_a_cache_never_see_each_others_data(key_pair):
    other_api = "https://api-eu.test"
    mine = make_client(key_pair[0])
    same_app_other_region = make_client(key_pair[0], base_url=other_api)
    other_app = make_client(key_pair[0], application_id="11111111-2222-4333-8444-555555555555")
    responses.get(CONVERSATION_URL, json=fixture("conversation.json") | {"name": "mine"})
    responses.get(
        f"{other_api}/v1/conversations/{CON}", json=fixture("conversation.json") | {"name": "eu"}
    )
    assert mine.get_conversation(CON).name == "mine"
    assert same_app_other_region.get_conversation(CON).name == "eu"
    responses.replace(
        responses.GET, CONVERSATION_URL, json=fixture("conversation.json") | {"name": "other"}
    )
    assert other_app.get_conversation(CON).name == "other"
    assert len(responses.calls) == 3


@responses.activate
def test_a_rate_limit_of_one_application_does_not_pause_another(key_pair):
    mine = make_client(key_pair[0], max_retries=0)
    other = make_client(
        key_pair[0], max_retries=0, application_id="11111111-2222-4333-8444-555555555555"
    )
    responses.get(CONVERSATION_URL, status=429, headers={"Retry-After": "30"}, json={})
    with pytest.raises(c.RateLimited):
        mine.get_conversation(CON)
    responses.replace(responses.GET, CONVERSATION_URL, json=fixture("conversation.json"))
    assert other.get_conversation(CON).id == CON
    assert APPLICATION_ID not in mine.reads.prefix  # ids are hashed into the key, not shown


# --- a cache that fails (a real Redis client on a port where nothing listens)


@pytest.fixture
def dead_cache(settings):
    settings.CACHES = settings.CACHES | {
        "dead": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    return "dead"


@responses.activate
def test_reads_go_on_when_the_cache_is_down(key_pair, dead_cache):
    client = make_client(key_pair[0], cache_alias=dead_cache)
    responses.get(CONVERSATION_URL, json=fixture("conversation.json"))
    assert client.get_conversation(CON).id == CON
    assert client.get_conversation(CON).id == CON  # nothing cached: read again, no error
    assert len(responses.calls) == 2


@responses.activate
def test_a_failure_with_the_cache_down_is_still_an_upstream_error(key_pair, dead_cache):
    client = make_client(key_pair[0], cache_alias=dead_cache, max_retries=0)
    responses.get(CONVERSATION_URL, status=500, json={})
    with pytest.raises(c.Unavailable) as caught:
        client.get_conversation(CON)
    assert caught.value.stale is None


# --- members: re-read only when their state changed


@responses.activate
def test_a_members_record_is_read_again_only_when_its_state_changes(key_pair):
    client = make_client(key_pair[0], cache_seconds=0.01)
    url = f"{CONVERSATION_URL}/members/{MEM}"
    responses.get(url, json=fixture("member.json"))
    for _ in range(3):
        client.get_member(CON, MEM, known_state="JOINED")
    time.sleep(1.1)  # well past the short cache: the state-keyed record is still good
    client.get_member(CON, MEM, known_state="JOINED")
    assert len(responses.calls) == 1
    client.get_member(CON, MEM, known_state="LEFT")
    assert len(responses.calls) == 2


# --- one deadline for the whole page


@responses.activate
def test_a_pages_reads_share_one_deadline_however_many_there_are(key_pair):
    from conversations.client.budget import page_deadline

    client = make_client(key_pair[0], page_budget=3.0)

    def slow_member(request):
        time.sleep(1.0)
        return 200, {}, json.dumps(fixture("member.json"))

    members = [f"MEM-{n:08d}-aaaa-4bbb-8ccc-dddddddddddd" for n in range(50)]
    for member in members:
        responses.add_callback(
            responses.GET, f"{CONVERSATION_URL}/members/{member}", callback=slow_member
        )
    responses.add_callback(responses.GET, CONVERSATION_URL, callback=slow_conversation(1.0))
    started = time.monotonic()
    with page_deadline(0.4):
        outcomes = c.concurrently(
            **{m: (lambda m=m: client.get_member(CON, m)) for m in members}
        )  # more reads than the fetch pool has threads: most wait in its queue
        with pytest.raises(c.StillLoading):
            client.get_conversation(CON)  # and a read after them: past the deadline already
    assert time.monotonic() - started < 1.0
    assert all(isinstance(o.error, c.StillLoading) for o in outcomes.values())
    finish_background_reads(client, seconds=10)


@responses.activate
def test_a_read_past_the_deadline_still_answers_from_the_cache(key_pair):
    from conversations.client.budget import page_deadline

    client = make_client(key_pair[0], cache_seconds=5)
    responses.get(CONVERSATION_URL, json=fixture("conversation.json"))
    client.get_conversation(CON)
    with page_deadline(0):
        assert client.get_conversation(CON).id == CON


def test_a_page_never_waits_past_its_deadline_behind_another_pages_calls():
    """A members panel makes up to 50 calls at once: another page's calls queued behind them
    must still end at their own page's deadline."""
    from conversations.client.budget import page_deadline

    def busy_page():
        with page_deadline(5):
            c.concurrently(**{f"read{n}": (lambda: time.sleep(1.0)) for n in range(70)})

    other = threading.Thread(target=busy_page)
    other.start()
    time.sleep(0.1)  # the other page's calls fill the pool
    started = time.monotonic()
    with page_deadline(0.3):
        outcome = c.concurrently(mine=lambda: "answered")["mine"]
    waited = time.monotonic() - started
    other.join()
    assert waited < 0.8
    assert isinstance(outcome.error, c.StillLoading)


def test_the_watchdog_leaves_a_socket_alone_once_its_exchange_is_over():
    """The connection goes back to the pool, and another thread's exchange may use it."""
    import socket

    from conversations.client.transport import _Watch

    mine, theirs = socket.socketpair()
    with mine, theirs:
        with _Watch(0.1) as watch:
            watch.watch(mine)
        time.sleep(0.2)  # past the deadline of the exchange that has ended
        theirs.sendall(b"x")
        mine.settimeout(1)
        assert mine.recv(1) == b"x"


def test_a_deadline_passed_before_the_headers_are_read_still_ends_the_read():
    import socket

    from conversations.client.transport import _Watch

    mine, theirs = socket.socketpair()
    with mine, theirs, _Watch(0.01) as watch:
        time.sleep(0.1)  # the deadline passes while connecting: no socket to shut yet
        watch.watch(mine)  # the headers are about to be read
        mine.settimeout(1)
        assert mine.recv(1) == b""  # shut down: the read ends now, not at a socket timeout


@responses.activate
def test_no_upstream_cookie_is_sent_back(key_pair):
    client = make_client(key_pair[0], cache_seconds=0, max_retries=0)
    responses.get(
        CONVERSATION_URL,
        json=fixture("conversation.json"),
        headers={"Set-Cookie": "tracker=" + "x" * 200 + "; Path=/"},
    )
    client.get_conversation(CON)
    time.sleep(0.01)
    client.reads._delete(client.reads.key(f"/v1/conversations/{CON}", {}))
    client.get_conversation(CON)
    assert "Cookie" not in responses.calls[1].request.headers


@responses.activate
def test_a_probe_that_finds_the_api_down_does_not_shorten_a_rate_limit(key_pair):
    client = make_client(key_pair[0], max_retries=0, cooldown_probe_seconds=1)
    responses.get(CONVERSATION_URL, status=429, headers={"Retry-After": "60"}, json={})
    with pytest.raises(c.RateLimited):
        client.get_conversation(CON)
    users = f"{API}/v1/users"
    responses.get(users, body=requests.ConnectionError("refused"))
    time.sleep(1.1)
    with pytest.raises(c.Unavailable):
        client.list_users()  # the probe: no answer at all
    calls = len(responses.calls)
    later = time.time() + 10  # past the 3 s an unreachable API would pause for
    client.reads.clock = lambda: later
    with pytest.raises(c.RateLimited):
        client.list_users(page_size=25)
    assert len(responses.calls) == calls


@responses.activate
def test_a_probe_answered_with_any_status_but_429_ends_the_pause(key_pair):
    client = make_client(key_pair[0], max_retries=0, cooldown_probe_seconds=1)
    responses.get(CONVERSATION_URL, status=429, headers={"Retry-After": "60"}, json={})
    with pytest.raises(c.RateLimited):
        client.get_conversation(CON)
    responses.get(f"{API}/v1/users/USR-00000000-0000-4000-8000-000000000000", status=404, json={})
    responses.get(f"{API}/v1/users", json={"page_size": 10, "_embedded": {"users": []}})
    time.sleep(1.1)
    with pytest.raises(c.NotFound):
        client.get_user("USR-00000000-0000-4000-8000-000000000000")  # the probe: an answer
    assert client.list_users().items == []  # the API answers: no more pause


def test_a_body_of_millions_of_tiny_objects_is_refused_before_parsing():
    from conversations.client import payload

    with pytest.raises(payload.TooComplex):
        payload.loads(b"[" + b"[]," * 500_000 + b"[]]")


@responses.activate
def test_a_read_after_the_end_never_takes_an_answer_cached_before_it(key_pair):
    """Issue 8, section 2 item 2: a poll's empty answer cached a moment before the call ended
    must not be the final look, or the last events are never shown."""
    client = make_client(key_pair[0], cache_seconds=5)
    url = f"{CONVERSATION_URL}/events"
    responses.get(url, json={"page_size": 100, "_embedded": {"events": []}})
    assert client.list_events(CON, start_id=18, order="asc", page_size=100).items == []
    responses.replace(responses.GET, url, json=fixture("events_array.json"))  # the call ended
    final = client.list_events(CON, start_id=18, order="asc", page_size=100, after_end=True)
    assert final.items
    again = client.list_events(CON, start_id=18, order="asc", page_size=100, after_end=True)
    assert again == final and len(responses.calls) == 2  # viewers share the final read
