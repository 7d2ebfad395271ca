"""Webhook ingestion benchmark: signed RTC webhooks into gunicorn on PostgreSQL, as fast as they
are answered, then a count of what was stored (nothing lost, nothing doubled).

    .venv/bin/python bench/ingest.py [--seconds 15] [--senders 16] [--duplicates 0.1]

It creates (drops first) its own PostgreSQL database, `dashboard_bench` by default. Requests are
signed before the clock starts, so the load generator spends its CPU on sending, not on HMACs.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import psycopg
import requests

if __package__ in (None, ""):  # run as a script: `python bench/ingest.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import ms, percentile, text_table
from bench.stack import APPLICATION_ID, Stack, StackError

SECRET = "bench-signature-secret-0123456789abcdef"  # noqa: S105 - a throwaway for the bench
API_KEY = "benchkey"
TARGET_PER_SECOND = 500
TARGET_P99_SECONDS = 0.050


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/ingest.py", description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--seconds", type=float, default=15.0, help="length of the sending phase (15)")
    add("--senders", type=int, default=16, help="concurrent senders, keep-alive each (16)")
    add("--conversations", type=int, default=60, help="conversations the events belong to (60)")
    add("--duplicates", type=float, default=0.1, help="share of events sent twice (0.1)")
    add("--workers", type=int, default=2, help="gunicorn workers (2)")
    add("--sync-requests", type=int, default=0,
        help="SYNC_REQUESTS_PER_PROCESS: views one uvicorn worker runs at once (the "
        "dashboard's default, 16)")  # fmt: skip
    add("--database", default="dashboard_bench", help="PostgreSQL database, dropped and created")
    add("--postgres", default="postgres://postgres@127.0.0.1:5432/postgres",
        help="where to create it (an admin connection)")  # fmt: skip
    return parser.parse_args(argv)


def recreate_database(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + "/" + name


def member_joined(conversation_id: str, event_id: int, rng: random.Random) -> dict:
    """A realistic body (about 600 bytes), shaped like WEBHOOKS.md's example."""
    member = f"MEM-{uuid.UUID(int=rng.getrandbits(128), version=4)}"
    return {
        "application_id": APPLICATION_ID,
        "conversation_id": conversation_id,
        "from": member,
        "id": event_id,
        "timestamp": "2026-11-27T09:12:44.512Z",
        "type": rng.choice(["member:joined", "audio:dtmf", "leg:status:update", "custom:note"]),
        "body": {
            "user": {"id": f"USR-{uuid.UUID(int=rng.getrandbits(128), version=4)}", "name": "a-7"},
            "channel": {"type": "phone", "from": {"type": "phone", "number": "447700900100"}},
            "media": {"audio_settings": {"enabled": True}},
            "timestamp": {"joined": "2026-11-27T09:12:44.500Z"},
        },
    }


def signed(body: dict) -> tuple[bytes, str]:
    raw = json.dumps(body).encode()
    claims = {
        "iat": int(time.time()),
        "jti": str(uuid.uuid4()),
        "iss": "Vonage",
        "api_key": API_KEY,
        "application_id": APPLICATION_ID,
        "payload_hash": hashlib.sha256(raw).hexdigest(),
    }
    return raw, "Bearer " + jwt.encode(claims, SECRET, algorithm="HS256")


def prepare(args: argparse.Namespace, count: int) -> tuple[list[tuple[bytes, str]], set]:
    """`count` signed requests: events spread over the conversations, some sent twice."""
    rng = random.Random(7)
    conversations = [
        f"CON-{uuid.UUID(int=rng.getrandbits(128), version=4)}" for _ in range(args.conversations)
    ]
    next_id = dict.fromkeys(conversations, 0)
    requests_: list[tuple[bytes, str]] = []
    unique: set[tuple[str, int]] = set()
    while len(requests_) < count:
        conversation_id = rng.choice(conversations)
        next_id[conversation_id] += 1
        body = member_joined(conversation_id, next_id[conversation_id], rng)
        unique.add((conversation_id, next_id[conversation_id]))
        requests_.append(signed(body))
        if rng.random() < args.duplicates:
            requests_.append(signed(body))  # the same event again, with its own jti
    rng.shuffle(requests_)
    return requests_, unique


def send(url: str, work: list[tuple[bytes, str]], seconds: float, senders: int) -> dict:
    cursor = itertools.count()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    accepted: list[int] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def sender() -> None:
        session = requests.Session()
        while time.monotonic() < deadline:
            index = next(cursor)
            if index >= len(work):
                return
            raw, authorization = work[index]
            began = time.perf_counter()
            try:
                response = session.post(
                    url,
                    data=raw,
                    headers={"Authorization": authorization, "Content-Type": "application/json"},
                    timeout=10,
                )
                status = response.status_code
            except requests.RequestException:
                status = 0
            elapsed = time.perf_counter() - began
            with lock:
                latencies.append(elapsed)
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    accepted.append(index)

    threads = [threading.Thread(target=sender) for _ in range(senders)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        "elapsed": time.monotonic() - began,
        "latencies": latencies,
        "statuses": statuses,
        "accepted": accepted,
    }


def stored_events(database_url: str) -> tuple[int, int]:
    with psycopg.connect(database_url) as connection:
        total = connection.execute("SELECT count(*) FROM conversations_storedevent").fetchone()[0]
        distinct = connection.execute(
            "SELECT count(*) FROM (SELECT DISTINCT conversation_id, event_id"
            " FROM conversations_storedevent) AS d"
        ).fetchone()[0]
    return total, distinct


def postgres_available(admin_url: str) -> str | None:
    """None when PostgreSQL answers at `admin_url`, else why not (for the report)."""
    try:
        with psycopg.connect(admin_url, connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


def measure(args: argparse.Namespace, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the ingestion benchmark; the figures, and whether each target is met.

    Raises StackError when gunicorn does not start; psycopg.Error when PostgreSQL fails."""
    database_url = recreate_database(args.postgres, args.database)
    stack = Stack(
        latency_ms=0,
        cache="database",
        redis_url="",
        workers=args.workers,
        sync_requests=args.sync_requests,
        extra_env={
            "DATABASE_URL": database_url,
            "VONAGE_SIGNATURE_SECRET": SECRET,
            "VONAGE_API_KEY": API_KEY,
            "LOG_LEVEL": "ERROR",
        },
    )
    try:
        log(f"ingest: gunicorn ({args.workers} uvicorn workers) on PostgreSQL {args.database}")
        stack.start(conversations=5, big_events=10)
        budget = int(args.seconds * 2000) + 2000  # more than the fastest run could send
        work, _ = prepare(args, budget)
        url = f"{stack.dashboard_url}/webhooks/rtc"
        send(url, work[:200], 2.0, 4)  # warm up both workers and their connections
        work = work[200:]
        log(f"ingest: sending signed webhooks for {args.seconds:g} s with {args.senders} senders")
        cpu = stack.worker_cpu_seconds()
        result = send(url, work, args.seconds, args.senders)
        # CPU the workers spent per webhook: what bounds the rate on an idle machine, whatever
        # else shares the cores (the load generator, other processes).
        cpu = stack.worker_cpu_seconds() - cpu
    finally:
        stack.close()
    # What was accepted, as distinct events (a duplicate is accepted and stored once).
    sent_events = {
        (json.loads(work[i][0])["conversation_id"], json.loads(work[i][0])["id"])
        for i in result["accepted"]
    }
    total, distinct = stored_events(database_url)
    warmup_events = total - len(sent_events)  # stored by the warm-up, before the clock
    latencies = result["latencies"]
    return {
        "database": args.database,
        "workers": args.workers,
        "seconds": result["elapsed"],
        "senders": args.senders,
        "requests": len(latencies),
        "rate": len(latencies) / result["elapsed"],
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "statuses": dict(sorted(result["statuses"].items())),
        "stored": total,
        "distinct": distinct,
        "doubled": total - distinct,
        "missing": max(0, len(sent_events) + warmup_events - total),
        "latencies": latencies,
        "cpu_ms": cpu * 1000 / max(len(latencies), 1),
    }


def passed(figures: dict[str, Any]) -> dict[str, bool]:
    return {
        "rate": figures["rate"] >= TARGET_PER_SECOND,
        "p99": figures["p99"] < TARGET_P99_SECONDS,
        "intact": figures["doubled"] == 0
        and figures["missing"] == 0
        and set(figures["statuses"]) == {200},
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        figures = measure(args)
    except StackError as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return 1
    rows = [
        ["webhooks/s (sustained)", f"{figures['rate']:.0f}", f">= {TARGET_PER_SECOND}"],
        ["ingestion latency p50", ms(figures["p50"]), ""],
        ["ingestion latency p99", ms(figures["p99"]), f"< {ms(TARGET_P99_SECONDS)}"],
        ["answers", ", ".join(f"{k}: {v}" for k, v in figures["statuses"].items()), ""],
        [
            "events stored / distinct",
            f"{figures['stored']} / {figures['distinct']}",
            "equal: none doubled",
        ],
        ["accepted events missing", str(figures["missing"]), "0"],
        ["gunicorn workers' CPU per webhook", f"{figures['cpu_ms']:.2f} ms", ""],
    ]
    print()
    print(text_table(["webhook ingestion (PostgreSQL)", "measured", "target"], rows))
    print("\nverdict:", "PASS" if all(passed(figures).values()) else "MISS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
