"""Settings of one sandbox instance (the ``serve`` flags; also the running_sandbox options)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sandbox.faults import MODES, FaultSettings

DEFAULT_APPLICATION_ID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
EVENTS_SHAPES = ("array", "object")
EVENT_ID_FORMATS = ("number", "string")


@dataclass
class SandboxConfig:
    application_id: str = DEFAULT_APPLICATION_ID
    host: str = "127.0.0.1"
    port: int = 8001
    seed: int = 42
    conversations: int = 300
    users: int = 60
    big_conversation_events: int = 10_000
    latency_ms: int = 0
    activity_interval: float = 2.0  # seconds between live-activity ticks; 0 = off
    fault: str = "none"
    fault_rate: float = 1.0
    retry_after: int = 2
    fault_path_prefix: str | None = None  # only /v1 paths starting with this get the fault
    fault_timeout_seconds: float = 30.0  # how long "timeout"/"slow" hold a request
    events_shape: str = "array"  # events list _embedded: bare array, or {"events": [...]}
    event_id_format: str = "number"  # event "id" as a JSON number or a string
    links_host: str | None = None  # write _links on this host instead of the Host header
    verbose: bool = False

    def validate(self) -> None:
        if self.fault not in MODES:
            raise ValueError(f"fault must be one of {list(MODES)}")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError("fault_rate must be between 0 and 1")
        if self.events_shape not in EVENTS_SHAPES:
            raise ValueError(f"events_shape must be one of {list(EVENTS_SHAPES)}")
        if self.event_id_format not in EVENT_ID_FORMATS:
            raise ValueError(f"event_id_format must be one of {list(EVENT_ID_FORMATS)}")
        for name in ("conversations", "users", "big_conversation_events", "latency_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be non-negative")
        if self.retry_after < 0 or self.activity_interval < 0 or self.fault_timeout_seconds < 0:
            raise ValueError(
                "retry_after, activity_interval and fault_timeout_seconds must be non-negative"
            )
        if not 0 <= self.port <= 65535:
            raise ValueError("port must be between 0 and 65535")
        if not self.application_id:
            raise ValueError("application_id must not be empty")

    def fault_settings(self) -> FaultSettings:
        """The initial /_sandbox/faults settings (latency lives there so it can be changed)."""
        return FaultSettings(
            mode=self.fault,
            rate=self.fault_rate,
            retry_after=self.retry_after,
            latency_ms=self.latency_ms,
            path_prefix=self.fault_path_prefix or None,
            timeout_seconds=self.fault_timeout_seconds,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
