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


class MalformedJSON(ValueError):
    pass


def loads(body: bytes) -> Any:
    """Parse a JSON body, pruning what is nested deeper than MAX_DEPTH."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nesting beyond the parser's own limit
        raise MalformedJSON("not JSON") from None
    # Cheap test first: a body with fewer containers than MAX_DEPTH cannot be too deep.
    if body.count(b"{") + body.count(b"[") <= MAX_DEPTH:
        return data
    return _prune(data, MAX_DEPTH)


def _prune(value: Any, depth_left: int) -> Any:
    if isinstance(value, dict):
        if depth_left == 0:
            return TOO_DEEP
        return {key: _prune(item, depth_left - 1) for key, item in value.items()}
    if isinstance(value, list):
        if depth_left == 0:
            return TOO_DEEP
        return [_prune(item, depth_left - 1) for item in value]
    return value
