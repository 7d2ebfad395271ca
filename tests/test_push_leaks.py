"""What an open or abandoned stream holds: no thread, no database connection, and every place
given back however the client leaves (an independent review found both leaking when streams went
through Django's handler; the stream is now served by the ASGI application itself).

Each test drives the real ASGI application, as uvicorn calls it, in process, with a hand-made
`receive`/`send`, so that what a client's connection does (stay, leave early) is under the test's
control.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from django.db import connections
from django.db.backends.signals import connection_created
from django.test import Client

from conversations.push import fanout
from conversations.push.hub import hub
from conversations.push.limits import tickets
from tests import aio
from tests.conftest import supervisor

PASSWORD = "a-long-password-for-tests-0123"


def run_async(test):
    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        return aio.run(test(*args, **kwargs))

    return wrapper


@pytest.fixture
def staff(django_user_model):
    return supervisor(
        django_user_model.objects.create_user("staff", password=PASSWORD, is_staff=True)
    )


def django_asgi():
    """The ASGI application as uvicorn calls it (which serves /stream/ itself)."""
    from dashboard_project.asgi import application

    return application


async def session_cookie(user) -> str:
    def login() -> str:
        client = Client()
        client.force_login(user)
        connections.close_all()  # this helper thread keeps no connection
        return client.cookies[django_settings.SESSION_COOKIE_NAME].value

    return await sync_to_async(login)()


def scope(cookie: str, query: bytes = b"topic=live") -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/stream/",
        "raw_path": b"/stream/",
        "query_string": query,
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"accept", b"text/event-stream"),
            (b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={cookie}".encode()),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
    }


class Connection:
    """One client connection to the ASGI app: it leaves when `leave` is set."""

    def __init__(self) -> None:
        self.leave = asyncio.Event()
        self.opened = asyncio.Event()
        self.status: int | None = None
        self.body = b""
        self._asked = 0

    async def receive(self) -> dict:
        self._asked += 1
        if self._asked == 1:
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.leave.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")
            if b": open" in self.body:
                self.opened.set()


@pytest.fixture
def in_process(settings):
    settings.PUSH_URL = ""
    settings.DASHBOARD_PUSH = True
    yield
    fanout.reset()
    # What a leaked stream left behind must not reach the next test.
    with tickets._lock:
        tickets._by_user.clear()
        tickets._total = 0
    with hub._lock:
        hub._all.clear()
        hub._by_topic.clear()


async def served(request) -> None:
    """Serve one request to its end. Django's handler, cancelled mid-chain by the disconnect, may
    raise on its way out ("CurrentThreadExecutor already quit"): a server logs that and goes on;
    what matters here is what the request left behind."""
    task = request if isinstance(request, asyncio.Task) else asyncio.create_task(request)
    with contextlib.suppress(RuntimeError):  # each request in a task of its own, as a server does
        await asyncio.wait_for(task, 10)


def helper_threads() -> set[threading.Thread]:
    """Threads other than the loop's default executor (`asyncio_N`, shared and bounded)."""
    return {t for t in threading.enumerate() if not t.name.startswith("asyncio_")}


# --- 1. An open stream pins a thread (and, with it, a database connection)


@pytest.mark.django_db(transaction=True)
@run_async
async def test_an_open_stream_pins_no_thread(staff, in_process):
    """The issue: "A stream must not pin a thread"; README: "A stream waits on an event loop, not
    in a thread". Django's ASGI handler runs each request in a ThreadSensitiveContext whose
    executor thread (used by the sync middleware and `request.auser()`) lives until the request
    ends: for a stream, until the stream ends. Measured under uvicorn: 8 open streams, 8 more
    threads in the process."""
    app = django_asgi()
    cookie = await session_cookie(staff)
    before = helper_threads()
    clients = [Connection() for _ in range(4)]
    tasks = [asyncio.create_task(app(scope(cookie), c.receive, c.send)) for c in clients]
    try:
        await asyncio.wait_for(asyncio.gather(*(c.opened.wait() for c in clients)), 10)
        assert all(c.status == 200 for c in clients)
        pinned = helper_threads() - before
        assert len(pinned) < len(clients), f"{len(pinned)} threads held by 4 idle streams"
    finally:
        for c in clients:
            c.leave.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)


@pytest.mark.django_db(transaction=True)
@run_async
async def test_an_open_stream_holds_no_database_connection(staff, in_process):
    """Every connection a stream's session and user lookups open is closed again while the
    stream stays open. Through Django's handler each open stream kept one (measured under uvicorn
    on PostgreSQL: 8 open streams, 8 connections in pg_stat_activity; max_connections is 100 by
    default, DASHBOARD_STREAMS_MAX 2,000: the 100th stream took the database from every page)."""
    app = django_asgi()
    cookie = await session_cookie(staff)
    test_thread = threading.get_ident()
    opened: list = []

    def created(sender, connection, **kwargs):
        if threading.get_ident() != test_thread:
            opened.append(connection)

    connection_created.connect(created)
    clients = [Connection() for _ in range(3)]
    tasks = [asyncio.create_task(app(scope(cookie), c.receive, c.send)) for c in clients]
    try:
        await asyncio.wait_for(asyncio.gather(*(c.opened.wait() for c in clients)), 10)
        await asyncio.sleep(0.2)
        still_open = [c for c in opened if c.connection is not None]
        assert still_open == [], f"{len(still_open)} connections held by 3 idle streams"
    finally:
        connection_created.disconnect(created)
        for c in clients:
            c.leave.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)


# --- 2. A client that leaves between admission and the first byte leaks its place


@pytest.mark.django_db(transaction=True)
@run_async
async def test_a_client_that_leaves_before_the_first_byte_gives_its_place_back(
    staff, in_process, monkeypatch
):
    """The view admits the stream (ticket + hub subscription) and returns the EventStream; the
    response then travels back through the sync middleware (thread hops: await points). A client
    that disconnects meanwhile makes Django cancel run_get_response: `response` stays None, so
    EventStream.close() (the only release) is never called. The ticket and the subscription stay
    forever; after DASHBOARD_STREAMS_PER_USER such disconnects (page reloads or navigations while
    the stream connects), the user gets 429 on every stream until the process restarts."""
    app = django_asgi()
    cookie = await session_cookie(staff)
    client = Connection()
    admit = tickets.admit

    def admit_then_leave(user_pk):
        refusal = admit(user_pk)
        client.leave.set()  # the browser navigated away just now
        return refusal

    monkeypatch.setattr(tickets, "admit", admit_then_leave)
    await served(app(scope(cookie), client.receive, client.send))
    assert tickets.held(staff.pk) == 0, "the stream's ticket was never given back"
    assert hub.count() == 0, "the stream's subscription stayed in the hub"


@pytest.mark.django_db(transaction=True)
@run_async
async def test_leaving_before_the_first_byte_does_not_lock_the_user_out(
    staff, in_process, monkeypatch, settings
):
    settings.DASHBOARD_STREAMS_PER_USER = 2
    app = django_asgi()
    cookie = await session_cookie(staff)
    admit = tickets.admit
    current: list[Connection] = []

    def admit_then_leave(user_pk):
        refusal = admit(user_pk)
        current[-1].leave.set()
        return refusal

    monkeypatch.setattr(tickets, "admit", admit_then_leave)
    for _ in range(3):  # three quick reloads
        current.append(Connection())
        await served(app(scope(cookie), current[-1].receive, current[-1].send))
    monkeypatch.setattr(tickets, "admit", admit)
    page = Connection()
    task = asyncio.create_task(app(scope(cookie), page.receive, page.send))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(page.opened.wait(), 5)
    page.leave.set()
    await served(task)
    assert page.status == 200, f"the next page's stream got {page.status}: {page.body[:80]!r}"
