"""/search/: find conversations in the stored history by number, SIP address, name, id or words
(conversations/store/search.py does the finding). A pasted id goes straight to its page, as the
jump box it replaces did."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from conversations import exports, forms
from conversations.privacy import sources, viewer
from conversations.privacy.sources import search

from .base import HtmxHttpRequest, crumbs, dashboard_view, invalid, refused, with_query
from .events import EVENT_TYPE_CHOICES
from .jump import page_of

TEMPLATE = "conversations/search.html"
TOO_BROAD = "That search took too long: add a word, a date range or an event type to narrow it."
# Parameters of the page itself, not of what it finds: not carried into paging or export links.
PAGE_ONLY = ("cursor", "conversation", "format")


@dashboard_view
def search_page(request: HtmxHttpRequest) -> HttpResponse:
    url = reverse("conversations:search")
    form = forms.SearchForm(request.GET)
    export = forms.ExportForm(request.GET)
    for checked in (form, export):
        if not checked.is_valid():
            return invalid(request, checked, "Search", reset_url=url)
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
    fmt = export.cleaned_data["format"]
    if fmt and not (query.empty and not query.literal):
        try:
            return _export(request, query, filters, fmt)
        except search.TooBroad:
            return refused(request, "Search", TOO_BROAD)
    keep = {k: v for k, v in request.GET.items() if k not in PAGE_ONLY}
    context: dict[str, Any] = {
        # The title (the tab's name, kept in the history) masked like a page for Support; the box
        # keeps what the user typed, to change it.
        "title": f"Search: {sources.present(text)}" if text else "Search",
        "search_text": text,
        "export_query": exports.link_queries(request.GET, [k for k in keep if k != "page_size"]),
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
        context["problem"] = TOO_BROAD
        status = 400
    else:
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


def _export(
    request: HtmxHttpRequest, query: search.Query, filters: search.Filters, fmt: str
) -> HttpResponse:
    """Every conversation that matches, newest first, with what matched; each chunk of it read
    under the search's time limit (the first before the response starts: a search that runs out
    then is a 400 page, not a broken file)."""
    masked = not viewer.current().sees_pii
    return exports.stream_conversations(
        search.matching(query, filters),
        fmt,
        filename=exports.export_filename("search", query.text, fmt=fmt),
        extra=exports.ExtraColumn(
            "matched", lambda pks: search.matched(query, filters, pks, masked=masked)
        ),
        around_chunk=search.time_limit,
        recorded=exports.Recorded(
            request,
            "search",
            {
                "q": query.text,
                "date_start": str(filters.date_start or ""),
                "date_end": str(filters.date_end or ""),
                "event_type": filters.event_type,
                "live": filters.live_only,
            },
        ),
    )
