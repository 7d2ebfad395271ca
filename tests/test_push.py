"""Live push, in process: topics, the hub, what the store announces, the stream view and its
refusals, the stream's access re-check, and the bound on synchronous requests.

Servers, browsers and Redis across processes are in tests/test_push_processes.py and
tests/browser/test_push.py; the latency figures in `make bench`.
"""

from __future__ import annotations

import asyncio
import random
import socket
import threading

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.test import RequestFactory

from conversations.context_processors import STREAMS_SERVED, stream_url
from conversations.privacy import roles
from conversations.push import fanout
from conversations.push.hub import CLOSE, QUEUE_SIZE, Hub, hub
from conversations.push.limits import Tickets, tickets
from conversations.push.notices import (
    RESYNC,
    BadTopic,
    Notice,
    decode,
    encode,
    parse_topics,
)
from conversations.push.stream import format_burst
from conversations.store import ingest
from dashboard_project.bounded import BoundedSyncRequests
from tests import aio
from tests.conftest import supervisor, support

CONVERSATION = "CON-1f3a2c5e-8a57-4b6c-9a8e-7d2f0f6b1c11"
ALICE = "MEM-aaaaaaaa-1e2f-4a3b-8c4d-5e6f7a8b9c0d"
ALICE_USER = "USR-aaaaaaaa-1e2f-4a3b-8c4d-5e6f7a8b9c0d"
PASSWORD = "a-long-password-for-tests-0123"


# --- topics


def test_topics_are_validated_and_canonical():
    assert parse_topics(["live", f"conversation:{CONVERSATION.upper()}", "live"]) == [
        "live",
        f"conversation:{CONVERSATION}",
    ]
    assert parse_topics([f"user:{ALICE_USER}"]) == [f"user:{ALICE_USER}"]


@pytest.mark.parametrize(
    "values",
    [
        [],
        ["everything"],
        ["conversation:CON-x\x00"],
        ["user:../../etc"],
        [f"member:{ALICE}"],
        ["access:1"],  # internal: a page cannot listen to another user's access notices
        ["*"],
        ["conversation:"],
        [f"conversation:{CONVERSATION}<script>"],
        [f"conversation:CON-{n:08d}-aaaa" for n in range(9)],
    ],
)
def test_anything_else_is_refused(values):
    with pytest.raises(BadTopic):
        parse_topics(values)


def test_notices_survive_the_wire_and_garbage_does_not():
    notices = [Notice("live", "live"), Notice(f"conversation:{CONVERSATION}", "events", {"a": 3})]
    assert decode(encode(notices)) == notices
    assert decode(b"not json") == []
    assert decode(b'{"topic": "live"}') == []
    assert decode(b'[{"topic": 1, "event": "x"}, "x", {"topic": "live", "event": "live"}]') == [
        Notice("live", "live")
    ]


# --- the hub


@pytest.fixture
def loop():
    """An event loop running on a thread of its own, as a stream's loop runs beside the threads
    that deliver notices to it."""
    running = asyncio.new_event_loop()
    thread = threading.Thread(target=running.run_forever, daemon=True)
    thread.start()
    yield running
    running.call_soon_threadsafe(running.stop)
    thread.join()
    running.close()


def queued(loop, subscription) -> list[Notice]:
    """What the subscription holds, read on its own loop (after what was handed over ran)."""

    async def read():
        await asyncio.sleep(0)
        return subscription.pending()

    return asyncio.run_coroutine_threadsafe(read(), loop).result(timeout=5)


def test_the_hub_hands_notices_to_subscribers_of_their_topic_only_from_any_thread(loop):
    local = Hub()
    board = local.subscribe(["live"], loop)
    page = local.subscribe([f"conversation:{CONVERSATION}"], loop)
    sender = threading.Thread(target=local.deliver, args=(Notice("live", "live"),))
    sender.start()
    sender.join()
    assert queued(loop, board) == [Notice("live", "live")]
    assert queued(loop, page) == []
    assert local.broadcast(RESYNC) == 2
    assert queued(loop, page) == [RESYNC]
    local.unsubscribe(board)
    assert local.deliver(Notice("live", "live")) == 0
    assert local.count() == 1


def test_a_subscriber_that_falls_behind_gets_one_resync_instead_of_the_backlog(loop):
    local = Hub()
    page = local.subscribe(["live"], loop)
    for n in range(QUEUE_SIZE + 5):
        local.deliver(Notice("live", "live", {"n": n}))
    backlog = queued(loop, page)
    assert RESYNC in backlog
    assert len(backlog) < QUEUE_SIZE


def test_a_subscriber_whose_loop_closed_is_skipped():
    local = Hub()
    loop = asyncio.new_event_loop()
    local.subscribe(["live"], loop)
    loop.close()
    assert local.deliver(Notice("live", "live")) == 0


def test_a_burst_sends_each_event_once_with_the_newest_data():
    topic = f"conversation:{CONVERSATION}"
    text = format_burst(
        [
            Notice(topic, "events", {"after": 3}),
            Notice(topic, "header"),
            Notice("access:1", "access"),
            Notice(topic, "events", {"after": 5}),
        ]
    )
    assert text == 'event: header\ndata: {}\n\nevent: events\ndata: {"after":5}\n\n'


# --- limits


def test_tickets_bound_each_user_and_the_process(settings):
    settings.DASHBOARD_STREAMS_PER_USER = 2
    settings.DASHBOARD_STREAMS_MAX = 3
    local = Tickets()
    assert local.admit("alice") is None
    assert local.admit("alice") is None
    assert "too many" in local.admit("alice")
    assert local.admit("bob") is None
    assert "configured" in local.admit("carol")
    local.release("alice")
    assert local.admit("carol") is None
    assert local.held("alice") == 1 and local.held() == 3


# --- what the store announces


def member_joined(event_id: int) -> dict:
    return {
        "conversation_id": CONVERSATION,
        "id": event_id,
        "type": "member:joined",
        "from": ALICE,
        "timestamp": "2026-11-27T09:00:02.000Z",
        "body": {
            "user": {"id": ALICE_USER, "name": "alice"},
            "channel": {"type": "phone"},
            "timestamp": {"joined": "2026-11-27T09:00:02.000Z"},
        },
    }


@pytest.fixture
def heard(settings):
    """What the in-process fan-out published, in order."""
    settings.PUSH_URL = ""
    published: list[Notice] = []
    original = hub.deliver

    def deliver(notice):
        published.append(notice)
        return original(notice)

    hub.deliver = deliver
    yield published
    hub.deliver = original


@pytest.mark.django_db(transaction=True)
def test_a_stored_event_is_announced_after_its_commit(heard):
    app = ingest.application("app")
    assert ingest.store_webhook(app, "jti-1", member_joined(1))
    topic = f"conversation:{CONVERSATION}"
    assert sorted(heard, key=repr) == sorted(
        [
            Notice(topic, "header"),
            Notice(topic, "events", {"after": 1}),
            Notice(topic, "members"),
            Notice("live", "live"),  # it became live
            Notice(f"user:{ALICE_USER}", "user"),
        ],
        key=repr,
    )
    heard.clear()
    custom = {"conversation_id": CONVERSATION, "id": 2, "type": "custom:x", "from": ALICE}
    assert ingest.store_webhook(app, "jti-2", custom)
    assert Notice(topic, "events", {"after": 2}) in heard
    assert Notice(topic, "members") not in heard
    assert Notice("live", "live") in heard  # a live conversation's row changed


@pytest.mark.django_db(transaction=True)
def test_a_duplicate_or_replayed_webhook_announces_nothing(heard):
    app = ingest.application("app")
    ingest.store_webhook(app, "jti-1", member_joined(1))
    heard.clear()
    assert not ingest.store_webhook(app, "jti-2", member_joined(1))  # the same event again
    with pytest.raises(ingest.Replay):
        ingest.store_webhook(app, "jti-2", member_joined(2))  # a replayed jti: rolled back
    assert heard == []


@pytest.mark.django_db(transaction=True)
def test_an_event_of_a_conversation_that_is_not_live_leaves_the_board_alone(heard):
    app = ingest.application("app")
    custom = {"conversation_id": CONVERSATION, "id": 1, "type": "custom:x", "from": ALICE}
    ingest.store_webhook(app, "jti-1", custom)
    assert Notice("live", "live") not in heard
    assert Notice(f"conversation:{CONVERSATION}", "events", {"after": 1}) in heard


# --- the stream endpoint (the ASGI application's /stream/, driven here as a server would)


@pytest.fixture
def staff(django_user_model):
    return supervisor(
        django_user_model.objects.create_user("staff", password=PASSWORD, is_staff=True)
    )


def session_cookie(client, user) -> str:
    client.force_login(user)
    return f"sessionid={client.session.session_key}"


class Exchange:
    """One request to the stream endpoint: what it sent, and a way to leave."""

    def __init__(self, task, start, sent, incoming) -> None:
        self.task, self.start, self.sent, self.incoming = task, start, sent, incoming
        self.status = start["status"]
        self.headers = {k.decode(): v.decode() for k, v in start["headers"]}
        self.body = b""

    async def read_until(self, marker: bytes, seconds: float = 5.0) -> bytes:
        while marker not in self.body:
            message = await asyncio.wait_for(self.sent.get(), seconds)
            self.body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        return self.body

    async def ended(self, seconds: float = 5.0) -> bool:
        """Whether the endpoint ended the stream by itself (its last message, then returned)."""
        await asyncio.wait_for(self.task, seconds)
        while not self.sent.empty():
            message = self.sent.get_nowait()
            if not message.get("more_body", False):
                return True
        return False

    async def leave(self) -> None:
        await self.incoming.put({"type": "http.disconnect"})
        await asyncio.wait_for(self.task, 5)


async def request_stream(query: str, cookie: str = "", method: str = "GET") -> Exchange:
    from dashboard_project.asgi import application

    sent: asyncio.Queue = asyncio.Queue()
    incoming: asyncio.Queue = asyncio.Queue()
    await incoming.put({"type": "http.request", "body": b"", "more_body": False})
    headers = [(b"host", b"testserver")]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": "/stream/",
        "raw_path": b"/stream/",
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    task = asyncio.ensure_future(application(scope, incoming.get, sent.put))
    start = await asyncio.wait_for(sent.get(), 5)
    return Exchange(task, start, sent, incoming)


@pytest.fixture
def in_process(settings):
    settings.PUSH_URL = ""
    settings.ALLOWED_HOSTS = ["testserver"]


@pytest.mark.django_db(transaction=True)
def test_anonymous_and_non_staff_get_no_stream(client, django_user_model, in_process):
    outsider = django_user_model.objects.create_user("outsider", password=PASSWORD)
    cookie = session_cookie(client, outsider)

    async def scenario():
        anonymous = await request_stream("topic=live")
        forged = await request_stream("topic=live", "sessionid=not-a-session")
        non_staff = await request_stream("topic=live", cookie)
        return anonymous, forged, non_staff

    anonymous, forged, non_staff = aio.run(scenario())
    assert anonymous.status == 302
    assert anonymous.headers["location"] == "/login/?next=/stream/%3Ftopic%3Dlive"
    assert forged.status == 302
    assert non_staff.status == 403
    assert tickets.held() == 0 and hub.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_session_whose_password_changed_or_user_left_staff_gets_no_stream(
    client, staff, in_process
):
    cookie = session_cookie(client, staff)
    staff.set_password("another-long-password-0123")
    staff.save()
    assert aio.run(request_stream("topic=live", cookie)).status == 302
    cookie = session_cookie(client, staff)
    get_user_model().objects.filter(pk=staff.pk).update(is_staff=False)
    assert aio.run(request_stream("topic=live", cookie)).status == 403
    get_user_model().objects.filter(pk=staff.pk).update(is_staff=True, is_active=False)
    assert aio.run(request_stream("topic=live", cookie)).status in (302, 403)


@pytest.mark.django_db(transaction=True)
def test_bad_topics_methods_and_hosts_are_refused_before_anything_is_held(
    client, staff, in_process
):
    cookie = session_cookie(client, staff)

    async def scenario():
        answers = {}
        for query in ("", "topic=conversation:CON-x%00", "topic=access:1", "topic=user:..%2F"):
            answers[query] = (await request_stream(query, cookie)).status
        answers["POST"] = (await request_stream("topic=live", cookie, "POST")).status
        return answers

    answers = aio.run(scenario())
    assert answers == {
        "": 400,
        "topic=conversation:CON-x%00": 400,
        "topic=access:1": 400,
        "topic=user:..%2F": 400,
        "POST": 405,
    }
    assert tickets.held() == 0 and hub.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_stream_says_what_changed_and_gives_its_place_back(client, staff, in_process):
    cookie = session_cookie(client, staff)

    async def scenario():
        stream = await request_stream(f"topic=conversation:{CONVERSATION}", cookie)
        opening = await stream.read_until(b": open")
        held = tickets.held(staff.pk), hub.count()
        fanout.publish([Notice(f"conversation:{CONVERSATION}", "events", {"after": 7})])
        fanout.publish([Notice("live", "live")])  # not followed by this stream
        stream.body = b""
        notice = await stream.read_until(b"\n\n")
        await stream.leave()
        return stream, opening, held, notice

    stream, opening, held, notice = aio.run(scenario())
    assert stream.status == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert stream.headers["x-accel-buffering"] == "no"
    assert "no-cache" in stream.headers["cache-control"]
    assert opening.startswith(b"retry: ")
    assert held == (1, 1)
    assert notice == b'event: events\ndata: {"after":7}\n\n'
    assert tickets.held(staff.pk) == 0 and hub.count() == 0  # the client left: all given back


@pytest.mark.django_db(transaction=True)
def test_a_burst_of_notices_makes_one_message_now_and_one_after_the_gap(client, staff, in_process):
    cookie = session_cookie(client, staff)

    async def scenario():
        stream = await request_stream("topic=live", cookie)
        await stream.read_until(b": open")
        stream.body = b""
        for n in range(20):
            fanout.publish([Notice("live", "live", {"n": n})])
            await asyncio.sleep(0.005)
        await stream.read_until(b"\n\n")
        await asyncio.sleep(0.6)  # past the gap: what was held comes as one message
        await stream.read_until(b'"n":19')
        await stream.leave()
        return stream.body

    body = aio.run(scenario())
    assert body.count(b"event: live") == 2
    assert body.endswith(b'event: live\ndata: {"n":19}\n\n')


@pytest.mark.django_db(transaction=True)
def test_quiet_streams_get_heartbeats(client, staff, in_process, settings):
    settings.DASHBOARD_STREAM_HEARTBEAT_SECONDS = 0.2
    cookie = session_cookie(client, staff)

    async def scenario():
        stream = await request_stream("topic=live", cookie)
        await stream.read_until(b": keep-alive\n\n", 3)
        await stream.leave()
        return stream.body

    assert b"event:" not in aio.run(scenario())


@pytest.mark.django_db(transaction=True)
def test_past_the_per_user_limit_a_stream_is_refused(client, staff, in_process, settings):
    settings.DASHBOARD_STREAMS_PER_USER = 1
    cookie = session_cookie(client, staff)

    async def scenario():
        first = await request_stream("topic=live", cookie)
        second = await request_stream("topic=live", cookie)
        await second.read_until(b"instead")
        await first.leave()
        third = await request_stream("topic=live", cookie)
        await third.leave()
        return first.status, second, third.status

    first, second, third = aio.run(scenario())
    assert (first, second.status, third) == (200, 429, 200)
    assert second.headers["retry-after"]
    assert b"polls instead" in second.body


@pytest.mark.django_db(transaction=True)
def test_logging_out_ends_the_users_streams(client, staff, in_process):
    cookie = session_cookie(client, staff)

    async def scenario():
        stream = await request_stream("topic=live", cookie)
        await stream.read_until(b": open")
        # The session goes; the logout's access notice makes the stream look at once.
        await sync_to_async(client.post)("/logout/")
        return await stream.ended()

    assert aio.run(scenario())
    assert tickets.held() == 0 and hub.count() == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("change", ["to support", "to supervisors", "group loses the permission"])
def test_a_change_of_role_makes_the_open_page_load_again(
    client, django_user_model, in_process, change
):
    """Issue 12: a new role takes effect on open streams: the page is told to load again (live.js
    reloads on `reload`), so everything on it is shown as the new role may see it."""
    user = django_user_model.objects.create_user("someone", password=PASSWORD, is_staff=True)
    if change in ("to support", "group loses the permission"):
        supervisor(user)
    cookie = session_cookie(client, user)

    def act() -> None:
        if change == "to support":
            user.groups.clear()
            support(user)
        elif change == "to supervisors":
            supervisor(user)
        else:
            group = roles.group(roles.SUPERVISORS)
            group.permissions.clear()

    async def scenario():
        stream = await request_stream("topic=live", cookie)
        await stream.read_until(b": open")
        await sync_to_async(act)()
        body = await stream.read_until(b"event: reload")
        return body, await stream.ended()

    body, ended = aio.run(scenario())
    assert b"event: reload" in body and ended


@pytest.mark.django_db(transaction=True)
def test_an_unrelated_account_change_does_not_reload_the_page(client, staff, in_process):
    cookie = session_cookie(client, staff)

    async def scenario():
        stream = await request_stream("topic=live", cookie)
        await stream.read_until(b": open")
        staff.first_name = "Renamed"
        await sync_to_async(staff.save)()
        # The access notice, and the second look a moment later: the stream stays open, quiet.
        with pytest.raises(TimeoutError):
            await stream.read_until(b"event: reload", 2.0)
        await stream.leave()
        return stream.body

    assert b": open" in aio.run(scenario())


@pytest.mark.django_db(transaction=True)
def test_a_process_that_lost_redis_ends_its_streams(client, staff, in_process):
    cookie = session_cookie(client, staff)

    async def scenario():
        stream = await request_stream("topic=live", cookie)
        await stream.read_until(b": open")
        hub.broadcast(CLOSE)  # what the listener does when Redis goes away
        return await stream.ended()

    assert aio.run(scenario())


@pytest.mark.django_db
def test_under_wsgi_the_stream_is_refused_and_pages_do_not_ask_for_one(client, staff):
    client.force_login(staff)
    response = client.get("/stream/?topic=live")
    assert response.status_code == 503
    assert tickets.held() == 0
    assert b"sse-connect" not in client.get("/live/").content


# --- which pages follow a stream


@pytest.mark.parametrize(
    ("path", "topic"),
    [
        ("/live/", "topic=live"),
        (f"/conversations/{CONVERSATION}/events/", f"topic=conversation%3A{CONVERSATION}"),
        (f"/users/{ALICE_USER}/", f"topic=user%3A{ALICE_USER}"),
        ("/conversations/", None),
        ("/users/", None),
    ],
)
def test_pages_name_their_stream_only_when_served_by_the_asgi_application(path, topic, settings):
    from django.urls import resolve

    request = RequestFactory().get(path)
    request.META[STREAMS_SERVED] = True  # what dashboard_project/asgi.py sets on each request
    request.resolver_match = resolve(path)
    settings.VONAGE_SIGNATURE_SECRET = "a-secret"
    expected = f"/stream/?{topic}" if topic else None
    assert stream_url(request) == expected
    settings.DASHBOARD_PUSH = False
    assert stream_url(request) is None
    settings.DASHBOARD_PUSH = True
    settings.VONAGE_SIGNATURE_SECRET = ""  # no webhook is accepted: nothing would be pushed
    assert stream_url(request) is None
    settings.VONAGE_SIGNATURE_SECRET = "a-secret"
    wsgi = RequestFactory().get(path)  # a WSGI server: nobody would answer the stream
    wsgi.resolver_match = resolve(path)
    assert stream_url(wsgi) is None


# --- Redis fan-out


def redis_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
    except OSError:
        return False
    return True


@pytest.mark.skipif(not redis_up(), reason="needs Redis on 127.0.0.1:6379")
def test_with_redis_a_notice_published_anywhere_reaches_this_process(settings, loop):
    import redis

    settings.PUSH_URL = "redis://127.0.0.1:6379/14"
    settings.PUSH_CHANNEL_PREFIX = f"tests-{random.random()}"
    fanout.reset()

    def next_notice(subscription) -> Notice:
        waiting = asyncio.wait_for(subscription.queue.get(), 5)
        return asyncio.run_coroutine_threadsafe(waiting, loop).result(timeout=6)

    try:
        assert fanout.ready()
        subscription = hub.subscribe(["live"], loop)
        # As another host would: straight onto the channel.
        redis.Redis.from_url(settings.PUSH_URL).publish(
            fanout.channel(), encode([Notice("live", "live", {"from": "elsewhere"})])
        )
        assert next_notice(subscription) == Notice("live", "live", {"from": "elsewhere"})
        fanout.publish([Notice("live", "live", {"from": "here"})])
        assert next_notice(subscription).data == {"from": "here"}
        hub.unsubscribe(subscription)
    finally:
        fanout.reset()


def test_a_redis_that_is_down_makes_streams_wait_and_publishing_harmless(settings):
    settings.PUSH_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    fanout.reset()
    try:
        fanout.publish([Notice("live", "live")])  # logged, not raised
        original = fanout.READY_WAIT_SECONDS
        fanout.READY_WAIT_SECONDS = 0.5
        try:
            assert not fanout.ready()
        finally:
            fanout.READY_WAIT_SECONDS = original
    finally:
        fanout.reset()


# --- the bound on synchronous requests


def test_requests_past_the_bound_wait_then_get_a_503(settings):
    settings.SYNC_REQUESTS_PER_PROCESS = 1
    settings.SYNC_REQUEST_QUEUE_SECONDS = 0.2
    release = asyncio.Event()
    seen: list[str] = []

    async def app(scope, receive, send):
        seen.append(scope["path"])
        if scope["path"] == "/slow/":
            await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    bounded = BoundedSyncRequests(app)

    async def call(path):
        sent = []

        async def send(message):
            sent.append(message)

        await bounded({"type": "http", "path": path}, None, send)
        return sent[0]["status"]

    async def scenario():
        slow = asyncio.create_task(call("/slow/"))
        await asyncio.sleep(0.05)
        busy = await call("/live/")
        release.set()
        return await slow, busy, await call("/live/")

    assert aio.run(scenario()) == (200, 503, 200)
    assert seen == ["/slow/", "/live/"]  # the refused one never reached the application
