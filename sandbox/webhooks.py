"""Signed RTC webhooks: every event the world creates, POSTed to a configured URL as Vonage does.

The path of one event (WEBHOOKS.md sections 2-3):

1. ``World`` appends an event and calls its listeners while it holds the world lock. ``App``
   renders the webhook body to bytes there (a consistent snapshot) and calls ``submit``, which
   never blocks: a full queue drops the webhook, counts it and logs (rate-limited).
2. The sender thread, off the world lock, draws the delivery options for it from a seeded RNG
   (drop, duplicate, unsigned, wrong secret, altered body), holds and shuffles a small window
   when reordering is on, waits out any delay, signs each copy (fresh ``iat`` and ``jti``) and
   POSTs it with short timeouts.

A slow or down receiver therefore only ever fills the queue; the API emulation never waits on
it. One retry, of the very same request (same JWT, same bytes), after a connection error or a
5xx/429 answer; none after a timeout (a receiver that is slow would only get slower).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.client
import json
import math
import queue
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

USER_AGENT = "VonageSandbox-Webhooks/1.0"
MAX_REORDER_WINDOW = 100
MAX_DELAY_MS = 600_000
MAX_RESPONSE_BYTES = 65_536  # read (and discard) at most this much of an answer
RETRY_PAUSE_SECONDS = 0.2
LOG_EVERY_SECONDS = 5.0  # at most one log line per kind of problem this often

# Signing variants of one delivery.
SIGNED, UNSIGNED, WRONG_SECRET, ALTERED_BODY = "signed", "unsigned", "wrong_secret", "altered_body"


class WebhookError(ValueError):
    """Bad delivery settings (400 on the control endpoint)."""


@dataclass
class DeliverySettings:
    """What can be changed at run time through ``/_sandbox/webhooks`` (and set from the CLI)."""

    url: str | None = None  # where to POST; None sends nothing
    drop_rate: float = 0.0  # share of webhooks never sent
    duplicate_rate: float = 0.0  # share sent twice (same body, new jti)
    reorder_window: int = 0  # 0/1: in order; N: hold up to N webhooks and send them shuffled
    reorder_hold_ms: int = 200  # never hold a webhook longer than this waiting for the window
    delay_ms: int = 0  # each webhook leaves at least this long after its event
    unsigned_rate: float = 0.0  # share sent without an Authorization header
    wrong_secret_rate: float = 0.0  # share signed with a secret that is not the configured one
    altered_body_rate: float = 0.0  # share whose body is changed after signing


RATES = ("drop_rate", "duplicate_rate", "unsigned_rate", "wrong_secret_rate", "altered_body_rate")


def validate(changes: Any) -> dict[str, Any]:
    """Check a subset of DeliverySettings fields; returns the cleaned values."""
    if not isinstance(changes, dict):
        raise WebhookError("body must be a JSON object")
    unknown = set(changes) - {f.name for f in fields(DeliverySettings)}
    if unknown:
        raise WebhookError(f"unknown webhook settings: {sorted(unknown)}")
    clean: dict[str, Any] = {}
    for name in RATES:
        if name in changes:
            value = _number(changes[name], name)
            if not 0.0 <= value <= 1.0:
                raise WebhookError(f"{name} must be between 0 and 1")
            clean[name] = float(value)
    for name, top in (
        ("reorder_window", MAX_REORDER_WINDOW),
        ("reorder_hold_ms", MAX_DELAY_MS),
        ("delay_ms", MAX_DELAY_MS),
    ):
        if name in changes:
            value = _number(changes[name], name)
            if value != int(value) or not 0 <= value <= top:
                raise WebhookError(f"{name} must be an integer from 0 to {top}")
            clean[name] = int(value)
    if "url" in changes:
        url = changes["url"]
        if url is not None and not isinstance(url, str):
            raise WebhookError("url must be a string or null")
        check_url(url or None)
        clean["url"] = url or None
    return clean


def check_url(url: str | None) -> None:
    if url is None:
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2000:
        raise WebhookError("url must be an http:// or https:// URL with a host")
    try:
        parts.port  # noqa: B018 -- raises on a bad port
    except ValueError as exc:
        raise WebhookError("url has an invalid port") from exc


def _number(value: Any, name: str) -> float:
    # JSON allows NaN and Infinity (Python's parser does): refuse them, int(inf) would raise.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise WebhookError(f"{name} must be a number")
    return value


# ---------------------------------------------------------------------- signing


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign(
    body: bytes,
    secret: str,
    *,
    api_key: str,
    application_id: str,
    now: float | None = None,
    jti: str | None = None,
) -> str:
    """An HS256 JWT as Vonage signs callbacks: iat, jti, iss, api_key, application_id and the
    SHA-256 (hex) of the exact body bytes.

    Encoded by hand rather than with PyJWT so that a short secret (Vonage allows them) signs
    without PyJWT's key-length warning; receivers verify it with any JWT library.
    """
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {
        "iat": int(time.time() if now is None else now),
        "jti": jti or str(uuid.uuid4()),
        "iss": "Vonage",
        "api_key": api_key,
        "application_id": application_id,
        "payload_hash": hashlib.sha256(body).hexdigest(),
    }
    signing_input = ".".join(
        _b64(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    mac = hmac.new(secret.encode(), signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def alter(body: bytes) -> bytes:
    """The body changed after signing, the way a tamperer would: still valid JSON, so only the
    payload_hash check catches it (a compact re-serialisation does not match either)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body + b"!"
    if isinstance(data, dict):
        data["x-tampered"] = True
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return body + b"!"


# ---------------------------------------------------------------------- the sender


@dataclass
class _Item:
    body: bytes
    label: str  # for logs: "member:joined CON-… #5"
    enqueued: float  # time.monotonic()


@dataclass
class _Delivery:
    body: bytes
    label: str
    due: float  # monotonic time before which it is not sent (delay_ms)
    signing: str
    duplicate: bool = False


_STOP = object()


@dataclass
class _Counters:
    submitted: int = 0  # accepted into the queue
    dropped_queue_full: int = 0
    dropped_no_url: int = 0  # submitted while no URL was configured
    dropped_by_option: int = 0  # drop_rate
    duplicated: int = 0
    reordered_batches: int = 0
    unsigned: int = 0
    wrong_secret: int = 0
    altered_body: int = 0
    sent: int = 0  # deliveries attempted (a retry is not counted again)
    delivered: int = 0  # answered 2xx
    rejected: int = 0  # answered something else (after the retry, if any)
    failed: int = 0  # no answer: refused, reset, timed out (after the retry, if any)
    retries: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    last_error: str | None = None


class WebhookSender:
    """A bounded queue of webhook bodies and the daemon thread that delivers them."""

    def __init__(
        self,
        settings: DeliverySettings,
        *,
        secret: str | None,
        api_key: str,
        application_id: str,
        seed: int,
        queue_size: int = 1000,
        timeout: float = 2.0,
        retries: int = 1,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.secret = secret or None
        self.api_key = api_key
        self.application_id = application_id
        self.timeout = timeout
        self.retries = retries
        self._log = log or (lambda message: None)
        self._defaults = DeliverySettings(**asdict(settings))
        self._settings = settings
        # Own RNG: the same seed and the same sequence of webhooks draw the same options.
        self._rng = random.Random(f"webhooks-{seed}")
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, queue_size))
        self._lock = threading.Condition()
        self._counters = _Counters()
        self._pending = 0  # accepted, not yet sent or dropped (queued, held, or in flight)
        self._held = 0
        self._last_log: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ settings

    @property
    def url(self) -> str | None:
        return self._settings.url

    def settings(self) -> DeliverySettings:
        with self._lock:
            return DeliverySettings(**asdict(self._settings))

    def update(self, changes: dict[str, Any]) -> DeliverySettings:
        clean = validate(changes)
        with self._lock:
            for name, value in clean.items():
                setattr(self._settings, name, value)
            self._lock.notify_all()
        return self.settings()

    def reset(self) -> DeliverySettings:
        """Back to the configured options (the URL included)."""
        with self._lock:
            self._settings = DeliverySettings(**asdict(self._defaults))
            self._lock.notify_all()
        return self.settings()

    # ------------------------------------------------------------------ producer side

    def submit(self, body: bytes, label: str = "") -> bool:
        """Queue one webhook body; never blocks. False when it was dropped (no URL, queue full)."""
        if self._settings.url is None:
            with self._lock:
                self._counters.dropped_no_url += 1
            return False
        with self._lock:
            # Counted before the put so the sender never sees pending go below zero.
            self._pending += 1
            self._counters.submitted += 1
        try:
            self._queue.put_nowait(_Item(body, label, time.monotonic()))
        except queue.Full:
            with self._lock:
                self._pending -= 1
                self._counters.submitted -= 1
                self._counters.dropped_queue_full += 1
                self._lock.notify_all()
            self._warn("queue-full", f"webhook queue full, dropped {label or 'a webhook'}")
            return False
        return True

    # ------------------------------------------------------------------ observation

    def stats(self) -> dict[str, Any]:
        with self._lock:
            out = asdict(self._counters)
            out["by_status"] = dict(sorted(self._counters.by_status.items()))
            out["queued"] = self._queue.qsize()
            out["held"] = self._held
            out["pending"] = self._pending
            out["queue_size"] = self._queue.maxsize
            return out

    def reset_stats(self) -> None:
        with self._lock:
            self._counters = _Counters()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every accepted webhook was sent or dropped; False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: self._pending == 0, timeout=timeout)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._thread is None:
            self._halt.clear()
            self._thread = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)
            self._thread.start()

    def stop(self, wait: float = 5.0) -> None:
        """Stop sending; what is still queued or held is discarded."""
        self._halt.set()
        with self._lock:
            self._lock.notify_all()
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_STOP)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=wait)
        self._thread = None

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        held: list[_Delivery] = []
        held_since = 0.0
        while not self._halt.is_set():
            settings = self.settings()
            window = settings.reorder_window if settings.reorder_window > 1 else 0
            wait: float | None = None
            if held:
                wait = max(0.0, held_since + settings.reorder_hold_ms / 1000 - time.monotonic())
                if not window or len(held) >= window or wait == 0.0:
                    self._send_held(held)
                    held = []
                    continue
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                continue  # the hold expired: the loop sends what is held
            if item is _STOP or self._halt.is_set():
                break
            settings = self.settings()  # as they are now, not when the wait began
            window = settings.reorder_window if settings.reorder_window > 1 else 0
            deliveries = self._plan(item, settings)
            if window:
                if not held:
                    held_since = time.monotonic()
                held += deliveries
                with self._lock:
                    self._held = len(held)
            else:
                for delivery in deliveries:
                    self._deliver(delivery)

    def _plan(self, item: _Item, s: DeliverySettings) -> list[_Delivery]:
        """Draw this webhook's options; the number of draws never depends on the settings, so
        changing one rate does not change what the others pick."""
        with self._lock:
            drop, dup, unsigned, wrong, altered = (self._rng.random() for _ in range(5))
        c = self._counters
        if drop < s.drop_rate:
            with self._lock:
                c.dropped_by_option += 1
                self._done(1)
            return []
        if self.secret is None or unsigned < s.unsigned_rate:
            signing = UNSIGNED
        elif wrong < s.wrong_secret_rate:
            signing = WRONG_SECRET
        elif altered < s.altered_body_rate:
            signing = ALTERED_BODY
        else:
            signing = SIGNED
        due = item.enqueued + s.delay_ms / 1000
        out = [_Delivery(item.body, item.label, due, signing)]
        if dup < s.duplicate_rate:
            out.append(_Delivery(item.body, item.label, due, signing, duplicate=True))
        with self._lock:
            if len(out) > 1:
                c.duplicated += 1
                self._pending += 1
            if signing != SIGNED and self.secret is not None:
                setattr(c, signing, getattr(c, signing) + len(out))
        return out

    def _send_held(self, held: list[_Delivery]) -> None:
        with self._lock:
            self._rng.shuffle(held)
            self._counters.reordered_batches += 1
        for delivery in held:
            self._deliver(delivery)
        with self._lock:
            self._held = 0

    def _done(self, n: int) -> None:
        """Under self._lock: n accepted webhooks are finished."""
        self._pending -= n
        self._lock.notify_all()

    def _deliver(self, d: _Delivery) -> None:
        try:
            remaining = d.due - time.monotonic()
            if remaining > 0 and self._halt.wait(remaining):
                return
            url = self._settings.url
            if url is None:  # turned off while it waited
                with self._lock:
                    self._counters.dropped_no_url += 1
                return
            body, headers = self._request(d)
            self._post_with_retry(url, body, headers, d.label)
        except Exception as exc:  # never let one webhook kill the sender thread
            self._failed(d.label, f"{type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self._done(1)

    def _request(self, d: _Delivery) -> tuple[bytes, dict[str, str]]:
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        body = d.body
        if d.signing != UNSIGNED and self.secret is not None:
            secret = self.secret if d.signing != WRONG_SECRET else f"not-{self.secret}"
            token = sign(body, secret, api_key=self.api_key, application_id=self.application_id)
            headers["Authorization"] = f"Bearer {token}"
            if d.signing == ALTERED_BODY:
                body = alter(body)
        return body, headers

    def _post_with_retry(self, url: str, body: bytes, headers: dict[str, str], label: str) -> None:
        c = self._counters
        with self._lock:
            c.sent += 1
        for attempt in range(self.retries + 1):
            final = attempt == self.retries
            try:
                status = self._post(url, body, headers)
            except TimeoutError as exc:
                self._failed(label, f"timed out: {exc}")
                return
            except (OSError, http.client.HTTPException) as exc:
                if final:
                    self._failed(label, f"{type(exc).__name__}: {exc}")
                    return
            else:
                with self._lock:
                    c.by_status[str(status)] += 1
                    if 200 <= status < 300:
                        c.delivered += 1
                        return
                if final or not (status >= 500 or status == 429):
                    with self._lock:
                        c.rejected += 1
                        c.last_error = f"HTTP {status} for {label}"
                    self._warn("rejected", f"webhook {label} answered {status}")
                    return
            with self._lock:
                c.retries += 1
            if self._halt.wait(RETRY_PAUSE_SECONDS):
                return

    def _failed(self, label: str, reason: str) -> None:
        with self._lock:
            self._counters.failed += 1
            self._counters.last_error = f"{reason} ({label})"
        self._warn("failed", f"webhook {label} not delivered: {reason}")

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        parts = urlsplit(url)
        connection_class = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        conn = connection_class(parts.hostname or "", parts.port, timeout=self.timeout)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            response.read(MAX_RESPONSE_BYTES)
            return response.status
        finally:
            conn.close()

    def _warn(self, kind: str, message: str) -> None:
        """Log, at most once per LOG_EVERY_SECONDS per kind (a down receiver means a flood)."""
        now = time.monotonic()
        with self._lock:
            last = self._last_log.get(kind)
            if last is not None and now - last < LOG_EVERY_SECONDS:
                self._suppressed[kind] += 1
                return
            self._last_log[kind] = now
            suppressed = self._suppressed.pop(kind, 0)
        more = f" (and {suppressed} more like it)" if suppressed else ""
        self._log(f"sandbox: {message}{more}")
