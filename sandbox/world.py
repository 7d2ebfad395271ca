"""The sandbox world: seeded data plus live activity.

One ``RLock`` (``world.lock``) guards every read and mutation: the HTTP app holds it while it
pages and renders, and the activity thread holds it for a whole tick, so a page never sees a
half-applied call.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sandbox.calls import CallScript, new_uuid
from sandbox.model import Conversation, Event, Member, User
from sandbox.seed import generate, make_member

Now = float | datetime | None
# Called with each event live activity or a control operation appends, under ``World.lock``.
EventListener = Callable[[Conversation, Event], None]


def to_ms(now: Now) -> int:
    """Epoch ms from None (wall clock), epoch seconds, or an aware datetime."""
    if now is None:
        return int(time.time() * 1000)
    if isinstance(now, datetime):
        return int(now.timestamp() * 1000)
    return int(now * 1000)


class DuplicateName(ValueError):
    pass


class World:
    """All conversations, members, events, users and sessions of one sandbox."""

    def __init__(
        self,
        seed: int = 42,
        conversations: int = 300,
        users: int = 60,
        big_conversation_events: int = 10_000,
        now: Now = None,
    ) -> None:
        self.lock = threading.RLock()
        self.seed = seed
        data = generate(seed, conversations, users, big_conversation_events, to_ms(now))
        self._users = data.users
        self._users_by_id = {u.id: u for u in data.users}
        self._sorted = data.conversations  # ascending by (created, id)
        self._by_id = {c.id: c for c in data.conversations}
        self.big_conversation_id = data.big_conversation_id
        self.hostile_conversation_id = data.hostile_conversation_id
        self.hostile_user_id = data.hostile_user_id
        self.api_key = data.api_key
        # Live activity has its own RNG so the seeded world does not depend on how many ticks
        # ran, and ticks are reproducible for a given seed and sequence of ``now`` values.
        self._rng = random.Random(f"activity-{seed}")
        self._script = CallScript(self._rng, self._users_by_id)
        self._live: dict[str, int] = {}  # ACTIVE conversation id -> ticks left before it ends
        # ACTIVE conversations that live activity has not scheduled yet (seeded or created from
        # outside a tick); a list rather than a scan so a tick costs O(live calls), not O(world).
        self._unscheduled = [c.id for c in self._sorted if c.state == "ACTIVE"]
        self._listeners: list[EventListener] = []

    def add_listener(self, listener: EventListener) -> None:
        """Call ``listener(conversation, event)`` for every event appended from now on (not the
        seeded ones). It runs under the world lock, so it must be quick and must not block."""
        with self.lock:
            self._listeners.append(listener)

    def _emit(self, conv: Conversation, event: Event) -> None:
        for listener in self._listeners:
            listener(conv, event)

    # ------------------------------------------------------------------ reads (hold the lock)

    def conversations(self) -> list[Conversation]:
        """All conversations ascending by (created, id). Callers must not mutate the list."""
        return self._sorted

    def conversation(self, conversation_id: str) -> Conversation | None:
        return self._by_id.get(conversation_id)

    def users(self) -> list[User]:
        return self._users

    @property
    def users_by_id(self) -> dict[str, User]:
        """User id -> User. Callers must not mutate the mapping."""
        return self._users_by_id

    def conversation_named(self, name: str) -> Conversation | None:
        return next((c for c in self._sorted if c.name == name), None)

    def user(self, user_id: str) -> User | None:
        return self._users_by_id.get(user_id)

    def memberships(self, user_id: str) -> list[tuple[Conversation, Member]]:
        """(conversation, member) for each conversation the user is in, ascending by created.

        A scan is cheap at sandbox sizes and can never go stale, unlike an index.
        """
        out = []
        for conv in self._sorted:
            mine = [m for m in conv.members if m.user_id == user_id]
            if mine:
                out.append((conv, mine[-1]))
        return out

    def summary(self) -> dict[str, Any]:
        with self.lock:
            states: dict[str, int] = {}
            for conv in self._sorted:
                states[conv.state] = states.get(conv.state, 0) + 1
            return {
                "seed": self.seed,
                "conversations": len(self._sorted),
                "conversations_by_state": states,
                "members": sum(len(c.members) for c in self._sorted),
                "events": sum(len(c.events) for c in self._sorted),
                "users": len(self._users),
                "sessions": sum(len(u.sessions) for u in self._users),
                "live_conversations": len(self._live),
                "big_conversation_id": self.big_conversation_id,
                "hostile_conversation_id": self.hostile_conversation_id,
                "hostile_user_id": self.hostile_user_id,
            }

    def fingerprint(self) -> str:
        """A digest of the whole world, for determinism checks."""
        h = hashlib.sha256()
        with self.lock:
            for user in self._users:
                h.update(json.dumps([user.id, user.name, user.channels], sort_keys=True).encode())
            for conv in self._sorted:
                members = [[m.id, m.user_id, m.state, m.channel] for m in conv.members]
                head = [conv.id, conv.name, conv.state, conv.created, conv.properties, members]
                h.update(json.dumps(head, sort_keys=True, default=str).encode())
                for e in conv.events:
                    h.update(json.dumps([e.id, e.type, e.from_id, e.body, e.ts]).encode())
        return h.hexdigest()

    # ------------------------------------------------------------------ mutations

    def create_conversation(
        self,
        name: str | None = None,
        display_name: str | None = None,
        members: int = 1,
        now: Now = None,
    ) -> Conversation:
        """Start a new ACTIVE conversation; the first member calls in, others are dialled.

        Raises DuplicateName when ``name`` is taken (names are unique, as in the live API).
        """
        with self.lock:
            if name is not None and self.conversation_named(name) is not None:
                raise DuplicateName(name)
            now_ms = to_ms(now)
            conv = self._new_conversation(now_ms, name, display_name)
            rng, script = self._rng, self._script
            users = rng.sample(self._users, min(max(members, 0), 6, len(self._users)))
            caller: Member | None = None
            for user in users:
                if caller is None:
                    caller = make_member(rng, conv, user, "phone", None)
                    self._run(conv, script.opening(caller), now_ms)
                else:
                    # Dialled out; still ringing (INVITED) until a tick answers it.
                    m = make_member(rng, conv, user, rng.choice(["app", "sip"]), caller)
                    self._run(conv, script.ring(m), now_ms)
            return conv

    def append_event(
        self,
        conversation_id: str,
        type: str,
        body: dict[str, Any] | None = None,
        from_id: str | None = None,
        now: Now = None,
    ) -> Event:
        """Append an event verbatim (no side effects on members). Raises KeyError/ValueError."""
        with self.lock:
            conv = self._by_id.get(conversation_id)
            if conv is None:
                raise KeyError(conversation_id)
            if from_id is not None:
                if from_id not in conv.member_index and not from_id.startswith("knocker:"):
                    raise ValueError(f"{from_id} is not a member of {conversation_id}")
            elif conv.members:
                joined = [m for m in conv.members if m.state == "JOINED"]
                from_id = (joined or conv.members)[0].id
            ts = max(to_ms(now), conv.last_ts() + 1)
            event = Event(conv.sequence_number + 1, type, from_id, body or {}, ts)
            conv.events.append(event)
            conv.updated = ts
            self._emit(conv, event)
            return event

    def end_conversation(self, conversation_id: str, now: Now = None) -> Conversation:
        """Hang up every member and mark the conversation INACTIVE. Raises KeyError."""
        with self.lock:
            conv = self._by_id.get(conversation_id)
            if conv is None:
                raise KeyError(conversation_id)
            if conv.state == "ACTIVE":
                self._end(conv, to_ms(now))
            return conv

    def delete_conversation(self, conversation_id: str) -> Conversation:
        """Remove a conversation as Vonage does when it deletes or expires one: from then on it
        is in no list and every read of it is a 404, and live activity adds nothing to it.
        Returns the conversation as it last was. Raises KeyError."""
        with self.lock:
            conv = self._by_id.pop(conversation_id, None)
            if conv is None:
                raise KeyError(conversation_id)
            self._sorted.remove(conv)
            self._live.pop(conversation_id, None)
            if conversation_id in self._unscheduled:
                self._unscheduled.remove(conversation_id)
            return conv

    def tick(self, now: Now = None) -> dict[str, Any]:
        """One step of live activity. Returns what happened (ids of started/ended calls...)."""
        with self.lock:
            now_ms = to_ms(now)
            rng = self._rng
            done: dict[str, Any] = {
                "started": [],
                "ended": [],
                "invited": [],
                "joined": [],
                "left": [],
                "events": 0,
            }
            for cid in self._unscheduled:
                if self._by_id[cid].state == "ACTIVE" and cid not in self._live:
                    self._live[cid] = rng.randint(2, 10)
            self._unscheduled.clear()
            before = {cid: len(self._by_id[cid].events) for cid in self._live}
            for cid in list(self._live):
                conv = self._by_id[cid]
                if conv.state != "ACTIVE":  # ended from outside (control endpoint)
                    del self._live[cid]
                    continue
                self._live[cid] -= 1
                if self._live[cid] <= 0:
                    del self._live[cid]
                    left = [m.id for m in conv.members if m.state != "LEFT"]
                    self._end(conv, now_ms)
                    done["ended"].append(cid)
                    done["left"] += left
                else:
                    self._progress(conv, now_ms, done)
            if len(self._live) < 2 or rng.random() < 0.3:
                conv = self.create_conversation(members=2, now=now_ms / 1000)
                self._live[conv.id] = rng.randint(3, 12)
                done["started"].append(conv.id)
            touched = set(before) | set(done["started"])
            done["events"] = sum(len(self._by_id[c].events) - before.get(c, 0) for c in touched)
            return done

    # ------------------------------------------------------------------ internals

    def _new_conversation(
        self, now_ms: int, name: str | None, display_name: str | None
    ) -> Conversation:
        # Strictly after every existing conversation, so a new call is first in desc order.
        created = max(now_ms, self._sorted[-1].created + 1) if self._sorted else now_ms
        rng = self._rng
        conv = Conversation(
            id=f"CON-{new_uuid(rng)}",
            name=name if name is not None else f"NAM-{new_uuid(rng)}",
            display_name=display_name,
            image_url=None,
            created=created,
            updated=created,
            properties={
                "ttl": 3600,
                "type": "voice",
                "custom_sort_key": str(created),
                "custom_data": {},
            },
        )
        self._sorted.append(conv)
        self._by_id[conv.id] = conv
        self._unscheduled.append(conv.id)
        return conv

    def _run(self, conv: Conversation, steps: list, now_ms: int) -> None:
        for step in steps:
            event = self._script.apply(conv, step, max(now_ms, conv.last_ts() + 1))
            self._emit(conv, event)

    def _progress(self, conv: Conversation, now_ms: int, done: dict[str, Any]) -> None:
        rng, script = self._rng, self._script
        for m in conv.members:
            if m.state == "INVITED" and rng.random() < 0.6:
                self._run(conv, script.answer(m), now_ms)
                done["joined"].append(m.id)
        present = [m for m in conv.members if m.state != "LEFT"]
        if present and len(present) < 6 and rng.random() < 0.15:
            user = rng.choice(self._users)
            m = make_member(rng, conv, user, rng.choice(["app", "sip", "phone"]), present[0])
            self._run(conv, script.ring(m), now_ms)
            done["invited"].append(m.id)
        joined = [m for m in conv.members if m.state == "JOINED"]
        if joined:
            steps = script.middle(joined, rng.randint(1, 3), messages=False, hostile_rate=0.03)
            self._run(conv, steps, now_ms)
        if len(joined) > 2 and rng.random() < 0.1:
            m = joined[-1]
            self._run(conv, script.hangup(m, answered=True), now_ms)
            done["left"].append(m.id)

    def _end(self, conv: Conversation, now_ms: int) -> None:
        for m in reversed(conv.members):
            if m.state != "LEFT":
                steps = self._script.hangup(m, answered=m.state == "JOINED")
                self._run(conv, steps, now_ms)
        conv.state = "INACTIVE"
        conv.destroyed = max(now_ms, conv.last_ts() + 1)
        conv.updated = conv.destroyed
        self._live.pop(conv.id, None)
