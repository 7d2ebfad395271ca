"""Configuration: loud failures for missing production secrets, the sandbox default, probes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import responses
from django.urls import reverse

from conversations import client as client_module
from tests.conftest import API, fixture, make_client

ROOT = Path(__file__).resolve().parent.parent


def load_settings(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """Import the real settings module in a fresh interpreter with exactly this environment."""
    code = (
        "import json, dashboard_project.settings as s; "
        "print(json.dumps({k: str(getattr(s, k)) for k in "
        "('DEBUG', 'USING_SANDBOX', 'VONAGE_API_BASE_URL', 'VONAGE_APPLICATION_ID', "
        "'VONAGE_PRIVATE_KEY_PATH', 'CACHES', 'DATABASES', 'UPSTREAM_CACHE_SECONDS', "
        "'SESSION_ENGINE', 'SECURE_CSP')}))"
    )
    base = {"PATH": os.environ["PATH"], "READ_DOT_ENV": "false", "HOME": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=base | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_missing_secret_key_stops_the_start_and_names_it(tmp_path):
    result = load_settings(tmp_path, DEBUG="false")
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_an_empty_secret_key_is_as_missing(tmp_path):
    result = load_settings(tmp_path, DEBUG="false", SECRET_KEY="")
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_debug_is_off_unless_set(tmp_path):
    result = load_settings(tmp_path, SECRET_KEY="x" * 50, DASHBOARD_SANDBOX="true")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["DEBUG"] == "False"


def test_production_without_credentials_stops_and_says_what_to_set(tmp_path):
    result = load_settings(tmp_path, SECRET_KEY="x" * 50)
    assert result.returncode != 0
    assert "VONAGE_APPLICATION_ID is not set" in result.stderr


def test_a_key_that_is_not_an_rsa_private_key_stops_the_start(tmp_path):
    key = tmp_path / "private.key"
    key.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    result = load_settings(
        tmp_path,
        SECRET_KEY="x" * 50,
        VONAGE_APPLICATION_ID="app",
        VONAGE_PRIVATE_KEY_PATH=str(key),
    )
    assert result.returncode != 0
    assert "not an unencrypted PEM RSA private key" in result.stderr
    assert "not a key" not in result.stderr, "key material is never printed"


def test_debug_runs_without_a_secret_key_on_the_sandbox(tmp_path):
    result = load_settings(tmp_path, DEBUG="true")
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["USING_SANDBOX"] == "True"
    assert values["VONAGE_API_BASE_URL"] == "http://127.0.0.1:8001"
    assert values["VONAGE_PRIVATE_KEY_PATH"].endswith(".sandbox/private.pem")
    assert "ResilientDatabaseCache" in values["CACHES"] and "sqlite3" in values["DATABASES"]


def test_the_sandbox_port_moves_the_sandbox_url(tmp_path):
    result = load_settings(tmp_path, DEBUG="true", SANDBOX_PORT="9101")
    assert json.loads(result.stdout)["VONAGE_API_BASE_URL"] == "http://127.0.0.1:9101"


def test_an_application_id_without_a_key_stops_the_start(tmp_path):
    result = load_settings(tmp_path, SECRET_KEY="x" * 50, VONAGE_APPLICATION_ID="app")
    assert result.returncode != 0
    assert "VONAGE_PRIVATE_KEY_PATH" in result.stderr


def test_a_key_path_that_does_not_exist_stops_the_start(tmp_path):
    result = load_settings(
        tmp_path,
        SECRET_KEY="x" * 50,
        VONAGE_APPLICATION_ID="app",
        VONAGE_PRIVATE_KEY_PATH=str(tmp_path / "missing.key"),
    )
    assert result.returncode != 0
    assert "missing.key" in result.stderr


def test_vonage_credentials_point_the_dashboard_at_vonage(tmp_path, key_pair):
    key = tmp_path / "private.key"
    key.write_text(key_pair[0])
    result = load_settings(
        tmp_path,
        SECRET_KEY="x" * 50,
        VONAGE_APPLICATION_ID="app-123",
        VONAGE_PRIVATE_KEY_PATH=str(key),
        CACHE_URL="redis://127.0.0.1:6379/3",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/test",
    )
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["USING_SANDBOX"] == "False"
    assert values["VONAGE_API_BASE_URL"] == "https://api.nexmo.com"
    assert values["VONAGE_APPLICATION_ID"] == "app-123"
    assert "ResilientRedisCache" in values["CACHES"] and "postgresql" in values["DATABASES"]


def test_an_upstream_read_is_shared_for_one_refresh_interval_by_default(tmp_path):
    """A cache lifetime shorter than the refresh re-reads every key more often than anyone looks."""
    result = load_settings(tmp_path, DEBUG="true", DASHBOARD_REFRESH_SECONDS="7")
    assert json.loads(result.stdout)["UPSTREAM_CACHE_SECONDS"] == "7"
    result = load_settings(
        tmp_path, DEBUG="true", DASHBOARD_REFRESH_SECONDS="7", UPSTREAM_CACHE_SECONDS="2"
    )
    assert json.loads(result.stdout)["UPSTREAM_CACHE_SECONDS"] == "2"


def test_sessions_read_through_redis_but_not_through_a_database_cache(tmp_path):
    on_redis = load_settings(tmp_path, DEBUG="true", CACHE_URL="redis://127.0.0.1:6379/3")
    assert json.loads(on_redis.stdout)["SESSION_ENGINE"].endswith("cached_db")
    on_database = load_settings(tmp_path, DEBUG="true")
    assert json.loads(on_database.stdout)["SESSION_ENGINE"].endswith(".db")


def test_the_run_script_uses_the_sandbox_application_id_of_the_settings():
    from django.conf import settings

    run_script = (ROOT / "scripts" / "run.py").read_text()
    assert f'SANDBOX_APPLICATION_ID = "{settings.SANDBOX_APPLICATION_ID}"' in run_script


def test_every_setting_read_from_the_environment_is_in_env_example():
    import re

    # Names may hold digits (DASHBOARD_REQUIRE_2FA): a pattern of letters alone skipped them.
    read = set(
        re.findall(
            r'env(?:\.\w+)?\(\s*"([A-Z][A-Z0-9_]*)"',
            (ROOT / "dashboard_project/settings.py").read_text(),
        )
    )
    documented = set(
        re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.M)
    )
    assert read, "the pattern found the settings"
    assert read - documented == set()


# --- a missing key is explained, not a crash


@pytest.mark.django_db
def test_a_missing_sandbox_key_is_explained_on_the_page(staff_client, use_client):
    use_client(make_client(""))
    response = staff_client.get(reverse("conversations:list"))
    assert response.status_code == 503
    assert "make run" in response.content.decode()


def test_the_configured_client_survives_a_missing_key_file(settings, tmp_path):
    settings.VONAGE_PRIVATE_KEY = ""
    settings.VONAGE_PRIVATE_KEY_PATH = str(tmp_path / "nope.pem")
    client_module.forget_clients()
    try:
        client = client_module.get_client()
        with pytest.raises(client_module.NotConfigured):
            client.get_conversation("CON-1")
    finally:
        client_module.forget_clients()


# --- probes


@pytest.fixture(autouse=True)
def _fresh_readiness():
    from conversations import health

    health.reset()
    yield
    health.reset()


def test_healthz_is_ok_without_login(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
@responses.activate
def test_readyz_checks_database_cache_and_upstream(client, api, use_client):
    use_client(api)
    responses.get(f"{API}/v1/conversations", json=fixture("conversations_page.json"))
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "cache", "upstream"}
    assert all(check["ok"] and check["ms"] >= 0 for check in body["checks"].values())


@pytest.mark.django_db
@responses.activate
def test_readyz_is_503_when_upstream_is_down_and_says_which(client, api, use_client):
    use_client(api)
    responses.get(f"{API}/v1/conversations", status=503, json={})
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["upstream"] == {
        "ok": False,
        "error": "Unavailable",
        "ms": response.json()["checks"]["upstream"]["ms"],
    }
    assert response.json()["checks"]["database"]["ok"] is True


def test_production_settings_pass_the_deployment_checklist(tmp_path):
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "READ_DOT_ENV": "false",
        "DEBUG": "false",
        "SECRET_KEY": "k" * 20 + "-production-like-secret-key-0123456789",
        "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
        "DASHBOARD_SANDBOX": "true",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.django_db
@responses.activate
def test_readyz_stays_ready_while_rate_limited(client, api, use_client):
    use_client(api)
    responses.get(f"{API}/v1/conversations", status=429, headers={"Retry-After": "1"}, json={})
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["upstream"]["note"] == "rate limited"
