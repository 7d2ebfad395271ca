"""The search core on the seeded database, in process: `search.search()` timed directly (no HTTP,
no template), and EXPLAIN (ANALYZE, BUFFERS) of every query one search sends, with the scans each
plan makes (an index, or a sequential scan over a table).

    DATABASE_URL=... VONAGE_APPLICATION_ID=... python -m bench.search_plans < queries.json

bench/search.py runs it in a subprocess with the dashboard's settings. It reads a JSON list of
{"kind", "text"} on stdin and prints, as JSON, per query: the core's latencies over --rounds runs,
how many conversations the first page has, and each statement's plan.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: `python bench/search_plans.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PAGE_SIZE = 25
SCAN = re.compile(
    r"(Parallel )?(Seq Scan|Index Scan|Index Only Scan|Bitmap Index Scan|Bitmap Heap Scan)"
    r"(?: Backward)?(?: using (\S+))? on (\S+)"
)
REMOVED = re.compile(r"Rows Removed by (?:Filter|Index Recheck): (\d+)")
ACTUAL = re.compile(r"actual time=[\d.]+\.\.([\d.]+) rows=(\d+) loops=(\d+)")


def scans(plan: list[str]) -> list[dict[str, Any]]:
    """The scan nodes of a text plan: kind, index, table, rows and time of each."""
    out: list[dict[str, Any]] = []
    for line in plan:
        found = SCAN.search(line)
        if found is None:
            removed = REMOVED.search(line)
            if removed and out and "->" not in line:  # the node above it: rows it read and dropped
                out[-1]["read"] += int(removed.group(1)) * out[-1]["loops"]
            continue
        actual = ACTUAL.search(line)
        rows, loops = (int(actual.group(2)), int(actual.group(3))) if actual else (0, 1)
        out.append(
            {
                "node": found.group(2),
                "index": found.group(3) or "",
                "table": found.group(4),
                "rows": rows * loops,  # rows it returned
                "read": rows * loops,  # rows it looked at: returned, and removed by a filter
                "loops": loops,
                "ms": float(actual.group(1)) * loops if actual else None,
            }
        )
    return out


def execution_ms(plan: list[str]) -> float:
    for line in reversed(plan):
        if line.startswith("Execution Time:"):
            return float(line.split()[2])
    return float("nan")


def run(queries: list[dict[str, str]], rounds: int) -> list[dict[str, Any]]:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard_project.settings")
    django.setup()
    from django.db import connection

    from conversations.store import search

    results = []
    filters = search.Filters()
    for item in queries:
        query = search.parse(item["text"])
        seconds = []
        hits = 0
        error = ""
        for _ in range(rounds):
            began = time.perf_counter()
            try:
                found = search.search(query, filters, page_size=PAGE_SIZE, cursor=None)
                hits = len(found.hits)
            except search.TooBroad:
                error = "TooBroad (the time limit)"
            seconds.append(time.perf_counter() - began)
        statements: list[tuple[str, Any]] = []

        def capture(execute, sql, params, many, context, statements=statements):
            statements.append((sql, params))
            return execute(sql, params, many, context)

        with connection.execute_wrapper(capture), contextlib.suppress(search.TooBroad):
            search.search(query, filters, page_size=PAGE_SIZE, cursor=None)
        plans = []
        for sql, params in statements:
            if not sql.lstrip().upper().startswith("SELECT") or "set_config" in sql:
                continue
            # Under the search's own settings (its time limit, and whatever else it sets)
            try:
                with search.time_limit(), connection.cursor() as cursor:
                    cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
                    plan = [row[0] for row in cursor.fetchall()]
            except search.TooBroad:
                plan = ["(ran out of the search's time limit under EXPLAIN ANALYZE)"]
            plans.append(
                {
                    "sql": connection.ops.compose_sql(sql, params)
                    if hasattr(connection.ops, "compose_sql")
                    else sql,
                    "plan": plan,
                    "ms": execution_ms(plan),
                    "scans": scans(plan),
                }
            )
        results.append(
            {
                "kind": item["kind"],
                "text": item["text"],
                "parsed": {
                    "id_prefixes": list(query.id_prefixes),
                    "number": query.number,
                    "address": query.address,
                    "name": query.name,
                    "words": list(query.words),
                    "literal": query.literal,
                },
                "seconds": seconds,
                "hits": hits,
                "error": error,
                "statements": plans,
            }
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench/search_plans.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rounds", type=int, default=5, help="timed runs of each query (5)")
    args = parser.parse_args(argv)
    queries = json.load(sys.stdin)
    print(json.dumps(run(queries, args.rounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
