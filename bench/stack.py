"""What the benchmark runs: the sandbox and the dashboard under gunicorn (uvicorn workers, as
production), and their teardown.

Everything lives in one temporary directory (key pair, SQLite database, logs) and is stopped by
`Stack.close()`, which `run.py` calls on success, on errors and on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import requests

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
APPLICATION_ID = "bbbbbbbb-0000-4000-8000-00000000be1c"
STAFF_USERNAME = "bench"


class StackError(RuntimeError):
    """Something the benchmark needs did not start; the message says what and where to look."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_available(url: str) -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except Exception:
        return False


@dataclass
class Stack:
    latency_ms: int
    cache: str  # "redis" or "database" (no CACHE_URL: the default, a table in the database)
    redis_url: str
    workers: int = 2
    # SYNC_REQUESTS_PER_PROCESS (dashboard_project/bounded.py): how many synchronous views one
    # uvicorn worker runs at once, the dashboard's default (16) when 0.
    sync_requests: int = 0
    keep_logs: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)
    # With a secret, the sandbox signs a webhook of every event it creates (once a URL is set
    # with `webhooks()`), and the dashboard verifies them: a webhook-fed store, as in production.
    webhook_secret: str = ""
    webhook_api_key: str = "benchkey"
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="dashboard-bench-")))
    sandbox_url: str = ""
    dashboard_url: str = ""
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    _sandbox: subprocess.Popen | None = None
    _gunicorn: subprocess.Popen | None = None
    _sandbox_log: Any = None
    _gunicorn_log: Any = None
    _token: tuple[float, str] | None = None
    tokens_minted: int = 0

    # --- paths

    @property
    def private_key(self) -> Path:
        return self.tmp / "private.pem"

    @property
    def public_key(self) -> Path:
        return self.tmp / "public.pem"

    @property
    def gunicorn_pid(self) -> int | None:
        return self._gunicorn.pid if self._gunicorn else None

    # --- starting

    def start(self, *, conversations: int, big_events: int) -> None:
        self._run(
            [
                *(sys.executable, "-m", "sandbox", "keygen"),
                *("--private-key", str(self.private_key), "--public-key", str(self.public_key)),
            ],
            what="sandbox keygen",
        )
        self._start_sandbox(conversations, big_events)
        env = self.django_env()
        self._run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], env=env)
        self._run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"], env=env)
        self._run(
            [sys.executable, "manage.py", "ensure_staff_user", "--username", STAFF_USERNAME],
            env=env | {"DEMO_PASSWORD": self.password},
        )
        self.flush_cache()
        self._start_gunicorn(env)

    def _start_sandbox(self, conversations: int, big_events: int) -> None:
        self._sandbox_log = open(self.tmp / "sandbox.log", "w+")  # noqa: SIM115 - closed in close()
        args = [
            sys.executable,
            "-u",
            "-m",
            "bench.sandbox_server",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--public-key",
            str(self.public_key),
            "--application-id",
            APPLICATION_ID,
            "--seed",
            "42",
            "--conversations",
            str(conversations),
            "--big-conversation-events",
            str(big_events),
            "--latency-ms",
            str(self.latency_ms),
            "--activity-interval",
            "0",
        ]
        env = {
            k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")
        }  # the webhook settings below, never the caller's
        if self.webhook_secret:
            env |= {
                "SANDBOX_SIGNATURE_SECRET": self.webhook_secret,
                "SANDBOX_API_KEY": self.webhook_api_key,
            }
        self._sandbox = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=self._sandbox_log,
            text=True,
            start_new_session=True,
        )
        lines: queue.Queue[str] = queue.Queue()
        stdout = self._sandbox.stdout

        def pump() -> None:  # keep reading so the pipe never fills
            assert stdout is not None
            for line in stdout:
                lines.put(line)

        threading.Thread(target=pump, name="sandbox-stdout", daemon=True).start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._sandbox.poll() is not None:
                raise StackError(f"the sandbox exited early; see {self.tmp / 'sandbox.log'}")
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            found = re.search(r"listening on (http://\S+)", line)
            if found:
                self.sandbox_url = found.group(1).rstrip("/")
                return
        raise StackError("the sandbox did not say where it listens within 60 s")

    def django_env(self) -> dict[str, str]:
        cache_url = self.redis_url if self.cache == "redis" else ""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("VONAGE_", "GUNICORN_", "UPSTREAM_", "DASHBOARD_"))
            and k not in ("DATABASE_URL", "CACHE_URL", "REDIS_URL", "SANDBOX_PORT")
        }
        return (
            env
            | {
                "DEBUG": "false",
                "SECRET_KEY": secrets.token_urlsafe(50),
                "SECURE_SSL_REDIRECT": "false",
                "SESSION_COOKIE_SECURE": "false",
                "CSRF_COOKIE_SECURE": "false",
                "ALLOWED_HOSTS": "127.0.0.1,localhost",
                "READ_DOT_ENV": "false",
                "VONAGE_APPLICATION_ID": APPLICATION_ID,
                "VONAGE_PRIVATE_KEY_PATH": str(self.private_key),
                "VONAGE_API_BASE_URL": self.sandbox_url,
                "DATABASE_URL": f"sqlite:///{self.tmp / 'bench.sqlite3'}",
                "CACHE_URL": cache_url,
                # huey's queue (nothing consumes it in the bench) stays out of the checkout.
                "QUEUE_PATH": str(self.tmp / "queue.sqlite3"),
                "PYTHONUNBUFFERED": "1",
            }
            | (
                {
                    "VONAGE_SIGNATURE_SECRET": self.webhook_secret,
                    "VONAGE_API_KEY": self.webhook_api_key,
                }
                if self.webhook_secret
                else {}
            )
            | self.extra_env
        )

    def _start_gunicorn(self, env: dict[str, str]) -> None:
        port = free_port()
        self.dashboard_url = f"http://127.0.0.1:{port}"
        self._gunicorn_log = open(self.tmp / "gunicorn.log", "w+")  # noqa: SIM115 - see close()
        env = env | {
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "GUNICORN_WORKERS": str(self.workers),
        }
        if self.sync_requests:
            env["SYNC_REQUESTS_PER_PROCESS"] = str(self.sync_requests)
        gunicorn = shutil.which("gunicorn", path=str(VENV_BIN)) or "gunicorn"
        # The application is the config's (wsgi_app: the ASGI one, under uvicorn workers).
        self._gunicorn = subprocess.Popen(
            [gunicorn, "-c", "dashboard_project/gunicorn.conf.py"],
            cwd=ROOT,
            env=env,
            stdout=self._gunicorn_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._gunicorn.poll() is not None:
                raise StackError(f"gunicorn exited early; see {self.tmp / 'gunicorn.log'}")
            with contextlib.suppress(requests.RequestException):
                answer = requests.get(self.dashboard_url + "/healthz", timeout=1)
                if answer.status_code == 200 and len(self.worker_pids()) >= self.workers:
                    return
            time.sleep(0.2)
        raise StackError(f"gunicorn did not answer within 60 s; see {self.tmp / 'gunicorn.log'}")

    def _run(self, args: list[str], env: dict[str, str] | None = None, what: str = "") -> str:
        done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise StackError(
                f"{what or ' '.join(args[1:4])} failed ({done.returncode}):\n"
                f"{done.stdout[-2000:]}{done.stderr[-2000:]}"
            )
        return done.stdout

    def manage(self, *args: str) -> str:
        """A `manage.py` command with the dashboard's settings (e.g. backfill); its stdout."""
        return self._run([sys.executable, "manage.py", *args], env=self.django_env())

    # --- the cache

    def flush_cache(self) -> None:
        """Empty the dashboard's cache (a dedicated Redis database); no-op for the database cache
        (the bench waits for its entries to expire instead)."""
        if self.cache != "redis":
            return
        import redis

        redis.Redis.from_url(self.redis_url).flushdb()

    # --- the sandbox's control endpoints and API

    def sandbox(self, method: str, path: str, **kwargs: Any) -> Any:
        response = requests.request(method, self.sandbox_url + path, timeout=30, **kwargs)
        response.raise_for_status()
        return response.json()

    def upstream_stats(self) -> dict[str, Any]:
        return self.sandbox("GET", "/_sandbox/stats")

    def webhooks(self, **settings: Any) -> dict[str, Any]:
        """The sandbox's webhook settings and counters, after applying `settings` (if any)."""
        if settings:
            return self.sandbox("PUT", "/_sandbox/webhooks", json=settings)
        return self.sandbox("GET", "/_sandbox/webhooks")

    def wait_webhooks(self, timeout: float = 30) -> dict[str, Any]:
        """Wait until every webhook the sandbox accepted was sent (or dropped); its counters."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.webhooks()["stats"]
            if not stats.get("pending") or time.monotonic() > deadline:
                return stats
            time.sleep(0.05)

    def set_latency(self, ms: int) -> None:
        self.sandbox("PUT", "/_sandbox/faults", json={"latency_ms": ms})

    def api(self, path: str, **params: Any) -> Any:
        """A /v1 read with our own JWT (for finding conversations, not for measuring)."""
        now = int(time.time())
        if self._token is None or self._token[0] < now + 30:
            claims = {
                "application_id": APPLICATION_ID,
                "iat": now,
                "exp": now + 300,
                "jti": str(uuid.uuid4()),
            }
            signed = jwt.encode(claims, self.private_key.read_text(), algorithm="RS256")
            self._token = (now + 300, signed)
            self.tokens_minted += 1
        token = self._token[1]
        url = path if path.startswith("http") else self.sandbox_url + path
        response = requests.get(
            url, params=params, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        response.raise_for_status()
        return response.json()

    # --- the workers

    def worker_pids(self) -> list[int]:
        master = self.gunicorn_pid
        if master is None:
            return []
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == master:
                pids.append(int(entry.name))
        return sorted(pids)

    def worker_cpu_seconds(self) -> float:
        """User + system CPU time used so far by the gunicorn workers, in seconds."""
        ticks = 0
        for pid in self.worker_pids():
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
        return ticks / os.sysconf("SC_CLK_TCK")

    def worker_memory(self) -> list[dict[str, float]]:
        """Per worker: current (VmRSS) and peak (VmHWM) resident memory in MB."""
        out = []
        for pid in self.worker_pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            values = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", status, re.MULTILINE))
            out.append(
                {
                    "pid": pid,
                    "rss_mb": int(values.get("VmRSS", 0)) / 1024,
                    "hwm_mb": int(values.get("VmHWM", 0)) / 1024,
                }
            )
        return out

    # --- stopping

    def close(self) -> None:
        for process in (self._gunicorn, self._sandbox):
            if process is None or process.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in (self._gunicorn, self._sandbox):
            if process is None:
                continue
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        with contextlib.suppress(Exception):
            self.flush_cache()
        for log in (self._gunicorn_log, self._sandbox_log):
            if log is not None:
                log.close()
        if not self.keep_logs:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.tmp / name
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
