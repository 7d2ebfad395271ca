"""Notices: what the store announces after a commit, and the topics streams subscribe to.

Topics are plain strings: `live` (the live board), `conversation:<CON-id>`, `user:<USR-id>`, and
`access:<user pk>` (internal: the user logged out or lost access; streams re-check at once). Only
the first three can be asked for in a stream URL, and only with a well-formed id.

Each notice names an SSE event, which is what the page's panels listen for: `events` (new
events), `header` (the conversation's state or newest event), `members` (a member's state),
`live` (the board), `user` (a user's conversations), and `resync` (notices may have been missed:
fetch everything again).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from conversations import ids

LIVE = "live"
MAX_TOPICS = 8  # a page needs one or two; the cap keeps one stream's subscription small


@dataclass(frozen=True)
class Notice:
    topic: str
    event: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"topic": self.topic, "event": self.event, "data": self.data}

    @classmethod
    def from_json(cls, value: Any) -> Notice | None:
        """A notice read back from Redis (another process's publish): checked, not trusted."""
        if not isinstance(value, dict):
            return None
        topic, event, data = value.get("topic"), value.get("event"), value.get("data", {})
        if not (isinstance(topic, str) and isinstance(event, str) and isinstance(data, dict)):
            return None
        return cls(topic, event, data)


# The SSE event that tells a page to fetch everything again (its stream missed notices).
RESYNC = Notice("*", "resync")


def conversation_topic(conversation_id: str) -> str:
    return f"conversation:{conversation_id}"


def user_topic(user_id: str) -> str:
    return f"user:{user_id}"


def access_topic(user_pk: object) -> str:
    return f"access:{user_pk}"


class BadTopic(ValueError):
    pass


def parse_topics(values: Iterable[str]) -> list[str]:
    """The topics a stream URL asks for (`?topic=live&topic=conversation:CON-…`), validated.

    Raises BadTopic for anything else: an unknown kind, a malformed id, too many topics.
    """
    topics: list[str] = []
    for value in values:
        kind, _, rest = value.partition(":")
        if value == LIVE:
            topic = LIVE
        elif kind in ("conversation", "user") and ids.is_valid(kind, rest):
            topic = f"{kind}:{ids.canonical(rest)}"
        else:
            raise BadTopic(value[:100])
        if topic not in topics:
            topics.append(topic)
    if not topics or len(topics) > MAX_TOPICS:
        raise BadTopic(f"between 1 and {MAX_TOPICS} topics")
    return topics


def encode(notices: list[Notice]) -> str:
    return json.dumps([notice.to_json() for notice in notices], separators=(",", ":"))


def decode(payload: str | bytes) -> list[Notice]:
    try:
        value = json.loads(payload)
    except ValueError:
        return []
    if not isinstance(value, list):
        return []
    return [notice for notice in map(Notice.from_json, value) if notice is not None]


# --- what the store announces


def conversation_changed(
    conversation_id: str,
    *,
    newest_event_id: int | None = None,
    members: bool = False,
    board: bool = False,
    user_ids: Iterable[str] = (),
) -> None:
    """Announce, once the current transaction commits, what changed about one conversation.

    New events (`newest_event_id`) refresh the events tab and the header; member changes the
    members panel and the header; `board` the live board (a live conversation changed, or one
    started or ended); `user_ids` the pages of users whose membership changed.
    """
    topic = conversation_topic(conversation_id)
    notices = [Notice(topic, "header")]
    if newest_event_id is not None:
        notices.append(Notice(topic, "events", {"after": newest_event_id}))
    if members:
        notices.append(Notice(topic, "members"))
    if board:
        notices.append(Notice(LIVE, "live"))
    notices.extend(Notice(user_topic(user_id), "user") for user_id in sorted(set(user_ids)))
    publish_on_commit(notices)


def access_changed(user_pk: object) -> None:
    """The user logged out or their rights changed: their streams check again at once."""
    publish_on_commit([Notice(access_topic(user_pk), "access")])


def publish_on_commit(notices: list[Notice]) -> None:
    from .fanout import publish  # fan-out reads settings: imported when first used

    # robust: a failing publish (Redis down) never undoes or fails what was stored; pages that
    # missed the notice catch up when their stream reopens, or by polling meanwhile.
    transaction.on_commit(lambda: publish(notices), robust=True)
