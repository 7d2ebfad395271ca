"""The live board, /live/: the conversations in progress now, read from the event store.

A conversation is live while at least one member's latest state is JOINED and it has not ended or
been deleted upstream (StoredConversation.is_live, kept by ingestion). The board reads only the
store, never the API; asked by htmx, it answers with its rows region, which polls to stay current
(rows appear and leave).
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from conversations import display
from conversations.privacy.sources import queries

from .base import HtmxHttpRequest, crumbs, dashboard_view, wants_region

TEMPLATE = "conversations/live.html"

# The board answers from two small store queries and costs no upstream read, so it can refresh
# more often than the API-bound pages: a conversation shows up (or leaves) within 3 s of the
# webhook that starts (or ends) it.
LIVE_BOARD_SECONDS = 2


def board_seconds() -> int:
    return min(LIVE_BOARD_SECONDS, settings.DASHBOARD_REFRESH_SECONDS)


@dashboard_view
def live_board(request: HtmxHttpRequest) -> HttpResponse:
    now = timezone.now()
    rows, more = queries.live_board(now)
    context = {
        "title": "Live now",
        "rows": display.shown(rows),  # stored names are as long as a webhook made them
        "more": more,
        "limit": queries.LIVE_BOARD_LIMIT,
        "now": now,
        "live_controls": True,
        "poll_interval": board_seconds(),
        "refresh_seconds": board_seconds(),  # "Live: every 2 s" in the live controls
        "poll_url": reverse("conversations:live"),
        "breadcrumbs": crumbs(("Live", None)),
    }
    if wants_region(request):
        return render(request, f"{TEMPLATE}#board", context)
    return render(request, TEMPLATE, context)
