"""/stream/ as a Django view: only reached under a WSGI server (the ASGI application serves the
stream itself, conversations/push/stream.py). A WSGI server would pin a thread per stream, so the
answer is a 503 after the usual access checks; pages under WSGI do not ask for a stream and poll."""

from __future__ import annotations

from django.http import HttpResponse

from .base import HtmxHttpRequest, dashboard_view


@dashboard_view
def stream(request: HtmxHttpRequest) -> HttpResponse:
    response = HttpResponse(
        "Live streams need the ASGI server; pages poll instead.",
        status=503,
        content_type="text/plain; charset=utf-8",
    )
    response["Retry-After"] = "60"
    return response
