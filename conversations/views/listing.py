"""The conversation list and the user list: one page each, and its results region.

Asked by htmx, a list URL answers with its results region only: the conversation list's first
page polls it to stay live, and a region still loading asks for itself again.

The conversation list reads the API (it knows every conversation the application still has) and
takes each row's state from the event store; filtered by a state, it reads the store alone.
Its exports (`?format=csv`, `?format=json`) always read the store (which the reconciler fills
from the API's list), with the page's filters: the whole list, not a page of it.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse

from conversations import exports, forms
from conversations.client import BadRequest, Outcome
from conversations.panels import problem, retry_seconds
from conversations.privacy.sources import queries

from .base import (
    HtmxHttpRequest,
    api,
    attempt,
    crumbs,
    cursor_url,
    dashboard_view,
    invalid,
    mark_degraded,
    next_backoff,
    page_status,
    shown,
    still_loading,
    wants_region,
    with_query,
)


@dashboard_view
def conversation_list(request: HtmxHttpRequest) -> HttpResponse:
    url = reverse("conversations:list")
    form = forms.ConversationListForm(request.GET)
    poll = forms.PollForm(request.GET)
    export = forms.ExportForm(request.GET)
    checked = (form, poll, export)
    if not all([f.is_valid() for f in checked]):
        wrong = next(f for f in checked if f.errors)
        return invalid(request, wrong, "Conversations", reset_url=url)
    if export.cleaned_data["format"]:
        return _export(request, form, export.cleaned_data["format"])
    params = form.upstream_params()
    state = form.cleaned_data.get("state") or ""
    if state:
        outcome = _stored_list(form, state)
    else:
        outcome = attempt(lambda: api().list_conversations(**params))
    # The first page is live: new conversations show up on it.
    live = params["cursor"] is None
    context = _results_context(request, url, outcome, poll, live=live, subject="the conversations")
    context |= {
        "rows": _with_states(context["page"]),
        "title": "Conversations",
        "form": form,
        "live_controls": live,
        "first_url": None if live else _first_page(url, request),
        "breadcrumbs": crumbs(("Conversations", None)),
        # The filters as the page has them (not its cursor): the whole list, from the store.
        "export_query": exports.link_queries(
            request.GET, [name for name in form.fields if name != "cursor"]
        ),
    }
    return _answer(request, "conversations/list.html", context, outcome)


def _export(request: HtmxHttpRequest, form: forms.ConversationListForm, fmt: str) -> HttpResponse:
    """The whole filtered list from the event store, whatever page the URL was on."""
    data = form.cleaned_data
    state = data.get("state") or ""
    rows = exports.stored_conversations(
        state=state,
        date_start=data.get("date_start"),
        date_end=data.get("date_end"),
        order=data["order"],
    )
    filename = exports.export_filename("conversations", state, fmt=fmt)
    filters = {
        "state": state,
        "date_start": str(data.get("date_start") or ""),
        "date_end": str(data.get("date_end") or ""),
        "order": data["order"],
    }
    return exports.stream_conversations(
        rows,
        fmt,
        filename=filename,
        recorded=exports.Recorded(request, "conversations", filters),
    )


@dashboard_view
def user_list(request: HtmxHttpRequest) -> HttpResponse:
    url = reverse("conversations:users")
    form = forms.UserListForm(request.GET)
    poll = forms.PollForm(request.GET)
    if not (form.is_valid() and poll.is_valid()):
        return invalid(request, form if form.errors else poll, "Users", reset_url=url)
    data = form.cleaned_data
    outcome = attempt(
        lambda: api().list_users(
            page_size=data["page_size"],
            order=data["order"],
            cursor=data.get("cursor") or None,
            name=data.get("name") or None,
        )
    )
    context = _results_context(request, url, outcome, poll, live=False, subject="the users")
    context |= {
        "title": "Users",
        "form": form,
        "breadcrumbs": crumbs(("Users", None)),
    }
    return _answer(request, "conversations/users.html", context, outcome)


def _stored_list(form: forms.ConversationListForm, state: str) -> Outcome:
    data = form.cleaned_data
    try:
        return Outcome(
            value=queries.conversations_in_state(
                state,
                page_size=data["page_size"],
                order=data["order"],
                cursor=data.get("cursor") or None,
                date_start=data.get("date_start"),
                date_end=data.get("date_end"),
            )
        )
    except queries.BadCursor:
        return Outcome(error=BadRequest("That page cursor is not one of the stored list's."))


def _with_states(page: Any) -> list[dict[str, Any]]:
    """Each conversation with what the store says of it (None when it does not know it)."""
    if page is None:
        return []
    stored = queries.states([c.id for c in page.items])
    return [{"conversation": c, "stored": stored.get(c.id)} for c in page.items]


def _results_context(
    request: HtmxHttpRequest,
    url: str,
    outcome: Outcome,
    poll: forms.PollForm,
    *,
    live: bool,
    subject: str,
) -> dict[str, Any]:
    failed = outcome.error is not None
    backoff = next_backoff(poll.cleaned_data.get("backoff") or 0, failed)
    interval = retry_seconds([outcome.error] if outcome.error else [], backoff)
    rejected = isinstance(outcome.error, BadRequest)
    # A live region polls; one still loading asks for itself again; a refused one never does.
    polls = (live or still_loading(outcome)) and not rejected
    query = {k: v for k, v in request.GET.items() if k not in ("cursor", "backoff")}
    page = shown(outcome)
    return {
        "page": page,
        "problem": problem(subject, outcome.error, interval if polls else None) if failed else None,
        "reset_url": url if request.GET else None,
        "live": live,
        "polls": polls,
        "poll_interval": interval,
        "poll_url": with_query(
            url, {k: v for k, v in request.GET.items() if k != "backoff"} | {"backoff": backoff}
        ),
        "next_url": cursor_url(url, query, "cursor", page, "next_cursor"),
        "prev_url": cursor_url(url, query, "cursor", page, "prev_cursor"),
    }


def _first_page(url: str, request: HtmxHttpRequest) -> str:
    return with_query(url, {k: v for k, v in request.GET.items() if k not in ("cursor", "backoff")})


def _answer(
    request: HtmxHttpRequest, template: str, context: dict[str, Any], outcome: Outcome
) -> HttpResponse:
    if wants_region(request):
        response = render(request, f"{template}#results", context)
    else:
        response = render(request, template, context, status=page_status(outcome, context["page"]))
    return mark_degraded(response, outcome.error is not None)
