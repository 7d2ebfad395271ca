"""Search, exports and the timeline (issue 11) on a PostgreSQL store of a million events and more.

    .venv/bin/python bench/search.py [--database benchsearch] [--rounds 10]

1. The data (bench/search_seed.py): 1,000,000 events in about 20,000 conversations, one of them
   exactly 10,000 events (the timeline's), and one more conversation of 1,000,000 events (the
   export's: an export of events is one conversation's history, so a 1,000,000-event export needs
   a conversation that holds them), so 2,000,000 events in all. Seeded once into its own database
   (--database, created when missing) and reused while the database's marker says it holds
   exactly this set (same sizes, same seed, same code deriving text and keys); else the database
   is dropped, created, migrated and seeded again (minutes; --reseed forces it).
2. The dashboard as production runs it (gunicorn, 2 uvicorn workers, DEBUG off, Redis as the
   cache when it answers) on that database, and the sandbox as upstream (80 ms latency: a page
   that called it would show).
3. Measured through HTTP, one staff member at a time (latency, not throughput):
   - `/search/?q=`: a number (10 users' UK numbers, each as `447…`, `+44 7… …` and `(0)7… …`),
     a name (10 users' names), a word (5 words of middling frequency), an id (5 conversation id
     prefixes `CON-` + 8, 5 member uuid prefixes of 13 characters); each query --rounds times,
     round robin, checking the page lists the conversation each must find; and, reported only,
     a SIP URI, a word in most conversations, a rare word, two words, a short name prefix, the
     application's own number (in a third of all conversations) and a query that finds nothing;
   - `?format=csv` and `?format=json` of the 1,000,000-event conversation's events (and of the
     10,000-event one's): rows a second, time to the first byte, and the resident memory of the
     worker that serves it (found by its end of the connection), before, sampled during (its
     peak, VmHWM, reset before the request) and after; the files are parsed after the clock
     stops, and their rows counted against the stored history;
   - the timeline region of the 10,000-event conversation (`/conversations/<id>/timeline/`,
     HX-Request), --timeline-rounds times.
   A page not on this branch yet (404) is reported as such; search is then measured in process.
4. In process (bench/search_plans.py, a subprocess with the dashboard's settings):
   `search.search()` timed without HTTP, and EXPLAIN (ANALYZE, BUFFERS) of every statement one
   search of each kind sends, with the scans each makes (written to search-plans.txt).
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

if __package__ in (None, ""):  # run as a script: `python bench/search.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import ingest, load, search_seed
from bench.report import latency_row, ms, percentile, text_table
from bench.stack import ROOT, STAFF_USERNAME, Stack, StackError, redis_available

TARGET_SEARCH_P95 = 0.100
TARGET_EXPORT_ROWS_PER_SECOND = 50_000
TARGET_EXPORT_GROWTH_MB = 50  # "flat": the worker's peak over its resident size before
TARGET_TIMELINE_P95 = 0.300
TARGET_KINDS = ("number", "name", "word", "id")
KIND_LABELS = {
    "number": "a number (10 users x 3 forms: 447..., +44 7... ..., (0)7... ...)",
    "name": "a name (10 users' names)",
    "word": "a word (5 words of middling frequency)",
    "id": "an id prefix (5 conversation and 5 member uuid prefixes, 13 characters)",
    "sip": "a SIP URI (reported)",
    "word-common": "a word in most conversations (reported)",
    "word-rare": "a rare word (reported)",
    "two-words": "two words (reported)",
    "name-prefix": "a 3-letter name prefix (reported)",
    "app-number": "the application's own number, in a third of all calls (reported)",
    "nothing": "a query that finds nothing (reported)",
    "id-con-prefix": "a conversation id prefix CON- + 8 (reported)",
}
WARMUP_QUERIES = ("+44 7700 900999", "warmup", "zoe.nobody", "0b0b0b0b-0b0b", "two warmups")
SAMPLE_SECONDS = 0.02  # RSS sampling interval during an export


def log_default(message: str) -> None:
    print(f"[search {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/search.py", description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--database", default="benchsearch",
        help="PostgreSQL database of the phase: reused while it holds the seeded set, else "
        "dropped, created and seeded (benchsearch)")  # fmt: skip
    add("--postgres", default="postgres://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL admin connection")  # fmt: skip
    add("--events", type=int, default=1_000_000, help="events of the store (1,000,000)")
    add("--export-events", type=int, default=1_000_000,
        help="events of the export's conversation, besides (1,000,000)")  # fmt: skip
    add("--seed", type=int, default=11, help="random seed of the data (11)")
    add("--reseed", action="store_true", help="seed again even when the marker matches")
    add("--rounds", type=int, default=10, help="requests of each search query (10)")
    add("--timeline-rounds", type=int, default=20, help="timeline requests (20)")
    add("--plan-rounds", type=int, default=5, help="in-process runs of each query (5)")
    add("--formats", default="csv,json", help="export formats measured (csv,json)")
    add("--latency-ms", type=int, default=80, help="upstream latency the sandbox adds (80)")
    add("--workers", type=int, default=2, help="gunicorn (uvicorn) workers (2)")
    add("--redis-url", default="redis://127.0.0.1:6379/14", help="the cache (flushed)")
    add("--env", action="append", default=[], metavar="NAME=VALUE",
        help="a setting for the dashboard, e.g. DASHBOARD_SEARCH_TIMEOUT_MS=5000")  # fmt: skip
    add("--output", type=Path, default=ROOT / "bench-results",
        help="where search-plans.txt goes (bench-results)")  # fmt: skip
    add("--keep-logs", action="store_true", help="keep the temporary directory and its logs")
    args = parser.parse_args(argv)
    args.extra_env = dict(item.split("=", 1) for item in args.env)
    args.format_list = [f for f in args.formats.split(",") if f.strip()]
    return args


# --- the data


def database_url(args: argparse.Namespace) -> str:
    return args.postgres.rsplit("/", 1)[0] + "/" + args.database


def seeded_world(args: argparse.Namespace) -> dict[str, Any] | None:
    """The world of the database when it holds exactly the set asked for, else None."""
    if args.reseed:
        return None
    marker = search_seed.read_marker(database_url(args))
    if marker is None:
        return None
    params, world = marker
    seed_args = argparse.Namespace(
        events=args.events, export_events=args.export_events, seed=args.seed
    )
    return world if params == search_seed.params_of(seed_args) else None


def run_seeder(args: argparse.Namespace, stack: Stack, log: Callable[[str], None]) -> dict:
    command = [
        sys.executable,
        "-m",
        "bench.search_seed",
        *("--events", str(args.events)),
        *("--export-events", str(args.export_events)),
        *("--seed", str(args.seed)),
    ]
    world_file = stack.tmp / "world.json"
    with world_file.open("w") as sink:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=stack.django_env(),
            stdout=sink,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stderr is not None
        tail: list[str] = []
        try:
            for line in process.stderr:  # its progress, as it goes
                tail = [*tail, line.rstrip()][-20:]
                if line.startswith("seed:"):
                    log(line.strip())
            returncode = process.wait()
        except BaseException:  # interrupted: no seeder left behind (it writes no marker then)
            process.kill()
            process.wait()
            raise
    if returncode != 0:
        raise StackError("seeding failed:\n" + "\n".join(tail))
    return json.loads(world_file.read_text())


# --- the queries


def uk_forms(number: str) -> list[str]:
    """A UK mobile number (447…) as typed: E.164 digits, international, national."""
    national = number[2:]
    return [number, f"+44 {national[:4]} {national[4:]}", f"(0){national[:4]} {national[4:]}"]


def queries(world: dict[str, Any]) -> list[dict[str, Any]]:
    """(kind, text, conversations the first page must list) of every search query measured."""
    out: list[dict[str, Any]] = []
    for user in world["numbers"]:
        for form in uk_forms(user["number"]):
            out.append({"kind": "number", "text": form, "expect": user["expect"][:1]})
    for user in world["names"]:
        out.append({"kind": "name", "text": user["name"], "expect": user["expect"][:1]})
    for word in world["words"]["mid"]:
        out.append({"kind": "word", "text": word["word"], "expect": []})
    # uuid prefixes with a letter (all digits would read as a phone number too)
    conversations = [c for c in world["conversations"] if re.search(r"[a-f]", c[4:17])]
    for conversation in conversations[:5]:
        out.append({"kind": "id", "text": conversation[4:17], "expect": [conversation]})
    members = [m for m in world["members"] if re.search(r"[a-f]", m[4:17])]
    for member in members[:5]:
        out.append({"kind": "id", "text": member[4:17], "expect": []})
    for sip in world["sips"]:
        out.append({"kind": "sip", "text": sip["uri"], "expect": sip["expect"][:1]})
    words = world["words"]
    out += [
        {"kind": "word-common", "text": words["common"][0]["word"], "expect": []},
        {"kind": "word-rare", "text": words["rare"][0]["word"], "expect": []},
        {
            "kind": "two-words",
            "text": f"{words['mid'][0]['word']} {words['common'][0]['word']}",
            "expect": [],
        },
        {"kind": "name-prefix", "text": world["names"][0]["name"][:3], "expect": []},
        {"kind": "app-number", "text": f"+{world['app_number']}", "expect": []},
        {"kind": "nothing", "text": "qqzzxqq", "expect": []},
        # CON- and 8 characters: shaped like an id (bodies may be opaque), so the page jumps
        {"kind": "id-con-prefix", "text": conversations[0][:12], "expect": [conversations[0]]},
    ]
    return out


# --- HTTP


def page_exists(browser: load.Staff, path: str, headers: dict[str, str] | None = None) -> bool:
    answer = browser.get("probe", path, headers)
    if answer is None:
        raise load.BenchError(f"GET {path} failed")
    if answer.status_code >= 500:
        raise load.BenchError(f"GET {path} answered {answer.status_code}")
    return answer.status_code != 404


def is_export(browser: load.Staff, path: str) -> bool:
    """Whether the events tab answers `?format=` with a file (without the exports, a page)."""
    answer = browser.get("probe", path)
    if answer is None or answer.status_code >= 500:
        raise load.BenchError(f"GET {path} failed")
    kind = answer.headers.get("Content-Type", "")
    return answer.status_code == 200 and kind.startswith(("text/csv", "application/json"))


class ServerCpu:
    """CPU time (user + system) of what serves a request: the gunicorn workers and the database's
    backends for them, read from /proc (all on this machine). A figure the machine's other load
    does not change, unlike latency."""

    def __init__(self, stack: Stack, url: str, database: str) -> None:
        self.stack, self.url, self.database = stack, url, database
        self.backends: list[int] = []

    def refresh(self) -> None:
        """The backends connected to the database now (the workers' threads connect lazily)."""
        with psycopg.connect(self.url, autocommit=True) as connection:
            rows = connection.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (self.database,),
            ).fetchall()
        self.backends = [row[0] for row in rows]

    def seconds(self, *, workers: bool = True) -> float:
        total = 0.0
        for pid in [*(self.stack.worker_pids() if workers else []), *self.backends]:
            try:
                total += cpu_of(pid)
            except (OSError, IndexError, ValueError):
                continue
        return total


def measure_search(
    browser: load.Staff,
    items: list[dict[str, Any]],
    rounds: int,
    rec: load.Recorder,
    cpu: ServerCpu | None = None,
) -> dict[str, Any]:
    """Every query once per round, round robin; the first page checked for what it must list;
    the server's CPU time of each request (`cpu`), per kind."""
    found: Counter[str] = Counter()
    checked: Counter[str] = Counter()
    missing: list[str] = []
    jumped: list[str] = []
    cpu_ms: dict[str, list[float]] = {}
    for round_ in range(rounds):
        if cpu is not None:
            cpu.refresh()
        for item in items:
            path = "/search/?" + urllib.parse.urlencode({"q": item["text"]})
            before = cpu.seconds() if cpu is not None else 0.0
            answer = browser.get(f"search-{item['kind']}", path)
            if cpu is not None:
                cpu_ms.setdefault(item["kind"], []).append((cpu.seconds() - before) * 1000)
            if round_ or not item["expect"]:
                continue
            checked[item["kind"]] += 1
            # A page listing them, or a jump straight to the one page (a pasted id)
            shown = "" if answer is None else answer.text + answer.headers.get("Location", "")
            if all(cid in shown for cid in item["expect"]):
                found[item["kind"]] += 1
                if answer is not None and answer.status_code == 302:
                    jumped.append(f"{item['text']!r} -> {answer.headers.get('Location')}")
            else:
                where = answer.headers.get("Location", "") if answer is not None else ""
                missing.append(
                    f"{item['kind']} {item['text']!r}"
                    + (
                        f" (answered {answer.status_code}{' ' + where if where else ''})"
                        if answer is not None
                        else ""
                    )
                )
    return {
        "found": dict(found),
        "checked": dict(checked),
        "missing": missing,
        "jumped": jumped,
        "cpu_ms": cpu_ms,
    }


def serving_worker(stack: Stack, server_port: int, client_port: int) -> int | None:
    """The gunicorn worker holding the server end of our connection (from /proc/net/tcp)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if (
                int(local.rsplit(":", 1)[1], 16) == server_port
                and int(remote.rsplit(":", 1)[1], 16) == client_port
            ):
                inodes.add(f"socket:[{fields[9]}]")
    for pid in stack.worker_pids():
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                        return pid
                except OSError:
                    continue
        except OSError:
            continue
    return None


def memory_of(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    values = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", status, re.MULTILINE))
    return {"rss_mb": int(values["VmRSS"]) / 1024, "hwm_mb": int(values["VmHWM"]) / 1024}


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_peak(pid: int) -> bool:
    """Reset the process's VmHWM to its current RSS (Linux: clear_refs 5), so that VmHWM after
    the export is the export's own peak."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def stream_export(
    stack: Stack, cookie: str, path: str, out: Path, cpu: ServerCpu
) -> dict[str, Any]:
    """GET an export to a file, as fast as it comes; the serving worker's memory meanwhile."""
    parts = urllib.parse.urlsplit(stack.dashboard_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    connection = http.client.HTTPConnection(host, port, timeout=300)
    connection.connect()
    assert connection.sock is not None
    client_port = connection.sock.getsockname()[1]
    pid = None
    deadline = time.monotonic() + 5
    while pid is None and time.monotonic() < deadline:
        pid = serving_worker(stack, port, client_port)
        if pid is None:
            time.sleep(0.01)
    if pid is None:
        raise load.BenchError("no gunicorn worker holds the export's connection")
    before = memory_of(pid)
    peak_reset = reset_peak(pid)
    cpu_before = cpu_of(pid)
    cpu.refresh()
    database_before = cpu.seconds(workers=False)
    samples: list[tuple[float, float]] = []
    stop = threading.Event()
    began = time.perf_counter()

    def sample() -> None:
        while not stop.is_set():
            try:
                samples.append((time.perf_counter() - began, memory_of(pid)["rss_mb"]))
            except (OSError, KeyError):
                return
            stop.wait(SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample, name="rss-sampler", daemon=True)
    sampler.start()
    client_cpu = time.process_time()
    connection.putrequest("GET", path, skip_accept_encoding=True)
    connection.putheader("Cookie", cookie)
    connection.endheaders()
    response = connection.getresponse()
    first_byte = time.perf_counter() - began
    headers = {k.lower(): v for k, v in response.getheaders()}
    size = 0
    buffer = bytearray(1 << 20)
    view = memoryview(buffer)
    with out.open("wb") as sink:
        while True:
            count = response.readinto(view)
            if not count:
                break
            size += count
            sink.write(view[:count])
    elapsed = time.perf_counter() - began
    client_cpu = time.process_time() - client_cpu
    during = memory_of(pid)
    worker_cpu = cpu_of(pid) - cpu_before
    database_cpu = cpu.seconds(workers=False) - database_before
    stop.set()
    sampler.join()
    connection.close()
    time.sleep(2)
    after = memory_of(pid)
    return {
        "path": path,
        "status": response.status,
        "content_type": headers.get("content-type", ""),
        "disposition": headers.get("content-disposition", ""),
        "pid": pid,
        "bytes": size,
        "seconds": elapsed,
        "first_byte": first_byte,
        "rss_before_mb": before["rss_mb"],
        "rss_peak_sampled_mb": max((rss for _, rss in samples), default=float("nan")),
        "hwm_mb": during["hwm_mb"] if peak_reset else float("nan"),
        "hwm_reset": peak_reset,
        "rss_end_mb": during["rss_mb"],
        "rss_after_mb": after["rss_mb"],
        "samples": len(samples),
        "rss_curve": [
            (round(t, 2), round(r, 1)) for t, r in samples[:: max(len(samples) // 40, 1)]
        ],
        "worker_cpu": worker_cpu,
        "database_cpu": database_cpu,
        "client_cpu": client_cpu,
    }


def csv_rows(path: Path) -> int:
    with path.open(newline="", encoding="utf-8") as file:
        return sum(1 for _ in csv.reader(file)) - 1  # less the header


def json_rows(path: Path) -> int:
    """Objects in a JSON array, read in pieces (the file may be larger than is wise to load)."""
    decoder = json.JSONDecoder()
    count = 0
    buffer = ""
    position = 0
    started = False
    with path.open(encoding="utf-8") as file:
        while True:
            block = file.read(1 << 22)
            buffer = buffer[position:] + block
            position = 0
            while True:
                while position < len(buffer) and buffer[position] in " \t\r\n,":
                    position += 1
                if not started:
                    if position < len(buffer) and buffer[position] == "[":
                        started = True
                        position += 1
                        continue
                    if position < len(buffer):
                        raise ValueError("not a JSON array")
                    break
                if position < len(buffer) and buffer[position] == "]":
                    return count
                try:
                    _, end = decoder.raw_decode(buffer, position)
                except json.JSONDecodeError:
                    break  # an object cut by the block's end: read more
                count += 1
                position = end
            if not block:
                raise ValueError("the JSON array does not end")


def stored_count(url: str, conversation_id: str) -> int:
    with psycopg.connect(url) as connection:
        return connection.execute(
            "SELECT count(*) FROM conversations_storedevent e JOIN "
            "conversations_storedconversation c ON c.id = e.conversation_id WHERE c.vonage_id = %s",
            (conversation_id,),
        ).fetchone()[0]


# --- in process


def run_plans(
    args: argparse.Namespace, stack: Stack, items: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.search_plans", "--rounds", str(args.plan_rounds)],
        cwd=ROOT,
        env=stack.django_env(),
        input=json.dumps([{"kind": i["kind"], "text": i["text"]} for i in items]),
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise StackError(f"bench/search_plans.py failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def plans_text(plans: list[dict[str, Any]]) -> str:
    out = []
    for result in plans:
        out.append(f"=== {result['kind']}: {result['text']!r} -> {result['parsed']}")
        out.append(
            f"search.search() p50 {ms(percentile(result['seconds'], 50))}, "
            f"{result['hits']} conversations on the first page {result['error']}"
        )
        for statement in result["statements"]:
            out.append(f"--- {statement['ms']:.1f} ms")
            out.append(statement["sql"])
            out += statement["plan"]
        out.append("")
    return "\n".join(out)


def plan_summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """What the plans of some searches have in common: statements, time, scans."""
    statements = [st for result in results for st in result["statements"]]
    seq: dict[str, int] = {}
    for st in statements:
        for scan in st["scans"]:
            if scan["node"] == "Seq Scan":
                table = scan["table"].removeprefix("conversations_")
                seq[table] = max(seq.get(table, 0), scan["read"])
    indexes = sorted(
        {
            s["index"] or s["table"]
            for st in statements
            for s in st["scans"]
            if s["node"] in ("Index Scan", "Index Only Scan", "Bitmap Index Scan")
        }
    )
    per_search = [sum(st["ms"] for st in result["statements"]) for result in results]
    return {
        "statements": max((len(r["statements"]) for r in results), default=0),
        "total_ms": max(per_search, default=float("nan")),
        "slowest_ms": max((st["ms"] for st in statements), default=float("nan")),
        "seq_scans": [f"{table} (reads {rows:,} rows)" for table, rows in sorted(seq.items())],
        "indexes": indexes,
    }


# --- the phase


def measure(args: argparse.Namespace, log: Callable[[str], None] = log_default) -> dict[str, Any]:
    """The search phase on a stack of its own; the figures (see `targets`).

    Raises StackError when the stack does not start, psycopg.Error when PostgreSQL fails."""
    url = database_url(args)
    load_before = os.getloadavg()
    world = seeded_world(args)
    seed_seconds = None
    if world is None:
        log(f"search: (re)creating the database {args.database} to seed it")
        ingest.recreate_database(args.postgres, args.database)
    else:
        log(f"search: {args.database} holds the seeded set already: seeding skipped")
    redis = redis_available(args.redis_url)
    stack = Stack(
        latency_ms=args.latency_ms,
        cache="redis" if redis else "database",
        redis_url=args.redis_url,
        workers=args.workers,
        keep_logs=args.keep_logs,
        extra_env={"DATABASE_URL": url, "LOG_LEVEL": "WARNING"} | args.extra_env,
    )
    results: dict[str, Any] = {"database": args.database, "workers": args.workers}
    try:
        log(f"search: starting gunicorn ({args.workers} uvicorn workers) on {args.database}")
        stack.start(conversations=5, big_events=10)
        if world is None:
            log(
                f"search: seeding {args.events:,} events + a {args.export_events:,}-event "
                "conversation (bench/search_seed.py)"
            )
            began = time.monotonic()
            world = run_seeder(args, stack, log)
            seed_seconds = time.monotonic() - began
            log(f"search: seeded in {seed_seconds:.0f} s")
        results |= {"world": world, "seed_seconds": seed_seconds}
        items = queries(world)
        rec = load.Recorder()
        staff = [load.Staff(stack.dashboard_url, rec) for _ in range(2)]
        for browser in staff:
            browser.login(STAFF_USERNAME, stack.password)
        browser = staff[0]
        cookie = f"sessionid={browser.session.cookies['sessionid']}"
        timeline_path = f"/conversations/{world['timeline']}/timeline/"
        pages = {
            "search": page_exists(browser, "/search/?q=warmup"),
            "timeline": page_exists(browser, timeline_path, {"HX-Request": "true"}),
            "export": is_export(browser, f"/conversations/{world['timeline']}/events/?format=csv"),
        }
        results["pages"] = pages
        log(f"search: pages on this branch: {pages}")
        # Both workers load the code and templates before the clock, with queries of every
        # shape that are none of the measured ones (whose first request stays a first).
        for other in staff:
            for text in WARMUP_QUERIES:
                if pages["search"]:
                    other.get("warmup", "/search/?" + urllib.parse.urlencode({"q": text}))
            if pages["timeline"]:
                other.get("warmup", timeline_path, {"HX-Request": "true"})
        upstream_before = stack.upstream_stats()["requests"]
        cpu = ServerCpu(stack, url, args.database)
        if pages["search"]:
            log(f"search: {len(items)} queries x {args.rounds} rounds through /search/")
            results["search"] = measure_search(browser, items, args.rounds, rec, cpu)
        if pages["timeline"]:
            log(f"search: the timeline region of {world['timeline']}, {args.timeline_rounds} times")
            for _ in range(args.timeline_rounds):
                browser.get("timeline", timeline_path, {"HX-Request": "true"})
            for _ in range(max(args.timeline_rounds // 4, 2)):
                browser.get("timeline-detail", f"/conversations/{world['timeline']}/")
        results["upstream"] = stack.upstream_stats()["requests"] - upstream_before
        for jump in (results.get("search") or {}).get("missing", []):
            where = re.search(r"answered 302 (/\S+)\)", jump)
            if where:  # where a jump that missed lands (not timed: it may ask the API)
                landed = browser.get("probe", where.group(1))
                results.setdefault("landed", {})[where.group(1)] = (
                    landed.status_code if landed is not None else "-"
                )
        exports = []
        if pages["export"]:
            for conversation, events in (
                (world["timeline"], world["timeline_events"]),
                (world["export"], world["export_events"]),
            ):
                stored = stored_count(url, conversation)
                for form in args.format_list:
                    path = f"/conversations/{conversation}/events/?format={form}"
                    log(f"search: export of {events:,} events as {form}: {path}")
                    out = stack.tmp / f"export-{events}.{form}"
                    figures = stream_export(stack, cookie, path, out, cpu)
                    try:
                        rows = csv_rows(out) if form == "csv" else json_rows(out)
                    except (ValueError, UnicodeDecodeError, csv.Error) as exc:
                        rows, figures["parse_error"] = -1, str(exc)[:200]
                    out.unlink(missing_ok=True)
                    figures |= {"format": form, "events": events, "stored": stored, "rows": rows}
                    figures["rows_per_second"] = max(rows, 0) / figures["seconds"]
                    log(
                        f"search: {rows:,} rows in {figures['seconds']:.1f} s = "
                        f"{figures['rows_per_second']:,.0f} rows/s; worker RSS "
                        f"{figures['rss_before_mb']:.0f} -> peak {figures['hwm_mb']:.0f} MB"
                    )
                    exports.append(figures)
        results["exports"] = exports
        log(f"search: in process: search.search() and EXPLAIN ANALYZE ({args.plan_rounds} runs)")
        results["plans"] = run_plans(args, stack, items)
        results["memory"] = stack.worker_memory()
        results["recorder"] = rec
        for other in staff:
            other.close()
    finally:
        stack.close()
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "search-plans.txt").write_text(plans_text(results["plans"]))
    results["load"] = {"before": load_before, "after": os.getloadavg()}
    results["items"] = items
    return results


# --- the report


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def samples_of(figures: dict[str, Any], kind: str) -> tuple[list[float], str]:
    """The latencies of a kind: HTTP when /search/ was measured, else the core's."""
    rec = figures.get("recorder")
    if figures.get("search") and rec is not None and rec.samples.get(f"search-{kind}"):
        return rec.samples[f"search-{kind}"], "HTTP"
    core = [s for r in figures["plans"] if r["kind"] == kind for s in r["seconds"]]
    return core, "search.search() in process: /search/ is not on this branch"


def targets(figures: dict[str, Any]) -> list[list[str]]:
    world = figures["world"]
    totals = world["totals"]
    rows = []
    searched = figures.get("search") or {}
    for kind in TARGET_KINDS:
        values, how = samples_of(figures, kind)
        p50, p95, p99 = (percentile(values, q) for q in (50, 95, 99))
        # Round robin: the first request of each query is the first round's, the only one that
        # may find its pages out of the database's cache.
        first = sum(1 for item in figures.get("items", []) if item["kind"] == kind)
        warm = values[first:] if how == "HTTP" else []
        checked = searched.get("checked", {}).get(kind)
        found = searched.get("found", {}).get(kind, 0)
        rows.append(
            [
                f"Search p95, {KIND_LABELS[kind]}, {totals['events']:,} stored events, "
                f"{totals['conversations']:,} conversations ({len(values)} requests; {how})",
                f"< {ms(TARGET_SEARCH_P95)}",
                f"{ms(p95)} (p50 {ms(p50)}, p99 {ms(p99)}"
                + (
                    f"; first round {ms(min(values[:first]))}-{ms(max(values[:first]))}, "
                    f"later rounds p95 {ms(percentile(warm, 95))}"
                    if warm
                    else ""
                )
                + ")"
                + (f"; right conversation listed {found}/{checked}" if checked else ""),
                verdict(p95 < TARGET_SEARCH_P95 and (not checked or found == checked)),
            ]
        )
    exports = [e for e in figures["exports"] if e["events"] == world["export_events"]]
    if not exports:
        rows.append(
            [
                f"Export of the {world['export_events']:,}-event conversation",
                f"> {TARGET_EXPORT_ROWS_PER_SECOND:,} rows/s, memory flat",
                "not on this branch (no ?format=csv on the events tab)",
                "SKIP",
            ]
        )
    for export in exports:
        intact = export["rows"] == export["stored"] and export["status"] == 200
        rows.append(
            [
                f"Export of the {export['events']:,}-event conversation as "
                f"{export['format'].upper()}: rows a second (request to last byte)",
                f"> {TARGET_EXPORT_ROWS_PER_SECOND:,}",
                f"{export['rows_per_second']:,.0f} ({export['rows']:,} rows of "
                f"{export['stored']:,} stored, {export['bytes'] / 2**20:,.0f} MB in "
                f"{export['seconds']:.1f} s)",
                verdict(export["rows_per_second"] > TARGET_EXPORT_ROWS_PER_SECOND and intact),
            ]
        )
        growth = max(export["hwm_mb"], export["rss_peak_sampled_mb"]) - export["rss_before_mb"]
        rows.append(
            [
                f"Export as {export['format'].upper()}: the serving worker's resident memory "
                "(before, peak: VmHWM reset before the request, after)",
                f"flat: peak < before + {TARGET_EXPORT_GROWTH_MB} MB",
                f"{export['rss_before_mb']:.0f} MB, peak {export['hwm_mb']:.0f} MB "
                f"(+{growth:.0f}), after {export['rss_after_mb']:.0f} MB",
                verdict(growth < TARGET_EXPORT_GROWTH_MB),
            ]
        )
    rec = figures.get("recorder")
    timeline = rec.samples.get("timeline") if rec is not None else None
    if timeline:
        p50, p95 = percentile(timeline, 50), percentile(timeline, 95)
        rows.append(
            [
                f"Timeline region of the {world['timeline_events']:,}-event conversation "
                f"(HX-Request), p95 ({len(timeline)} requests)",
                f"< {ms(TARGET_TIMELINE_P95)}",
                f"{ms(p95)} (p50 {ms(p50)})",
                verdict(p95 < TARGET_TIMELINE_P95),
            ]
        )
    else:
        rows.append(
            [
                f"Timeline of the {world['timeline_events']:,}-event conversation",
                f"< {ms(TARGET_TIMELINE_P95)}",
                "not on this branch (/conversations/<id>/timeline/ answers 404)",
                "SKIP",
            ]
        )
    return rows


def details(figures: dict[str, Any]) -> list[list[str]]:
    rec = figures.get("recorder")
    if rec is None:
        return []
    rows = []
    labels = {f"search-{k}": f"search: {v}" for k, v in KIND_LABELS.items()}
    labels |= {
        "timeline": "timeline region, 10,000 events (HX-Request)",
        "timeline-detail": "conversation page of the 10,000-event conversation",
    }
    for kind, label in labels.items():
        values = rec.samples.get(kind) or []
        if not values:
            continue
        statuses = ", ".join(f"{k} x{v}" for k, v in sorted(rec.statuses[kind].items()))
        rows.append(latency_row(label, values, statuses))
    return rows


def figures_rows(figures: dict[str, Any]) -> list[list[str]]:
    world = figures["world"]
    totals = world["totals"]
    seconds = world["seconds"]
    seeded = (
        f"seeded now in {figures['seed_seconds']:.0f} s (load {seconds['load']} s, indexes "
        f"{seconds['indexes']} s, VACUUM ANALYZE and counts the rest)"
        if figures["seed_seconds"] is not None
        else f"reused (it took {seconds['total']} s to seed)"
    )
    rows = [
        [
            f"Search phase data (PostgreSQL {figures['database']})",
            f"{totals['events']:,} events ({totals['messages']:,} messages, {totals['custom']:,} "
            f"custom), {totals['conversations']:,} conversations ({totals['live']} live), "
            f"{totals['members']:,} members, {totals['keys']:,} search keys, "
            f"{totals['database_mb']:,} MB; the timeline's {world['timeline']} "
            f"({world['timeline_events']:,} events), the export's {world['export']} "
            f"({world['export_events']:,} events); {seeded}",
        ],
        [
            "Words searched (events / conversations holding each, the export's conversation "
            "aside: it holds every word)",
            "; ".join(
                f"{w['word']} {w['events']:,}/{w['conversations']:,}"
                for group in ("mid", "common", "rare")
                for w in world["words"][group]
            ),
        ],
    ]
    searched = figures.get("search")
    if searched and searched["missing"]:
        landed = ", ".join(f"{k} answers {v}" for k, v in figures.get("landed", {}).items())
        rows.append(
            [
                "Search: right conversation not listed",
                "; ".join(searched["missing"][:10]) + (f" ({landed})" if landed else ""),
            ]
        )
    if searched and searched.get("cpu_ms"):
        rows.append(
            [
                "Search: server CPU per request, mean (gunicorn workers + PostgreSQL backends, "
                "from /proc in 10 ms ticks, so a mean over many: about the latency on idle "
                "cores, less waits)",
                ", ".join(
                    f"{kind} {sum(values) / len(values):.1f} ms"
                    for kind, values in searched["cpu_ms"].items()
                ),
            ]
        )
    kinds = list(dict.fromkeys(result["kind"] for result in figures["plans"]))
    for kind in kinds:
        results = [r for r in figures["plans"] if r["kind"] == kind]
        summary = plan_summary(results)
        seconds = [s for r in results for s in r["seconds"]]
        hits = sorted(r["hits"] for r in results)
        errors = sorted({r["error"] for r in results if r["error"]})
        rows.append(
            [
                f"Core, {KIND_LABELS[kind]}: search.search() p50 / p95, hits; EXPLAIN ANALYZE",
                f"{ms(percentile(seconds, 50))} / {ms(percentile(seconds, 95))}; hits "
                f"{hits[0]}-{hits[-1]}{'; ' + ', '.join(errors) if errors else ''}; "
                f"{summary['statements']} statements, {summary['total_ms']:.1f} ms, slowest "
                f"{summary['slowest_ms']:.1f} ms; sequential scans: "
                f"{', '.join(summary['seq_scans']) or 'none'}; indexes: "
                f"{', '.join(summary['indexes'])}",
            ]
        )
    for export in figures["exports"]:
        rows.append(
            [
                f"Export {export['format'].upper()} of {export['events']:,} events",
                f"HTTP {export['status']} {export['content_type']}; first byte after "
                f"{ms(export['first_byte'])}; CPU: worker (pid {export['pid']}) "
                f"{export['worker_cpu']:.1f} s, PostgreSQL {export['database_cpu']:.1f} s, "
                f"client {export['client_cpu']:.1f} s; RSS "
                f"sampled every {SAMPLE_SECONDS * 1000:.0f} ms ({export['samples']} samples) "
                f"peaked at {export['rss_peak_sampled_mb']:.0f} MB; {export['disposition']}"
                + (f"; parse error: {export['parse_error']}" if "parse_error" in export else ""),
            ]
        )
    rows.append(
        [
            "Search phase: upstream calls during search and timeline requests, load average",
            f"{figures.get('upstream', 0)} calls; load "
            + " / ".join(f"{x:.1f}" for x in figures["load"]["before"])
            + " before, "
            + " / ".join(f"{x:.1f}" for x in figures["load"]["after"])
            + f" after ({os.cpu_count()} CPUs)",
        ]
    )
    return rows


def raw(figures: dict[str, Any]) -> dict[str, Any]:
    """The figures as JSON can hold them: the samples in ms, the plans in search-plans.txt."""
    out = {k: v for k, v in figures.items() if k not in ("recorder", "plans")}
    rec = figures.get("recorder")
    if rec is not None:
        out["samples_ms"] = {k: [round(x * 1000, 2) for x in v] for k, v in rec.samples.items()}
        out["statuses"] = {k: dict(v) for k, v in rec.statuses.items()}
    if "plans" in figures:
        out["plans"] = [
            {k: v for k, v in result.items() if k != "statements"}
            | {"summary": plan_summary([result])}
            for result in figures["plans"]
        ]
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    reason = ingest.postgres_available(args.postgres)
    if reason is not None:
        print(f"PostgreSQL does not answer at {args.postgres}: {reason}", file=sys.stderr)
        return 1
    try:
        figures = measure(args)
    except (StackError, load.BenchError, psycopg.Error) as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return 1
    (args.output / "search.json").write_text(json.dumps(raw(figures), indent=1, default=str))
    print()
    print(text_table(["Scenario", "Target", "Measured", "Result"], targets(figures)))
    print()
    print(text_table(["Request", "n", "p50", "p95", "p99", "req/s", "statuses"], details(figures)))
    print()
    print(text_table(["Figure", "Measured"], figures_rows(figures)))
    print(f"\nPlans: {args.output / 'search-plans.txt'}; figures: {args.output / 'search.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
