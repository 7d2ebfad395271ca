"""A member's page and a user's page: no live panels, but a page whose reads are still loading
past the budget fetches itself again a moment later.

A member of a conversation the event store has history of is read from the store (no upstream
read); a user's page reads the user from the API and lists, besides, the conversations the store
saw the user in (which stay when the API forgets them).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse

from conversations import display, forms
from conversations.client import BadRequest, NotFound, Outcome, concurrently
from conversations.panels import problem, retry_seconds
from conversations.privacy.sources import queries
from conversations.store.models import StoredConversation

from .base import (
    HtmxHttpRequest,
    api,
    crumbs,
    cursor_url,
    dashboard_view,
    invalid,
    mark_degraded,
    next_backoff,
    not_found,
    page_status,
    shown,
    still_loading,
    wants_region,
    with_query,
)
from .conversation import conversation_title


@dashboard_view
def member_detail(request: HtmxHttpRequest, conversation_id: str, member_id: str) -> HttpResponse:
    poll = forms.PollForm(request.GET)
    if not poll.is_valid():
        return invalid(request, poll, "Member")
    stored = queries.find(conversation_id)
    if queries.has_history(stored):
        return _stored_member(request, stored, member_id)
    client = api()
    outcomes = concurrently(
        member=lambda: client.get_member(conversation_id, member_id),
        conversation=lambda: client.get_conversation(conversation_id),
    )
    if isinstance(outcomes["conversation"].error, NotFound):
        return not_found(request, "Conversation", conversation_id)
    if isinstance(outcomes["member"].error, NotFound):
        return not_found(request, "Member", member_id)
    member = shown(outcomes["member"])
    conversation = shown(outcomes["conversation"])
    title = conversation_title(conversation, conversation_id)
    context = {
        "title": member.label if member else member_id,
        "conversation_id": conversation_id,
        "conversation_title": title,
        "member_id": member_id,
        "member": member,
        "problem": _problem_of(outcomes["member"], "the member"),
        "conversation_problem": _problem_of(outcomes["conversation"], "the conversation"),
        "breadcrumbs": crumbs(
            ("Conversations", reverse("conversations:list")),
            (title, reverse("conversations:detail", args=[conversation_id])),
            ("Members", reverse("conversations:members", args=[conversation_id])),
            (member.label if member else member_id, None),
        ),
    }
    context |= _reload(request, poll, outcomes)
    response = render(
        request,
        "conversations/member.html",
        context,
        status=page_status(outcomes["member"], member),
    )
    return mark_degraded(response, any(o.error for o in outcomes.values()))


def _stored_member(
    request: HtmxHttpRequest, stored: StoredConversation, member_id: str
) -> HttpResponse:
    conversation_id = stored.vonage_id
    member = display.shown(queries.find_member(stored, member_id))
    if member is None:
        return not_found(request, "Member", member_id)
    title = conversation_title(queries.conversation(stored), conversation_id)
    context = {
        "title": member.label,
        "conversation_id": conversation_id,
        "conversation_title": title,
        "member_id": member_id,
        "member": member,
        "from_store": True,
        "deleted_upstream_at": stored.deleted_upstream_at,
        "problem": None,
        "conversation_problem": None,
        "reload_url": None,
        "breadcrumbs": crumbs(
            ("Conversations", reverse("conversations:list")),
            (title, reverse("conversations:detail", args=[conversation_id])),
            ("Members", reverse("conversations:members", args=[conversation_id])),
            (member.label, None),
        ),
    }
    return render(request, "conversations/member.html", context)


@dashboard_view
def user_detail(request: HtmxHttpRequest, user_id: str) -> HttpResponse:
    form = forms.UserDetailForm(request.GET)
    poll = forms.PollForm(request.GET)
    if not (form.is_valid() and poll.is_valid()):
        base = reverse("conversations:user", args=[user_id])
        return invalid(request, form if form.errors else poll, "User", reset_url=base)
    client = api()
    data = form.cleaned_data
    outcomes = concurrently(
        user=lambda: client.get_user(user_id),
        conversations=lambda: client.list_user_conversations(
            user_id, page_size=25, cursor=data.get("conversations_cursor") or None
        ),
        sessions=lambda: client.list_user_sessions(
            user_id, page_size=25, cursor=data.get("sessions_cursor") or None
        ),
    )
    memberships = queries.user_memberships(user_id)
    if isinstance(outcomes["user"].error, NotFound) and not memberships:
        return not_found(request, "User", user_id)
    user = shown(outcomes["user"])
    # Known only from the store (the API no longer has the user): the name its events gave.
    stored_name = next((m.user_name for m in memberships if m.user_name), "")
    conversations = shown(outcomes["conversations"])
    sessions = shown(outcomes["sessions"])
    base = reverse("conversations:user", args=[user_id])
    query = {k: v for k, v in request.GET.items() if k != "backoff"}
    context = {
        "title": user.label if user else stored_name or user_id,
        "user_id": user_id,
        "profile": user,
        "memberships": memberships,
        "user_from_store": user is None and isinstance(outcomes["user"].error, NotFound),
        "stored_name": stored_name,
        "conversations": conversations,
        "sessions": sessions,
        "reset_url": base if request.GET else None,
        "problem": None
        if isinstance(outcomes["user"].error, NotFound)
        else _problem_of(outcomes["user"], "the user"),
        "conversations_problem": _problem_of(outcomes["conversations"], "the user's conversations"),
        "sessions_problem": _problem_of(outcomes["sessions"], "the user's sessions"),
        "conversations_next_url": cursor_url(
            base, query, "conversations_cursor", conversations, "next_cursor"
        ),
        "conversations_prev_url": cursor_url(
            base, query, "conversations_cursor", conversations, "prev_cursor"
        ),
        "sessions_next_url": cursor_url(base, query, "sessions_cursor", sessions, "next_cursor"),
        "sessions_prev_url": cursor_url(base, query, "sessions_cursor", sessions, "prev_cursor"),
        "breadcrumbs": crumbs(
            ("Users", reverse("conversations:users")),
            (user.label if user else stored_name or user_id, None),
        ),
    }
    if context["user_from_store"]:
        # The API's "not found" for its lists of a user it no longer has says nothing new.
        for key in ("conversations", "sessions"):
            if isinstance(outcomes[key].error, NotFound):
                context[f"{key}_problem"] = None
    context |= _reload(request, poll, outcomes)
    others = (outcomes["conversations"], outcomes["sessions"])
    status = 200 if context["user_from_store"] else page_status(outcomes["user"], user, others)
    if status == 503 and wants_region(request):
        # The page refreshing its live region (#user-live, on a stream notice): htmx swaps no
        # 5xx, so the store's conversations would not update while the API is down. A 200 with
        # its banners, marked degraded, as the panels answer.
        status = 200
    response = render(request, "conversations/user.html", context, status=status)
    return mark_degraded(response, any(o.error for o in outcomes.values()))


def _problem_of(outcome: Outcome, subject: str) -> Any:
    # Not live: a banner here says "reload the page", unless the page fetches itself again.
    if outcome.error is None:
        return None
    return problem(subject, outcome.error, None)


def _reload(
    request: HtmxHttpRequest, poll: forms.PollForm, outcomes: dict[str, Outcome]
) -> dict[str, Any]:
    """A page with a read still loading past the budget fetches itself again a moment later
    (the read goes on meanwhile, and fills the cache), keeping only its main region."""
    still = [o.error for o in outcomes.values() if still_loading(o)]
    if not still or any(isinstance(o.error, BadRequest) for o in outcomes.values()):
        return {"reload_url": None}
    backoff = next_backoff(poll.cleaned_data.get("backoff") or 0, True)
    query = {k: v for k, v in request.GET.items() if k != "backoff"} | {"backoff": backoff}
    return {
        "reload_url": with_query(request.path, query),
        "reload_seconds": retry_seconds(still, backoff),
    }
