"""`POST /webhooks/rtc`: Vonage's signed RTC event webhooks into the event store.

No login and no CSRF (Vonage is the caller): trust comes from the signature (store/webhook.py).
Answers: 200 when accepted (a duplicate event too: it is a no-op; a verified body that is no event
the store can place is kept as a receipt), 401 when the request is not a trustworthy webhook, 400
when its body is not a JSON object, 413 past 1 MiB. Nothing is stored on a 4xx.
A database that fails answers 503 (conversations.middleware), so that Vonage retries; the
transaction leaves nothing half-stored, and the reconciler reads any gap later.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from conversations.client import payload
from conversations.store import ingest
from conversations.store.webhook import MAX_BODY_BYTES, Refused, Verifier

logger = logging.getLogger("conversations.webhooks")


def verifier() -> Verifier:
    """Read from settings per request, so that tests (and a reload) see the current values."""
    return Verifier(
        secret=settings.VONAGE_SIGNATURE_SECRET,
        api_key=settings.VONAGE_API_KEY,
        application_id=settings.VONAGE_APPLICATION_ID,
        max_age_seconds=settings.VONAGE_WEBHOOK_MAX_AGE_SECONDS,
    )


@csrf_exempt
@never_cache
@require_POST
def rtc_webhook(request: HttpRequest) -> JsonResponse:
    try:
        body = read_body(request)
        claims = verifier().verify(request.headers.get("Authorization", ""), body)
        event = parse_event(body)
        if event.get("application_id", settings.VONAGE_APPLICATION_ID) != (
            settings.VONAGE_APPLICATION_ID
        ):
            raise Refused(401, "an event of another application")
        app = ingest.application(settings.VONAGE_APPLICATION_ID)
        new = ingest.store_webhook(app, claims["jti"], event)
    except Refused as refusal:
        logger.warning("webhook refused: %s %s", refusal.status, refusal.reason)
        return JsonResponse({"error": refusal.reason}, status=refusal.status)
    except ingest.Replay:
        logger.warning("webhook refused: 401 replayed jti")
        return JsonResponse({"error": "this request was accepted before"}, status=401)
    return JsonResponse({"stored": new})


def read_body(request: HttpRequest) -> bytes:
    """The raw body, refused past MAX_BODY_BYTES without reading more than one byte over it."""
    try:
        declared = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        raise Refused(400, "bad Content-Length") from None
    if declared > MAX_BODY_BYTES:
        raise Refused(413, "the body is larger than 1 MiB")
    body = request.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        raise Refused(413, "the body is larger than 1 MiB")
    return body


def parse_event(body: bytes) -> dict:
    """The body as a JSON object, nested no deeper than the client's own limit."""
    try:
        event = payload.loads(body)
    except (payload.MalformedJSON, payload.TooComplex):
        raise Refused(400, "the body is not JSON") from None
    if not isinstance(event, dict):
        raise Refused(400, "the body is not a JSON object")
    return event
