"""Trusting a signed RTC webhook (WEBHOOKS.md section 3), before any of its body is used.

Vonage signs each request with a JWT (HS256, the account's signature secret) whose claims bind it
to the body (`payload_hash`), a moment (`iat`, no `exp`), an account (`api_key`) and an
application. The official SDKs check only the signature; this checks every claim, so that a
captured request cannot be replayed, altered or moved to another account or application.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import time
import warnings
from dataclasses import dataclass
from typing import Any

import jwt

# The secret is the one Vonage issued for the account, whatever its length: PyJWT's advice to use
# a longer HMAC key is for whoever chooses keys, and would otherwise be logged on every request.
warnings.filterwarnings("ignore", category=jwt.warnings.InsecureKeyLengthWarning)

MAX_BODY_BYTES = 1024 * 1024
MAX_JTI_LENGTH = 200


class Refused(Exception):
    """A request that is not a trustworthy webhook: `status` is what to answer (nothing stored)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Verifier:
    secret: str
    api_key: str  # "" when any account's key is accepted
    application_id: str
    max_age_seconds: int

    def verify(self, authorization: str, body: bytes, now: float | None = None) -> dict[str, Any]:
        """The token's claims when the request is signed, fresh and bound to this body, key and
        application; raises Refused (401) otherwise."""
        if not self.secret:
            raise Refused(401, "webhooks are not configured (no VONAGE_SIGNATURE_SECRET)")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Refused(401, "no bearer token")
        claims = self._decode(token.strip())
        self._check_hash(claims.get("payload_hash"), body)
        self._check_time(claims.get("iat"), time.time() if now is None else now)
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_LENGTH:
            raise Refused(401, "no usable jti")
        if self.api_key and claims.get("api_key") != self.api_key:
            raise Refused(401, "signed for another account")
        if "application_id" in claims and claims["application_id"] != self.application_id:
            raise Refused(401, "signed for another application")
        return claims

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            # Only HS256: `none`, RS256 (a public key used as an HMAC secret) and the rest refused.
            if jwt.get_unverified_header(token).get("alg") != "HS256":
                raise Refused(401, "not signed with HS256")
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=["HS256"],
                # iat is checked below, both ways; Vonage's tokens carry no exp.
                options={"verify_iat": False, "require": ["iat", "jti", "payload_hash"]},
            )
        except jwt.PyJWTError:
            raise Refused(401, "bad signature or claims") from None
        if not isinstance(claims, dict):
            raise Refused(401, "bad claims")
        return claims

    @staticmethod
    def _check_hash(claimed: Any, body: bytes) -> None:
        if not isinstance(claimed, str):
            raise Refused(401, "no payload_hash")
        claimed = claimed.lower()
        if hmac.compare_digest(hashlib.sha256(body).hexdigest(), claimed):
            return
        # Vonage describes the hash as taken over the compact JSON serialisation of the payload:
        # accept that form too (WEBHOOKS.md section 3), never a body that says something else.
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):
            raise Refused(401, "payload_hash does not match the body") from None
        for ascii_only in (False, True):
            compact = json.dumps(parsed, separators=(",", ":"), ensure_ascii=ascii_only)
            # surrogatepass: a lone surrogate (half an emoji) in the body must not be a 500.
            digest = hashlib.sha256(compact.encode("utf-8", "surrogatepass")).hexdigest()
            if hmac.compare_digest(digest, claimed):
                return
        raise Refused(401, "payload_hash does not match the body")

    def _check_time(self, issued: Any, now: float) -> None:
        if isinstance(issued, bool) or not isinstance(issued, int | float):
            raise Refused(401, "no iat")
        if not math.isfinite(issued):  # NaN would pass any comparison below
            raise Refused(401, "no iat")
        if abs(now - issued) > self.max_age_seconds:
            raise Refused(401, "iat is outside the accepted window")
