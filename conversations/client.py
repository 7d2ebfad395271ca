"""The Conversation API v1 client: the only module that talks HTTP and signs JWTs.

One method per read endpoint, returning the typed records of `schema.py` and raising the small
family of `UpstreamError`s below. Behind the methods, and never in views:
- one RS256 JWT per token lifetime per process (re-signed shortly before it expires);
- one pooled `requests.Session` with explicit connect and read timeouts;
- retries with backoff for idempotent reads (429, 5xx, connection errors), honouring Retry-After,
  within a total time budget;
- a short-lived cache in Django's cache framework with request coalescing (one upstream call per
  key at a time across threads, processes and hosts sharing the cache), a cool-down while upstream
  rate-limits us, and the last good copy of every read, handed to the caller on failure as `stale`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache as memoize
from typing import Any, TypeVar
from urllib.parse import quote

import jwt
import requests
from django.conf import settings
from django.core.cache import caches

from . import ids, schema
from .schema import Conversation, Event, Member, Page, Session, User

logger = logging.getLogger("conversations.upstream")

T = TypeVar("T")

ORDERS = ("asc", "desc")
MAX_PAGE_SIZE = 100


# --- errors


class UpstreamError(Exception):
    """A read from the Conversation API failed. `stale` holds the last good result, if any."""

    summary = "The Conversation API failed"

    def __init__(self, detail: str = "", *, status: int | None = None, code: str = "") -> None:
        super().__init__(detail or self.summary)
        self.detail = detail or self.summary
        self.status = status
        self.code = code
        self.stale: Any = None
        self.stale_at: float | None = None  # epoch seconds of the stale copy
        self.retry_after: float | None = None


class NotFound(UpstreamError):
    summary = "Not found"


class AuthenticationFailed(UpstreamError):
    summary = "The Conversation API refused our credentials (401/403)"


class RateLimited(UpstreamError):
    summary = "The Conversation API is rate limiting us (429)"


class Unavailable(UpstreamError):
    summary = "The Conversation API is unavailable"


class StillLoading(Unavailable):
    """A read did not finish within the page's budget (UPSTREAM_PAGE_BUDGET_SECONDS).

    The read goes on in the background and fills the cache, so asking again a moment later usually
    answers at once. `stale` holds the last good data, if any.
    """

    summary = "Still loading from the Conversation API"


class BadResponse(UpstreamError):
    summary = "The Conversation API sent a response we could not read"


class BadRequest(UpstreamError):
    summary = "The Conversation API rejected the request (400)"


class NotConfigured(UpstreamError):
    """The dashboard cannot sign requests: its private key is missing or unreadable."""

    summary = "The dashboard's Vonage private key could not be loaded"


# --- JWT


class TokenSigner:
    """Signs application JWTs (RS256) and reuses each until shortly before it expires."""

    # Re-sign this long before expiry so a token never expires in flight.
    REFRESH_MARGIN_SECONDS = 60

    def __init__(self, application_id: str, private_key_pem: str, ttl_seconds: int = 900) -> None:
        if not 30 <= ttl_seconds <= 86400:
            raise ValueError("JWT lifetime must be between 30 seconds and 24 hours")
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        # Load (and so validate) the key once; the PEM text is not kept.
        self._key = load_pem_private_key(private_key_pem.encode(), password=None)
        if not isinstance(self._key, rsa.RSAPrivateKey):  # RS256 needs RSA; EC would fail later
            raise ValueError("the private key is not an RSA key")
        self.application_id = application_id
        self.ttl_seconds = ttl_seconds
        self._lock = threading.Lock()
        self._token = ""
        self._expires_at = 0.0
        self.signed_count = 0

    def token(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        with self._lock:
            margin = min(self.REFRESH_MARGIN_SECONDS, self.ttl_seconds / 4)
            if not self._token or now >= self._expires_at - margin:
                issued = int(now)
                claims = {
                    "application_id": self.application_id,
                    "iat": issued,
                    "jti": str(uuid.uuid4()),
                    "exp": issued + self.ttl_seconds,
                }
                self._token = jwt.encode(claims, self._key, algorithm="RS256")
                self._expires_at = issued + self.ttl_seconds
                self.signed_count += 1
            return self._token

    def __repr__(self) -> str:  # never show key material
        return f"<TokenSigner application_id={self.application_id!r}>"


# --- the client


@dataclass(frozen=True)
class ClientConfig:
    base_url: str
    application_id: str
    private_key_pem: str
    connect_timeout: float = 3.05
    read_timeout: float = 10.0
    total_budget: float = 15.0
    max_retries: int = 2
    jwt_ttl_seconds: int = 900
    cache_seconds: float = 2.0
    stale_seconds: int = 600
    cache_alias: str = "default"

    def __repr__(self) -> str:
        return f"ClientConfig(base_url={self.base_url!r}, application_id={self.application_id!r})"


_CACHE_PREFIX = "capi:v1:"
_FAILURE_SECONDS = 1.0  # how long a failed read answers every waiter without a new upstream call
_COALESCE_POLL_SECONDS = 0.01
# While set, every read fails at once with the last good data: (until, "rate-limited" or
# "unreachable"). A 429 is for the whole application; no answer at all means the API is down.
_COOLDOWN_KEY = _CACHE_PREFIX + "cooldown"
_UNREACHABLE_SECONDS = 3  # after a timeout or a refused connection, rather than wait every read


class ConversationClient:
    def __init__(self, config: ClientConfig, session: requests.Session | None = None) -> None:
        self.config = config
        self.base_url = config.base_url.rstrip("/")
        try:
            self.signer: TokenSigner | None = TokenSigner(
                config.application_id, config.private_key_pem, config.jwt_ttl_seconds
            )
        except (ValueError, TypeError):  # not a PEM key, or one with a passphrase
            # Every read then fails with NotConfigured: pages explain it instead of crashing.
            self.signer = None
        self.session = session or requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=32)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update(
            {"Accept": "application/json", "User-Agent": "conversation-dashboard/1.0"}
        )
        self.cache = caches[config.cache_alias]
        self._local_locks: dict[str, threading.Lock] = {}
        self._local_locks_guard = threading.Lock()
        self.sleep = time.sleep

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
    ) -> Page[Member]:
        # Reference: GET /v1/conversations/{conversation_id}/members
        path = f"/v1/conversations/{_id('conversation', conversation_id)}/members"
        return self._page(path, _paging(page_size, order, cursor), "members", schema.parse_member)

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
        return self._read(path, {}, schema.parse_member)

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
    ) -> Page[Event]:
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
        return self._page(path, params, "events", schema.parse_event)

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

    # --- reading, with cache and coalescing

    def _page(
        self, path: str, params: dict[str, Any], key: str, parse_item: Callable[[Any], Any]
    ) -> Page[Any]:
        return self._read(path, params, lambda payload: schema.parse_page(payload, key, parse_item))

    def _read(self, path: str, params: dict[str, Any], parse: Callable[[Any], T]) -> T:
        cache_key = (
            _CACHE_PREFIX
            + hashlib.sha256(repr((path, sorted(params.items()))).encode()).hexdigest()
        )
        entry = self.cache.get(cache_key)
        if entry is not None:
            return self._answer_from_entry(entry, cache_key, path)
        with self._local_lock(cache_key):  # threads of one process queue here, not on the cache
            entry = self.cache.get(cache_key)
            if entry is not None:
                return self._answer_from_entry(entry, cache_key, path)
            lock_key = cache_key + ":lock"
            deadline = time.monotonic() + self.config.total_budget
            lock_seconds = _whole_seconds(self.config.total_budget + 1)
            while not self.cache.add(lock_key, 1, timeout=lock_seconds):
                # Another process is reading this key: wait for its answer instead of asking too.
                if time.monotonic() > deadline:
                    raise self._with_stale(
                        Unavailable("Timed out waiting for a concurrent read"), cache_key
                    )
                self.sleep(_COALESCE_POLL_SECONDS)
                entry = self.cache.get(cache_key)
                if entry is not None:
                    return self._answer_from_entry(entry, cache_key, path)
            try:
                cooldown = self.cache.get(_COOLDOWN_KEY)
                if cooldown is not None and cooldown[0] > time.time():
                    until, reason = cooldown
                    error: UpstreamError
                    if reason == "rate-limited":
                        error = RateLimited("Waiting out the API's rate limit", status=429)
                    else:
                        error = Unavailable("The Conversation API did not answer a moment ago")
                    error.retry_after = until - time.time()
                    logger.info("upstream GET %s skipped: %s cool-down", path, reason)
                    raise self._with_stale(error, cache_key)
                return self._fetch_and_store(path, params, parse, cache_key)
            finally:
                self.cache.delete(lock_key)

    def _fetch_and_store(
        self, path: str, params: dict[str, Any], parse: Callable[[Any], T], cache_key: str
    ) -> T:
        try:
            payload = self._get_json(path, params)
            try:
                value = parse(payload)
            except schema.ShapeError as exc:
                raise BadResponse(f"Unexpected response shape: {exc}") from None
            except (TypeError, ValueError, AttributeError, OverflowError, RecursionError):
                # Hostile data the parsers did not foresee is still only a bad response.
                logger.warning("upstream GET %s unreadable response", path, exc_info=True)
                raise BadResponse("Unexpected response shape") from None
        except UpstreamError as exc:
            # Every waiter gets this failure for a moment rather than asking upstream again;
            # while rate limited, for as long as upstream asked us to wait.
            hold = max(_FAILURE_SECONDS, exc.retry_after or 0)
            self.cache.set(cache_key, ("error", exc), timeout=_whole_seconds(hold))
            if isinstance(exc, RateLimited):
                # A rate limit is for the whole application: every read waits it out.
                self._cool_down("rate-limited", hold)
            elif isinstance(exc, Unavailable) and exc.status is None:
                # No answer at all (timeout, refused, reset): the API is down, not one resource.
                # Fail fast for a moment instead of making every read wait out its own timeout.
                self._cool_down("unreachable", _UNREACHABLE_SECONDS)
            raise self._with_stale(exc, cache_key) from None
        now = time.time()
        self.cache.set(cache_key, ("ok", value), timeout=_whole_seconds(self.config.cache_seconds))
        self.cache.set(cache_key + ":stale", (now, value), timeout=self.config.stale_seconds)
        return value

    def _cool_down(self, reason: str, seconds: float) -> None:
        self.cache.set(
            _COOLDOWN_KEY, (time.time() + seconds, reason), timeout=_whole_seconds(seconds)
        )

    def _answer_from_entry(self, entry: Any, cache_key: str, path: str) -> Any:
        kind, value = entry
        logger.debug("upstream GET %s cache=hit", path)
        if kind == "ok":
            return value
        raise self._with_stale(_copy_error(value), cache_key)

    def _with_stale(self, exc: UpstreamError, cache_key: str) -> UpstreamError:
        stale = self.cache.get(cache_key + ":stale")
        if stale is not None and not isinstance(exc, NotFound):
            exc.stale_at, exc.stale = stale
        return exc

    def _local_lock(self, key: str) -> threading.Lock:
        with self._local_locks_guard:
            lock = self._local_locks.get(key)
            if lock is None:
                if len(self._local_locks) > 10000:  # bounded: drop idle locks
                    self._local_locks = {k: v for k, v in self._local_locks.items() if v.locked()}
                lock = self._local_locks[key] = threading.Lock()
            return lock

    # --- HTTP

    def _get_json(self, path: str, params: dict[str, Any]) -> Any:
        """GET with retries for 429, 5xx and connection errors, inside the total time budget."""
        if self.signer is None:
            raise NotConfigured()
        url = self.base_url + path
        started = time.monotonic()
        deadline = started + self.config.total_budget
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            try:
                response = self.session.get(
                    url,
                    params=params,
                    headers={"Authorization": f"Bearer {self.signer.token()}"},
                    timeout=(
                        min(self.config.connect_timeout, max(remaining, 0.1)),
                        min(self.config.read_timeout, max(remaining, 0.1)),
                    ),
                    allow_redirects=False,
                )
                error = _error_for(response)
            except requests.Timeout:
                response, error = None, Unavailable("The Conversation API did not answer in time")
            except requests.ConnectionError:
                response, error = None, Unavailable("Could not connect to the Conversation API")
            status = response.status_code if response is not None else None
            wait = _retry_wait(error, attempt)
            retrying = (
                wait is not None
                and attempt < self.config.max_retries
                and time.monotonic() + wait < deadline
            )
            logger.info(
                "upstream GET %s cache=miss status=%s duration_ms=%d attempt=%d%s",
                path,
                status if status is not None else "-",
                (time.monotonic() - started) * 1000,
                attempt,
                " retrying" if retrying else "",
            )
            if error is None:
                try:
                    return response.json()
                except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
                    raise BadResponse("The Conversation API sent malformed JSON") from None
            if not retrying:
                raise error
            attempt += 1
            self.sleep(wait)


def _error_for(response: requests.Response) -> UpstreamError | None:
    """The domain error for a non-2xx response, keyed off the status, then `code`, then `type`."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    body: dict[str, Any] = {}
    try:
        parsed = response.json()
        if isinstance(parsed, dict):
            body = parsed
    except (ValueError, RecursionError):
        pass
    code = body.get("code") if isinstance(body.get("code"), str) else ""
    if not code and isinstance(body.get("type"), str) and "#" in body["type"]:
        code = body["type"].rsplit("#", 1)[1]
    detail = body.get("detail") if isinstance(body.get("detail"), str) else ""
    detail = detail[:300]
    if status == 404:
        error: UpstreamError = NotFound(detail or "Not found", status=status, code=code)
    elif status in (401, 403):
        error = AuthenticationFailed(
            "The Conversation API refused our credentials: check VONAGE_APPLICATION_ID and the "
            "private key",
            status=status,
            code=code,
        )
    elif status == 429:
        error = RateLimited(status=status, code=code)
        error.retry_after = _parse_retry_after(response.headers.get("Retry-After"))
    elif status >= 500:
        error = Unavailable(f"The Conversation API answered {status}", status=status, code=code)
        error.retry_after = _parse_retry_after(response.headers.get("Retry-After"))
    elif status == 400:
        error = BadRequest(detail or "Bad request", status=status, code=code)
    else:
        error = BadResponse(f"Unexpected status {status}", status=status, code=code)
    return error


def _whole_seconds(seconds: float) -> int:
    """A cache timeout in whole seconds, rounded up: Django's Redis backend truncates floats, and
    a timeout that truncates to 0 means "do not store" (so no sharing and no coalescing)."""
    return math.ceil(seconds) if seconds > 0 else 0


def _retry_wait(error: UpstreamError | None, attempt: int) -> float | None:
    """Seconds to wait before retrying after `error`, or None when it is not worth a retry."""
    if isinstance(error, RateLimited):
        return error.retry_after if error.retry_after is not None else 1.0 * 2**attempt
    if isinstance(error, Unavailable):
        if error.retry_after is not None:  # a 503 may say when to come back
            return error.retry_after
        return 0.2 * 2**attempt + random.uniform(0, 0.1)  # noqa: S311 - jitter, not crypto
    return None


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, min(float(value), 3600.0))
    except ValueError:
        return None  # an HTTP date: rare for APIs; fall back to our own backoff


def _copy_error(error: UpstreamError) -> UpstreamError:
    # A cached exception object is shared by every reader: give each its own.
    copy = type(error)(error.detail, status=error.status, code=error.code)
    copy.retry_after = error.retry_after
    return copy


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


# --- running several reads at once

_executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="upstream")


@dataclass(frozen=True)
class Outcome:
    """The result of one of several concurrent reads: a value, or the error it raised."""

    value: Any = None
    error: UpstreamError | None = None


def concurrently(**calls: Callable[[], Any]) -> dict[str, Outcome]:
    """Run the reads at once, so a page waits for the slowest, not for the sum."""
    futures = {name: _executor.submit(call) for name, call in calls.items()}
    outcomes = {}
    for name, future in futures.items():
        try:
            outcomes[name] = Outcome(value=future.result())
        except UpstreamError as exc:
            outcomes[name] = Outcome(error=exc)
    return outcomes


# --- the configured client


def _private_key_pem() -> str:
    """The PEM text, or "" when the file is missing (on the sandbox before `make run` made it)."""
    if settings.VONAGE_PRIVATE_KEY:
        return settings.VONAGE_PRIVATE_KEY
    try:
        with open(settings.VONAGE_PRIVATE_KEY_PATH, encoding="utf-8") as key_file:
            return key_file.read()
    except OSError:
        return ""


@memoize
def get_client() -> ConversationClient:
    """The process-wide client built from settings (one token signer, one connection pool)."""
    return ConversationClient(
        ClientConfig(
            base_url=settings.VONAGE_API_BASE_URL,
            application_id=settings.VONAGE_APPLICATION_ID,
            private_key_pem=_private_key_pem(),
            connect_timeout=settings.UPSTREAM_CONNECT_TIMEOUT,
            read_timeout=settings.UPSTREAM_READ_TIMEOUT,
            total_budget=settings.UPSTREAM_TOTAL_BUDGET,
            max_retries=settings.UPSTREAM_MAX_RETRIES,
            jwt_ttl_seconds=settings.VONAGE_JWT_TTL_SECONDS,
            cache_seconds=settings.UPSTREAM_CACHE_SECONDS,
            stale_seconds=settings.UPSTREAM_STALE_SECONDS,
        )
    )
