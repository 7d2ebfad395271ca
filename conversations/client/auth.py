"""The application JWT (RS256) that authenticates every read, signed once per lifetime."""

from __future__ import annotations

import threading
import time
import uuid

import jwt


class TokenSigner:
    """Signs application JWTs (RS256) and reuses each until shortly before it expires."""

    # Re-sign this long before expiry so a token never expires in flight.
    REFRESH_MARGIN_SECONDS = 60

    def __init__(self, application_id: str, private_key_pem: str, ttl_seconds: int = 900) -> None:
        if not 30 <= ttl_seconds <= 86400:
            raise ValueError("JWT lifetime must be between 30 seconds and 24 hours")
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        # Load (and so validate) the key once; the PEM text is not kept.
        self._key = load_pem_private_key(private_key_pem.encode(), password=None)
        if not isinstance(self._key, rsa.RSAPrivateKey):  # RS256 needs RSA; EC would fail later
            raise ValueError("the private key is not an RSA key")
        self.application_id = application_id
        self.ttl_seconds = ttl_seconds
        self._lock = threading.Lock()
        self._token = ""
        self._expires_at = 0.0
        self.signed_count = 0

    def token(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        with self._lock:
            margin = min(self.REFRESH_MARGIN_SECONDS, self.ttl_seconds / 4)
            if not self._token or now >= self._expires_at - margin:
                issued = int(now)
                claims = {
                    "application_id": self.application_id,
                    "iat": issued,
                    "jti": str(uuid.uuid4()),
                    "exp": issued + self.ttl_seconds,
                }
                self._token = jwt.encode(claims, self._key, algorithm="RS256")
                self._expires_at = issued + self.ttl_seconds
                self.signed_count += 1
            return self._token

    def __repr__(self) -> str:  # never show key material
        return f"<TokenSigner application_id={self.application_id!r}>"
