"""/audit/: the audit log, for superusers and holders of the audit view permission
(conversations.view_auditentry); other staff get a 403, anonymous visitors the login page.

Newest first, paged by entry id (no COUNT over a table that only grows), filtered by user, action,
object id and time; `?format=csv` streams every matching entry, in batches by id, with cells
neutralised for spreadsheets; that export is itself recorded in the log. Everything shown is
escaped by the template: usernames typed at a failed login and search queries are anyone's input.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from conversations import audit
from conversations.audit.forms import AuditFilterForm
from conversations.audit.models import Action, AuditEntry
from conversations.exports import Echo, neutralise
from conversations.privacy import masking, viewer
from conversations.privacy.roles import VIEW_AUDIT_PERMISSION

from .base import HtmxHttpRequest, crumbs, dashboard_view, invalid, with_query

TEMPLATE = "audit/log.html"
CSV_BATCH = 1000
CSV_COLUMNS = ("time", "username", "user id", "address", "action", "object id", "details")
DETAIL_LIMIT = 300  # characters of one detail shown in the table (the CSV has them whole)
# What an entry's object id links to, by action (the template tags check the id's shape).
LINKS = {
    Action.VIEW_CONVERSATION: "conversation",
    Action.VIEW_USER: "user",
    Action.VIEW_MEMBER: "member",
}


def can_read(user: Any) -> bool:
    return user.has_perm(VIEW_AUDIT_PERMISSION)  # True for every active superuser


@dashboard_view
def audit_log(request: HtmxHttpRequest) -> HttpResponse:
    if not can_read(request.user):
        return render(request, "audit/refused.html", {"title": "Audit log"}, status=403)
    url = reverse("conversations:audit")
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        return invalid(request, form, "Audit log", reset_url=url)
    entries = matching(form)
    if form.cleaned_data["format"] == "csv":
        return export(request, form, entries)
    return page(request, form, entries, url)


def matching(form: AuditFilterForm) -> QuerySet[AuditEntry]:
    data = form.cleaned_data
    entries = AuditEntry.objects.all()
    if data["user"]:
        entries = entries.filter(username=data["user"])
    if data["action"]:
        entries = entries.filter(action=data["action"])
    if data["object_id"]:
        entries = entries.filter(object_id=data["object_id"])
    if data["date_from"]:
        entries = entries.filter(at__gte=data["date_from"])
    if data["date_to"]:
        entries = entries.filter(at__lte=data["date_to"])
    return entries


def page(
    request: HtmxHttpRequest, form: AuditFilterForm, entries: QuerySet[AuditEntry], url: str
) -> HttpResponse:
    data = form.cleaned_data
    size = data["page_size"]
    if data["after"] is not None:  # newer than an entry: read upwards, show newest first
        rows = list(entries.filter(id__gt=data["after"]).order_by("id")[: size + 1])
        newer, rows = len(rows) > size, rows[:size][::-1]
        older = bool(rows) and entries.filter(id__lt=rows[-1].id).exists()
    else:
        if data["before"] is not None:
            entries = entries.filter(id__lt=data["before"])
        rows = list(entries.order_by("-id")[: size + 1])
        older, rows = len(rows) > size, rows[:size]
        newer = data["before"] is not None and bool(rows)
    keep = {k: v for k, v in request.GET.items() if k not in ("before", "after", "format")}
    shown = details_for(request.user)
    context = {
        "title": "Audit log",
        "form": form,
        "entries": [row_of(entry, shown) for entry in rows],
        "prev_url": with_query(url, keep | {"after": rows[0].id}) if newer else None,
        "next_url": with_query(url, keep | {"before": rows[-1].id}) if older else None,
        "csv_url": with_query(url, keep | {"format": "csv"}),
        "reset_url": url,
        "filtered": bool(form.filters()),
        "breadcrumbs": crumbs(("Audit log", None)),
    }
    return render(request, TEMPLATE, context)


def details_for(user: Any) -> Any:
    """What an entry's details look like to this reader: a reader of the log without the
    personal-data permission (a data protection officer in Support) sees the queries and filters
    other staff typed masked like any page (a searched number, an address)."""
    if viewer.of(user).sees_pii:
        return lambda details: details
    return masking.value_of


def row_of(entry: AuditEntry, shown: Any) -> dict[str, Any]:
    """What the table shows of an entry: its details as (name, text) pairs, cut for the page."""
    details = entry.details if isinstance(entry.details, dict) else {"details": entry.details}
    details = shown(details)
    return {
        "entry": entry,
        "link": LINKS.get(entry.action),
        "conversation_id": details.get("conversation_id", ""),
        "details": [(str(name), detail_text(value)) for name, value in details.items()],
    }


def detail_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= DETAIL_LIMIT else text[: DETAIL_LIMIT - 1] + "…"


# --- the CSV export


def export(
    request: HtmxHttpRequest, form: AuditFilterForm, entries: QuerySet[AuditEntry]
) -> StreamingHttpResponse:
    writer = csv.writer(Echo())
    shown = details_for(request.user)

    def lines() -> Iterator[str]:
        yield writer.writerow(CSV_COLUMNS)
        rows = audit.audited_rows(request, "audit", form.filters(), batches(entries))
        try:
            for entry in rows:
                yield writer.writerow([neutralise(cell) for cell in csv_cells(entry, shown)])
        finally:
            rows.close()  # a download stopped half-way is recorded now, with its rows so far

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
    return response


def batches(entries: QuerySet[AuditEntry]) -> Iterator[AuditEntry]:
    """Every entry, newest first, CSV_BATCH at a time by id: short queries, none held open
    while the client reads."""
    before = None
    while True:
        chunk = entries if before is None else entries.filter(id__lt=before)
        rows = list(chunk.order_by("-id")[:CSV_BATCH])
        yield from rows
        if len(rows) < CSV_BATCH:
            return
        before = rows[-1].id


def csv_cells(entry: AuditEntry, shown: Any) -> list[Any]:
    return [
        entry.at.isoformat(),
        entry.username,
        entry.user_id or "",
        entry.address or "",
        entry.action,
        entry.object_id,
        json.dumps(shown(entry.details), ensure_ascii=False, sort_keys=True, default=str),
    ]
