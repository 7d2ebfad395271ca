"""Upstream ids: what a well-formed one looks like, and the path converters that enforce it.

Ids come from the URL (typed or pasted by staff) and from upstream payloads (hostile input). Only an
id that matches its pattern is ever put into an upstream URL or a dashboard link, so a malformed id
never reaches a view or the API. The pattern is a prefix and a uuid-like body; it is not a strict
uuid because real payloads carry bodies such as `46edebio0391`.
"""

from __future__ import annotations

import re

_BODY = r"[0-9A-Za-z][0-9A-Za-z-]{0,79}"
CONVERSATION_ID = rf"CON-{_BODY}"
MEMBER_ID = rf"MEM-{_BODY}"
USER_ID = rf"USR-{_BODY}"

_PATTERNS = {
    "conversation": re.compile(rf"\A{CONVERSATION_ID}\Z"),
    "member": re.compile(rf"\A{MEMBER_ID}\Z"),
    "user": re.compile(rf"\A{USER_ID}\Z"),
}


def is_valid(kind: str, value: object) -> bool:
    """True when `value` is a well-formed id of `kind` (conversation, member or user)."""
    return isinstance(value, str) and bool(_PATTERNS[kind].match(value))


def kind_of(value: str) -> str | None:
    """Which kind of id a pasted string is, or None when it is none of them."""
    for kind, pattern in _PATTERNS.items():
        if pattern.match(value):
            return kind
    return None


class _IdConverter:
    regex = ""

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        # Refuse to build a link from a malformed id (an upstream value that slipped through).
        if not re.fullmatch(self.regex, value):
            raise ValueError(f"not a well-formed id: {value[:40]!r}")
        return value


class ConversationIdConverter(_IdConverter):
    regex = CONVERSATION_ID


class MemberIdConverter(_IdConverter):
    regex = MEMBER_ID


class UserIdConverter(_IdConverter):
    regex = USER_ID
