"""Injected faults on /v1 (sandbox/faults.py) and the /_sandbox/faults control endpoint."""

from __future__ import annotations

import time

import pytest
import requests

from sandbox.faults import MODES, FaultError, validate


def get(sb, path: str = "/v1/conversations", timeout: float = 5) -> requests.Response:
    return requests.get(sb.base_url + path, headers=sb.auth_headers(), timeout=timeout)


def test_no_fault_by_default(sb):
    assert get(sb).status_code == 200


def test_500(sb):
    sb.set_fault(mode="500")
    r = get(sb)
    assert r.status_code == 500
    assert r.json()["code"] == "system:error:internal-error"


def test_502_is_an_html_gateway_page(sb):
    sb.set_fault(mode="502")
    r = get(sb)
    assert r.status_code == 502
    assert r.headers["Content-Type"] == "text/html"
    assert "502 Bad Gateway" in r.text


def test_503_unavailable_with_retry_after(sb):
    sb.set_fault(mode="503", retry_after=7)
    r = get(sb)
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "7"
    assert r.json()["title"] == "Service Unavailable."


def test_429_with_retry_after(sb):
    sb.set_fault(mode="429", retry_after=3)
    r = get(sb)
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "3"
    assert r.json()["code"] == "http:error:too-many-requests"


def test_401_whatever_the_token(sb):
    sb.set_fault(mode="401")
    r = get(sb)
    assert r.status_code == 401
    assert r.json()["code"] == "system:error:invalid-token"


def test_malformed_json(sb):
    sb.set_fault(mode="malformed")
    r = get(sb)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    with pytest.raises(requests.exceptions.JSONDecodeError):
        r.json()


def test_wrong_shape(sb):
    sb.set_fault(mode="wrong_shape")
    shapes = set()
    for _ in range(8):
        r = get(sb)
        assert r.status_code == 200
        body = r.json()
        assert not (isinstance(body, dict) and isinstance(body.get("_embedded"), dict))
        shapes.add(repr(body))
    assert len(shapes) > 1


@pytest.mark.parametrize(
    ("mode", "cause"), [("reset", "ConnectionResetError"), ("close", "RemoteDisconnected")]
)
def test_connection_dropped(sb, mode, cause):
    sb.set_fault(mode=mode)
    with pytest.raises(requests.exceptions.ConnectionError) as info:
        get(sb)
    assert cause in repr(info.value)
    sb.clear_faults()
    assert get(sb).status_code == 200


def test_timeout_holds_longer_than_the_client_waits(sb):
    sb.set_fault(mode="timeout", timeout_seconds=2)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        get(sb, timeout=0.3)
    assert time.monotonic() - started < 1.5
    sb.clear_faults()  # releases the held request


def test_timeout_expires_with_a_closed_connection(sb):
    sb.set_fault(mode="timeout", timeout_seconds=0.2)
    with pytest.raises(requests.exceptions.ConnectionError):
        get(sb, timeout=3)


def test_slow_answers_after_the_hold(sb):
    sb.set_fault(mode="slow", timeout_seconds=0.3)
    started = time.monotonic()
    r = get(sb)
    assert r.status_code == 200
    assert time.monotonic() - started >= 0.3


def test_latency(sb):
    sb.set_fault(latency_ms=150)
    started = time.monotonic()
    assert get(sb).status_code == 200
    assert time.monotonic() - started >= 0.15
    started = time.monotonic()
    requests.get(sb.base_url + "/_sandbox/healthz", timeout=5).close()
    assert time.monotonic() - started < 0.15  # control endpoints are not delayed


def test_rate_is_a_probability(sb):
    sb.set_fault(mode="500", rate=0.0)
    assert {get(sb).status_code for _ in range(5)} == {200}
    sb.set_fault(rate=0.5)
    statuses = [get(sb, "/v1/users").status_code for _ in range(40)]
    assert set(statuses) == {200, 500}


def test_path_prefix_filter(sb):
    sb.set_fault(mode="500", path_prefix="/v1/users")
    assert get(sb, "/v1/users").status_code == 500
    assert get(sb, "/v1/conversations").status_code == 200


def test_faults_never_touch_control_endpoints(sb):
    sb.set_fault(mode="reset")
    r = requests.get(sb.base_url + "/_sandbox/faults", timeout=5)
    assert r.status_code == 200
    assert r.json()["mode"] == "reset"


def test_faults_endpoint_get_put_delete(sb):
    url = sb.base_url + "/_sandbox/faults"
    with requests.Session() as s:
        initial = s.get(url, timeout=5).json()
        assert initial == {
            "mode": "none",
            "rate": 1.0,
            "retry_after": 2,
            "latency_ms": 0,
            "path_prefix": None,
            "timeout_seconds": 30.0,
            "drip_interval_ms": 2000,
            "depth": 900,
            "huge_bytes": 30_000_000,
            "flood_items": 100_000,
            "bomb_bytes": 300_000_000,
        }
        r = s.put(url, json={"mode": "429", "retry_after": 5}, timeout=5)
        assert r.status_code == 200
        assert r.json() == initial | {"mode": "429", "retry_after": 5}
        r = s.put(url, json={"rate": 0.25}, timeout=5)  # merges
        assert r.json()["mode"] == "429"
        assert r.json()["rate"] == 0.25
        assert get(sb).status_code in (200, 429)
        for bad in ({"mode": "explode"}, {"rate": 2}, {"bogus": 1}, {"latency_ms": -1}):
            r = s.put(url, json=bad, timeout=5)
            assert r.status_code == 400, bad
            assert r.json()["code"] == "sandbox:error:bad-request"
        for raw in (b'{"latency_ms": Infinity}', b'{"rate": NaN}', b'{"depth": -Infinity}'):
            r = s.put(url, data=raw, timeout=5)  # Python's JSON parser reads these
            assert r.status_code == 400, raw
        r = s.put(url, data=b"not json", timeout=5)
        assert r.status_code == 400
        r = s.delete(url, timeout=5)
        assert r.status_code == 200
        assert r.json() == initial
        assert s.post(url, timeout=5).status_code == 405


def test_validate_unit():
    assert validate({"mode": None}) == {"mode": "none"}
    assert validate({"path_prefix": ""}) == {"path_prefix": None}
    assert set(MODES) >= {"none", "500", "503", "429", "timeout", "reset", "malformed", "401"}
    with pytest.raises(FaultError):
        validate({"retry_after": 1.5})
    with pytest.raises(FaultError):
        validate({"rate": True})
    with pytest.raises(FaultError):
        validate(["mode"])  # type: ignore[arg-type]


# --- the hostile upstream (hostile_wire.py), seen by a raw HTTP client


def raw_get(sb, path: str = "/v1/conversations?page_size=10") -> tuple[bytes, bytes]:
    """(headers, everything after them) as sent, read until the server hangs up."""
    import socket

    with socket.create_connection(("127.0.0.1", sb.config.port), timeout=5) as sock:
        auth = sb.auth_headers()["Authorization"]
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n".encode())
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return head, body


def test_truncated_declares_more_than_it_sends(sb):
    sb.set_fault(mode="truncated")
    head, body = raw_get(sb)
    declared = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    assert declared == len(body) + 1000


def test_bad_chunked_breaks_the_chunk_framing(sb):
    sb.set_fault(mode="bad_chunked")
    head, body = raw_get(sb)
    assert b"Transfer-Encoding: chunked" in head
    assert b"not-a-chunk-size" in body


def test_drip_sends_the_body_a_byte_at_a_time(sb):
    import socket
    import time

    sb.set_fault(mode="drip", drip_interval_ms=300)
    with socket.create_connection(("127.0.0.1", sb.config.port), timeout=5) as sock:
        auth = sb.auth_headers()["Authorization"]
        sock.sendall(
            f"GET /v1/conversations HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n".encode()
        )
        time.sleep(1.0)
        received = sock.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    assert b"200 OK" in head and 1 <= len(body) <= 5


def test_body_modes_rewrite_the_real_answer(sb):
    import gzip
    import json

    sb.set_fault(mode="flood", flood_items=500)
    assert (
        len(get(sb, "/v1/conversations?page_size=10").json()["_embedded"]["conversations"]) == 500
    )
    sb.set_fault(mode="huge", huge_bytes=100_000)
    items = get(sb).json()["_embedded"]["conversations"]
    assert len(items[0]["name"]) == 100_000 and len(items[1]["name"]) < 1000
    sb.set_fault(mode="bad_gzip")
    raw = requests.get(
        sb.base_url + "/v1/conversations", headers=sb.auth_headers(), stream=True, timeout=5
    )
    assert raw.headers["Content-Encoding"] == "gzip"
    with pytest.raises(Exception):  # noqa: B017 - zlib's or gzip's own error, whichever comes
        gzip.decompress(raw.raw.read())
    sb.set_fault(mode="gzip_bomb", bomb_bytes=50_000_000)
    raw = requests.get(
        sb.base_url + "/v1/conversations", headers=sb.auth_headers(), stream=True, timeout=5
    )
    packed = raw.raw.read()
    assert len(packed) < 1_000_000 and len(gzip.decompress(packed)) > 50_000_000
    sb.set_fault(mode="deep", depth=50)
    conversation = get(sb).json()["_embedded"]["conversations"][0]
    depth, node = 0, conversation["custom_data"]["deep"]
    while isinstance(node, dict):
        node, depth = node["d"], depth + 1
    assert depth == 50 and json.dumps(node) == '"bottom"'
