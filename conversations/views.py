"""The dashboard's pages: one function view per page, each also answering its htmx fragments.

A view validates its input, reads through the client (several reads at once where a page needs
them), turns upstream failures into a banner with the last good data, and picks the full template
or one of its partials. Templates only present.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from . import forms, ids
from .access import staff_required
from .client import NotFound, Outcome, UpstreamError, concurrently, get_client
from .event_summaries import sender_label, summarize
from .panels import poll_seconds, problem, value_or_stale

# htmx answers 286 to stop polling; the body is still swapped, so the final state stays on screen.
STOP_POLLING = 286


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _fragment(request: HtmxHttpRequest) -> str | None:
    """The id of the element an htmx request targets, or None for a full page.

    A history-restore request (the back button after htmx's cache was dropped) gets the full page.
    """
    if not request.htmx or request.htmx.history_restore_request:
        return None
    return request.htmx.target or ""


def _invalid(request: HtmxHttpRequest, form: Any, title: str) -> HttpResponse:
    if request.htmx:
        # htmx does not swap a 400: have the browser load the URL as a page, with the message.
        return HttpResponseClientRedirect(request.get_full_path())
    return render(
        request,
        "conversations/invalid.html",
        {"title": title, "message": forms.first_error(form)},
        status=400,
    )


def _not_found(request: HtmxHttpRequest, what: str, identifier: str) -> HttpResponse:
    return render(
        request,
        "404.html",
        {"title": f"{what} not found", "what": what, "identifier": identifier},
        status=404,
    )


# never_cache: customer data is not kept by browsers or proxies (nor shown by Back after logout).
dashboard_view = [
    require_GET,
    never_cache,
    vary_on_headers("HX-Request", "HX-Target"),
    staff_required,
]


def _dashboard(view: Any) -> Any:
    for decorator in reversed(dashboard_view):
        view = decorator(view)
    return view


# --- home and jump


@_dashboard
def home(request: HtmxHttpRequest) -> HttpResponse:
    return redirect("conversations:list")


@_dashboard
def jump(request: HtmxHttpRequest) -> HttpResponse:
    """Go to whatever CON-, USR- or MEM- id staff pasted (a URL containing them works too)."""
    form = forms.JumpForm(request.GET)
    if not form.is_valid():
        return _invalid(request, form, "Jump to an id")
    found = {
        m.group(1): m.group(0)
        for m in forms.ID_IN_TEXT.finditer(form.cleaned_data["id"])
        if ids.kind_of(m.group(0))  # well formed, so the redirect's reverse() cannot fail
    }
    conversation_id = found.get("CON")
    # The page the box is on names the conversation a pasted member id belongs to.
    member_context = conversation_id or form.cleaned_data.get("conversation")
    if "MEM" in found and member_context:
        return redirect("conversations:member", member_context, found["MEM"])
    if "MEM" in found:
        message = (
            "A member id is only unique within its conversation: paste the conversation id with "
            "it (for example the member's page URL), or use the box on the conversation's page."
        )
        return render(
            request,
            "conversations/invalid.html",
            {"title": "Jump to an id", "message": message},
            status=400,
        )
    if "USR" in found:
        return redirect("conversations:user", found["USR"])
    if conversation_id:
        return redirect("conversations:detail", conversation_id)
    message = "That is not a conversation (CON-…), member (MEM-…) or user (USR-…) id."
    return render(
        request,
        "conversations/invalid.html",
        {"title": "Jump to an id", "message": message},
        status=400,
    )


# --- conversation list


@_dashboard
def conversation_list(request: HtmxHttpRequest) -> HttpResponse:
    form = forms.ConversationListForm(request.GET)
    poll = forms.PollForm(request.GET)
    if not (form.is_valid() and poll.is_valid()):
        return _invalid(request, form if form.errors else poll, "Conversations")
    params = form.upstream_params()
    backoff = poll.cleaned_data.get("backoff") or 0
    live = params["cursor"] is None
    try:
        page, trouble = get_client().list_conversations(**params), None
        backoff = 0
    except UpstreamError as exc:
        backoff = min(backoff + 1, forms.MAX_BACKOFF_STEPS)
        interval = poll_seconds(backoff, exc.retry_after)
        page = exc.stale
        trouble = problem("Couldn't load the conversations", exc, interval if live else None)
    query = {k: v for k, v in request.GET.items() if k not in ("cursor", "backoff")}
    context = {
        "title": "Conversations",
        "form": form,
        "page": page,
        "problem": trouble,
        "live": live,
        "poll_interval": poll_seconds(backoff, getattr(trouble, "retry_in", None)),
        "poll_url": _with_query(reverse("conversations:list"), query | {"backoff": backoff}),
        "first_url": _with_query(reverse("conversations:list"), query),
        "live_controls": live,
        "next_url": _page_link("conversations:list", query, page, "next_cursor"),
        "prev_url": _page_link("conversations:list", query, page, "prev_cursor"),
        "page_sizes": forms.PAGE_SIZES,
    }
    fragment = _fragment(request)
    template = "conversations/list.html" + ("#results" if fragment == "results" else "")
    response = render(request, template, context, status=_status(fragment, page))
    return _mark_degraded(response, trouble is not None)


# --- conversation detail with its two tabs


@_dashboard
def conversation_detail(request: HtmxHttpRequest, conversation_id: str) -> HttpResponse:
    return _detail(request, conversation_id, "members")


@_dashboard
def members_tab(request: HtmxHttpRequest, conversation_id: str) -> HttpResponse:
    return _detail(request, conversation_id, "members")


@_dashboard
def events_tab(request: HtmxHttpRequest, conversation_id: str) -> HttpResponse:
    return _detail(request, conversation_id, "events")


def _detail(request: HtmxHttpRequest, conversation_id: str, tab: str) -> HttpResponse:
    fragment = _fragment(request)
    poll = forms.PollForm(request.GET)
    events_form = forms.EventsForm(request.GET)
    if not (poll.is_valid() and events_form.is_valid()):
        return _invalid(request, events_form if events_form.errors else poll, "Conversation")
    backoff = poll.cleaned_data.get("backoff") or 0
    # The events poller (#events-poller) swaps new rows into the table body it targets.
    if tab == "events" and fragment == "event-rows":
        return _events_poll(request, conversation_id, events_form)

    client = get_client()
    reads: dict[str, Any] = {"conversation": lambda: client.get_conversation(conversation_id)}
    if fragment != "conversation-header":
        # Event senders are named from the member list, so both tabs read it.
        reads["members"] = lambda: client.list_members(conversation_id)
    if tab == "events" and fragment not in ("conversation-header", "members-panel"):
        reads["events"] = lambda: client.list_events(
            conversation_id,
            page_size=events_form.cleaned_data["page_size"],
            order=events_form.cleaned_data["order"],
            cursor=events_form.cleaned_data.get("cursor") or None,
            event_type=events_form.cleaned_data.get("event_type") or None,
        )
    outcomes = concurrently(**reads)

    conversation_error = outcomes["conversation"].error
    if isinstance(conversation_error, NotFound):
        if fragment:
            return _gone(request, fragment)
        return _not_found(request, "Conversation", conversation_id)
    conversation = value_or_stale(outcomes["conversation"])
    failed = [o.error for o in outcomes.values() if o.error is not None]
    backoff = min(backoff + 1, forms.MAX_BACKOFF_STEPS) if failed else 0
    retry_after = max((e.retry_after or 0 for e in failed), default=0)
    interval = poll_seconds(backoff, retry_after)
    over = bool(conversation and conversation.is_over)

    context: dict[str, Any] = {
        "title": _conversation_title(conversation, conversation_id),
        "conversation_id": conversation_id,
        "conversation": conversation,
        "tab": tab,
        "over": over,
        "poll_interval": interval,
        "backoff": backoff,
        "header_problem": _problem_of(
            outcomes["conversation"], "Couldn't load the conversation", None if over else interval
        ),
        "tab_urls": {
            "members": reverse("conversations:members", args=[conversation_id]),
            "events": reverse("conversations:events", args=[conversation_id]),
        },
        "detail_url": reverse("conversations:detail", args=[conversation_id]),
        "tab_names": (("members", "Members"), ("events", "Events")),
        "page_sizes": forms.PAGE_SIZES,
        "live_controls": not over,
    }
    if "members" in outcomes:
        context.update(_members_context(outcomes["members"], interval, over))
        if fragment == "members-panel":
            # The list has only names and states; each member's record has its channel, times
            # and initiator. Read after the list, so only the panel's own refresh pays for it.
            context.update(_member_details(client, conversation_id, context["members"]))
    if "events" in outcomes:
        context.update(
            _events_context(
                request,
                conversation_id,
                events_form,
                outcomes["events"],
                context.get("member_names", {}),
                interval,
                over,
                backoff,
            )
        )

    if fragment == "conversation-header":
        template, stop = "conversations/detail.html#header", over
    elif fragment == "members-panel":
        template, stop = "conversations/detail.html#members", over
    elif fragment == "tabs":
        template, stop = "conversations/detail.html#tabs", False
    else:
        template, stop = "conversations/detail.html", False
    response = render(request, template, context, status=_status(fragment, conversation))
    _mark_degraded(response, bool(failed))
    if stop:
        response.status_code = STOP_POLLING
        if fragment == "conversation-header":
            # Let the members panel take its final look once the conversation is over.
            response["HX-Trigger"] = "conversation-over"
    return response


def _gone(request: HtmxHttpRequest, fragment: str) -> HttpResponse:
    """A panel of a conversation that has since been deleted: say so, and stop its polling.

    htmx does not swap a 404, so the panel would poll on in silence; 286 swaps and stops.
    """
    response = render(
        request,
        "conversations/gone.html",
        {"fragment": fragment if fragment in GONE_TARGETS else None},
    )
    response.status_code = STOP_POLLING
    return response


# Panels that a deleted conversation's page may still poll or swap.
GONE_TARGETS = ("conversation-header", "members-panel", "tabs", "event-rows")


def _problem_of(outcome: Outcome, what: str, retry_in: int | None) -> Any:
    return problem(what, outcome.error, retry_in) if outcome.error else None


def _members_context(outcome: Outcome, interval: int, over: bool) -> dict[str, Any]:
    members_page = value_or_stale(outcome)
    members = members_page.items if members_page else []
    return {
        "members": members,
        "members_more": bool(members_page and members_page.next_cursor),
        "member_names": {m.id: m.label for m in members},
        "members_problem": _problem_of(
            outcome, "Couldn't load the members", None if over else interval
        ),
    }


# Members whose full record the Members tab reads; a conversation rarely has more.
MEMBER_DETAILS_LIMIT = 50


def _member_details(client: Any, conversation_id: str, members: list[Any]) -> dict[str, Any]:
    reads = {
        member.id: (lambda member_id=member.id: client.get_member(conversation_id, member_id))
        for member in members[:MEMBER_DETAILS_LIMIT]
        if ids.is_valid("member", member.id)  # a malformed upstream id is never put in a URL
    }
    outcomes = concurrently(**reads) if reads else {}
    detailed = [value_or_stale(outcomes[m.id]) or m if m.id in outcomes else m for m in members]
    return {
        "members": detailed,
        "members_detailed": True,
        "members_details_partial": len(members) > MEMBER_DETAILS_LIMIT,
    }


def _events_context(
    request: HtmxHttpRequest,
    conversation_id: str,
    form: forms.EventsForm,
    outcome: Outcome,
    member_names: dict[str, str],
    interval: int,
    over: bool,
    backoff: int,
) -> dict[str, Any]:
    data = form.cleaned_data
    page = value_or_stale(outcome)
    events = page.items if page else []
    order = data["order"]
    # Live only where new events belong on this page: the newest page of a newest-first view,
    # or the last page of an oldest-first one.
    at_live_edge = (order == "desc" and not data.get("cursor")) or (
        order == "asc" and page is not None and not page.next_cursor
    )
    newest = _newest_id(events)
    filters = {
        k: v
        for k, v in {
            "event_type": data.get("event_type") or "",
            "order": order if order != "desc" else "",
            "page_size": data["page_size"] if data["page_size"] != 25 else "",
        }.items()
        if v
    }
    events_url = reverse("conversations:events", args=[conversation_id])
    return {
        "events": [_event_row(e, member_names) for e in events],
        "events_form": form,
        "events_problem": _problem_of(outcome, "Couldn't load the events", interval),
        # Live on stale data too (new events are asked for after the newest one shown); with no
        # data at all, the whole tab is asked for again instead.
        "events_live": at_live_edge and not over and page is not None,
        "events_retry": page is None and not over,
        "events_retry_url": _with_query(events_url, filters | {"backoff": backoff}),
        "poller_url": _with_query(events_url, filters | {"after": newest or 0}),
        "events_swap": "afterbegin" if order == "desc" else "beforeend",
        "events_next_url": _page_link_url(events_url, filters, page, "next_cursor"),
        "events_prev_url": _page_link_url(events_url, filters, page, "prev_cursor"),
        "event_types": EVENT_TYPE_CHOICES,
    }


def _events_poll(
    request: HtmxHttpRequest, conversation_id: str, form: forms.EventsForm
) -> HttpResponse:
    """A poll for events newer than the newest one shown: one small upstream read.

    Nothing new answers 204, which htmx does not swap; new events come back as rows to add, with
    the poller replaced (out of band) to ask after the new newest id next time.
    """
    data = form.cleaned_data
    after = data.get("after")
    if after is None:
        return HttpResponse(status=204)
    backoff = data.get("backoff") or 0
    order = data["order"]
    try:
        page = get_client().list_events(
            conversation_id,
            start_id=after + 1,
            order="asc",
            page_size=100,
            event_type=data.get("event_type") or None,
        )
    except NotFound:
        return _gone(request, "event-rows")
    except UpstreamError as exc:
        backoff = min(backoff + 1, forms.MAX_BACKOFF_STEPS)
        interval = poll_seconds(backoff, exc.retry_after)
        trouble = problem("Couldn't check for new events", exc, interval)
        return _mark_degraded(
            _poll_answer(request, conversation_id, [], trouble, after, backoff, interval), True
        )
    if not page.items:
        if backoff:
            # Recovered with nothing new: put the poller back on its normal interval and clear
            # the banner (a 204 would leave both as they were).
            return _poll_answer(request, conversation_id, [], None, after, 0, poll_seconds(0))
        return HttpResponse(status=204)
    names = _member_names(conversation_id)
    rows = [_event_row(e, names, new=True) for e in page.items]
    if order == "desc":
        rows.reverse()
    newest = _newest_id(page.items) or after
    return _poll_answer(
        request,
        conversation_id,
        rows,
        None,
        newest,
        0,
        poll_seconds(0),
        more_new=bool(page.next_cursor),  # more than one poll's worth arrived at once
    )


def _poll_answer(
    request: HtmxHttpRequest,
    conversation_id: str,
    rows: list[dict[str, Any]],
    trouble: Any,
    after: int,
    backoff: int,
    interval: int,
    *,
    more_new: bool = False,
) -> HttpResponse:
    """New rows (maybe none), the poller replaced out of band, and the events banner."""
    return render(
        request,
        "conversations/detail.html#events-poll",
        {
            "new_events": rows,
            "conversation_id": conversation_id,
            "tab_urls": {"events": request.path},
            "events_problem": trouble,
            "more_new": more_new,
            "poller_url": _poll_url(request, after, backoff),
            "poll_interval": interval,
            "events_swap": "beforeend" if request.GET.get("order") == "asc" else "afterbegin",
        },
    )


def _newest_id(events: list[Any]) -> int | None:
    """The newest event id a poller may ask after; a hostile id outside that range is skipped,
    never put in a URL (the poll form would refuse it on every poll)."""
    return max((e.id for e in events if 0 <= e.id <= forms.MAX_EVENT_ID), default=None)


def _member_names(conversation_id: str) -> dict[str, str]:
    """Names for the senders of new events: the (usually cached) member list, or none."""
    try:
        page = get_client().list_members(conversation_id)
    except UpstreamError as exc:
        page = exc.stale
    return {m.id: m.label for m in page.items} if page else {}


def _poll_url(request: HtmxHttpRequest, after: int, backoff: int) -> str:
    query = {k: v for k, v in request.GET.items() if k not in ("after", "backoff", "cursor")}
    query["after"] = after
    if backoff:
        query["backoff"] = backoff
    return _with_query(request.path, query)


def _event_row(event: Any, member_names: dict[str, str], *, new: bool = False) -> dict[str, Any]:
    return {
        "event": event,
        "is_new": new,
        "summary": summarize(event, member_names),
        "sender": sender_label(event, member_names),
    }


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


def _conversation_title(conversation: Any, conversation_id: str) -> str:
    if conversation is None:
        return conversation_id
    return conversation.display_name or conversation.name or conversation_id


# --- member


@_dashboard
def member_detail(request: HtmxHttpRequest, conversation_id: str, member_id: str) -> HttpResponse:
    client = get_client()
    outcomes = concurrently(
        member=lambda: client.get_member(conversation_id, member_id),
        conversation=lambda: client.get_conversation(conversation_id),
    )
    if isinstance(outcomes["conversation"].error, NotFound):
        return _not_found(request, "Conversation", conversation_id)
    if isinstance(outcomes["member"].error, NotFound):
        return _not_found(request, "Member", member_id)
    member = value_or_stale(outcomes["member"])
    conversation = value_or_stale(outcomes["conversation"])
    context = {
        "title": member.label if member else member_id,
        "conversation_id": conversation_id,
        "conversation_title": _conversation_title(conversation, conversation_id),
        "member_id": member_id,
        "member": member,
        "problem": _problem_of(outcomes["member"], "Couldn't load the member", None),
        "conversation_problem": _problem_of(
            outcomes["conversation"], "Couldn't load the conversation", None
        ),
    }
    return render(request, "conversations/member.html", context, status=_status(None, member))


# --- users


@_dashboard
def user_list(request: HtmxHttpRequest) -> HttpResponse:
    form = forms.UserListForm(request.GET)
    if not form.is_valid():
        return _invalid(request, form, "Users")
    data = form.cleaned_data
    try:
        page, trouble = (
            get_client().list_users(
                page_size=data["page_size"],
                order=data["order"],
                cursor=data.get("cursor") or None,
                name=data.get("name") or None,
            ),
            None,
        )
    except UpstreamError as exc:
        page, trouble = exc.stale, problem("Couldn't load the users", exc, None)
    query = {k: v for k, v in request.GET.items() if k != "cursor"}
    context = {
        "title": "Users",
        "form": form,
        "page": page,
        "problem": trouble,
        "next_url": _page_link("conversations:users", query, page, "next_cursor"),
        "prev_url": _page_link("conversations:users", query, page, "prev_cursor"),
    }
    return render(request, "conversations/users.html", context, status=_status(None, page))


@_dashboard
def user_detail(request: HtmxHttpRequest, user_id: str) -> HttpResponse:
    form = forms.UserDetailForm(request.GET)
    if not form.is_valid():
        return _invalid(request, form, "User")
    client = get_client()
    outcomes = concurrently(
        user=lambda: client.get_user(user_id),
        conversations=lambda: client.list_user_conversations(
            user_id, page_size=25, cursor=form.cleaned_data.get("conversations_cursor") or None
        ),
        sessions=lambda: client.list_user_sessions(
            user_id, page_size=25, cursor=form.cleaned_data.get("sessions_cursor") or None
        ),
    )
    if isinstance(outcomes["user"].error, NotFound):
        return _not_found(request, "User", user_id)
    user = value_or_stale(outcomes["user"])
    conversations = value_or_stale(outcomes["conversations"])
    sessions = value_or_stale(outcomes["sessions"])
    base = reverse("conversations:user", args=[user_id])
    query = dict(request.GET.items())
    context = {
        "title": user.label if user else user_id,
        "user_id": user_id,
        "profile": user,
        "conversations": conversations,
        "sessions": sessions,
        "problem": _problem_of(outcomes["user"], "Couldn't load the user", None),
        "conversations_problem": _problem_of(
            outcomes["conversations"], "Couldn't load the user's conversations", None
        ),
        "sessions_problem": _problem_of(
            outcomes["sessions"], "Couldn't load the user's sessions", None
        ),
        "conversations_next_url": _cursor_url(
            base, query, "conversations_cursor", conversations, "next_cursor"
        ),
        "conversations_prev_url": _cursor_url(
            base, query, "conversations_cursor", conversations, "prev_cursor"
        ),
        "sessions_next_url": _cursor_url(base, query, "sessions_cursor", sessions, "next_cursor"),
        "sessions_prev_url": _cursor_url(base, query, "sessions_cursor", sessions, "prev_cursor"),
    }
    return render(request, "conversations/user.html", context, status=_status(None, user))


# --- helpers


def _mark_degraded(response: HttpResponse, degraded: bool) -> HttpResponse:
    """Tell live.js that this 200 carries a failure banner ("updated N s ago" must not reset)."""
    if degraded:
        response["X-Dashboard-Degraded"] = "1"
    return response


def _status(fragment: str | None, data: Any) -> int:
    """200 whenever there is something to show; 503 for a full page that has nothing.

    Fragments are always 200: htmx does not swap error responses, and the banner must show.
    """
    if fragment is None and data is None:
        return 503
    return 200


def _with_query(url: str, query: dict[str, Any]) -> str:
    query = {k: v for k, v in query.items() if v not in (None, "")}
    return f"{url}?{urlencode(query)}" if query else url


def _page_link(url_name: str, query: dict[str, Any], page: Any, which: str) -> str | None:
    return _page_link_url(reverse(url_name), query, page, which)


def _page_link_url(url: str, query: dict[str, Any], page: Any, which: str) -> str | None:
    cursor = getattr(page, which, None) if page is not None else None
    if not cursor:
        return None
    return _with_query(url, {k: v for k, v in query.items() if k != "cursor"} | {"cursor": cursor})


def _cursor_url(url: str, query: dict[str, Any], param: str, page: Any, which: str) -> str | None:
    cursor = getattr(page, which, None) if page is not None else None
    if not cursor:
        return None
    return _with_query(url, query | {param: cursor})
