"""`python -m sandbox serve`, plus a count of the distinct JWTs (`jti`s) the sandbox verified.

The sandbox's own /_sandbox/stats counts requests per endpoint; the benchmark also wants to know
how many tokens the dashboard signed, and every signed token has its own `jti`. This wrapper
swaps in a verifier that records them and adds `jwt_ids_seen` (since start, not reset by
/_sandbox/stats/reset) to the stats snapshot. If the sandbox's internals ever move, it says so
on stderr and serves unchanged: the benchmark then reports the JWT count as unavailable.

    python -m bench.sandbox_server serve --public-key ... (the same flags as python -m sandbox)
"""

from __future__ import annotations

import sys
import threading
from typing import Any

_seen: set[str] = set()
_seen_lock = threading.Lock()


def _install() -> bool:
    try:
        import sandbox.app
        import sandbox.server
        from sandbox.auth import Verifier
        from sandbox.stats import Stats
    except ImportError:
        return False
    if not (
        getattr(sandbox.server, "Verifier", None) is Verifier
        and getattr(sandbox.app, "Stats", None) is Stats
    ):
        return False

    class CountingVerifier(Verifier):
        def verify(self, token: str, now: float | None = None) -> dict[str, Any]:
            claims = super().verify(token, now)
            with _seen_lock:
                _seen.add(str(claims.get("jti")))
            return claims

    class CountingStats(Stats):
        def snapshot(self) -> dict[str, Any]:
            data = super().snapshot()
            with _seen_lock:
                data["jwt_ids_seen"] = len(_seen)
            return data

    sandbox.server.Verifier = CountingVerifier
    sandbox.app.Stats = CountingStats
    return True


def main() -> int:
    if not _install():
        print("bench: cannot count JWTs on this sandbox; serving without", file=sys.stderr)
    from sandbox.__main__ import main as sandbox_main

    return sandbox_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
