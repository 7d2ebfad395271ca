"""The sandbox's signed RTC webhooks, received by a real HTTP server in a thread.

Each test starts its own sandbox pointed at a ``Receiver`` (http.server) that records every request
as it arrived: path, headers, the exact body bytes, and when. Signatures are checked with PyJWT,
independently of the sandbox's own signing code.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from sandbox import testing
from sandbox.testing import RunningSandbox, running_sandbox

from .conftest import SMALL_WORLD, Api

SECRET = "sandbox-test-signature-secret-0123456789abcdef"  # >= 32 bytes: PyJWT warns below
API_KEY = "a1b2c3d4"
PAYLOAD_KEYS = {"application_id", "conversation_id", "from", "id", "timestamp", "type", "body"}
SERVE = [sys.executable, "-m", "sandbox", "serve", "--port", "0", "--public-key"]
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


# ---------------------------------------------------------------------- the receiver


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when it arrived

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def token(self) -> str | None:
        auth = self.headers.get("authorization")
        return auth.removeprefix("Bearer ") if auth and auth.startswith("Bearer ") else None


class Receiver(ThreadingHTTPServer):
    """Records every POST; answers ``statuses`` in turn (then 200); can hang until released."""

    daemon_threads = True

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.statuses: list[int] = []
        self.release = threading.Event()
        self.release.set()  # cleared: every request waits (a stalled dashboard)
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/webhooks/rtc"

    def bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r.json() for r in self.requests]

    def all(self) -> list[Received]:
        with self.lock:
            return list(self.requests)


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.release.wait(10)
        with self.server.lock:
            self.server.requests.append(
                Received(
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    time.monotonic(),
                )
            )
            status = self.server.statuses.pop(0) if self.server.statuses else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    thread.join(5)
    server.server_close()


def hooked(receiver: Receiver, **overrides: Any):
    """A sandbox of its own whose webhooks go to ``receiver``, signed with SECRET."""
    options = SMALL_WORLD | {
        "webhook_url": receiver.url,
        "signature_secret": SECRET,
        "api_key": API_KEY,
    }
    return running_sandbox(**(options | overrides))


def verify(r: Received, application_id: str) -> dict[str, Any]:
    """Check a request as a strict receiver would (WEBHOOKS.md section 3); returns the claims."""
    assert r.headers["content-type"] == "application/json"
    assert r.token is not None, "no Bearer token"
    assert jwt.get_unverified_header(r.token)["alg"] == "HS256"
    claims = jwt.decode(
        r.token,
        SECRET,
        algorithms=["HS256"],
        options={"require": ["iat", "jti", "iss", "api_key", "application_id", "payload_hash"]},
    )
    assert claims["iss"] == "Vonage"
    assert claims["api_key"] == API_KEY
    assert claims["application_id"] == application_id
    assert UUID_RE.match(claims["jti"])
    assert abs(claims["iat"] - time.time()) < 30
    assert claims["payload_hash"] == hashlib.sha256(r.body).hexdigest()
    return claims


def world_events(sb: RunningSandbox, conversation_id: str) -> list[tuple[str, int, str]]:
    with sb.world.lock:
        conv = sb.world.conversation(conversation_id)
        assert conv is not None
        return [(conversation_id, e.id, e.type) for e in conv.events]


def keys(bodies: list[dict[str, Any]]) -> list[tuple[str, int, str]]:
    return [(b["conversation_id"], b["id"], b["type"]) for b in bodies]


# ---------------------------------------------------------------------- what is sent


def test_created_events_are_posted_signed_with_the_rest_body(receiver):
    with hooked(receiver) as sb:
        sb.wait_webhooks()
        assert receiver.all() == []  # the seeded world is history, not news
        conv = sb.create_conversation(members=3)
        cid = conv["id"]
        event = sb.inject_event(cid, "custom:note", {"text": "<b>hi</b> ünïcode"})
        sb.wait_webhooks()
        received = receiver.all()
        assert keys([r.json() for r in received]) == world_events(sb, cid)
        api = Api(sb)
        try:
            for r in received:
                assert r.path == "/webhooks/rtc"
                verify(r, sb.application_id)
                body = r.json()
                assert set(body) == PAYLOAD_KEYS
                assert body["application_id"] == sb.application_id
                assert body["conversation_id"] == cid
                rest = api.json(f"/v1/conversations/{cid}/events/{body['id']}")
                for key in ("id", "type", "from", "timestamp", "body"):
                    assert body[key] == rest[key], key
                assert "_embedded" not in body and "_links" not in body
            jtis = [verify(r, sb.application_id)["jti"] for r in received]
            assert len(set(jtis)) == len(jtis)
        finally:
            api.close()
        last = received[-1].json()
        assert last["id"] == event["id"] and last["body"] == {"text": "<b>hi</b> ünïcode"}
        stats = sb.webhooks()["stats"]
        assert stats["delivered"] == stats["sent"] == len(received)
        assert stats["by_status"] == {"200": len(received)}


def test_ticks_and_ending_post_every_new_event_in_order(receiver):
    with hooked(receiver) as sb:
        before = {c.id: len(c.events) for c in sb.world.conversations()}
        started = []
        for _ in range(6):
            started += sb.tick()["started"]
        assert started
        sb.end_conversation(started[0])
        sb.wait_webhooks()
        expected = []
        with sb.world.lock:
            for conv in sb.world.conversations():
                expected += [(conv.id, e.id, e.type) for e in conv.events[before.get(conv.id, 0) :]]
        got = keys(receiver.bodies())
        assert sorted(got) == sorted(expected)
        for cid in {c for c, _, _ in got}:  # without reordering, each conversation is in order
            ids = [i for c, i, _ in got if c == cid]
            assert ids == sorted(ids)
        assert "member:left" in {t for c, _, t in got if c == started[0]}
        for r in receiver.all():
            verify(r, sb.application_id)


def test_control_endpoints_create_webhooks_too(receiver):
    with hooked(receiver) as sb:
        base = f"{sb.base_url}/_sandbox"
        r = requests.post(f"{base}/conversations", json={"members": 1}, timeout=5)
        cid = r.json()["id"]
        requests.post(f"{base}/conversations/{cid}/events", json={"type": "custom:x"}, timeout=5)
        requests.post(f"{base}/conversations/{cid}/end", timeout=5)
        requests.post(f"{base}/tick", timeout=5)
        sb.wait_webhooks()
        got = keys(receiver.bodies())
        assert [k for k in got if k[0] == cid] == world_events(sb, cid)
        assert "custom:x" in [t for _, _, t in got]


def test_without_a_url_nothing_is_sent_and_without_a_secret_nothing_is_signed(receiver):
    with hooked(receiver, webhook_url=None) as sb:
        sb.create_conversation()
        sb.wait_webhooks()
        assert sb.webhooks()["stats"]["dropped_no_url"] > 0
        assert sb.webhooks()["stats"]["sent"] == 0
        sb.set_webhooks(url=receiver.url)  # turned on at run time
        sb.create_conversation()
        sb.wait_webhooks()
        assert len(receiver.all()) > 0
        assert all(r.token is not None for r in receiver.all())
    receiver.requests.clear()
    with hooked(receiver, signature_secret=None) as sb:
        assert sb.webhooks()["signed"] is False
        sb.create_conversation()
        sb.wait_webhooks()
        assert receiver.all() and all("authorization" not in r.headers for r in receiver.all())


def test_api_key_defaults_to_the_worlds_and_the_secret_is_never_shown(receiver):
    with hooked(receiver, api_key=None) as sb:
        assert sb.webhooks()["api_key"] == sb.world.api_key
        sb.create_conversation(members=1)
        sb.wait_webhooks()
        token = receiver.all()[0].token
        assert jwt.decode(token, SECRET, algorithms=["HS256"])["api_key"] == sb.world.api_key
        state = requests.get(f"{sb.base_url}/_sandbox/state", timeout=5).text
        hooks = requests.get(f"{sb.base_url}/_sandbox/webhooks", timeout=5).text
        assert SECRET not in state and SECRET not in hooks


# ---------------------------------------------------------------------- delivery options


def flood(sb: RunningSandbox, n: int) -> tuple[str, list[tuple[str, int, str]]]:
    """A conversation with no members (so no webhooks of its own) and n injected events."""
    cid = sb.create_conversation(members=0)["id"]
    for i in range(n):
        sb.inject_event(cid, "custom:n", {"i": i})
    return cid, world_events(sb, cid)


def test_drop_rate_drops_about_that_share_deterministically(receiver):
    runs = []
    for _ in range(2):
        receiver.requests.clear()
        with hooked(receiver, webhook_drop_rate=0.3) as sb:
            _, sent = flood(sb, 300)
            sb.wait_webhooks()
            got = keys(receiver.bodies())
            stats = sb.webhooks()["stats"]
        assert 0.2 * 300 < 300 - len(got) < 0.4 * 300
        assert stats["dropped_by_option"] == 300 - len(got)
        assert set(got) < set(sent) and got == sorted(got)  # what arrives is in order
        runs.append(got)
    assert runs[0] == runs[1]  # same seed, same events: the same ones are dropped


def test_drop_rate_can_be_changed_at_run_time_and_reset(receiver):
    with hooked(receiver) as sb:
        r = requests.put(f"{sb.base_url}/_sandbox/webhooks", json={"drop_rate": 1.0}, timeout=5)
        assert r.status_code == 200 and r.json()["settings"]["drop_rate"] == 1.0
        flood(sb, 20)
        sb.wait_webhooks()
        assert receiver.all() == []
        r = requests.delete(f"{sb.base_url}/_sandbox/webhooks", timeout=5)
        assert r.json()["settings"]["drop_rate"] == 0.0
        assert r.json()["settings"]["url"] == receiver.url
        _, sent = flood(sb, 20)
        sb.wait_webhooks()
        assert keys(receiver.bodies()) == sent


def test_duplicates_repeat_the_event_with_a_new_jti(receiver):
    with hooked(receiver, webhook_duplicate_rate=1.0) as sb:
        _, sent = flood(sb, 10)
        sb.wait_webhooks()
        received = receiver.all()
        assert len(received) == 20
        by_event: dict[int, list[Received]] = {}
        for r in received:
            by_event.setdefault(r.json()["id"], []).append(r)
        assert sorted(by_event) == [i for _, i, _ in sent]
        for pair in by_event.values():
            assert len(pair) == 2
            assert pair[0].body == pair[1].body
            jtis = {verify(r, sb.application_id)["jti"] for r in pair}
            assert len(jtis) == 2
        assert sb.webhooks()["stats"]["duplicated"] == 10
        sb.set_webhooks(duplicate_rate=0.5)
        receiver.requests.clear()
        flood(sb, 100)
        sb.wait_webhooks()
        assert 130 < len(receiver.all()) < 170


def test_reorder_shuffles_within_the_window_and_loses_nothing(receiver):
    with hooked(receiver, webhook_reorder_window=5, webhook_reorder_hold_ms=300) as sb:
        _, sent = flood(sb, 32)  # the last 2 never fill a window: the hold sends them
        sb.wait_webhooks()
        got = keys(receiver.bodies())
        assert sorted(got) == sent  # nothing lost, nothing doubled
        assert got != sent
        ids = [i for _, i, _ in got]
        # Shuffled within windows of 5 consecutive webhooks, never further.
        for start in range(0, 30, 5):
            assert sorted(ids[start : start + 5]) == list(range(start + 1, start + 6))
        assert sb.webhooks()["stats"]["reordered_batches"] >= 7


def test_delay_holds_each_webhook_back(receiver):
    with hooked(receiver, webhook_delay_ms=400) as sb:
        cid = sb.create_conversation(members=0)["id"]
        started = time.monotonic()
        sb.inject_event(cid, "custom:late")
        assert time.monotonic() - started < 0.3  # the API side never waits the 0.4 s
        sb.wait_webhooks()
        (r,) = receiver.all()
        assert r.at - started >= 0.4
        verify(r, sb.application_id)  # iat is when it was signed, at sending


def test_unsigned_share_has_no_authorization(receiver):
    with hooked(receiver, webhook_unsigned_rate=1.0) as sb:
        flood(sb, 5)
        sb.wait_webhooks()
        received = receiver.all()
        assert len(received) == 5
        assert all("authorization" not in r.headers for r in received)
        assert sb.webhooks()["stats"]["unsigned"] == 5
        sb.set_webhooks(unsigned_rate=0.5)
        receiver.requests.clear()
        flood(sb, 100)
        sb.wait_webhooks()
        unsigned = sum("authorization" not in r.headers for r in receiver.all())
        assert 30 < unsigned < 70


def test_wrong_secret_fails_verification(receiver):
    with hooked(receiver, webhook_wrong_secret_rate=1.0) as sb:
        flood(sb, 5)
        sb.wait_webhooks()
        received = receiver.all()
        assert len(received) == 5
        for r in received:
            assert r.token is not None
            with pytest.raises(jwt.InvalidSignatureError):
                jwt.decode(r.token, SECRET, algorithms=["HS256"])
            claims = jwt.decode(r.token, options={"verify_signature": False})
            assert claims["payload_hash"] == hashlib.sha256(r.body).hexdigest()
        assert sb.webhooks()["stats"]["wrong_secret"] == 5


def test_altered_body_fails_the_payload_hash(receiver):
    with hooked(receiver, webhook_altered_body_rate=1.0) as sb:
        _, sent = flood(sb, 5)
        sb.wait_webhooks()
        received = receiver.all()
        assert keys([r.json() for r in received]) == sent  # still JSON, still the event
        for r in received:
            claims = jwt.decode(r.token, SECRET, algorithms=["HS256"])  # the signature is good
            assert claims["payload_hash"] != hashlib.sha256(r.body).hexdigest()
            compact = json.dumps(r.json(), separators=(",", ":"), ensure_ascii=False).encode()
            assert claims["payload_hash"] != hashlib.sha256(compact).hexdigest()
        assert sb.webhooks()["stats"]["altered_body"] == 5


def test_options_combine_and_lose_only_what_is_dropped(receiver):
    options = {
        "webhook_drop_rate": 0.2,
        "webhook_duplicate_rate": 0.2,
        "webhook_reorder_window": 4,
        "webhook_unsigned_rate": 0.1,
    }
    with hooked(receiver, **options) as sb:
        _, sent = flood(sb, 100)
        sb.wait_webhooks()
        stats = sb.webhooks()["stats"]
        got = keys(receiver.bodies())
        assert len(got) == 100 - stats["dropped_by_option"] + stats["duplicated"]
        assert set(got) <= set(sent)
        assert len(set(got)) == 100 - stats["dropped_by_option"]
        assert stats["dropped_queue_full"] == 0 and stats["failed"] == 0


# ---------------------------------------------------------------------- a slow or down receiver


def test_a_full_queue_drops_without_blocking_the_api(receiver):
    receiver.release.clear()  # the receiver hangs on every request
    options = {"webhook_queue_size": 3, "webhook_retries": 0, "webhook_timeout_seconds": 8}
    with hooked(receiver, **options) as sb:
        cid = sb.create_conversation(members=0)["id"]
        api = Api(sb)
        try:
            started = time.monotonic()
            for i in range(20):
                sb.inject_event(cid, "custom:n", {"i": i})
            assert api.get(f"/v1/conversations/{cid}").status_code == 200
            assert time.monotonic() - started < 2.0  # blocking: 8 s per webhook
        finally:
            api.close()
        stats = sb.webhooks()["stats"]
        assert stats["dropped_queue_full"] >= 20 - 3 - 1  # 3 queued, at most 1 being sent
        receiver.release.set()
        sb.wait_webhooks()
        stats = sb.webhooks()["stats"]
        got = keys(receiver.bodies())
        assert len(got) == 20 - stats["dropped_queue_full"] == stats["delivered"]
        assert got == sorted(got)


def test_a_down_receiver_is_counted_and_does_not_block(receiver):
    receiver.shutdown()
    receiver.server_close()  # nothing listens on that port any more
    with hooked(receiver, webhook_retries=1) as sb:
        started = time.monotonic()
        flood(sb, 5)
        assert time.monotonic() - started < 2.0
        sb.wait_webhooks()
        stats = sb.webhooks()["stats"]
        assert stats["failed"] == 5 and stats["retries"] == 5 and stats["delivered"] == 0
        assert stats["last_error"]


def test_a_timeout_is_not_retried(receiver):
    receiver.release.clear()
    with hooked(receiver, webhook_timeout_seconds=0.3, webhook_retries=1) as sb:
        flood(sb, 1)
        sb.wait_webhooks()
        stats = sb.webhooks()["stats"]
        assert stats["failed"] == 1 and stats["retries"] == 0
        assert "timed out" in stats["last_error"]


def test_one_retry_of_the_same_request_after_a_5xx_none_after_a_4xx(receiver):
    receiver.statuses = [503]
    with hooked(receiver) as sb:
        flood(sb, 1)
        sb.wait_webhooks()
        first, second = receiver.all()
        assert first.body == second.body
        assert first.headers["authorization"] == second.headers["authorization"]
        stats = sb.webhooks()["stats"]
        assert stats["retries"] == 1 and stats["delivered"] == 1
        assert stats["by_status"] == {"200": 1, "503": 1}
        receiver.requests.clear()
        receiver.statuses = [401, 401]
        flood(sb, 1)
        sb.wait_webhooks()
        assert len(receiver.all()) == 1
        assert sb.webhooks()["stats"]["rejected"] == 1


# ---------------------------------------------------------------------- deleting a conversation


def test_a_deleted_conversation_is_404_everywhere_and_sends_nothing_more(receiver):
    with hooked(receiver) as sb:
        cid = sb.create_conversation()["id"]
        sb.tick()  # now live activity has it: without the delete, ticks would end it
        api = Api(sb)
        try:
            assert api.get(f"/v1/conversations/{cid}").status_code == 200
            r = requests.delete(f"{sb.base_url}/_sandbox/conversations/{cid}", timeout=5)
            assert r.status_code == 200 and r.json()["id"] == cid
            sb.wait_webhooks()
            count = len(receiver.all())
            for path in ("", "/members", "/events", "/events/1"):
                r = api.get(f"/v1/conversations/{cid}{path}")
                assert r.status_code == 404, path
                assert r.json()["code"] == "conversation:error:not-found"
            listed = walk_ids(api)
            assert cid not in listed
            for _ in range(15):  # live activity would have ended it, with events
                sb.tick()
            sb.wait_webhooks()
            later = [b for b in receiver.bodies()[count:] if b["conversation_id"] == cid]
            assert later == []
            base = f"{sb.base_url}/_sandbox/conversations/{cid}"
            assert requests.post(f"{base}/events", json={"type": "x"}, timeout=5).status_code == 404
            assert requests.post(f"{base}/end", timeout=5).status_code == 404
            assert requests.delete(base, timeout=5).status_code == 404
        finally:
            api.close()


def walk_ids(api: Api) -> set[str]:
    ids: set[str] = set()
    url: str | None = "/v1/conversations?page_size=100"
    while url:
        body = api.json(url)
        ids |= {c["id"] for c in body.get("_embedded", {}).get("conversations", [])}
        url = body["_links"].get("next", {}).get("href")
    return ids


def test_delete_with_the_driver_and_users_lose_it(receiver):
    with hooked(receiver) as sb:
        conv = sb.create_conversation(members=2)
        with sb.world.lock:
            user_id = sb.world.conversation(conv["id"]).members[0].user_id
        assert sb.delete_conversation(conv["id"])["id"] == conv["id"]
        api = Api(sb)
        try:
            mine = api.json(f"/v1/users/{user_id}/conversations", page_size=100)
            listed = [c["id"] for c in mine.get("_embedded", {}).get("conversations", [])]
            assert conv["id"] not in listed
        finally:
            api.close()


# ---------------------------------------------------------------------- one webhook by hand


def test_send_an_arbitrary_webhook_like_app_knocking(receiver):
    with hooked(receiver) as sb:
        payload = {
            "application_id": sb.application_id,
            "from": "knocker:5f2ab4a1-7d9e-4c55-8a1f-0c9b1e2d3f40",
            "timestamp": "2026-11-27T09:12:44.512Z",
            "type": "app:knocking",
            "body": {"channel": {"type": "phone", "from": {"number": "447700900100"}}},
        }
        r = requests.post(
            f"{sb.base_url}/_sandbox/webhooks/send", json={"payload": payload}, timeout=5
        )
        assert r.status_code == 202 and r.json()["queued"] is True
        assert sb.send_webhook(raw='{"not": "closed"')["queued"] is True
        sb.wait_webhooks()
        knock, raw = receiver.all()
        assert knock.json() == payload and "conversation_id" not in knock.json()
        verify(knock, sb.application_id)
        assert raw.body == b'{"not": "closed"'
        verify(raw, sb.application_id)  # signed over the exact bytes, even when not JSON


@pytest.mark.parametrize(
    "body",
    [{}, {"payload": {}, "raw": ""}, {"raw": 5}, {"other": 1}],
)
def test_send_refuses_bad_bodies(receiver, body):
    with hooked(receiver) as sb:
        r = requests.post(f"{sb.base_url}/_sandbox/webhooks/send", json=body, timeout=5)
        assert r.status_code == 400
        assert r.json()["code"] == "sandbox:error:bad-request"


def test_send_without_a_url_is_refused(receiver):
    with hooked(receiver, webhook_url=None) as sb:
        r = requests.post(f"{sb.base_url}/_sandbox/webhooks/send", json={"payload": {}}, timeout=5)
        assert r.status_code == 400


# ---------------------------------------------------------------------- control endpoint


@pytest.mark.parametrize(
    "change",
    [
        {"drop_rate": 1.5},
        {"drop_rate": "0.5"},
        {"duplicate_rate": True},
        {"reorder_window": 2.5},
        {"reorder_window": 1000},
        {"reorder_window": float("inf")},
        {"delay_ms": float("nan")},
        {"delay_ms": -1},
        {"url": "ftp://example.com/x"},
        {"url": "http://"},
        {"url": 5},
        {"secret": "x"},
        [],
    ],
)
def test_put_webhooks_refuses_bad_settings(receiver, change):
    with hooked(receiver) as sb:
        before = sb.webhooks()["settings"]
        body = json.dumps(change)  # NaN and Infinity too, as Python's JSON parser reads them
        r = requests.put(f"{sb.base_url}/_sandbox/webhooks", data=body, timeout=5)
        assert r.status_code == 400
        assert sb.webhooks()["settings"] == before


def test_get_webhooks_and_reset_stats(receiver):
    with hooked(receiver) as sb:
        flood(sb, 3)
        sb.wait_webhooks()
        body = requests.get(f"{sb.base_url}/_sandbox/webhooks", timeout=5).json()
        assert set(body) == {"settings", "signed", "api_key", "stats"}
        assert body["signed"] is True and body["api_key"] == API_KEY
        assert body["settings"]["url"] == receiver.url
        assert body["stats"]["delivered"] == 3 and body["stats"]["pending"] == 0
        r = requests.post(f"{sb.base_url}/_sandbox/webhooks/stats/reset", timeout=5)
        assert r.json()["stats"]["delivered"] == 0
        assert sb.webhooks() == r.json()


# ---------------------------------------------------------------------- the command line


SERVE_OPTIONS = ["--conversations", "10", "--big-conversation-events", "0"]
SERVE_OPTIONS += ["--activity-interval", "0.2", "--webhook-duplicate-rate", "1"]


def test_serve_takes_webhook_settings_from_the_environment(receiver, tmp_path: Path):
    public = tmp_path / "public.pem"
    public.write_text(testing.test_key_pair()[1])
    env = os.environ | {
        "SANDBOX_WEBHOOK_URL": receiver.url,
        "SANDBOX_SIGNATURE_SECRET": SECRET,
        "SANDBOX_API_KEY": API_KEY,
    }
    proc = subprocess.Popen(
        [*SERVE, str(public), *SERVE_OPTIONS],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        base = line.strip().removeprefix("sandbox listening on ")
        hooks = requests.get(f"{base}/_sandbox/webhooks", timeout=5).json()
        assert hooks["signed"] is True and hooks["api_key"] == API_KEY
        assert hooks["settings"]["url"] == receiver.url
        assert hooks["settings"]["duplicate_rate"] == 1.0
        state = requests.get(f"{base}/_sandbox/state", timeout=5).json()
        assert state["config"]["signature_secret"] == "(set)"
        deadline = time.monotonic() + 10
        while len(receiver.all()) < 4 and time.monotonic() < deadline:
            time.sleep(0.1)  # live activity, every 0.2 s
        received = receiver.all()
        assert len(received) >= 4
        for r in received:
            verify(r, state["config"]["application_id"])
        ids = Counter((b["conversation_id"], b["id"]) for b in receiver.bodies())
        assert set(ids.values()) <= {1, 2} and 2 in ids.values()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err


def test_serve_refuses_a_bad_webhook_url(tmp_path: Path):
    public = tmp_path / "public.pem"
    public.write_text(testing.test_key_pair()[1])
    result = subprocess.run(
        [*SERVE, str(public), "--webhook-url", "not a url"],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "webhook" in result.stderr


def test_jti_are_uuid4(receiver):
    with hooked(receiver) as sb:
        flood(sb, 3)
        sb.wait_webhooks()
        for r in receiver.all():
            assert uuid.UUID(verify(r, sb.application_id)["jti"]).version == 4
