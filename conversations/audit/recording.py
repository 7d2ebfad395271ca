"""Writing the audit log: the functions the rest of the code calls.

    audit.record(request, audit.Action.SEARCH, query="...", filters={...})
    audit.record_export(request, "events", filters, rows, object_id=conversation_id)
    for row in audit.audited_rows(request, "events", filters, rows, object_id=...): ...

Who comes from the request (its user, or for a failed login the name typed), the address from
the trusted-proxy reading of login throttling (login_throttle.client_address), the time from the
clock. Details are JSON, cleaned on the way in: strings cut and made storable (PostgreSQL refuses
NUL characters, JSON refuses NaN), lists and mappings bounded, anything else as text. They are
hostile input (a search query is whatever was typed): the audit page escapes them.

One INSERT. Page views are written once the page has been sent (`record_after`), in the request's
thread, so a page does not wait for the commit (measured: bench/audit.py, README "Audit log").
A failure to write is logged at ERROR and does not fail the page: the database that refused the
row is the one the page needs, so the page says so itself when it is really down.
DASHBOARD_AUDIT=false writes nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import itertools
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.http import HttpRequest, HttpResponse

from conversations.login_throttle import client_address

from .models import Action, AuditEntry

logger = logging.getLogger("conversations.audit")

TEXT_LIMIT = 500  # characters of one string in the details
KEY_LIMIT = 100
ITEMS_LIMIT = 50  # items of one list or mapping in the details
DEPTH_LIMIT = 4
USERNAME_LIMIT = AuditEntry._meta.get_field("username").max_length
OBJECT_ID_LIMIT = AuditEntry._meta.get_field("object_id").max_length
_ACTIONS = frozenset(Action.values)


def record(
    request: HttpRequest | None,
    action: Action | str,
    object_id: str = "",
    *,
    username: str | None = None,
    **details: Any,
) -> AuditEntry | None:
    """Append one entry: `request`'s user did `action` on `object_id`. `username` names who
    tried when there is no user (a failed login: the name typed). Returns the entry, or None when
    auditing is off or the row could not be written."""
    entry = entry_for(request, action, object_id, username=username, **details)
    return write(entry) if entry is not None else None


def record_after(
    response: HttpResponse,
    request: HttpRequest,
    action: Action | str,
    object_id: str = "",
    **details: Any,
) -> AuditEntry | None:
    """As `record`, but the row is written once `response` has been sent: the entry is made now
    (its time is the request's), and saved when the server closes the response, after the last
    byte went out, so the page does not wait for the database's commit. Returns the unsaved
    entry (None when auditing is off)."""
    entry = entry_for(request, action, object_id, **details)
    if entry is not None:
        after_response(response, lambda: write(entry))
    return entry


def after_response(response: HttpResponse, work: Callable[[], object]) -> None:
    """Run `work` when `response` is closed: every WSGI server (and Django's test client) closes
    a response after sending it. Through the response's own list of closers, where Django puts
    a file's or a stream's close(), run before request_finished (so before the request's
    database connection may be closed). A failure is logged, never raised into the server."""

    def guarded() -> None:
        try:
            work()
        except Exception:
            logger.exception("audit: a write after the response failed")

    response._resource_closers.append(guarded)


def entry_for(
    request: HttpRequest | None,
    action: Action | str,
    object_id: str = "",
    *,
    username: str | None = None,
    **details: Any,
) -> AuditEntry | None:
    """The entry `record` writes, not saved; None when auditing is off."""
    if action not in _ACTIONS:
        raise ValueError(f"Unknown audit action {action!r}: add it to audit.Action.")
    if not settings.DASHBOARD_AUDIT:
        return None
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        user = None
    if username is None:
        username = user.get_username() if user is not None else ""
    return AuditEntry(
        user_id=user.pk if user is not None else None,
        username=_text(username, USERNAME_LIMIT),
        address=_address(request),
        action=str(action),
        object_id=_text(str(object_id or ""), OBJECT_ID_LIMIT),
        details=_clean(details, 0),
    )


def write(entry: AuditEntry) -> AuditEntry | None:
    """Save a new entry; None (and an ERROR in the log) when the database refused it."""
    try:
        # Inside someone's transaction, a savepoint: a refused row must not break theirs.
        with transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext():
            entry.save()
    except DatabaseError:
        logger.exception(
            "audit: could not record %s %s by %r", entry.action, entry.object_id, entry.username
        )
        return None
    return entry


def record_export(
    request: HttpRequest | None,
    what: str,
    filters: Mapping[str, Any],
    rows: int,
    *,
    object_id: str = "",
    complete: bool = True,
) -> AuditEntry | None:
    """An export of `rows` rows of `what` ("events", "search", "audit"...) with `filters`.
    Call it when the stream ends, in a `finally` so that a download stopped half-way is recorded
    too (complete=False, with the rows sent so far); or wrap the rows in `audited_rows`."""
    return record(
        request,
        Action.EXPORT,
        object_id,
        what=what,
        filters=dict(filters),
        rows=rows,
        complete=complete,
    )


def audited_rows(
    request: HttpRequest | None,
    what: str,
    filters: Mapping[str, Any],
    rows: Iterable[Any],
    *,
    object_id: str = "",
) -> Iterator[Any]:
    """`rows`, counted as they are handed on; the export is recorded when they end, or when the
    response is closed before (the client went away): Django closes a streaming response's
    iterator, which runs the `finally` here. A row handed on counts, sent or not: the count is
    never less than what the client got."""
    count = 0
    complete = False
    try:
        for row in rows:
            count += 1
            yield row
        complete = True
    finally:
        record_export(request, what, filters, count, object_id=object_id, complete=complete)


# --- cleaning what is stored


def _address(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    try:
        return str(ipaddress.ip_address(client_address(request)))
    except ValueError:
        return None  # no address (a test request, a Unix socket)


def _text(value: str, limit: int) -> str:
    """Storable text: no NUL (PostgreSQL refuses it), no lone surrogate, at most `limit`."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    value = value.encode("utf-8", "replace").decode("utf-8")
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _clean(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return _text(value, TEXT_LIMIT)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if depth >= DEPTH_LIMIT:
        return _text(str(value), TEXT_LIMIT)
    if isinstance(value, Mapping):
        items = itertools.islice(value.items(), ITEMS_LIMIT)
        return {_text(str(k), KEY_LIMIT): _clean(v, depth + 1) for k, v in items}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v, depth + 1) for v in itertools.islice(value, ITEMS_LIMIT)]
    return _text(str(value), TEXT_LIMIT)
