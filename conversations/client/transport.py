"""HTTP for the client: one pooled session, retries, and hard limits on time and size.

`requests`' read timeout bounds each socket read, not the response: an upstream that drips a byte
every few seconds would hold a thread for ever. So every read here has one deadline for all of it
(headers, body and retries; connecting is bounded by the connect timeout, capped at what is left),
enforced twice: the body is read in small pieces with the deadline checked between them, and a
watchdog shuts the socket down at the deadline, which also ends a read stuck in the headers. The
body is read decompressed, in pieces, up to `max_bytes`: a gzip bomb or a runaway list is a bad
response, not a worker's memory.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import logging
import math
import random
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from . import payload
from .config import ClientConfig
from .errors import (
    AuthenticationFailed,
    BadRequest,
    BadResponse,
    NotFound,
    RateLimited,
    Unavailable,
    UpstreamError,
)

logger = logging.getLogger("conversations.upstream")

_CHUNK_BYTES = 64 * 1024
# A Retry-After is believed up to this; the read cache caps the cool-down further.
_MAX_RETRY_AFTER_SECONDS = 3600.0


# --- the watchdog: a deadline on the whole exchange, headers included

_current = threading.local()


class _Watch:
    """Shuts down the socket of this thread's exchange once its deadline has passed.

    The socket is only touched while the exchange lasts (`done` under the lock): once it ends,
    its connection may serve another thread's exchange from the pool.
    """

    def __init__(self, seconds: float) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._done = False
        self.fired = False
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True

    def watch(self, sock: socket.socket | None) -> None:
        """The exchange now reads from `sock`: shut it down at once if the deadline has passed."""
        with self._lock:
            self._sock = sock
            if self.fired:
                self._shut()

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            self._shut()

    def _shut(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):  # wakes a recv() blocked in this exchange
                self._sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> _Watch:
        _current.watch = self
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._done = True
        self._timer.cancel()
        _current.watch = None


class _WatchedConnection(HTTPConnection):
    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        watch = getattr(_current, "watch", None)
        if watch is not None:
            watch.watch(self.sock)
        return super().getresponse(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    getresponse = _WatchedConnection.getresponse


class _WatchedPool(HTTPConnectionPool):
    ConnectionCls = _WatchedConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _WatchedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedPool, "https": _WatchedHTTPSPool}


class _TooLarge(Exception):
    pass


class _DeadlinePassed(Exception):
    pass


# --- the transport


class Transport:
    def __init__(self, config: ClientConfig, session: requests.Session | None = None) -> None:
        self.config = config
        self.base_url = config.base_url.rstrip("/")
        self.session = session or requests.Session()
        # The API sets no cookie we need; a hostile one would be sent back on every call.
        self.session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        adapter = _WatchedAdapter(pool_connections=4, pool_maxsize=32)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update(
            {
                "Accept": "application/json",
                "Accept-Encoding": "gzip, deflate",  # what _read_body can decompress safely
                "User-Agent": "conversation-dashboard/1.0",
            }
        )
        self.sleep: Callable[[float], None] = time.sleep

    def get_json(self, path: str, params: dict[str, Any], token: Callable[[], str]) -> Any:
        """GET with retries for 429, 5xx and broken connections, all within the total budget."""
        url = self.base_url + path
        started = time.monotonic()
        deadline = started + self.config.total_budget
        attempt = 0
        while True:
            status, body, error = self._exchange(url, params, token(), deadline)
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
                    return payload.loads(body)
                except payload.MalformedJSON:
                    raise BadResponse("The Conversation API sent malformed JSON") from None
                except payload.TooComplex as exc:
                    raise BadResponse(f"The response holds {exc}") from None
            if not retrying:
                raise error
            attempt += 1
            self.sleep(wait)

    def _exchange(
        self, url: str, params: dict[str, Any], token: str, deadline: float
    ) -> tuple[int | None, bytes, UpstreamError | None]:
        """One request: (status, body, the error it amounts to). Never raises transport errors."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None, b"", Unavailable("The Conversation API did not answer in time")
        status: int | None = None
        with _Watch(remaining) as watch:
            try:
                response = self.session.get(
                    url,
                    params=params,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=(
                        min(self.config.connect_timeout, remaining),
                        min(self.config.read_timeout, remaining),
                    ),
                    allow_redirects=False,
                    stream=True,
                )
                status = response.status_code
                try:
                    body = _read_body(response.raw, deadline, self.config.max_bytes)
                finally:
                    response.close()
            except _TooLarge:
                return (
                    status,
                    b"",
                    BadResponse(f"The response is larger than {self.config.max_bytes} bytes"),
                )
            except (_DeadlinePassed, requests.Timeout):
                return status, b"", Unavailable("The Conversation API did not answer in time")
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError):
                if watch.fired:
                    return status, b"", Unavailable("The Conversation API did not answer in time")
                if status is None:
                    return None, b"", Unavailable("Could not connect to the Conversation API")
                # Truncated, broken chunked encoding, broken gzip: the API is not serving us.
                return (
                    status,
                    b"",
                    Unavailable("The Conversation API's response broke off", status=status),
                )
        return status, body, _error_for(status, response.headers, body)


def _read_body(raw: Any, deadline: float, max_bytes: int) -> bytes:
    """The decompressed body, read in pieces, within the deadline and the size cap."""
    chunks: list[bytes] = []
    size = 0
    while True:
        if time.monotonic() > deadline:
            raise _DeadlinePassed()
        # read1 returns what one socket read brings (a dripping upstream cannot make it wait for
        # a full chunk), decompressed to at most _CHUNK_BYTES (urllib3 bounds the inflation).
        chunk = raw.read1(_CHUNK_BYTES, decode_content=True)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > max_bytes:
            raise _TooLarge()
        chunks.append(chunk)


def _error_for(status: int, headers: Any, body: bytes) -> UpstreamError | None:
    """The domain error for a non-2xx response, keyed off the status, then `code`, then `type`."""
    if 200 <= status < 300:
        return None
    fields: dict[str, Any] = {}
    try:
        parsed = payload.loads(body)
        if isinstance(parsed, dict):
            fields = parsed
    except (payload.MalformedJSON, payload.TooComplex):
        pass
    code = fields.get("code") if isinstance(fields.get("code"), str) else ""
    if not code and isinstance(fields.get("type"), str) and "#" in fields["type"]:
        code = fields["type"].rsplit("#", 1)[1]
    code = code[:100]
    detail = fields.get("detail") if isinstance(fields.get("detail"), str) else ""
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
        error.retry_after = _parse_retry_after(headers.get("Retry-After"))
    elif status >= 500:
        error = Unavailable(f"The Conversation API answered {status}", status=status, code=code)
        error.retry_after = _parse_retry_after(headers.get("Retry-After"))
    elif status == 400:
        error = BadRequest(detail or "Bad request", status=status, code=code)
    else:
        error = BadResponse(f"Unexpected status {status}", status=status, code=code)
    return error


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
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: rare for APIs; fall back to our own backoff
    if not math.isfinite(seconds):
        return None
    return max(0.0, min(seconds, _MAX_RETRY_AFTER_SECONDS))
