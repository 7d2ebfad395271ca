"""Upstream ids: what a well-formed one looks like, and the path converters that enforce it.

Ids come from the URL (typed or pasted by staff) and from upstream payloads (hostile input). Only an
id that matches its pattern is ever put into an upstream URL or a dashboard link, so a malformed id
never reaches a view or the API. The pattern is a prefix and a uuid-like body; it is not a strict
uuid because real payloads carry bodies such as `46edebio0391`.

Staff type and paste ids in any case (`con-…`, `CON-1B7F…`). The API spells a prefix in capitals
and a uuid in lower case (uuids are case-insensitive, RFC 9562), so both are normalised: the path
converters accept any case in the prefix and the views redirect to the canonical spelling. A body
that is not a uuid is opaque and kept as given.
"""

from __future__ import annotations

import re

_BODY = r"[0-9A-Za-z][0-9A-Za-z-]{0,79}"
CONVERSATION_ID = rf"CON-{_BODY}"
MEMBER_ID = rf"MEM-{_BODY}"
USER_ID = rf"USR-{_BODY}"

_UUID = re.compile(r"\A[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z", re.I)

_PATTERNS = {
    "conversation": re.compile(rf"\A{CONVERSATION_ID}\Z"),
    "member": re.compile(rf"\A{MEMBER_ID}\Z"),
    "user": re.compile(rf"\A{USER_ID}\Z"),
}


def is_valid(kind: str, value: object) -> bool:
    """True when `value` is a well-formed id of `kind` (conversation, member or user)."""
    return isinstance(value, str) and bool(_PATTERNS[kind].match(value))


def canonical(value: str) -> str:
    """The id as the API spells it: the prefix in capitals, a uuid body in lower case."""
    prefix, dash, body = value.partition("-")
    if not dash:
        return value
    return f"{prefix.upper()}-{body.lower() if _UUID.match(body) else body}"


def kind_of(value: str) -> str | None:
    """Which kind of id a pasted string is, or None when it is none of them."""
    for kind, pattern in _PATTERNS.items():
        if pattern.match(value):
            return kind
    return None


class _IdConverter:
    """Any case in the prefix (`con-…`); the view redirects to `canonical()`'s spelling."""

    prefix = ""
    regex = ""

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        # Refuse to build a link from a malformed id (an upstream value that slipped through).
        if not (isinstance(value, str) and re.fullmatch(rf"{self.prefix}-{_BODY}", value)):
            raise ValueError(f"not a well-formed id: {str(value)[:40]!r}")
        return value


def _any_case(prefix: str) -> str:
    return "".join(f"[{c}{c.lower()}]" for c in prefix) + f"-{_BODY}"


class ConversationIdConverter(_IdConverter):
    prefix = "CON"
    regex = _any_case("CON")


class MemberIdConverter(_IdConverter):
    prefix = "MEM"
    regex = _any_case("MEM")


class UserIdConverter(_IdConverter):
    prefix = "USR"
    regex = _any_case("USR")
