"""`python -m sandbox keygen` and `python -m sandbox serve` as real processes."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization

from sandbox.auth import mint_token

ROOT = Path(__file__).resolve().parents[2]
APP_ID = "11111111-2222-4333-8444-555555555555"


def run_sandbox(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "sandbox", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("keys")
    private, public = base / "nested" / "dir" / "private.pem", base / "public" / "public.pem"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sandbox",
            "keygen",
            "--private-key",
            str(private),
            "--public-key",
            str(public),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return private, public


def test_keygen_writes_a_pem_pair(keys):
    private, public = keys
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    key = serialization.load_pem_private_key(private.read_bytes(), None)
    assert key.key_size == 2048
    loaded_public = serialization.load_pem_public_key(public.read_bytes())
    assert loaded_public.public_numbers() == key.public_key().public_numbers()


def serve(public: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    proc = run_sandbox(
        "serve",
        "--port",
        "0",
        "--public-key",
        str(public),
        "--application-id",
        APP_ID,
        "--conversations",
        "20",
        "--big-conversation-events",
        "200",
        "--activity-interval",
        "0",
        *extra,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.fullmatch(r"sandbox listening on (http://127\.0\.0\.1:(\d+))\n", line)
    if match is None:
        proc.kill()
        _, err = proc.communicate(timeout=10)
        pytest.fail(f"unexpected first line {line!r}; stderr: {err}")
    assert int(match.group(2)) > 0
    return proc, match.group(1)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_until_signal(keys, sig):
    private, public = keys
    proc, base = serve(public, "--events-shape", "object", "--latency-ms", "1")
    try:
        token = mint_token(private.read_text(), APP_ID)
        with requests.Session() as s:
            assert s.get(f"{base}/_sandbox/healthz", timeout=5).json() == {"ok": True}
            r = s.get(f"{base}/v1/conversations", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200
            assert len(r.json()["_embedded"]["conversations"]) == 10
            assert s.get(f"{base}/v1/conversations", timeout=5).status_code == 401
            state = s.get(f"{base}/_sandbox/state", timeout=5).json()
            assert state["config"]["events_shape"] == "object"
            assert state["config"]["application_id"] == APP_ID
            assert state["world"]["conversations"] == 20
    finally:
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert out == ""


def test_serve_with_a_missing_key_fails(tmp_path):
    proc = run_sandbox("serve", "--port", "0", "--public-key", str(tmp_path / "missing.pem"))
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "missing.pem" in err


def test_serve_rejects_bad_options(keys):
    _, public = keys
    proc = run_sandbox("serve", "--public-key", str(public), "--fault", "explode")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "--fault" in err
