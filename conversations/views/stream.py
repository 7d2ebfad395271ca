"""The stream, /stream/?topic=…: server-sent events that tell an open page what changed.

The page names what it shows (`live`, `conversation:<CON-id>`, `user:<USR-id>`); the stream sends
a small notice per change (`event: events`, `data: {"after": 12}`) and a comment every
DASHBOARD_STREAM_HEARTBEAT_SECONDS so that proxies keep it open. The page then fetches the partial
it needs with htmx, through the same views and permissions as a page load: no HTML and no
customer data travel on the stream.

An async view under the ASGI server: a stream waits on its event loop and holds no thread. It is
refused like a page (anonymous: to the login page; not staff: 403), past the per-user or server
limits (429), and under WSGI (503: a WSGI server would pin a thread per stream); each refusal
leaves the page polling. It ends when the session ends or the user loses access: at once when they
log out or their account changes (an `access` notice), else at the next periodic check.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from importlib import import_module

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.views import redirect_to_login
from django.core.handlers.asgi import ASGIRequest
from django.db import DatabaseError, connections
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils.crypto import constant_time_compare

from conversations.push import fanout
from conversations.push.hub import CLOSE, Subscription, hub
from conversations.push.limits import tickets
from conversations.push.notices import BadTopic, Notice, access_topic, parse_topics

# How long a browser waits before reconnecting a stream that dropped (the SSE `retry:` field).
RECONNECT_MS = 2000
# The shortest time between two messages of the same event name on one stream.
NOTICE_GAP_SECONDS = 0.25


async def stream(request: HttpRequest) -> HttpResponse:
    if request.method != "GET":
        return _plain(405, "GET only.")
    user = await request.auser()
    if not user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if not (user.is_active and user.is_staff):
        return await sync_to_async(_forbidden)(request)
    if not settings.DASHBOARD_PUSH or not isinstance(request, ASGIRequest):
        return _plain(503, "Live streams need the ASGI server; pages poll instead.")
    try:
        topics = parse_topics(request.GET.getlist("topic"))
    except BadTopic:
        return _plain(400, "Name what to follow: topic=live, conversation:<CON-id>, user:<USR-id>.")
    if not await sync_to_async(fanout.ready, thread_sensitive=False)():
        return _plain(503, "Live streams are unavailable for now; pages poll instead.", retry=10)
    refusal = tickets.admit(user.pk)
    if refusal is not None:
        return _plain(429, refusal + " This page polls instead.", retry=30)
    subscription = hub.subscribe([*topics, access_topic(user.pk)], asyncio.get_running_loop())

    def release() -> None:
        hub.unsubscribe(subscription)
        tickets.release(user.pk)

    return EventStream(_events(subscription, user.pk, request.session.session_key), release=release)


# The same refusals as `staff_required` (access.py), made here because this view is async; the
# access test (tests/test_security.py) walks it as anonymous and as non-staff like every page.
stream.staff_required = True  # type: ignore[attr-defined]


class EventStream(StreamingHttpResponse):
    """A text/event-stream answer that gives its place back however it ends (Django closes the
    response after the last byte, or when the client left, even before the first)."""

    def __init__(self, events: AsyncIterator[str], *, release) -> None:
        super().__init__(events, content_type="text/event-stream; charset=utf-8")
        self["Cache-Control"] = "no-cache, no-store, private"
        self["X-Accel-Buffering"] = "no"  # nginx: pass each notice on at once
        self._release = release

    def close(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()
        super().close()


async def _events(
    subscription: Subscription, user_pk: object, session_key: str | None
) -> AsyncIterator[str]:
    """The stream's messages: notices as they come, each event name at most once per
    NOTICE_GAP_SECONDS (a burst, such as a backfill storing a hundred events, makes one fetch
    now and one at the end of the gap, not a hundred), and a comment when there is nothing."""
    loop = asyncio.get_running_loop()
    heartbeat = settings.DASHBOARD_STREAM_HEARTBEAT_SECONDS
    checked_at = quiet_since = loop.time()
    sent_at: dict[str, float] = {}  # event name -> when last sent
    held: list[Notice] = []  # notices waiting for their event's gap to pass
    yield f"retry: {RECONNECT_MS}\n: open\n\n"
    while True:
        now = loop.time()
        due = min((sent_at[n.event] + NOTICE_GAP_SECONDS for n in held), default=None)
        wait = heartbeat - (now - quiet_since)
        if due is not None:
            wait = min(wait, due - now)
        try:
            first = await asyncio.wait_for(subscription.queue.get(), timeout=max(wait, 0))
            burst = [first, *subscription.pending()]
        except TimeoutError:
            burst = []
        if CLOSE in burst:
            return
        if any(notice.event == "access" for notice in burst) or (
            loop.time() - checked_at >= settings.DASHBOARD_STREAM_RECHECK_SECONDS
        ):
            if not await _allowed(session_key, user_pk):
                return
            checked_at = loop.time()
        now = loop.time()
        waiting = [n for n in held + burst if n.event != "access"]
        ready = [n for n in waiting if now - sent_at.get(n.event, -1e9) >= NOTICE_GAP_SECONDS]
        held = [n for n in waiting if n not in ready]
        text = format_burst(ready)
        if text:
            for notice in ready:
                sent_at[notice.event] = now
            quiet_since = now
            yield text
        elif now - quiet_since >= heartbeat:
            quiet_since = now
            yield ": keep-alive\n\n"


def format_burst(notices: list[Notice]) -> str:
    """One SSE message per event name in a burst (the newest data wins): a page that hears
    `events` once fetches everything new, however many notices were queued."""
    latest: dict[str, dict] = {}
    for notice in notices:
        if notice.event != "access":
            latest.pop(notice.event, None)
            latest[notice.event] = notice.data
    return "".join(
        f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
        for event, data in latest.items()
    )


async def _allowed(session_key: str | None, user_pk: object) -> bool:
    return await sync_to_async(still_allowed, thread_sensitive=False)(session_key, user_pk)


def still_allowed(session_key: str | None, user_pk: object) -> bool:
    """Whether the stream's session still logs in its user, and that user is still active staff
    (the same tests as a page load: the session exists, names the user, and its password hash
    still matches)."""
    if not session_key:
        return False
    try:
        data = import_module(settings.SESSION_ENGINE).SessionStore(session_key).load()
        if str(data.get(SESSION_KEY)) != str(user_pk):
            return False
        user = get_user_model()._default_manager.filter(pk=user_pk).first()
        if user is None or not (user.is_active and user.is_staff):
            return False
        return constant_time_compare(data.get(HASH_SESSION_KEY, ""), user.get_session_auth_hash())
    except DatabaseError:
        return True  # the database is down: the pages say so; the stream does not decide
    finally:
        connections.close_all()  # this thread is the loop's shared pool: keep no connection


def _forbidden(request: HttpRequest) -> HttpResponse:
    return render(request, "403.html", {"title": "Staff only"}, status=403)


def _plain(status: int, text: str, *, retry: int | None = None) -> HttpResponse:
    response = HttpResponse(text, status=status, content_type="text/plain; charset=utf-8")
    response["Cache-Control"] = "no-store"
    if retry is not None:
        response["Retry-After"] = str(retry)
    return response
