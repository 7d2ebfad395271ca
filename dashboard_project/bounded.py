"""Bound the wait for one of the page threads of an ASGI process.

The pages run in a fixed pool of SYNC_REQUESTS_PER_PROCESS threads (asgi.py); behind it, requests
would queue without end. Here as many as there are threads run at once; the others wait up to
SYNC_REQUEST_QUEUE_SECONDS for a place, then get a plain 503, so that a flood of slow requests is
refused rather than queued for minutes. Streams and the health checks never come here (asgi.py).
"""

from __future__ import annotations

import asyncio

from django.conf import settings


class BoundedSyncRequests:
    def __init__(self, app) -> None:
        self.app = app
        self._places: asyncio.Semaphore | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._places is None:  # made on the server's own event loop
            self._places = asyncio.Semaphore(settings.SYNC_REQUESTS_PER_PROCESS)
        try:
            await asyncio.wait_for(self._places.acquire(), settings.SYNC_REQUEST_QUEUE_SECONDS)
        except TimeoutError:
            await _busy(send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self._places.release()


async def _busy(send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"retry-after", b"5"),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b"The dashboard is busy; try again shortly."})
