"""Command line: ``python -m sandbox keygen ...`` and ``python -m sandbox serve ...``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from sandbox.auth import generate_key_pair, load_public_key
from sandbox.config import DEFAULT_APPLICATION_ID, EVENT_ID_FORMATS, EVENTS_SHAPES, SandboxConfig
from sandbox.faults import MODES
from sandbox.server import SandboxServer
from sandbox.webhooks import DeliverySettings

DEFAULTS = SandboxConfig()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox",
        description="A local emulation of the Vonage Conversation API v1 (read endpoints).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    keygen = sub.add_parser("keygen", help="write an RSA 2048 key pair (PEM)")
    keygen.add_argument("--private-key", required=True, type=Path, help="written with mode 0600")
    keygen.add_argument("--public-key", required=True, type=Path)

    serve = sub.add_parser("serve", help="serve the API until SIGTERM/SIGINT")
    add = serve.add_argument
    add("--host", default=DEFAULTS.host)
    add("--port", type=int, default=DEFAULTS.port, help="0 picks a free port")
    add("--public-key", required=True, type=Path, help="PEM public key that verifies JWTs")
    add("--application-id", default=DEFAULT_APPLICATION_ID, help="required JWT application_id")
    add("--seed", type=int, default=DEFAULTS.seed)
    add("--conversations", type=int, default=DEFAULTS.conversations)
    add("--users", type=int, default=DEFAULTS.users)
    add("--big-conversation-events", type=int, default=DEFAULTS.big_conversation_events)
    add("--latency-ms", type=int, default=DEFAULTS.latency_ms, help="added to every /v1 reply")
    add(
        "--activity-interval",
        type=float,
        default=DEFAULTS.activity_interval,
        help="seconds between live-activity ticks; 0 turns live activity off",
    )
    add("--fault", choices=MODES, default=DEFAULTS.fault)
    add("--fault-rate", type=float, default=DEFAULTS.fault_rate, help="probability, 0..1")
    add("--fault-path", dest="fault_path_prefix", default=None, help="only paths with this prefix")
    add("--fault-timeout", dest="fault_timeout_seconds", type=float, default=30.0)
    add("--retry-after", type=int, default=DEFAULTS.retry_after, help="seconds (429/503)")
    add("--events-shape", choices=EVENTS_SHAPES, default=DEFAULTS.events_shape)
    add("--event-id-format", choices=EVENT_ID_FORMATS, default=DEFAULTS.event_id_format)
    add("--links-host", default=None, help="host (or scheme://host) for _links hrefs")
    add("--verbose", action="store_true", help="log requests to stderr")

    hooks = serve.add_argument_group(
        "webhooks", "signed RTC webhooks of every event the sandbox creates (see README)"
    )
    hook = hooks.add_argument
    env = os.environ.get
    hook(
        "--webhook-url",
        default=env("SANDBOX_WEBHOOK_URL") or None,
        help="POST every new event here (default $SANDBOX_WEBHOOK_URL; none: no webhooks)",
    )
    hook(
        "--signature-secret",
        default=env("SANDBOX_SIGNATURE_SECRET") or None,
        help="HS256 secret (default $SANDBOX_SIGNATURE_SECRET, which keeps it out of ps; "
        "none: unsigned webhooks)",
    )
    hook(
        "--api-key",
        default=env("SANDBOX_API_KEY") or None,
        help="api_key claim (default $SANDBOX_API_KEY, else the seeded world's key)",
    )
    hook("--webhook-queue-size", type=int, default=DEFAULTS.webhook_queue_size)
    hook("--webhook-timeout", dest="webhook_timeout_seconds", type=float, default=2.0)
    hook("--webhook-retries", type=int, default=DEFAULTS.webhook_retries, help="0..3")
    for name in DeliverySettings.__dataclass_fields__:
        if name == "url":
            continue
        kind = float if name.endswith("_rate") else int
        field = f"webhook_{name}"
        hook(f"--{field.replace('_', '-')}", type=kind, default=getattr(DEFAULTS, field))
    return parser


def keygen(private_path: Path, public_path: Path) -> None:
    private_pem, public_pem = generate_key_pair()
    for path in (private_path, public_path):
        path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)  # also when the file already existed with wider modes
        f.write(private_pem)
    public_path.write_text(public_pem)
    print(f"wrote {private_path} (private, 0600) and {public_path} (public)")


def serve(args: argparse.Namespace) -> int:
    fields = {name: getattr(args, name) for name in SandboxConfig.__dataclass_fields__}
    config = SandboxConfig(**fields)
    try:
        config.validate()
        public_key = load_public_key(args.public_key.read_bytes())
    except (OSError, ValueError) as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server = SandboxServer(config, public_key)
    except OSError as exc:
        print(f"sandbox: cannot listen on {config.host}:{config.port}: {exc}", file=sys.stderr)
        return 1
    server.start()
    print(f"sandbox listening on {server.base_url}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "keygen":
        keygen(args.private_key, args.public_key)
        return 0
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
