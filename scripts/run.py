"""`make run`: the dashboard on 127.0.0.1:$PORT, on the sandbox unless Vonage credentials are set.

With no VONAGE_APPLICATION_ID (in the environment or .env) it:
1. generates a key pair for the sandbox in .sandbox/ (kept out of git), once;
2. starts the sandbox on 127.0.0.1:$SANDBOX_PORT with live activity, which it POSTs to the
   dashboard's /webhooks/rtc signed with a secret generated once into .sandbox/, and waits until
   it answers;
3. migrates, creates the demo staff user, prints the URL and the credentials;
4. runs the worker (the Procfile's `worker`: the job engine that fills gaps from the API, backfills
   an empty store and applies the retention) and the dashboard (DEBUG on unless DEBUG=false);
   Ctrl-C stops all three.
With VONAGE_APPLICATION_ID set, it migrates and runs the worker and the dashboard against Vonage
as production would, only on plain-HTTP localhost: DEBUG off whatever DEBUG says (Django's debug
pages show request headers and settings: with real credentials, secrets), no demo user (a sandbox
demo user in the database is deactivated), and static files served by whitenoise.
Either way the SECRET_KEY is $SECRET_KEY, or one generated for this install into $SECRET_KEY_FILE
(default .secret_key, kept out of git, readable by its owner only), never a hard-coded one.
Only the standard library here: the dashboard, the worker and the sandbox each run in their own
process.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".sandbox"
SANDBOX_APPLICATION_ID = "aaaaaaaa-bbbb-4ccc-8ddd-000000000001"  # = settings.SANDBOX_APPLICATION_ID
SANDBOX_API_KEY = "sandbox"  # the account key the sandbox signs its webhooks for


def read_dotenv() -> dict[str, str]:
    values: dict[str, str] = {}
    path = ROOT / ".env"
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                values[key.strip()] = value.strip().strip("'\"")
    return values


def setting(name: str, default: str = "") -> str:
    return os.environ.get(name) or read_dotenv().get(name) or default


def manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True)


def secret_key() -> str:
    """$SECRET_KEY, or this install's own key, generated once into $SECRET_KEY_FILE (mode 0600)."""
    chosen = setting("SECRET_KEY")
    if chosen:
        return chosen
    path = Path(setting("SECRET_KEY_FILE", str(ROOT / ".secret_key")))
    if not path.exists():
        # Created readable by its owner only, before anything is written into it.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as key_file:
            key_file.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


def signature_secret() -> str:
    """The sandbox's webhook signature secret, generated once into .sandbox/ (mode 0600)."""
    path = STATE / "signature_secret"
    if not path.exists():
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as secret_file:
            secret_file.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def demo_password() -> str:
    chosen = setting("DEMO_PASSWORD")
    if chosen:
        return chosen
    path = STATE / "demo_password"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(12))
        path.chmod(0o600)
    return path.read_text().strip()


def wait_for(url: str, seconds: float, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"The sandbox exited early (status {process.returncode}).")
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 (a local URL we built)
                return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"The sandbox did not answer at {url} within {seconds:.0f} s.")


def stop(process: subprocess.Popen | None) -> None:
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()


def interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    # Ctrl-C (SIGINT) and a supervisor's SIGTERM both stop everything started here, even when
    # this process was started with SIGINT ignored (as background jobs of a script are).
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    port = setting("PORT", "8000")
    env = dict(os.environ)
    sandbox = dashboard = worker = None
    try:
        if setting("VONAGE_APPLICATION_ID"):
            print(
                "VONAGE_APPLICATION_ID is set: running against",
                setting("VONAGE_API_BASE_URL", "https://api.nexmo.com"),
            )
        else:
            STATE.mkdir(mode=0o700, exist_ok=True)
            private_key, public_key = STATE / "private.pem", STATE / "public.pem"
            if not private_key.exists():
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "sandbox",
                        "keygen",
                        "--private-key",
                        str(private_key),
                        "--public-key",
                        str(public_key),
                    ],
                    cwd=ROOT,
                    check=True,
                )
            sandbox_port = setting("SANDBOX_PORT", "8001")
            sandbox_url = f"http://127.0.0.1:{sandbox_port}"
            # The sandbox POSTs its live activity to the dashboard's /webhooks/rtc, signed as
            # Vonage signs RTC callbacks, with this install's own signature secret (in the
            # environment, not the arguments: `ps` shows arguments to everyone).
            secret = signature_secret()
            env.update(VONAGE_SIGNATURE_SECRET=secret, VONAGE_API_KEY=SANDBOX_API_KEY)
            sandbox_env = env | {
                "SANDBOX_WEBHOOK_URL": f"http://127.0.0.1:{port}/webhooks/rtc",
                "SANDBOX_SIGNATURE_SECRET": secret,
                "SANDBOX_API_KEY": SANDBOX_API_KEY,
            }
            sandbox = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "sandbox",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    sandbox_port,
                    "--public-key",
                    str(public_key),
                    "--application-id",
                    SANDBOX_APPLICATION_ID,
                    "--activity-interval",
                    setting("SANDBOX_ACTIVITY", "2"),
                    "--latency-ms",
                    setting("SANDBOX_LATENCY_MS", "0"),
                ],
                cwd=ROOT,
                env=sandbox_env,
            )
            wait_for(f"{sandbox_url}/_sandbox/healthz", 20, sandbox)
            # settings.py points the dashboard at the sandbox on this port, with .sandbox's key.
            env["SANDBOX_PORT"] = sandbox_port
        # A local run on plain HTTP: no HTTPS-only cookies, redirects or HSTS; whitenoise serves
        # the static files straight from the apps (no collectstatic step), DEBUG or not.
        env.update(
            SECRET_KEY=secret_key(),
            SECURE_SSL_REDIRECT="false",
            SESSION_COOKIE_SECURE="false",
            CSRF_COOKIE_SECURE="false",
            SECURE_HSTS_SECONDS="0",
            WHITENOISE_USE_FINDERS="true",
        )
        if sandbox is None:
            if setting("DEBUG", "false").lower() in ("1", "true", "yes", "on"):
                print("DEBUG is ignored on a real application: its error pages would show secrets.")
            env["DEBUG"] = "false"
        else:
            env["DEBUG"] = setting("DEBUG", "true")
        manage("migrate", "--noinput", "-v", "0", env=env)
        manage("createcachetable", env=env)  # the default cache's table (no-op when it exists)
        # The worker, as the Procfile runs it (conversations/tasks.py): gap filling every
        # DASHBOARD_RECONCILE_SECONDS, the first backfill, the retention.
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "run_huey", "--workers", "3", "--worker-type", "thread"],
            cwd=ROOT,
            env=env,
        )
        print(f"  Worker: manage.py run_huey (pid {worker.pid})", flush=True)
        if sandbox is None:
            manage("retire_sandbox_demo_users", env=env)
        else:
            username = setting("DEMO_USERNAME", "demo")
            env["DEMO_PASSWORD"] = demo_password()
            manage("ensure_staff_user", "--username", username, "--sandbox-demo", env=env)
            print(
                f"\n  Dashboard: http://127.0.0.1:{port}/\n"
                f"  Log in as: {username} / {env['DEMO_PASSWORD']}\n"
                "  (data from the local sandbox; Ctrl-C stops everything)\n",
                flush=True,
            )
        # The ASGI server, as in production (one uvicorn process: without Redis, live notices
        # stay in-process): pages, the webhook endpoint and the live streams.
        dashboard = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "dashboard_project.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                port,
                "--no-server-header",
            ],
            cwd=ROOT,
            env=env,
        )
        sys.exit(dashboard.wait())
    except KeyboardInterrupt:
        pass
    except subprocess.CalledProcessError as exc:
        sys.exit(exc.returncode)
    finally:
        stop(dashboard)
        stop(worker)
        stop(sandbox)


if __name__ == "__main__":
    main()
