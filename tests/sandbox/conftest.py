"""Fixtures: one shared sandbox (small world, faults cleared around every test) and an HTTP client.

Tests that change the world (inject events, end calls, tick) start their own sandbox instead, so
the shared one stays as seeded.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from sandbox.testing import RunningSandbox, running_sandbox

SMALL_WORLD: dict[str, Any] = {"conversations": 30, "users": 20, "big_conversation_events": 500}


class Api:
    """requests.Session on a sandbox that signs every call with a fresh JWT (like the SDKs)."""

    def __init__(self, sb: RunningSandbox) -> None:
        self.sb = sb
        self.session = requests.Session()

    def get(self, path_or_url: str, headers: dict | None = None, **params: Any):
        url = path_or_url if "://" in path_or_url else self.sb.base_url + path_or_url
        all_headers = self.sb.auth_headers() | (headers or {})
        return self.session.get(url, params=params or None, headers=all_headers, timeout=10)

    def json(self, path_or_url: str, **params: Any) -> Any:
        r = self.get(path_or_url, **params)
        assert r.status_code == 200, r.text
        return r.json()

    def close(self) -> None:
        self.session.close()


@pytest.fixture(scope="session")
def shared_sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox(**SMALL_WORLD) as sb:
        yield sb


@pytest.fixture
def sb(shared_sandbox: RunningSandbox) -> Iterator[RunningSandbox]:
    shared_sandbox.clear_faults()
    yield shared_sandbox
    shared_sandbox.clear_faults()


@pytest.fixture
def fresh_sb() -> Iterator[RunningSandbox]:
    """A sandbox of its own, for tests that change the world."""
    with running_sandbox(**SMALL_WORLD) as sb:
        yield sb


@pytest.fixture
def api(sb: RunningSandbox) -> Iterator[Api]:
    client = Api(sb)
    yield client
    client.close()


@pytest.fixture
def fresh_api(fresh_sb: RunningSandbox) -> Iterator[Api]:
    client = Api(fresh_sb)
    yield client
    client.close()


def walk(api: Api, path: str, key: str | None, **params: Any) -> list[dict]:
    """Follow _links.next from the first page; returns every item (key None: events array)."""
    items: list[dict] = []
    url: str | None = path
    first = True
    pages = 0
    while url:
        body = api.json(url, **params) if first else api.json(url)
        first = False
        pages += 1
        assert pages < 10_000
        embedded = body.get("_embedded")
        if embedded is None:
            page: list[dict] = []
        elif key is None:
            page = embedded if isinstance(embedded, list) else embedded["events"]
        else:
            page = embedded[key]
        items += page
        url = body["_links"].get("next", {}).get("href")
    return items
