"""A hostile upstream: responses that are broken on the wire or absurd in size and shape.

The fault modes here turn the real answer to a request into what a failing proxy, a buggy
gateway or a hostile server would send, so that a client can be tried against each:

- ``drip``: the right Content-Length, then the body one byte every ``drip_interval_ms``;
- ``truncated``: a Content-Length longer than the body, then the connection closes;
- ``bad_chunked``: chunked transfer encoding with an invalid chunk size midway;
- ``bad_gzip``: ``Content-Encoding: gzip`` over a stream corrupted midway;
- ``gzip_bomb``: a small gzip body that inflates to ``bomb_bytes`` of JSON;
- ``deep``: the real answer with JSON nested ``depth`` levels in its custom data and bodies;
- ``huge``: the real answer with its (first) record's name ``huge_bytes`` long;
- ``flood``: a list answer with ``flood_items`` items, whatever page size was asked for.
"""

from __future__ import annotations

import gzip
import json
import zlib
from functools import cache
from typing import Any

# Modes that rewrite the real answer (the request is authenticated and served first).
WIRE_MODES = ("drip", "truncated", "bad_chunked")
BODY_MODES = ("bad_gzip", "gzip_bomb", "deep", "huge", "flood")
_PLACEHOLDER = "\u0000hostile\u0000"


def rewrite_body(body: bytes, mode: str, settings: Any) -> tuple[bytes, list[tuple[str, str]]]:
    """The body (and extra headers) that ``mode`` sends in place of a real JSON ``body``."""
    if mode == "bad_gzip":
        packed = bytearray(gzip.compress(body + b" " * 4096))
        middle = len(packed) // 2
        packed[middle : middle + 16] = b"\xff" * 16
        return bytes(packed), [("Content-Encoding", "gzip")]
    if mode == "gzip_bomb":
        return gzip_bomb(settings.bomb_bytes), [("Content-Encoding", "gzip")]
    data = json.loads(body)
    if mode == "deep":
        deep = '{"d":' * settings.depth + '"bottom"' + "}" * settings.depth
        _each_record(data, lambda record: _put_deep(record))
        return _dumps_with(data, deep), []
    if mode == "huge":
        huge = json.dumps("A" * settings.huge_bytes)
        items = _items(data)
        first = items[0] if items else data
        if isinstance(first, dict):
            first["name"] = _PLACEHOLDER
        return _dumps_with(data, huge), []
    if mode == "flood":
        items = _items(data)
        if items:
            items[:] = [items[0]] * settings.flood_items
        return json.dumps(data).encode(), []
    raise ValueError(mode)


@cache
def gzip_bomb(size: int) -> bytes:
    """Gzip of a JSON object with one string ``size`` bytes long (about 1,000 to 1)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: a gzip header and trailer
    parts = [packer.compress(b'{"page_size":10,"bomb":"')]
    block = b"A" * (1 << 20)
    for _ in range(size // len(block)):
        parts.append(packer.compress(block))
    parts.append(packer.compress(block[: size % len(block)]))
    parts.append(packer.compress(b'"}'))
    parts.append(packer.flush())
    return b"".join(parts)


def _items(data: Any) -> list[Any] | None:
    embedded = data.get("_embedded") if isinstance(data, dict) else None
    if isinstance(embedded, list):
        return embedded
    if isinstance(embedded, dict):
        for value in embedded.values():
            if isinstance(value, list):
                return value
    return None


def _each_record(data: Any, change: Any) -> None:
    items = _items(data)
    for record in items if items is not None else [data]:
        if isinstance(record, dict):
            change(record)


def _put_deep(record: dict[str, Any]) -> None:
    # A conversation keeps its custom data under `properties`; others at the top.
    holder = record["properties"] if isinstance(record.get("properties"), dict) else record
    holder["custom_data"] = {"deep": _PLACEHOLDER}
    if isinstance(record.get("body"), dict):
        record["body"]["deep"] = _PLACEHOLDER


def _dumps_with(data: Any, raw_json: str) -> bytes:
    """Serialise ``data`` with every placeholder replaced by ``raw_json`` (built as text, since
    the JSON encoder itself would fail on what it holds)."""
    text = json.dumps(data).replace(json.dumps(_PLACEHOLDER), raw_json)
    return text.encode()
