"""The Procfile, run as `make serve` runs it (honcho): the web process answers on $PORT, the worker
fills the store, and stopping honcho stops both."""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import requests

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def test_the_procfile_names_the_web_and_the_worker():
    processes = dict(
        line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line
    )
    assert set(processes) == {"web", "worker"}
    assert re.search(r"gunicorn -c dashboard_project/gunicorn.conf.py .*\$PORT", processes["web"])
    assert "manage.py run_huey" in processes["worker"]


def test_make_serve_runs_the_procfile(tmp_path, sandbox):
    key = tmp_path / "private.pem"
    key.write_text(sandbox.private_key_pem)
    port = free_port()
    database = tmp_path / "db.sqlite3"
    env = {
        "PATH": f"{BIN}:{os.environ['PATH']}",  # as the Makefile puts the virtualenv first
        "HOME": str(tmp_path),
        "READ_DOT_ENV": "false",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "SECURE_SSL_REDIRECT": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": f"sqlite:///{database}",
        "STATIC_ROOT": str(tmp_path / "static"),
        "QUEUE_PATH": str(tmp_path / "queue.sqlite3"),
        "VONAGE_APPLICATION_ID": sandbox.application_id,
        "VONAGE_PRIVATE_KEY_PATH": str(key),
        "VONAGE_API_BASE_URL": sandbox.base_url,
        "GUNICORN_ACCESS_LOG": str(tmp_path / "access.log"),
    }
    manage = [sys.executable, "manage.py"]
    for command in (["collectstatic", "--noinput", "-v", "0"], ["migrate", "--noinput", "-v", "0"]):
        subprocess.run(manage + command, cwd=ROOT, env=env, check=True, timeout=120)
    log = (tmp_path / "honcho.log").open("w")
    honcho = subprocess.Popen(
        [BIN / "honcho", "start", "-f", "Procfile", "-p", str(port), "-e", "/dev/null"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except requests.RequestException:
                assert honcho.poll() is None, (tmp_path / "honcho.log").read_text()
                assert time.monotonic() < deadline, "the web process did not start"
                time.sleep(0.2)
        assert answer.status_code == 200
        # The worker backfills the empty store from the API.
        while not stored_conversations(database):
            assert honcho.poll() is None, (tmp_path / "honcho.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "honcho.log").read_text()
            time.sleep(0.5)
    finally:
        honcho.send_signal(signal.SIGTERM)
        honcho.wait(timeout=30)
        log.close()
    output = (tmp_path / "honcho.log").read_text()
    assert "web.1" in output and "worker.1" in output
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "the web process stopped"
    time.sleep(0.5)
    assert not [env for env in worker_environments() if str(tmp_path) in env], "the worker stopped"


def worker_environments() -> list[str]:
    """The environment of every run_huey process still running (to find this test's one)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if b"run_huey" in (proc / "cmdline").read_bytes():
                found.append((proc / "environ").read_bytes().decode(errors="replace"))
        except OSError:
            continue
    return found


def stored_conversations(database: Path) -> int:
    try:
        with closing(sqlite3.connect(database, timeout=5)) as db:
            return db.execute("select count(*) from conversations_storedconversation").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
