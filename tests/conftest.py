"""Shared fixtures: an RSA key pair, a client on a fake base URL (for `responses`), staff users."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.cache import cache

from conversations import client as client_module
from conversations.privacy import roles
from conversations.store import ingest

FIXTURES = Path(__file__).parent / "fixtures"
API = "https://api.test"
APPLICATION_ID = "0b2d4f6a-8c1e-4a3b-9d5f-7e9a1c3b5d7f"


def free_port() -> int:
    """A local port nobody listens on (for a server to start on, or to be refused by)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture(scope="session")
def key_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    ingest.forget_applications()  # rows a rolled-back test created are gone
    yield
    cache.clear()
    ingest.forget_applications()


def make_client(
    private_pem: str, base_url: str = API, **overrides
) -> client_module.ConversationClient:
    config = client_module.ClientConfig(
        base_url=base_url,
        application_id=overrides.pop("application_id", APPLICATION_ID),
        private_key_pem=private_pem,
        **overrides,
    )
    return client_module.ConversationClient(config)


@pytest.fixture
def api(key_pair, monkeypatch):
    """A client on API with no real sleeping; `api.slept` records the waits it asked for."""
    client = make_client(key_pair[0], total_budget=30.0, cache_seconds=2.0)
    client.slept = []
    monkeypatch.setattr(client, "sleep", client.slept.append)
    return client


@pytest.fixture
def use_client(monkeypatch):
    """Make the views use the given client instead of the one built from settings."""

    def install(client):
        monkeypatch.setattr(client_module.registry, "_override", client)
        return client

    return install


@pytest.fixture(scope="session")
def sandbox():
    """One in-process sandbox for the session: a small world, no background activity."""
    from sandbox.testing import running_sandbox

    with running_sandbox(conversations=30, big_conversation_events=300, activity_interval=0) as sb:
        yield sb


def sandbox_client(sandbox, **overrides) -> client_module.ConversationClient:
    """A client for the given sandbox: fast timeouts, so fault tests do not wait long."""
    settings = {"cache_seconds": 1, "max_retries": 0, "read_timeout": 1.0, "total_budget": 2.0}
    return client_module.ConversationClient(
        client_module.ClientConfig(
            base_url=overrides.pop("base_url", sandbox.base_url),
            application_id=sandbox.application_id,
            private_key_pem=overrides.pop("private_key_pem", sandbox.private_key_pem),
            **(settings | overrides),
        )
    )


@pytest.fixture
def staff_user(django_user_model):
    """A Supervisor: staff who see personal data (tests of masking make Support users)."""
    return supervisor(
        django_user_model.objects.create_user("staff", password="staff-password-1", is_staff=True)
    )


def login_with_second_factor(client, user):
    """Log `user` in with a session that passed a second factor (an app set up as enrolment
    does): what a superuser needs before any page."""
    from django_otp import DEVICE_ID_SESSION_KEY

    from conversations.twofactor import devices

    device = devices.pending_app(user)
    device.confirmed = True
    device.save()
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


def supervisor(user):
    user.groups.add(roles.group(roles.SUPERVISORS))
    return user


def support(user):
    user.groups.add(roles.group(roles.SUPPORT))
    return user


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture(scope="session")
def live_server(django_db_setup, live_server):
    """pytest-django's live server, always started once the test database exists: it decides how
    the server's threads reach the database when it starts, from the test database's settings,
    which must not depend on whether a database test happened to run first (in the suite, one
    did; a browser file run alone started the server on the settings before the test database)."""
    return live_server
