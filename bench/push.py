"""Push benchmark (issue 10): open pages held by a light asyncio client, on the production stack.

    .venv/bin/python bench/push.py [--pages 1,50,500] [--webhooks 20] [--idle-streams 1000]

The stack is production's: gunicorn with uvicorn workers (dashboard_project/gunicorn.conf.py,
2 workers), PostgreSQL (a database of its own, dropped and created), Redis for the cache and the
push fan-out (pub/sub), and the sandbox as the upstream API (80 ms latency). No huey worker runs,
so every upstream call counted is a viewer's.

One conversation is created in the sandbox, which signs and POSTs a webhook of each of its events:
the store knows it from webhooks alone. Then:

1. Idle streams: the workers' memory (VmRSS) and CPU with no stream, then with --idle-streams
   streams open (each a page's `/stream/?topic=conversation:<id>`, logged in as staff), over
   --idle-seconds (heartbeats and the periodic access checks included); /healthz and a stored
   conversation's Events tab, p95, from a few staff meanwhile.
2. The issue's scenario: --hold-streams streams held --hold-seconds, /healthz and the page p95
   meanwhile, and a test notice (a webhook to the conversation they follow) halfway through,
   which each stream must get within 2 s.
3. Event-to-screen latency with 1, 50 and 500 open Events tabs of the conversation: the bench
   signs and POSTs a webhook (a new event) every --spacing s, and for each page measures from
   the POST's start to the moment the page has had the `event: events` notice AND has fetched
   the events poll partial (/conversations/<id>/events/poll/?after=N, HX-Request: true) that
   brings the new row, as htmx does on `sse:events` (one request at a time per page, the last
   trigger queued). Upstream calls made meanwhile (the sandbox's counters): target none.

Each page is one stream connection plus one keep-alive connection for its partials, as a browser
tab has. The client is one asyncio process (uvloop when installed) sharing the 2 cores with the
stack: its CPU time is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import json
import os
import re
import resource
import sys
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

if __package__ in (None, ""):  # run as a script: `python bench/push.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import ingest, load
from bench.report import latency_row, ms, percentile, text_table
from bench.stack import STAFF_USERNAME, Stack, StackError, redis_available

# The targets.
TARGET_P50_SECONDS = 0.100  # event to screen, 50 pages
TARGET_P99_SECONDS = 0.500
TARGET_PAGES = 50
TARGET_HEALTHZ_P95 = 0.200  # with --hold-streams open
TARGET_PAGE_P95 = 1.0
TARGET_NOTICE_SECONDS = 2.0  # each held stream gets the test notice within this
# What the bench raises (the defaults, 10 a user and 2,000 a process, are for staff, not a load
# generator logged in as a handful of users).
STREAMS_PER_USER = 2000
SESSIONS = 4  # staff sessions the pages are spread over (tabs of 4 logged-in browsers)
# PostgreSQL connections left to everyone else when streams hold connections.
POSTGRES_MARGIN = 30
CONNECTION_PROBE_STREAMS = 10

TAG = r'<[a-z]+ id="{id}"[^>]*>'
ATTRIBUTE = re.compile(r'([a-z-]+)="([^"]*)"')


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/push.py", description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--pages", default="1,50,500", help="open Events tabs, one run each (1,50,500)")
    add("--webhooks", type=int, default=20, help="measured webhooks per run (20)")
    add("--spacing", type=float, default=1.0, help="s between webhooks, at least (1)")
    add("--with-header", action="store_true",
        help="pages also fetch the header partial on `sse:header`, as the tab does")  # fmt: skip
    add("--idle-streams", type=int, default=1000, help="idle streams for memory and CPU (1000)")
    add("--idle-seconds", type=float, default=60.0,
        help="CPU window with the idle streams open, s (60: four heartbeats and one access "
        "check per stream at the defaults)")  # fmt: skip
    add("--hold-streams", type=int, default=200, help="the issue's held streams (200)")
    add("--hold-seconds", type=float, default=20.0, help="how long they are held (20)")
    add("--probe-threads", type=int, default=4,
        help="staff loading /healthz and a page back to back, streams open (4)")  # fmt: skip
    add("--latency-ms", type=int, default=80, help="upstream latency the sandbox adds (80)")
    add("--workers", type=int, default=2, help="gunicorn (uvicorn) workers (2)")
    add("--redis-url", default="redis://127.0.0.1:6379/14", help="cache and push; flushed")
    add("--database", default="dashboard_push_bench",
        help="PostgreSQL database, dropped and created; `sqlite`: SQLite in the temporary "
        "directory instead")  # fmt: skip
    add("--postgres", default="postgres://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL admin connection")  # fmt: skip
    add("--env", action="append", default=[], metavar="NAME=VALUE",
        help="a setting for the dashboard, e.g. DASHBOARD_STREAM_HEARTBEAT_SECONDS=5")  # fmt: skip
    add("--keep-logs", action="store_true", help="keep the temporary directory and its logs")
    args = parser.parse_args(argv)
    args.page_counts = [int(n) for n in args.pages.split(",") if n.strip()]
    args.extra_env = dict(item.split("=", 1) for item in args.env)
    return args


def raise_open_files() -> int:
    """Raise this process's open-file limit to its hard limit (gunicorn, started from here,
    inherits it): 1,000 streams are 1,000 sockets on each side. The soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --- a small HTTP/1.1 client


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    line = await reader.readline()
    if not line:
        raise ConnectionResetError("closed before an answer")
    status = int(line.split()[1])
    headers: dict[str, str] = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            return status, headers
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()


async def read_chunk(reader: asyncio.StreamReader) -> bytes | None:
    """One chunk of a chunked body; None at its end."""
    size_line = await reader.readline()
    if not size_line:
        raise asyncio.IncompleteReadError(b"", None)
    size = int(size_line.split(b";")[0], 16)
    if size == 0:
        await reader.readline()
        return None
    data = await reader.readexactly(size)
    await reader.readexactly(2)
    return data


async def read_body(reader: asyncio.StreamReader, status: int, headers: dict[str, str]) -> bytes:
    if status in (204, 304) or status < 200:
        return b""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts = []
        while (chunk := await read_chunk(reader)) is not None:
            parts.append(chunk)
        return b"".join(parts)
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    return await reader.read()


def request_bytes(host: str, method: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Connection:
    """One keep-alive connection; reconnects (once per request) when the server closed it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, bytes]:
        for attempt in (0, 1):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            assert self.reader is not None
            try:
                self.writer.write(request_bytes(self.host, method, path, headers, body))
                await self.writer.drain()
                status, answer = await read_head(self.reader)
                data = await read_body(self.reader, status, answer)
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if attempt:
                    raise
                continue
            if answer.get("connection", "").lower() == "close":
                self.close()
            return status, data
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


# --- pages


class Stream:
    """One page's stream: /stream/?topic=…, its notices and heartbeats."""

    def __init__(
        self, host: str, port: int, path: str, cookie: str, on_event: Callable | None = None
    ) -> None:
        self.host, self.port, self.path, self.cookie = host, port, path, cookie
        self.on_event = on_event
        self.opened: asyncio.Future[None] | None = None
        self.heartbeats = 0
        self.events: Counter[str] = Counter()
        self.notice_at: list[tuple[float, str, str]] = []  # (when, event, data)
        self.closed_at: float | None = None
        self.refused: str | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task | None = None

    async def open(self, timeout: float = 30) -> None:
        loop = asyncio.get_running_loop()
        self.opened = loop.create_future()
        reader, self._writer = await asyncio.open_connection(self.host, self.port)
        headers = {
            "Cookie": self.cookie,
            "Accept": "text/event-stream",
            "Cache-Control": "no-cache",
        }
        self._writer.write(request_bytes(self.host, "GET", self.path, headers, b""))
        await self._writer.drain()
        status, answer = await asyncio.wait_for(read_head(reader), timeout)
        if status != 200:
            body = await read_body(reader, status, answer)
            self.refused = f"{status} {body[:120].decode(errors='replace')}"
            self.close()
            raise load.BenchError(f"stream refused: {self.refused}")
        self._task = asyncio.create_task(self._read(reader, answer))
        await asyncio.wait_for(asyncio.shield(self.opened), timeout)

    async def _read(self, reader: asyncio.StreamReader, headers: dict[str, str]) -> None:
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        buffer = ""
        try:
            while True:
                data = await read_chunk(reader) if chunked else await reader.read(65536)
                if not data:
                    return
                buffer += data.decode()
                while "\n\n" in buffer:
                    message, buffer = buffer.split("\n\n", 1)
                    self._message(message)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return
        finally:
            self.closed_at = time.perf_counter()

    def _message(self, message: str) -> None:
        now = time.perf_counter()
        event = data = ""
        for line in message.split("\n"):
            if line.startswith(": open"):
                if self.opened is not None and not self.opened.done():
                    self.opened.set_result(None)
            elif line.startswith(": "):
                self.heartbeats += 1
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data = line[5:].strip()
        if event:
            self.events[event] += 1
            self.notice_at.append((now, event, data))
            if self.on_event is not None:
                self.on_event(event, data, now)

    @property
    def open_now(self) -> bool:
        return self.closed_at is None and self._task is not None

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._task is not None:
            self._task.cancel()


def poller_url(text: str) -> str | None:
    """The hx-get of the events poller in a page or a poll answer (None when it stops)."""
    tag = re.search(TAG.format(id="events-poller"), text)
    if tag is None:
        return None
    attributes = {k: html.unescape(v) for k, v in ATTRIBUTE.findall(tag.group(0))}
    return attributes.get("hx-get")


def after_of(url: str) -> int:
    return int(urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["after"][0])


class Page:
    """An open Events tab: its stream, and the events poll it fetches on `sse:events` (and the
    header on `sse:header` with `with_header`), one request at a time, the last trigger queued
    (htmx's default for one element)."""

    def __init__(
        self,
        bench: Bench,
        cookie: str,
        stream_path: str,
        poll: str,
        header: str | None,
    ) -> None:
        self.bench = bench
        self.cookie = cookie
        self.stream = Stream(bench.host, bench.port, stream_path, cookie, self._on_event)
        self.poll = poll
        self.after = after_of(poll)
        self.header = header
        self.connection = Connection(bench.host, bench.port)
        self.header_connection = Connection(bench.host, bench.port)
        self.noticed: dict[int, float] = {}  # event id -> when its notice arrived
        self.shown: dict[int, float] = {}  # event id -> when the partial bringing it arrived
        self.statuses: Counter[str] = Counter()
        self.poll_seconds: list[float] = []
        self._want_poll = asyncio.Event()
        self._want_header = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    async def open(self) -> None:
        await self.stream.open()
        self._tasks.append(asyncio.create_task(self._poller()))
        if self.header:
            self._tasks.append(asyncio.create_task(self._header()))

    def _on_event(self, event: str, data: str, now: float) -> None:
        if event in ("events", "resync"):
            newest = json.loads(data).get("after", 0) if event == "events" and data else 0
            for event_id in self.bench.sent:
                if event_id <= newest or event == "resync":
                    self.noticed.setdefault(event_id, now)
            self._want_poll.set()
        if event in ("header", "resync") and self.header:
            self._want_header.set()

    async def _poller(self) -> None:
        headers = {"Cookie": self.cookie, "HX-Request": "true", "HX-Target": "event-rows"}
        while True:
            await self._want_poll.wait()
            self._want_poll.clear()
            began = time.perf_counter()
            try:
                status, body = await self.connection.request("GET", self.poll, headers)
            except (OSError, asyncio.IncompleteReadError) as exc:
                self.statuses[type(exc).__name__] += 1
                continue
            now = time.perf_counter()
            self.poll_seconds.append(now - began)
            self.statuses[str(status)] += 1
            if status != 200:
                continue
            following = poller_url(body.decode(errors="replace"))
            if following:
                self.poll = following
                self.after = after_of(following)
            for event_id in self.bench.sent:
                if event_id <= self.after and event_id in self.noticed:
                    self.shown.setdefault(event_id, now)

    async def _header(self) -> None:
        assert self.header is not None
        headers = {"Cookie": self.cookie, "HX-Request": "true", "HX-Target": "conversation-header"}
        while True:
            await self._want_header.wait()
            self._want_header.clear()
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                await self.header_connection.request("GET", self.header, headers)

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        self.stream.close()
        self.connection.close()
        self.header_connection.close()


# --- the bench


class Bench:
    def __init__(self, args: argparse.Namespace, stack: Stack, log: Callable[[str], None]) -> None:
        self.args = args
        self.stack = stack
        self.log = log
        parts = urllib.parse.urlsplit(stack.dashboard_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.sent: dict[int, float] = {}  # event id -> when its webhook's POST started
        self.answered: dict[int, float] = {}  # event id -> when the webhook was answered
        self.webhook_statuses: Counter[str] = Counter()
        self.webhook = Connection(self.host, self.port)
        self.cookies: list[str] = []
        self.next_id = 0
        self.conversation = ""
        self.member = ""
        self.stream_path = ""
        self.poll = ""
        self.header = ""
        self.page_path = ""
        self.postgres_url = ""  # the push database's, when on PostgreSQL
        self.held_per_stream: float | None = None
        self.skipped: list[str] = []

    # setting up (blocking: before the loop's work)

    def prepare(self) -> None:
        stack = self.stack
        stack.webhooks(url=f"{stack.dashboard_url}/webhooks/rtc")
        created = stack.sandbox(
            "POST", "/_sandbox/conversations", json={"name": "bench-push", "members": 4}
        )
        self.conversation = created["id"]
        members = stack.api(f"/v1/conversations/{self.conversation}/members")
        joined = members.get("_embedded", {})
        joined = joined.get("members", []) if isinstance(joined, dict) else joined
        self.member = next((m["id"] for m in joined if m.get("state") == "JOINED"), "")
        stack.wait_webhooks()
        # From here on the conversation's new events come from the bench's own webhooks.
        stack.webhooks(url=None)
        rec = load.Recorder()
        staff = []
        for _ in range(SESSIONS):
            browser = load.Staff(stack.dashboard_url, rec)
            browser.login(STAFF_USERNAME, stack.password)
            staff.append(browser)
            self.cookies.append(f"sessionid={browser.session.cookies['sessionid']}")
        self.page_path = f"/conversations/{self.conversation}/events/"
        page = staff[0].get("page", self.page_path)
        if page is None or "From the event store" not in page.text:
            raise load.BenchError(
                f"the conversation {self.conversation} is not read from the store "
                f"(webhooks: {stack.webhooks()['stats']})"
            )
        connect = re.search(r'sse-connect="([^"]+)"', page.text)
        if connect is None:
            raise load.BenchError("the Events tab follows no stream (is the server ASGI?)")
        self.stream_path = html.unescape(connect.group(1))
        poll = poller_url(page.text)
        header = load.htmx_poll(page, "conversation-header")
        if poll is None or header is None:
            raise load.BenchError("the Events tab has no events poller or header poller")
        self.poll, self.header = poll, header.url
        self.next_id = after_of(poll) + 1
        for browser in staff:  # both workers render the pages once before measuring
            for _ in range(3):
                browser.get("warmup", self.page_path)
                browser.get("warmup", "/healthz")
            browser.close()

    def signed_event(self) -> tuple[int, bytes, str]:
        event_id = self.next_id
        self.next_id += 1
        body = {
            "application_id": ingest.APPLICATION_ID,
            "conversation_id": self.conversation,
            "from": self.member,
            "id": event_id,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "type": "message",
            "body": {"message_type": "text", "text": f"bench push {event_id}"},
        }
        raw, authorization = ingest.signed(body)
        return event_id, raw, authorization

    async def send_webhook(self) -> int:
        event_id, raw, authorization = self.signed_event()
        headers = {"Authorization": authorization, "Content-Type": "application/json"}
        self.sent[event_id] = time.perf_counter()
        status, _ = await self.webhook.request("POST", "/webhooks/rtc", headers, raw)
        self.answered[event_id] = time.perf_counter()
        self.webhook_statuses[str(status)] += 1
        return event_id

    async def open_streams(self, count: int, make: Callable[[int], Any]) -> list[Any]:
        """`count` pages or streams, opened 50 at a time (as many tabs reconnecting at once)."""
        gate = asyncio.Semaphore(50)
        opened: list[Any] = []

        async def one(i: int) -> None:
            item = make(i)
            async with gate:
                await item.open()
            opened.append(item)

        results = await asyncio.gather(*(one(i) for i in range(count)), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            for item in opened:
                item.close()
            raise load.BenchError(f"{len(failures)} of {count} streams failed: {failures[0]!r}")
        return opened

    def idle_stream(self, i: int) -> Stream:
        return Stream(self.host, self.port, self.stream_path, self.cookies[i % len(self.cookies)])

    def page(self, i: int) -> Page:
        return Page(
            self,
            self.cookies[i % len(self.cookies)],
            self.stream_path,
            self.poll,
            self.header if self.args.with_header else None,
        )

    # probes: staff loading pages while streams are open (blocking, run in a thread)

    def probe(self, seconds: float) -> dict[str, Any]:
        rec = load.Recorder()
        browsers = []
        for i in range(self.args.probe_threads):
            browser = load.Staff(self.stack.dashboard_url, rec)
            browser.session.cookies.set("sessionid", self.cookies[i % len(self.cookies)][10:])
            browsers.append(browser)
        before = self.stack.upstream_stats()["requests"]

        def visit(browser: load.Staff) -> None:
            browser.get("healthz", "/healthz")
            browser.get("page", self.page_path)

        elapsed = load.closed_loop(browsers, seconds, visit)
        for browser in browsers:
            browser.close()
        return {
            "seconds": elapsed,
            "healthz": rec.samples["healthz"],
            "page": rec.samples["page"],
            "statuses": {k: dict(v) for k, v in rec.statuses.items()},
            "upstream": self.stack.upstream_stats()["requests"] - before,
        }

    def workers(self) -> dict[str, Any]:
        memory = self.stack.worker_memory()
        threads, sockets = [], []
        for m in memory:
            status = Path(f"/proc/{m['pid']}/status").read_text()
            threads.append(int(re.search(r"^Threads:\s+(\d+)", status, re.MULTILINE).group(1)))
            count = 0
            with contextlib.suppress(OSError):
                for fd in os.listdir(f"/proc/{m['pid']}/fd"):
                    with contextlib.suppress(OSError):
                        count += os.readlink(f"/proc/{m['pid']}/fd/{fd}").startswith("socket:")
            sockets.append(count)
        return {
            "rss_mb": [m["rss_mb"] for m in memory],
            "threads": threads,
            "sockets": sockets,
            "cpu": self.stack.worker_cpu_seconds(),
        }

    # the phases

    async def idle(self) -> dict[str, Any]:
        args = self.args
        baseline_seconds = min(args.idle_seconds, 15.0)
        self.log(f"push: idle workers, {baseline_seconds:g} s (CPU baseline), then a probe")
        before = self.workers()
        await asyncio.sleep(baseline_seconds)
        baseline_cpu = self.workers()["cpu"] - before["cpu"]
        probe_before = await asyncio.to_thread(self.probe, 10)
        before = self.workers()
        self.log(f"push: opening {args.idle_streams} idle streams")
        began = time.perf_counter()
        streams = await self.open_streams(args.idle_streams, self.idle_stream)
        open_seconds = time.perf_counter() - began
        await asyncio.sleep(3)
        after = self.workers()
        self.log(f"push: {args.idle_streams} idle streams open; CPU over {args.idle_seconds:g} s")
        await asyncio.sleep(args.idle_seconds)
        end = self.workers()
        client_cpu = time.process_time()
        probe = await asyncio.to_thread(self.probe, 10)
        client_cpu = time.process_time() - client_cpu
        still_open = sum(s.open_now for s in streams)
        heartbeats = [s.heartbeats for s in streams]
        for stream in streams:
            stream.close()
        await asyncio.sleep(2)
        closed = self.workers()
        streams_count = args.idle_streams
        return {
            "streams": streams_count,
            "open_seconds": open_seconds,
            "before": before,
            "after": after,
            "end": end,
            "closed": closed,
            "memory_kb_per_stream": (sum(after["rss_mb"]) - sum(before["rss_mb"]))
            * 1024
            / streams_count,
            "cpu_seconds": end["cpu"] - after["cpu"],
            "window": args.idle_seconds,
            "baseline_cpu_seconds": baseline_cpu * args.idle_seconds / baseline_seconds,
            "still_open": still_open,
            "heartbeats": (min(heartbeats), max(heartbeats)) if heartbeats else (0, 0),
            "probe_before": probe_before,
            "probe": probe,
            "probe_client_cpu": client_cpu,
        }

    async def hold(self) -> dict[str, Any]:
        args = self.args
        self.log(
            f"push: the issue's scenario: {args.hold_streams} streams held "
            f"{args.hold_seconds:g} s, pages probed meanwhile, a test notice halfway"
        )
        streams = await self.open_streams(args.hold_streams, self.idle_stream)
        probe_task = asyncio.create_task(asyncio.to_thread(self.probe, args.hold_seconds))
        await asyncio.sleep(args.hold_seconds / 2)
        event_id = await self.send_webhook()
        sent = self.sent[event_id]
        deadline = time.perf_counter() + 10
        while time.perf_counter() < deadline and not all(
            any(e == "events" and t >= sent for t, e, _ in s.notice_at) for s in streams
        ):
            await asyncio.sleep(0.01)
        delays = []
        for stream in streams:
            got = [t for t, e, _ in stream.notice_at if e == "events" and t >= sent]
            delays.append(got[0] - sent if got else float("inf"))
        probe = await probe_task
        still_open = sum(s.open_now for s in streams)
        for stream in streams:
            stream.close()
        received = [d for d in delays if d != float("inf")]
        return {
            "streams": args.hold_streams,
            "seconds": args.hold_seconds,
            "received": len(received),
            "delays": received,
            "still_open": still_open,
            "probe": probe,
        }

    async def latency(self, count: int) -> dict[str, Any]:
        args = self.args
        self.log(
            f"push: {count} open Events tab(s); {args.webhooks} webhooks at least "
            f"{args.spacing:g} s apart"
        )
        pages: list[Page] = await self.open_streams(count, self.page)
        before = self.stack.upstream_stats()
        first_id = self.next_id
        try:
            for n in range(args.webhooks + 1):  # the first warms the partials' connections
                began = time.perf_counter()
                event_id = await self.send_webhook()
                deadline = began + max(30.0, args.spacing)
                while time.perf_counter() < deadline and not all(
                    event_id in p.shown for p in pages
                ):
                    await asyncio.sleep(0.005)
                rest = began + args.spacing - time.perf_counter()
                if rest > 0:
                    await asyncio.sleep(rest)
                if n == 0:
                    first_id = event_id + 1
            await asyncio.sleep(0.5)
        finally:
            upstream = self.stack.upstream_stats()
            for page in pages:
                page.close()
        measured = [i for i in self.sent if i >= first_id]
        shown, noticed, missed = [], [], 0
        for page in pages:
            for event_id in measured:
                at = page.shown.get(event_id)
                if at is None:
                    missed += 1
                    continue
                shown.append(at - self.sent[event_id])
                noticed.append(page.noticed[event_id] - self.sent[event_id])
        statuses: Counter[str] = Counter()
        polls = []
        for page in pages:
            statuses.update(page.statuses)
            polls += page.poll_seconds
        answered = [self.answered[i] - self.sent[i] for i in measured]
        return {
            "pages": count,
            "webhooks": len(measured),
            "shown": shown,
            "noticed": noticed,
            "missed": missed,
            "poll_statuses": dict(statuses),
            "poll_seconds": polls,
            "webhook_seconds": answered,
            "upstream": upstream["requests"] - before["requests"],
            "upstream_by_endpoint": {
                k: v - before.get("by_endpoint", {}).get(k, 0)
                for k, v in upstream.get("by_endpoint", {}).items()
                if v - before.get("by_endpoint", {}).get(k, 0)
            },
        }

    def database_connections(self) -> int | None:
        """Connections to the push database now (PostgreSQL only), from pg_stat_activity."""
        if not self.postgres_url:
            return None
        with psycopg.connect(self.args.postgres, autocommit=True) as connection:
            return connection.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (self.args.database,)
            ).fetchone()[0]

    def postgres_headroom(self) -> int:
        """Connections the PostgreSQL server can still give, less a margin for everyone else."""
        with psycopg.connect(self.args.postgres, autocommit=True) as connection:
            top = int(connection.execute("SHOW max_connections").fetchone()[0])
            used = connection.execute("SELECT count(*) FROM pg_stat_activity").fetchone()[0]
        return top - used - POSTGRES_MARGIN

    async def connections_per_stream(self) -> float | None:
        """Database connections one open stream holds (0 when a stream holds none)."""
        if not self.postgres_url:
            return None
        await asyncio.sleep(1)
        before = self.database_connections()
        streams = await self.open_streams(CONNECTION_PROBE_STREAMS, self.idle_stream)
        await asyncio.sleep(1)
        during = self.database_connections()
        for stream in streams:
            stream.close()
        await asyncio.sleep(1)
        assert before is not None and during is not None
        return max(0, during - before) / CONNECTION_PROBE_STREAMS

    def affordable(self, streams: int, what: str) -> bool:
        """Whether `streams` open streams fit in the shared PostgreSQL server when each holds a
        connection; else the phase is skipped and the reason kept (never exhaust a server
        other people's tests use)."""
        held = self.held_per_stream or 0
        if held < 0.5:
            return True
        headroom = self.postgres_headroom()
        if streams * held <= headroom:
            return True
        reason = (
            f"{what}: skipped: {streams:,} streams would hold {streams * held:,.0f} PostgreSQL "
            f"connections (each open stream holds {held:g}); the server has {headroom} to spare"
        )
        self.log(f"push: {reason}")
        self.skipped.append(reason)
        return False

    async def run(self) -> dict[str, Any]:
        warm = await self.open_streams(4, self.idle_stream)  # the stream code paths, loaded once
        for stream in warm:
            stream.close()
        self.held_per_stream = await self.connections_per_stream()
        if self.held_per_stream:
            self.log(
                f"push: each open stream holds {self.held_per_stream:g} database connection(s) "
                "for as long as it is open"
            )
        await asyncio.sleep(1)
        results: dict[str, Any] = {"held_per_stream": self.held_per_stream}
        if self.args.idle_streams and self.affordable(self.args.idle_streams, "idle streams"):
            results["idle"] = await self.idle()
        if self.args.hold_streams and self.affordable(self.args.hold_streams, "held streams"):
            results["hold"] = await self.hold()
        results["latency"] = [
            await self.latency(n)
            for n in self.args.page_counts
            if self.affordable(n, f"{n} open pages")
        ]
        results["webhook_statuses"] = dict(self.webhook_statuses)
        results["skipped_phases"] = self.skipped
        self.webhook.close()
        return results


def run_loop(coroutine: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coroutine)
    except ImportError:
        return asyncio.run(coroutine)


def measure(args: argparse.Namespace, log: Callable[[str], None] = print) -> dict[str, Any]:
    """The push benchmark on a stack of its own; the figures (see `targets`).

    Raises StackError when the stack does not start."""
    limit = raise_open_files()
    client_cpu = time.process_time()
    env = {
        "DASHBOARD_STREAMS_PER_USER": str(STREAMS_PER_USER),
        "LOG_LEVEL": "WARNING",
    }
    postgres_url = ""
    if args.database == "sqlite":
        database = "SQLite (--database sqlite)"
    elif ingest.postgres_available(args.postgres) is None:
        postgres_url = env["DATABASE_URL"] = ingest.recreate_database(args.postgres, args.database)
        database = f"PostgreSQL ({args.database})"
    else:
        database = "SQLite (PostgreSQL did not answer)"
    redis = redis_available(args.redis_url)
    workers = args.workers if redis else 1
    stack = Stack(
        latency_ms=args.latency_ms,
        cache="redis" if redis else "database",
        redis_url=args.redis_url,
        workers=workers,
        keep_logs=args.keep_logs,
        extra_env=env | args.extra_env,
        webhook_secret=ingest.SECRET,
        webhook_api_key=ingest.API_KEY,
    )
    try:
        log(f"push: starting gunicorn ({workers} uvicorn workers) on {database} (in {stack.tmp})")
        stack.start(conversations=5, big_events=10)
        bench = Bench(args, stack, log)
        bench.postgres_url = postgres_url
        bench.prepare()
        results = run_loop(bench.run())
    finally:
        stack.close()
    return results | {
        "database": database,
        "redis": args.redis_url if redis else "",
        "workers": workers,
        "open_files": limit,
        "conversation": bench.conversation,
        # the dashboard's default unless set for the run
        "heartbeat": float(args.extra_env.get("DASHBOARD_STREAM_HEARTBEAT_SECONDS", "15")),
        "probe_threads": args.probe_threads,
        "client": f"{time.process_time() - client_cpu:.1f} s",
        "env": env | args.extra_env,
        "with_header": args.with_header,
    }


# --- the report


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def targets(figures: dict[str, Any]) -> list[list[str]]:
    """Rows of (scenario, target, measured, PASS/MISS)."""
    rows = []
    runs = {run["pages"]: run for run in figures["latency"]}
    for count, run in runs.items():
        p50, p95, p99 = (percentile(run["shown"], q) for q in (50, 95, 99))
        aimed = count == TARGET_PAGES
        rows.append(
            [
                f"Event to screen with {count} open page(s) on one conversation: webhook POST "
                f"to notice + events partial fetched, p50 / p95 / p99 ({run['webhooks']} webhooks)",
                f"p50 < {ms(TARGET_P50_SECONDS)}, p99 < {ms(TARGET_P99_SECONDS)}"
                if aimed
                else "(reported)",
                f"{ms(p50)} / {ms(p95)} / {ms(p99)}"
                + (f"; {run['missed']} never shown" if run["missed"] else ""),
                verdict(p50 < TARGET_P50_SECONDS and p99 < TARGET_P99_SECONDS and not run["missed"])
                if aimed
                else "-",
            ]
        )
    held = figures.get("held_per_stream")
    if held is not None:
        rows.append(
            [
                "PostgreSQL connections an open stream holds while open (pg_stat_activity, "
                f"{CONNECTION_PROBE_STREAMS} streams)",
                "0 (a stream must not pin a thread or a connection)",
                f"{held:g}",
                verdict(held == 0),
            ]
        )
    rows += [
        [reason.split(":")[0], "-", reason, "SKIP"] for reason in figures.get("skipped_phases", [])
    ]
    upstream = sum(run["upstream"] for run in figures["latency"])
    rows.append(
        [
            "Upstream calls made by the viewers meanwhile (stored conversation, webhook-fed)",
            "0",
            str(upstream),
            verdict(upstream == 0),
        ]
    )
    idle = figures.get("idle")
    if idle:
        rows.append(
            [
                f"Memory per open stream (workers' VmRSS with {idle['streams']:,} idle streams "
                "minus before, divided)",
                "(reported)",
                f"{idle['memory_kb_per_stream']:.1f} KB",
                "-",
            ]
        )
        threads = (sum(idle["after"]["threads"]) - sum(idle["before"]["threads"])) / idle["streams"]
        rows.append(
            [
                f"Threads per open stream (workers' threads with {idle['streams']:,} idle streams "
                "minus before, divided)",
                "0 (a stream must not pin a thread)",
                f"{threads:.2f}",
                verdict(threads < 0.05),
            ]
        )
        net = idle["cpu_seconds"] - idle["baseline_cpu_seconds"]
        per_thousand = net * 1000 / idle["streams"] / idle["window"] * 60
        rows.append(
            [
                f"CPU per 1,000 idle streams (workers' CPU over {idle['window']:g} s, heartbeat "
                f"every {figures['heartbeat']:g} s, less the idle workers' own)",
                "(reported)",
                f"{per_thousand:.2f} CPU s a minute ({per_thousand / 60:.1%} of a core)",
                "-",
            ]
        )
        probe = idle["probe"]
        for kind, target in (("healthz", TARGET_HEALTHZ_P95), ("page", TARGET_PAGE_P95)):
            p95 = percentile(probe[kind], 95)
            rows.append(
                [
                    f"{'/healthz' if kind == 'healthz' else 'Stored Events tab page'} p95 with "
                    f"{idle['streams']:,} streams open ({len(probe[kind])} requests, "
                    f"{figures['probe_threads']} staff back to back)",
                    f"< {ms(target)} (the issue's, for 200)",
                    f"{ms(p95)} (no streams: {ms(percentile(idle['probe_before'][kind], 95))})",
                    verdict(p95 < target),
                ]
            )
    hold = figures.get("hold")
    if hold:
        probe = hold["probe"]
        for kind, target in (("healthz", TARGET_HEALTHZ_P95), ("page", TARGET_PAGE_P95)):
            p95 = percentile(probe[kind], 95)
            rows.append(
                [
                    f"{hold['streams']} streams held {hold['seconds']:g} s: "
                    f"{'/healthz' if kind == 'healthz' else 'stored Events tab page'} p95 "
                    f"({len(probe[kind])} requests)",
                    f"< {ms(target)}",
                    ms(p95),
                    verdict(p95 < target),
                ]
            )
        worst = max(hold["delays"], default=float("nan"))
        ok = hold["received"] == hold["streams"] and worst < TARGET_NOTICE_SECONDS
        rows.append(
            [
                f"{hold['streams']} streams held: each gets a test notice (a webhook to their "
                "conversation), slowest",
                f"all, < {ms(TARGET_NOTICE_SECONDS)}",
                f"{hold['received']}/{hold['streams']}, slowest {ms(worst)} "
                f"(p50 {ms(percentile(hold['delays'], 50))}); {hold['still_open']} still open",
                verdict(ok and hold["still_open"] == hold["streams"]),
            ]
        )
    return rows


def details(figures: dict[str, Any]) -> list[list[str]]:
    """Rows of (request, n, p50, p95, p99, req/s, statuses) like the bench's detail table."""
    rows = []
    for run in figures["latency"]:
        n = run["pages"]
        for label, values, statuses in (
            (f"push {n}: notice received (from the webhook POST)", run["noticed"], ""),
            (
                f"push {n}: events poll partial (GET, on the notice)",
                run["poll_seconds"],
                ", ".join(f"{k} x{v}" for k, v in sorted(run["poll_statuses"].items())),
            ),
            (f"push {n}: signed webhook POST answered", run["webhook_seconds"], ""),
        ):
            rows.append(latency_row(label, values, statuses))
    return rows


def figures_rows(figures: dict[str, Any]) -> list[list[str]]:
    rows = [
        [
            "Push stack",
            f"gunicorn {figures['workers']} uvicorn workers, {figures['database']}, "
            + (f"Redis {figures['redis']} (cache and pub/sub)" if figures["redis"] else "no Redis")
            + f"; open files limit {figures['open_files']}; "
            + "; ".join(f"{k}={v}" for k, v in figures["env"].items() if k.startswith("DASH"))
            + (
                "; pages also fetch the header on sse:header"
                if figures["with_header"]
                else "; pages fetch only the events partial"
            ),
        ]
    ]
    idle = figures.get("idle")
    if idle:
        b, a, c = idle["before"], idle["after"], idle["closed"]
        rows.append(
            [
                f"Workers with {idle['streams']:,} idle streams",
                f"opened in {idle['open_seconds']:.1f} s; VmRSS "
                + " / ".join(f"{x:.0f}" for x in b["rss_mb"])
                + " MB before, "
                + " / ".join(f"{x:.0f}" for x in a["rss_mb"])
                + " MB open, "
                + " / ".join(f"{x:.0f}" for x in c["rss_mb"])
                + " MB after closing; threads "
                + " / ".join(map(str, b["threads"]))
                + " before, "
                + " / ".join(map(str, a["threads"]))
                + " open; sockets "
                + " / ".join(map(str, a["sockets"]))
                + f"; CPU {idle['cpu_seconds']:.2f} s over {idle['window']:g} s "
                f"(idle workers alone: {idle['baseline_cpu_seconds']:.2f} s); heartbeats per "
                f"stream {idle['heartbeats'][0]}-{idle['heartbeats'][1]}; "
                f"{idle['still_open']:,} still open at the end",
            ]
        )
    ups = [run["upstream_by_endpoint"] for run in figures["latency"] if run["upstream"]]
    rows.append(
        [
            "Webhooks sent by the bench",
            ", ".join(f"{k}: {v}" for k, v in sorted(figures["webhook_statuses"].items()))
            + (f"; upstream calls: {ups}" if ups else ""),
        ]
    )
    rows.append(["Client process CPU (the asyncio pages, whole push phase)", figures["client"]])
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        figures = measure(args)
    except (StackError, load.BenchError, psycopg.Error) as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return 1
    print()
    print(text_table(["Scenario", "Target", "Measured", "Result"], targets(figures)))
    print()
    print(text_table(["Request", "n", "p50", "p95", "p99", "req/s", "statuses"], details(figures)))
    print()
    print(text_table(["Figure", "Measured"], figures_rows(figures)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
