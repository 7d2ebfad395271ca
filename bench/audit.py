"""Audit benchmark (issue 12): what recording every look costs a page, audit log on against off.

    .venv/bin/python bench/audit.py [--database sqlite|NAME] [--rounds 400]

Two dashboards under gunicorn (uvicorn workers, as production) serve one database: one with the
audit log on (DASHBOARD_AUDIT=true, the default), the other with it off. The store is filled from
the sandbox (`manage.py backfill`, as a first start does), so pages read no upstream API. One
client opens pages on the two servers in turn, request by request (on, off, on, off...): whatever
drifts meanwhile (the machine's load, the database's caches) falls on both alike. Requests:

- `first`: a stored conversation's page, the first time a session opens it: an audit entry, and
  the session remembers the conversation (a session write), so its polls are not new views;
- `page`: the same pages opened again (each an audit entry, no session write): the steady state;
- `poll`: their header panel, as it polls: recorded by neither (read from the session only).

The target is on `page`: p50 with the log on less than 1 ms above p50 with it off. The median of
the paired differences (each request on against the next off) is given beside it, and the
entries written are counted in the database (one per page view, none per poll).
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

if __package__ in (None, ""):  # run as a script: `python bench/audit.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import ingest, load
from bench.report import ms, percentile, text_table
from bench.stack import STAFF_USERNAME, Stack, StackError, redis_available

TARGET_P50_DIFFERENCE = 0.001  # seconds: page p50 with the audit log on, above off
KINDS = ("first", "page", "poll")
WARMUP_VIEWS = 3
SERVERS = ("on", "off")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/audit.py", description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--rounds", type=int, default=400, help="pages and polls per server (400)")
    add("--conversations", type=int, default=20, help="stored conversations opened (20)")
    add("--sessions", type=int, default=5,
        help="sessions per server that open each conversation a first time (5)")  # fmt: skip
    add("--workers", type=int, default=2, help="gunicorn (uvicorn) workers per server (2)")
    add("--redis-url", default="redis://127.0.0.1:6379/14", help="the cache (flushed)")
    add("--database", default="sqlite",
        help="`sqlite` (default: a file in the temporary directory, as the main bench) or a "
        "PostgreSQL database name, dropped and created")  # fmt: skip
    add("--postgres", default="postgres://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL admin connection")  # fmt: skip
    add("--env", action="append", default=[], metavar="NAME=VALUE",
        help="a setting for both dashboards (repeatable)")  # fmt: skip
    add("--aa", action="store_true",
        help="both servers with the audit log on: the noise floor of the comparison")  # fmt: skip
    add("--keep-logs", action="store_true", help="keep the temporary directory and its logs")
    args = parser.parse_args(argv)
    if args.sessions < 1 or args.rounds < 1 or args.conversations < 3:
        parser.error("--sessions and --rounds must be 1 or more, --conversations 3 or more")
    args.extra_env = dict(item.split("=", 1) for item in args.env)
    return args


class Servers:
    """The main stack (audit on) and a second gunicorn on the same database (audit off)."""

    def __init__(self, args: argparse.Namespace, log: Callable[[str], None]) -> None:
        self.args = args
        self.log = log
        self.database = "SQLite"
        self.postgres_url = ""
        env = {"LOG_LEVEL": "WARNING", "ACCESS_LOG_LEVEL": "WARNING"}
        if args.database != "sqlite":
            reason = ingest.postgres_available(args.postgres)
            if reason is not None:
                raise StackError(f"PostgreSQL does not answer at {args.postgres}: {reason}")
            self.postgres_url = ingest.recreate_database(args.postgres, args.database)
            env["DATABASE_URL"] = self.postgres_url
            self.database = f"PostgreSQL ({args.database})"
        redis = redis_available(args.redis_url)
        self.cache = "Redis" if redis else "database table"
        self.on = Stack(
            latency_ms=0,
            cache="redis" if redis else "database",
            redis_url=args.redis_url,
            workers=args.workers,
            keep_logs=args.keep_logs,
            extra_env=env | args.extra_env | {"DASHBOARD_AUDIT": "true"},
        )
        # The second server: its own process and log only, the first one's files and database.
        self.off = Stack(
            latency_ms=0,
            cache="database",  # never flushes the shared Redis when it stops
            redis_url=args.redis_url,
            workers=args.workers,
            keep_logs=args.keep_logs,
            tmp=self.on.tmp / "audit-off",
        )

    def start(self) -> None:
        self.log(f"audit: starting the sandbox and the dashboard on {self.database}")
        self.on.start(conversations=max(30, self.args.conversations + 5), big_events=50)
        self.log("audit: filling the store (manage.py backfill --days 31)")
        self.log(f"audit: {self.on.manage('backfill', '--days', '31').strip()}")
        self.off.tmp.mkdir()
        self.off.sandbox_url = self.on.sandbox_url
        audit = "true" if self.args.aa else "false"
        self.off._start_gunicorn(self.on.django_env() | {"DASHBOARD_AUDIT": audit})
        self.log(f"audit: on {self.on.dashboard_url}, off {self.off.dashboard_url}")

    def close(self) -> None:
        self.off.close()
        self.on.close()
        if self.postgres_url:
            with (
                contextlib.suppress(psycopg.Error),
                psycopg.connect(self.args.postgres, autocommit=True) as connection,
            ):
                connection.execute(f'DROP DATABASE IF EXISTS "{self.args.database}" WITH (FORCE)')

    def entries(self) -> Counter[str]:
        """Audit entries by action, read from the database."""
        query = "SELECT action, COUNT(*) FROM conversations_auditentry GROUP BY action"
        if self.postgres_url:
            with psycopg.connect(self.postgres_url) as connection:
                return Counter(dict(connection.execute(query).fetchall()))
        with contextlib.closing(sqlite3.connect(self.on.tmp / "bench.sqlite3")) as connection:
            return Counter(dict(connection.execute(query).fetchall()))


def stored_conversations(stack: Stack, count: int) -> list[str]:
    body = stack.api("/v1/conversations", page_size=100, order="asc")
    found = [c["id"] for c in body.get("_embedded", {}).get("conversations", [])]
    if len(found) < count:
        raise StackError(f"the sandbox has {len(found)} conversations, {count} asked")
    return found[:count]


def measure(args: argparse.Namespace, log: Callable[[str], None] = print) -> dict[str, Any]:
    servers = Servers(args, log)
    recorder = load.Recorder()
    browsers: list[load.Staff] = []

    def browser(name: str) -> load.Staff:
        stack = servers.on if name == "on" else servers.off
        staff = load.Staff(stack.dashboard_url, recorder)
        staff.login(STAFF_USERNAME, servers.on.password)
        browsers.append(staff)
        return staff

    try:
        servers.start()
        conversations = stored_conversations(servers.on, args.conversations)
        paired: dict[str, list[float]] = {kind: [] for kind in KINDS}

        def pair(kind: str, staff: dict[str, load.Staff], path: str, headers=None) -> None:
            took = {}
            # Each server first in every other pair: what one request leaves behind (the
            # audited server's write after its response) falls on both alike.
            first = len(paired[kind]) % 2
            for name in (SERVERS[first], SERVERS[1 - first]):
                before = len(recorder.samples[f"{name}:{kind}"])
                answer = staff[name].get(f"{name}:{kind}", path, headers)
                # 286: the header of a call that is over ("stop polling", with its last state).
                if answer is None or answer.status_code not in (200, 286):
                    status = answer.status_code if answer is not None else "no answer"
                    raise load.BenchError(f"{name}: {path} answered {status}")
                took[name] = recorder.samples[f"{name}:{kind}"][before]
            paired[kind].append(took["on"] - took["off"])

        log("audit: warming up both servers (3 page views each)")
        warm = {name: browser(name) for name in SERVERS}
        for step in ("", "header/"):  # the pages, then their polls
            for cid in conversations[:WARMUP_VIEWS]:
                for name in SERVERS:
                    warm[name].get("warmup", f"/conversations/{cid}/{step}", load.HTMX_TABS)
        log(f"audit: {args.sessions} sessions per server open {len(conversations)} pages first")
        for _ in range(args.sessions):
            staff = {name: browser(name) for name in SERVERS}
            for cid in conversations:
                pair("first", staff, f"/conversations/{cid}/")
        # The last session has opened every conversation: from here on, the steady state.
        log(f"audit: {args.rounds} pages and {args.rounds} polls per server, in turn")
        poll = {"HX-Request": "true", "HX-Target": "conversation-header",
                "HX-Trigger": "conversation-header"}  # fmt: skip
        for i in range(args.rounds):
            cid = conversations[i % len(conversations)]
            pair("page", staff, f"/conversations/{cid}/")
            pair("poll", staff, f"/conversations/{cid}/header/", poll)
        entries = servers.entries()
    finally:
        for staff in browsers:
            staff.close()
        servers.close()
    samples = {key: list(values) for key, values in recorder.samples.items()}
    return {
        "aa": args.aa,
        "database": servers.database,
        "cache": servers.cache,
        "workers": args.workers,
        "conversations": len(conversations),
        "sessions": args.sessions,
        "rounds": args.rounds,
        "samples": samples,
        "paired": paired,
        "entries": dict(entries),
    }


# --- the report


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def difference(figures: dict[str, Any], kind: str) -> float:
    s = figures["samples"]
    return percentile(s[f"on:{kind}"], 50) - percentile(s[f"off:{kind}"], 50)


def targets(figures: dict[str, Any]) -> list[list[str]]:
    gap = difference(figures, "page")
    paired = statistics.median(figures["paired"]["page"])
    versus = "on vs on (--aa: the noise floor)" if figures["aa"] else "on vs off"
    return [
        [
            f"Audit (issue 12): page p50, audit log {versus} ({figures['database']})",
            f"< {ms(TARGET_P50_DIFFERENCE)} apart",
            f"{gap * 1000:+.2f} ms (paired median {paired * 1000:+.2f} ms)",
            verdict(abs(gap) < TARGET_P50_DIFFERENCE),
        ]
    ]


def details(figures: dict[str, Any]) -> list[list[str]]:
    s = figures["samples"]
    rows = []
    for kind in KINDS:
        on, off = s[f"on:{kind}"], s[f"off:{kind}"]
        rows.append(
            [
                kind,
                str(len(on)),
                ms(percentile(on, 50)),
                ms(percentile(off, 50)),
                f"{difference(figures, kind) * 1000:+.2f} ms",
                f"{statistics.median(figures['paired'][kind]) * 1000:+.2f} ms",
                ms(percentile(on, 95)),
                ms(percentile(off, 95)),
            ]
        )
    return rows


DETAIL_HEADERS = [
    "Request", "n each", "p50 on", "p50 off", "p50 on-off", "paired median", "p95 on", "p95 off",
]  # fmt: skip


def figures_rows(figures: dict[str, Any]) -> list[list[str]]:
    entries = dict(figures["entries"])
    views = entries.pop("view_conversation", 0)
    expected = WARMUP_VIEWS + figures["sessions"] * figures["conversations"] + figures["rounds"]
    expected *= 2 if figures["aa"] else 1
    others = ", ".join(f"{action} {count}" for action, count in sorted(entries.items()))
    return [
        ["Database, cache", f"{figures['database']}, {figures['cache']}"],
        ["Servers", f"2 gunicorns x {figures['workers']} uvicorn workers, one database"],
        [
            "Entries written: page views",
            f"{views} (expected {expected}: warm-up, first and page views of the audited server)",
        ],
        ["Entries written: others (no poll)", others or "none"],
    ]


def run_tables(figures: dict[str, Any]) -> dict[str, list[list[str]]]:
    """The rows `make bench` (bench/run.py) adds to its targets and figures."""
    if "skipped" in figures:
        target = ["Audit (issue 12): page p50, audit log on vs off", "< 1.0 ms apart"]
        return {"targets": [[*target, figures["skipped"], "SKIP"]], "figures": []}
    measured = [
        [
            f"Audit: {kind} p50 on / off (n {n} each)",
            f"{p50_on} / {p50_off} ({gap}; paired median {paired}; p95 {p95_on} / {p95_off})",
        ]
        for kind, n, p50_on, p50_off, gap, paired, p95_on, p95_off in details(figures)
    ]
    return {"targets": targets(figures), "figures": measured + figures_rows(figures)[2:]}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        figures = measure(
            args,
            log=lambda m: print(
                f"[audit {time.strftime('%H:%M:%S')}] {m}", file=sys.stderr, flush=True
            ),
        )
    except (StackError, load.BenchError, psycopg.Error) as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return 1
    print()
    print(text_table(["Scenario", "Target", "Measured", "Result"], targets(figures)))
    print()
    print(text_table(DETAIL_HEADERS, details(figures)))
    print()
    print(text_table(["Figure", "Measured"], figures_rows(figures)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
