"""Page views and searches, recorded by URL name: no view has to remember to audit itself.

Which requests are looks (one entry each):
- a page of a conversation (its page and each tab), a member or a user, loaded whole, or reached
  by an htmx navigation (a tab, the events' filters or pages: htmx swaps another region than
  the link or form that asked), or by Back (a history restore);
- a search (/search/ with a query or a filter), whatever it answered (a pasted id answers with a
  redirect to its page, which is then recorded as a view too).

Which are not: refreshes of what is already on screen. Every live region of these pages asks
for itself again (polls, push notices, a region still loading), and htmx says so in its headers:
the element that asked is the one replaced (`HX-Trigger` = `HX-Target`: the header, the members
panel, the user page's conversations, a page fetching itself again), or it is the events tab's
retry (dom.EVENTS_RETRY), or it carries the `backoff` a region adds when it asks again. The
panels' own URLs (header, members panel, events poll) are refreshes by nature.

Headers are the client's to write, so a refresh is only skipped for an object this session has
already had recorded (the session keeps the last SEEN_LIMIT of them, read with the session the
login already loaded, written only the first time an object is seen). A panel or a "refresh" of
something never opened here (a script reading /conversations/<id>/header/ directly) is recorded
as a view, marked `refresh`.

Entries, and the session's note of what it has seen, are written once the page has been sent
(recording.record_after): the page does not wait for either commit. A poll that came before the
note was saved (within milliseconds of its page) would be recorded too, marked `refresh`.

A refused request (not logged in, not staff, a redirect to the canonical id) records nothing: it
showed nothing. A CSV export streamed from an audited URL records itself when its stream ends
(audit.record_export), with its row count.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.contrib.sessions.backends.base import UpdateError
from django.http import HttpRequest, HttpResponse

from conversations import dom

from .models import Action
from .recording import after_response, record_after


@dataclass(frozen=True)
class Audited:
    action: Action
    object_param: str = ""  # the URL parameter naming the object
    refresh_only: bool = False  # a live panel: never a page of its own


_CONVERSATION = "conversation_id"

# URL name -> what a request to it is. tests/test_audit.py checks that every dashboard URL is
# either here or in UNAUDITED, so a new page has to be classified.
AUDITED: dict[str, Audited] = {
    "conversations:detail": Audited(Action.VIEW_CONVERSATION, _CONVERSATION),
    "conversations:members": Audited(Action.VIEW_CONVERSATION, _CONVERSATION),
    "conversations:events": Audited(Action.VIEW_CONVERSATION, _CONVERSATION),
    "conversations:header": Audited(Action.VIEW_CONVERSATION, _CONVERSATION, refresh_only=True),
    "conversations:members_panel": Audited(
        Action.VIEW_CONVERSATION, _CONVERSATION, refresh_only=True
    ),
    "conversations:events_poll": Audited(
        Action.VIEW_CONVERSATION, _CONVERSATION, refresh_only=True
    ),
    "conversations:timeline": Audited(Action.VIEW_CONVERSATION, _CONVERSATION, refresh_only=True),
    "conversations:member": Audited(Action.VIEW_MEMBER, "member_id"),
    "conversations:user": Audited(Action.VIEW_USER, "user_id"),
    "conversations:search": Audited(Action.SEARCH),
}
UNAUDITED: dict[str, str] = {
    "conversations:live": "a list: opening one of its conversations is recorded",
    "conversations:list": "a list: opening one of its conversations is recorded",
    "conversations:users": "a list: opening one of its users is recorded",
    "conversations:jump": "redirects to the page of an id, which is recorded",
    "conversations:stream": "notices carry ids only; the panels they refresh are checked above",
    "conversations:audit": "the log itself, for its readers",
}

# Live regions that ask for another region than themselves (so HX-Trigger != HX-Target).
REFRESHERS_OF_OTHERS = frozenset({dom.EVENTS_RETRY})
SEEN_KEY = "audit.seen"
SEEN_LIMIT = 100
# Answers that showed nothing: not logged in (a redirect), not staff, not GET.
_REFUSED = frozenset({401, 403, 405})


def is_refresh(request: HttpRequest) -> bool:
    """Does this htmx request refresh what is already on screen (a poll, a push, a retry)?"""
    htmx = getattr(request, "htmx", None)
    if not htmx or htmx.history_restore_request:
        return False
    if "backoff" in request.GET:
        return True
    trigger = htmx.trigger
    return bool(trigger) and (trigger == htmx.target or trigger in REFRESHERS_OF_OTHERS)


class AuditMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        match = request.resolver_match
        audited = AUDITED.get(match.view_name) if match is not None else None
        if audited is not None and settings.DASHBOARD_AUDIT:
            self.consider(request, response, audited)
        return response

    def consider(self, request: HttpRequest, response: HttpResponse, audited: Audited) -> None:
        status = response.status_code
        if status in _REFUSED or not request.user.is_authenticated:
            return
        if audited.action == Action.SEARCH:
            self.search(request, response)
            return
        if 300 <= status < 400:
            return  # a redirect (canonical ids): the page it leads to is recorded
        if response.streaming and request.GET.get("format"):
            return  # an export (CSV or JSON): it records itself with its row count
        kwargs = request.resolver_match.kwargs
        object_id = str(kwargs.get(audited.object_param, ""))
        key = f"{audited.action}:{object_id}"
        seen = request.session.get(SEEN_KEY, [])
        refresh = audited.refresh_only or is_refresh(request)
        if refresh and key in seen:
            return
        details: dict[str, object] = {"path": request.get_full_path(), "status": status}
        if audited.action == Action.VIEW_MEMBER:
            details["conversation_id"] = kwargs.get(_CONVERSATION, "")
        if refresh:
            details["refresh"] = True
        record_after(response, request, audited.action, object_id, **details)
        if key not in seen:
            remember(request, response, [*seen[-(SEEN_LIMIT - 1) :], key])

    def search(self, request: HttpRequest, response: HttpResponse) -> None:
        if not any(request.GET.values()):
            return  # the empty search page: nothing was searched
        if response.streaming and request.GET.get("format"):
            return  # an export of the results (CSV or JSON): it records itself
        filters = {
            name: values if len(values) > 1 else values[0]
            for name, values in request.GET.lists()
            if name != "q" and any(values)
        }
        record_after(
            response,
            request,
            Action.SEARCH,
            query=request.GET.get("q", ""),
            filters=filters,
            status=response.status_code,
        )


def remember(request: HttpRequest, response: HttpResponse, seen: list[str]) -> None:
    """Keep `seen` in the session, saved once the page has been sent (as the entry is): the page
    does not wait for the session's write either. When the view changed the session itself
    (rare), the session middleware saves both now, as usual."""
    session = request.session
    changed_by_the_view = session.modified
    session[SEEN_KEY] = seen
    if changed_by_the_view:
        return
    session.modified = False  # not saved now by the session middleware: after the response

    def save() -> None:
        # UpdateError: the session ended meanwhile (a logout in another tab): nothing to keep.
        with contextlib.suppress(UpdateError):
            session.save()

    after_response(response, save)
