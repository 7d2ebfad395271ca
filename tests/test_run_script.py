"""`make run`'s script: the sandbox, the demo user, the worker, the dashboard; Ctrl-C stops all of
it."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def log_in(base: str, username: str, password: str, run: subprocess.Popen) -> requests.Response:
    """Log in through the login form once the dashboard answers (it starts after the message)."""
    session = requests.Session()
    deadline = time.monotonic() + 60
    while True:
        try:
            session.get(base + "/login/", timeout=2)
            break
        except requests.ConnectionError:
            assert run.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
    return session.post(
        base + "/login/",
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        headers={"Referer": base + "/login/"},
        timeout=10,
    )


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_run_serves_the_sandbox_demo_and_stops_everything(tmp_path, stop_signal):
    port, sandbox_port = free_port(), free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "READ_DOT_ENV": "false",
        "PORT": str(port),
        "SANDBOX_PORT": str(sandbox_port),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "DEMO_PASSWORD": "demo-password-for-the-test",
        "SANDBOX_ACTIVITY": "0.5",
        "SECRET_KEY_FILE": str(tmp_path / "secret_key"),
        "QUEUE_PATH": str(tmp_path / "queue.sqlite3"),
    }
    run = subprocess.Popen(
        [sys.executable, "scripts/run.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    printed = []
    try:
        deadline = time.monotonic() + 60
        while not any("Log in as" in line for line in printed):
            assert time.monotonic() < deadline, "".join(printed)
            line = run.stdout.readline()
            assert line or run.poll() is None, "".join(printed)
            printed.append(line)
        credentials = re.search(r"Log in as: (\S+) / (\S+)", "".join(printed))
        assert credentials.groups() == ("demo", "demo-password-for-the-test")
        assert f"http://127.0.0.1:{port}/" in "".join(printed)

        base = f"http://127.0.0.1:{port}"
        page = log_in(base, "demo", "demo-password-for-the-test", run)
        assert page.url == base + "/conversations/"
        assert len(re.findall(r'href="/conversations/CON-', page.text)) >= 10
        assert "sandbox" in page.text.lower()

        # The worker runs: on this empty store its first minute backfills from the sandbox.
        worker = int(re.search(r"Worker: manage.py run_huey \(pid (\d+)\)", "".join(printed))[1])
        assert stored_rows(tmp_path / "db.sqlite3", "storedconversation", within=60) > 0
        # The sandbox's live activity arrives as signed webhooks, accepted and stored.
        assert stored_rows(tmp_path / "db.sqlite3", "webhookreceipt", within=30) > 0
    finally:
        run.send_signal(stop_signal)
        run.wait(timeout=20)
        run.stdout.close()
    time.sleep(0.5)
    assert not listening(port), "the dashboard stopped"
    assert not listening(sandbox_port), "the sandbox stopped"
    with pytest.raises(ProcessLookupError):
        os.kill(worker, 0)  # the worker stopped (and was waited for)


def stored_rows(database: Path, table: str, within: float) -> int:
    """How many rows a store table holds, once it holds some (or after `within` seconds)."""
    deadline = time.monotonic() + within
    while True:
        try:
            with closing(sqlite3.connect(database, timeout=5)) as db:
                count = db.execute(f"select count(*) from conversations_{table}")  # noqa: S608
                found = count.fetchone()[0]
        except sqlite3.OperationalError:  # locked for a moment by a writer
            found = 0
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def test_run_with_vonage_credentials_serves_that_api_and_creates_no_demo_user(tmp_path, sandbox):
    """Pointed at another server that follows the contract (here an in-process sandbox)."""
    key = tmp_path / "private.key"
    key.write_text(sandbox.private_key_pem)
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "READ_DOT_ENV": "false",
        "PORT": str(port),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "VONAGE_APPLICATION_ID": sandbox.application_id,
        "VONAGE_PRIVATE_KEY_PATH": str(key),
        "VONAGE_API_BASE_URL": sandbox.base_url,
        "SECRET_KEY_FILE": str(tmp_path / "secret_key"),
        "DEBUG": "true",  # for the setup commands below; run.py must not run with it
        "QUEUE_PATH": str(tmp_path / "queue.sqlite3"),
    }
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=120)
    for username, flags in (("ops", []), ("demo", ["--sandbox-demo"])):
        # "demo" as an earlier sandbox run of `make run` left it in the same database.
        subprocess.run(
            [*manage, "ensure_staff_user", "--username", username, *flags],
            cwd=ROOT,
            env=env | {"DEMO_PASSWORD": f"{username}-password-123"},
            check=True,
            timeout=60,
        )
    run = subprocess.Popen(
        [sys.executable, "scripts/run.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        page = log_in(base, "ops", "ops-password-123", run)
        assert page.url == base + "/conversations/"
        assert len(re.findall(r'href="/conversations/CON-', page.text)) >= 10
        assert "sandbox-badge" not in page.text
        stylesheet = re.search(r'href="(/static/dashboard/dashboard[^"]*\.css)"', page.text)
        assert requests.get(base + stylesheet.group(1), timeout=5).status_code == 200

        demo = log_in(base, "demo", "demo-password-123", run)
        assert demo.url == base + "/login/", "the sandbox's demo user cannot log in"

        # DEBUG is off: Django's debug pages (settings, headers: secrets) never show.
        missing = requests.get(base + "/nowhere/", timeout=5)
        assert missing.status_code == 404
        assert "URLconf" not in missing.text and "DEBUG" not in missing.text
    finally:
        run.send_signal(signal.SIGINT)
        output = run.communicate(timeout=20)[0]
    assert f"running against {sandbox.base_url}" in output
    assert "Log in as" not in output, "no demo user on a real application"
    assert "'demo' was deactivated" in output
    assert "DEBUG is ignored" in output
    secret_key = tmp_path / "secret_key"
    assert secret_key.stat().st_mode & 0o777 == 0o600
    assert len(secret_key.read_text().strip()) >= 50


# --- which users count as the sandbox's demo user


@pytest.mark.django_db
def test_a_demo_user_from_before_the_mark_is_known_by_its_demo_password(
    django_user_model, monkeypatch
):
    from django.core.management import call_command

    monkeypatch.setenv("DEMO_PASSWORD", "old-demo-password")
    demo = django_user_model.objects.create_user(
        "demo", password="old-demo-password", is_staff=True
    )
    call_command("retire_sandbox_demo_users")
    demo.refresh_from_db()
    assert demo.is_active is False


@pytest.mark.django_db
def test_a_real_user_called_demo_is_left_alone(django_user_model, monkeypatch):
    from django.core.management import call_command

    monkeypatch.setenv("DEMO_PASSWORD", "the-sandbox-demo-password")
    real = django_user_model.objects.create_user("demo", password="their-own-password")
    call_command("retire_sandbox_demo_users")
    real.refresh_from_db()
    assert real.is_active is True
