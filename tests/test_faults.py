"""Every page and fragment against the sandbox under each fault: a message, never a 500, and
recovery by itself once the fault clears. Also how hard the dashboard hits a rate-limited API."""

from __future__ import annotations

import re
import time

import pytest
from django.urls import reverse

from conversations import client as client_module
from tests.conftest import free_port, sandbox_client

FAULT_MODES = ["500", "502", "503", "429", "timeout", "reset", "close", "malformed", "wrong_shape"]
FAULT_MODES += ["401"]
ALLOWED = {200, 204, 286, 503}


def urls(sandbox) -> list[tuple[str, str, str | None]]:
    """(label, url, htmx target) for every page and fragment, with ids from the sandbox world."""
    world = sandbox.world
    conversation = next(
        c for c in world.conversations() if c.state == "ACTIVE" and c.members and c.events
    )
    member = conversation.members[0]
    con = conversation.id
    newest = conversation.events[-1].id
    return [
        ("list", reverse("conversations:list"), None),
        ("list poll", reverse("conversations:list"), "results"),
        ("detail", reverse("conversations:detail", args=[con]), None),
        ("header poll", reverse("conversations:header", args=[con]), "conversation-header"),
        ("members tab", reverse("conversations:members", args=[con]), "tabs"),
        ("members poll", reverse("conversations:members_panel", args=[con]), "members-panel"),
        ("events tab", reverse("conversations:events", args=[con]), None),
        ("events swap", reverse("conversations:events", args=[con]), "tabs"),
        (
            "events poll",
            reverse("conversations:events_poll", args=[con]) + f"?after={newest - 1}",
            "event-rows",
        ),
        ("member", reverse("conversations:member", args=[con, member.id]), None),
        ("users", reverse("conversations:users"), None),
        ("user", reverse("conversations:user", args=[member.user_id]), None),
    ]


def fetch(staff_client, url: str, target: str | None):
    headers = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": target} if target else {}
    return staff_client.get(url, **headers)


def assert_explained(response, label: str) -> None:
    body = response.content.decode()
    assert response.status_code in ALLOWED, f"{label}: {response.status_code}"
    assert "Traceback" not in body and "PRIVATE KEY" not in body, label
    if response.status_code in (200, 503) and body.strip():
        assert "problem-banner" in body, f"{label} does not say what failed"


def assert_healthy(response, label: str) -> None:
    body = response.content.decode()
    assert response.status_code in (200, 204), f"{label}: {response.status_code}"
    assert "problem-banner" not in body, f"{label} still shows a banner"


@pytest.fixture
def on_sandbox(sandbox, use_client):
    sandbox.clear_faults()
    use_client(sandbox_client(sandbox, read_timeout=0.5, total_budget=1.0))
    yield sandbox
    sandbox.clear_faults()


@pytest.mark.django_db
@pytest.mark.parametrize("mode", FAULT_MODES)
def test_each_fault_is_explained_everywhere_and_recovers(staff_client, on_sandbox, mode):
    targets = urls(on_sandbox)
    for label, url, target in targets:  # warm: the last good data to show while failing
        assert_healthy(fetch(staff_client, url, target), label)
    time.sleep(1.05)  # past the short cache: the next reads go upstream and fail
    on_sandbox.set_fault(mode=mode, retry_after=1, timeout_seconds=5)
    for label, url, target in targets:
        assert_explained(fetch(staff_client, url, target), f"{mode} {label}")
    on_sandbox.clear_faults()
    # A failure is shared for a second (the rate-limit cool-down too); no answer at all makes
    # every read fail fast for a few seconds.
    no_answer = mode in ("timeout", "reset", "close")
    time.sleep(client_module.readcache.UNREACHABLE_SECONDS + 0.1 if no_answer else 1.1)
    for label, url, target in targets:
        assert_healthy(fetch(staff_client, url, target), f"{mode} {label} after recovery")


@pytest.mark.django_db
def test_a_wrong_key_is_a_401_explained_on_every_page(staff_client, sandbox, use_client):
    from tests.conftest import make_client

    # A key the sandbox does not know: every JWT fails verification for real.
    other = make_client(_other_key(), base_url=sandbox.base_url, max_retries=0)
    use_client(other)
    for label, url, target in urls(sandbox):
        response = fetch(staff_client, url, target)
        assert_explained(response, f"wrong key {label}")
        if target is None:
            assert "refused the dashboard" in response.content.decode(), label


@pytest.mark.django_db
def test_connection_refused_is_explained_on_every_page(staff_client, sandbox, use_client):
    port = free_port()  # nobody listens on it
    use_client(sandbox_client(sandbox, base_url=f"http://127.0.0.1:{port}"))
    for label, url, target in urls(sandbox):
        response = fetch(staff_client, url, target)
        assert_explained(response, f"refused {label}")
        if target is None:
            assert "does not answer" in response.content.decode(), label  # on the sandbox


@pytest.mark.django_db
def test_polling_backs_off_while_the_api_fails(staff_client, on_sandbox, settings):
    settings.DASHBOARD_REFRESH_SECONDS = 5
    on_sandbox.set_fault(mode="500")
    url, intervals = reverse("conversations:list"), []
    for _ in range(6):
        html = fetch(staff_client, url, "results").content.decode()
        intervals.append(int(re.search(r'hx-trigger="every (\d+)s', html).group(1)))
        url = re.search(r'id="results"[^>]*hx-get="([^"]+)"', html).group(1).replace("&amp;", "&")
        time.sleep(1.05)  # past the shared failure
    assert intervals == [10, 20, 40, 80, 120, 120]
    on_sandbox.clear_faults()
    time.sleep(1.05)
    html = fetch(staff_client, url, "results").content.decode()
    assert 'hx-trigger="every 5s' in html, "back to the normal interval once it recovers"


@pytest.mark.django_db
def test_a_429_storm_costs_about_one_upstream_call_per_retry_after(
    staff_client, on_sandbox, capsys
):
    """Twenty viewers ignoring their back-off and polling every second for six seconds."""
    retry_after, seconds, viewers = 2, 6.0, 20
    on_sandbox.set_fault(mode="429", retry_after=retry_after)
    on_sandbox.reset_stats()
    polls = 0
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        for _ in range(viewers):
            response = fetch(staff_client, reverse("conversations:list"), "results")
            assert response.status_code == 200
            polls += 1
        time.sleep(max(0.0, 1.0 - (time.monotonic() - started) % 1.0))
    elapsed = time.monotonic() - started
    upstream = on_sandbox.stats()["requests"]
    per_minute = upstream * 60 / elapsed
    with capsys.disabled():
        print(
            f"\n429 storm: {polls} polls in {elapsed:.1f} s -> {upstream} upstream requests "
            f"({per_minute:.0f}/min; Retry-After {retry_after} s)"
        )
    assert upstream <= elapsed / retry_after + 2, "one call per Retry-After window, about"


def _other_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
