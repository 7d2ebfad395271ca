"""A conversation's events: the Events tab's contents, and the poll that adds new events to it.

The tab shows one page of events (filtered by type, in either order, pageable through history).
On the live edge (the newest page), the poller at /conversations/<id>/events/poll/ asks for the
events after the newest one shown and adds them. When the header sees the conversation end, the
poller's next request carries the header's flag: it fetches the last events and stops, so every
event up to the end is on screen when polling stops.

The tab's exports (`?format=csv`, `?format=json`) are the conversation's whole stored history with
the tab's type filter, every event once, oldest first, whatever the page's order or cursor. A
conversation the store has no history of is read into it first, within the page's budget (as the
worker would); one too long for that is left to the worker, and the answer says to try again.
"""

from __future__ import annotations

import re
from typing import Any

from django.http import HttpResponse, QueryDict
from django.shortcuts import render
from django.urls import reverse

from conversations import display, dom, exports, forms, tasks
from conversations.client import BadRequest, NotFound, Outcome, StillLoading, UpstreamError
from conversations.event_summaries import sender_label, summarize
from conversations.panels import Problem, describe, poll_seconds, problem, retry_seconds
from conversations.privacy.sources import queries
from conversations.store.models import StoredConversation

from .base import (
    HtmxHttpRequest,
    api,
    attempt,
    cursor_url,
    dashboard_view,
    gone,
    invalid,
    next_backoff,
    not_found,
    render_panel,
    shown,
    still_loading,
    with_query,
)

TEMPLATE = "conversations/detail.html"
POLL_PAGE_SIZE = 100  # events one poll adds at most; more waits for the next poll
STORING_RETRY_SECONDS = 30  # an export asked while the worker copies the history: try again then

EVENT_TYPE_CHOICES = (
    "leg:status:update",
    "member:invited",
    "member:joined",
    "member:left",
    "member:media",
    "sip:ringing",
    "sip:answered",
    "sip:hangup",
    "sip:status",
    "rtc:status",
    "rtc:answered",
    "rtc:hangup",
    "audio:dtmf",
    "audio:mute:on",
    "audio:mute:off",
    "audio:play",
    "audio:record",
    "audio:speaking:on",
    "audio:speaking:off",
    "message",
    "conversation:updated",
)


def read_page(client: Any, conversation_id: str, form: forms.EventsForm) -> Any:
    data = form.cleaned_data
    return client.list_events(
        conversation_id,
        page_size=data["page_size"],
        order=data["order"],
        cursor=data.get("cursor") or None,
        event_type=data.get("event_type") or None,
    )


def stored_page(stored: StoredConversation, form: forms.EventsForm) -> Outcome:
    """One page of stored events, as the Outcome an API read gives; a cursor that is not the
    store's (an API cursor kept in a URL from before) is refused as the API refuses a bad one."""
    data = form.cleaned_data
    try:
        return Outcome(
            value=queries.events_page(
                stored,
                page_size=data["page_size"],
                order=data["order"],
                cursor=data.get("cursor") or None,
                event_type=data.get("event_type") or None,
            )
        )
    except queries.BadCursor:
        return Outcome(
            error=BadRequest("That page cursor does not belong to this conversation's history.")
        )


# --- the tab


def tab_context(
    conversation_id: str,
    form: forms.EventsForm,
    outcome: Outcome | None,
    member_names: dict[str, str],
    *,
    over: bool,
    backoff: int,
    interval: int,
    gap: int | None = None,
    params: QueryDict | None = None,
) -> dict[str, Any]:
    """The Events tab. `outcome` is None when the form did not validate (nothing was read): the
    tab then says what is wrong with the filters, inside the page, and reads nothing."""
    events_url = reverse("conversations:events", args=[conversation_id])
    valid = outcome is not None
    data = form.cleaned_data if valid else {}
    order = data.get("order", "desc")
    page = shown(outcome) if outcome else None
    events = page.items if page else []
    rejected = not valid or isinstance(outcome.error, BadRequest)

    # Live only where new events belong on this page: the newest page of a newest-first view,
    # or the last page of an oldest-first one. Live on stale data too (new events are asked for
    # after the newest one shown).
    at_live_edge = valid and (
        (order == "desc" and not data.get("cursor"))
        or (order == "asc" and page is not None and not page.next_cursor)
    )
    live = at_live_edge and not over and page is not None
    # With no data at all, or a read still loading, the whole tab is asked for again; never when
    # the request itself was refused (a bad cursor or type): asking again cannot help.
    retry = not rejected and not live and (page is None or still_loading(outcome))

    if not valid:
        trouble: Problem | None = Problem(
            what="Couldn't show these events",
            why=forms.first_error(form),
            retry_in=None,
            stale_at=None,
            rejected=True,
        )
    elif outcome.error is not None:
        trouble = problem("the events", outcome.error, interval if live or retry else None)
    else:
        trouble = None

    filters = {
        "event_type": data.get("event_type") or "",
        "order": order if order != "desc" else "",
        "page_size": data["page_size"] if valid and data["page_size"] != 25 else "",
    }
    newest = newest_id(events)
    poll_url = reverse("conversations:events_poll", args=[conversation_id])
    newest_first = order == "desc"
    return {
        "events_url": events_url,
        "events": [_row(e, member_names) for e in events],
        "events_form": form,
        "events_problem": trouble,
        "events_live": live,
        "events_retry": retry,
        "events_history": valid and not at_live_edge and not over,
        "events_retry_url": with_query(
            events_url, filters | {"cursor": data.get("cursor"), "backoff": backoff}
        ),
        "poller_url": with_query(poll_url, filters | {"after": newest or 0, "gap": gap}),
        "events_swap": "afterbegin" if newest_first else "beforeend",
        "events_next_url": cursor_url(events_url, filters, "cursor", page, "next_cursor"),
        "events_prev_url": cursor_url(events_url, filters, "cursor", page, "prev_cursor"),
        "events_prev_label": "Newer" if newest_first else "Older",
        "events_next_label": "Older" if newest_first else "Newer",
        "event_types": event_type_choices(events),
        "events_status": 400 if rejected else 200,
        # The tab's filters as the page has them (not its cursor); none when they are invalid.
        "events_export": exports.link_queries(
            params, [name for name in form.fields if name != "cursor"]
        )
        if valid and params is not None
        else None,
    }


def event_type_choices(events: list[Any]) -> list[str]:
    """The usual types, then the others seen on this page (a conversation's own custom:… types)."""
    seen = {
        e.type
        for e in events
        if e.type not in EVENT_TYPE_CHOICES and re.fullmatch(forms.EVENT_TYPE_PATTERN, e.type)
    }
    return [*EVENT_TYPE_CHOICES, *sorted(seen)]


def newest_id(events: list[Any]) -> int | None:
    """The newest event id a poller may ask after; a hostile id outside that range is skipped,
    never put in a URL (the poll form would refuse it on every poll)."""
    return max((e.id for e in events if 0 <= e.id <= forms.MAX_EVENT_ID), default=None)


def _row(event: Any, member_names: dict[str, str], *, new: bool = False) -> dict[str, Any]:
    return {
        "event": event,
        "is_new": new,
        "summary": summarize(event, member_names),
        "sender": sender_label(event, member_names),
    }


# --- the export


def export(request: HtmxHttpRequest, conversation_id: str) -> HttpResponse:
    """The tab's `?format=` answer (the tab's view sends it here): the whole stored history with
    the tab's type filter, oldest first, as a file."""
    form = forms.EventsForm(request.GET)
    export_form = forms.ExportForm(request.GET)
    if not (form.is_valid() and export_form.is_valid()):
        return invalid(request, form if form.errors else export_form, "Events")
    stored = queries.find(conversation_id)
    if not queries.has_history(stored):
        stored, refusal = _read_into_store(request, conversation_id)
        if refusal is not None:
            return refusal
    event_type = form.cleaned_data.get("event_type") or None
    return exports.stream_events(
        stored,
        export_form.cleaned_data["format"],
        event_type=event_type,
        recorded=exports.Recorded(
            request, "events", {"event_type": event_type or ""}, object_id=conversation_id
        ),
    )


def _read_into_store(
    request: HtmxHttpRequest, conversation_id: str
) -> tuple[Any, HttpResponse | None]:
    """(the stored conversation, None), or (None, the page saying why there is no file).

    The page read this conversation from the API (the store had no history of it) and asked the
    worker to store it; staff asking for its file now expect the file. So it is read into the
    store here, as the worker would, within the page's budget for upstream reads. One too long
    for that keeps what was stored (each page of events is), the worker reads the rest, and the
    answer says to try again shortly: the file is made from the store only, never half from
    the API.
    """
    try:
        tasks.store_now(conversation_id)
    except UpstreamError as exc:
        tasks.ask_to_store(conversation_id)
        if isinstance(exc, StillLoading):
            message = (
                "This conversation's history is being copied from the Conversation API into "
                "the event store, which exports are made from. Try the export again in a minute."
            )
        else:
            message = (
                "This conversation's history is not in the event store yet, which exports are "
                f"made from, and it could not be read from the API now. {describe(exc)}"
            )
        response = render(
            request,
            "conversations/invalid.html",
            {"title": "Export", "message": message},
            status=503,
        )
        response["Retry-After"] = str(STORING_RETRY_SECONDS)
        return None, response
    stored = queries.find(conversation_id)
    if stored is None:  # the API does not know it either
        return None, not_found(request, "Conversation", conversation_id)
    return stored, None


# --- the poll


@dashboard_view
def events_poll(request: HtmxHttpRequest, conversation_id: str) -> HttpResponse:
    """The events after the newest one shown: one small upstream read.

    Nothing new answers 204, which htmx does not swap; new events come back as rows to add, with
    the poller replaced (out of band) to ask after the new newest id next time. With `over` (the
    header saw the conversation end), the answer that brings the last events stops polling.
    """
    form = forms.EventsPollForm(request.GET)
    if not form.is_valid():
        return invalid(request, form, "Events")
    data = form.cleaned_data
    after, over, order = data["after"], data["over"], data["order"]
    event_type = data.get("event_type") or None
    stored = queries.find(conversation_id)
    if queries.has_history(stored):
        return _stored_poll(request, stored, data)
    outcome = attempt(
        lambda: api().list_events(
            conversation_id,
            start_id=after + 1,
            order="asc",
            page_size=POLL_PAGE_SIZE,
            event_type=event_type,
            after_end=over,
        )
    )
    if isinstance(outcome.error, NotFound):
        if stored is not None:  # the store knows it, with no events: nothing more will come
            return _stored_poll(request, stored, data | {"over": True})
        return gone(request, dom.EVENT_ROWS)

    answer = _PollAnswer(request, conversation_id, data)
    if isinstance(outcome.error, BadRequest):
        # The API refuses this poll as asked (a type it does not filter by): asking again cannot
        # help, so the banner says why and the poller stops.
        trouble = problem("new events", outcome.error, None)
        return answer.render([], trouble, after, 0, 0, final=True, degraded=True)
    if outcome.error is not None:
        backoff = next_backoff(data.get("backoff") or 0, True)
        interval = retry_seconds([outcome.error], backoff)
        trouble = problem("new events", outcome.error, interval)
        return answer.render([], trouble, after, backoff, interval, degraded=True)

    page = shown(outcome)
    more_new = bool(page.next_cursor)  # more than one poll's worth arrived at once
    final = over and not more_new
    if not page.items and not final:
        if data.get("backoff"):
            # Recovered with nothing new: put the poller back on its normal interval and clear
            # the banner (a 204 would leave both as they were).
            return answer.render([], None, after, 0, poll_seconds(0))
        return HttpResponse(status=204)
    names = _member_names(conversation_id)
    rows = [_row(e, names, new=True) for e in page.items]
    if order == "desc":
        rows.reverse()
    newest = newest_id(page.items) or after
    return answer.render(rows, None, newest, 0, poll_seconds(0), more_new=more_new, final=final)


def _stored_poll(
    request: HtmxHttpRequest, stored: StoredConversation, data: dict[str, Any]
) -> HttpResponse:
    """The events poll from the store: the stored events after the newest one shown."""
    after, order = data["after"], data["order"]
    over = data["over"] or queries.conversation(stored).is_over
    gap = data.get("gap")
    if gap is not None and stored.complete_through > gap:
        # Events missing when the page was drawn have been stored since (the reconciler filled
        # a gap): they belong among the rows shown, not after them, so the tab is drawn again.
        from .conversation import stored_events_tab  # the page's module imports this one

        return stored_events_tab(request, stored, data)
    items, more_new = queries.events_after(
        stored, after, limit=POLL_PAGE_SIZE, event_type=data.get("event_type") or None
    )
    items = display.shown(items)
    final = over and not more_new
    answer = _PollAnswer(request, stored.vonage_id, data)
    if not items and not final:
        if data.get("backoff"):
            return answer.render([], None, after, 0, poll_seconds(0))
        return HttpResponse(status=204)
    names = {m.id: m.label for m in queries.members(stored).items}
    rows = [_row(e, names, new=True) for e in items]
    if order == "desc":
        rows.reverse()
    newest = newest_id(items) or after
    return answer.render(rows, None, newest, 0, poll_seconds(0), more_new=more_new, final=final)


class _PollAnswer:
    """New rows (maybe none), the poller replaced out of band, and the events banner."""

    def __init__(self, request: HtmxHttpRequest, conversation_id: str, data: dict) -> None:
        self.request = request
        self.conversation_id = conversation_id
        self.data = data

    def render(
        self,
        rows: list[dict[str, Any]],
        trouble: Problem | None,
        after: int,
        backoff: int,
        interval: int,
        *,
        more_new: bool = False,
        final: bool = False,
        degraded: bool = False,
    ) -> HttpResponse:
        poll_url = reverse("conversations:events_poll", args=[self.conversation_id])
        data = self.data
        query = {
            "event_type": data.get("event_type") or "",
            "order": data["order"] if data["order"] != "desc" else "",
            "page_size": data.get("page_size") or "",
            "after": after,
            "backoff": backoff,
            "gap": data.get("gap"),
        }
        context = {
            "new_events": rows,
            "conversation_id": self.conversation_id,
            "events_url": reverse("conversations:events", args=[self.conversation_id]),
            "events_problem": trouble,
            "more_new": more_new,
            # The last answer leaves a poller with no URL: nothing asks again.
            "poller_url": None if final else with_query(poll_url, query),
            "poll_interval": interval,
            "events_swap": "beforeend" if data["order"] == "asc" else "afterbegin",
        }
        return render_panel(
            self.request, f"{TEMPLATE}#events-poll", context, degraded=degraded, stop=final
        )


def _member_names(conversation_id: str) -> dict[str, str]:
    """Names for the senders of new events: the (usually cached) member list, or none."""
    page = shown(attempt(lambda: api().list_members(conversation_id)))
    return {m.id: m.label for m in page.items} if page else {}
