"""The ASGI application: what the production server (uvicorn workers under gunicorn) and `make
run` (uvicorn) serve. Streams (/stream/) are async and wait on the event loop; every other view is
synchronous and runs in a thread of its own, so the number of those running at once is bounded
here (SYNC_REQUESTS_PER_PROCESS), as gunicorn's threads bounded it before."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard_project.settings")

django_application = get_asgi_application()

from dashboard_project.bounded import BoundedSyncRequests  # noqa: E402 (after Django's setup)

application = BoundedSyncRequests(django_application)
