from django.conf import settings
from django.http import HttpRequest

from conversations.middleware import cache_unavailable

from . import dom

_DOM_IDS = dom.for_templates()


def dashboard(request: HttpRequest) -> dict:
    """What every dashboard template may use: the admin look's titles, the refresh interval,
    whether the cache was unavailable while this request ran (for the banner in base.html), and
    the ids of the regions htmx swaps (`{{ dom.header }}`)."""
    return {
        "site_header": "Conversation dashboard",
        "site_title": "Conversation dashboard",
        "has_permission": request.user.is_authenticated and request.user.is_staff,
        "refresh_seconds": settings.DASHBOARD_REFRESH_SECONDS,
        "on_sandbox": settings.USING_SANDBOX,
        "cache_unavailable": cache_unavailable(request),
        "dom": _DOM_IDS,
    }
