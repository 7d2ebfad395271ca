"""The production path: PostgreSQL and Redis. `make test-production` runs the whole suite with
DATABASE_URL and CACHE_URL pointing at the local servers; these tests only make sense there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
ON_REDIS = settings.CACHES["default"]["BACKEND"].endswith("RedisCache")

pytestmark = [
    pytest.mark.production,
    pytest.mark.skipif(not ON_REDIS, reason="needs CACHE_URL=redis://... (make test-production)"),
]

# One process of "a dashboard worker": N threads read the same conversation at the same instant.
WORKER = """
import json, os, sys, threading, time
import django
django.setup()
from conversations.client import ClientConfig, ConversationClient
config = json.loads(os.environ["WORKER_CONFIG"])
client = ConversationClient(ClientConfig(**config["client"]))
start_at = config["start_at"]
results = []
def read():
    time.sleep(max(0, start_at - time.time()))
    results.append(client.get_conversation(config["conversation_id"]).id)
threads = [threading.Thread(target=read) for _ in range(config["threads"])]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"reads": len(results), "signed": client.signer.signed_count}))
"""


@pytest.mark.django_db
def test_the_database_is_postgresql():
    assert connection.vendor == "postgresql"


def test_two_processes_sharing_redis_make_one_upstream_call(sandbox):
    """20 concurrent reads of one conversation, in two processes, cost one upstream request."""
    from django.core.cache import cache

    cache.clear()
    conversation = next(c for c in sandbox.world.conversations() if c.state == "ACTIVE")
    sandbox.set_fault(latency_ms=300)  # a slow upstream: everyone arrives while the read is out
    sandbox.reset_stats()
    config = {
        "client": {
            "base_url": sandbox.base_url,
            "application_id": sandbox.application_id,
            "private_key_pem": sandbox.private_key_pem,
            "cache_seconds": 5,
        },
        "conversation_id": conversation.id,
        "threads": 10,
        "start_at": time.time() + 3,  # both processes are up by then
    }
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "WORKER_CONFIG": json.dumps(config),
    }
    try:
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", WORKER],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [worker.communicate(timeout=60) for worker in workers]
    finally:
        sandbox.clear_faults()
    for worker, (out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1])["reads"] == 10
    by_path = sandbox.stats()["by_path"]
    assert by_path.get(f"GET /v1/conversations/{conversation.id}") == 1, by_path
