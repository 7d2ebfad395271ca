"""Timestamp helpers. The world keeps times as integer epoch milliseconds (cheap to compare and
sort); the API renders them as ISO 8601 UTC with milliseconds and a trailing Z."""

from __future__ import annotations

import re
from datetime import UTC, datetime

# Accepts what the SDKs send: "2018-01-01 10:00:00" (java), "...T...Z" (net), "...T....000Z"
# (node), plus explicit offsets and a bare date. Checked before fromisoformat, which on 3.11+
# also accepts odd forms (week dates, compact "20180101") the live API would reject.
_ISO_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}"
    r"([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?"
    r"(Z|z|[+-]\d{2}:?\d{2})?$"
)


def iso_ms(ms: int) -> str:
    """Format epoch milliseconds as e.g. 2019-09-03T18:40:24.324Z."""
    dt = datetime.fromtimestamp(ms // 1000, tz=UTC)  # whole seconds; ms appended below
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_iso8601(value: str) -> int | None:
    """Parse an ISO 8601 date or date-time to epoch ms (naive = UTC); None when invalid."""
    text = value.strip()
    if not _ISO_RE.match(text):
        return None
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)
