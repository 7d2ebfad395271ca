"""A TCP proxy in front of a real server (Redis, PostgreSQL) that a test can break on purpose.

- `forward()`: relay connections both ways (the normal state);
- `refuse()`: as if the server stopped: open connections are closed and new ones refused;
- `hang()`: as if the server froze: connections are accepted and nothing is ever answered, and the
  open ones stop relaying (the kernel still acknowledges what is sent, as with a frozen process).

Going back to `forward()` closes the connections held during a hang, as a restart would.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
from collections.abc import Iterator

import pytest

from tests.conftest import free_port

FORWARD, REFUSE, HANG = "forward", "refuse", "hang"


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def require_server(host: str, port: int, what: str) -> None:
    """Skip the test when the server does not run here; in CI (CI=true), where it must, fail."""
    if not reachable(host, port):
        message = f"needs {what} on {host}:{port}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.mode = FORWARD
        self.accepted = 0  # connections accepted so far, whatever the mode
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._stopped = threading.Event()
        self._listen()

    # --- modes

    def forward(self) -> None:
        with self._lock:
            self.mode = FORWARD
        self._close_connections()
        self._listen()

    def refuse(self) -> None:
        with self._lock:
            self.mode = REFUSE
            listener, self._listener = self._listener, None
        if listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone would leave the
            # socket listening until that accept() returned.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        self._close_connections()

    def hang(self) -> None:
        with self._lock:
            self.mode = HANG
        self._listen()

    def close(self) -> None:
        self._stopped.set()
        self.refuse()

    # --- machinery

    def _listen(self) -> None:
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(64)
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed: refusing, or done
            with self._lock:
                self.accepted += 1
                self._sockets.add(client)
                mode = self.mode
            if mode == FORWARD:
                threading.Thread(target=self._relay, args=(client,), daemon=True).start()
            elif mode == REFUSE:
                self._drop(client)
            # HANG: keep the socket open and never read from it or answer.

    def _relay(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.target, timeout=5)
        except OSError:
            self._drop(client)
            return
        with self._lock:
            self._sockets.add(server)
        pair = {client: server, server: client}
        try:
            while not self._stopped.is_set():
                if self.mode == HANG:
                    self._stopped.wait(0.05)  # frozen: relay nothing, close nothing
                    if self.mode != HANG and client not in self._sockets:
                        return
                    continue
                if client not in self._sockets or server not in self._sockets:
                    return
                readable, _, _ = select.select(list(pair), [], [], 0.05)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    pair[sock].sendall(data)
        except (OSError, ValueError):  # a socket closed under us by refuse() or forward()
            return
        finally:
            self._drop(client)
            self._drop(server)

    def _drop(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def _close_connections(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@contextlib.contextmanager
def proxy_to(host: str, port: int) -> Iterator[TcpProxy]:
    proxy = TcpProxy(host, port)
    try:
        yield proxy
    finally:
        proxy.close()
