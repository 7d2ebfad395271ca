"""A conversation's page, and its live panels, each with its own URL.

- the page, at three URLs (the Members tab at /conversations/<id>/ and .../members/, the Events tab
  at .../events/); asked by htmx, a tab URL answers with the tab strip and its panel only;
- the header, .../header/: the conversation's metadata, refreshed while it lives; once it is over,
  its last answer stops polling and tells the other panels to take their last look;
- the members panel, .../members/panel/: each member's full record;
- the events poll, .../events/poll/ (in events.py).

Each reads the event store first: a conversation the store has history of (events, or a deletion
upstream) is shown from it with no upstream read at all; any other is read from the API. One the
API no longer finds but the store knows keeps its pages, from the stored history.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django_htmx.http import trigger_client_event

from conversations import dom, forms, ids, tasks
from conversations.client import NotFound, Outcome, concurrently
from conversations.panels import poll_seconds, problem, retry_seconds
from conversations.privacy import sources
from conversations.privacy.sources import queries
from conversations.store.models import StoredConversation

from . import events
from .base import (
    HtmxHttpRequest,
    api,
    attempt,
    crumbs,
    dashboard_view,
    gone,
    invalid,
    mark_degraded,
    next_backoff,
    not_found,
    page_status,
    render_panel,
    shown,
    wants_region,
    with_query,
)

TEMPLATE = "conversations/detail.html"

# Members whose full record the members panel reads; a conversation rarely has more.
MEMBER_DETAILS_LIMIT = 50


# --- the page and its tabs


@dashboard_view
def conversation_detail(request: HtmxHttpRequest, conversation_id: str) -> HttpResponse:
    return _page(request, conversation_id, "members")


@dashboard_view
def members_tab(request: HtmxHttpRequest, conversation_id: str) -> HttpResponse:
    return _page(request, conversation_id, "members")


@dashboard_view
def events_tab(request: HtmxHttpRequest, conversation_id: str) -> HttpResponse:
    if request.GET.get("format"):  # ?format=csv or json: the tab's export (events.py)
        return events.export(request, conversation_id)
    return _page(request, conversation_id, "events")


def _page(request: HtmxHttpRequest, conversation_id: str, tab: str) -> HttpResponse:
    poll = forms.PollForm(request.GET)
    if not poll.is_valid():
        return invalid(request, poll, "Conversation")
    backoff = poll.cleaned_data.get("backoff") or 0
    events_form = forms.EventsForm(request.GET) if tab == "events" else None

    stored = queries.find(conversation_id)
    if queries.has_history(stored):
        return _stored_page(request, stored, tab, events_form)

    client = api()
    reads: dict[str, Any] = {
        "conversation": lambda: client.get_conversation(conversation_id),
        # Event senders are named from the member list, so both tabs read it.
        "members": lambda: client.list_members(conversation_id),
    }
    if events_form is not None and events_form.is_valid():
        reads["events"] = lambda: events.read_page(client, conversation_id, events_form)
    outcomes = concurrently(**reads)

    if isinstance(outcomes["conversation"].error, NotFound):
        if stored is not None:  # known to the store, no longer to the API: its history
            return _stored_page(request, stored, tab, events_form, unreachable=True)
        if wants_region(request):
            return gone(request, dom.TABS)
        return not_found(request, "Conversation", conversation_id)
    failed = [o.error for o in outcomes.values() if o.error is not None]
    backoff = next_backoff(backoff, bool(failed))
    interval = retry_seconds(failed, backoff)
    if stored is None and outcomes["conversation"].error is None and not wants_region(request):
        # Read from the API because the store lacks it: the worker stores it, so that its next
        # views read the store (asked on a page load only, not on every poll).
        tasks.ask_to_store(conversation_id)

    context = header_context(conversation_id, outcomes["conversation"], backoff, interval)
    over = context["over"]
    context |= _page_frame(conversation_id, tab, context["title"], over)
    context |= members_context(conversation_id, outcomes["members"], over, interval)
    events_status = 200
    if events_form is not None:
        context |= events.tab_context(
            conversation_id,
            events_form,
            outcomes.get("events"),
            context["member_names"],
            over=over,
            backoff=backoff,
            interval=interval,
            params=request.GET,
        )
        events_status = context["events_status"]

    if wants_region(request):
        # htmx does not swap a 4xx: the region answers 200 and says what went wrong inside.
        response = render(request, f"{TEMPLATE}#tabs", context)
    else:
        status = max(page_status(outcomes["conversation"], context["conversation"]), events_status)
        response = render(request, TEMPLATE, context, status=status)
    return mark_degraded(response, bool(failed))


def _page_frame(conversation_id: str, tab: str, title: str, over: bool) -> dict[str, Any]:
    return {
        "tab": tab,
        "tab_links": [
            ("members", "Members", reverse("conversations:members", args=[conversation_id])),
            ("events", "Events", reverse("conversations:events", args=[conversation_id])),
        ],
        "live_controls": not over,
        "breadcrumbs": crumbs(("Conversations", reverse("conversations:list")), (title, None)),
    }


def _stored_page(
    request: HtmxHttpRequest,
    stored: StoredConversation,
    tab: str,
    events_form: forms.EventsForm | None,
    *,
    unreachable: bool = False,
) -> HttpResponse:
    """The page from the event store: no upstream read. The members panel comes whole (the
    store has each member's channel and times), so it does not load itself separately."""
    conversation_id = stored.vonage_id
    interval = poll_seconds(0)
    context = stored_header_context(stored, unreachable=unreachable)
    over = context["over"]
    context |= _page_frame(conversation_id, tab, context["title"], over)
    context |= stored_members_context(stored, over, interval)
    events_status = 200
    if events_form is not None:
        outcome = events.stored_page(stored, events_form) if events_form.is_valid() else None
        context |= events.tab_context(
            conversation_id,
            events_form,
            outcome,
            context["member_names"],
            over=over,
            backoff=0,
            interval=interval,
            gap=stored.complete_through if context["stored_gap"] else None,
            params=request.GET,
        )
        events_status = context["events_status"]
    if wants_region(request):
        return render(request, f"{TEMPLATE}#tabs", context)
    return render(request, TEMPLATE, context, status=events_status)


def stored_events_tab(
    request: HtmxHttpRequest, stored: StoredConversation, poll: dict[str, Any]
) -> HttpResponse:
    """The Events tab drawn again, in answer to its poll (`poll`: the poll's cleaned data): it
    replaces the tabs region rather than adding rows (htmx's HX-Retarget and HX-Reswap)."""
    query = QueryDict(mutable=True)
    for key in ("event_type", "order", "page_size"):
        if poll.get(key):
            query[key] = str(poll[key])
    form = forms.EventsForm(query)
    response = _stored_page(request, stored, "events", form)
    response["HX-Retarget"] = f"#{dom.TABS}"
    response["HX-Reswap"] = "outerHTML"
    return response


def history_context(stored: StoredConversation, *, unreachable: bool = False) -> dict[str, Any]:
    """What the page says about its source: the stored history of a conversation the API no
    longer has (a banner), or a quiet note that the page reads the event store."""
    return {
        "from_store": True,
        "history": {
            "deleted_at": stored.deleted_upstream_at,
            "unreachable": unreachable,
            "last_id": stored.last_event_id,
            "last_event_at": stored.last_event_at,
        }
        if stored.deleted_upstream_at is not None or unreachable
        else None,
        "last_stored_id": stored.last_event_id,
        # Events missing below the newest (webhooks lost or late): the reconciler fills them in.
        "stored_gap": stored.complete_through < stored.last_event_id,
    }


def stored_header_context(
    stored: StoredConversation, *, unreachable: bool = False
) -> dict[str, Any]:
    conversation = queries.conversation(stored)
    # A conversation the API cannot be asked about is as good as over: nothing polls for it.
    over = conversation.is_over or unreachable
    context = header_context(
        stored.vonage_id, Outcome(value=conversation), 0, poll_seconds(0), over=over
    )
    return context | history_context(stored, unreachable=unreachable)


def stored_members_context(stored: StoredConversation, over: bool, interval: int) -> dict[str, Any]:
    context = members_context(
        stored.vonage_id, Outcome(value=queries.members(stored)), over, interval
    )
    context |= {"members_detailed": True, "members_live": not over, "poll_interval": interval}
    return context


def conversation_title(conversation: Any, conversation_id: str) -> str:
    if conversation is None:
        return conversation_id
    return conversation.display_name or conversation.name or conversation_id


# --- the header


@dashboard_view
def header_panel(request: HtmxHttpRequest, conversation_id: str) -> HttpResponse:
    poll = forms.PollForm(request.GET)
    if not poll.is_valid():
        return invalid(request, poll, "Conversation")
    stored = queries.find(conversation_id)
    failed = False
    if queries.has_history(stored):
        context = stored_header_context(stored)
    else:
        outcome = attempt(lambda: api().get_conversation(conversation_id))
        if isinstance(outcome.error, NotFound):
            if stored is None:
                return gone(request, dom.HEADER)
            context = stored_header_context(stored, unreachable=True)
        else:
            failed = outcome.error is not None
            backoff = next_backoff(poll.cleaned_data.get("backoff") or 0, failed)
            interval = retry_seconds([outcome.error] if outcome.error else [], backoff)
            context = header_context(conversation_id, outcome, backoff, interval)
    over = context["over"]
    # The last answer also replaces the live controls ("Live: every 5 s", Pause) out of band.
    context["final"] = over
    response = render_panel(request, f"{TEMPLATE}#header", context, degraded=failed, stop=over)
    if over:
        # After the swap, so the flag the other panels include is on the page when they ask.
        trigger_client_event(response, dom.CONVERSATION_OVER, after="swap")
    return response


def header_context(
    conversation_id: str,
    outcome: Outcome,
    backoff: int,
    interval: int,
    *,
    over: bool | None = None,
) -> dict[str, Any]:
    conversation = shown(outcome)
    if over is None:
        over = bool(conversation and conversation.is_over)
    header_url = reverse("conversations:header", args=[conversation_id])
    return {
        "conversation_id": conversation_id,
        "conversation": conversation,
        "title": conversation_title(conversation, conversation_id),
        "over": over,
        "header_problem": (
            problem("the conversation", outcome.error, None if over else interval)
            if outcome.error
            else None
        ),
        "header_url": with_query(header_url, {"backoff": backoff}),
        "poll_interval": interval,
    }


# --- the members panel


@dashboard_view
def members_panel(request: HtmxHttpRequest, conversation_id: str) -> HttpResponse:
    form = forms.PanelForm(request.GET)
    if not form.is_valid():
        return invalid(request, form, "Conversation")
    over = form.cleaned_data["over"]
    stored = queries.find(conversation_id)
    if queries.has_history(stored):
        return _stored_members_panel(request, stored, over)
    if not sources.may_see(conversation_id):  # older than the viewer's role may see
        return gone(request, dom.MEMBERS_PANEL)
    client = api()
    outcome = attempt(lambda: client.list_members(conversation_id, after_end=over))
    if isinstance(outcome.error, NotFound):
        if stored is not None:
            return _stored_members_panel(request, stored, True)
        return gone(request, dom.MEMBERS_PANEL)
    failed = outcome.error is not None
    backoff = next_backoff(form.cleaned_data.get("backoff") or 0, failed)
    interval = retry_seconds([outcome.error] if outcome.error else [], backoff)
    context = members_context(conversation_id, outcome, over, interval, backoff=backoff)
    # The list has only names and states; each member's record has its channel, times and
    # initiator. Read here, so only the panel's own refresh pays for them.
    context |= _member_details(client, conversation_id, context["members"])
    context["poll_interval"] = interval
    # Once over, one good look and the panel stops; a failed last look is tried again.
    final = over and not failed
    context["members_live"] = not final
    return render_panel(request, f"{TEMPLATE}#members", context, degraded=failed, stop=final)


def _stored_members_panel(
    request: HtmxHttpRequest, stored: StoredConversation, over: bool
) -> HttpResponse:
    """The members panel from the store; its last look once the conversation is over."""
    over = over or queries.conversation(stored).is_over
    context = stored_members_context(stored, over, poll_seconds(0))
    return render_panel(request, f"{TEMPLATE}#members", context, stop=over)


def members_context(
    conversation_id: str, outcome: Outcome, over: bool, interval: int, *, backoff: int = 0
) -> dict[str, Any]:
    page = shown(outcome)
    members = page.items if page else []
    panel_url = reverse("conversations:members_panel", args=[conversation_id])
    return {
        "conversation_id": conversation_id,
        "members": members,
        "members_more": bool(page and page.next_cursor),
        "member_names": {m.id: m.label for m in members},
        "members_problem": (
            problem("the members", outcome.error, None if over else interval)
            if outcome.error
            else None
        ),
        "members_url": with_query(panel_url, {"over": "1" if over else "", "backoff": backoff}),
        "members_detailed": False,
    }


def _member_details(client: Any, conversation_id: str, members: list[Any]) -> dict[str, Any]:
    """Each member's full record, re-read upstream only when the member is new or its state
    changed since the last read (`known_state`): members panels refresh every few seconds."""
    reads = {
        member.id: (
            lambda member=member: client.get_member(
                conversation_id, member.id, known_state=member.state or None
            )
        )
        for member in members[:MEMBER_DETAILS_LIMIT]
        if ids.is_valid("member", member.id)  # a malformed upstream id is never put in a URL
    }
    outcomes = concurrently(**reads) if reads else {}
    detailed = [(shown(outcomes[m.id]) or m) if m.id in outcomes else m for m in members]
    return {
        "members": detailed,
        "members_detailed": True,
        "members_details_partial": len(members) > MEMBER_DETAILS_LIMIT,
        "members_details_limit": MEMBER_DETAILS_LIMIT,
    }
