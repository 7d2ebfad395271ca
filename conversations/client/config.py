"""What one client needs to know: which API, as which application, and its limits."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClientConfig:
    base_url: str
    application_id: str
    private_key_pem: str
    connect_timeout: float = 3.05
    read_timeout: float = 10.0
    # The whole of one read: connect, headers, body and retries. Past it the read fails.
    total_budget: float = 15.0
    # How long a page waits for a read before it renders without it (the read goes on).
    page_budget: float = 3.0
    max_retries: int = 2
    jwt_ttl_seconds: int = 900
    cache_seconds: float = 2.0
    stale_seconds: int = 600
    # A decompressed body larger than this is a bad response (a gzip bomb, a runaway list).
    max_bytes: int = 8 * 1024 * 1024
    # However long a 429's Retry-After asks for, reads wait at most this long.
    max_cooldown_seconds: float = 120.0
    # During a cool-down, one read this often tries the API anyway and ends it if it answers.
    cooldown_probe_seconds: float = 10.0
    cache_alias: str = "default"

    def __repr__(self) -> str:  # never show key material
        return f"ClientConfig(base_url={self.base_url!r}, application_id={self.application_id!r})"
