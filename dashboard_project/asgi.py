"""The ASGI application: what the production server (uvicorn workers under gunicorn) and `make
run` (uvicorn) serve. Streams (/stream/) are served straight from here, coroutines on the event
loop with no thread of their own (conversations/push/stream.py); everything else goes to Django,
whose synchronous views each run in a thread, so the number of those running at once is bounded
(SYNC_REQUESTS_PER_PROCESS, dashboard_project/bounded.py), as gunicorn's threads bounded it."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard_project.settings")

django_application = get_asgi_application()

from conversations.push.stream import endpoint as stream_endpoint  # noqa: E402 (after setup)
from dashboard_project.bounded import BoundedSyncRequests  # noqa: E402

_pages = BoundedSyncRequests(django_application)


async def application(scope, receive, send):
    if scope["type"] == "http" and scope.get("path") == "/stream/":
        await stream_endpoint(scope, receive, send)
    else:
        await _pages(scope, receive, send)
