"""The Conversation API v1 endpoints: one typed method per read, for one application.

Each method validates its arguments (a malformed id never reaches a URL), names its endpoint in a
`# Reference:` line, and returns the records of `schema.py`. Caching, coalescing and time limits
are `ReadCache`'s; HTTP, retries and size limits are `Transport`'s; signing is `TokenSigner`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

import requests

from .. import ids, schema
from ..schema import Conversation, Event, Member, Page, Session, User
from .auth import TokenSigner
from .config import ClientConfig
from .errors import BadResponse, NotConfigured
from .readcache import ReadCache
from .transport import Transport

logger = logging.getLogger("conversations.upstream")

T = TypeVar("T")

ORDERS = ("asc", "desc")
MAX_PAGE_SIZE = 100


class ConversationClient:
    def __init__(self, config: ClientConfig, session: requests.Session | None = None) -> None:
        self.config = config
        try:
            self.signer: TokenSigner | None = TokenSigner(
                config.application_id, config.private_key_pem, config.jwt_ttl_seconds
            )
        except (ValueError, TypeError):  # not a PEM key, or one with a passphrase
            # Every read then fails with NotConfigured: pages explain it instead of crashing.
            self.signer = None
        self.transport = Transport(config, session)
        self.reads = ReadCache(config)

    @property
    def session(self) -> requests.Session:
        return self.transport.session

    @property
    def sleep(self) -> Callable[[float], None]:
        """How the client waits between retries (tests replace it)."""
        return self.transport.sleep

    @sleep.setter
    def sleep(self, value: Callable[[float], None]) -> None:
        self.transport.sleep = value

    # --- endpoints

    def list_conversations(
        self,
        *,
        page_size: int = 10,
        order: str = "desc",
        cursor: str | None = None,
        date_start: str | None = None,
        date_end: str | None = None,
    ) -> Page[Conversation]:
        # Reference: GET /v1/conversations
        params = _paging(page_size, order, cursor) | _drop_empty(
            date_start=date_start, date_end=date_end
        )
        return self._page("/v1/conversations", params, "conversations", schema.parse_conversation)

    def get_conversation(self, conversation_id: str) -> Conversation:
        # Reference: GET /v1/conversations/{conversation_id}
        path = f"/v1/conversations/{_id('conversation', conversation_id)}"
        return self._read(path, {}, schema.parse_conversation)

    def list_members(
        self,
        conversation_id: str,
        *,
        page_size: int = 100,
        order: str = "asc",
        cursor: str | None = None,
        after_end: bool = False,
    ) -> Page[Member]:
        """With `after_end` (the page has seen the conversation end), an answer cached before the
        end is not used: it may miss the last changes (see `_page`)."""
        # Reference: GET /v1/conversations/{conversation_id}/members
        path = f"/v1/conversations/{_id('conversation', conversation_id)}/members"
        params = _paging(page_size, order, cursor)
        return self._page(path, params, "members", schema.parse_member, after_end=after_end)

    def get_member(
        self, conversation_id: str, member_id: str, *, known_state: str | None = None
    ) -> Member:
        """One member's full record. With `known_state` (the state the member list shows), the
        record is re-read only when that state changed: members panels poll every few seconds and
        a member's channel, times and initiator only change with its state."""
        # Reference: GET /v1/conversations/{conversation_id}/members/{member_id}
        path = (
            f"/v1/conversations/{_id('conversation', conversation_id)}"
            f"/members/{_id('member', member_id)}"
        )
        if known_state is None:
            return self._read(path, {}, schema.parse_member)
        return self._read(
            path,
            {},
            schema.parse_member,
            variant=f"state={known_state}",
            fresh_seconds=self.config.stale_seconds,
        )

    def list_events(
        self,
        conversation_id: str,
        *,
        page_size: int = 50,
        order: str = "desc",
        cursor: str | None = None,
        start_id: int | None = None,
        end_id: int | None = None,
        event_type: str | None = None,
        exclude_deleted_events: bool | None = None,
        after_end: bool = False,
    ) -> Page[Event]:
        """With `after_end` (the page has seen the conversation end), an answer cached before the
        end is not used: it may miss the last events (see `_page`)."""
        # Reference: GET /v1/conversations/{conversation_id}/events
        path = f"/v1/conversations/{_id('conversation', conversation_id)}/events"
        for name, value in (("start_id", start_id), ("end_id", end_id)):
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f"{name} must be a non-negative integer")
        params = _paging(page_size, order, cursor) | _drop_empty(
            start_id=start_id,
            end_id=end_id,
            event_type=event_type,
            exclude_deleted_events=(
                None if exclude_deleted_events is None else str(exclude_deleted_events).lower()
            ),
        )
        return self._page(path, params, "events", schema.parse_event, after_end=after_end)

    def get_event(self, conversation_id: str, event_id: int) -> Event:
        # Reference: GET /v1/conversations/{conversation_id}/events/{event_id}
        if not isinstance(event_id, int) or event_id < 0:
            raise ValueError("event_id must be a non-negative integer")
        path = f"/v1/conversations/{_id('conversation', conversation_id)}/events/{event_id}"
        return self._read(path, {}, schema.parse_event)

    def list_users(
        self,
        *,
        page_size: int = 10,
        order: str = "asc",
        cursor: str | None = None,
        name: str | None = None,
    ) -> Page[User]:
        # Reference: GET /v1/users
        params = _paging(page_size, order, cursor) | _drop_empty(name=name)
        return self._page("/v1/users", params, "users", schema.parse_user)

    def get_user(self, user_id: str) -> User:
        # Reference: GET /v1/users/{user_id}
        return self._read(f"/v1/users/{_id('user', user_id)}", {}, schema.parse_user)

    def list_user_conversations(
        self,
        user_id: str,
        *,
        page_size: int = 10,
        order: str = "desc",
        cursor: str | None = None,
        state: str | None = None,
    ) -> Page[Conversation]:
        # Reference: GET /v1/users/{user_id}/conversations
        if state is not None and state not in ("INVITED", "JOINED", "LEFT"):
            raise ValueError("state must be INVITED, JOINED or LEFT")
        path = f"/v1/users/{_id('user', user_id)}/conversations"
        params = _paging(page_size, order, cursor) | _drop_empty(state=state)
        return self._page(path, params, "conversations", schema.parse_conversation)

    def list_user_sessions(
        self, user_id: str, *, page_size: int = 10, order: str = "desc", cursor: str | None = None
    ) -> Page[Session]:
        # Reference: GET /v1/users/{user_id}/sessions
        path = f"/v1/users/{_id('user', user_id)}/sessions"
        return self._page(path, _paging(page_size, order, cursor), "sessions", schema.parse_session)

    # --- reading

    def _page(
        self,
        path: str,
        params: dict[str, Any],
        key: str,
        parse_item: Callable[[Any], Any],
        *,
        after_end: bool = False,
    ) -> Page[Any]:
        # Never more items than asked for, whatever upstream sends (100,000 in a page of 10).
        limit = params["page_size"]
        return self._read(
            path,
            params,
            lambda data: schema.parse_page(data, key, parse_item, limit=limit),
            # Reads made once a conversation has ended are cached apart from the others: an
            # answer cached (or being fetched) just before the end may lack its last events, and
            # a page taking its final look must not stop on it. Viewers still share these reads.
            variant="after-end" if after_end else "",
        )

    def _read(
        self,
        path: str,
        params: dict[str, Any],
        parse: Callable[[Any], T],
        *,
        variant: str = "",
        fresh_seconds: float | None = None,
    ) -> T:
        def load() -> T:
            if self.signer is None:
                raise NotConfigured()
            data = self.transport.get_json(path, params, self.signer.token)
            try:
                return parse(data)
            except schema.ShapeError as exc:
                raise BadResponse(f"Unexpected response shape: {exc}") from None
            except (TypeError, ValueError, AttributeError, OverflowError, RecursionError):
                # Hostile data the parsers did not foresee is still only a bad response.
                logger.warning("upstream GET %s unreadable response", path, exc_info=True)
                raise BadResponse("Unexpected response shape") from None

        return self.reads.read(
            self.reads.key(path, params, variant),
            load,
            fresh_seconds=self.config.cache_seconds if fresh_seconds is None else fresh_seconds,
            wait_seconds=self.config.page_budget,
            label=path,
        )


def _id(kind: str, value: str) -> str:
    if not ids.is_valid(kind, value):
        raise ValueError(f"not a well-formed {kind} id")
    return quote(value, safe="")


def _paging(page_size: int, order: str, cursor: str | None) -> dict[str, Any]:
    if not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
    if order not in ORDERS:
        raise ValueError("order must be asc or desc")
    return {"page_size": page_size, "order": order} | _drop_empty(cursor=cursor)


def _drop_empty(**params: Any) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None and v != ""}
