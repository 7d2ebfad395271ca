"""The HTTP side of the sandbox: a ThreadingHTTPServer around ``App``, plus live activity.

HTTP/1.1 with keep-alive, so pooled clients (requests.Session) behave as they do against the
live API. ``SandboxServer.stop()`` releases held requests, closes idle keep-alive connections and
waits briefly for handler threads, so tests finish without stray sockets.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import socket
import socketserver
import struct
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sandbox import errors
from sandbox.app import App, Request, Response, error_response, log_to_stderr
from sandbox.auth import Verifier
from sandbox.config import SandboxConfig
from sandbox.world import World

MAX_BODY_BYTES = 1_000_000
IDLE_TIMEOUT_SECONDS = 120  # idle keep-alive connections are closed after this
_HOST_RE = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")


class SandboxHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "VonageSandbox/1.0"
    sys_version = ""
    timeout = IDLE_TIMEOUT_SECONDS
    server: SandboxServer

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, threading.current_thread())

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def do_GET(self) -> None:
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def _dispatch(self) -> None:
        body = self._read_body()
        if body is None:
            return
        split = urlsplit(self.path)
        req = Request(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers=self.headers,
            body=body,
            base=self.server.link_base(self.headers.get("Host")),
        )
        try:
            resp = self.server.app.handle(req)
        except Exception:
            log_to_stderr(f"sandbox: error handling {self.command} {self.path}")
            traceback.print_exc(file=sys.stderr)
            resp = error_response(errors.internal_error())
        self._send(resp)

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._refuse(411, "Send a Content-Length; chunked bodies are not supported.")
            return None
        raw = self.headers.get("Content-Length") or "0"
        if not raw.isdigit():
            self._refuse(400, "Invalid Content-Length.")
            return None
        length = int(raw)
        if length > MAX_BODY_BYTES:
            self._refuse(413, "Body too large.")
            return None
        return self.rfile.read(length) if length else b""

    def _refuse(self, status: int, detail: str) -> None:
        self.close_connection = True
        self._send(error_response(errors.sandbox_error(status, detail)))

    def _send(self, resp: Response) -> None:
        if resp.drop is not None:
            self.close_connection = True
            if resp.drop == "reset":
                self.server.reset_on_close(self.connection)
            self.log_message('"%s" dropped (%s)', self.requestline, resp.drop)
            return
        if resp.wire is not None:
            self._send_broken(resp)
            return
        try:
            self.send_response(resp.status)
            if resp.content_type:
                self.send_header("Content-Type", resp.content_type)
            self.send_header("Content-Length", str(len(resp.body)))
            for name, value in resp.headers:
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            # Headers and body in one write: two small writes would meet Nagle's algorithm and
            # the client's delayed ACK, adding ~40 ms to every keep-alive request.
            self._headers_buffer.append(b"\r\n")
            if self.command != "HEAD":
                self._headers_buffer.append(resp.body)
            self.flush_headers()
        except OSError:  # the client went away
            self.close_connection = True

    def _send_broken(self, resp: Response) -> None:
        """Send ``resp`` the way its wire fault says (hostile_wire.py), then close."""
        self.close_connection = True
        body = resp.body
        try:
            self.send_response(resp.status)
            self.send_header("Content-Type", resp.content_type or "application/json")
            if resp.wire == "bad_chunked":
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                half = body[: len(body) // 2]
                self.wfile.write(b"%x\r\n%s\r\nnot-a-chunk-size\r\n" % (len(half), half))
                return
            declared = len(body) + 1000 if resp.wire == "truncated" else len(body)
            self.send_header("Content-Length", str(declared))
            self.end_headers()
            if resp.wire == "truncated":
                self.wfile.write(body)
                return
            faults = self.server.app.faults
            for index in range(len(body)):  # drip: one byte, then a pause, until told to stop
                self.wfile.write(body[index : index + 1])
                self.wfile.flush()
                if faults.hold("drip", resp.drip_interval) != "expired":
                    return  # the fault was changed or the server stops: hang up
        except OSError:  # the client gave up, as it should
            pass

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.config.verbose:
            log_to_stderr(f"{self.address_string()} - {format % args}")


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self,
        config: SandboxConfig,
        public_key: Any,
        world: World | None = None,
    ) -> None:
        config.validate()
        verifier = Verifier(public_key, config.application_id)
        self.config = config
        self._lock = threading.Lock()
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._resets: set[socket.socket] = set()
        self._thread: threading.Thread | None = None
        self._activity: Activity | None = None
        if ":" in config.host:
            self.address_family = socket.AF_INET6
        super().__init__((config.host, config.port), SandboxHandler)
        # The real port (for --port 0), so /_sandbox/state reports where we listen.
        self.config = config = dataclasses.replace(config, port=self.port)
        try:
            if world is None:
                world = World(
                    seed=config.seed,
                    conversations=config.conversations,
                    users=config.users,
                    big_conversation_events=config.big_conversation_events,
                )
        except BaseException:
            self.server_close()
            raise
        log = log_to_stderr if config.verbose else None
        self.app = App(config, verifier, world, log=log)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a DNS lookup that can take seconds.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    @property
    def world(self) -> World:
        return self.app.world

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def base_url(self) -> str:
        host = str(self.server_address[0])
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def link_base(self, host_header: str | None) -> str:
        """The origin written into _links: --links-host, else the request's Host header."""
        links_host = self.config.links_host
        if links_host:
            return links_host.rstrip("/") if "://" in links_host else f"http://{links_host}"
        if host_header and _HOST_RE.match(host_header.strip()):
            return f"http://{host_header.strip()}"
        return self.base_url

    # ------------------------------------------------------------------ connections

    def track(self, conn: socket.socket, thread: threading.Thread) -> None:
        with self._lock:
            self._connections[conn] = thread

    def untrack(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.pop(conn, None)

    def reset_on_close(self, conn: socket.socket) -> None:
        """Close ``conn`` with a TCP RST instead of a FIN (the "reset" fault)."""
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with self._lock:
            self._resets.add(conn)

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            reset = request in self._resets
            self._resets.discard(request)
        if reset:
            self.close_request(request)  # no shutdown(SHUT_WR): that would send a FIN first
        else:
            super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError) and not self.config.verbose:
            return  # clients hanging up mid-response are routine
        super().handle_error(request, client_address)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Serve in a background thread and start live activity (if activity_interval > 0)."""
        self._thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="sandbox-http",
            daemon=True,
        )
        self._thread.start()
        self.app.webhooks.start()
        if self.config.activity_interval > 0:
            self._activity = Activity(self.world, self.config.activity_interval)
            self._activity.start()

    def stop(self, wait: float = 5.0) -> None:
        """Stop serving, release held requests, close open connections, close the socket."""
        if self._activity is not None:
            self._activity.stop()
            self._activity = None
        self.app.webhooks.stop()
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.app.faults.close()
        with self._lock:
            open_connections = list(self._connections.items())
        for conn, _ in open_connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)  # wakes handler threads blocked on a read
        for _, thread in open_connections:
            if thread is not threading.current_thread():
                thread.join(timeout=wait)
        self.server_close()


class Activity(threading.Thread):
    """Calls ``world.tick()`` every ``interval`` seconds until stopped."""

    def __init__(self, world: World, interval: float) -> None:
        super().__init__(name="sandbox-activity", daemon=True)
        self.world = world
        self.interval = interval
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            try:
                self.world.tick()
            except Exception:
                log_to_stderr("sandbox: live activity tick failed")
                traceback.print_exc(file=sys.stderr)

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive() and self is not threading.current_thread():
            self.join(timeout=5)
