"""Injected failures and latency for /v1 requests.

Settings come from the CLI and can be changed at run time through /_sandbox/faults. Whether a
fault fires is drawn from its own seeded RNG, so a run with --fault-rate 0.3 is reproducible
and does not disturb the world's RNG.

Modes (what a client sees when the fault fires):

- ``none``: no fault.
- ``500``: 500 with Vonage's internal-error body.
- ``502``: 502 with an HTML body, as a gateway in front of the API would send.
- ``503``: 503 "unavailable" JSON body with Retry-After.
- ``429``: 429 rate-limit body with Retry-After (``retry_after`` seconds).
- ``timeout``: the request is held ``timeout_seconds`` (or until the fault is changed or the
  server stops), then the connection is closed without a response.
- ``slow``: held like ``timeout``, then answered normally.
- ``reset``: the connection is reset (TCP RST) without a response.
- ``close``: the connection is closed cleanly (FIN) without a response.
- ``malformed``: 200 with a truncated JSON body.
- ``wrong_shape``: 200 with valid JSON that is not a Conversation API shape.
- ``401``: 401 invalid-token body, whatever the token.
- ``drip``, ``truncated``, ``bad_chunked``, ``bad_gzip``, ``gzip_bomb``, ``deep``, ``huge``,
  ``flood``: a hostile upstream, see ``hostile_wire.py``.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import asdict, dataclass
from typing import Any

MODES = (
    "none",
    "500",
    "502",
    "503",
    "429",
    "timeout",
    "slow",
    "reset",
    "close",
    "malformed",
    "wrong_shape",
    "401",
    "drip",
    "truncated",
    "bad_chunked",
    "bad_gzip",
    "gzip_bomb",
    "deep",
    "huge",
    "flood",
)
# Modes that hold the request; changing the mode (or shutting down) releases held requests.
HOLD_MODES = ("timeout", "slow")

# 200 bodies that are valid JSON but not a Conversation API shape.
WRONG_SHAPES: list[Any] = [
    {"unexpected": True},
    [],
    {"_embedded": "not-a-list", "page_size": "ten", "_links": None},
    "ok",
    None,
]

BAD_GATEWAY_HTML = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)


@dataclass
class FaultSettings:
    mode: str = "none"
    rate: float = 1.0
    retry_after: int = 2
    latency_ms: int = 0
    path_prefix: str | None = None
    timeout_seconds: float = 30.0  # how long "timeout" holds a request unless cleared
    # The hostile modes' sizes (hostile_wire.py).
    drip_interval_ms: int = 2000
    depth: int = 900
    huge_bytes: int = 30_000_000
    flood_items: int = 100_000
    bomb_bytes: int = 300_000_000


class FaultError(ValueError):
    pass


class Faults:
    """Thread-safe fault settings plus the condition that "timeout" requests wait on."""

    def __init__(self, settings: FaultSettings, seed: int) -> None:
        # DELETE /_sandbox/faults goes back to "no fault", keeping the CLI's rate, Retry-After,
        # latency and hold time, so a later PUT {"mode": ...} behaves as the CLI configured it
        # and a benchmark's baseline latency survives a reset.
        self._defaults = FaultSettings(
            rate=settings.rate,
            retry_after=settings.retry_after,
            latency_ms=settings.latency_ms,
            timeout_seconds=settings.timeout_seconds,
        )
        self._settings = settings
        self._rng = random.Random(f"faults-{seed}")
        self._cond = threading.Condition()
        self._closed = False  # set on shutdown to release held "timeout" requests

    def snapshot(self) -> FaultSettings:
        with self._cond:
            return FaultSettings(**asdict(self._settings))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self.snapshot())

    def update(self, changes: dict[str, Any]) -> FaultSettings:
        """Apply a subset of settings (validated); ``{"mode": "none"}`` clears the fault."""
        clean = validate(changes)
        with self._cond:
            for name, value in clean.items():
                setattr(self._settings, name, value)
            self._cond.notify_all()
            return FaultSettings(**asdict(self._settings))

    def reset(self) -> FaultSettings:
        with self._cond:
            self._settings = FaultSettings(**asdict(self._defaults))
            self._cond.notify_all()
            return FaultSettings(**asdict(self._settings))

    def applies(self, path: str, settings: FaultSettings) -> bool:
        return path.startswith("/v1") and (
            not settings.path_prefix or path.startswith(settings.path_prefix)
        )

    def draw(self, settings: FaultSettings) -> bool:
        """Whether the configured fault fires for this request."""
        if settings.mode == "none":
            return False
        with self._cond:
            return settings.rate >= 1.0 or self._rng.random() < settings.rate

    def wrong_shape(self) -> Any:
        with self._cond:
            return self._rng.choice(WRONG_SHAPES)

    def hold(self, mode: str, seconds: float) -> str:
        """Block a held request until the mode changes, shutdown, or ``seconds`` pass.

        Returns why it ended: "closed" (shutdown), "released" (mode changed) or "expired".
        """
        with self._cond:
            self._cond.wait_for(
                lambda: self._closed or self._settings.mode != mode, timeout=seconds
            )
            if self._closed:
                return "closed"
            return "released" if self._settings.mode != mode else "expired"

    def close(self) -> None:
        """Release every held request (server shutdown)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


def validate(changes: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(changes, dict):
        raise FaultError("body must be a JSON object")
    allowed = set(FaultSettings.__dataclass_fields__)
    unknown = set(changes) - allowed
    if unknown:
        raise FaultError(f"unknown fault settings: {sorted(unknown)}")
    clean: dict[str, Any] = {}
    if "mode" in changes:
        mode = str(changes["mode"]) if changes["mode"] is not None else "none"
        if mode not in MODES:
            raise FaultError(f"mode must be one of {list(MODES)}")
        clean["mode"] = mode
    if "rate" in changes:
        rate = _number(changes["rate"], "rate")
        if not 0.0 <= rate <= 1.0:
            raise FaultError("rate must be between 0 and 1")
        clean["rate"] = float(rate)
    for name in (
        "retry_after",
        "latency_ms",
        "drip_interval_ms",
        "depth",
        "huge_bytes",
        "flood_items",
        "bomb_bytes",
    ):
        if name in changes:
            value = _number(changes[name], name)
            if value < 0 or value != int(value):
                raise FaultError(f"{name} must be a non-negative integer")
            clean[name] = int(value)
    if "timeout_seconds" in changes:
        value = _number(changes["timeout_seconds"], "timeout_seconds")
        if value < 0:
            raise FaultError("timeout_seconds must be non-negative")
        clean["timeout_seconds"] = float(value)
    if "path_prefix" in changes:
        prefix = changes["path_prefix"]
        if prefix is not None and not isinstance(prefix, str):
            raise FaultError("path_prefix must be a string or null")
        clean["path_prefix"] = prefix or None
    return clean


def _number(value: Any, name: str) -> float:
    # JSON allows NaN and Infinity (Python's parser does): refuse them, int(inf) would raise.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FaultError(f"{name} must be a number")
    return value
