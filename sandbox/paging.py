"""Cursor (keyset) paging, as the v1 API does it: opaque cursors, no total count.

A cursor is urlsafe base64 of a small JSON document: the resource kind, a direction ("n" = the
page after the key, "p" = the page before it) and the sort key of the boundary item. Keys
rather than offsets mean that items inserted by live activity never make a walk repeat or skip
an item it has already passed. A null key marks "before everything"/"after everything", used
only to link out of an empty page.
"""

from __future__ import annotations

import base64
import binascii
import json
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

Key = tuple[Any, ...]


@dataclass(frozen=True)
class Cursor:
    kind: str
    direction: str  # "n" | "p"
    key: Key | None


@dataclass
class Page[T]:
    items: list[T]
    next: Cursor | None
    prev: Cursor | None


class CursorError(ValueError):
    pass


def encode_cursor(cursor: Cursor) -> str:
    doc = {"r": cursor.kind, "d": cursor.direction, "k": list(cursor.key) if cursor.key else None}
    raw = json.dumps(doc, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii")


def decode_cursor(text: str, kind: str, key_types: Sequence[type]) -> Cursor:
    """Decode and validate; raises CursorError for anything that is not one of our cursors."""
    try:
        padded = text + "=" * (-len(text) % 4)
        doc = json.loads(base64.b64decode(padded, altchars=b"-_", validate=True))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise CursorError("undecodable cursor") from exc
    if not isinstance(doc, dict) or doc.get("r") != kind or doc.get("d") not in ("n", "p"):
        raise CursorError("cursor for another resource")
    key = doc.get("k")
    if key is None:
        return Cursor(kind, doc["d"], None)
    if not isinstance(key, list) or len(key) != len(key_types):
        raise CursorError("bad cursor key")
    for value, typ in zip(key, key_types, strict=True):
        # bool is an int subclass; a cursor never holds one.
        if not isinstance(value, typ) or isinstance(value, bool):
            raise CursorError("bad cursor key")
    return Cursor(kind, doc["d"], tuple(key))


def paginate[T](
    items: Sequence[T],
    key: Callable[[T], Key],
    *,
    kind: str,
    order: str,
    page_size: int,
    cursor: Cursor | None,
) -> Page[T]:
    """One page of ``items`` (sorted ascending by ``key``) in ``order`` ("asc"/"desc").

    Works in ascending index space [lo, hi): for desc, "next" moves toward lower indices.
    """
    n = len(items)
    desc = order == "desc"
    if cursor is None:
        lo, hi = (max(0, n - page_size), n) if desc else (0, min(n, page_size))
    else:
        k = cursor.key
        forward = cursor.direction == "n"
        if forward != desc:
            # Items after the key in ascending space (asc "next", desc "prev").
            lo = 0 if k is None else bisect_right(items, k, key=key)
            hi = min(n, lo + page_size)
        else:
            # Items before the key in ascending space (asc "prev", desc "next").
            hi = n if k is None else bisect_left(items, k, key=key)
            lo = max(0, hi - page_size)
    page = list(items[lo:hi])
    if desc:
        page.reverse()
    # Boundary keys; None when the page is empty at that edge (see module docstring).
    key_lo = key(items[lo]) if lo < n else None
    key_before_lo = key(items[lo - 1]) if lo > 0 else None
    key_hi_last = key(items[hi - 1]) if hi > 0 else None
    key_at_hi = key(items[hi]) if hi < n else None
    more_below, more_above = lo > 0, hi < n
    if not desc:
        nxt = Cursor(kind, "n", key_hi_last) if more_above else None
        prv = Cursor(kind, "p", key_lo if page else key_at_hi) if more_below else None
    else:
        nxt = Cursor(kind, "n", key_lo if page else key_at_hi) if more_below else None
        prv = Cursor(kind, "p", key_hi_last if page else key_before_lo) if more_above else None
    return Page(page, nxt, prv)
