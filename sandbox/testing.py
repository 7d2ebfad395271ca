"""Run a sandbox inside a test process.

    from sandbox.testing import running_sandbox

    with running_sandbox(conversations=30, big_conversation_events=500) as sb:
        r = requests.get(f"{sb.base_url}/v1/conversations", headers=sb.auth_headers())
        sb.set_fault(mode="429")
        ...

The server listens on 127.0.0.1 on a free port, in a background thread; live activity is off by
default (``activity_interval=0``) so tests are deterministic; call ``sb.tick()`` to advance it.
The control helpers call the same code as the /_sandbox endpoints and return the same JSON.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cryptography.hazmat.primitives import serialization

from sandbox.app import App
from sandbox.auth import generate_key_pair, load_public_key, mint_token
from sandbox.config import SandboxConfig
from sandbox.server import SandboxServer
from sandbox.world import World

TEST_DEFAULTS: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "activity_interval": 0.0}


@functools.cache
def test_key_pair() -> tuple[str, str]:
    """(private PEM, public PEM), generated in memory once per process (RSA 2048 is slowish)."""
    return generate_key_pair()


class RunningSandbox:
    """Handle on a running sandbox: where it is, how to authenticate, and its controls."""

    def __init__(self, server: SandboxServer, private_key_pem: str, public_key_pem: str) -> None:
        self.server = server
        self.private_key_pem = private_key_pem
        self.public_key_pem = public_key_pem
        self._private_key = serialization.load_pem_private_key(private_key_pem.encode(), None)

    @property
    def app(self) -> App:
        return self.server.app

    @property
    def config(self) -> SandboxConfig:
        return self.server.config

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def application_id(self) -> str:
        return self.config.application_id

    @property
    def world(self) -> World:
        return self.server.world

    # ------------------------------------------------------------------ auth

    def token(self, *, ttl: int | None = 900, **claims: Any) -> str:
        """A valid application JWT; extra claims (even application_id) override the defaults."""
        application_id = claims.pop("application_id", self.application_id)
        return mint_token(self._private_key, application_id, ttl=ttl, **claims)

    def auth_headers(self, **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(**claims)}"}

    # ------------------------------------------------------------------ controls

    def set_fault(self, **changes: Any) -> dict[str, Any]:
        """Like PUT /_sandbox/faults, e.g. ``set_fault(mode="429", retry_after=1)``."""
        return self.app.set_faults(changes)

    def clear_faults(self) -> dict[str, Any]:
        """Like DELETE /_sandbox/faults."""
        return self.app.clear_faults()

    def faults(self) -> dict[str, Any]:
        return self.app.faults.as_dict()

    def create_conversation(
        self, name: str | None = None, display_name: str | None = None, members: int = 2
    ) -> dict[str, Any]:
        """Like POST /_sandbox/conversations; returns the conversation JSON."""
        return self.app.create_conversation(
            self.base_url, name=name, display_name=display_name, members=members
        )

    def inject_event(
        self,
        conversation_id: str,
        type: str,
        body: dict[str, Any] | None = None,
        from_: str | None = None,
    ) -> dict[str, Any]:
        """Like POST /_sandbox/conversations/{id}/events; returns the event JSON."""
        return self.app.append_event(self.base_url, conversation_id, type, body, from_)

    def end_conversation(self, conversation_id: str) -> dict[str, Any]:
        """Like POST /_sandbox/conversations/{id}/end; returns the conversation JSON."""
        return self.app.end_conversation(self.base_url, conversation_id)

    def delete_conversation(self, conversation_id: str) -> dict[str, Any]:
        """Like DELETE /_sandbox/conversations/{id}: from now on the API answers 404 for it."""
        return self.app.delete_conversation(self.base_url, conversation_id)

    # ------------------------------------------------------------------ webhooks

    def webhooks(self) -> dict[str, Any]:
        """Like GET /_sandbox/webhooks: {"settings", "signed", "api_key", "stats"}."""
        return self.app.webhooks_state()

    def set_webhooks(self, **changes: Any) -> dict[str, Any]:
        """Like PUT /_sandbox/webhooks, e.g. ``set_webhooks(drop_rate=0.3, reorder_window=5)``."""
        self.app.webhooks.update(changes)
        return self.app.webhooks_state()

    def clear_webhooks(self) -> dict[str, Any]:
        """Like DELETE /_sandbox/webhooks: back to the configured options."""
        self.app.webhooks.reset()
        return self.app.webhooks_state()

    def send_webhook(self, payload: Any = None, raw: str | None = None) -> dict[str, Any]:
        """Like POST /_sandbox/webhooks/send: one arbitrary webhook, e.g.
        ``send_webhook({"type": "app:knocking", "application_id": ..., "body": {...}})``."""
        return self.app.send_webhook(payload, raw)

    def wait_webhooks(self, timeout: float = 10.0) -> None:
        """Wait until every queued webhook was sent or dropped (delays and reorder holds
        included); AssertionError after ``timeout`` seconds."""
        if not self.app.webhooks.wait_idle(timeout):
            raise AssertionError(f"webhooks still pending: {self.app.webhooks.stats()}")

    def tick(self) -> dict[str, Any]:
        """One step of live activity (like POST /_sandbox/tick)."""
        return self.world.tick()

    def stats(self) -> dict[str, Any]:
        """Like GET /_sandbox/stats: {"requests": n, "by_endpoint": {...}, "by_path": {...}}."""
        return self.app.stats.snapshot()

    def reset_stats(self) -> None:
        self.app.stats.reset()

    def state(self) -> dict[str, Any]:
        return self.app.state()


@contextmanager
def running_sandbox(**config_overrides: Any) -> Iterator[RunningSandbox]:
    """Start a sandbox (SandboxConfig fields as keyword arguments) and stop it on exit."""
    private_pem, public_pem = test_key_pair()
    config = SandboxConfig(**(TEST_DEFAULTS | config_overrides))
    server = SandboxServer(config, load_public_key(public_pem))
    server.start()
    try:
        yield RunningSandbox(server, private_pem, public_pem)
    finally:
        server.stop()
