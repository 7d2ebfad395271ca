"""Bound the synchronous requests of one ASGI process.

Under ASGI, Django runs each synchronous view in a new thread. Nothing bounds them: a flood of slow
requests would start thousands of threads. This wrapper lets SYNC_REQUESTS_PER_PROCESS run at
once; others wait up to SYNC_REQUEST_QUEUE_SECONDS for a place, then get a plain 503. The health
checks pass by (a load balancer must always get an answer); streams never come here (asgi.py).
"""

from __future__ import annotations

import asyncio

from django.conf import settings

_EXEMPT = ("/healthz", "/readyz")


class BoundedSyncRequests:
    def __init__(self, app) -> None:
        self.app = app
        self._places: asyncio.Semaphore | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("path", "") in _EXEMPT:
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
