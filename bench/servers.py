"""ASGI servers compared on the same application (issue 10): which one serves the streams.

    .venv/bin/python bench/servers.py --server gunicorn  # -c dashboard_project/gunicorn.conf.py
    .venv/bin/python bench/servers.py --server granian   # --interface asgi --workers 2
    .venv/bin/python bench/servers.py --server granian --server-args="--backpressure 2500"
    .venv/bin/python bench/servers.py --server daphne    # one process

granian and daphne are not in requirements: install them into the venv to compare
(`pip install granian==2.8.7 daphne==4.2.3`).

Each run: a fresh SQLite database (migrated, a staff user, 20 live conversations with two members
each), Redis for the push fan-out (PUSH_URL, so that two workers share notices), DEBUG off,
DASHBOARD_STREAMS_PER_USER=5000, access lines written (to /dev/null; granian's to its log file),
the same settings whatever the server. Then, with a light asyncio client on raw sockets (sharing
the 2 cores with the server: its CPU time is reported):

1. RSS of all the server's processes, idle;
2. /healthz and /live/ (a store-read page, logged in) p50/p95: --clients keep-alive clients,
   --requests requests per URL (after a warm-up);
3. --streams streams (`/stream/?topic=live`, the staff session) opened; RSS with them open, and
   the server's CPU seconds over --idle-seconds while they sit idle;
4. the same load as 2 with the streams open;
5. --notices notices PUBLISHed (redis-cli) on the fan-out channel: the time until every stream
   had its `event: live`;
6. the client closes every stream: how many server sockets are still open (CLOSE-WAIT) 2 s later,
   and whether 4 more rounds of --streams streams are admitted (a server that did not tell the
   application a client left would leak its tickets: 429 past 2000 per process);
7. SIGTERM with --streams streams open: how long until every server process has exited (SIGKILL
   after 30 s) and how many streams the server ended cleanly (chunked end) first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
USERNAME = "servers-bench"
PASSWORD = secrets.token_urlsafe(16)
NOTICE = '[{"topic":"live","event":"live","data":{}}]'

SEED = """
import datetime as dt
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.utils import timezone
from importlib import import_module
from conversations.store.models import Application, StoredConversation, StoredMember
app, _ = Application.objects.get_or_create(vonage_id=settings.VONAGE_APPLICATION_ID)
now = timezone.now()
for i in range(20):
    c = StoredConversation.objects.create(
        application=app, vonage_id=f"CON-{i:08d}-bench", name=f"bench-{i}",
        display_name=f"Bench conversation {i}", started_at=now - dt.timedelta(minutes=i),
        last_event_type="text", last_event_at=now, joined_count=2, is_live=True, last_event_id=5,
        contiguous_event_id=5)
    for m in range(2):
        StoredMember.objects.create(conversation=c, vonage_id=f"MEM-{i}-{m}", state="JOINED",
            user_id=f"USR-{i}-{m}", user_name=f"user {i}.{m}", channel_type="app",
            channel={"type": "app"}, joined_at=now)
user = get_user_model().objects.get(username="%s")
store = import_module(settings.SESSION_ENGINE).SessionStore()
store[SESSION_KEY] = str(user.pk)
store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
store[HASH_SESSION_KEY] = user.get_session_auth_hash()
store.create()
print("SESSION", store.session_key, settings.SESSION_COOKIE_NAME, settings.PUSH_CHANNEL_PREFIX)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(server: str, port: int) -> tuple[list[str], dict[str, str]]:
    if server == "gunicorn":
        return [str(VENV_BIN / "gunicorn"), "-c", "dashboard_project/gunicorn.conf.py"], {
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "GUNICORN_WORKERS": "2",
            # Every server writes its access lines (the production config's), none to a terminal.
            "GUNICORN_ACCESS_LOG": os.devnull,
        }
    if server == "granian":
        return [
            str(VENV_BIN / "granian"),
            "--interface",
            "asgi",
            "--workers",
            "2",
            "--access-log",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "dashboard_project.asgi:application",
        ], {}
    if server == "daphne":
        return [
            str(VENV_BIN / "daphne"),
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "--access-log",
            os.devnull,
            "dashboard_project.asgi:application",
        ], {}
    raise SystemExit(f"unknown server {server}")


# --- the server's processes


def tree(root: int) -> list[int]:
    """The root and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


def cpu_seconds(pids: list[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def alive(pids: list[int]) -> list[int]:
    living = []
    for pid in pids:
        with contextlib.suppress(OSError):
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if state != "Z":
                living.append(pid)
    return living


def close_wait(port: int) -> int:
    out = subprocess.run(
        ["ss", "-Htn", "state", "close-wait", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return len([line for line in out.splitlines() if line.strip()])


# --- a raw HTTP/1.1 client


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
    if "content-length" in headers:
        return status, await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return status, body
            body += chunk[:-2]
    return status, await reader.read()


def get(path: str, port: int, cookie: str = "", keep_alive: bool = True) -> bytes:
    headers = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    if cookie:
        headers += f"Cookie: {cookie}\r\n"
    if not keep_alive:
        headers += "Connection: close\r\n"
    return (headers + "\r\n").encode()


async def load(port: int, path: str, cookie: str, clients: int, requests: int) -> dict:
    """`requests` GETs of `path` from `clients` keep-alive connections: p50/p95 in ms."""
    times: list[float] = []
    errors = 0
    statuses: dict[int, int] = {}
    left = [requests]

    async def client() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while left[0] > 0:
                left[0] -= 1
                start = time.perf_counter()
                writer.write(get(path, port, cookie))
                try:  # granian past its --backpressure answers no request on that worker
                    status, _ = await asyncio.wait_for(read_response(reader), 30)
                except TimeoutError:
                    errors += 1
                    statuses[-1] = statuses.get(-1, 0) + 1
                    return
                times.append(time.perf_counter() - start)
                statuses[status] = statuses.get(status, 0) + 1
                if status != 200:
                    errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    times.sort()
    return {
        "p50_ms": round(statistics.median(times) * 1000, 1),
        "p95_ms": round(times[int(0.95 * (len(times) - 1))] * 1000, 1),
        "errors": errors,
        **({"statuses": statuses} if errors else {}),
    }


class Stream:
    def __init__(self, port: int, cookie: str) -> None:
        self.port, self.cookie = port, cookie
        self.heard: list[float] = []  # when each `event: live` arrived
        self.ended_cleanly = False  # the server sent the chunked end
        self.task: asyncio.Task | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.chunked = False
        self.status = 0

    async def open(self) -> None:
        reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.write(get("/stream/?topic=live", self.port, self.cookie))
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        except TimeoutError:  # no answer in 30 s (granian past its --backpressure, say)
            self.status = -1
            self.writer.close()
            return
        self.status = int(head.split()[1])
        if self.status != 200:
            self.writer.close()
            return
        self.chunked = b"transfer-encoding: chunked" in head.lower()
        self.task = asyncio.ensure_future(self.read(reader))

    async def read(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(Exception):
            while True:
                line = await reader.readline()
                if not line:
                    return
                if line.startswith(b"event: live"):
                    self.heard.append(time.perf_counter())
                elif line == b"0\r\n":
                    self.ended_cleanly = True

    def close(self) -> None:
        if self.writer:
            self.writer.close()
        if self.task:
            self.task.cancel()


async def open_streams(port: int, cookie: str, count: int) -> tuple[list[Stream], float]:
    streams = [Stream(port, cookie) for _ in range(count)]
    gate = asyncio.Semaphore(50)
    start = time.perf_counter()

    async def one(stream: Stream) -> None:
        async with gate:
            await stream.open()

    await asyncio.gather(*(one(s) for s in streams))
    took = time.perf_counter() - start
    refused = [s.status for s in streams if s.status != 200]
    if refused:
        print(f"{len(refused)} stream(s) refused: {sorted(set(refused))}", file=sys.stderr)
    return [s for s in streams if s.status == 200], took


# --- the run


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(args: argparse.Namespace, port: int, cookie: str, channel: str, root: int):
    figures: dict = {}
    await asyncio.sleep(3)  # let the workers settle
    figures["rss_idle_mib"] = round(rss_mib(tree(root)), 1)
    figures["processes"] = len(tree(root))
    load_args = (args.clients, args.requests)
    for path in ("/healthz", "/live/"):  # warm up: each worker's first pages, templates, caches
        await load(port, path, cookie, args.clients, 40)
    figures["healthz"] = await load(port, "/healthz", "", *load_args)
    figures["live"] = await load(port, "/live/", cookie, *load_args)

    streams, opened = await open_streams(port, cookie, args.streams)
    figures["streams_open_s"] = round(opened, 2)
    figures["streams_opened"] = len(streams)
    figures["streams_chunked"] = all(s.chunked for s in streams)
    await asyncio.sleep(2)
    pids = tree(root)
    figures["rss_streams_mib"] = round(rss_mib(pids), 1)
    cpu0, client0 = cpu_seconds(pids), client_cpu()
    await asyncio.sleep(args.idle_seconds)
    figures["idle_cpu_s"] = round(cpu_seconds(tree(root)) - cpu0, 2)
    figures["idle_client_cpu_s"] = round(client_cpu() - client0, 2)
    figures["healthz_streams"] = await load(port, "/healthz", "", *load_args)
    figures["live_streams"] = await load(port, "/live/", cookie, *load_args)

    fanout = []
    for _ in range(args.notices):
        for s in streams:
            s.heard.clear()
        start = time.perf_counter()
        subprocess.run(
            ["redis-cli", "-u", args.redis, "PUBLISH", channel, NOTICE],
            check=True,
            capture_output=True,
        )
        deadline = start + 10
        while time.perf_counter() < deadline and not all(s.heard for s in streams):
            await asyncio.sleep(0.005)
        got = [s.heard[0] - start for s in streams if s.heard]
        fanout.append((max(got) if got else None, len(got)))
        await asyncio.sleep(1)
    figures["fanout_all_ms"] = [round(t * 1000, 1) if t is not None else None for t, _ in fanout]
    figures["fanout_reached"] = [n for _, n in fanout]
    figures["rss_after_fanout_mib"] = round(rss_mib(tree(root)), 1)

    for s in streams:
        s.close()
    await asyncio.sleep(2)
    figures["close_wait_2s_after_client_left"] = close_wait(port)
    # Whether the server told the application that those clients left (the stream then gives
    # its ticket back): past DASHBOARD_STREAMS_MAX (2000 per process) leaked tickets, a new
    # stream is refused (429). Four more rounds of --streams opened and closed.
    rounds = []
    for _ in range(4):
        again, _ = await open_streams(port, cookie, args.streams)
        rounds.append(len(again))
        for s in again:
            s.close()
        await asyncio.sleep(2)
    figures["streams_admitted_in_4_more_rounds"] = rounds

    streams, _ = await open_streams(port, cookie, args.streams)
    await asyncio.sleep(1)
    pids = tree(root)
    start = time.perf_counter()
    os.kill(root, signal.SIGTERM)
    while alive(pids) and time.perf_counter() - start < 30:
        await asyncio.sleep(0.05)
    figures["sigterm_exit_s"] = round(time.perf_counter() - start, 2)
    figures["sigterm_killed"] = bool(alive(pids))
    for pid in alive(pids):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    await asyncio.sleep(0.5)
    figures["sigterm_streams_ended_cleanly"] = sum(s.ended_cleanly for s in streams)
    for s in streams:
        s.close()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", choices=["gunicorn", "granian", "daphne"], required=True)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--idle-seconds", type=float, default=30)
    parser.add_argument("--notices", type=int, default=5)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/10")
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument(
        "--server-args",
        default="",
        help='more options for the server, e.g. --server-args="--backpressure 2500" for granian',
    )
    args = parser.parse_args(argv)

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the server inherits it too
    tmp = Path(tempfile.mkdtemp(prefix=f"servers-{args.server}-"))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VONAGE_", "GUNICORN_", "DASHBOARD_", "PUSH_"))
        and k not in ("DATABASE_URL", "CACHE_URL", "REDIS_URL")
    } | {
        "DEBUG": "false",
        "DASHBOARD_SANDBOX": "true",  # the store-read pages call no upstream API
        "SECRET_KEY": secrets.token_urlsafe(50),
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "READ_DOT_ENV": "false",
        "DATABASE_URL": f"sqlite:///{tmp / 'servers.sqlite3'}",
        "QUEUE_PATH": str(tmp / "queue.sqlite3"),
        "STATIC_ROOT": str(tmp / "static"),  # collected with hashed names, as in production
        "PUSH_URL": args.redis,
        "VONAGE_SIGNATURE_SECRET": secrets.token_urlsafe(32),
        "DASHBOARD_STREAMS_PER_USER": "5000",
        "DEMO_PASSWORD": PASSWORD,
        "PYTHONUNBUFFERED": "1",
    }

    def manage(*a: str) -> str:
        return subprocess.run(
            [sys.executable, "manage.py", *a],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    manage("migrate", "--noinput", "-v", "0")
    manage("createcachetable")
    manage("collectstatic", "--noinput", "-v", "0")
    manage("ensure_staff_user", "--username", USERNAME)
    line = next(
        x for x in manage("shell", "-c", SEED % USERNAME).splitlines() if x.startswith("SESSION")
    )
    _, session_key, cookie_name, prefix = line.split()
    cookie = f"{cookie_name}={session_key}"
    channel = f"{prefix}:notices"

    port = free_port()
    command, extra = server_command(args.server, port)
    command[1:1] = args.server_args.split()
    if not Path(command[0]).exists():
        raise SystemExit(f"{command[0]} is not installed in this venv")
    log = open(tmp / "server.log", "w")  # noqa: SIM115
    server = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env | extra,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", port), 1) as s,
            ):
                s.sendall(get("/healthz", port, keep_alive=False))
                if b" 200 " in s.recv(100):
                    break
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{args.server} did not start; see {tmp / 'server.log'}")
            time.sleep(0.2)
        figures = asyncio.run(measure(args, port, cookie, channel, server.pid))
    finally:
        if server.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
        server.wait()
        log.close()
    figures = {"server": args.server, "command": " ".join(command[0:1] + command[1:])} | figures
    figures["client_cpu_total_s"] = round(client_cpu(), 1)
    figures["log"] = str(tmp / "server.log")
    print(json.dumps(figures, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
