"""The /audit/ page's query parameters: filters, paging and format, validated before any query
(a bad value is a 400 naming it, as on every page)."""

from __future__ import annotations

from typing import Any

from django import forms

from conversations.forms import utc_time_field

from .models import Action, AuditEntry

PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50


class AuditFilterForm(forms.Form):
    user = forms.CharField(
        required=False,
        strip=True,
        max_length=AuditEntry._meta.get_field("username").max_length,
        label="User",
        help_text="The username exactly (for a failed login: the name typed).",
    )
    action = forms.ChoiceField(
        choices=[("", "any action"), *Action.choices], required=False, label="Action"
    )
    object_id = forms.CharField(
        required=False,
        strip=True,
        max_length=AuditEntry._meta.get_field("object_id").max_length,
        label="Object id",
    )
    date_from = utc_time_field("From (UTC)")
    date_to = utc_time_field("To (UTC)")
    page_size = forms.TypedChoiceField(
        choices=[(n, str(n)) for n in PAGE_SIZES],
        coerce=int,
        required=False,
        empty_value=DEFAULT_PAGE_SIZE,
        label="Per page",
    )
    # Paging: entries older than the entry `before`, or newer than the entry `after` (ids).
    before = forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    after = forms.IntegerField(required=False, min_value=0, max_value=2**63 - 1)
    format = forms.ChoiceField(choices=[("", "page"), ("csv", "CSV")], required=False)

    FILTERS = ("user", "action", "object_id", "date_from", "date_to")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            raise forms.ValidationError("“From” is after “To”.")
        if data.get("before") is not None and data.get("after") is not None:
            raise forms.ValidationError("Ask for older or newer entries, not both.")
        return data

    def filters(self) -> dict[str, Any]:
        """The filters that were given, for links and for the export's audit entry."""
        return {name: self.cleaned_data[name] for name in self.FILTERS if self.cleaned_data[name]}
