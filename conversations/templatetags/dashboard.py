"""The dashboard's template filters and tags: `{% load dashboard %}`.

Everything they are given may be upstream data, so hostile. Filters return plain strings that the
template autoescapes; the tags that build markup do it with `format_html`, which escapes every
argument. A URL is only ever put in a link when its scheme is http or https, and in an image only
when it is https on a host in DASHBOARD_IMAGE_HOSTS; an id only becomes a dashboard link when it
is well formed (`ids.is_valid`).
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
import unicodedata
from typing import Any
from urllib.parse import urlsplit

from django import template
from django.conf import settings
from django.urls import NoReverseMatch, reverse
from django.utils.html import conditional_escape, format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from conversations import display, ids
from conversations.schema import parse_time

register = template.Library()

EMPTY = "—"
ELLIPSIS = "…"

# Categories stripped from both ends of a URL: controls, format characters (zero-width, bidi) and
# separators (spaces). Browsers strip C0 controls and spaces; stripping more is only stricter.
_STRIPPED_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})
_SAFE_SCHEMES = frozenset({"http", "https"})

_ID_ROUTES = {"conversation": "conversations:detail", "user": "conversations:user"}


def _strip_url(value: str) -> str:
    start, end = 0, len(value)
    while start < end and unicodedata.category(value[start]) in _STRIPPED_CATEGORIES:
        start += 1
    while end > start and unicodedata.category(value[end - 1]) in _STRIPPED_CATEGORIES:
        end -= 1
    return value[start:end]


@register.filter
def safe_url(value: Any) -> str:
    """The URL when its scheme is http or https, else "" (javascript:, data:, //host, ...).

    Leading and trailing whitespace and control characters are stripped first; a URL with a
    control character anywhere (such as `java\\nscript:`) is refused, as is a protocol-relative
    one, which takes whatever scheme the page has and a host of the sender's choosing.
    """
    if not isinstance(value, str):
        return ""
    url = _strip_url(value)
    if any(unicodedata.category(char) == "Cc" for char in url):
        return ""
    scheme, colon, rest = url.partition(":")
    if not colon or not scheme.isascii() or scheme.lower() not in _SAFE_SCHEMES:
        return ""
    if not rest.startswith("//") or len(rest) == 2:
        return ""
    return url


def _image_allowed(url: str) -> bool:
    """https, on exactly a host of DASHBOARD_IMAGE_HOSTS (default port, no user info): what the
    Content Security Policy's img-src allows too, so the browser and the page agree."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    netloc = parts.netloc.lower()
    host = netloc.removesuffix(":443")
    return parts.scheme.lower() == "https" and host in settings.DASHBOARD_IMAGE_HOSTS


@register.simple_tag
def upstream_image(url: Any, alt: Any = "") -> SafeString | str:
    """`{% upstream_image url alt %}`: an upstream image_url as an image when its host is one
    staff chose to load images from (DASHBOARD_IMAGE_HOSTS, https only), else as text (an http or
    https URL) or nothing. Remote images are off by default: loading any URL an API user set
    would let them track who looks at a conversation, or make staff browsers request internal
    hosts."""
    safe = safe_url(url)
    if not safe:
        return ""  # javascript:, data: and the like are not even shown
    if _image_allowed(safe):
        return format_html(
            '<img class="conversation-image" src="{}" alt="{}" width="64" height="64" '
            'referrerpolicy="no-referrer">',
            safe,
            _text(alt) if alt else "",
        )
    return format_html(
        '<span class="upstream-image-url" title="Remote images are only shown from the hosts in '
        'DASHBOARD_IMAGE_HOSTS">Image: <code>{}</code></span>',
        truncate_middle(safe, 120),
    )


def _as_utc(value: Any) -> dt.datetime | None:
    if isinstance(value, str):
        value = parse_time(value)
    if not isinstance(value, dt.datetime):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    try:
        return value.astimezone(dt.UTC)
    except (OverflowError, ValueError):
        return None


def _utc_time(value: Any) -> str:
    when = _as_utc(value)
    if when is None:
        return EMPTY
    iso = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    day = when.date().isoformat()
    clock = when.time().isoformat(timespec="seconds")
    millis = when.time().isoformat(timespec="milliseconds")
    # Every part comes from datetime.isoformat (digits, "-", ":", ".", "T", "Z"): nothing to
    # escape, and skipping format_html's escaping matters on pages with fifty timestamps.
    title = f"{day} {millis} UTC"
    return mark_safe(  # noqa: S308
        f'<time datetime="{iso}" title="{title}" data-local-time>{day} {clock} UTC</time>'
    )


@register.simple_tag(name="utc_time")
def utc_time_tag(value: Any) -> str:
    """`{% utc_time when %}`: a `<time>` element showing UTC (static JS adds the local time)."""
    return _utc_time(value)


@register.filter(name="utc_time")
def utc_time(value: Any) -> str:
    """`{{ when|utc_time }}`: the same `<time>` element as the tag, or "—" for no time."""
    return _utc_time(value)


@register.filter
def pretty_json(value: Any) -> str:
    """Indented JSON, keys sorted, cut at display.JSON_LIMIT with a note; a plain string, so the
    template escapes it."""
    return display.json_view(value)


def _text(value: Any, label: Any = None) -> str:
    for candidate in (label, value):
        if candidate is not None and candidate != "":
            try:
                return str(candidate)
            except ValueError:  # an int with more digits than Python will convert
                continue
    return EMPTY


@functools.lru_cache(maxsize=8192)
def _reverse(name: str, args: tuple[str, ...]) -> str | None:
    """reverse(), remembered: the same ids are linked on every refresh of every page."""
    try:
        return reverse(name, args=args)
    except (NoReverseMatch, ValueError):
        return None


@register.simple_tag
def id_link(kind: Any, value: Any, label: Any = None) -> SafeString:
    """`{% id_link "user" user_id [label] %}`: a link to the dashboard page of a conversation or
    user when the id is well formed, else the value (or label) as escaped text."""
    text = _text(value, label)
    route = _ID_ROUTES.get(kind) if isinstance(kind, str) else None
    if route and ids.is_valid(kind, value):
        url = _reverse(route, (value,))
        if url:
            return format_html('<a href="{}">{}</a>', url, text)
    return conditional_escape(text)


@register.simple_tag
def member_link(conversation_id: Any, member_id: Any, label: Any = None) -> SafeString:
    """`{% member_link conversation_id member_id [label] %}`: a link to a member's page when both
    ids are well formed, else the member id (or label) as escaped text."""
    text = _text(member_id, label)
    if ids.is_valid("conversation", conversation_id) and ids.is_valid("member", member_id):
        url = _reverse("conversations:member", (conversation_id, member_id))
        if url:
            return format_html('<a href="{}">{}</a>', url, text)
    return conditional_escape(text)


def _join(big: tuple[int, str], small: tuple[int, str]) -> str:
    return f"{big[0]} {big[1]}" + (f" {small[0]} {small[1]}" if small[0] else "")


@register.filter
def duration(value: Any) -> str:
    """Seconds as "1 h 2 min", "3 min 5 s" or "45 s"; "—" for None or a non-number."""
    if isinstance(value, dt.timedelta):
        value = value.total_seconds()
    if value is None or isinstance(value, bool):
        return EMPTY
    try:
        seconds = float(value)
    except (TypeError, ValueError, OverflowError):
        return EMPTY
    if not math.isfinite(seconds) or seconds < 0:
        return EMPTY
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return _join((days, "d"), (hours, "h"))
    if hours:
        return _join((hours, "h"), (minutes, "min"))
    if minutes:
        return _join((minutes, "min"), (secs, "s"))
    return f"{secs} s"


@register.filter
def truncate_middle(value: Any, length: Any = 24) -> str:
    """A long id or string cut in the middle to `length` characters: "CON-1234…cdef"."""
    if value is None:
        return ""
    try:
        text = str(value)
    except ValueError:  # an int with more digits than Python will convert
        return ""
    try:
        limit = max(int(length), 5)
    except (TypeError, ValueError, OverflowError):
        limit = 24
    if len(text) <= limit:
        return text
    keep = limit - 1
    head, tail = (keep + 1) // 2, keep // 2
    return f"{text[:head]}{ELLIPSIS}{text[-tail:]}"


@register.simple_tag
def fetch_again(url: str, region: str, seconds: Any) -> SafeString:
    """`<div id="x" {% fetch_again url "x" 2 %}>`: htmx attributes that make a region still
    loading fetch itself from `url` after `seconds`, keeping only its own part of the answer (a
    whole page, or the region alone). No script: the CSP allows none."""
    return format_html(
        'hx-get="{}" hx-trigger="load delay:{}s" hx-select="#{}" hx-target="this" '
        'hx-swap="outerHTML"',
        url,
        seconds,
        region,
    )


# Bidi embeddings, overrides and isolates: one in a matched name (U+202E) would reorder the rest of
# the cell. Right-to-left text itself needs none of them to show correctly.
_BIDI_CONTROLS = dict.fromkeys(map(ord, "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"))


@register.filter
def highlighted(match: Any) -> SafeString:
    """A search match (store/search.py `Match`) as escaped text with what matched in <mark>: the
    whole value (a number, an address, an id), or each term wherever it occurs (words, a name's
    start). format_html escapes every piece of the text; only the <mark> tags are markup."""
    text = getattr(match, "text", None)
    if not isinstance(text, str):
        return conditional_escape(EMPTY)
    text = display.clip(text.translate(_BIDI_CONTROLS))
    if getattr(match, "whole", False):
        return format_html("<mark>{}</mark>", text)
    terms = [t for t in getattr(match, "terms", ()) if isinstance(t, str) and t]
    if not terms:
        return conditional_escape(text)
    pattern = re.compile(
        "|".join(map(re.escape, sorted(terms, key=len, reverse=True))), re.IGNORECASE
    )
    pairs, last = [], 0
    for found in pattern.finditer(text):
        pairs.append((text[last : found.start()], found.group()))
        last = found.end()
    return format_html("{}{}", format_html_join("", "{}<mark>{}</mark>", pairs), text[last:])
