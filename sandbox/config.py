"""Settings of one sandbox instance (the ``serve`` flags; also the running_sandbox options)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sandbox.faults import MODES, FaultSettings
from sandbox.webhooks import DeliverySettings, WebhookError, check_url
from sandbox.webhooks import validate as validate_delivery

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
    # Signed RTC webhooks (webhooks.py): every event the sandbox creates is POSTed here.
    webhook_url: str | None = None  # None: no webhooks
    signature_secret: str | None = None  # HS256 secret; None: webhooks go unsigned
    api_key: str | None = None  # the JWT api_key claim; None: the world's seeded api key
    webhook_queue_size: int = 1000  # past this many waiting webhooks, new ones are dropped
    webhook_timeout_seconds: float = 2.0  # connect and read timeout of each POST
    webhook_retries: int = 1  # after a connection error or a 5xx/429 (never after a timeout)
    # Delivery options at start (PUT /_sandbox/webhooks changes them at run time).
    webhook_drop_rate: float = 0.0
    webhook_duplicate_rate: float = 0.0
    webhook_reorder_window: int = 0
    webhook_reorder_hold_ms: int = 200
    webhook_delay_ms: int = 0
    webhook_unsigned_rate: float = 0.0
    webhook_wrong_secret_rate: float = 0.0
    webhook_altered_body_rate: float = 0.0

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
        if self.webhook_queue_size < 1 or not 0 <= self.webhook_retries <= 3:
            raise ValueError("webhook_queue_size must be at least 1, webhook_retries 0 to 3")
        if not 0 < self.webhook_timeout_seconds <= 60:
            raise ValueError("webhook_timeout_seconds must be above 0 and at most 60")
        try:
            check_url(self.webhook_url or None)
            validate_delivery(asdict(self.delivery_settings()))
        except WebhookError as exc:
            raise ValueError(f"webhook option: {exc}") from exc

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

    def delivery_settings(self) -> DeliverySettings:
        """The initial /_sandbox/webhooks settings."""
        return DeliverySettings(
            url=self.webhook_url or None,
            **{
                name: getattr(self, f"webhook_{name}")
                for name in DeliverySettings.__dataclass_fields__
                if name != "url"
            },
        )

    def as_dict(self) -> dict[str, Any]:
        """All fields, the signature secret masked (control endpoints have no auth)."""
        out = asdict(self)
        if out["signature_secret"]:
            out["signature_secret"] = "(set)"  # noqa: S105 -- a mask, not a secret
        return out
