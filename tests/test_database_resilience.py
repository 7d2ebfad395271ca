"""Fault 7: PostgreSQL blips (issue 8).

The dashboard under gunicorn, on a real PostgreSQL behind a TCP proxy that the tests drop
(connections refused) or hang (accepted, never answered). One worker thread, so that every request
reuses the same persistent connection, as a busy worker does. Runs in the default `make test` run
when a PostgreSQL answers on 127.0.0.1:5432 (it does here and in CI), skipped otherwise.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
from django.test import Client

from tests import webhooks
from tests.conftest import free_port
from tests.tcp_proxy import proxy_to, require_server

ROOT = Path(__file__).resolve().parent.parent
PG_HOST, PG_PORT = "127.0.0.1", 5432


def admin_sql(statement: str) -> None:
    import psycopg

    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user="postgres", dbname="postgres", autocommit=True
    ) as connection:
        connection.execute(statement)


@pytest.fixture(scope="module")
def database():
    require_server(PG_HOST, PG_PORT, "PostgreSQL")
    name = f"dashboard_blips_{uuid.uuid4().hex[:10]}"
    admin_sql(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        admin_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def db_proxy(database):
    with proxy_to(PG_HOST, PG_PORT) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory, sandbox, database, db_proxy):
    tmp = tmp_path_factory.mktemp("pg-blips")
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
        "SESSION_COOKIE_SECURE": "false",  # plain HTTP here
        "CSRF_COOKIE_SECURE": "false",
        "WHITENOISE_USE_FINDERS": "true",
        "DATABASE_URL": f"postgres://postgres@{PG_HOST}:{PG_PORT}/{database}",
        "QUEUE_PATH": str(tmp / "queue.sqlite3"),  # not the repository's job queue
        "VONAGE_APPLICATION_ID": sandbox.application_id,
        "VONAGE_PRIVATE_KEY_PATH": str(key),
        "VONAGE_API_BASE_URL": sandbox.base_url,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "1",
        "GUNICORN_THREADS": "1",
        "GUNICORN_ACCESS_LOG": str(tmp / "access.log"),
        "DEMO_PASSWORD": "blips-password-1",
        "VONAGE_SIGNATURE_SECRET": webhooks.SECRET,
        "VONAGE_API_KEY": webhooks.API_KEY,
    }
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=180)
    subprocess.run(
        [*manage, "ensure_staff_user", "--username", "ops"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=60,
        capture_output=True,
    )
    # The served dashboard reaches the database only through the proxy.
    env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:{db_proxy.port}/{database}"
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "dashboard_project/gunicorn.conf.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(base + "/healthz", timeout=2).close()
                break
            except requests.RequestException:
                assert server.poll() is None, "gunicorn exited"
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=15)


@pytest.fixture
def staff(dashboard, db_proxy):
    """A logged-in staff session with the database up, its connection open."""
    db_proxy.forward()
    session = requests.Session()
    session.get(dashboard + "/login/", timeout=10)
    response = session.post(
        dashboard + "/login/",
        data={
            "username": "ops",
            "password": "blips-password-1",
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        headers={"Referer": dashboard + "/login/"},
        timeout=10,
    )
    assert response.url == dashboard + "/conversations/", response.status_code
    yield session
    db_proxy.forward()


def page(session, dashboard) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = session.get(dashboard + "/conversations/", timeout=20, allow_redirects=False)
    return response, time.monotonic() - started


def assert_database_unavailable(response: requests.Response) -> None:
    assert response.status_code == 503, response.text[:300]
    assert int(response.headers["Retry-After"]) > 0
    assert "cannot reach its database" in response.text
    assert "Traceback" not in response.text and "psycopg" not in response.text


def test_a_dropped_database_is_a_quick_503_and_the_first_request_after_it_is_served(
    dashboard, db_proxy, staff
):
    assert page(staff, dashboard)[0].status_code == 200
    db_proxy.refuse()
    response, seconds = page(staff, dashboard)
    assert_database_unavailable(response)
    assert seconds < 2

    # Back, with the worker's persistent connection dead meanwhile: checked, replaced, served.
    db_proxy.forward()
    assert page(staff, dashboard)[0].status_code == 200
    db_proxy.refuse()
    db_proxy.forward()
    response, _ = page(staff, dashboard)
    assert response.status_code == 200, "the first request after the database came back"


def test_a_hung_database_is_a_503_within_seconds(dashboard, db_proxy, staff):
    assert page(staff, dashboard)[0].status_code == 200
    db_proxy.hang()
    response, seconds = page(staff, dashboard)
    assert_database_unavailable(response)
    assert seconds < 6, "a health check of 1 s, then a connect timeout of 3 s"
    db_proxy.forward()
    assert page(staff, dashboard)[0].status_code == 200


def test_the_probes_say_which_part_is_down(dashboard, db_proxy):
    db_proxy.refuse()
    try:
        assert requests.get(dashboard + "/healthz", timeout=2).status_code == 200
        deadline = time.monotonic() + 15
        while True:  # the readiness result may be a few seconds old
            ready = requests.get(dashboard + "/readyz", timeout=5)
            if ready.status_code == 503:
                break
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert ready.json()["checks"]["database"]["ok"] is False
    finally:
        db_proxy.forward()


def test_a_query_to_a_frozen_server_is_given_up_after_the_answer_timeout(
    database, db_proxy, django_db_blocker
):
    """A server that froze under an open connection cannot cancel anything, and TCP keeps
    acknowledging: without a bound of its own the client would wait for ever."""
    import threading

    from django.db import OperationalError
    from django.db.utils import ConnectionHandler

    handler = ConnectionHandler(
        {
            "default": {"ENGINE": "django.db.backends.dummy"},
            "frozen": {
                "ENGINE": "dashboard_project.postgresql",
                "NAME": database,
                "USER": "postgres",
                "HOST": "127.0.0.1",
                "PORT": db_proxy.port,
                "OPTIONS": {"connect_timeout": 3},
                "ANSWER_TIMEOUT": 1.0,
            },
        }
    )
    wrapper = handler["frozen"]
    wrapper.inc_thread_sharing()  # the query runs in a thread, to be given up on if it hangs
    outcome: list = []

    def query() -> None:
        started = time.monotonic()
        try:
            with wrapper.cursor() as cursor:
                cursor.execute("SELECT 1")
            outcome.append("answered")
        except OperationalError as exc:
            outcome.append((str(exc), time.monotonic() - started))

    db_proxy.forward()
    try:
        with django_db_blocker.unblock():
            with wrapper.cursor() as cursor:
                cursor.execute("SELECT 1")
            db_proxy.hang()
            worker = threading.Thread(target=query, daemon=True)
            worker.start()
            worker.join(timeout=10)
            assert not worker.is_alive(), "the query still waits for an answer"
            message, seconds = outcome[0]
            assert "did not answer within 1 s" in message
            assert seconds < 2
            assert not wrapper.is_usable()
    finally:
        db_proxy.forward()
        wrapper.close()
        wrapper.dec_thread_sharing()


# --- in-process: a real database error (a table gone) in a view or in another middleware


@pytest.fixture
def sessions_table_gone(db, settings):
    """SQLite answers a query on a missing table with OperationalError, as it does for a database
    that is gone (PostgreSQL says ProgrammingError: a bug, rightly a 500; the gunicorn tests above
    cover PostgreSQL really going away)."""
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("a missing table is only an OperationalError on SQLite")
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.db"  # not read through a cache
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE django_session")  # rolled back with the test's transaction


def test_a_database_error_in_a_view_is_a_503(staff_client, sessions_table_gone):
    response = staff_client.get("/conversations/")
    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert b"cannot reach its database" in response.content


def test_a_database_error_in_another_middleware_is_a_503(settings, sessions_table_gone):
    from django.conf import settings as django_settings

    settings.SESSION_SAVE_EVERY_REQUEST = True  # SessionMiddleware saves on the way out
    client = Client(raise_request_exception=False)
    client.cookies[django_settings.SESSION_COOKIE_NAME] = "a" * 32
    response = client.get("/healthz")
    assert response.status_code == 503
    assert b"cannot reach its database" in response.content


def stored_counts(database: str) -> tuple[int, int]:
    import psycopg

    with psycopg.connect(host=PG_HOST, port=PG_PORT, user="postgres", dbname=database) as db:
        events = db.execute("SELECT count(*) FROM conversations_storedevent").fetchone()[0]
        receipts = db.execute("SELECT count(*) FROM conversations_webhookreceipt").fetchone()[0]
    return events, receipts


def test_webhooks_while_the_database_is_down_are_5xx_and_stored_whole_when_resent(
    dashboard, database, db_proxy, sandbox
):
    """Vonage retries a 5xx: nothing half-stored meanwhile, and each event once afterwards."""
    conversation = "CON-0d0d0d0d-5a8d-4e21-9c0f-7d6e5b4a3c21"
    db_proxy.forward()
    before = stored_counts(database)
    session = requests.Session()

    def send(event_id: int) -> int:
        app = sandbox.application_id
        body = webhooks.event(conversation, event_id, "member:joined", application_id=app)
        raw = webhooks.encode(body)
        headers = {
            "Authorization": f"Bearer {webhooks.token(raw, application_id=app)}",
            "Content-Type": "application/json",
        }
        return session.post(
            dashboard + "/webhooks/rtc", data=raw, headers=headers, timeout=20
        ).status_code

    db_proxy.refuse()
    assert [send(n) for n in range(1, 6)] == [503] * 5
    db_proxy.forward()
    assert stored_counts(database) == before
    assert [send(n) for n in range(1, 6)] == [200] * 5
    assert [send(n) for n in range(1, 6)] == [200] * 5  # retried twice: no-ops
    events, receipts = stored_counts(database)
    assert (events, receipts) == (before[0] + 5, before[1] + 10)
