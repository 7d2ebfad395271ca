"""Deterministic generation of the initial world from a seed.

Same (seed, sizes, now) gives the same world, byte for byte. ``now`` only anchors timestamps
("the last 30 days"); ids, names, members and event types depend on the seed alone.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from sandbox import hostile
from sandbox.calls import CallScript, Step, new_uuid
from sandbox.model import Conversation, Member, Session, User

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR

FIRST_NAMES = [
    "Alice", "Bob", "Chiara", "Dmitri", "Emeka", "Fatima", "Gustavo", "Hana", "Ines", "Jonas",
    "Kwame", "Lena", "Mateo", "Nadia", "Oskar", "Priya", "Quinn", "Rosa", "Sven", "Tomoko",
]  # fmt: skip
LAST_NAMES = [
    "Smith", "Okafor", "Rossi", "Ivanova", "Nakamura", "Garcia", "Müller", "Haddad", "Kim",
    "O'Brien", "Dubois", "Silva", "Nowak", "Andersen",
]  # fmt: skip
TOPICS = [
    ("support-call", "Support call"),
    ("sales-callback", "Sales callback"),
    ("conference", "Team conference"),
    ("ivr-session", "IVR session"),
    ("order-chat", "Order chat"),
    ("escalation", "Escalation"),
    ("onboarding", "Onboarding call"),
]
CONV_TYPES = ["voice", "call", "conference", "support", "chat"]
# The application's own numbers (LVNs) and external numbers use reserved drama/fiction ranges.
APP_NUMBERS = ["447700900000", "447700900001", "12025550100"]
MEMBER_COUNT_WEIGHTS = [(1, 14), (2, 44), (3, 20), (4, 10), (5, 7), (6, 5)]


@dataclass
class Seeded:
    users: list[User]
    conversations: list[Conversation]
    big_conversation_id: str | None
    hostile_conversation_id: str | None
    hostile_user_id: str | None
    api_key: str


def external_number(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return f"44770090{rng.randint(1000, 9999)}"
    return f"1202555{rng.randint(1000, 9999)}"


def leg_id(rng: random.Random) -> str:
    # Leg ids are either bare uuids or 32-hex strings (API.md section 1).
    return new_uuid(rng) if rng.random() < 0.5 else f"{rng.getrandbits(128):032x}"


def spread(rng: random.Random, count: int, start: int, end: int) -> list[int]:
    """``count`` strictly increasing timestamps from just after ``start`` to ``end``."""
    weights = [rng.random() + 0.05 for _ in range(count)]
    total = sum(weights)
    span = max(end - start, count)
    out: list[int] = []
    acc = 0.0
    prev = start
    for w in weights:
        acc += w
        ts = max(start + int(span * acc / total), prev + 1)
        out.append(ts)
        prev = ts
    return out


def make_member(
    rng: random.Random,
    conv: Conversation,
    user: User,
    kind: str,
    inviter: Member | None,
    *,
    hostile_ch: bool = False,
) -> Member:
    """A member with a phone/sip/app channel, added to ``conv`` (state set later by events).

    ``inviter`` None means the member called in (inbound, joined by the system); otherwise the
    application dialled out to them on the inviter's behalf.
    """
    mid = f"MEM-{new_uuid(rng)}"
    leg = leg_id(rng)
    app_number = rng.choice(APP_NUMBERS)
    if kind == "phone":
        pstn = user.channels.get("pstn")
        theirs = pstn[0]["number"] if pstn else external_number(rng)
        if hostile_ch:
            theirs = hostile.payload(rng.randrange(len(hostile.PAYLOADS)))
        them = {"type": "phone", "number": theirs}
        us = {"type": "phone", "number": app_number}
    elif kind == "sip":
        sip = user.channels.get("sip")
        uri = sip[0]["uri"] if sip else f"sip:{rng.randint(100, 999)}@pbx.example.com"
        if hostile_ch:
            uri = f"sip:{hostile.payload(rng.randrange(len(hostile.PAYLOADS)))}@example.com"
        them = {"type": "sip", "uri": uri}
        us = {"type": "sip", "uri": "sip:support@sip.example.net;transport=tls"}
    else:
        them = {"type": "app", "user": user.name}
        us = {"type": "app", "user": user.name}
    # Outbound legs go from the application to the member; inbound ones the other way.
    frm, to = (us, them) if inviter is not None else (them, us)
    channel = {"type": kind, "id": leg, "from": frm, "to": to, "leg_ids": [leg]}
    member = Member(mid, conv.id, user.id, channel, seq=len(conv.members))
    if inviter is not None:
        member.invited_by = inviter.id
        member.initiator = {
            "invited": {"is_system": False, "user_id": inviter.user_id, "member_id": inviter.id}
        }
    else:
        member.initiator = {"joined": {"is_system": True, "user_id": user.id, "member_id": mid}}
    member.media = {
        "audio_settings": {"enabled": False, "earmuffed": False, "muted": False},
        "audio": False,
    }
    if kind == "app" and rng.random() < 0.3:
        member.knocking_id = f"knocker:{new_uuid(rng)}"
    conv.add_member(member)
    return member


class Generator:
    def __init__(self, seed: int, now_ms: int) -> None:
        self.rng = random.Random(seed)
        self.now = now_ms
        self.users: list[User] = []
        self.users_by_id: dict[str, User] = {}
        self.script = CallScript(self.rng, self.users_by_id)

    # ------------------------------------------------------------------ users

    def make_users(self, count: int, api_key: str) -> str | None:
        rng = self.rng
        hostile_index = rng.randrange(count) if count else -1
        # Sprinkle hostile names on a few more users, each with a distinct payload (names are
        # unique, and the ``name`` filter must find exactly one).
        name_payloads = [i for i, p in enumerate(hostile.PAYLOADS) if p and i != 0]
        sprinkled = 0
        used_names: set[str] = set()
        hostile_id = None
        for i in range(count):
            uid = f"USR-{new_uuid(rng)}"
            if i == hostile_index:
                user = self._hostile_user(uid, i, api_key)
                hostile_id = uid
            else:
                user = self._normal_user(uid, i, used_names)
                if rng.random() < 0.08 and sprinkled < len(name_payloads):
                    p = name_payloads[sprinkled]
                    sprinkled += 1
                    user.name = hostile.payload(p)
                    user.display_name = hostile.payload(p + 1)
                    user.image_url = hostile.url(p)
                    user.custom_data[hostile.payload(p + 2)] = hostile.payload(p + 3)
                for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
                    user.sessions.append(self._session(api_key, len(user.sessions)))
            used_names.add(user.name)
            self.users.append(user)
            self.users_by_id[uid] = user
        return hostile_id

    def _normal_user(self, uid: str, seq: int, used: set[str]) -> User:
        rng = self.rng
        if rng.random() < 0.3:
            # Auto-created users (e.g. for PSTN callers) get NAM- names and no display name.
            name, display = f"NAM-{new_uuid(rng)}", None
        else:
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            name = f"{first}.{last}".lower().replace("'", "")
            if name in used:
                name = f"{name}{seq}"
            display = f"{first} {last}" if rng.random() < 0.75 else None
        image = f"https://avatars.example.com/{uid[4:12]}.png" if rng.random() < 0.4 else None
        custom: dict[str, Any] = {}
        if rng.random() < 0.6:
            custom["crm_id"] = f"C-{rng.randint(10000, 99999)}"
        if rng.random() < 0.4:
            custom["tier"] = rng.choice(["free", "silver", "gold"])
        if rng.random() < 0.2:
            custom["tags"] = rng.sample(["vip", "beta", "churn-risk", "partner"], 2)
        channels: dict[str, list[dict[str, Any]]] = {}
        if rng.random() < 0.8:
            channels["pstn"] = [{"number": external_number(rng)}]
        if rng.random() < 0.4:
            handle = name.lower()[:20]
            channels["sip"] = [{"uri": f"sip:{handle}@pbx.example.com", "username": handle}]
        if rng.random() < 0.15:
            channels["vbc"] = [{"extension": str(rng.randint(100, 999))}]
        if rng.random() < 0.1:
            channels["websocket"] = [
                {
                    "uri": "wss://ws.example.com/audio",
                    "content-type": "audio/l16;rate=16000",
                    "headers": {"x-user": name},
                }
            ]
        if rng.random() < 0.2:
            channels["sms"] = [{"number": external_number(rng)}]
        if rng.random() < 0.1:
            channels["whatsapp"] = [{"number": external_number(rng)}]
        if rng.random() < 0.05:
            channels["messenger"] = [{"id": str(rng.randint(10**14, 10**15))}]
        return User(uid, name, display, image, custom, channels, seq)

    def _hostile_user(self, uid: str, seq: int, api_key: str) -> User:
        """A user where every string field is hostile (``world.hostile_user_id``)."""
        p = hostile.payload
        custom = {p(i): p(i + 1) for i in range(0, len(hostile.PAYLOADS), 2)}
        custom["homepage"] = hostile.url(0)
        channels = {
            "pstn": [{"number": p(1)}],
            "sip": [{"uri": f"sip:{p(1)}@sip.example.com", "username": p(2)}],
            "vbc": [{"extension": p(3)}],
            "websocket": [{"uri": hostile.url(1), "content-type": p(4), "headers": {p(5): p(6)}}],
            "sms": [{"number": p(7)}],
            "whatsapp": [{"number": p(14)}],
            "messenger": [{"id": p(8)}],
        }
        user = User(uid, p(0), p(1), hostile.url(0), custom, channels, seq)
        user.sessions.append(self._session(api_key, 0))
        return user

    def _session(self, api_key: str, seq: int) -> Session:
        ttl = self.rng.choice([900, 3600, 86400])
        return Session(f"SES-{new_uuid(self.rng)}", ttl, api_key, seq)

    # ------------------------------------------------------------------ conversations

    def make_conversations(
        self, count: int, big_events: int, hostile_user_id: str | None
    ) -> tuple[list[Conversation], str | None, str | None]:
        rng, now = self.rng, self.now
        n_active = min(count, max(1, count // 40)) if count else 0
        old = [now - rng.randint(3 * HOUR, 30 * DAY) for _ in range(count - n_active)]
        recent = [now - rng.randint(MINUTE, 75 * MINUTE) for _ in range(n_active)]
        created = sorted(old) + sorted(recent)
        # Special conversations are old INACTIVE ones, picked by the RNG.
        old_idx = list(range(len(old)))
        big_i = rng.choice(old_idx) if big_events > 0 and old_idx else -1
        hostile_candidates = [i for i in old_idx if i != big_i]
        hostile_i = rng.choice(hostile_candidates) if hostile_candidates else -1

        conversations = []
        big_id = hostile_id = None
        for i, ts in enumerate(created):
            recent_one = i >= len(old)
            if i == big_i:
                conv = self._big_conversation(ts, big_events)
                big_id = conv.id
            elif i == hostile_i:
                conv = self._hostile_conversation(ts, hostile_user_id)
                hostile_id = conv.id
            else:
                state = "ACTIVE" if recent_one else "DELETED" if rng.random() < 0.03 else "INACTIVE"
                conv = self._conversation(i, ts, state)
            conversations.append(conv)
        conversations.sort(key=lambda c: c.sort_key)
        return conversations, big_id, hostile_id

    def _new_conversation(self, i: int, created: int) -> Conversation:
        rng = self.rng
        cid = f"CON-{new_uuid(rng)}"
        if rng.random() < 0.6:
            name = f"NAM-{new_uuid(rng)}"
            display = "Inbound call" if rng.random() < 0.3 else None
        else:
            slug, title = rng.choice(TOPICS)
            name, display = f"{slug}-{i:04d}", f"{title} #{i}"
        image = f"https://images.example.com/conversations/{i}.png" if rng.random() < 0.25 else None
        custom: dict[str, Any] = {}
        if rng.random() < 0.5:
            custom["ticket"] = f"TCK-{rng.randint(1000, 9999)}"
        if rng.random() < 0.3:
            custom["region"] = rng.choice(["eu-west", "us-east", "ap-south"])
        if rng.random() < 0.2:
            custom["priority"] = rng.choice(["low", "normal", "high"])
        properties = {
            "ttl": rng.choice([60, 300, 3600, 86400, 604800]),
            "type": rng.choice(CONV_TYPES),
            "custom_sort_key": f"{rng.randint(0, 9)}-{created}",
            "custom_data": custom,
        }
        conv = Conversation(cid, name, display, image, created, created, properties)
        if rng.random() < 0.06:
            # A sprinkle of hostile strings outside the dedicated hostile conversation.
            k = rng.randrange(len(hostile.PAYLOADS))
            conv.name = hostile.payload(k)
            conv.display_name = hostile.payload(k + 1)
            conv.image_url = hostile.url(k)
            custom[hostile.payload(k + 2)] = hostile.payload(k + 3)
        return conv

    def _member(
        self, conv: Conversation, user: User, kind: str, inviter: Member | None, hostile_ch=False
    ) -> Member:
        return make_member(self.rng, conv, user, kind, inviter, hostile_ch=hostile_ch)

    def _pick_kind(self) -> str:
        r = self.rng.random()
        return "phone" if r < 0.55 else "sip" if r < 0.75 else "app"

    def _members(self, conv: Conversation, count: int, users: list[User]) -> list[Member]:
        members: list[Member] = []
        for user in users[:count]:
            inviter = members[0] if members else None
            members.append(self._member(conv, user, self._pick_kind(), inviter))
        return members

    def _conversation(self, i: int, created: int, state: str) -> Conversation:
        rng = self.rng
        conv = self._new_conversation(i, created)
        n_members = rng.choices(
            [n for n, _ in MEMBER_COUNT_WEIGHTS], [w for _, w in MEMBER_COUNT_WEIGHTS]
        )[0]
        members = self._members(conv, n_members, rng.sample(self.users, n_members))
        messages = created < self.now - 7 * DAY and rng.random() < 0.5
        middle = rng.choice([0, 2, 4, 6, 8, 10, 14, 20, 30])
        if state == "ACTIVE":
            steps = self._active_script(members, middle)
            end = self.now - rng.randint(1000, 30_000)
        else:
            steps = self._ended_script(members, middle, messages, hostile_rate=0.05)
            end = created + rng.randint(30_000, 45 * MINUTE)
        self._play(conv, steps, end)
        if state != "ACTIVE":
            self._finish(conv, state)
        return conv

    def _ended_script(
        self,
        members: list[Member],
        middle: int,
        messages: bool,
        hostile_rate: float = 0.0,
        hostile_text: bool = False,
    ) -> list[Step]:
        script, rng = self.script, self.rng
        steps = script.opening(members[0])
        answered = [members[0]]
        for m in members[1:]:
            steps += script.ring(m)
            if rng.random() < 0.85:
                steps += script.answer(m)
                answered.append(m)
        steps += script.middle(answered, middle, messages=messages, hostile_rate=hostile_rate)
        for m in reversed(members):
            steps += script.hangup(m, answered=m in answered, hostile_text=hostile_text)
        return steps

    def _active_script(self, members: list[Member], middle: int) -> list[Step]:
        script, rng = self.script, self.rng
        steps = script.opening(members[0])
        answered = [members[0]]
        for m in members[1:]:
            steps += script.ring(m)
            if rng.random() < 0.7:  # the rest are still ringing (INVITED)
                steps += script.answer(m)
                answered.append(m)
        steps += script.middle(answered, middle, messages=False)
        if len(answered) > 2 and rng.random() < 0.3:
            steps += script.hangup(answered[-1], answered=True)
        return steps

    def _play(self, conv: Conversation, steps: list[Step], end: int) -> None:
        start = conv.created + self.rng.randint(20, 500)
        for step, ts in zip(steps, spread(self.rng, len(steps), start, end), strict=True):
            self.script.apply(conv, step, ts)

    def _finish(self, conv: Conversation, state: str) -> None:
        conv.state = state
        conv.destroyed = conv.last_ts() + self.rng.randint(5, 2000)
        conv.updated = conv.destroyed

    def _big_conversation(self, created: int, events: int) -> Conversation:
        """A long conference with exactly ``events`` events (at least one full call script)."""
        rng = self.rng
        duration = max(30 * MINUTE, int(events * 1.2 * 1000))
        created = min(created, self.now - duration - HOUR)
        conv = self._new_conversation(0, created)
        conv.name, conv.display_name = f"all-hands-{created}", "All-hands conference"
        members = self._members(conv, 6, rng.sample(self.users, 6))
        script = self.script
        steps = script.opening(members[0])
        for m in members[1:]:  # everyone answers in the big conference
            steps += script.ring(m) + script.answer(m)
        hangups: list[Step] = []
        for m in reversed(members):
            hangups += script.hangup(m, answered=True)
        extra = max(0, events - len(steps) - len(hangups))
        steps += script.middle(members, extra, messages=True, hostile_rate=0.01) + hangups
        self._play(conv, steps, created + duration)
        self._finish(conv, "INACTIVE")
        return conv

    def _hostile_conversation(self, created: int, hostile_user_id: str | None) -> Conversation:
        """Every string field hostile (``world.hostile_conversation_id``)."""
        rng, p = self.rng, hostile.payload
        conv = self._new_conversation(1, created)
        conv.name, conv.display_name, conv.image_url = p(0), p(1), hostile.url(0)
        conv.properties["type"] = p(8)
        conv.properties["custom_sort_key"] = p(12)
        conv.properties["custom_data"] = {p(i): p(i + 1) for i in range(len(hostile.PAYLOADS))}
        conv.properties["custom_data"]["link"] = hostile.url(2)
        others = [u for u in self.users if u.id != hostile_user_id]
        users = rng.sample(others, 2)
        hostile_user = self.users_by_id.get(hostile_user_id or "")
        caller = self._member(conv, users[0], "phone", None, hostile_ch=True)
        members = [caller, self._member(conv, users[1], "sip", caller, hostile_ch=True)]
        if hostile_user is not None:
            members.append(self._member(conv, hostile_user, "app", caller))
        script = self.script
        steps = script.opening(caller)
        for m in members[1:]:
            steps += script.ring(m) + script.answer(m)
        for i, text in enumerate(hostile.PAYLOADS):
            steps.append(("message", members[i % len(members)], {"text": text}))
        steps.append(("message", caller, {"image": True, "hostile": True}))
        steps += script.middle(members, 20, messages=True, hostile_rate=1.0)
        steps.append(("custom:order-update", caller, {"hostile": True}))
        steps.append(("custom:" + p(1), caller, {"hostile": True}))
        steps.append(("x-vendor:telemetry", caller, {"hostile": True}))
        play = {"play_id": new_uuid(rng), "hostile": True}
        rec = {"recording_id": new_uuid(rng), "hostile": True}
        steps += [("audio:play", caller, play), ("audio:play:done", caller, play)]
        steps += [("audio:record", caller, rec), ("audio:record:done", caller, rec)]
        for m in reversed(members):
            steps += script.hangup(m, answered=True, hostile_text=True)
        self._play(conv, steps, created + 20 * MINUTE)
        self._finish(conv, "INACTIVE")
        return conv


def generate(
    seed: int, conversations: int, users: int, big_conversation_events: int, now_ms: int
) -> Seeded:
    """Build the seeded world. Users first: conversations draw their members from them."""
    gen = Generator(seed, now_ms)
    api_key = f"{gen.rng.getrandbits(32):08x}"
    hostile_user_id = gen.make_users(max(users, 6), api_key)
    convs, big_id, hostile_conv_id = gen.make_conversations(
        conversations, big_conversation_events, hostile_user_id
    )
    return Seeded(gen.users, convs, big_id, hostile_conv_id, hostile_user_id, api_key)
