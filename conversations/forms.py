"""Validation of every query parameter a page takes, before anything reaches the upstream API.

A value that does not validate gives the page with a clear message (status 400) and no
upstream call.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django import forms
from django.http import QueryDict

from . import dom, exports, ids

PAGE_SIZES = (10, 25, 50, 100)
ORDER_CHOICES = (("desc", "Newest first"), ("asc", "Oldest first"))
CURSOR_PATTERN = r"[A-Za-z0-9+/=_%.~-]{1,1024}"
EVENT_TYPE_PATTERN = r"[A-Za-z0-9][A-Za-z0-9:_.-]{0,99}"
MAX_BACKOFF_STEPS = 6


class FlagField(forms.TypedChoiceField):
    """A flag the page itself sets: "1", or absent. Anything else is refused, not read as yes."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            choices=[("1", "1")], coerce=lambda value: value == "1", empty_value=False, **kwargs
        )


class _PagingForm(forms.Form):
    cursor = forms.RegexField(regex=rf"\A{CURSOR_PATTERN}\Z", required=False, max_length=1024)
    page_size = forms.TypedChoiceField(
        choices=[(n, str(n)) for n in PAGE_SIZES],
        coerce=int,
        required=False,
        empty_value=None,
        label="Per page",
    )
    order = forms.ChoiceField(choices=ORDER_CHOICES, required=False, label="Order")

    default_page_size = 25
    default_order = "desc"

    def __init__(self, data: QueryDict | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")  # "Order", not "Order:", above its field
        # Absent or blank means the default: filled in here, so the selects rendered from this
        # form show what the page really shows.
        if data is not None:
            data = data.copy()
            for name, default in (
                ("order", self.default_order),
                ("page_size", self.default_page_size),
            ):
                if not data.get(name):
                    data[name] = str(default)
        super().__init__(data, **kwargs)


DATE_INPUT_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"]


def utc_time_field(label: str) -> forms.DateTimeField:
    """An optional date and time filter, typed in the browser's picker or by hand, in UTC."""
    return forms.DateTimeField(
        required=False,
        input_formats=DATE_INPUT_FORMATS,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        label=label,
    )


class ConversationListForm(_PagingForm):
    date_start = utc_time_field("Created from (UTC)")
    date_end = utc_time_field("Created to (UTC)")

    # Read from the event store: the API's list has no state (nor a filter by one).
    state = forms.ChoiceField(
        choices=[
            ("", "Any"),
            ("live", "Live"),
            ("ended", "Ended"),
            ("deleted", "Deleted upstream"),
        ],
        required=False,
        label="State",
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


def _clean_event_type(value: str) -> str:
    """One exact event type, or a clear sentence: the API filters by one type, no wildcards."""
    if not value:
        return ""
    if "*" in value or value.endswith(":"):
        raise forms.ValidationError(
            "the API filters by one exact type, such as member:joined; a family such as "
            "member: or member:* cannot be asked for."
        )
    if not re.fullmatch(EVENT_TYPE_PATTERN, value):
        raise forms.ValidationError(
            "a type is letters, digits and : _ . - only, such as member:joined or custom:note."
        )
    return value


class EventsForm(_PagingForm):
    """The events tab's filters: what the tab's form shows, and what its links keep."""

    event_type = forms.CharField(
        required=False,
        max_length=100,
        strip=True,
        label="Type",
        widget=forms.TextInput(attrs={"placeholder": "any type", "autocomplete": "off"}),
    )

    def __init__(self, data: QueryDict | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "id_events_%s")  # the page also has the jump box's fields
        super().__init__(data, **kwargs)
        self.fields["event_type"].widget.attrs["list"] = dom.EVENT_TYPE_OPTIONS

    def clean_event_type(self) -> str:
        return _clean_event_type(self.cleaned_data.get("event_type") or "")


class EventsPollForm(forms.Form):
    """A poll for the events after the newest one shown (the events tab's live edge)."""

    after = forms.IntegerField(min_value=0, max_value=MAX_EVENT_ID)
    order = forms.ChoiceField(choices=ORDER_CHOICES, required=False)
    event_type = forms.CharField(required=False, max_length=100)
    backoff = forms.IntegerField(required=False, min_value=0, max_value=MAX_BACKOFF_STEPS)
    # Sent once the header saw the conversation end: fetch the last events, then stop.
    over = FlagField(required=False)
    # A stored conversation's page: every event id up to `gap` was stored when the page was
    # drawn; once the store has more below the newest shown, the whole tab is drawn again.
    gap = forms.IntegerField(required=False, min_value=0, max_value=MAX_EVENT_ID)
    # Kept so the tab drawn again has the page size it had.
    page_size = forms.TypedChoiceField(
        choices=[(n, str(n)) for n in PAGE_SIZES], coerce=int, required=False, empty_value=None
    )

    def clean_event_type(self) -> str:
        return _clean_event_type(self.cleaned_data.get("event_type") or "")

    def clean_order(self) -> str:
        return self.cleaned_data.get("order") or "desc"


class UserListForm(_PagingForm):
    name = forms.CharField(
        required=False,
        max_length=200,
        strip=True,
        label="Exact name",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    default_order = "asc"


class ExportForm(forms.Form):
    """`?format=csv` or `?format=json` on a page that offers exports; absent or blank: the page."""

    format = forms.ChoiceField(
        choices=[("", "")] + [(name, name.upper()) for name in exports.FORMATS],
        required=False,
        label="Format",
        error_messages={"invalid_choice": "an export is csv or json."},
    )


class PollForm(forms.Form):
    """How far a live or loading region has backed off after failures in a row."""

    backoff = forms.IntegerField(required=False, min_value=0, max_value=MAX_BACKOFF_STEPS)


class PanelForm(PollForm):
    """A live panel of a conversation's page; `over` once the header saw the conversation end."""

    over = FlagField(required=False)


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


class SearchForm(forms.Form):
    """The search box (in every page's header) and the filters beside it on /search/."""

    q = forms.CharField(
        max_length=200,
        required=False,
        strip=True,
        label="Search",
        widget=forms.TextInput(
            attrs={"type": "search", "autocomplete": "off", "spellcheck": "false"}
        ),
    )
    date_start = utc_time_field("Started from (UTC)")
    date_end = utc_time_field("Started to (UTC)")
    event_type = forms.CharField(
        required=False,
        max_length=100,
        strip=True,
        label="With an event of type",
        widget=forms.TextInput(attrs={"placeholder": "any type", "autocomplete": "off"}),
    )
    live = forms.BooleanField(required=False, label="Live only")
    cursor = forms.RegexField(regex=r"\Ao\d{1,7}\Z", required=False, max_length=8)
    page_size = forms.TypedChoiceField(
        choices=[(n, str(n)) for n in PAGE_SIZES],
        coerce=int,
        required=False,
        label="Per page",
    )
    # The page the box is on, when it is a conversation's: a pasted member id goes to its page.
    conversation = forms.CharField(max_length=100, required=False, widget=forms.HiddenInput)

    def __init__(self, data: QueryDict | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        kwargs.setdefault("auto_id", "id_search_%s")  # the header's box has its own ids
        if data is not None and not data.get("page_size"):
            data = data.copy()  # the select then shows the page size the page really uses
            data["page_size"] = "25"
        super().__init__(data, **kwargs)
        self.fields["event_type"].widget.attrs["list"] = dom.EVENT_TYPE_OPTIONS

    def clean_event_type(self) -> str:
        return _clean_event_type(self.cleaned_data.get("event_type") or "")

    def clean_conversation(self) -> str:
        value = self.cleaned_data.get("conversation") or ""
        if value and not ids.is_valid("conversation", value):
            raise forms.ValidationError("That is not a conversation id.")
        return value

    def clean(self) -> dict:
        data = super().clean()
        start, end = data.get("date_start"), data.get("date_end")
        if start and end and start > end:
            raise forms.ValidationError("The start date must be before the end date.")
        return data


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


# An id anywhere in pasted text (a URL holding one works too), its prefix in any case: "icon-1"
# is not one, hence the look-behind.
ID_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])(CON|MEM|USR)-[0-9A-Za-z][0-9A-Za-z-]{0,79}", re.I)
