"""Running a coroutine from a synchronous test.

On a thread of its own, with a loop of its own: once the browser tests have started Playwright
(its synchronous API keeps an event loop running on the main thread for the whole session),
`asyncio.run` on the main thread refuses to start another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-loop") as pool:
        return pool.submit(asyncio.run, coroutine).result()
