"""The client against a hostile upstream (issue 8, section 1): each fault is reproduced on the
sandbox (or a raw socket server where the sandbox cannot misbehave that way) and must end as one
of the client's errors, within its time budget and its memory cap, never as a stray exception."""

from __future__ import annotations

import socket
import threading
import time
import tracemalloc

import pytest

from conversations import client as c
from conversations.client import payload
from tests.conftest import make_client, sandbox_client


@pytest.fixture
def hostile(sandbox):
    sandbox.clear_faults()
    sandbox.reset_stats()
    yield sandbox
    sandbox.clear_faults()


def some_conversation(sandbox) -> str:
    return next(iter(sandbox.world.conversations())).id


def upstream_calls(sandbox) -> int:
    return sandbox.stats()["requests"]


def wait_until_idle(client, seconds: float) -> None:
    """Wait for the client's background fetches to end (they must, within their budget)."""
    deadline = time.monotonic() + seconds
    while client.reads._inflight and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not client.reads._inflight, "a background read outlived its budget"


# --- 1. a slow body: one deadline for the whole read


def test_a_dripping_body_ends_at_the_total_budget_and_the_page_waits_only_its_own(hostile):
    client = sandbox_client(hostile, read_timeout=5.0, total_budget=1.5, page_budget=0.3)
    hostile.set_fault(mode="drip", drip_interval_ms=200)  # a byte every 0.2 s: never a timeout
    started = time.monotonic()
    with pytest.raises(c.StillLoading):
        client.get_conversation(some_conversation(hostile))
    assert time.monotonic() - started < 1.0  # the page's budget, not the read's
    wait_until_idle(client, 2.5)  # the read itself is cut at 1.5 s
    with pytest.raises(c.Unavailable) as caught:  # its failure is what the next caller sees
        client.get_conversation(some_conversation(hostile))
    assert not isinstance(caught.value, c.StillLoading)


def test_dripping_headers_are_cut_at_the_deadline_too():
    """A server that accepts and sends its status line a byte at a time: the per-read socket
    timeout never fires; the watchdog must."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def drip_headers():
        connection, _ = server.accept()
        with connection:
            for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n":
                if stop.wait(0.1):
                    return
                try:
                    connection.sendall(bytes([byte]))
                except OSError:
                    return

    threading.Thread(target=drip_headers, daemon=True).start()
    port = server.getsockname()[1]
    client = make_client(
        _rsa_pem(), base_url=f"http://127.0.0.1:{port}", total_budget=1.0, max_retries=0
    )
    started = time.monotonic()
    try:
        with pytest.raises(c.Unavailable):
            client.transport.get_json("/v1/conversations", {}, lambda: "token")
        assert time.monotonic() - started < 1.8
    finally:
        stop.set()
        server.close()


def _rsa_pem() -> str:
    from sandbox.testing import test_key_pair

    return test_key_pair()[0]


# --- 2. a body that breaks midway


@pytest.mark.parametrize("mode", ["truncated", "bad_chunked", "bad_gzip"])
def test_a_body_that_breaks_midway_is_unavailable_with_the_last_good_data(hostile, mode):
    client = sandbox_client(hostile, cache_seconds=1)
    conversation_id = some_conversation(hostile)
    good = client.get_conversation(conversation_id)
    time.sleep(1.05)  # past the fresh copy
    hostile.set_fault(mode=mode)
    with pytest.raises(c.Unavailable) as caught:
        client.get_conversation(conversation_id)
    assert caught.value.stale == good
    assert caught.value.status == 200  # the API answered: this is not "unreachable"


def test_a_broken_body_is_shared_by_every_caller_like_any_failure(hostile):
    client = sandbox_client(hostile)
    conversation_id = some_conversation(hostile)
    hostile.set_fault(mode="truncated")
    hostile.reset_stats()
    errors: list[Exception] = []

    def read():
        try:
            client.get_conversation(conversation_id)
        except c.UpstreamError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for _ in range(5):  # and again within the failure's second
        read()
    assert len(errors) == 13 and all(isinstance(e, c.Unavailable) for e in errors)
    assert upstream_calls(hostile) == 1


# --- 4. deep JSON


def test_deep_json_is_pruned_at_parse_time_and_cached(hostile):
    client = sandbox_client(hostile, cache_seconds=5)
    conversation_id = some_conversation(hostile)
    hostile.set_fault(mode="deep", depth=900)
    conversation = client.get_conversation(conversation_id)
    hostile.clear_faults()
    node, depth = conversation.custom_data, 0
    while isinstance(node, dict):
        node, depth = next(iter(node.values())), depth + 1
    assert node == payload.TOO_DEEP
    assert depth < payload.MAX_DEPTH
    hostile.reset_stats()
    assert client.get_conversation(conversation_id) == conversation  # the cache took it
    assert upstream_calls(hostile) == 0


def test_deep_event_bodies_in_a_list_are_pruned_too(hostile):
    client = sandbox_client(hostile)
    conversation = next(c for c in hostile.world.conversations() if c.events)
    hostile.set_fault(mode="deep", depth=5000)  # beyond even the parser's own limit
    with pytest.raises(c.BadResponse):
        client.list_events(conversation.id, page_size=5)
    hostile.set_fault(mode="deep", depth=600)
    page = client.list_events(conversation.id, page_size=6)  # another key: not the failure
    assert page.items and all(payload.TOO_DEEP in repr(e.raw) for e in page.items)


# --- 5. sizes


def test_a_gzip_bomb_is_a_bad_response_without_inflating_it(hostile):
    client = sandbox_client(hostile, total_budget=20.0, read_timeout=10.0)
    hostile.set_fault(mode="gzip_bomb", bomb_bytes=200_000_000)
    conversation_id = some_conversation(hostile)
    tracemalloc.start()
    try:
        with pytest.raises(c.BadResponse):
            client.transport.get_json(
                f"/v1/conversations/{conversation_id}", {}, client.signer.token
            )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * client.config.max_bytes  # about the cap, not 200 MB


def test_a_body_over_the_cap_is_a_bad_response(hostile):
    client = sandbox_client(hostile, total_budget=20.0, read_timeout=10.0, max_bytes=1_000_000)
    hostile.set_fault(mode="huge", huge_bytes=2_000_000)
    with pytest.raises(c.BadResponse) as caught:
        client.get_conversation(some_conversation(hostile))
    assert "larger than 1000000 bytes" in caught.value.detail


def test_a_page_never_holds_more_items_than_asked_for(hostile):
    client = sandbox_client(hostile, total_budget=20.0, read_timeout=10.0)
    hostile.set_fault(mode="flood", flood_items=20_000)
    page = client.list_conversations(page_size=10)
    assert len(page.items) == 10


# --- 6. a long Retry-After


def test_a_long_retry_after_pauses_reads_for_at_most_the_ceiling(hostile):
    client = sandbox_client(hostile, max_cooldown_seconds=120)
    hostile.set_fault(mode="429", retry_after=3600)
    with pytest.raises(c.RateLimited) as first:
        client.get_conversation(some_conversation(hostile))
    assert first.value.retry_after == 120  # what pages say about when they will try again
    with pytest.raises(c.RateLimited) as caught:
        client.list_users(page_size=10)  # another read: in the cool-down, no call
    assert 110 < caught.value.retry_after <= 120


def test_one_probe_read_ends_the_cool_down_as_soon_as_the_api_answers(hostile):
    client = sandbox_client(hostile, cooldown_probe_seconds=1)
    hostile.set_fault(mode="429", retry_after=3600)
    with pytest.raises(c.RateLimited):
        client.get_conversation(some_conversation(hostile))
    hostile.clear_faults()
    hostile.reset_stats()
    with pytest.raises(c.RateLimited):  # within the first probe interval: still paused
        client.list_users(page_size=10)
    assert upstream_calls(hostile) == 0
    time.sleep(1.1)
    assert client.list_users(page_size=10).items  # the probe: the API answers
    assert client.list_users(page_size=25).items  # and the cool-down is over for every read
    assert upstream_calls(hostile) == 2


def test_a_probe_that_is_refused_again_keeps_the_pause(hostile):
    client = sandbox_client(hostile, cooldown_probe_seconds=1)
    hostile.set_fault(mode="429", retry_after=3600)
    with pytest.raises(c.RateLimited):
        client.get_conversation(some_conversation(hostile))
    time.sleep(1.1)
    hostile.reset_stats()
    with pytest.raises(c.RateLimited):
        client.list_users(page_size=10)  # the probe, refused
    with pytest.raises(c.RateLimited):
        client.list_users(page_size=25)  # so the others wait on, without a call
    assert upstream_calls(hostile) == 1
