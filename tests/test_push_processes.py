"""Issue 10 on real servers: /stream/ on two web processes sharing PostgreSQL and Redis.

Two gunicorn servers (uvicorn workers, one process each, as the Procfile's `web:` runs them) on
different ports, one database, one Redis for cache, sessions and the push fan-out. A webhook
ingested by one process reaches a stream held on the other; the stream refuses whoever a page
refuses, bad topics, and streams past the per-user limit; it keeps proxies awake with comments;
and it ends when its session ends or its user loses access, wherever that happened. Streams are
read over a socket (tests/push_stack.py), as a browser's EventSource reads them.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import pytest
import requests

from tests import push_stack
from tests.push_stack import EventStream, Server, custom_event, member_event, send_webhook

PER_USER = 2
HEARTBEAT_SECONDS = 1
USERS = {
    "ops": True,  # fan-out, bad topics
    "watcher": True,  # fan-out (a second user: PER_USER streams each per process)
    "viewer": False,  # never staff
    "greedy": True,  # the per-user limit
    "leaver": True,  # logs out
    "demoted": True,  # loses staff status
    "beater": True,  # heartbeats
}
# A stream ends at most this long after its access does (the `access` notice, then a check of
# the session: well under a second; the periodic re-check is DASHBOARD_STREAM_RECHECK_SECONDS).
ACCESS_ENDS_WITHIN = 3.0


@dataclass
class Processes:
    a: Server
    b: Server
    env: dict[str, str]


@pytest.fixture(scope="module")
def processes(tmp_path_factory) -> Iterator[Processes]:
    tmp = tmp_path_factory.mktemp("push-processes")
    with push_stack.database() as database, ExitStack() as stack:
        env = push_stack.dashboard_env(
            tmp,
            database,
            GUNICORN_WORKERS="1",
            DASHBOARD_STREAMS_PER_USER=str(PER_USER),
            DASHBOARD_STREAM_HEARTBEAT_SECONDS=str(HEARTBEAT_SECONDS),
        )
        push_stack.prepare(env, USERS)
        a, b = push_stack.start_gunicorns(env, tmp, "web-a", "web-b")
        stack.callback(a.stop)
        stack.callback(b.stop)
        yield Processes(a, b, env)


@pytest.fixture(autouse=True)
def both_alive(processes):
    yield
    for server in (processes.a, processes.b):
        assert server.alive(), server.output()


@pytest.fixture(scope="module")
def ops(processes) -> requests.Session:
    return push_stack.log_in(processes.a.base, "ops")


@pytest.fixture
def streams() -> Iterator[list[EventStream]]:
    """Streams a test opened, closed at its end whatever happened."""
    opened: list[EventStream] = []
    yield opened
    for stream in opened:
        stream.close()


def open_stream(opened, server: Server, query: str, session=None) -> EventStream:
    stream = EventStream(server.base, f"/stream/?{query}", session)
    opened.append(stream)
    return stream


def opened(stream: EventStream) -> None:
    """The stream was admitted and sent its opening message."""
    assert stream.status == 200, (stream.status, stream.body)
    assert stream.is_event_stream, stream.headers
    first = stream.next(5)
    assert first is not None and first.comments == ["open"], first
    assert first.fields == {"retry": "2000"}, first


def test_a_webhook_ingested_by_one_process_reaches_a_stream_held_by_the_other(
    processes, streams, ops
):
    session = ops  # logged in on A: a session both processes know
    conversation_id, other_id = push_stack.new_conversation_id(), push_stack.new_conversation_id()
    on_b = open_stream(streams, processes.b, f"topic=conversation:{conversation_id}", session)
    board_on_b = open_stream(streams, processes.b, "topic=live", session)
    watcher = push_stack.log_in(processes.b.base, "watcher")
    other_on_b = open_stream(streams, processes.b, f"topic=conversation:{other_id}", watcher)
    on_a = open_stream(streams, processes.a, f"topic=conversation:{conversation_id}", session)
    for stream in (on_b, board_on_b, other_on_b, on_a):
        opened(stream)

    # Ingested by A: B's stream on that conversation hears of it (and A's own).
    sent = time.monotonic()
    send_webhook(processes.a.base, custom_event(conversation_id, 1))
    notice = on_b.wait_for("events", timeout=5)
    print(f"A's webhook -> B's stream: {(notice.at - sent) * 1000:.0f} ms")
    assert notice.json() == {"after": 1}
    assert on_a.wait_for("events", timeout=5).json() == {"after": 1}

    # Ingested by B: A's stream hears of it; a new member changes the live board everywhere.
    member = member_event(conversation_id, 2, "joined", push_stack.new_member_id(), "alice")
    send_webhook(processes.b.base, member)
    assert on_a.wait_for_all({"header", "events", "members"}, timeout=5)["events"].json() == {
        "after": 2
    }
    assert board_on_b.wait_for("live", timeout=5).data == "{}"

    # A stream on another conversation hears nothing of these (heartbeats only).
    others = other_on_b.drain(0.5)
    assert all(message.event is None for message in others), others
    assert all(message.data == "" for message in others), others


def test_the_stream_refuses_anonymous_users_and_non_staff_with_no_data(processes, streams):
    anonymous = open_stream(streams, processes.a, "topic=live")
    assert anonymous.status == 302, anonymous.status
    assert anonymous.headers["location"].startswith("/login/?next=/stream/"), anonymous.headers
    assert not anonymous.is_event_stream
    assert "event:" not in anonymous.body and "data:" not in anonymous.body

    viewer = push_stack.log_in(processes.b.base, "viewer")
    for server in (processes.a, processes.b):
        refused = open_stream(streams, server, "topic=live", viewer)
        assert refused.status == 403, (refused.status, refused.body[:300])
        assert not refused.is_event_stream, refused.headers
        assert "event:" not in refused.body and "data:" not in refused.body


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("topic=conversation:CON-x%00", id="nul"),
        pytest.param("topic=user:../../", id="path"),
        pytest.param(
            "&".join(f"topic=conversation:{push_stack.new_conversation_id()}" for _ in range(9)),
            id="9-topics",
        ),
        pytest.param("topic=access:1", id="internal-topic"),
        pytest.param("topic=conversation:CON-1%0d%0aevent:%20live", id="crlf"),
        pytest.param("", id="no-topic"),
    ],
)
def test_bad_topics_are_refused(processes, streams, ops, query):
    refused = open_stream(streams, processes.a, query, ops)
    assert refused.status == 400, (refused.status, refused.body[:300])
    assert not refused.is_event_stream
    assert "Name what to follow" in refused.body


def test_streams_past_the_per_user_limit_are_refused_with_429(processes, streams):
    session = push_stack.log_in(processes.a.base, "greedy")
    held = [open_stream(streams, processes.a, "topic=live", session) for _ in range(PER_USER)]
    for stream in held:
        opened(stream)
    refused = open_stream(streams, processes.a, "topic=live", session)
    assert refused.status == 429, (refused.status, refused.body[:300])
    assert not refused.is_event_stream
    assert "too many live pages" in refused.body and "polls instead" in refused.body
    assert refused.headers.get("retry-after") == "30"

    # A stream that ends gives its place back: a new one is admitted soon after.
    held[0].close()
    deadline = time.monotonic() + 5
    while True:
        again = open_stream(streams, processes.a, "topic=live", session)
        if again.status == 200:
            break
        assert again.status == 429, again.status
        assert time.monotonic() < deadline, "the closed stream's place was not given back"
        time.sleep(0.2)
    opened(again)


def test_heartbeats_keep_a_quiet_stream_awake(processes, streams):
    session = push_stack.log_in(processes.b.base, "beater")
    stream = open_stream(streams, processes.b, "topic=live", session)
    opened(stream)
    quiet = stream.drain(3.6 * HEARTBEAT_SECONDS)
    beats = [message for message in quiet if message.comments == ["keep-alive"]]
    assert len(beats) >= 3, quiet
    assert all(message.event is None and message.data == "" for message in beats)
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(beats)]
    assert all(gap < 2 * HEARTBEAT_SECONDS for gap in gaps), gaps
    assert not stream.closed.is_set()


# conversations/push/signals.py publishes the `access` notice from Django's user_logged_out
# signal, which django.contrib.auth.logout() sends *before* it flushes the session: a stream that
# checks its session at once still finds it valid (3 trials in 4 here), and then lives on until
# its next periodic re-check (DASHBOARD_STREAM_RECHECK_SECONDS, 60 s, at its next wake-up).
def test_logging_out_ends_the_users_open_streams_on_every_process(processes, streams):
    # Django announces a logout before it deletes the session: a stream that looked only once
    # at the notice lost that race 3 times in 4. Three logouts (on either process) all have to
    # end their streams.
    for trial, where in enumerate((processes.a, processes.b, processes.a)):
        session = push_stack.log_in(where.base, "leaver")
        on_a = open_stream(streams, processes.a, "topic=live", session)
        on_b = open_stream(streams, processes.b, "topic=live", session)
        opened(on_a)
        opened(on_b)

        push_stack.log_out(where.base, session)
        logged_out = time.monotonic()
        for stream in (on_a, on_b):
            assert stream.closed.wait(ACCESS_ENDS_WITHIN), f"trial {trial}: it outlived the session"
            print(f"logged out -> stream closed: {(stream.closed_at - logged_out) * 1000:.0f} ms")
        # The old cookie opens nothing any more.
        again = open_stream(streams, processes.b, "topic=live", session)
        assert again.status == 302, again.status


def test_a_user_who_loses_staff_status_loses_the_stream(processes, streams):
    session = push_stack.log_in(processes.b.base, "demoted")
    on_a = open_stream(streams, processes.a, "topic=live", session)
    on_b = open_stream(streams, processes.b, "topic=live", session)
    opened(on_a)
    opened(on_b)
    try:
        push_stack.set_staff(processes.env, "demoted", False)  # another process: manage.py
        for stream in (on_a, on_b):
            # Counted from the shell's exit, which comes after its save (and so may be later
            # than the end of the stream).
            assert stream.closed.wait(ACCESS_ENDS_WITHIN), "the stream outlived staff status"
        again = open_stream(streams, processes.a, "topic=live", session)
        assert again.status == 403, again.status
    finally:
        push_stack.set_staff(processes.env, "demoted", True)


def test_pages_name_their_stream_and_a_plain_get_of_it_is_not_cached(processes, ops):
    """The page the browser tests drive carries its stream URL (ASGI), and the stream's answer
    is marked uncacheable for proxies and browsers."""
    session = ops
    html = session.get(processes.a.base + "/live/", timeout=10).text
    assert 'sse-connect="/stream/?topic=live"' in html
    with session.get(processes.a.base + "/stream/?topic=live", stream=True, timeout=10) as answer:
        assert answer.status_code == 200
        assert answer.headers["Cache-Control"] == "no-cache, no-store, private"
        assert answer.headers["X-Accel-Buffering"] == "no"
