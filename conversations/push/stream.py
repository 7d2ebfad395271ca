"""The stream, /stream/?topic=…: server-sent events that tell an open page what changed.

The page names what it shows (`live`, `conversation:<CON-id>`, `user:<USR-id>`); the stream sends
a small notice per change (`event: events`, `data: {"after": 12}`) and a comment every
DASHBOARD_STREAM_HEARTBEAT_SECONDS so that proxies keep it open. The page then fetches the partial
it needs with htmx, through the same views and permissions as a page load: no HTML and no
customer data travel on the stream.

Served by the ASGI application itself (dashboard_project/asgi.py sends /stream/ here), not through
Django's handler: that handler gives every request a thread of its own for its synchronous
middleware, kept until the response ends, which for a stream means hours, with the database
connection its session lookup opened. Here a stream is a coroutine on the event loop; the two
synchronous steps (the session and the user, at the start and at each access check) run briefly
in the loop's shared thread pool and close their connection.

Refused like a page (anonymous: to the login page; not staff, or staff whose session has not
passed the second factor it needs: 403), with nothing held or read beyond the session: a bad
topic is a 400, past the per-user or server limits a 429, without a working fan-out a 503. Each
refusal leaves the page polling. A stream ends when its session ends or its user loses access:
at once on logout or any change to the account (an `access` notice), else at the next periodic
check.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIRequest
from django.db import DatabaseError, connections
from django.utils.crypto import constant_time_compare

from conversations import access
from conversations.privacy import viewer

from . import fanout
from .hub import CLOSE, Subscription, hub
from .limits import tickets
from .notices import BadTopic, Notice, access_topic, parse_topics

# How long a browser waits before reconnecting a stream that dropped (the SSE `retry:` field).
RECONNECT_MS = 2000
# The shortest time between two messages of the same event name on one stream.
NOTICE_GAP_SECONDS = 0.25
# After an access notice, the stream checks again this much later too.
ACCESS_SETTLE_SECONDS = 1.0

_HEADERS = [
    (b"cache-control", b"no-cache, no-store, private"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]


# --- who asks


@dataclass(frozen=True)
class Visitor:
    # "anonymous", "forbidden" (logged in, not active staff), "unverified" (staff whose session
    # has not passed the second factor it needs: access.py) or "staff"
    kind: str
    user_pk: Any = None
    # Whether the pages this stream keeps fresh show personal data (conversations/privacy): a
    # change of role makes the page load again, through the new role's masking.
    sees_pii: bool = False


def identify(session_key: str | None) -> Visitor:
    """Who a session logs in, by the same tests as a page load: the session exists and has not
    expired, names a user whose password hash still matches, that user is active staff, and the
    session passed the second factor when the user needs one."""
    if not session_key:
        return Visitor("anonymous")
    try:
        data = import_module(settings.SESSION_ENGINE).SessionStore(session_key).load()
        user_pk = data.get(SESSION_KEY)
        if user_pk is None:
            return Visitor("anonymous")
        model = get_user_model()
        user = model._default_manager.filter(pk=model._meta.pk.to_python(user_pk)).first()
        if user is None or not constant_time_compare(
            data.get(HASH_SESSION_KEY, ""), user.get_session_auth_hash()
        ):
            return Visitor("anonymous")
        if not (user.is_active and user.is_staff):
            return Visitor("forbidden", user.pk)
        if not access.session_second_factor_satisfied(user, data):
            return Visitor("unverified", user.pk)
        return Visitor("staff", user.pk, sees_pii=viewer.of(user).sees_pii)
    finally:
        connections.close_all()  # a thread of the loop's shared pool: keep no connection


async def _identify(session_key: str | None) -> Visitor:
    return await sync_to_async(identify, thread_sensitive=False)(session_key)


async def recheck(session_key: str | None, visitor: Visitor) -> str:
    """ "same", "ended" (logged out, no longer staff, another user) or "role" (the same user,
    now with or without personal data: the page must load again)."""
    try:
        now = await _identify(session_key)
    except DatabaseError:
        return "same"  # the database is down: the pages say so; the stream does not decide
    if now.kind != "staff" or now.user_pk != visitor.user_pk:
        return "ended"
    return "same" if now.sees_pii == visitor.sees_pii else "role"


# --- the endpoint


async def endpoint(scope: dict, receive, send) -> None:
    """The ASGI application for /stream/."""
    request = ASGIRequest(scope, io.BytesIO())
    try:
        request.get_host()  # ALLOWED_HOSTS, as Django checks it for every page
    except DisallowedHost:
        await _plain(send, 400, "Bad request.")
        return
    if request.method != "GET":
        await _plain(send, 405, "GET only.", ((b"allow", b"GET"),))
        return
    session_key = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
    try:
        visitor = await _identify(session_key)
    except DatabaseError:
        await _plain(send, 503, "The database is unavailable; pages poll instead.", retry=10)
        return
    if visitor.kind == "anonymous":
        location = redirect_to_login(request.get_full_path())["Location"]
        await _plain(send, 302, "Log in first.", ((b"location", location.encode()),))
        return
    if visitor.kind == "unverified":
        await _plain(send, 403, "Enter your second factor first.")
        return
    if visitor.kind != "staff":
        await _plain(send, 403, "Staff only.")
        return
    try:
        topics = parse_topics(request.GET.getlist("topic"))
    except BadTopic:
        await _plain(
            send, 400, "Name what to follow: topic=live, conversation:<CON-id>, user:<USR-id>."
        )
        return
    if not await sync_to_async(fanout.ready, thread_sensitive=False)():
        await _plain(
            send, 503, "Live streams are unavailable for now; pages poll instead.", retry=10
        )
        return
    refusal = tickets.admit(visitor.user_pk)
    if refusal is not None:
        await _plain(send, 429, refusal + " This page polls instead.", retry=30)
        return
    subscription = hub.subscribe(
        [*topics, access_topic(visitor.user_pk)], asyncio.get_running_loop()
    )
    try:
        await _serve(events(subscription, visitor, session_key), receive, send)
    finally:
        hub.unsubscribe(subscription)
        tickets.release(visitor.user_pk)


async def _serve(messages: AsyncIterator[str], receive, send) -> None:
    """Send the messages as they come until they end or the client leaves."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"x-accel-buffering", b"no"),  # nginx: pass each notice on at once
                *_HEADERS,
            ],
        }
    )

    async def pump() -> None:
        async for text in messages:
            await send({"type": "http.response.body", "body": text.encode(), "more_body": True})

    async def left() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    pumping, leaving = asyncio.ensure_future(pump()), asyncio.ensure_future(left())
    client_left = False
    try:
        await asyncio.wait({pumping, leaving}, return_when=asyncio.FIRST_COMPLETED)
        client_left = leaving.done() and not leaving.cancelled()
    finally:
        for task in (pumping, leaving):
            task.cancel()
        await asyncio.gather(pumping, leaving, return_exceptions=True)
        await messages.aclose()
    if not client_left:  # the stream ended here (logout, lost access, Redis gone): say it is over
        with contextlib.suppress(Exception):  # unless the client went away meanwhile
            await send({"type": "http.response.body", "body": b"", "more_body": False})


async def events(
    subscription: Subscription, visitor: Visitor, session_key: str | None
) -> AsyncIterator[str]:
    """The stream's messages: notices as they come, each event name at most once per
    NOTICE_GAP_SECONDS (a burst, such as a backfill storing a hundred events, makes one fetch
    now and one at the end of the gap, not a hundred), and a comment when there is nothing."""
    loop = asyncio.get_running_loop()
    heartbeat = settings.DASHBOARD_STREAM_HEARTBEAT_SECONDS
    quiet_since = loop.time()
    check_at = quiet_since + settings.DASHBOARD_STREAM_RECHECK_SECONDS
    sent_at: dict[str, float] = {}  # event name -> when last sent
    held: list[Notice] = []  # notices waiting for their event's gap to pass
    yield f"retry: {RECONNECT_MS}\n: open\n\n"
    while True:
        now = loop.time()
        due = min((sent_at[n.event] + NOTICE_GAP_SECONDS for n in held), default=check_at)
        wait = min(heartbeat - (now - quiet_since), due - now, check_at - now)
        try:
            first = await asyncio.wait_for(subscription.queue.get(), timeout=max(wait, 0))
            burst = [first, *subscription.pending()]
        except TimeoutError:
            burst = []
        if CLOSE in burst:
            return
        told = any(notice.event == "access" for notice in burst)
        if told or loop.time() >= check_at:
            verdict = await recheck(session_key, visitor)
            if verdict == "role":
                yield "event: reload\ndata: {}\n\n"  # live.js loads the page again
                return
            if verdict == "ended":
                return
            # Told: look once more a moment later, as the change may not be saved yet (Django
            # announces a logout before it deletes the session).
            delay = ACCESS_SETTLE_SECONDS if told else settings.DASHBOARD_STREAM_RECHECK_SECONDS
            check_at = loop.time() + delay
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


async def _plain(
    send,
    status: int,
    text: str,
    headers: tuple[tuple[bytes, bytes], ...] = (),
    *,
    retry: int | None = None,
) -> None:
    extra = [(b"retry-after", str(retry).encode())] if retry is not None else []
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                *_HEADERS,
                *headers,
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": text.encode()})
