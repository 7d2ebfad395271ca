"""Counts of /v1 requests (including rejected ones), for benchmarks of upstream calls."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = 0
        self._by_endpoint: Counter[str] = Counter()
        self._by_path: Counter[str] = Counter()

    def record(self, method: str, endpoint: str, path: str) -> None:
        """``endpoint`` is the route template, e.g. "/v1/conversations/{id}"."""
        with self._lock:
            self._total += 1
            self._by_endpoint[f"{method} {endpoint}"] += 1
            self._by_path[f"{method} {path}"] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self._total,
                "by_endpoint": dict(sorted(self._by_endpoint.items())),
                "by_path": dict(sorted(self._by_path.items())),
            }

    def reset(self) -> None:
        with self._lock:
            self._total = 0
            self._by_endpoint.clear()
            self._by_path.clear()
