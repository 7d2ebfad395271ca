"""The one field the second-factor pages take: a code."""

from __future__ import annotations

from typing import Any

from django import forms

from .devices import APP_CODE, RECOVERY_CODE, normalise

# One message for every code refused, whatever was wrong with it: a guess learns nothing.
WRONG_CODE = "That code is not valid."


class CodeForm(forms.Form):
    """A code from the authenticator app, or a recovery code (`recovery=False`: app codes only,
    as when setting the app up)."""

    code = forms.CharField(
        label="Code",
        max_length=32,
        error_messages={
            "required": "Enter a code.",
            "max_length": WRONG_CODE,
            "null_characters_not_allowed": WRONG_CODE,
        },
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "autocapitalize": "off",
                "autocorrect": "off",
                "spellcheck": "false",
                "autofocus": True,
                "size": 12,
            }
        ),
    )

    def __init__(self, *args: Any, recovery: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.patterns = (APP_CODE, RECOVERY_CODE) if recovery else (APP_CODE,)
        if not recovery:
            self.fields["code"].widget.attrs["inputmode"] = "numeric"

    def clean_code(self) -> str:
        code = normalise(self.cleaned_data["code"])
        if not any(pattern.fullmatch(code) for pattern in self.patterns):
            raise forms.ValidationError(WRONG_CODE, code="invalid")
        return code
