"""JWT verification for /v1 requests, following API.md section 8.

Application JWTs are RS256 only, signed with the application's private key, with required
claims ``application_id``, ``iat`` and ``jti``; ``exp`` is optional (max 24 h after ``iat``),
and a token without ``exp`` is accepted for 15 minutes after ``iat``.
"""

from __future__ import annotations

import time
from typing import Any
from uuid import uuid4

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

LEEWAY_SECONDS = 30  # clock skew between the caller and us
MAX_LIFETIME_SECONDS = 24 * 3600
NO_EXP_LIFETIME_SECONDS = 15 * 60


class AuthError(Exception):
    """Any reason to answer 401; the message is for logs only, never sent to the client."""


def load_public_key(pem: bytes | str) -> rsa.RSAPublicKey:
    data = pem.encode() if isinstance(pem, str) else pem
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the public key must be an RSA key")
    return key


class Verifier:
    def __init__(self, public_key: rsa.RSAPublicKey, application_id: str) -> None:
        self.public_key = public_key
        self.application_id = application_id

    def verify_header(self, authorization: str | None, now: float | None = None) -> dict[str, Any]:
        """Check an ``Authorization`` header value; returns the claims or raises AuthError."""
        if not authorization:
            raise AuthError("missing Authorization header")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("not a Bearer token")
        return self.verify(token.strip(), now)

    def verify(self, token: str, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError(f"malformed token: {exc}") from exc
        # Checked before decoding so "none", HS256 (e.g. keyed with our public key) and other
        # algorithms are refused whatever PyJWT would do with them.
        if header.get("alg") != "RS256":
            raise AuthError(f"algorithm {header.get('alg')!r} not allowed")
        try:
            claims = jwt.decode(
                token,
                self.public_key,
                algorithms=["RS256"],
                leeway=LEEWAY_SECONDS,
                options={
                    "require": ["iat", "jti", "application_id"],
                    "verify_aud": False,  # application JWTs carry no audience
                    "verify_iat": False,  # checked below against our ``now``
                    "verify_exp": False,
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from exc
        self._check_claims(claims, now)
        return claims

    def _check_claims(self, claims: dict[str, Any], now: float) -> None:
        if claims.get("application_id") != self.application_id:
            raise AuthError("application_id does not match")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise AuthError("jti must be a non-empty string")
        iat = _numeric(claims, "iat")
        if iat > now + LEEWAY_SECONDS:
            raise AuthError("iat is in the future")
        if "nbf" in claims and _numeric(claims, "nbf") > now + LEEWAY_SECONDS:
            raise AuthError("token not yet valid (nbf)")
        if "exp" in claims:
            exp = _numeric(claims, "exp")
            if exp <= now - LEEWAY_SECONDS:
                raise AuthError("token expired")
            if exp - iat > MAX_LIFETIME_SECONDS:
                raise AuthError("exp is more than 24 hours after iat")
        elif now - iat > NO_EXP_LIFETIME_SECONDS + LEEWAY_SECONDS:
            raise AuthError("token without exp is older than 15 minutes")


def _numeric(claims: dict[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AuthError(f"{name} must be a number")
    return float(value)


def generate_key_pair(bits: int = 2048) -> tuple[str, str]:
    """A new RSA key pair as (private PKCS#8 PEM, public SubjectPublicKeyInfo PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )
    return private_pem, public_pem


def mint_token(
    private_key_pem: str | bytes | rsa.RSAPrivateKey,
    application_id: str,
    *,
    ttl: int | None = 900,
    now: float | None = None,
    **claims: Any,
) -> str:
    """An application JWT as vonage-jwt makes one: RS256, application_id, iat, jti, exp.

    ``ttl=None`` leaves out ``exp``; extra ``claims`` (sub, acl, nbf...) override the defaults.
    Pass a loaded key when minting many tokens: parsing a PEM costs ~25 ms.
    """
    iat = int(time.time() if now is None else now)
    payload: dict[str, Any] = {"application_id": application_id, "iat": iat, "jti": str(uuid4())}
    if ttl is not None:
        payload["exp"] = iat + ttl
    payload.update(claims)
    return jwt.encode(payload, private_key_pem, algorithm="RS256", headers={"typ": "JWT"})
