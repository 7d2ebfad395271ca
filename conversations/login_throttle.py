"""Login throttling with django-axes: who the client is behind proxies, and what locks out.

- The client's address: behind TRUSTED_PROXY_COUNT proxies (the TLS proxy the README recommends,
  a load balancer...), REMOTE_ADDR is the nearest proxy, shared by every client; each proxy
  appends the address it got the request from to X-Forwarded-For. So the client is the entry
  TRUSTED_PROXY_COUNT places from the right; the entries to its left came from the client itself
  and are not believed. (axes' own hook, AXES_CLIENT_IP_CALLABLE: no extra package, and no
  guessing among headers that anyone can send.)
- A lock-out is per username and address (one staff member's typos do not lock out the others
  sharing an office address), plus a per-address limit across usernames (AXES_IP_FAILURE_LIMIT):
  trying many usernames from one address is throttled too.
- Failures are counted in the database, not the cache: login must keep working while Redis is
  down, and the resilient cache would forget failures (every count a miss) exactly then. The
  database is what login needs anyway (users, sessions), so it adds no new way to fail.
"""

from __future__ import annotations

import ipaddress

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_failure_limit
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str:
    """The client's IP address, trusting exactly TRUSTED_PROXY_COUNT proxies in front of us."""
    remote = request.META.get("REMOTE_ADDR", "")
    count = settings.TRUSTED_PROXY_COUNT
    if count <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    if len(forwarded) < count:
        # Fewer hops than proxies: the request did not come through them all (or is forged).
        return remote
    try:
        return str(ipaddress.ip_address(forwarded[-count]))
    except ValueError:
        return remote


class DatabaseHandlerWithAddressLimit(AxesDatabaseHandler):
    """axes' database handler, plus a lock-out of an address after AXES_IP_FAILURE_LIMIT
    failures within the cool-off time, whatever the usernames tried."""

    def get_failures(self, request, credentials: dict | None = None) -> int:
        failures = super().get_failures(request, credentials)
        from_address = (
            AccessAttempt.objects.filter(
                ip_address=request.axes_ip_address,
                attempt_time__gte=get_cool_off_threshold(request),
            ).aggregate(total=Sum("failures_since_start"))["total"]
            or 0
        )
        if from_address >= settings.AXES_IP_FAILURE_LIMIT:
            # Counted on the per-username scale, so that axes' one limit check locks this out.
            return max(failures, get_failure_limit(request, credentials))
        return failures
