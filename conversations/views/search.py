"""/search/: find conversations in the stored history by number, SIP address, name, id or words
(conversations/store/search.py does the finding). A pasted id goes straight to its page, as the
jump box it replaces did."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from conversations import forms
from conversations.privacy.sources import search

from .base import HtmxHttpRequest, crumbs, dashboard_view, invalid, with_query
from .events import EVENT_TYPE_CHOICES
from .jump import page_of

TEMPLATE = "conversations/search.html"
# Parameters of the page itself, not of what it finds: not carried into paging or export links.
PAGE_ONLY = ("cursor", "conversation", "format")


@dashboard_view
def search_page(request: HtmxHttpRequest) -> HttpResponse:
    url = reverse("conversations:search")
    form = forms.SearchForm(request.GET)
    if not form.is_valid():
        return invalid(request, form, "Search", reset_url=url)
    data = form.cleaned_data
    text = data["q"]
    if text and " " not in text:
        target = page_of(text, data.get("conversation") or "")
        if target:
            return redirect(target)
    query = search.parse(text)
    filters = search.Filters(
        date_start=data.get("date_start"),
        date_end=data.get("date_end"),
        event_type=data.get("event_type") or "",
        live_only=bool(data.get("live")),
    )
    context: dict[str, Any] = {
        "title": f"Search: {text}" if text else "Search",
        "search_text": text,
        "form": form,
        "query": query,
        "breadcrumbs": crumbs(("Search", None)),
        "results": None,
        "event_types": EVENT_TYPE_CHOICES,
        "problem": "",
    }
    status = 200
    try:
        results = search.search(
            query, filters, page_size=data["page_size"], cursor=data.get("cursor") or None
        )
    except search.BadCursor:
        context["problem"] = "That page cursor is not one of the search's: start again."
        status = 400
    except search.TooBroad:
        context["problem"] = (
            "That search took too long: add a word, a date range or an event type to narrow it."
        )
        status = 400
    else:
        keep = {k: v for k, v in request.GET.items() if k not in PAGE_ONLY}
        context |= {
            "results": results,
            "next_url": with_query(url, keep | {"cursor": results.next_cursor})
            if results.next_cursor
            else None,
            "prev_url": with_query(url, keep | {"cursor": results.prev_cursor})
            if results.prev_cursor
            else None,
        }
    return render(request, TEMPLATE, context, status=status)
