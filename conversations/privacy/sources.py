"""The doors views get data through: the API client, the store's queries and the search, each
answer (and the last good copy an error carries) masked for the current viewer, and history older
than the viewer may see (SUPPORT_MAX_AGE_DAYS) left out.

Views import `queries` and `search` from here and get the client from `api()`, never from the
store or the client package themselves: tests/test_privacy.py fails when a view module does, so
a new page cannot forget the policy.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from conversations import client as upstream
from conversations import schema
from conversations.client import NotFound, UpstreamError
from conversations.store import queries as store_queries
from conversations.store import search as store_search
from conversations.store.models import StoredConversation, StoredEvent, StoredMember

from . import masking
from .viewer import Viewer, current

TOO_OLD = "older than your role may see"


def _age(item: Any) -> Any:
    """When an item of history happened, for SUPPORT_MAX_AGE_DAYS (None: not history)."""
    if isinstance(item, schema.Conversation):
        return item.created
    if isinstance(item, schema.Event | StoredEvent):
        return item.timestamp
    if isinstance(item, StoredConversation):
        return item.started_at or item.first_seen_at
    if isinstance(item, StoredMember):
        return _age(item.conversation) if "conversation" in item._state.fields_cache else None
    conversation = getattr(item, "conversation", None)  # a search hit
    if isinstance(conversation, StoredConversation):
        return _age(conversation)
    return getattr(item, "started", None)  # a live board row


def _within_age(value: Any, viewer: Viewer) -> Any:
    if viewer.oldest is None:
        return value
    if isinstance(value, schema.Page):
        return schema.Page(
            items=[i for i in value.items if not viewer.too_old(_age(i))],
            next_cursor=value.next_cursor,
            prev_cursor=value.prev_cursor,
            page_size=value.page_size,
        )
    if isinstance(value, list):
        return [i for i in value if not viewer.too_old(_age(i))]
    if isinstance(value, tuple):
        return tuple(_within_age(i, viewer) for i in value)
    if isinstance(value, store_search.Results):
        value.hits = [h for h in value.hits if not viewer.too_old(_age(h))]
        return value
    return value


def present(value: Any, viewer: Viewer | None = None) -> Any:
    """The value as this viewer (by default the current one) may see it."""
    viewer = viewer or current()
    value = _within_age(value, viewer)
    return value if viewer.sees_pii else masking.value_of(value)


class _Door:
    """A module or client whose functions answer through `present`."""

    masks_for_a_viewer = True  # the store refuses to be filled through one (reconcile.py)

    def __init__(
        self,
        target: Any,
        *,
        single: Callable[[Any], Any] | None = None,
        passthrough: frozenset[str] = frozenset(),
    ) -> None:
        self._target = target
        self._single = single  # what to do with one too-old object (None: as any value)
        self._passthrough = passthrough  # functions that return no data (parsing a query)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not callable(attr) or isinstance(attr, type) or name in self._passthrough:
            return attr  # constants, exception classes, dataclasses, parsers

        @functools.wraps(attr)
        def through_policy(*args: Any, **kwargs: Any) -> Any:
            viewer = current()
            try:
                value = attr(*args, **kwargs)
            except UpstreamError as exc:
                stale = exc.stale
                if stale is not None:
                    too_old = viewer.too_old(_age(stale)) and not isinstance(stale, list | tuple)
                    exc.stale = None if too_old else present(stale, viewer)
                if not viewer.sees_pii:  # the API's own words (a 400's message) may quote data
                    exc.detail = masking.scrub(exc.detail)
                raise
            if viewer.too_old(_age(value)) and not isinstance(value, list | tuple):
                return self._single(value) if self._single else None
            return present(value, viewer)

        return through_policy


def may_see(conversation_id: str) -> bool:
    """Whether the viewer may see this conversation at all (SUPPORT_MAX_AGE_DAYS): for the reads
    that name a conversation without reading it (its members). The store answers when it has
    it; else the API's answer for it (shared through the client's cache)."""
    viewer = current()
    if viewer.oldest is None:
        return True
    stored = store_queries.find(conversation_id)
    if stored is not None:
        return not viewer.too_old(_age(stored))
    try:
        return not viewer.too_old(upstream.get_client().get_conversation(conversation_id).created)
    except UpstreamError:
        return True  # the read itself fails and says so; nothing of it is shown


def _refuse(value: Any) -> Any:
    raise NotFound(f"This conversation is {TOO_OLD}.", status=404)


def api() -> Any:
    """The API client (looked up when asked for: tests install their own), through the policy."""
    return _Door(upstream.get_client(), single=_refuse)


queries = _Door(store_queries)  # one too-old conversation reads as not stored
# `matching` is a queryset for an export, which masks its rows for the viewer (exports.py), as
# `matched` does its column (given whether to mask).
search = _Door(
    store_search,
    passthrough=frozenset(
        {"parse", "normalise", "matching", "matched", "time_limit", "is_whole_id"}
    ),
)
