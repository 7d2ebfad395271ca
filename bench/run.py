"""`make bench`: the dashboard under gunicorn on the sandbox with injected upstream latency.

1. A temporary key pair; the sandbox (seed 42, 300 conversations, one of 10,000 events, live
   activity off) with --latency-ms on every /v1 reply; the dashboard under gunicorn (2 uvicorn
   workers, as production: dashboard_project/gunicorn.conf.py; DEBUG off, SQLite in the
   temporary directory, a dedicated Redis database as the cache shared by the workers),
   migrated, static files collected, a staff user created.
2. Simulated staff (threads, one `requests.Session` each, logged in through /login/) run the
   scenarios below; upstream calls come from the sandbox's /_sandbox/stats deltas.
   Then the event store (issue 9): `manage.py backfill` fills it as a first start does, and
   stored conversations' pages are opened cold and warm; the sandbox then signs and POSTs a
   webhook of every event it creates to /webhooks/rtc, and 50 viewers watch a conversation the
   store knows from those webhooks alone (its upstream calls: no worker runs, all are viewers').
   With that stack stopped, bench/push.py's live push (issue 10) on a stack of its own
   (PostgreSQL, Redis for the cache and the fan-out): memory and CPU of 1,000 idle streams, 200
   streams held with pages probed, and event-to-screen latency with 1, 50 and 500 open pages
   (--no-push skips it, --push-only runs it alone). Then bench/ingest.py's webhook ingestion on
   PostgreSQL (skipped, and said so, when PostgreSQL does not answer; or with --no-ingest). Last,
   bench/search.py's search, exports and timeline (issue 11) on a PostgreSQL store of 2,000,000
   events that it seeds once in a database of its own and reuses (--no-search skips it,
   --search-only runs it alone). And bench/audit.py's audit log (issue 12) on two servers of its
   own, one with the log on, one off, pages opened on each in turn (--no-audit skips it).
3. One table of targets with the measured value and PASS/MISS, then the details; the same as
   Markdown in bench-results/results.md (with the raw figures in results.json).
Everything started is stopped at the end, on errors and on Ctrl-C.

    make bench                          # about 4 minutes
    make bench BENCH_ARGS=--quick       # about 2.5 minutes
    make bench BENCH_ARGS="--latency-ms 200 --cache database"
    make bench BENCH_ARGS=--push-only   # the push phase alone, about 4 minutes
    make bench BENCH_ARGS=--search-only # the search phase alone: 2 minutes, 4 more to seed once
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import random
import secrets
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: `python bench/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from bench import audit, ingest, load, push, report, search
from bench.stack import ROOT, STAFF_USERNAME, Stack, StackError, redis_available

REFRESH_SECONDS = 5.0  # the dashboard's DASHBOARD_REFRESH_SECONDS default
JWT_TTL_SECONDS = 900  # VONAGE_JWT_TTL_SECONDS default
MEMORY_TARGET_MB = 150


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--quick", action="store_true", help="shorter phases (about 1 minute in all)")
    add("--latency-ms", type=int, default=80, help="upstream latency the sandbox adds (80)")
    add("--interval", type=float, default=5.0, help="poll interval of the viewers, s (5)")
    add("--viewers", type=int, default=50, help="concurrent viewers polling one conversation")
    add("--poll-seconds", type=float, default=None, help="polling phase length (30; quick 15)")
    add("--seconds", type=float, default=None, help="each throughput phase, s (15; quick 4)")
    add("--threads", type=int, default=8, help="client threads of the throughput phases (8)")
    add("--staff", type=int, default=4, help="concurrent staff opening conversations (4)")
    add("--visits", type=int, default=None, help="conversations opened cold (100; quick 20)")
    add("--events-rounds", type=int, default=None, help="big/small events samples (20; quick 6)")
    add("--cache", choices=("auto", "redis", "database"), default="auto",
        help="the dashboard's cache: Redis, or the default without CACHE_URL (a table in the "
        "database, shared by the workers of a host); auto = Redis when it answers")  # fmt: skip
    add("--redis-url", default="redis://127.0.0.1:6379/14",
        help="a Redis database the bench may flush (default db 14)")  # fmt: skip
    add("--workers", type=int, default=2, help="gunicorn workers (2)")
    add("--sync-requests", type=int, default=0,
        help="SYNC_REQUESTS_PER_PROCESS: synchronous views one uvicorn worker runs at once "
        "(the dashboard's default, 16)")  # fmt: skip
    add("--output", type=Path, default=ROOT / "bench-results", help="where results go")
    add("--env", action="append", default=[], metavar="NAME=VALUE",
        help="a setting for the dashboard, e.g. UPSTREAM_CACHE_SECONDS=3 (repeatable)")  # fmt: skip
    add("--stored", type=int, default=None,
        help="stored conversations whose pages are opened cold and warm (20; quick 8)")  # fmt: skip
    add("--backfill-days", type=float, default=31,
        help="`manage.py backfill --days` that fills the store before the stored phases (31: "
        "the sandbox's whole seeded history)")  # fmt: skip
    add("--feed-every", type=float, default=2.0,
        help="a new event in the webhook-fed conversation every this many s while it is "
        "watched (2)")  # fmt: skip
    add("--no-ingest", action="store_true", help="skip the webhook ingestion phase")
    add("--ingest-seconds", type=float, default=None, help="ingestion phase, s (15; quick 5)")
    add("--ingest-senders", type=int, default=16, help="concurrent webhook senders (16)")
    add("--ingest-database", default="dashboard_bench",
        help="PostgreSQL database of the ingestion phase, dropped and created")  # fmt: skip
    add("--postgres", default="postgres://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL admin connection for the ingestion phase")  # fmt: skip
    add("--no-push", action="store_true", help="skip the push phase (issue 10)")
    add("--push-only", action="store_true",
        help="run only the push phase (no main stack, no ingestion)")  # fmt: skip
    add("--push-pages", default="1,50,500",
        help="open Events tabs of one conversation, a latency run each (1,50,500)")  # fmt: skip
    add("--push-webhooks", type=int, default=None, help="webhooks per latency run (20; quick 8)")
    add("--push-spacing", type=float, default=1.0, help="s between those webhooks, at least (1)")
    add("--push-with-header", action="store_true",
        help="the pages also fetch the header partial on each notice, as the tab does")  # fmt: skip
    add("--push-idle-streams", type=int, default=1000,
        help="idle streams for memory and CPU per stream (1000)")  # fmt: skip
    add("--push-idle-seconds", type=float, default=None,
        help="CPU window with them open (60: four heartbeats and one access check each; "
        "quick 15)")  # fmt: skip
    add("--push-hold-streams", type=int, default=200, help="the issue's held streams (200)")
    add("--push-hold-seconds", type=float, default=20.0, help="how long they are held (20)")
    add("--push-database", default="dashboard_push_bench",
        help="PostgreSQL database of the push phase, dropped and created")  # fmt: skip
    add("--no-search", action="store_true", help="skip the search phase (issue 11)")
    add("--search-only", action="store_true",
        help="run only the search phase (no main stack, no other phase)")  # fmt: skip
    add("--search-database", default="dashboard_search_bench",
        help="PostgreSQL database of the search phase: seeded once, reused while its marker "
        "matches the set asked for, else dropped and seeded again")  # fmt: skip
    add("--search-events", type=int, default=1_000_000,
        help="events of the search phase's store (1,000,000)")  # fmt: skip
    add("--search-export-events", type=int, default=1_000_000,
        help="events of the exported conversation, besides (1,000,000)")  # fmt: skip
    add("--search-reseed", action="store_true", help="seed the search database again")
    add(
        "--search-rounds",
        type=int,
        default=None,
        help="requests of each search query (10; quick 3)",
    )
    add("--search-timeline-rounds", type=int, default=None,
        help="requests of the 10,000-event timeline (20; quick 6)")  # fmt: skip
    add("--search-formats", default="csv,json", help="export formats measured (csv,json)")
    add("--no-audit", action="store_true", help="skip the audit log phase (issue 12)")
    add("--audit-rounds", type=int, default=None,
        help="audit phase: pages and polls per server (400; quick 150)")  # fmt: skip
    add("--keep-logs", action="store_true", help="keep the temporary directory and its logs")
    add("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    defaults = {
        "poll_seconds": (30.0, 15.0),
        "seconds": (15.0, 4.0),
        "visits": (100, 20),
        "events_rounds": (20, 6),
        "stored": (20, 8),
        "ingest_seconds": (15.0, 5.0),
        "push_webhooks": (20, 8),
        "push_idle_seconds": (60.0, 15.0),
        "search_rounds": (10, 3),
        "search_timeline_rounds": (20, 6),
        "audit_rounds": (400, 150),
    }
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    for item in args.env:
        if "=" not in item:
            parser.error(f"--env takes NAME=VALUE, not {item!r}")
    args.extra_env = dict(item.split("=", 1) for item in args.env)
    return args


# --- finding the conversations to use


def embedded(body: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = body.get("_embedded") or []
    if isinstance(value, dict):
        value = value.get(key) or []
    return value


def discover(stack: Stack, need: int) -> dict[str, Any]:
    """The big conversation, the one closest to 100 events, a live one, and others to open cold.

    Read straight from the sandbox with the bench's own token, latency off, before measuring.
    """
    sandbox_state = stack.sandbox("GET", "/_sandbox/state")
    world = sandbox_state["world"]
    big = world["big_conversation_id"]
    skip = {big, world.get("hostile_conversation_id")}
    ids: list[str] = []
    body = stack.api("/v1/conversations", page_size=100, order="asc")
    while True:
        ids += [c["id"] for c in embedded(body, "conversations")]
        following = body.get("_links", {}).get("next", {}).get("href")
        if not following:
            break
        body = stack.api(following)
    info: dict[str, dict[str, Any]] = {}
    for cid in ids:
        if cid in skip:
            continue
        state = stack.api(f"/v1/conversations/{cid}").get("state")
        events = stack.api(f"/v1/conversations/{cid}/events", page_size=100)
        count = len(embedded(events, "events"))
        if events.get("_links", {}).get("next"):
            count = 100 + 1  # more than a page: not a "~100 events" candidate worth paging
        members = len(embedded(stack.api(f"/v1/conversations/{cid}/members"), "members"))
        info[cid] = {"state": state, "events": count, "members": members}
    small = min(info, key=lambda cid: (abs(info[cid]["events"] - 100), cid))
    live = sorted(cid for cid, i in info.items() if i["state"] == "ACTIVE" and cid != small)
    if not live:
        raise StackError("the sandbox has no ACTIVE conversation to poll")
    poll = live[0]
    crowded = max(live, key=lambda cid: (info[cid]["members"], cid))  # for the members tab
    cold = sorted(cid for cid in info if cid not in (small, poll, crowded))
    random.Random(42).shuffle(cold)
    warmup, cold = cold[:4], cold[4:]
    if len(cold) < need:
        raise StackError(f"only {len(cold)} conversations to open cold; --visits {need} asked")
    return {
        "big": big,
        "big_events": sandbox_state["config"]["big_conversation_events"],
        "small": small,
        "small_events": info[small]["events"],
        "poll": poll,
        "poll_events": info[poll]["events"],
        "crowded": crowded,
        "crowded_members": info[crowded]["members"],
        "warmup": warmup,
        "cold": cold[:need],
    }


# --- the phases


def cache_seconds(args: argparse.Namespace) -> float:
    # UPSTREAM_CACHE_SECONDS defaults to the refresh interval.
    refresh = args.extra_env.get("DASHBOARD_REFRESH_SECONDS", REFRESH_SECONDS)
    return float(args.extra_env.get("UPSTREAM_CACHE_SECONDS", refresh))


def upstream_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    endpoints = Counter(after.get("by_endpoint", {}))
    endpoints.subtract(before.get("by_endpoint", {}))
    return {
        "requests": after.get("requests", 0) - before.get("requests", 0),
        "by_endpoint": {k: v for k, v in sorted(endpoints.items()) if v},
    }


def short_endpoint(name: str) -> str:
    return (
        name.removeprefix("GET ")
        .replace("/v1/conversations/{id}", "conv/{id}")
        .replace("/v1/conversations", "conversations")
    )


def phase_throughput(
    args: argparse.Namespace, stack: Stack, rec: load.Recorder, staff: list[load.Staff]
) -> dict[str, Any]:
    log(f"throughput: /healthz, then the list page, {args.threads} threads x {args.seconds:g} s")
    anonymous = [load.Staff(stack.dashboard_url, rec) for _ in range(args.threads)]
    for browser in anonymous:
        browser.get("warmup", "/healthz")
    cpu = stack.worker_cpu_seconds()
    healthz_seconds = load.closed_loop(
        anonymous, args.seconds, lambda b: b.get("healthz", "/healthz")
    )
    healthz_cpu = stack.worker_cpu_seconds() - cpu
    for browser in anonymous:
        browser.close()
    browsers = staff[: args.threads]
    for browser in browsers:
        browser.get("warmup", "/conversations/")
    before = stack.upstream_stats()
    cpu = stack.worker_cpu_seconds()
    list_seconds = load.closed_loop(
        browsers, args.seconds, lambda b: b.get("list-cached", "/conversations/")
    )
    list_cpu = stack.worker_cpu_seconds() - cpu
    upstream = upstream_delta(before, stack.upstream_stats())
    return {
        "healthz_cpu_ms": healthz_cpu * 1000 / max(len(rec.samples["healthz"]), 1),
        "list_cpu_ms": list_cpu * 1000 / max(len(rec.samples["list-cached"]), 1),
        "healthz_rps": len(rec.samples["healthz"]) / healthz_seconds,
        "list_rps": len(rec.samples["list-cached"]) / list_seconds,
        "list_upstream": upstream,
        "list_upstream_per_min": upstream["requests"] * 60 / list_seconds,
        "list_seconds": list_seconds,
    }


def phase_staff(
    args: argparse.Namespace,
    stack: Stack,
    rec: load.Recorder,
    staff: list[load.Staff],
    conversations: list[str],
) -> dict[str, Any]:
    log(
        f"staff: {args.staff} staff open {len(conversations)} conversations, each one once "
        "(list, detail, events tab, htmx tab switch)"
    )
    before = stack.upstream_stats()
    started = time.monotonic()
    shares = [conversations[i :: args.staff] for i in range(args.staff)]
    load.in_threads(args.staff, lambda i: load.staff_visits(staff[i], shares[i]))
    elapsed = time.monotonic() - started
    upstream = upstream_delta(before, stack.upstream_stats())
    kinds = ("list", "detail", "events-tab", "tab-switch")
    views = sum(len(rec.samples[k]) for k in kinds)
    return {
        "visits": len(conversations),
        "page_views": views,
        "seconds": elapsed,
        "rps": views / elapsed,
        "upstream": upstream,
        "upstream_per_view": upstream["requests"] / views,
        "upstream_per_visit": {
            short_endpoint(k): v / len(conversations) for k, v in upstream["by_endpoint"].items()
        },
    }


def phase_events(
    args: argparse.Namespace, stack: Stack, rec: load.Recorder, browser: load.Staff, world: dict
) -> dict[str, Any]:
    how = (
        "the cache flushed before each"
        if stack.cache == "redis"
        else f"{cache_seconds(args) + 0.3:g} s apart so the cache expired"
    )
    log(
        f"events: the events tab of the big and the small conversation, cold ({how}), "
        f"{args.events_rounds} rounds"
    )
    pair = [("big", world["big"]), ("small", world["small"])]
    for _name, cid in pair:  # compile the paths once before measuring
        browser.get("warmup", f"/conversations/{cid}/events/")
    for round_ in range(args.events_rounds):
        if stack.cache != "redis":
            time.sleep(cache_seconds(args) + 0.3)
        for name, cid in pair if round_ % 2 == 0 else pair[::-1]:
            stack.flush_cache()
            browser.get(f"events-cold-{name}", f"/conversations/{cid}/events/")
            browser.get(f"events-warm-{name}", f"/conversations/{cid}/events/")
    p50 = {name: report.percentile(rec.samples[f"events-cold-{name}"], 50) for name, _ in pair}
    return {"cold_how": how, "p50_big": p50["big"], "p50_small": p50["small"]}


def phase_polling(
    args: argparse.Namespace,
    stack: Stack,
    rec: load.Recorder,
    staff: list[load.Staff],
    conversation_id: str,
    tab: str,
    what: str = "one live conversation",
) -> dict[str, Any]:
    """`tab` "events" or "members", or "mixed": every other viewer on each."""
    shown = "Events or Members" if tab == "mixed" else tab
    log(
        f"polling: {args.viewers} viewers with the {shown} tab of {what} open, "
        f"both panels every {args.interval:g} s for {args.poll_seconds:g} s"
    )
    stack.flush_cache()
    kinds = {
        "events": ("events-poll", "header-poll"),
        "members": ("members-poll", "header-poll"),
        "mixed": ("events-poll", "members-poll", "header-poll"),
    }[tab]
    polls_before = sum(len(rec.samples[kind]) for kind in kinds)
    viewers = []
    for i in range(args.viewers):
        browser = load.Staff(stack.dashboard_url, rec)
        browser.share_login(staff[i % len(staff)])
        viewers.append(browser)
    opened = threading.Barrier(args.viewers + 1)
    started = threading.Event()
    until: list[float] = []
    rngs = [random.Random(1000 + i) for i in range(args.viewers)]

    def run(i: int) -> None:
        load.viewer(
            viewers[i],
            conversation_id,
            tab=("events", "members")[i % 2] if tab == "mixed" else tab,
            opened=opened,
            started=started,
            until=until,
            interval=args.interval,
            rng=rngs[i],
        )

    failure: list[BaseException] = []

    def guarded() -> None:
        try:
            load.in_threads(args.viewers, run)
        except BaseException as exc:
            failure.append(exc)

    runner = threading.Thread(target=guarded, daemon=True)
    runner.start()
    opened.wait(timeout=120)
    before = stack.upstream_stats()
    until.append(time.monotonic() + args.poll_seconds)
    started.set()
    runner.join()
    # Polls are sent in [start, start + poll_seconds): the rate is over that window.
    window = args.poll_seconds
    upstream = upstream_delta(before, stack.upstream_stats())
    for browser in viewers:
        browser.close()
    if failure:
        raise failure[0]
    per_interval = {
        short_endpoint(k): v * args.interval / window for k, v in upstream["by_endpoint"].items()
    }
    return {
        "window": window,
        "upstream": upstream,
        "per_interval": per_interval,
        "per_minute": upstream["requests"] * 60 / window,
        "polls": sum(len(rec.samples[kind]) for kind in kinds) - polls_before,
        "per_minute_by_endpoint": {
            short_endpoint(k): v * 60 / window for k, v in upstream["by_endpoint"].items()
        },
    }


def phase_stored(
    args: argparse.Namespace, stack: Stack, rec: load.Recorder, staff: list[load.Staff], world: dict
) -> dict[str, Any]:
    """Pages of conversations the store holds, filled as a new install fills it (backfill)."""
    log(
        f"stored: filling the store as a first start does: manage.py backfill --days "
        f"{args.backfill_days:g} (upstream latency off while it reads)"
    )
    stack.set_latency(0)
    began = time.monotonic()
    try:
        said = stack.manage("backfill", "--days", f"{args.backfill_days:g}").strip()
    finally:
        stack.set_latency(args.latency_ms)
    backfill_seconds = time.monotonic() - began
    log(f"stored: {said} ({backfill_seconds:.0f} s)")
    # The conversations the staff phase opened through the API, now in the store.
    conversations = world["cold"][: args.stored]
    how = "the cache flushed before each" if stack.cache == "redis" else "first open after backfill"
    log(
        f"stored: detail page and Events tab of {len(conversations)} stored conversations, cold "
        f"({how}) then warm, and the {world['big_events']:,}-event one's Events tab"
    )
    for i, browser in enumerate(staff):  # both workers compile the stored pages' templates
        cid = world["warmup"][i % len(world["warmup"])]
        browser.get("warmup", f"/conversations/{cid}/")
        browser.get("warmup", f"/conversations/{cid}/events/")
    browser = staff[0]
    before = stack.upstream_stats()
    from_store = 0
    for cid in conversations:
        for kind, path in (
            ("stored-detail", f"/conversations/{cid}/"),
            ("stored-events", f"/conversations/{cid}/events/"),
        ):
            stack.flush_cache()
            answer = browser.get(f"{kind}-cold", path)
            from_store += answer is not None and "From the event store" in answer.text
            browser.get(f"{kind}-warm", path)
    for _ in range(max(2, args.events_rounds // 4)):
        stack.flush_cache()
        browser.get("stored-events-big-cold", f"/conversations/{world['big']}/events/")
        browser.get("stored-events-big-warm", f"/conversations/{world['big']}/events/")
    upstream = upstream_delta(before, stack.upstream_stats())
    if not from_store:
        raise load.BenchError("no stored page said it reads the event store: was it filled?")
    return {
        "backfill": said,
        "backfill_seconds": backfill_seconds,
        "conversations": len(conversations),
        "cold_how": how,
        "from_store": from_store,
        "pages": 2 * len(conversations),
        "upstream": upstream,
    }


def phase_fed(
    args: argparse.Namespace, stack: Stack, rec: load.Recorder, staff: list[load.Staff]
) -> dict[str, Any]:
    """50 viewers of a conversation the store learns of from webhooks alone, while it is live.

    The sandbox signs and POSTs every event it creates to /webhooks/rtc (as Vonage does to an
    application's event_url); a conversation created now exists in the store only through them.
    A new event arrives every --feed-every s while the viewers watch, so their polls find news.
    No worker runs in the bench: every upstream call counted is a viewer's.
    """
    stack.webhooks(url=f"{stack.dashboard_url}/webhooks/rtc")
    created = stack.sandbox(
        "POST", "/_sandbox/conversations", json={"name": "bench-webhook-fed", "members": 4}
    )
    cid = created["id"]
    members = [
        m["id"]
        for m in embedded(stack.api(f"/v1/conversations/{cid}/members"), "members")
        if m.get("state") == "JOINED"
    ]
    stack.wait_webhooks()
    page = staff[0].get("warmup", f"/conversations/{cid}/events/")
    if page is None or "From the event store" not in page.text:
        raise load.BenchError(
            f"the webhook-fed conversation {cid} is not read from the store "
            f"(webhooks: {stack.webhooks()['stats']})"
        )
    stop = threading.Event()
    fed: list[int] = []

    def feed() -> None:
        n = 0
        while not stop.wait(args.feed_every):
            n += 1
            body = {"message_type": "text", "text": f"bench message {n}"}
            sender = {"from": members[n % len(members)]} if members else {}
            with contextlib.suppress(Exception):  # a failed injection only means less news
                stack.sandbox(
                    "POST",
                    f"/_sandbox/conversations/{cid}/events",
                    json={"type": "message", "body": body} | sender,
                )
                fed.append(n)

    feeder = threading.Thread(target=feed, name="feeder", daemon=True)
    feeder.start()
    fed_rec = load.Recorder()
    try:
        result = phase_polling(
            args, stack, fed_rec, staff, cid, "mixed", what="a webhook-fed conversation"
        )
    finally:
        stop.set()
        feeder.join()
    hooks = stack.wait_webhooks()
    for kind, values in fed_rec.samples.items():  # filed under their own names in the tables
        for value in values:
            rec.samples[f"fed-{kind}"].append(value)
        rec.statuses[f"fed-{kind}"].update(fed_rec.statuses[kind])
    news = fed_rec.statuses["events-poll"].get("200", 0)
    return result | {
        "conversation": cid,
        "events_fed": len(fed),
        "webhooks": hooks,
        "events_polls_with_news": news,
    }


def without_postgres(phase: str, postgres: str) -> dict[str, Any] | None:
    """A phase's answer when PostgreSQL does not answer (said, and skipped), else None."""
    reason = ingest.postgres_available(postgres)
    if reason is None:
        return None
    log(f"{phase}: skipped, PostgreSQL does not answer at {postgres}: {reason}")
    return {"skipped": f"PostgreSQL does not answer at {postgres} ({reason})"}


def failed(exc: BaseException) -> dict[str, Any]:
    """A phase's answer when it failed: its first line, in the report."""
    return {"skipped": f"failed: {str(exc).splitlines()[0] if str(exc) else exc!r}"}


def phase_ingest(args: argparse.Namespace) -> dict[str, Any]:
    """bench/ingest.py's measurement, on its own gunicorn and PostgreSQL database, after the
    main stack has stopped (so the two do not share the CPU)."""
    skipped = without_postgres("ingest", args.postgres)
    if skipped is not None:
        return skipped
    ingest_args = ingest.parse_args(
        [
            *("--seconds", f"{args.ingest_seconds:g}"),
            *("--senders", str(args.ingest_senders)),
            *("--workers", str(args.workers)),
            *("--sync-requests", str(args.sync_requests)),
            *("--database", args.ingest_database),
            *("--postgres", args.postgres),
        ]
    )
    try:
        return ingest.measure(ingest_args, log=log)
    except (StackError, psycopg.Error) as exc:
        log(f"ingest: failed: {exc}")
        return failed(exc)


def phase_push(args: argparse.Namespace) -> dict[str, Any]:
    """bench/push.py's measurement (issue 10), on its own stack: gunicorn with uvicorn workers,
    PostgreSQL, Redis for the cache and the fan-out, after the main stack has stopped."""
    push_args = push.parse_args(
        [
            *("--pages", args.push_pages),
            *("--webhooks", str(args.push_webhooks)),
            *("--spacing", f"{args.push_spacing:g}"),
            *("--idle-streams", str(args.push_idle_streams)),
            *("--idle-seconds", f"{args.push_idle_seconds:g}"),
            *("--hold-streams", str(args.push_hold_streams)),
            *("--hold-seconds", f"{args.push_hold_seconds:g}"),
            *("--latency-ms", str(args.latency_ms)),
            *("--workers", str(args.workers)),
            *("--redis-url", args.redis_url),
            *("--database", args.push_database),
            *("--postgres", args.postgres),
            *(["--with-header"] if args.push_with_header else []),
            *(["--keep-logs"] if args.keep_logs else []),
            *(f"--env={k}={v}" for k, v in args.extra_env.items()),
        ]
    )
    try:
        return push.measure(push_args, log=log)
    except (StackError, load.BenchError, psycopg.Error) as exc:
        log(f"push: failed: {exc}")
        return failed(exc)


def phase_audit(args: argparse.Namespace) -> dict[str, Any]:
    """bench/audit.py's measurement (issue 12): the page p50 with the audit log on and off, on
    two servers of its own (SQLite, as the main stack), after the other stacks have stopped."""
    audit_args = audit.parse_args(
        [
            *("--rounds", str(args.audit_rounds)),
            *("--workers", str(args.workers)),
            *("--redis-url", args.redis_url),
            *(["--keep-logs"] if args.keep_logs else []),
            *(f"--env={k}={v}" for k, v in args.extra_env.items()),
        ]
    )
    try:
        return audit.measure(audit_args, log=log)
    except (StackError, load.BenchError, psycopg.Error) as exc:
        log(f"audit: failed: {exc}")
        return failed(exc)


def phase_search(args: argparse.Namespace) -> dict[str, Any]:
    """bench/search.py's measurement (issue 11), on its own stack and database, last."""
    skipped = without_postgres("search", args.postgres)
    if skipped is not None:
        return skipped
    search_args = search.parse_args(
        [
            *("--database", args.search_database),
            *("--postgres", args.postgres),
            *("--events", str(args.search_events)),
            *("--export-events", str(args.search_export_events)),
            *("--rounds", str(args.search_rounds)),
            *("--timeline-rounds", str(args.search_timeline_rounds)),
            *("--formats", args.search_formats),
            *("--latency-ms", str(args.latency_ms)),
            *("--workers", str(args.workers)),
            *("--redis-url", args.redis_url),
            *("--output", str(args.output)),
            *(["--reseed"] if args.search_reseed else []),
            *(["--keep-logs"] if args.keep_logs else []),
            *(f"--env={k}={v}" for k, v in args.extra_env.items()),
        ]
    )
    try:
        return search.measure(search_args, log=log)
    except (StackError, load.BenchError, psycopg.Error) as exc:
        log(f"search: failed: {exc}")
        return failed(exc)


def search_tables(r: dict[str, Any]) -> dict[str, Any]:
    figures = r.get("search") or {"skipped": "not run"}
    if "skipped" in figures:
        return {
            "targets": [["Search, exports, timeline (issue 11)", "-", figures["skipped"], "SKIP"]],
            "details": [],
            "figures": [],
        }
    return {
        "targets": search.targets(figures),
        "details": search.details(figures),
        "figures": search.figures_rows(figures),
    }


def push_tables(r: dict[str, Any]) -> dict[str, Any]:
    pushed = r.get("push") or {"skipped": "not run"}
    if "skipped" in pushed:
        return {
            "targets": [
                ["Push (issue 10): event to screen, streams", "-", pushed["skipped"], "SKIP"]
            ],
            "details": [],
            "figures": [],
        }
    return {
        "targets": push.targets(pushed),
        "details": push.details(pushed),
        "figures": push.figures_rows(pushed),
    }


# --- the tables


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def build_tables(args: argparse.Namespace, stack: Stack, r: dict[str, Any]) -> dict[str, Any]:
    rec: load.Recorder = r["recorder"]
    s = rec.samples
    latency = args.latency_ms
    rows = []

    detail_target = (1.25 * latency + 15) / 1000
    detail_p50 = report.percentile(s["detail"], 50)
    rows.append(
        [
            f"Detail page p50, cold ({r['staff']['visits']} distinct conversations, "
            f"{args.staff} staff at once; 2 upstream reads each)",
            f"<= 1.25 x {latency} ms + 15 ms = {report.ms(detail_target)}",
            report.ms(detail_p50),
            verdict(detail_p50 <= detail_target),
        ]
    )

    per_interval = r["polling"]["per_interval"]
    worst = max(per_interval.values(), default=0.0)
    breakdown = ", ".join(f"{k} {v:.2f}" for k, v in per_interval.items())
    rows.append(
        [
            f"{args.viewers} viewers polling one conversation every {args.interval:g} s for "
            f"{r['polling']['window']:.0f} s: upstream calls per endpoint per {args.interval:g} s",
            "<= 2",
            f"{worst:.2f} ({breakdown})",
            verdict(worst <= 2),
        ]
    )

    members = r["members"]
    events_per_minute = r["polling"]["per_minute"]
    breakdown = ", ".join(f"{k} {v:.0f}" for k, v in members["per_minute_by_endpoint"].items())
    rows.append(
        [
            f"{args.viewers} viewers with the Members tab of a {r['world']['crowded_members']}-"
            f"member conversation open, refreshing every {args.interval:g} s: upstream calls a "
            f"minute (member records re-read only when their state changes)",
            f"<= the Events tab's ({events_per_minute:.0f})",
            f"{members['per_minute']:.0f} ({breakdown})",
            verdict(members["per_minute"] <= events_per_minute),
        ]
    )

    poll_p50 = report.percentile(s["events-poll"], 50)
    nothing_new = rec.statuses["events-poll"].get("204", 0)
    rows.append(
        [
            f"Events poll with nothing new (204), from the cache: p50 "
            f"({nothing_new} of {len(s['events-poll'])} answered 204)",
            "<= 10 ms",
            report.ms(poll_p50),
            verdict(poll_p50 <= 0.010),
        ]
    )

    t = r["throughput"]
    ratio = t["list_rps"] / t["healthz_rps"]
    rows.append(
        [
            f"Cached list page throughput vs the bare /healthz view ({args.threads} threads, "
            f"{args.seconds:g} s each)",
            ">= 40%",
            f"{ratio:.0%} ({t['list_rps']:.0f} vs {t['healthz_rps']:.0f} req/s)",
            verdict(ratio >= 0.40),
        ]
    )

    memory = r["memory"]
    peak = max((m["hwm_mb"] for m in memory), default=float("nan"))
    rows.append(
        [
            f"Memory per worker, peak RSS (VmHWM) of {len(memory)} workers",
            f"<= {MEMORY_TARGET_MB} MB",
            " / ".join(f"{m['hwm_mb']:.0f} MB" for m in memory) or "-",
            verdict(peak <= MEMORY_TARGET_MB),
        ]
    )

    e = r["events"]
    events_ratio = e["p50_big"] / e["p50_small"]
    rows.append(
        [
            f"Events tab p50, {r['world']['big_events']:,} events vs {r['world']['small_events']} "
            f"events, cold ({e['cold_how']}; {args.events_rounds} each)",
            "ratio ~1 (0.8-1.25)",
            f"{events_ratio:.2f} ({report.ms(e['p50_big'])} vs {report.ms(e['p50_small'])})",
            verdict(0.8 <= events_ratio <= 1.25),
        ]
    )

    rows += stored_targets(args, r)
    pushed = push_tables(r)
    rows += pushed["targets"]
    rows += ingest_targets(r["ingest"])
    audited = audit.run_tables(r.get("audit") or {"skipped": "not run"})
    rows += audited["targets"]
    searched = search_tables(r)
    rows += searched["targets"]

    detail_rows = []
    labels = {
        "healthz": "/healthz (baseline: bare JsonResponse, no DB, no login)",
        "list-cached": "list page, cached (closed loop)",
        "login": "login (GET form + POST)",
        "list": "staff: list page",
        "detail": "staff: detail page (cold)",
        "events-tab": "staff: events tab page (events read cold)",
        "tab-switch": "staff: htmx tab switch to members (cached)",
        "events-cold-big": "events tab, big conversation, cold",
        "events-cold-small": "events tab, small conversation, cold",
        "events-warm-big": "events tab, big conversation, cached",
        "events-warm-small": "events tab, small conversation, cached",
        "viewer-open": "viewers: events or members tab opened",
        "events-poll": "viewers: events poll (/events/poll/)",
        "members-load": "viewers: members panel's first load (each member's record)",
        "members-poll": "viewers: members panel refresh (/members/panel/)",
        "header-poll": "viewers: header poll (/header/)",
        "stored-detail-cold": "stored: detail page, cold",
        "stored-detail-warm": "stored: detail page, again",
        "stored-events-cold": "stored: events tab, cold",
        "stored-events-warm": "stored: events tab, again",
        "stored-events-big-cold": "stored: events tab of the big conversation, cold",
        "stored-events-big-warm": "stored: events tab of the big conversation, again",
        "fed-viewer-open": "webhook-fed: events or members tab opened",
        "fed-events-poll": "webhook-fed: events poll",
        "fed-members-load": "webhook-fed: members panel's first load",
        "fed-members-poll": "webhook-fed: members panel refresh",
        "fed-header-poll": "webhook-fed: header poll",
    }
    rps = {
        "healthz": t["healthz_rps"],
        "list-cached": t["list_rps"],
    }
    for kind, label in labels.items():
        values = s.get(kind) or []
        if not values:
            continue
        statuses = ", ".join(f"{k} x{v}" for k, v in sorted(rec.statuses[kind].items()))
        detail_rows.append(
            [
                label,
                str(len(values)),
                report.ms(report.percentile(values, 50)),
                report.ms(report.percentile(values, 95)),
                report.ms(report.percentile(values, 99)),
                f"{rps[kind]:.0f}" if kind in rps else "",
                statuses,
            ]
        )

    ing = r["ingest"]
    if "skipped" not in ing:
        detail_rows.append(
            [
                "ingest: signed webhook POST /webhooks/rtc (PostgreSQL)",
                str(ing["requests"]),
                report.ms(ing["p50"]),
                report.ms(report.percentile(ing["latencies"], 95)),
                report.ms(ing["p99"]),
                f"{ing['rate']:.0f}",
                ", ".join(f"{k} x{v}" for k, v in ing["statuses"].items()),
            ]
        )

    detail_rows += pushed["details"]
    detail_rows += searched["details"]

    staff = r["staff"]
    polling = r["polling"]
    jwt_seen = r["upstream_total"].get("jwt_ids_seen")
    healthz_p50 = report.percentile(s["healthz"], 50)
    list_p50 = report.percentile(s["list-cached"], 50)
    figures = [
        [
            "Baseline /healthz",
            f"p50 {report.ms(healthz_p50)}, {t['healthz_rps']:.0f} req/s",
        ],
        [
            "Cached list page vs baseline",
            f"p50 {report.ms(list_p50)} ({list_p50 / healthz_p50:.1f}x the baseline's), "
            f"{t['list_rps']:.0f} req/s ({ratio:.0%}); upstream "
            f"{t['list_upstream_per_min']:.0f} calls/min while serving it",
        ],
        [
            "Worker CPU per request (gunicorn workers' utime+stime / requests)",
            f"/healthz {t['healthz_cpu_ms']:.2f} ms, cached list page {t['list_cpu_ms']:.2f} ms "
            f"({t['list_cpu_ms'] / t['healthz_cpu_ms']:.1f}x)",
        ],
        [
            "Staff phase throughput",
            f"{staff['page_views']} page views in {staff['seconds']:.1f} s = "
            f"{staff['rps']:.1f} req/s with {args.staff} staff",
        ],
        [
            "Upstream calls per page view (staff phase)",
            f"{staff['upstream_per_view']:.2f}; per conversation opened: "
            + ", ".join(f"{k} {v:.2f}" for k, v in staff["upstream_per_visit"].items()),
        ],
        [
            "Upstream calls per minute of polling",
            f"{polling['per_minute']:.0f}/min for {args.viewers} viewers "
            f"({polling['per_minute'] / args.viewers:.2f} per viewer-minute; "
            f"{polling['polls']} polls in {polling['window']:.0f} s)",
        ],
        [
            "JWTs signed by the dashboard (distinct jti seen upstream)",
            (
                f"{jwt_seen - stack.tokens_minted} over the run "
                f"({r['upstream_total']['requests']} upstream calls by the dashboard; "
                f"{args.workers} workers, "
                f"TTL {JWT_TTL_SECONDS} s: one per worker per ~{JWT_TTL_SECONDS - 60} s; "
                "the backfill command, a process of its own, signs one more and its reads "
                "are counted)"
            )
            if jwt_seen is not None
            else "not available from this sandbox",
        ],
        *stored_figures(args, r),
        *pushed["figures"],
        *audited["figures"],
        *searched["figures"],
        [
            "Memory per worker now (VmRSS)",
            " / ".join(f"{m['rss_mb']:.0f} MB" for m in memory) or "-",
        ],
    ]
    return {"targets": rows, "details": detail_rows, "figures": figures}


STORED_TARGET_SECONDS = 0.025


def stored_targets(args: argparse.Namespace, r: dict[str, Any]) -> list[list[str]]:
    s = r["recorder"].samples
    stored, fed = r["stored"], r["fed"]
    rows = []
    for kind, what in (("stored-detail", "Detail page"), ("stored-events", "Events tab")):
        p50 = report.percentile(s[f"{kind}-cold"], 50)
        warm = report.percentile(s[f"{kind}-warm"], 50)
        rows.append(
            [
                f"{what} of a stored conversation, p50 cold ({stored['cold_how']}; "
                f"{stored['conversations']} conversations, {args.latency_ms} ms upstream latency)",
                f"< {report.ms(STORED_TARGET_SECONDS)}",
                f"{report.ms(p50)} (again: {report.ms(warm)})",
                verdict(p50 < STORED_TARGET_SECONDS),
            ]
        )
    breakdown = ", ".join(f"{k} {v:.0f}" for k, v in fed["per_minute_by_endpoint"].items())
    rows.append(
        [
            f"{args.viewers} viewers of a webhook-fed live conversation (Events or Members tab "
            f"and header, every {args.interval:g} s for {fed['window']:.0f} s; a new event every "
            f"{args.feed_every:g} s): upstream calls a minute (no worker runs: all are viewers')",
            "0 (the reconciler's only)",
            f"{fed['per_minute']:.0f}" + (f" ({breakdown})" if breakdown else ""),
            verdict(fed["upstream"]["requests"] == 0),
        ]
    )
    return rows


def ingest_targets(ing: dict[str, Any]) -> list[list[str]]:
    names = (
        "Webhook ingestion on PostgreSQL: signed webhooks/s sustained",
        "Webhook ingestion latency p99 (p50)",
        "Webhook ingestion: accepted events lost or doubled",
    )
    targets = (f">= {ingest.TARGET_PER_SECOND}", f"< {report.ms(ingest.TARGET_P99_SECONDS)}", "0")
    if "skipped" in ing:
        said = [f"skipped: {ing['skipped']}", "skipped", "skipped"]
        return [[n, t, m, "SKIP"] for n, t, m in zip(names, targets, said, strict=True)]
    ok = ingest.passed(ing)
    return [
        [
            f"{names[0]} ({ing['senders']} senders, {ing['seconds']:.0f} s)",
            targets[0],
            f"{ing['rate']:.0f}",
            verdict(ok["rate"]),
        ],
        [
            names[1],
            targets[1],
            f"{report.ms(ing['p99'])} ({report.ms(ing['p50'])})",
            verdict(ok["p99"]),
        ],
        [
            names[2],
            targets[2],
            f"{ing['missing']} lost, {ing['doubled']} doubled ("
            + ", ".join(f"{k}: {v}" for k, v in ing["statuses"].items())
            + ")",
            verdict(ok["intact"]),
        ],
    ]


def stored_figures(args: argparse.Namespace, r: dict[str, Any]) -> list[list[str]]:
    stored, fed = r["stored"], r["fed"]
    hooks = fed["webhooks"]
    rows = [
        [
            "Store filled by `manage.py backfill` (latency off)",
            f"{stored['backfill']} ({stored['backfill_seconds']:.0f} s)",
        ],
        [
            "Upstream calls while opening stored pages",
            f"{stored['upstream']['requests']} for {stored['pages']} pages "
            f"({stored['from_store']} said they read the event store)",
        ],
        [
            "Webhook-fed conversation",
            f"{fed['conversation']}: {fed['events_fed']} events added while watched; the "
            f"sandbox sent {hooks.get('sent', 0)} webhooks, {hooks.get('delivered', 0)} "
            f"delivered, {hooks.get('rejected', 0)} rejected, {hooks.get('failed', 0)} failed; "
            f"{fed['events_polls_with_news']} events polls found news ({fed['polls']} polls)",
        ],
    ]
    ing = r["ingest"]
    if "skipped" not in ing:
        rows.append(
            [
                "Webhook ingestion (PostgreSQL database " + ing["database"] + ")",
                f"{ing['requests']} requests in {ing['seconds']:.1f} s; events stored "
                f"{ing['stored']}, distinct {ing['distinct']}; gunicorn workers' CPU "
                f"{ing['cpu_ms']:.2f} ms per webhook (so at most "
                f"{ing['workers'] * 1000 / max(ing['cpu_ms'], 0.01):.0f}/s on {ing['workers']} "
                "idle cores)",
            ]
        )
    return rows


TARGET_HEADERS = ("Scenario", "Target", "Measured", "Result")
DETAIL_HEADERS = ("Request", "n", "p50", "p95", "p99", "req/s", "statuses")
FIGURE_HEADERS = ("Figure", "Measured")


def sync_requests(args: argparse.Namespace) -> str:
    return str(args.sync_requests or args.extra_env.get("SYNC_REQUESTS_PER_PROCESS", 16))


def describe_setup(args: argparse.Namespace, stack: Stack, world: dict[str, Any]) -> str:
    cache = (
        f"Redis ({args.redis_url}, flushed first)"
        if stack.cache == "redis"
        else "the default database cache (SQLite, shared by the workers of this host)"
    )
    return (
        f"upstream latency {args.latency_ms} ms; gunicorn {args.workers} uvicorn workers "
        f"({sync_requests(args)} synchronous views at once each); cache {cache}; DEBUG off; "
        "SQLite; the sandbox signs and POSTs its new events to /webhooks/rtc in the webhook-fed "
        "phase; push "
        + ("skipped; " if args.no_push else f"on PostgreSQL ({args.push_database}) and Redis; ")
        + "ingestion "
        + ("skipped; " if args.no_ingest else f"on PostgreSQL ({args.ingest_database}); ")
        + ("audit skipped; " if args.no_audit else "audit on two servers of its own (SQLite); ")
        + "search "
        + ("skipped; " if args.no_search else f"on PostgreSQL ({args.search_database}); ")
        + "".join(f"{k}={v}; " for k, v in args.extra_env.items())
        + f"{os.cpu_count()} CPUs; Python {platform.python_version()}; "
        f"sandbox seed 42, big {world['big']}, small {world['small']}, polled {world['poll']}"
    )


def render(tables: dict[str, Any], markdown: bool) -> str:
    draw = report.markdown_table if markdown else report.text_table
    return "\n\n".join(
        [
            draw(TARGET_HEADERS, tables["targets"]),
            draw(DETAIL_HEADERS, tables["details"]),
            draw(FIGURE_HEADERS, tables["figures"]),
        ]
    )


# --- main


def write_results(
    args: argparse.Namespace, began: float, setup: str, tables: dict[str, Any]
) -> None:
    """Print the tables, and write them as Markdown to results.md."""
    elapsed = time.monotonic() - began
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print()
    print(f"Dashboard benchmark, {stamp}, {elapsed:.0f} s")
    print(setup)
    print()
    print(render(tables, markdown=False))
    args.output.mkdir(parents=True, exist_ok=True)
    command = "make bench" + (f" BENCH_ARGS='{' '.join(sys.argv[1:])}'" if sys.argv[1:] else "")
    (args.output / "results.md").write_text(
        f"# Dashboard benchmark\n\n`{command}` on {stamp} ({elapsed:.0f} s)\n\n{setup}\n\n"
        + render(tables, markdown=True)
        + "\n"
    )


def push_only(args: argparse.Namespace, began: float) -> int:
    """--push-only: the push phase alone, reported in the same three tables."""
    try:
        pushed = phase_push(args)
    except KeyboardInterrupt:
        log("interrupted: stopping everything")
        return 130
    tables = push_tables({"push": pushed})
    load_average = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    setup = (
        f"push phase only: upstream latency {args.latency_ms} ms; {os.cpu_count()} CPUs "
        f"(load average now {load_average}); Python {platform.python_version()}"
        + "".join(f"; {k}={v}" for k, v in args.extra_env.items())
    )
    write_results(args, began, setup, tables)
    raw = {k: v for k, v in pushed.items()}
    (args.output / "results.json").write_text(json.dumps(raw, indent=1, default=str))
    print(f"\nWritten: {args.output / 'results.md'} and results.json")
    missed = [row[0] for row in tables["targets"] if row[-1] == "MISS"]
    return 1 if (missed and args.strict) else 0


def search_only(args: argparse.Namespace, began: float) -> int:
    """--search-only: the search phase alone, reported in the same three tables."""
    try:
        figures = phase_search(args)
    except KeyboardInterrupt:
        log("interrupted: stopping everything")
        return 130
    tables = search_tables({"search": figures})
    load_average = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    setup = (
        f"search phase only: {os.cpu_count()} CPUs (load average now {load_average}); "
        f"Python {platform.python_version()}"
        + "".join(f"; {k}={v}" for k, v in args.extra_env.items())
    )
    write_results(args, began, setup, tables)
    (args.output / "results.json").write_text(
        json.dumps(search.raw(figures), indent=1, default=str)
    )
    print(f"\nWritten: {args.output / 'results.md'} and results.json")
    missed = [row[0] for row in tables["targets"] if row[-1] == "MISS"]
    return 1 if (missed and args.strict) else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.cache == "auto":
        args.cache = "redis" if redis_available(args.redis_url) else "database"
        if args.cache == "database":
            log(f"Redis does not answer at {args.redis_url}: using the default database cache")
    elif args.cache == "redis" and not redis_available(args.redis_url):
        log(f"Redis does not answer at {args.redis_url}")
        return 2

    def on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started in background
    began = time.monotonic()
    stack = Stack(
        latency_ms=args.latency_ms,
        cache=args.cache,
        redis_url=args.redis_url,
        workers=args.workers,
        sync_requests=args.sync_requests,
        keep_logs=args.keep_logs,
        extra_env=args.extra_env,
        webhook_secret=secrets.token_urlsafe(32),
    )
    results: dict[str, Any] = {}
    rec = load.Recorder()
    staff: list[load.Staff] = []
    if args.search_only:
        return search_only(args, began)
    if args.push_only:
        return push_only(args, began)
    try:
        log(f"starting the sandbox and the dashboard (in {stack.tmp})")
        stack.start(conversations=300, big_events=10_000)
        log(f"sandbox {stack.sandbox_url}, dashboard {stack.dashboard_url}")
        stack.set_latency(0)
        world = discover(stack, args.visits)
        stack.set_latency(args.latency_ms)
        discovered = stack.upstream_stats()  # the dashboard's calls are counted from here

        count = max(args.threads, args.staff, 1)
        staff = [load.Staff(stack.dashboard_url, rec) for _ in range(count)]
        log(f"logging in {count} staff sessions")
        load.in_threads(count, lambda i: staff[i].login(STAFF_USERNAME, stack.password))
        for i, browser in enumerate(staff):  # both workers load their templates and code paths
            cid = world["warmup"][i % len(world["warmup"])]
            browser.get("warmup", f"/conversations/{cid}/")
            browser.get("warmup", f"/conversations/{cid}/events/")
        stack.flush_cache()

        results["throughput"] = phase_throughput(args, stack, rec, staff)
        results["staff"] = phase_staff(args, stack, rec, staff, world["cold"])
        results["events"] = phase_events(args, stack, rec, staff[0], world)
        results["polling"] = phase_polling(args, stack, rec, staff, world["poll"], "events")
        results["members"] = phase_polling(args, stack, rec, staff, world["crowded"], "members")
        # The store is filled from here on: the phases above measure pages read from the API.
        results["stored"] = phase_stored(args, stack, rec, staff, world)
        results["fed"] = phase_fed(args, stack, rec, staff)
        results["memory"] = stack.worker_memory()
        results["upstream_total"] = upstream_delta(discovered, stack.upstream_stats())
        results["upstream_total"]["jwt_ids_seen"] = stack.upstream_stats().get("jwt_ids_seen")
        results["world"] = world
        results["recorder"] = rec
        for browser in staff:
            browser.close()
        stack.close()
        results["push"] = {"skipped": "--no-push"} if args.no_push else phase_push(args)
        results["ingest"] = {"skipped": "--no-ingest"} if args.no_ingest else phase_ingest(args)
        results["audit"] = {"skipped": "--no-audit"} if args.no_audit else phase_audit(args)
        results["search"] = {"skipped": "--no-search"} if args.no_search else phase_search(args)
        tables = build_tables(args, stack, results)
        setup = describe_setup(args, stack, world)
    except KeyboardInterrupt:
        log("interrupted: stopping everything")
        return 130
    except (StackError, load.BenchError) as exc:
        log(f"failed: {exc}")
        for name in ("gunicorn.log", "sandbox.log"):
            tail = stack.log_tail(name)
            if tail:
                log(f"last lines of {name}:\n{tail}")
        return 1
    finally:
        for browser in staff:
            browser.close()
        stack.close()

    write_results(args, began, setup, tables)
    raw = {k: v for k, v in results.items() if k != "recorder"}
    raw["ingest"] = {k: v for k, v in results["ingest"].items() if k != "latencies"}
    raw["audit"] = {k: v for k, v in results["audit"].items() if k not in ("samples", "paired")}
    raw["search"] = search.raw(results["search"])
    raw["samples_ms"] = {k: [round(x * 1000, 2) for x in v] for k, v in rec.samples.items()}
    raw["statuses"] = {k: dict(v) for k, v in rec.statuses.items()}
    (args.output / "results.json").write_text(json.dumps(raw, indent=1, default=str))
    print(f"\nWritten: {args.output / 'results.md'} and results.json")
    missed = [row[0] for row in tables["targets"] if row[-1] == "MISS"]  # not SKIP
    return 1 if (missed and args.strict) else 0


if __name__ == "__main__":
    sys.exit(main())
