"""Turning an upstream body into JSON data that is safe to keep, cache and render.

Python's parser accepts JSON nested hundreds of levels deep, but such data later breaks `pickle`
(the cache) and templates with a RecursionError. Anything deeper than `MAX_DEPTH` is replaced at
parse time by a marker that pages show as "too deep to show".
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 32
TOO_DEEP = "…too deep to show"
# Objects and arrays in one body: a page of 100 events holds a few thousand. Millions of tiny ones
# fit in a few MB and would cost seconds of CPU and hundreds of MB to parse and walk.
MAX_CONTAINERS = 100_000


class MalformedJSON(ValueError):
    pass


class TooComplex(ValueError):
    pass


def loads(body: bytes) -> Any:
    """Parse a JSON body, replacing what is nested deeper than MAX_DEPTH (in place)."""
    # An upper bound (brackets inside strings count too), and cheap: C, no parsing.
    containers = body.count(b"{") + body.count(b"[")
    if containers > MAX_CONTAINERS:
        raise TooComplex(f"more than {MAX_CONTAINERS} objects and arrays")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nesting beyond the parser's own limit
        raise MalformedJSON("not JSON") from None
    if containers > MAX_DEPTH and isinstance(data, dict | list):  # else it cannot be too deep
        _prune(data, MAX_DEPTH - 1)
    return data


def _prune(container: dict | list, depth_left: int) -> None:
    keys = container.keys() if isinstance(container, dict) else range(len(container))
    for key in list(keys):
        child = container[key]
        if isinstance(child, dict | list):
            if depth_left == 0:
                container[key] = TOO_DEEP
            else:
                _prune(child, depth_left - 1)
