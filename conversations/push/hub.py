"""This process's open streams, and the notices each waits for.

A stream runs on an event loop (uvicorn's, one per process); notices arrive from other threads (a
webhook view's, or the Redis listener's). So each subscription keeps its loop, and delivery hands
the notice over with `call_soon_threadsafe`: the only way into a loop from another thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from collections.abc import Iterable

from .notices import RESYNC, Notice

# Notices one stream may have waiting. A page that falls this far behind (a stalled client) gets
# one "resync" instead of the backlog: it fetches everything again, which is always right.
QUEUE_SIZE = 64

# Put into a subscription's queue to end its stream (the fan-out lost Redis, the process stops).
CLOSE = Notice("*", "close")


class Subscription:
    def __init__(self, topics: Iterable[str], loop: asyncio.AbstractEventLoop) -> None:
        self.topics = frozenset(topics)
        self.loop = loop
        self.queue: asyncio.Queue[Notice] = asyncio.Queue(maxsize=QUEUE_SIZE)

    def offer(self, notice: Notice) -> None:
        """Queue a notice (on the subscription's own loop)."""
        try:
            self.queue.put_nowait(notice)
        except asyncio.QueueFull:
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(CLOSE if notice is CLOSE else RESYNC)

    def pending(self) -> list[Notice]:
        """Everything queued now, without waiting (several notices make one burst)."""
        notices = []
        while not self.queue.empty():
            notices.append(self.queue.get_nowait())
        return notices


class Hub:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_topic: dict[str, set[Subscription]] = defaultdict(set)
        self._all: set[Subscription] = set()

    def subscribe(self, topics: Iterable[str], loop: asyncio.AbstractEventLoop) -> Subscription:
        subscription = Subscription(topics, loop)
        with self._lock:
            self._all.add(subscription)
            for topic in subscription.topics:
                self._by_topic[topic].add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._all.discard(subscription)
            for topic in subscription.topics:
                subscribers = self._by_topic.get(topic)
                if subscribers is not None:
                    subscribers.discard(subscription)
                    if not subscribers:
                        del self._by_topic[topic]

    def deliver(self, notice: Notice) -> int:
        """Hand a notice to every subscription of its topic, from any thread. Returns how many."""
        with self._lock:
            subscribers = list(self._by_topic.get(notice.topic, ()))
        return sum(_hand_over(subscription, notice) for subscription in subscribers)

    def broadcast(self, notice: Notice) -> int:
        """Hand a notice to every subscription (a resync, or the end of every stream)."""
        with self._lock:
            subscribers = list(self._all)
        return sum(_hand_over(subscription, notice) for subscription in subscribers)

    def count(self) -> int:
        with self._lock:
            return len(self._all)


def _hand_over(subscription: Subscription, notice: Notice) -> bool:
    try:
        subscription.loop.call_soon_threadsafe(subscription.offer, notice)
    except RuntimeError:  # its loop has closed: the stream is gone, its finally unsubscribes
        return False
    return True


hub = Hub()
