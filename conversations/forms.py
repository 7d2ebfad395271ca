"""Validation of every query parameter a page takes, before anything reaches the upstream API.

A value that does not validate gives the page with a clear message (status 400) and no
upstream call.
"""

from __future__ import annotations

import datetime as dt
import re

from django import forms

from . import ids

PAGE_SIZES = (10, 25, 50, 100)
ORDER_CHOICES = (("desc", "Newest first"), ("asc", "Oldest first"))
CURSOR_PATTERN = r"[A-Za-z0-9+/=_%.~-]{1,1024}"
EVENT_TYPE_PATTERN = r"[A-Za-z0-9][A-Za-z0-9:_.-]{0,99}"
MAX_BACKOFF_STEPS = 6


class _PagingForm(forms.Form):
    cursor = forms.RegexField(regex=rf"\A{CURSOR_PATTERN}\Z", required=False, max_length=1024)
    page_size = forms.TypedChoiceField(
        choices=[(n, str(n)) for n in PAGE_SIZES], coerce=int, required=False, empty_value=None
    )
    order = forms.ChoiceField(choices=ORDER_CHOICES, required=False)

    default_page_size = 25
    default_order = "desc"

    def clean_page_size(self) -> int:
        return self.cleaned_data.get("page_size") or self.default_page_size

    def clean_order(self) -> str:
        return self.cleaned_data.get("order") or self.default_order


class ConversationListForm(_PagingForm):
    date_start = forms.DateTimeField(
        required=False,
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        label="Created from (UTC)",
    )
    date_end = forms.DateTimeField(
        required=False,
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        label="Created to (UTC)",
    )

    def clean(self) -> dict:
        data = super().clean()
        start, end = data.get("date_start"), data.get("date_end")
        if start and end and start > end:
            raise forms.ValidationError("The start date must be before the end date.")
        return data

    def upstream_params(self) -> dict:
        data = self.cleaned_data
        return {
            "page_size": data["page_size"],
            "order": data["order"],
            "cursor": data.get("cursor") or None,
            "date_start": _api_time(data.get("date_start")),
            "date_end": _api_time(data.get("date_end")),
        }


# The largest event id a poller asks after; a larger (hostile) upstream id is never put in a URL.
MAX_EVENT_ID = 2**53


class EventsForm(_PagingForm):
    page_size = forms.TypedChoiceField(
        choices=[(n, str(n)) for n in PAGE_SIZES], coerce=int, required=False, empty_value=None
    )
    event_type = forms.RegexField(
        regex=rf"\A{EVENT_TYPE_PATTERN}\Z", required=False, max_length=100, label="Type"
    )
    # Only for polls: the newest event id on screen, and how far the poller has backed off.
    after = forms.IntegerField(required=False, min_value=0, max_value=MAX_EVENT_ID)
    backoff = forms.IntegerField(required=False, min_value=0, max_value=MAX_BACKOFF_STEPS)

    default_page_size = 25


class UserListForm(_PagingForm):
    name = forms.CharField(required=False, max_length=200, strip=True, label="Exact name")
    default_order = "asc"


class PollForm(forms.Form):
    backoff = forms.IntegerField(required=False, min_value=0, max_value=MAX_BACKOFF_STEPS)


class UserDetailForm(forms.Form):
    conversations_cursor = forms.RegexField(
        regex=rf"\A{CURSOR_PATTERN}\Z", required=False, max_length=1024
    )
    sessions_cursor = forms.RegexField(
        regex=rf"\A{CURSOR_PATTERN}\Z", required=False, max_length=1024
    )


class JumpForm(forms.Form):
    id = forms.CharField(max_length=300, strip=True, label="Jump to id")
    conversation = forms.CharField(max_length=100, required=False)

    def clean_conversation(self) -> str:
        value = self.cleaned_data.get("conversation") or ""
        if value and not ids.is_valid("conversation", value):
            raise forms.ValidationError("That is not a conversation id.")
        return value


def _api_time(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    value = value.astimezone(dt.UTC) if value.tzinfo else value
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def first_error(form: forms.Form) -> str:
    """One readable sentence for the first invalid field."""
    for name, errors in form.errors.items():
        label = form.fields[name].label or name if name in form.fields else ""
        prefix = f"{label}: " if label and name != "__all__" else ""
        return f"{prefix}{errors[0]}"
    return "Invalid request."


ID_IN_TEXT = re.compile(r"(CON|MEM|USR)-[0-9A-Za-z][0-9A-Za-z-]{0,79}")
