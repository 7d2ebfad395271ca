"""JWT checks on /v1 (API.md section 8) and the 401 body."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sandbox.auth import AuthError, Verifier, generate_key_pair, load_public_key, mint_token

ERROR_KEYS = {"title", "type", "code", "detail", "instance"}


def assert_401(response: requests.Response) -> None:
    assert response.status_code == 401
    body = response.json()
    assert set(body) == ERROR_KEYS
    assert body["code"] == "system:error:invalid-token"
    assert body["type"].endswith("#system:error:invalid-token")
    assert len(body["instance"]) == 32


def get(sb, headers: dict | None = None) -> requests.Response:
    return requests.get(f"{sb.base_url}/v1/conversations", headers=headers or {}, timeout=10)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_valid_token_is_accepted(sb):
    response = get(sb, sb.auth_headers())
    assert response.status_code == 200


def test_token_without_exp_is_accepted_while_fresh(sb):
    assert get(sb, bearer(sb.token(ttl=None))).status_code == 200


def test_missing_header(sb):
    assert_401(get(sb))


@pytest.mark.parametrize("value", ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc"])
def test_malformed_header(sb, value):
    assert_401(get(sb, {"Authorization": value}))


def test_garbage_token(sb):
    assert_401(get(sb, bearer("not.a.jwt")))


def test_wrong_key(sb):
    other_private, _ = generate_key_pair()
    assert_401(get(sb, bearer(mint_token(other_private, sb.application_id))))


def test_wrong_application_id(sb):
    assert_401(get(sb, bearer(sb.token(application_id=str(uuid.uuid4())))))


def test_expired(sb):
    now = time.time()
    token = mint_token(sb.private_key_pem, sb.application_id, now=now - 3600, ttl=600)
    assert_401(get(sb, bearer(token)))


def test_no_exp_older_than_15_minutes(sb):
    token = mint_token(sb.private_key_pem, sb.application_id, now=time.time() - 20 * 60, ttl=None)
    assert_401(get(sb, bearer(token)))


def test_lifetime_over_24_hours(sb):
    assert_401(get(sb, bearer(sb.token(ttl=25 * 3600))))


def test_iat_in_the_future(sb):
    token = mint_token(sb.private_key_pem, sb.application_id, now=time.time() + 3600)
    assert_401(get(sb, bearer(token)))


def test_missing_jti(sb):
    now = int(time.time())
    payload = {"application_id": sb.application_id, "iat": now, "exp": now + 60}
    assert_401(get(sb, bearer(jwt.encode(payload, sb.private_key_pem, algorithm="RS256"))))


def test_hs256_keyed_with_the_public_key_is_refused(sb):
    now = int(time.time())
    payload = {"application_id": sb.application_id, "iat": now, "exp": now + 60, "jti": "x"}
    header = jwt.utils.base64url_encode(b'{"alg":"HS256","typ":"JWT"}').decode()
    body = jwt.utils.base64url_encode(json.dumps(payload).encode()).decode()
    signing_input = f"{header}.{body}".encode()
    signature = hmac.new(sb.public_key_pem.encode(), signing_input, hashlib.sha256).digest()
    token = f"{header}.{body}.{jwt.utils.base64url_encode(signature).decode()}"
    assert_401(get(sb, bearer(token)))


def test_unsigned_token_is_refused(sb):
    now = int(time.time())
    payload = {"application_id": sb.application_id, "iat": now, "exp": now + 60, "jti": "x"}
    assert_401(get(sb, bearer(jwt.encode(payload, None, algorithm="none"))))


def test_control_endpoints_need_no_token(sb):
    response = requests.get(f"{sb.base_url}/_sandbox/healthz", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"ok": True}


def test_every_v1_path_needs_a_token(sb):
    for path in ("/v1/users", "/v1/conversations/CON-x/events", "/v1/nowhere", "/v1"):
        response = requests.get(sb.base_url + path, timeout=10)
        assert_401(response)


def test_verifier_unit_checks():
    private_pem, public_pem = generate_key_pair()
    verifier = Verifier(load_public_key(public_pem), "app")
    claims = verifier.verify_header(f"Bearer {mint_token(private_pem, 'app', sub='alice')}")
    assert claims["application_id"] == "app"
    assert claims["sub"] == "alice"
    token = mint_token(private_pem, "app", now=1_000_000)
    assert verifier.verify(token, now=1_000_100)["iat"] == 1_000_000
    with pytest.raises(AuthError):
        verifier.verify(token, now=1_000_000 + 901 + 30)  # exp + leeway passed
    with pytest.raises(AuthError):
        verifier.verify(mint_token(private_pem, "app", iat="yesterday"))
    with pytest.raises(ValueError, match="RSA"):
        ec_pem = (
            ec.generate_private_key(ec.SECP256R1())
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        load_public_key(ec_pem)
