"""Start the dashboard the way `make serve` does (gunicorn with the project's config, DEBUG off) on
the test sandbox, for tests that need a real server and real worker processes."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def gunicorn_on_sandbox(tmp: Path, sandbox, **extra_env: str) -> Iterator[tuple[str, dict]]:
    """(base URL, environment) of a running gunicorn; it is stopped on exit."""
    key = tmp / "private.pem"
    key.write_text(sandbox.private_key_pem)
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp),
        "READ_DOT_ENV": "false",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "SECURE_SSL_REDIRECT": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
        "STATIC_ROOT": str(tmp / "static"),  # not the repository's staticfiles/
        "QUEUE_PATH": str(tmp / "queue.sqlite3"),  # not the repository's job queue
        "VONAGE_APPLICATION_ID": sandbox.application_id,
        "VONAGE_PRIVATE_KEY_PATH": str(key),
        "VONAGE_API_BASE_URL": sandbox.base_url,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "2",
        "GUNICORN_ACCESS_LOG": str(tmp / "access.log"),
    } | extra_env
    manage = [sys.executable, "manage.py"]
    for command in (["collectstatic", "--noinput", "-v", "0"], ["migrate", "--noinput", "-v", "0"]):
        subprocess.run(manage + command, cwd=ROOT, env=env, check=True, timeout=120)
    log = (tmp / "gunicorn.log").open("w")  # read it when a test fails
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "dashboard_project/gunicorn.conf.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(base + "/healthz", timeout=2).close()
                break
            except requests.RequestException:
                assert server.poll() is None, (tmp / "gunicorn.log").read_text()
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        env["GUNICORN_PID"] = str(server.pid)
        yield base, env
    finally:
        server.terminate()
        server.wait(timeout=15)
        log.close()


def worker_pids(master_pid: int) -> list[int]:
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    return [int(pid) for pid in children]


def peak_rss_megabytes(pid: int) -> float:
    """The most memory the process has held (VmHWM): a passing peak counts too."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class SandboxProcess:
    """The sandbox in a process of its own (`python -m sandbox serve`), for tests where it must not
    share the test process's CPU and GIL: building a 30 MB body would stall the test's own timing.
    Offers what gunicorn_on_sandbox needs, plus faults through the control endpoint."""

    def __init__(self, tmp: Path, port: int) -> None:
        from sandbox.testing import test_key_pair

        self.private_key_pem, public_pem = test_key_pair()
        (tmp / "public.pem").write_text(public_pem)
        self.application_id = "aaaaaaaa-bbbb-4ccc-8ddd-000000000001"
        self.base_url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "sandbox", "serve", "--port", str(port)),
                *("--public-key", str(tmp / "public.pem")),
                *("--application-id", self.application_id),
                *("--conversations", "30", "--activity-interval", "0"),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(self.base_url + "/_sandbox/healthz", timeout=2).raise_for_status()
                return
            except requests.RequestException:
                assert self.process.poll() is None, "the sandbox exited"
                assert time.monotonic() < deadline, "the sandbox did not start"
                time.sleep(0.2)

    def set_fault(self, **changes) -> None:
        requests.put(self.base_url + "/_sandbox/faults", json=changes, timeout=5).raise_for_status()

    def clear_faults(self) -> None:
        requests.delete(self.base_url + "/_sandbox/faults", timeout=5).raise_for_status()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=15)
