"""Signing webhooks as Vonage does (WEBHOOKS.md section 3), for the tests of /webhooks/rtc."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from typing import Any

import jwt

SECRET = "tests-signature-secret-0123456789abcdef"
API_KEY = "abcd1234"
APPLICATION_ID = "aaaaaaaa-bbbb-4ccc-8ddd-000000000001"  # the sandbox's (settings)


def event(conversation_id: str, event_id: int, event_type: str = "custom:test", **fields: Any):
    body = {
        "application_id": APPLICATION_ID,
        "conversation_id": conversation_id,
        "from": "MEM-7b8c9d10-1e2f-4a3b-8c4d-5e6f7a8b9c0d",
        "id": event_id,
        "timestamp": "2026-11-27T09:12:44.512Z",
        "type": event_type,
        "body": {},
    }
    body.update(fields)
    return body


def encode(body: Any) -> bytes:
    return json.dumps(body).encode()


def token(body: bytes, *, secret: str = SECRET, algorithm: str = "HS256", **claims: Any) -> str:
    values: dict[str, Any] = {
        "iat": int(time.time()),
        "jti": str(uuid.uuid4()),
        "iss": "Vonage",
        "api_key": API_KEY,
        "application_id": APPLICATION_ID,
        "payload_hash": hashlib.sha256(body).hexdigest(),
    }
    values.update(claims)
    values = {key: value for key, value in values.items() if value is not None}
    return jwt.encode(values, secret, algorithm=algorithm)


def post(client, body: bytes, authorization: str | None, path: str = "/webhooks/rtc"):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization is not None else {}
    return client.post(path, data=body, content_type="application/json", **headers)


def deliver(client, body: dict[str, Any], **claims: Any):
    raw = encode(body)
    return post(client, raw, f"Bearer {token(raw, **claims)}")
