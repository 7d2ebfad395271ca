"""POST /webhooks/rtc: what is accepted and stored, what is refused (and then nothing is stored)."""

from __future__ import annotations

import base64
import hashlib
import json
import time

import jwt
import pytest
from django.test import Client

from conversations.store.models import StoredConversation, StoredEvent, WebhookReceipt
from tests.webhooks import API_KEY, SECRET, deliver, encode, event, post, token

pytestmark = pytest.mark.django_db

CONVERSATION = "CON-1f3a2c5e-8a57-4b6c-9a8e-7d2f0f6b1c11"


@pytest.fixture(autouse=True)
def signed(settings):
    settings.VONAGE_SIGNATURE_SECRET = SECRET
    settings.VONAGE_API_KEY = API_KEY
    settings.VONAGE_WEBHOOK_MAX_AGE_SECONDS = 300


@pytest.fixture
def client():
    return Client()  # no login: Vonage is anonymous


def nothing_stored() -> bool:
    return not (
        StoredEvent.objects.exists()
        or WebhookReceipt.objects.exists()
        or StoredConversation.objects.exists()
    )


@pytest.mark.parametrize("path", ["/webhooks/rtc", "/webhooks/rtc/"])
def test_a_signed_event_is_stored_once_with_or_without_the_slash(client, path):
    raw = encode(event(CONVERSATION, 1, "member:joined"))
    response = post(client, raw, f"Bearer {token(raw)}", path=path)
    assert response.status_code == 200
    stored = StoredEvent.objects.get()
    assert (stored.conversation.vonage_id, stored.event_id, stored.type) == (
        CONVERSATION,
        1,
        "member:joined",
    )
    assert stored.body == json.loads(raw)  # the raw event kept whole
    assert WebhookReceipt.objects.get().stored is True


def test_a_duplicate_event_is_accepted_and_changes_nothing(client):
    body = event(CONVERSATION, 1, "custom:x", body={"n": 1})
    assert deliver(client, body).status_code == 200
    # The same event again (Vonage retries with a new jti), even with another body: a no-op.
    assert deliver(client, {**body, "body": {"n": 2}}).status_code == 200
    assert StoredEvent.objects.get().body["body"] == {"n": 1}
    receipts = list(WebhookReceipt.objects.order_by("id").values_list("stored", flat=True))
    assert receipts == [True, False]


def test_an_event_of_no_conversation_is_kept_as_a_receipt(client):
    knock = {"type": "app:knocking", "from": "knocker:1", "body": {"channel": {"type": "phone"}}}
    assert deliver(client, knock).status_code == 200
    receipt = WebhookReceipt.objects.get()
    assert (receipt.type, receipt.stored, receipt.body) == ("app:knocking", False, knock)
    assert not StoredEvent.objects.exists()


def refused(response, status: int) -> None:
    assert response.status_code == status, response.content
    assert nothing_stored()
    assert b"Traceback" not in response.content


def test_unsigned_is_refused(client):
    refused(post(client, encode(event(CONVERSATION, 1)), None), 401)
    refused(post(client, encode(event(CONVERSATION, 1)), "Basic dXNlcjpwYXNz"), 401)
    refused(post(client, encode(event(CONVERSATION, 1)), "Bearer "), 401)


def test_a_wrong_secret_is_refused(client):
    raw = encode(event(CONVERSATION, 1))
    refused(
        post(client, raw, f"Bearer {token(raw, secret='not-the-secret-0123456789abcdef-0123')}"),
        401,
    )


def test_an_altered_body_is_refused(client):
    raw = encode(event(CONVERSATION, 1))
    signature = token(raw)
    altered = encode(event(CONVERSATION, 1, body={"amount": 1000}))
    refused(post(client, altered, f"Bearer {signature}"), 401)


def test_the_compact_serialisation_of_the_body_is_accepted(client):
    """Vonage hashes the compact JSON; a body sent with spaces still matches that hash."""
    body = event(CONVERSATION, 1)
    compact = json.dumps(body, separators=(",", ":")).encode()
    spaced = json.dumps(body, indent=2).encode()
    assert post(client, spaced, f"Bearer {token(compact)}").status_code == 200


@pytest.mark.parametrize("offset", [-301, 301, -3600])
def test_a_stale_or_future_token_is_refused(client, offset):
    raw = encode(event(CONVERSATION, 1))
    refused(post(client, raw, f"Bearer {token(raw, iat=int(time.time()) + offset)}"), 401)


def test_a_token_within_the_window_either_way_is_accepted(client):
    for event_id, offset in ((1, -290), (2, 290)):
        raw = encode(event(CONVERSATION, event_id))
        assert (
            post(client, raw, f"Bearer {token(raw, iat=int(time.time()) + offset)}").status_code
            == 200
        )


@pytest.mark.parametrize("missing", ["iat", "jti", "payload_hash"])
def test_a_token_without_a_required_claim_is_refused(client, missing):
    raw = encode(event(CONVERSATION, 1))
    refused(post(client, raw, f"Bearer {token(raw, **{missing: None})}"), 401)


def test_another_account_or_application_is_refused(client):
    raw = encode(event(CONVERSATION, 1))
    refused(post(client, raw, f"Bearer {token(raw, api_key='other-key')}"), 401)
    refused(
        post(
            client,
            raw,
            f"Bearer {token(raw, application_id='bbbbbbbb-0000-4000-8000-000000000000')}",
        ),
        401,
    )
    other = encode(event(CONVERSATION, 1, application_id="bbbbbbbb-0000-4000-8000-000000000000"))
    refused(post(client, other, f"Bearer {token(other)}"), 401)


def test_without_a_configured_api_key_any_account_signed_with_the_secret_is_accepted(
    client, settings
):
    settings.VONAGE_API_KEY = ""
    raw = encode(event(CONVERSATION, 1))
    assert post(client, raw, f"Bearer {token(raw, api_key='any')}").status_code == 200


def test_a_replay_is_refused_and_stores_nothing_more(client):
    raw = encode(event(CONVERSATION, 1))
    signature = f"Bearer {token(raw)}"
    assert post(client, raw, signature).status_code == 200
    assert post(client, raw, signature).status_code == 401
    assert StoredEvent.objects.count() == WebhookReceipt.objects.count() == 1


def test_a_replayed_jti_on_a_new_event_stores_nothing(client):
    first = encode(event(CONVERSATION, 1))
    assert post(client, first, f"Bearer {token(first, jti='fixed-jti')}").status_code == 200
    second = encode(event(CONVERSATION, 2))
    assert post(client, second, f"Bearer {token(second, jti='fixed-jti')}").status_code == 401
    assert list(StoredEvent.objects.values_list("event_id", flat=True)) == [1]


def unsigned_token(body: bytes, algorithm_header: dict) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    claims = jwt.decode(token(body), options={"verify_signature": False})
    return f"{part(algorithm_header)}.{part(claims)}."


def test_alg_none_and_other_algorithms_are_refused(client, key_pair):
    raw = encode(event(CONVERSATION, 1))
    refused(post(client, raw, f"Bearer {unsigned_token(raw, {'alg': 'none', 'typ': 'JWT'})}"), 401)
    refused(post(client, raw, f"Bearer {token(raw, secret=key_pair[0], algorithm='RS256')}"), 401)
    refused(post(client, raw, f"Bearer {token(raw, secret=SECRET * 2, algorithm='HS512')}"), 401)


def test_without_a_signature_secret_everything_is_refused(client, settings):
    settings.VONAGE_SIGNATURE_SECRET = ""
    raw = encode(event(CONVERSATION, 1))
    refused(post(client, raw, f"Bearer {token(raw)}"), 401)


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"[1, 2]", b'"text"', b"", b"{" * 5000, b"\xff\xfe"],
    ids=["text", "array", "string", "empty", "deep", "bytes"],
)
def test_a_signed_body_that_is_not_a_json_object_is_400(client, raw):
    refused(post(client, raw, f"Bearer {token(raw)}"), 400)


@pytest.mark.parametrize(
    "fields",
    [
        {"id": "seven"},
        {"id": -1},
        {"id": 2**40},
        {"id": True},
        {"conversation_id": "CON-../../etc"},
        {"conversation_id": "<script>"},
        {"type": ""},
        {"type": "x" * 101},
        {"type": ["member:joined"]},
        {"id": None},
    ],
)
def test_a_signed_body_that_is_no_placeable_event_is_kept_as_a_receipt_only(client, fields):
    """Vonage sent it (the signature says so): refusing would lose it for good, and the shapes
    of RTC webhooks are not all documented. It is kept as it came, never as an event."""
    body = event(CONVERSATION, 1) | fields
    assert deliver(client, body).status_code == 200
    assert not StoredEvent.objects.exists() and not StoredConversation.objects.exists()
    receipt = WebhookReceipt.objects.get()
    assert (receipt.stored, receipt.body) == (False, body)
    assert len(receipt.type) <= 100
    assert receipt.conversation_vonage_id in ("", CONVERSATION)


def test_lone_surrogates_and_non_finite_numbers_are_stored_replaced(client):
    """jsonb refuses half an emoji and NaN: replaced, so the delivery is not a 5xx for ever."""
    raw = (
        '{"conversation_id": "' + CONVERSATION + '", "id": 1, "type": "custom:\\ud83d",'
        ' "body": {"name": "a\\ud83db", "n": NaN, "m": [Infinity]}}'
    ).encode()
    assert post(client, raw, f"Bearer {token(raw)}").status_code == 200
    stored = StoredEvent.objects.get()
    assert stored.type == "custom:\ufffd"
    assert stored.body["body"] == {"name": "a\ufffdb", "n": None, "m": [None]}


def test_the_compact_hash_of_a_body_with_a_lone_surrogate_is_no_500(client):
    body = event(CONVERSATION, 1, body={"name": "a\ud83db"})
    compact = json.dumps(body, separators=(",", ":")).encode()
    spaced = json.dumps(body, indent=1).encode()
    assert post(client, spaced, f"Bearer {token(compact)}").status_code == 200


def test_a_nan_iat_is_refused(client):
    raw = encode(event(CONVERSATION, 1))
    signed = jwt.encode(
        {"iat": float("nan"), "jti": "j", "payload_hash": hashlib.sha256(raw).hexdigest()},
        SECRET,
        algorithm="HS256",
    )
    refused(post(client, raw, f"Bearer {signed}"), 401)


def test_past_one_mebibyte_is_413(client):
    big = encode(event(CONVERSATION, 1, body={"text": "x" * (1024 * 1024)}))
    refused(post(client, big, f"Bearer {token(big)}"), 413)


def test_other_methods_are_not_allowed(client):
    assert client.get("/webhooks/rtc").status_code == 405
    assert client.put("/webhooks/rtc", data=b"{}").status_code == 405


def test_event_ids_as_strings_are_stored_as_numbers(client):
    assert deliver(client, event(CONVERSATION, "12")).status_code == 200
    assert StoredEvent.objects.get().event_id == 12


def test_nul_characters_are_stored_as_replacement_characters(client):
    """PostgreSQL stores no NUL in text or jsonb: a hostile NUL must not make the delivery fail
    (a 5xx would make Vonage send it again and again)."""
    body = event(CONVERSATION, 1, "custom:a\u0000b", body={"te\u0000xt": ["x\u0000y"]})
    assert deliver(client, body).status_code == 200
    stored = StoredEvent.objects.get()
    assert stored.type == "custom:a\ufffdb"
    assert stored.body["body"] == {"te\ufffdxt": ["x\ufffdy"]}
