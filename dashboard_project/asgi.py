"""The ASGI application: what the production server (uvicorn workers under gunicorn) and `make
run` (uvicorn) serve.

- /stream/ is served straight from here (conversations/push/stream.py): each open stream is a
  coroutine on the event loop, with no thread and no database connection of its own.
- Everything else is Django's WSGI handler, run by a2wsgi in a fixed pool of
  SYNC_REQUESTS_PER_PROCESS threads. The views are synchronous; served through Django's ASGI
  handler instead, each request would get a new thread and hop between threads for each
  middleware, and could keep no database connection for the next one: measured on this machine,
  half the requests per second (56 against 107 on /live/, 47 against 87 webhooks a second).
  Requests that find every thread busy wait up to SYNC_REQUEST_QUEUE_SECONDS, then get a 503
  (dashboard_project/bounded.py).
- /healthz and /readyz have two threads of their own, so that a probe is answered while every
  page thread waits on a slow upstream.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard_project.settings")

django_wsgi = get_wsgi_application()

from a2wsgi import WSGIMiddleware  # noqa: E402 (after Django's setup)
from django.conf import settings  # noqa: E402

from conversations.context_processors import STREAMS_SERVED  # noqa: E402
from conversations.push.stream import endpoint as stream_endpoint  # noqa: E402
from dashboard_project.bounded import BoundedSyncRequests  # noqa: E402

PROBES = ("/healthz", "/readyz")


# Every request served here is marked: its page may follow a stream, as this server serves them
# (context_processors.stream_url). A WSGI environ key, not a header: no client can set it.
def _django_with_streams(environ, start_response):
    environ[STREAMS_SERVED] = True
    return django_wsgi(environ, start_response)


_page_threads = WSGIMiddleware(_django_with_streams, workers=settings.SYNC_REQUESTS_PER_PROCESS)
_pages = BoundedSyncRequests(_page_threads)
_probes = WSGIMiddleware(_django_with_streams, workers=2)


async def application(scope, receive, send):
    path = scope.get("path", "")
    if scope["type"] != "http":
        return  # no WebSocket; the lifespan protocol is not needed (Django has no startup hooks)
    if path == "/stream/":
        await stream_endpoint(scope, receive, send)
    elif path in PROBES:
        await _probes(scope, receive, send)
    else:
        await _pages(scope, receive, send)
