"""A conversation's timeline, /conversations/<id>/timeline/: a live panel of its page, and a page
of its own when opened directly (without htmx, e.g. in a new tab or with scripts off).

Read from the event store only, never from the API (conversations/timeline.py builds it), through
the privacy doors: a conversation older than the viewer may see has no timeline for them, and
personal data in it (numbers in names, DTMF, reasons) is masked as on the other pages. The
conversation's page draws an empty region that fetches the panel at once, then on the page's
refreshes (its timer, or the notices of its stream: new events, members changed, resync) while
the conversation lives; the answer once it is over stops the polling (286). An answer replaces
the chart (#timeline) and, out of band, the table of the same rows (#timeline-table), whose
<details> is not replaced: opened by staff, it stays open. A conversation the store has no
history of gets a short note instead, and its panel keeps asking while it lives: the page asked
the worker to store it, and the chart appears once it has.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from conversations import display, forms, timeline
from conversations.panels import poll_seconds
from conversations.privacy.sources import present, queries

from .base import HtmxHttpRequest, crumbs, dashboard_view, invalid, render_panel, wants_region

TEMPLATE = "conversations/timeline.html"


@dashboard_view
def timeline_panel(request: HtmxHttpRequest, conversation_id: str) -> HttpResponse:
    form = forms.PanelForm(request.GET)
    if not form.is_valid():
        return invalid(request, form, "Timeline")
    context = timeline_context(conversation_id, over=form.cleaned_data["over"])
    if wants_region(request):
        return render_panel(
            request, f"{TEMPLATE}#timeline-answer", context, stop=context["timeline_over"]
        )
    title = context["timeline_conversation_title"]
    context |= {
        "title": f"Timeline: {title}",
        "live_controls": not context["timeline_over"],
        "breadcrumbs": crumbs(
            ("Conversations", reverse("conversations:list")),
            (title, reverse("conversations:detail", args=[conversation_id])),
            ("Timeline", None),
        ),
    }
    return render(request, TEMPLATE, context)


def timeline_context(conversation_id: str, *, over: bool) -> dict[str, Any]:
    """The panel's context. `over`: the page's header saw the conversation end (its flag)."""
    stored = queries.find(conversation_id)
    chart = None
    title = conversation_id
    has_history = queries.has_history(stored)
    if has_history:
        conversation = queries.conversation(stored)
        over = over or conversation.is_over
        # A stored name is as long as a webhook made it.
        title = display.clip(conversation.display_name or conversation.name or conversation_id, 120)
        # Built from the stored rows of a conversation the viewer may see (the door said so);
        # its names and values are then masked for the viewer like any answer of the store.
        chart = present(timeline.build(stored, now=timezone.now(), over=over, title=title))
    return {
        "conversation_id": conversation_id,
        "timeline": chart,
        "timeline_stored": has_history,
        "timeline_over": over,
        "timeline_url": reverse("conversations:timeline", args=[conversation_id]),
        "timeline_conversation_title": title,
        "poll_interval": poll_seconds(0),
    }
