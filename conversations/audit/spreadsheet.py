"""CSV cells a spreadsheet will not run: a cell that starts like a formula (=, +, -, @, a tab
or a carriage return) is prefixed with an apostrophe, so Excel, LibreOffice and Google Sheets
show it as text (OWASP, "CSV Injection"). Usernames typed at a failed login and search queries
are anyone's input.

Minimal on purpose: conversations/exports.py (issue 11) does the same for its exports; the two
should become one function (the lead merges them)."""

from __future__ import annotations

from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class Echo:
    """The pseudo-buffer of Django's "Streaming large CSV files": csv.writer writes one row and
    hands it back, to be yielded."""

    def write(self, value: str) -> str:
        return value
