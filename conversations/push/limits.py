"""How many streams one user, and this process, may hold open.

A stream costs little (no thread, a few KiB) but not nothing, and a script holding thousands
would crowd out staff. Past either limit a new stream is refused with 429; its page polls instead.
Counted per process: with several web processes the per-user limit applies in each.
"""

from __future__ import annotations

import threading
from collections import Counter

from django.conf import settings


class Tickets:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_user: Counter[object] = Counter()
        self._total = 0

    def admit(self, user_pk: object) -> str | None:
        """Take a place for one more stream of this user; None when admitted, else why not."""
        with self._lock:
            if self._total >= settings.DASHBOARD_STREAMS_MAX:
                return "This server holds as many live streams as it is configured for."
            if self._by_user[user_pk] >= settings.DASHBOARD_STREAMS_PER_USER:
                return "You have too many live pages open at once."
            self._by_user[user_pk] += 1
            self._total += 1
            return None

    def release(self, user_pk: object) -> None:
        with self._lock:
            self._by_user[user_pk] -= 1
            if self._by_user[user_pk] <= 0:
                del self._by_user[user_pk]
            self._total -= 1

    def held(self, user_pk: object | None = None) -> int:
        with self._lock:
            return self._total if user_pk is None else self._by_user[user_pk]


tickets = Tickets()
