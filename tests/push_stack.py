"""Real servers for the push tests (issue 10), and what the tests need to talk to them.

The dashboard runs as in production: gunicorn with uvicorn workers (one process per server for
tests/test_push_processes.py), or the Procfile's processes under honcho (tests/browser/
test_push.py), on a PostgreSQL database of their own and Redis (cache, sessions and the push
fan-out). Webhooks are signed here with tests/webhooks.py's secret. A stream is read over a plain
socket (EventStream): what a browser's EventSource sees, message by message, and when the
server ends it. Skipped when PostgreSQL or Redis does not answer on 127.0.0.1 (fails in CI).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import queue
import secrets
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from tests import webhooks
from tests.conftest import free_port
from tests.tcp_proxy import require_server
from tests.test_event_store_end_to_end import admin_sql, stop

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG_HOST, PG_PORT = "127.0.0.1", 5432
REDIS_URL = os.environ.get("PUSH_TESTS_REDIS_URL", "redis://127.0.0.1:6379/13")
PASSWORD = "push-tests-password-1"


# ---------------------------------------------------------------------- servers


@contextlib.contextmanager
def database() -> Iterator[str]:
    """A PostgreSQL database of its own (dropped at the end)."""
    require_server(PG_HOST, PG_PORT, "PostgreSQL")
    redis = urlsplit(REDIS_URL)
    require_server(redis.hostname or "127.0.0.1", redis.port or 6379, "Redis")
    name = f"pushtests_{uuid.uuid4().hex[:12]}"
    admin_sql(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        admin_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def dashboard_env(tmp: Path, database: str, **extra: str) -> dict[str, str]:
    """The environment of a production dashboard on that database and Redis. The API is a port
    nobody listens on: the pages read the store, fed by webhooks; no backfill, and the
    reconciler's interval is an hour, so that only the tests' webhooks store events."""
    from sandbox.testing import test_key_pair

    key = tmp / "private.pem"
    if not key.exists():
        key.write_text(test_key_pair()[0])
    return {
        "PATH": f"{BIN}:{os.environ['PATH']}",  # as the Makefile puts the virtualenv first
        "HOME": str(tmp),
        "READ_DOT_ENV": "false",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",  # plain HTTP here
        "CSRF_COOKIE_SECURE": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "WHITENOISE_USE_FINDERS": "true",  # no collectstatic needed
        "DATABASE_URL": f"postgres://postgres@{PG_HOST}:{PG_PORT}/{database}",
        "CACHE_URL": REDIS_URL,  # PUSH_URL follows it; the channel is named after the database
        "CACHE_KEY_PREFIX": database,  # not another run's keys on the same Redis database
        "QUEUE_PATH": str(tmp / "queue.sqlite3"),
        "VONAGE_APPLICATION_ID": webhooks.APPLICATION_ID,
        "VONAGE_PRIVATE_KEY_PATH": str(key),
        "VONAGE_API_BASE_URL": f"http://127.0.0.1:{free_port()}",
        "VONAGE_SIGNATURE_SECRET": webhooks.SECRET,
        "VONAGE_API_KEY": webhooks.API_KEY,
        "DASHBOARD_BACKFILL_DAYS": "0",
        "DASHBOARD_RECONCILE_SECONDS": "3600",
    } | extra


def django_shell(env: dict[str, str], code: str) -> str:
    """Run Python in `manage.py shell` with that environment (the servers' database and Redis)."""
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def prepare(env: dict[str, str], users: dict[str, bool]) -> None:
    """Migrate, and create the users (name -> is staff), each with PASSWORD (one process)."""
    django_shell(
        env,
        "from django.core.management import call_command\n"
        "from django.contrib.auth import get_user_model\n"
        "call_command('migrate', verbosity=0)\n"
        f"for name, staff in {list(users.items())!r}:\n"
        f"    get_user_model().objects.create_user(name, password={PASSWORD!r}, is_staff=staff)\n",
    )


def set_staff(env: dict[str, str], username: str, staff: bool) -> None:
    """Change a user's staff status as an administrator would: through the ORM, saved."""
    django_shell(
        env,
        "from django.contrib.auth import get_user_model\n"
        f"user = get_user_model().objects.get(username={username!r})\n"
        f"user.is_staff = {staff!r}\n"
        "user.save()\n",
    )


@dataclass
class Server:
    base: str
    process: subprocess.Popen
    log: Path
    _files: list[Any] = field(default_factory=list)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        stop(self.process)
        for file in self._files:
            file.close()


def launch(command: list[str], env: dict[str, str], port: int, log: Path) -> Server:
    """Start a server in a process group of its own (see ready())."""
    out = log.open("w")
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its group is stopped whole (stop())
    )
    return Server(f"http://127.0.0.1:{port}", process, log, [out])


def ready(*servers: Server) -> None:
    """Return once every server's /healthz answers 200; stop them all if one does not."""
    deadline = time.monotonic() + 60
    waiting = list(servers)
    while waiting:
        server = waiting[0]
        try:
            if requests.get(server.base + "/healthz", timeout=2).status_code == 200:
                waiting.pop(0)
                continue
        except requests.RequestException:
            pass
        if not server.alive() or time.monotonic() > deadline:
            for each in servers:
                each.stop()
            raise AssertionError(f"a server did not start:\n{server.output()}")
        time.sleep(0.2)


def start_gunicorns(env: dict[str, str], tmp: Path, *names: str) -> list[Server]:
    """Web processes as the Procfile's `web:` runs them (gunicorn, uvicorn workers), one per
    name, each on a port of its own, started side by side."""
    command = [sys.executable, "-m", "gunicorn", "-c", "dashboard_project/gunicorn.conf.py"]
    servers = []
    for name in names:
        port = free_port()
        own = env | {
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "GUNICORN_ACCESS_LOG": str(tmp / f"{name}-access.log"),
        }
        servers.append(launch(command, own, port, tmp / f"{name}.log"))
    ready(*servers)
    return servers


def start_procfile(env: dict[str, str], tmp: Path) -> Server:
    """The Procfile's processes (web and worker), as `make serve` starts them."""
    port = free_port()
    env = env | {"GUNICORN_ACCESS_LOG": str(tmp / "access.log")}
    command = [str(BIN / "honcho"), "start", "-f", "Procfile", "-p", str(port), "-e", "/dev/null"]
    server = launch(command, env, port, tmp / "honcho.log")
    ready(server)
    return server


def log_in(base: str, username: str) -> requests.Session:
    """A session logged in through the login form."""
    session = requests.Session()
    session.get(base + "/login/", timeout=10)
    answer = session.post(
        base + "/login/",
        data={
            "username": username,
            "password": PASSWORD,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        headers={"Referer": base + "/login/"},
        timeout=10,
        allow_redirects=False,
    )
    assert answer.status_code == 302, answer.text[:500]
    return session


def log_out(base: str, session: requests.Session) -> None:
    answer = session.post(
        base + "/logout/",
        data={"csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": base + "/"},
        timeout=10,
        allow_redirects=False,
    )
    assert answer.status_code == 302, (answer.status_code, answer.text[:500])


# ---------------------------------------------------------------------- webhooks


def new_conversation_id() -> str:
    return f"CON-{uuid.uuid4()}"


def new_member_id() -> str:
    return f"MEM-{uuid.uuid4()}"


def now_text() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def custom_event(conversation_id: str, event_id: int, **body: Any) -> dict[str, Any]:
    return webhooks.event(
        conversation_id, event_id, "custom:push-test", timestamp=now_text(), body=body
    )


def member_event(
    conversation_id: str, event_id: int, state: str, member_id: str, name: str
) -> dict[str, Any]:
    """member:joined or member:left, as Vonage sends it."""
    stamp = now_text()
    return webhooks.event(
        conversation_id,
        event_id,
        f"member:{state}",
        timestamp=stamp,
        **{"from": member_id},
        body={
            "member_id": member_id,
            "user": {"id": f"USR-{uuid.uuid5(uuid.NAMESPACE_URL, name)}", "name": name},
            "channel": {"type": "app"},
            "state": state.upper(),
            "timestamp": {state: stamp},
        },
    )


def send_webhook(base: str, body: dict[str, Any]) -> float:
    """POST a signed RTC webhook; return when its answer came (time.time(), seconds)."""
    raw = webhooks.encode(body)
    answer = requests.post(
        base + "/webhooks/rtc",
        data=raw,
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {webhooks.token(raw)}",
        },
        timeout=10,
    )
    answered = time.time()
    assert answer.status_code == 200, (answer.status_code, answer.text)
    assert answer.json() == {"stored": 1}, answer.text
    return answered


# ---------------------------------------------------------------------- streams


@dataclass
class Message:
    """One server-sent message: its event name (None for a comment-only message), data, and the
    comments and fields it carried."""

    at: float  # time.monotonic() when it was read
    event: str | None
    data: str
    comments: list[str]
    fields: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.data)


class EventStream:
    """GET /stream/?… over a socket, as a browser's EventSource does. A 200 is read on a thread,
    message by message; any other answer is read whole (`body`)."""

    def __init__(self, base: str, path: str, session: requests.Session | None = None) -> None:
        url = urlsplit(base)
        self.sock = socket.create_connection((url.hostname, url.port), timeout=10)
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {url.netloc}",
            "Accept: text/event-stream",
            "Cache-Control: no-cache",
            "Connection: close",
        ]
        if session is not None:
            cookies = "; ".join(f"{k}={v}" for k, v in session.cookies.get_dict().items())
            lines.append(f"Cookie: {cookies}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            chunk = self.sock.recv(65536)
            assert chunk, f"the server closed before answering: {buffer!r}"
            buffer += chunk
        head, _, rest = buffer.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in header_lines)
        }
        self.messages: queue.Queue[Message | None] = queue.Queue()
        self.closed = threading.Event()
        self.closed_at: float | None = None
        self.body = ""
        self._reader: threading.Thread | None = None
        self._rest = rest
        if self.status == 200:
            self.sock.settimeout(None)  # a quiet stream is fine; close() ends the wait
            self._reader = threading.Thread(target=self._read, daemon=True)
            self._reader.start()
        else:
            self.body = self._read_all().decode(errors="replace")
            self.close()

    @property
    def is_event_stream(self) -> bool:
        return self.headers.get("content-type", "").startswith("text/event-stream")

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError
        return chunk

    def _read_all(self) -> bytes:
        body = self._rest
        with contextlib.suppress(OSError, EOFError):
            while True:
                body += self._recv()
        if self.headers.get("transfer-encoding") == "chunked":
            body = dechunk(body)
        return body

    def _read(self) -> None:
        buffer, text = self._rest, ""
        chunked = self.headers.get("transfer-encoding") == "chunked"
        try:
            while True:
                if not chunked:
                    text += buffer.decode()
                    buffer = b""
                    text = self._messages(text)
                    buffer = self._recv()
                    continue
                while b"\r\n" not in buffer:
                    buffer += self._recv()
                size_line, buffer = buffer.split(b"\r\n", 1)
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    return
                while len(buffer) < size + 2:
                    buffer += self._recv()
                text += buffer[:size].decode()
                buffer = buffer[size + 2 :]
                text = self._messages(text)
        except (EOFError, OSError):
            return
        finally:
            self.closed_at = time.monotonic()
            self.closed.set()
            self.messages.put(None)

    def _messages(self, text: str) -> str:
        text = text.replace("\r\n", "\n")
        while "\n\n" in text:
            block, text = text.split("\n\n", 1)
            event, data, comments, fields = None, [], [], {}
            for line in block.split("\n"):
                if line.startswith(":"):
                    comments.append(line[1:].strip())
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "event":
                    event = value
                elif name == "data":
                    data.append(value)
                else:
                    fields[name] = value
            self.messages.put(Message(time.monotonic(), event, "\n".join(data), comments, fields))
        return text

    def next(self, timeout: float) -> Message | None:
        """The next message, or None when the stream has ended; fails after `timeout` s."""
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no message within {timeout} s") from None

    def wait_for(self, event: str, timeout: float) -> Message:
        """The next message of that event name (others are skipped); fails at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {event!r} message within {timeout} s")
            message = self.next(left)
            if message is None:
                raise AssertionError(f"the stream ended before a {event!r} message")
            if message.event == event:
                return message

    def wait_for_all(self, events: set[str], timeout: float) -> dict[str, Message]:
        """The next message of each of these event names, in whatever order they come (a
        stream spaces out messages of one name: one may be held back while others go)."""
        deadline = time.monotonic() + timeout
        found: dict[str, Message] = {}
        while set(found) < events:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"within {timeout} s: {sorted(found)}, not {sorted(events)}")
            message = self.next(left)
            if message is None:
                raise AssertionError(f"the stream ended with only {sorted(found)}")
            if message.event in events:
                found.setdefault(message.event, message)
        return found

    def drain(self, seconds: float) -> list[Message]:
        """Every message read within the next `seconds` (stops early if the stream ends)."""
        deadline = time.monotonic() + seconds
        found: list[Message] = []
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = self.messages.get(timeout=left)
            except queue.Empty:
                break
            if message is None:
                break
            found.append(message)
        return found

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        if self._reader is not None:
            self._reader.join(timeout=5)


def dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, body = out + body[:size], body[size + 2 :]
    return out
