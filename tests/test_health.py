"""The probes (issue 8, faults 1 and 13): anonymous, so they must never tie up the dashboard.

/healthz answers at once; /readyz answers from a result a few seconds old that at most one
request per process refreshes, with its own short timeouts; both answer HEAD.
"""

from __future__ import annotations

import threading
import time

import pytest

from conversations import health
from tests.conftest import sandbox_client


@pytest.fixture(autouse=True)
def _fresh_readiness():
    health.reset()
    yield
    health.reset()


@pytest.fixture
def slow_upstream(sandbox, use_client):
    """An upstream that takes 6 s to answer, and a client patient enough to wait for it."""
    use_client(sandbox_client(sandbox, read_timeout=10.0, total_budget=10.0))
    sandbox.reset_stats()
    sandbox.set_fault(latency_ms=6000)
    yield sandbox
    sandbox.clear_faults()


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_the_probes_answer_head(client, sandbox, use_client, path):
    use_client(sandbox_client(sandbox))
    response = client.head(path)
    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_readyz_gives_up_on_a_hung_upstream_within_its_own_timeout(client, slow_upstream):
    started = time.monotonic()
    response = client.get("/readyz")
    seconds = time.monotonic() - started
    assert response.status_code == 503
    assert response.json()["checks"]["upstream"]["error"] == "Timeout"
    assert response.json()["checks"]["database"]["ok"] is True
    assert seconds < health.CHECK_TIMEOUT_SECONDS + 1


@pytest.mark.django_db(transaction=True)
def test_many_probes_cost_one_check_and_answer_at_once(client, slow_upstream):
    """20 probes at the same time: one refresh; the others answer immediately; one upstream read."""
    answers: list[tuple[int, float]] = []

    def probe() -> None:
        from django.test import Client

        started = time.monotonic()
        status = Client().get("/readyz").status_code
        answers.append((status, time.monotonic() - started))

    threads = [threading.Thread(target=probe) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(answers) == 20
    assert all(status == 503 for status, _ in answers), answers
    assert max(seconds for _, seconds in answers) < health.CHECK_TIMEOUT_SECONDS + 1.5
    # A later refresh waits on the read still running, it does not start another one.
    health.reset()
    assert client.get("/readyz").json()["checks"]["upstream"]["error"] == "Timeout"
    assert slow_upstream.stats()["requests"] == 1


@pytest.mark.django_db
def test_readyz_answers_from_a_recent_result(client, sandbox, use_client):
    use_client(sandbox_client(sandbox))
    assert client.get("/readyz").status_code == 200
    sandbox.set_fault(mode="503")
    try:
        assert client.get("/readyz").status_code == 200, "a result a few seconds old"
        time.sleep(1.1)  # past the client's own cache of the upstream read
        health.reset()  # as when READY_MAX_AGE_SECONDS have passed
        response = client.get("/readyz")
    finally:
        sandbox.clear_faults()
    assert response.status_code == 503
    assert response.json()["checks"]["upstream"]["ok"] is False
