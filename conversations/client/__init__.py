"""The Conversation API client: the only code that talks HTTP to Vonage and signs JWTs.

One module per concern:
- `errors`: the small family of errors every read may raise (with the last good data attached);
- `auth`: the RS256 application JWT, signed once per lifetime;
- `transport`: HTTP with retries, one deadline on the whole read, and a cap on the body;
- `payload`: JSON parsing with a nesting limit;
- `readcache`: the shared cache with coalescing, the page budget, cool-downs and stale copies;
- `endpoints`: one typed method per read endpoint (`ConversationClient`);
- `concurrency`: several reads at once;
- `registry`: the client of each configured application (`get_client`).
"""

from .auth import TokenSigner
from .concurrency import Outcome, concurrently
from .config import ClientConfig
from .endpoints import MAX_PAGE_SIZE, ORDERS, ConversationClient
from .errors import (
    AuthenticationFailed,
    BadRequest,
    BadResponse,
    NotConfigured,
    NotFound,
    RateLimited,
    StillLoading,
    Unavailable,
    UpstreamError,
)
from .registry import forget_clients, get_client

__all__ = [
    "MAX_PAGE_SIZE",
    "ORDERS",
    "AuthenticationFailed",
    "BadRequest",
    "BadResponse",
    "ClientConfig",
    "ConversationClient",
    "NotConfigured",
    "NotFound",
    "Outcome",
    "RateLimited",
    "StillLoading",
    "TokenSigner",
    "Unavailable",
    "UpstreamError",
    "concurrently",
    "forget_clients",
    "get_client",
]
