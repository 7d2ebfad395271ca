"""What every dashboard view shares: one decorator stack, the request type, reading through the
client, and the small helpers that turn outcomes and query strings into what templates need."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRefresh, HttpResponseStopPolling
from django_htmx.middleware import HtmxDetails

from conversations import display, forms, ids
from conversations.access import staff_required
from conversations.client import (
    BadRequest,
    ConversationClient,
    Outcome,
    StillLoading,
    UpstreamError,
)
from conversations.panels import value_or_stale
from conversations.privacy import sources, viewer


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


# --- the one decorator stack


def canonical_ids(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Redirect an id typed in another case (`con-…`, an upper-case uuid) to the API's spelling."""

    @wraps(view)
    def wrapper(request: HtmxHttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        canonical = {k: ids.canonical(v) if k.endswith("_id") else v for k, v in kwargs.items()}
        if canonical != kwargs:
            url = reverse(request.resolver_match.view_name, kwargs=canonical)
            query = request.META.get("QUERY_STRING", "")
            return redirect(f"{url}?{query}" if query else url)
        return view(request, *args, **kwargs)

    return wrapper


# never_cache: customer data is not kept by browsers or proxies (nor shown by Back after logout).
# Vary: a page URL answers htmx with its swappable region, and a history restore with the page.
DASHBOARD_VIEW = [
    require_GET,
    never_cache,
    vary_on_headers("HX-Request", "HX-History-Restore-Request"),
    staff_required,
    canonical_ids,
]


def as_viewer(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The request's viewer (may they see personal data, how far back) for the privacy policy's
    doors (conversations/privacy/sources.py) while the view runs."""

    @wraps(view)
    def wrapper(request: HtmxHttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with viewer.viewing_as(viewer.of(request.user)):
            return view(request, *args, **kwargs)

    return wrapper


def dashboard_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Every page and panel: GET only, never cached, staff only, canonical ids, the viewer set."""
    for decorator in reversed([*DASHBOARD_VIEW, as_viewer]):
        view = decorator(view)
    return view


def wants_region(request: HtmxHttpRequest) -> bool:
    """An htmx request for a page URL asks for its swappable region (a tab switch, a filter, a
    poll of the list); a history restore (Back after htmx's cache was dropped) gets the page."""
    return bool(request.htmx) and not request.htmx.history_restore_request


# --- reading through the client


def api() -> ConversationClient:
    """The client, through the privacy policy (its answers masked for the viewer)."""
    return sources.api()


def attempt(call: Callable[[], Any]) -> Outcome:
    """One read, as the Outcome that `concurrently` gives for several."""
    try:
        return Outcome(value=call())
    except UpstreamError as exc:
        return Outcome(error=exc)


def shown(outcome: Outcome) -> Any:
    """What a page shows of a read: the fresh value or the last good one, strings capped."""
    return display.shown(value_or_stale(outcome))


def still_loading(outcome: Outcome) -> bool:
    """A read still going on past the page's budget: the region asks again a moment later."""
    return isinstance(outcome.error, StillLoading)


def next_backoff(backoff: int, failed: bool) -> int:
    """One more step after a failure, back to none after a success."""
    return min(backoff + 1, forms.MAX_BACKOFF_STEPS) if failed else 0


# --- answers


def render_panel(
    request: HtmxHttpRequest,
    template: str,
    context: dict[str, Any],
    *,
    degraded: bool = False,
    stop: bool = False,
) -> HttpResponse:
    """A live panel's answer. `stop` answers htmx's "stop polling" (286), which it still swaps,
    so the final state stays on screen."""
    if stop:
        response: HttpResponse = HttpResponseStopPolling(
            render_to_string(template, context, request)
        )
    else:
        response = render(request, template, context)
    return mark_degraded(response, degraded)


def gone(request: HtmxHttpRequest, region: str) -> HttpResponse:
    """A region of a conversation that has since been deleted: say so, and stop its polling.

    htmx does not swap a 404, so the panel would poll on in silence; 286 swaps and stops.
    """
    return render_panel(request, "conversations/gone.html", {"fragment": region}, stop=True)


def mark_degraded(response: HttpResponse, degraded: bool) -> HttpResponse:
    """Tell live.js that this 200 carries a failure banner ("updated N s ago" must not reset)."""
    if degraded:
        response["X-Dashboard-Degraded"] = "1"
    return response


def invalid(
    request: HtmxHttpRequest, form: Any, title: str, *, reset_url: str | None = None
) -> HttpResponse:
    """A 400 page naming the first invalid parameter. htmx does not swap a 400: a panel asking
    with parameters it was never given is told to reload its page (which gives it good ones)."""
    if request.htmx:
        return HttpResponseClientRefresh()
    return render(
        request,
        "conversations/invalid.html",
        {"title": title, "message": forms.first_error(form), "reset_url": reset_url},
        status=400,
    )


def refused(request: HtmxHttpRequest, title: str, message: str) -> HttpResponse:
    return render(
        request, "conversations/invalid.html", {"title": title, "message": message}, status=400
    )


def not_found(request: HtmxHttpRequest, what: str, identifier: str) -> HttpResponse:
    return render(
        request,
        "404.html",
        {"title": f"{what} not found", "what": what, "identifier": identifier},
        status=404,
    )


def page_status(outcome: Outcome, data: Any, others: tuple[Outcome, ...] = ()) -> int:
    """A full page's status: 400 when the API refused a request as asked (a cursor typed by
    staff), 503 when the page's main read failed with nothing to show; a read still loading is a
    page that fills itself in, so 200."""
    if any(isinstance(o.error, BadRequest) for o in (outcome, *others)):
        return 400
    if data is None and outcome.error is not None and not still_loading(outcome):
        return 503
    return 200


# --- URLs


def with_query(url: str, query: dict[str, Any]) -> str:
    query = {k: v for k, v in query.items() if v not in (None, "", False)}
    return f"{url}?{urlencode(query)}" if query else url


_CURSOR = re.compile(rf"\A{forms.CURSOR_PATTERN}\Z")


def cursor_url(url: str, query: dict[str, Any], param: str, page: Any, which: str) -> str | None:
    """A link to the page `which` ("next_cursor") of `page`, keeping the other parameters.

    A cursor the forms would refuse (an upstream value too long or odd) is not linked: the link
    could only lead to a 400.
    """
    cursor = getattr(page, which, None) if page is not None else None
    if not cursor or not _CURSOR.match(cursor):
        return None
    return with_query(url, query | {param: cursor})


def crumbs(*trail: tuple[str, str | None]) -> list[tuple[str, str | None]]:
    """The breadcrumb trail (label, url); the last is the current page (no url)."""
    return list(trail)
