"""Publishing notices: to this process's streams, or to every process's through Redis pub/sub.

Without Redis (the embedded default: one web process) a notice goes straight to this process's
hub. With PUSH_URL (by default the Redis of CACHE_URL), every notice is published on one channel;
each web process runs one listener thread that hands what it hears to its own hub, so an event
stored by any host's webhook reaches every host's streams.

Pub/sub delivers at most once and keeps nothing for a listener that is away. So when the listener
loses Redis, this process's streams are ended (the pages fall back to polling and reconnect), and
no new stream is accepted until it is back; when it reconnects, every page that opens a stream
fetches what it shows again.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings

from .hub import CLOSE, hub
from .notices import Notice, decode, encode

logger = logging.getLogger("conversations.push")

# How long a stream request waits for this process's listener to be subscribed before it is
# refused (and the page polls instead).
READY_WAIT_SECONDS = 3.0


def channel() -> str:
    return f"{settings.PUSH_CHANNEL_PREFIX}:notices"


def publish(notices: list[Notice]) -> None:
    """Send notices to every stream that waits for them (here or, with Redis, anywhere)."""
    if not notices:
        return
    if not settings.PUSH_URL:
        for notice in notices:
            hub.deliver(notice)
        return
    try:
        _publisher().publish(channel(), encode(notices))
    except Exception:
        logger.warning("push: could not publish %d notice(s) to Redis", len(notices))


def ready() -> bool:
    """Whether this process can serve streams now: always in-process; with Redis, once the
    listener is subscribed (started here on the first stream)."""
    if not settings.PUSH_URL:
        return True
    return _listener().wait_ready(READY_WAIT_SECONDS)


# --- Redis


_lock = threading.Lock()
_state: dict[str, object] = {}


def _publisher():
    import redis

    with _lock:
        client = _state.get("publisher")
        if client is None:
            # Short timeouts: a webhook's answer never waits long on a Redis that hangs.
            client = redis.Redis.from_url(
                settings.PUSH_URL, socket_connect_timeout=0.5, socket_timeout=0.5
            )
            _state["publisher"] = client
        return client


class Listener:
    """One thread per process: subscribed to the channel, handing notices to the hub."""

    def __init__(self, url: str, channel_name: str) -> None:
        self.url = url
        self.channel = channel_name
        self._ready = threading.Event()
        self._failed = False  # it lost (or never reached) Redis at least once
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="push-listener", daemon=True)
        self._thread.start()

    def wait_ready(self, seconds: float) -> bool:
        """Subscribed: at once. Starting: wait a little for it. Known to be down (it has failed
        since it started): no wait, so a crowd of reconnecting pages costs nothing."""
        if self._ready.is_set() or self._failed:
            return self._ready.is_set()
        return self._ready.wait(seconds)

    def stop(self) -> None:
        self._stopping.set()

    def _run(self) -> None:
        import redis

        backoff = 0.5
        while not self._stopping.is_set():
            client = redis.Redis.from_url(
                self.url, socket_connect_timeout=2, socket_timeout=10, health_check_interval=5
            )
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.channel)
                self._ready.set()
                if backoff > 0.5:
                    logger.info("push: subscribed to Redis again")
                backoff = 0.5
                while not self._stopping.is_set():
                    message = pubsub.get_message(timeout=5.0)
                    if message and message.get("type") == "message":
                        for notice in decode(message["data"]):
                            hub.deliver(notice)
            except Exception:
                if self._ready.is_set():
                    logger.warning("push: lost Redis; open streams end, pages poll meanwhile")
                self._ready.clear()
                self._failed = True
                hub.broadcast(CLOSE)
                time.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                try:
                    pubsub.close()
                    client.close()
                except Exception:  # noqa: S110 (closing a broken connection)
                    pass


def _listener() -> Listener:
    with _lock:
        listener = _state.get("listener")
        if listener is None or listener.url != settings.PUSH_URL:
            if listener is not None:
                listener.stop()
            listener = Listener(settings.PUSH_URL, channel())
            _state["listener"] = listener
        return listener


def reset() -> None:
    """Forget the Redis clients and stop the listener (tests switch PUSH_URL)."""
    with _lock:
        listener = _state.pop("listener", None)
        _state.pop("publisher", None)
    if listener is not None:
        listener.stop()
