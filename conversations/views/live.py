"""The live board, /live/: the conversations in progress now, read from the event store.

A conversation is live while at least one member's latest state is JOINED and it has not ended or
been deleted upstream (StoredConversation.is_live, kept by ingestion). The board reads only the
store, never the API; asked by htmx, it answers with its rows region, which polls to stay current
(rows appear and leave).

Above the board, a chart of the conversations started in each of the last 24 hours (one query
the database counts), drawn by the server as SVG; it refreshes with the board (its regions are in
the board's answer, swapped out of band). The counts are shared through the cache for a minute:
every viewer's board refreshes every 2 s, and an hourly count needs no more.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
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


# --- the chart of conversations started per hour

CHART_TOP = 16  # room for the largest count's label
CHART_PLOT = 72  # pixels of the tallest bar
CHART_LABELS = 16  # the hours under the bars
LABEL_EVERY = 6  # hours between two labels


@dataclass(frozen=True)
class HourBar:
    start: dt.datetime
    count: int
    current: bool  # the hour going on: counted so far
    x: str  # the hour's column, in percent of the chart's width
    width: str
    bar_x: str  # the bar inside the column
    bar_width: str
    y: int
    height: int
    title: str  # its text alternative
    label: str  # the hour under the column, every LABEL_EVERY hours, else ""
    label_x: str
    label_anchor: str


def _percent(value: float) -> str:
    return f"{value:.3f}%"


STARTED_CACHE_SECONDS = 60


def started_per_hour(now: dt.datetime) -> list[tuple[dt.datetime, int]]:
    """queries.conversations_started_per_hour, at most a minute old. Counts only (no personal
    data), the same for every viewer; keyed by the hour, so a new hour starts a new window."""
    hour = now.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    key = f"live:started-per-hour:{settings.VONAGE_APPLICATION_ID}:{hour.isoformat()}"
    hours = cache.get(key)
    if not isinstance(hours, list):
        hours = queries.conversations_started_per_hour(now)
        cache.set(key, hours, STARTED_CACHE_SECONDS)
    return hours


def started_chart(now: dt.datetime) -> dict[str, Any]:
    """The chart's bars, scale and accessible name, from queries.conversations_started_per_hour."""
    hours = started_per_hour(now)
    most = max((count for _hour, count in hours), default=0)
    column = 100 / len(hours)
    bars = []
    for index, (start, count) in enumerate(hours):
        height = round(count / most * CHART_PLOT) if most else 0
        height = max(height, 1) if count else 0
        current = index == len(hours) - 1
        clock = f"{start:%H:%M} to {(start + dt.timedelta(hours=1)):%H:%M} UTC"
        started = f"{count} conversation{'' if count == 1 else 's'} started"
        labelled = start.hour % LABEL_EVERY == 0
        anchor = "start" if index < 1 else "end" if index >= len(hours) - 1 else "middle"
        label_x = 0 if anchor == "start" else 100 if anchor == "end" else (index + 0.5) * column
        bars.append(
            HourBar(
                start=start,
                count=count,
                current=current,
                x=_percent(index * column),
                width=_percent(column),
                bar_x=_percent(index * column + column * 0.1),
                bar_width=_percent(column * 0.8),
                y=CHART_TOP + CHART_PLOT - height,
                height=height,
                title=f"{clock}: {started}" + (" so far" if current else ""),
                label=f"{start:%H:%M}" if labelled else "",
                label_x=_percent(label_x),
                label_anchor=anchor,
            )
        )
    total = sum(count for _hour, count in hours)
    title = (
        f"Conversations started per hour over the last {len(hours)} hours (UTC): "
        f"{total} in all, at most {most} in one hour"
    )
    return {
        "started_bars": bars,
        "started_total": total,
        "started_most": most,
        "started_title": title,
        "started_plot_top": CHART_TOP,
        "started_plot_height": CHART_PLOT,
        "started_scale_y": CHART_TOP - 5,
        "started_baseline": CHART_TOP + CHART_PLOT,
        "started_label_y": CHART_TOP + CHART_PLOT + CHART_LABELS - 3,
        "started_height": CHART_TOP + CHART_PLOT + CHART_LABELS,
    }


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
        **started_chart(now),
    }
    if wants_region(request):
        return render(request, f"{TEMPLATE}#board-answer", context)
    return render(request, TEMPLATE, context)
