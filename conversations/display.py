"""How much of an upstream value a page shows: the one place that caps what templates display.

Upstream strings have no length limit (a 30 MB name made a 31 MB page). Every record a view hands
to a template goes through `shown()`, which cuts each string field to TEXT_LIMIT characters with
"…". JSON-shaped data (an event's raw payload, custom data, channel settings) is not cut value by
value: it is shown whole through `json_view()`, itself cut at JSON_LIMIT with a note, and that is
where staff find the full value of a string cut elsewhere.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

TEXT_LIMIT = 500
JSON_LIMIT = 64 * 1024
ELLIPSIS = "…"

# Fields kept as they are: JSON shown through json_view(), and cursors, which are opaque (cutting
# one would break its link; a cursor the forms would refuse is not linked at all).
_KEPT_FIELDS = frozenset({"raw", "body", "next_cursor", "prev_cursor"})


def clip(text: str, limit: int = TEXT_LIMIT) -> str:
    """`text` cut to `limit` characters, the last one "…", when it is longer."""
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def shown(value: Any) -> Any:
    """`value` (a record, a page of records, a list of them) with every string field clipped.

    Records are frozen dataclasses: a copy is made only when something was cut, so the usual
    short values cost a walk and no allocation.
    """
    if isinstance(value, str):
        return clip(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changed = {}
        for field in dataclasses.fields(value):
            if field.name in _KEPT_FIELDS:
                continue
            before = getattr(value, field.name)
            after = shown(before)
            if after is not before:
                changed[field.name] = after
        return dataclasses.replace(value, **changed) if changed else value
    if isinstance(value, list):
        items = [shown(item) for item in value]
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    if isinstance(value, tuple):
        items = tuple(shown(item) for item in value)
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    return value  # numbers, times, None, and dicts (JSON: shown through json_view)


def json_view(value: Any) -> str:
    """Indented JSON, keys sorted, cut at JSON_LIMIT characters with a note saying so."""
    text = _dumps(value)
    if len(text) <= JSON_LIMIT:
        return text
    size = len(text.encode("utf-8", "replace"))
    return (
        f"{text[:JSON_LIMIT]}\n{ELLIPSIS} cut here: the whole value is {size // 1024:,} KiB, "
        f"more than the {JSON_LIMIT // 1024} KiB shown."
    )


def _dumps(value: Any) -> str:
    for sort_keys in (True, False):  # mixed key types cannot be sorted
        try:
            return json.dumps(value, indent=2, sort_keys=sort_keys, ensure_ascii=False, default=str)
        except (TypeError, ValueError, RecursionError):
            continue
    return "(a value that cannot be shown as JSON)"
