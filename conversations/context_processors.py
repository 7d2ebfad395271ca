from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse
from django.utils.http import urlencode

from conversations.middleware import cache_unavailable
from conversations.push import notices

from . import dom

STREAMS_SERVED = "dashboard.streams_served"  # the WSGI environ key dashboard_project/asgi.py sets

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
        "stream_url": stream_url(request),
    }


# What each page follows on its stream (the topics are named in conversations/push/notices.py).
_PAGE_TOPICS = {
    "conversations:live": lambda kwargs: notices.LIVE,
    "conversations:detail": lambda kwargs: notices.conversation_topic(kwargs["conversation_id"]),
    "conversations:members": lambda kwargs: notices.conversation_topic(kwargs["conversation_id"]),
    "conversations:events": lambda kwargs: notices.conversation_topic(kwargs["conversation_id"]),
    "conversations:user": lambda kwargs: notices.user_topic(kwargs["user_id"]),
}


def stream_url(request: HttpRequest) -> str | None:
    """The stream this page listens to, or None: the page polls instead. None for a page that
    shows nothing live, with push turned off, under a WSGI server (where a stream would pin a
    thread), and without VONAGE_SIGNATURE_SECRET: with no webhook accepted, little would be told
    and a pushed page would wait for news that never comes."""
    if not (settings.DASHBOARD_PUSH and settings.VONAGE_SIGNATURE_SECRET):
        return None
    # Set by the ASGI application (dashboard_project/asgi.py), which serves the streams; under a
    # WSGI server nobody would answer the stream.
    if not request.META.get(STREAMS_SERVED):
        return None
    match = getattr(request, "resolver_match", None)
    topic = _PAGE_TOPICS.get(match.view_name) if match else None
    if topic is None:
        return None
    return f"{reverse('conversations:stream')}?{urlencode({'topic': topic(match.kwargs)})}"
