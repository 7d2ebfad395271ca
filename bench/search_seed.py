"""The search phase's data (bench/search.py): a PostgreSQL event store of a million events and more,
bulk-loaded in minutes, with the searchable text and search keys that ingestion would write.

    DATABASE_URL=postgres://.../benchsearch DJANGO_SETTINGS_MODULE=dashboard_project.settings \\
        python -m bench.search_seed [--events 1000000] [--export-events 1000000]

bench/search.py runs it in a subprocess with the dashboard's settings, on a freshly migrated
database; it prints the world it made (what to search for, and what each query must find) as JSON.

What it writes, deterministic for a seed:
- `--events` events in about one conversation per 50 events (sizes log-normal: most a few dozen
  events, some hundreds, a few thousands), one of them exactly 10,000 events (a four-hour
  conference of 40 members joining and leaving: the timeline's);
- one more conversation of `--export-events` events (a month-long contact-centre queue, 300
  members in turn): the export's, since an export of events is one conversation's history;
- users (customers with PSTN numbers, SIP URIs, names and display names; agents on the app or
  SIP), members with phone, SIP and app channels and the application's own numbers;
- events shaped as the sandbox's calls and as Vonage's webhooks (legs, member states, DTMF,
  recordings, plays, mutes, messages, `custom:order-update`, vendor telemetry), with message
  texts and order notes drawn from a vocabulary of about 4,000 words with a Zipf distribution
  (rank r weighs 1/r: a few words are everywhere, most are rare), and a few hostile strings.

Text and keys come from the project's own functions: `search_index.index_conversation`,
`index_member` and `index_events` (what `search_index.reindex` runs), with their write step
(`search_index._save`) replaced by a collector, so that the keys are bulk-loaded with COPY; a key
is kept once per conversation, its first label winning, as `bulk_create(ignore_conflicts=True)`
does. Rows go in with COPY, the secondary indexes of the big tables are dropped first and built
again after (the same definitions, read from pg_indexes), then VACUUM ANALYZE of the database.
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import hashlib
import itertools
import json
import math
import os
import random
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: `python bench/search_seed.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from bench.stack import APPLICATION_ID

MARKER_TABLE = "bench_search_seed"
TIMELINE_EVENTS = 10_000
TIMELINE_MEMBERS = 40
EXPORT_MEMBERS = 300
EVENTS_PER_CONVERSATION = 50  # the mean size
MIN_SIZE = 8
LIVE_SHARE = 0.03
DAY_MS = 86_400_000
HISTORY_DAYS = 90
CHUNK_EVENTS = 100_000  # events per transaction
INDEX_BATCH = 5_000  # events given to index_events at once
BIG_TABLES = (
    "conversations_storedevent",
    "conversations_searchkey",
    "conversations_storedmember",
    "conversations_storedconversation",
)
APP_NUMBERS = ["447700900000", "447700900001", "12025550100"]  # the application's own LVNs


def words_of(text: str) -> list[str]:
    return text.split()


# --- the vocabulary: common words first (the Zipf ranks follow this order), then made-up ones

COMMON = words_of("""
the to you i a and is it for my of on can your in this that please be we have with at me order
call thanks will not are do if from so no just what account help number check back about
now get there an need but here yes up was how know one when am sorry see let our all been
payment thank ok hi hello would could like card time today still more address email again
delivery refund problem support phone any issue want us sure out which they then some it's
help update team new please minutes day line some date name code details tomorrow week number
hold transfer billing invoice receipt price plan upgrade cancel contract renewal discount offer
package parcel tracking shipment courier warehouse return exchange replacement warranty repair
technician appointment visit schedule reschedule confirm confirmed confirmation reference ticket
case complaint feedback survey rating review manager supervisor agent colleague department
office branch store online website app login password reset verify verification security
fraud blocked unlock pin code sms message text voicemail callback missed dropped network
signal coverage roaming data allowance bundle usage bill charge charged overcharged credit
debit bank transfer direct balance overdue late fee interest statement monthly annual yearly
quarter installment deposit subscription trial free premium basic standard business personal
family student senior insurance claim policy coverage excess premium quote estimate total
amount euro pound dollar cash cheque voucher coupon promo points loyalty membership card
holder expiry expired valid invalid error failed failure outage maintenance restored working
broken slow fast faster speed router modem fibre broadband wifi cable box remote channel
television mobile handset device sim esim activation activated port porting switch provider
move moving house flat apartment postcode street city country abroad travel holiday weekend
morning afternoon evening night monday tuesday wednesday thursday friday saturday sunday
january february march april may june july august september october november december
urgent asap immediately soon later earlier already yet today's yesterday tonight hour hours
waiting waited queue position busy available unavailable closed open hours holiday
escalate escalation resolved unresolved pending processing processed shipped delivered
damaged missing wrong size colour color model version serial sku item items quantity stock
backorder preorder catalogue discount sale clearance bundle gift wrap card note message
instructions doorstep neighbour locker pickup collect collection depot van driver route
signature photo proof evidence screenshot attachment document form letter contract copy
""")
SYLLABLES = [
    "ka", "lo", "mi", "ren", "tu", "sa", "vel", "dor", "pi", "gan", "ne", "ro", "sil", "ta",
    "mar", "eb", "qui", "zo", "fen", "li", "bar", "cho", "du", "ex", "fa", "gri", "ho", "jun",
    "kel", "mo", "nu", "or", "pra", "rin", "sto", "tri", "ul", "vo", "wen", "yar",
]  # fmt: skip
VOCABULARY_SIZE = 4000
ZIPF_EXPONENT = 1.0

FIRST_NAMES = words_of("""
Alice Bob Chiara Dmitri Emeka Fatima Gustavo Hana Ines Jonas Kwame Lena Mateo Nadia Oskar Priya
Quinn Rosa Sven Tomoko Amir Beatriz Chen Daniela Elif Farid Greta Hiroshi Ingrid Javier Keiko
Luca Maya Nikolai Olga Pablo Rania Santiago Tariq Ursula Valentina Wei Ximena Yusuf Zofia Aisha
Bjorn Carmen Diego Eva Felix Giulia Hugo Ivana Jamal Kira Leon Mina Noah Omar Paula Ravi Sofia
Theo Uma Viktor Wanda Yara Zain Anya Bruno Celine Dario Esther Filip Gemma Hassan Irene Jakob
Kamala Lars Marta Nils Orla Pedro Rhea Samir Tessa Ugo Vera Willem Xavier Yvonne Zara
""")
LAST_NAMES = words_of("""
Smith Okafor Rossi Ivanova Nakamura Garcia Muller Haddad Kim OBrien Dubois Silva Nowak Andersen
Jones Mensah Bianchi Petrova Tanaka Martinez Schmidt Khalil Park Murphy Laurent Santos
Kowalski Nielsen Brown Adeyemi Romano Sokolova Suzuki Lopez Weber Nasser Choi Kelly Moreau
Costa Wisniewski Hansen Taylor Boateng Greco Volkova Watanabe Gonzalez Fischer Aziz Lee Walsh
Lefevre Pereira Lewandowski Larsen Wilson Owusu Conti Popova Ito Hernandez Wagner Saleh Jung
Byrne Girard Oliveira Kaminski Pedersen Evans Asante Marino Lebedeva Yamamoto Perez Becker
Farouk Han Ryan Bonnet Rodrigues Zielinski Christensen Thomas Appiah Gallo Novikova Kobayashi
Sanchez Hoffmann Mansour Yoon Doyle Fontaine Alves Szymanski Jensen
""")
TOPICS = [
    ("support-call", "Support call"),
    ("sales-callback", "Sales callback"),
    ("conference", "Team conference"),
    ("ivr-session", "IVR session"),
    ("order-chat", "Order chat"),
    ("escalation", "Escalation"),
    ("onboarding", "Onboarding call"),
]
ORDER_STATUSES = ["created", "paid", "packed", "shipped", "delivered", "refunded"]
HANGUP_REASONS = [("16", "normal"), ("17", "busy"), ("31", "normal unspecified")]
NO_ANSWER = ("487", "Request Terminated: no answer")
PROMPTS = ["welcome", "hold-music", "menu", "goodbye", "queue-position"]
MEMBER_COUNT_WEIGHTS = [(1, 14), (2, 44), (3, 20), (4, 10), (5, 7), (6, 5)]


def vocabulary(rng: random.Random) -> list[str]:
    """About 4,000 distinct words, most frequent first."""
    words = list(dict.fromkeys(COMMON))
    seen = set(words)
    while len(words) < VOCABULARY_SIZE:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 3, 3, 4))))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


# --- the world


def new_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def iso_ms(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(slots=True)
class User:
    id: str
    name: str
    display_name: str | None
    number: str = ""  # E.164 digits
    sip: str = ""  # a SIP URI
    agent: bool = False


@dataclass(slots=True)
class Member:
    id: str
    user: User
    kind: str  # phone, sip or app
    channel: dict[str, Any]
    leg: str
    inbound: bool
    stamps: dict[str, str] = field(default_factory=dict)  # invited/joined/left as the body says
    state: str = ""
    state_event_id: int = 0
    invited_ms: int | None = None
    joined_ms: int | None = None
    left_ms: int | None = None


@dataclass(slots=True)
class Row:
    """What search_index.index_events reads (type, body) and writes (text) of an event."""

    type: str
    body: dict[str, Any]
    text: str = ""


Step = tuple[str, int, Any]  # (event type, member index, data)


class World:
    def __init__(self, seed: int, now_ms: int) -> None:
        self.rng = random.Random(seed)
        self.now = now_ms
        self.words = vocabulary(self.rng)
        weights = [1 / (rank**ZIPF_EXPONENT) for rank in range(1, len(self.words) + 1)]
        self.cumulative = list(itertools.accumulate(weights))
        self.users: list[User] = []
        self.agents: list[User] = []
        self.customers: list[User] = []

    # users

    def make_users(self, customers: int, agents: int) -> None:
        rng = self.rng
        used_names: set[str] = set()
        used_numbers: set[str] = set()
        for i in range(customers + agents):
            agent = i < agents
            if not agent and rng.random() < 0.15:
                name, display = f"NAM-{new_uuid(rng)}", None  # auto-created for a PSTN caller
            else:
                first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
                name = f"{first}.{last}".lower()
                if name in used_names:
                    name = f"{name}{i}"
                display = f"{first} {last}" if rng.random() < 0.8 else None
            used_names.add(name)
            user = User(id=f"USR-{new_uuid(rng)}", name=name, display_name=display, agent=agent)
            if not agent and rng.random() < 0.85:
                while True:
                    number = self.phone_number()
                    if number not in used_numbers:
                        used_numbers.add(number)
                        user.number = number
                        break
            if rng.random() < (0.6 if agent else 0.25):
                handle = name.lower()[:24] if not name.startswith("NAM-") else f"u{i}"
                user.sip = f"sip:{handle}@pbx{rng.randint(1, 9)}.example.com"
            self.users.append(user)
            (self.agents if agent else self.customers).append(user)

    def phone_number(self) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.55:
            return f"447{rng.randint(100000000, 999999999)}"  # UK mobile
        if roll < 0.8:
            return f"1{rng.randint(201, 989)}{rng.randint(2000000, 9999999)}"  # North America
        if roll < 0.9:
            return f"336{rng.randint(10000000, 99999999)}"  # France, mobile
        return f"4915{rng.randint(100000000, 999999999)}"  # Germany, mobile

    def customer(self) -> User:
        # Skewed: some customers call again and again, most once or twice.
        return self.customers[int(len(self.customers) * self.rng.random() ** 1.6)]

    # members

    def member(self, user: User, inbound: bool, kind: str | None = None) -> Member:
        rng = self.rng
        if kind is None:
            if user.agent:
                kind = "sip" if user.sip and rng.random() < 0.5 else "app"
            elif user.number and rng.random() < 0.9:
                kind = "phone"
            elif user.sip:
                kind = "sip"
            else:
                kind = "app"
        leg = new_uuid(rng) if rng.random() < 0.5 else f"{rng.getrandbits(128):032x}"
        if kind == "phone":
            them = {"type": "phone", "number": user.number}
            us = {"type": "phone", "number": rng.choice(APP_NUMBERS)}
        elif kind == "sip":
            them = {"type": "sip", "uri": user.sip}
            us = {"type": "sip", "uri": "sip:support@sip.example.net;transport=tls"}
        else:
            them = us = {"type": "app", "user": user.name}
        frm, to = (them, us) if inbound else (us, them)
        channel = {"type": kind, "id": leg, "from": frm, "to": to, "leg_ids": [leg]}
        return Member(f"MEM-{new_uuid(rng)}", user, kind, channel, leg, inbound)

    def members_of(self, count: int) -> list[Member]:
        """A customer calling in, then agents and others dialled out to."""
        out = [self.member(self.customer(), inbound=True)]
        for i in range(1, count):
            user = self.rng.choice(self.agents) if i == 1 or self.rng.random() < 0.5 else None
            out.append(self.member(user or self.customer(), inbound=False))
        return out

    # plans: what happens, in order, before any body is written

    def plan(self, members: list[Member], n: int, *, live: bool, spread: bool) -> list[Step]:
        """`n` steps: the first member calls in, the others are dialled out to (and answer, or
        not), events in between from whoever is in the call, members hanging up (spread over the
        call with `spread`, else at its end; not at all when live)."""
        rng = self.rng
        opening: list[Step] = [
            ("leg:status:update", 0, ("inbound", "started")),
            ("member:joined", 0, "inbound"),
            ("leg:status:update", 0, ("inbound", "answered")),
            (f"{self.call_kind(members[0])}:answered", 0, "inbound"),
            ("member:media", 0, "inbound"),
        ]
        milestones: list[tuple[float, int, list[Step], int, int]] = []  # pos, seq, steps, +/-
        order = itertools.count()
        for j in range(1, len(members)):
            kind = self.call_kind(members[j])
            answered = rng.random() < 0.9
            join = rng.uniform(0, 0.8) if spread else rng.uniform(0, 0.1)
            steps: list[Step] = [
                ("member:invited", j, "outbound"),
                ("leg:status:update", j, ("outbound", "started")),
                (f"{kind}:ringing", j, "outbound"),
                ("leg:status:update", j, ("outbound", "ringing")),
            ]
            if answered:
                steps += [
                    ("leg:status:update", j, ("outbound", "answered")),
                    (f"{kind}:answered", j, "outbound"),
                    ("member:joined", j, "outbound"),
                    ("member:media", j, "outbound"),
                ]
                milestones.append((join, next(order), steps, j, +1))
                if not live or (spread and rng.random() < 0.7):
                    leave = rng.uniform(join + 0.05, 1.0) if spread else rng.uniform(0.9, 1.0)
                    milestones.append((min(leave, 1.0), next(order), self.hangup(j, True), j, -1))
            else:
                milestones.append((join, next(order), steps + self.hangup(j, False), j, 0))
        if not live:
            milestones.append((1.0, next(order), self.hangup(0, True), 0, -1))
        fixed = len(opening) + sum(len(m[2]) for m in milestones)
        middle = max(n - fixed, 0)
        milestones.sort(key=lambda m: (m[0], m[1]))
        out: list[Step] = list(opening)
        active = [0]
        pending = iter(milestones)
        upcoming = next(pending, None)
        produced = 0
        while produced < middle:
            position = produced / middle
            while upcoming is not None and upcoming[0] <= position:
                out += upcoming[2]
                if upcoming[4] > 0:
                    active.append(upcoming[3])
                elif upcoming[4] < 0 and upcoming[3] in active and len(active) > 1:
                    active.remove(upcoming[3])
                upcoming = next(pending, None)
            steps = self.middle_steps(rng.choice(active))[: middle - produced]
            out += steps
            produced += len(steps)
        while upcoming is not None:
            out += upcoming[2]
            upcoming = next(pending, None)
        return out[:n]

    @staticmethod
    def call_kind(member: Member) -> str:
        return "rtc" if member.kind == "app" else "sip"

    def hangup(self, j: int, answered: bool) -> list[Step]:
        reason = self.rng.choice(HANGUP_REASONS) if answered else NO_ANSWER
        data = ("inbound" if j == 0 else "outbound", reason)
        return [
            ("leg:status:update", j, (data[0], "completed")),
            ("hangup", j, data),
            ("member:left", j, data),
        ]

    def middle_steps(self, m: int) -> list[Step]:
        """One in-call happening (one or two events), the sandbox's mix (calls.py)."""
        roll = self.rng.random()
        if roll < 0.25:
            return [("message", m, None)]
        if roll < 0.35:
            return [("audio:dtmf", m, None)]
        if roll < 0.45:
            return [("audio:speaking:on", m, None), ("audio:speaking:off", m, None)]
        if roll < 0.52:
            return [("audio:mute:on", m, None), ("audio:mute:off", m, None)]
        if roll < 0.58:
            play = {"play_id": new_uuid(self.rng)}
            return [("audio:play", m, play), ("audio:play:done", m, play)]
        if roll < 0.63:
            record = {"recording_id": new_uuid(self.rng)}
            return [("audio:record", m, record), ("audio:record:done", m, record)]
        if roll < 0.66:
            return [("audio:earmuff:on", m, None)]
        if roll < 0.71:
            return [("status", m, None)]
        if roll < 0.80:
            return [("custom:order-update", m, None)]
        if roll < 0.86:
            return [("x-vendor:telemetry", m, None)]
        return [("audio:dtmf", m, None)]

    # bodies

    def words_text(self, low: int, high: int) -> str:
        words = self.rng.choices(
            self.words, cum_weights=self.cumulative, k=self.rng.randint(low, high)
        )
        return " ".join(words).capitalize() + self.rng.choice((".", ".", "?", "!", ""))

    def body(self, step: Step, member: Member, ts: int, hostile: str | None) -> tuple[str, dict]:
        """(type, body) of one step, updating the member as the live API would."""
        etype, _, data = step
        rng = self.rng
        channel = member.channel
        leg_only = {"type": member.kind, "id": member.leg}
        if etype == "member:invited":
            member.invited_ms = ts
            member.stamps["invited"] = iso_ms(ts)
            user: dict[str, Any] = {"id": member.user.id, "name": member.user.name}
            if member.user.display_name:
                user["display_name"] = member.user.display_name
            return etype, {
                "user": user,
                "channel": channel,
                "media": {"audio_settings": {"enabled": False, "earmuffed": False, "muted": False}},
                "timestamp": dict(member.stamps),
                "initiator": {"invited": {"is_system": False}},
            }
        if etype == "member:joined":
            member.joined_ms = ts
            member.stamps["joined"] = iso_ms(ts)
            return etype, {
                "user": {"id": member.user.id},
                "channel": channel,
                "timestamp": dict(member.stamps),
            }
        if etype == "member:left":
            member.left_ms = ts
            member.stamps["left"] = iso_ms(ts)
            return etype, {
                "user": {"id": member.user.id},
                "channel": channel,
                "timestamp": dict(member.stamps),
            }
        if etype == "member:media":
            return etype, {"audio": True, "channel": channel}
        if etype == "leg:status:update":
            direction, status = data
            return etype, {
                "leg_id": member.leg,
                "status": status,
                "direction": direction,
                "type": member.kind,
            }
        if etype.endswith((":ringing", ":answered")):
            return etype, {"channel": channel, "direction": data}
        if etype == "hangup":
            direction, (code, text) = data
            body = {
                "channel": channel,
                "direction": direction,
                "reason": {"code": code, "text": text},
            }
            if member.joined_ms is not None:
                body["duration"] = max(0, (ts - member.joined_ms) // 1000)
            return f"{self.call_kind(member)}:hangup", body
        if etype == "status":
            status = rng.choice(["ringing", "answered", "early_media", "connected"])
            return f"{self.call_kind(member)}:status", {
                "channel": channel,
                "direction": "outbound",
                "status": status,
            }
        if etype == "audio:dtmf":
            if rng.random() < 0.3:
                digits = "".join(rng.choice("0123456789*#") for _ in range(rng.randint(2, 6)))
                return etype, {"digits": digits, "timed_out": False, "channel": leg_only}
            return etype, {"digit": rng.choice("0123456789*#"), "channel": leg_only}
        if etype.startswith(("audio:speaking", "audio:mute", "audio:earmuff")):
            return etype, {"channel": leg_only}
        if etype == "audio:play":
            url = f"https://media.example.com/prompts/{rng.choice(PROMPTS)}.mp3"
            data["stream_url"] = [url]
            return etype, {"play_id": data["play_id"], "stream_url": [url], "loop": 1, "level": 0}
        if etype == "audio:play:done":
            return etype, {"play_id": data["play_id"], "stream_url": data.get("stream_url", [])}
        if etype == "audio:record":
            data["start"] = ts
            return etype, {
                "recording_id": data["recording_id"],
                "format": "mp3",
                "channels": 1,
                "split": False,
                "beep_start": rng.random() < 0.5,
                "detect_speech": False,
            }
        if etype == "audio:record:done":
            start = data.get("start", ts)
            return etype, {
                "recording_id": data["recording_id"],
                "recording_url": f"https://api.nexmo.com/v1/files/{new_uuid(rng)}",
                "format": "mp3",
                "start_time": iso_ms(start),
                "end_time": iso_ms(ts),
                "size": max(1, (ts - start) // 1000) * 16000,
            }
        if etype == "message":
            if rng.random() < 0.08:
                url = f"https://media.example.com/uploads/{new_uuid(rng)}.jpg"
                return etype, {"message_type": "image", "image": {"url": url}}
            return etype, {"message_type": "text", "text": hostile or self.words_text(3, 18)}
        if etype == "custom:order-update":
            body = {
                "order_id": f"ORD-{rng.randint(10000, 99999)}",
                "status": rng.choice(ORDER_STATUSES),
                "amount": {"value": round(rng.uniform(5, 500), 2), "currency": "EUR"},
                "items": [{"sku": f"SKU-{rng.randint(100, 999)}", "qty": rng.randint(1, 3)}],
            }
            if hostile:
                body["note"] = hostile
            elif rng.random() < 0.5:
                body["note"] = self.words_text(4, 12)
            return etype, body
        # x-vendor:telemetry: an unknown type, no searchable text
        return etype, {
            "mos": round(rng.uniform(2.5, 4.5), 2),
            "jitter_ms": rng.randint(1, 80),
            "packet_loss": round(rng.uniform(0, 0.05), 4),
            "codec": rng.choice(["opus", "PCMU", "PCMA", "G722"]),
        }


def conversation_sizes(rng: random.Random, total: int, count: int) -> list[int]:
    """`count` sizes that sum to `total`: log-normal around the mean, at least 8 (a call in and a
    hang-up), at most 5,000."""
    mean = total / count
    sigma = 1.1
    mu = math.log(mean) - sigma**2 / 2
    sizes = [min(5000, max(MIN_SIZE, int(rng.lognormvariate(mu, sigma)))) for _ in range(count)]
    scale = total / sum(sizes)
    sizes = [max(MIN_SIZE, int(s * scale)) for s in sizes]
    difference = total - sum(sizes)
    step = 1 if difference > 0 else -1
    i = 0
    while difference:
        j = i % count
        if step > 0 or sizes[j] > MIN_SIZE:
            sizes[j] += step
            difference -= step
        i += 1
    return sizes


# --- writing


@dataclass
class Totals:
    conversations: int = 0
    events: int = 0
    members: int = 0
    keys: int = 0
    messages: int = 0
    custom: int = 0
    live: int = 0


class KeyCollector:
    """Stands in for search_index._save: keys kept once per conversation, written by COPY."""

    def __init__(self) -> None:
        self.pending: list[tuple[int, str, str, str]] = []
        self.seen: dict[int, set[tuple[str, str]]] = {}

    def __call__(self, conversation_id: int, keys: Any) -> None:
        seen = self.seen.setdefault(conversation_id, set())
        for kind, value, label in keys:
            if (kind, value) not in seen:
                seen.add((kind, value))
                self.pending.append((conversation_id, kind, value, label))

    def done(self, conversation_id: int) -> None:
        self.seen.pop(conversation_id, None)


class Writer:
    """COPY into the store's tables, a transaction every CHUNK_EVENTS events: the events stream
    as they are made; conversations, members and keys are buffered and copied at each commit
    (the foreign keys are deferred to the commit)."""

    EVENT_COLUMNS = (
        "id, conversation_id, event_id, type, from_member, timestamp, body, text, source, stored_at"
    )
    CONVERSATION_COLUMNS = (
        "id, application_id, vonage_id, name, display_name, started_at, ended_at, "
        "last_event_id, contiguous_event_id, read_through_event_id, last_event_type, "
        "last_event_at, joined_count, is_live, first_seen_at"
    )
    MEMBER_COLUMNS = (
        "id, conversation_id, vonage_id, state, state_event_id, user_id, user_name, "
        "channel_type, channel, invited_at, joined_at, left_at"
    )
    KEY_COLUMNS = "id, conversation_id, kind, value, label"

    def __init__(self, connection: psycopg.Connection, keys: KeyCollector, now: str) -> None:
        self.connection = connection
        self.keys = keys
        self.now = now
        self.conversations: list[tuple] = []
        self.members: list[tuple] = []
        self.in_chunk = 0
        self.next_event = itertools.count(1)
        self.next_key = itertools.count(1)
        self._copy: Any = None
        self._copy_context: Any = None
        self._cursor = connection.cursor()

    def event(self, row: tuple) -> None:
        if self._copy is None:
            self._copy_context = self._cursor.copy(
                f"COPY conversations_storedevent ({self.EVENT_COLUMNS}) FROM STDIN"
            )
            self._copy = self._copy_context.__enter__()
        self._copy.write_row(row)
        self.in_chunk += 1
        if self.in_chunk >= CHUNK_EVENTS:
            self.commit()

    def commit(self) -> None:
        if self._copy is not None:
            self._copy_context.__exit__(None, None, None)
            self._copy = self._copy_context = None
        cursor = self._cursor
        for table, columns, rows in (
            ("conversations_storedconversation", self.CONVERSATION_COLUMNS, self.conversations),
            ("conversations_storedmember", self.MEMBER_COLUMNS, self.members),
        ):
            if rows:
                with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                rows.clear()
        if self.keys.pending:
            with cursor.copy(
                f"COPY conversations_searchkey ({self.KEY_COLUMNS}) FROM STDIN"
            ) as copy:
                for key in self.keys.pending:
                    copy.write_row((next(self.next_key), *key))
            self.keys.pending.clear()
        self.connection.commit()
        self.in_chunk = 0


def ts_of(ms: int | None) -> str | None:
    return None if ms is None else iso_ms(ms)


class Seeder:
    def __init__(self, args: argparse.Namespace, connection: psycopg.Connection) -> None:
        from conversations.store import search_index
        from conversations.store.ingest import storable
        from conversations.store.models import StoredConversation, StoredMember
        from sandbox import hostile

        self.search_index = search_index
        self.storable = storable
        self.StoredConversation = StoredConversation
        self.StoredMember = StoredMember
        self.hostile = hostile.PAYLOADS
        self.args = args
        self.now_ms = int(time.time() * 1000)
        self.world = World(args.seed, self.now_ms)
        self.keys = KeyCollector()
        self.writer = Writer(connection, self.keys, iso_ms(self.now_ms))
        self.connection = connection
        self.totals = Totals()
        self.application_id = 0
        self.next_member = itertools.count(1)
        # what the bench will look for, and what must be found
        self.by_user: dict[str, list[tuple[int, str, str]]] = {}  # user id -> (start, conv, kind)
        self.samples: dict[str, Any] = {"conversations": [], "members": []}

    def conversation(
        self,
        pk: int,
        n: int,
        members: list[Member],
        *,
        name: str,
        display_name: str,
        start_ms: int,
        span_ms: int,
        live: bool,
        spread: bool,
    ) -> str:
        world, rng = self.world, self.world.rng
        vonage_id = f"CON-{new_uuid(rng)}"
        steps = world.plan(members, n, live=live, spread=spread)
        n = len(steps)
        stamps = [
            start_ms + (span_ms * i) // max(n, 1) + rng.randrange(max(span_ms // n // 2, 1))
            for i in range(n)
        ]
        for i in range(1, n):  # strictly increasing, as a call's events are
            if stamps[i] <= stamps[i - 1]:
                stamps[i] = stamps[i - 1] + 1
        # Member states and the conversation's derived columns (ingest._advance's), first: the
        # conversation row must be in the first transaction that holds its events.
        joined_count, lefts = self.member_states(members, steps, stamps)
        all_left = all(m.state == "LEFT" for m in members if m.state)
        ended_ms = max(lefts) if all_left and lefts else None
        is_live = joined_count > 0 and ended_ms is None
        last_type = self.final_type(steps[-1], members)
        self.writer.conversations.append(
            (
                pk, self.application_id, vonage_id, name, display_name, ts_of(stamps[0]),
                ts_of(ended_ms), n, n, 0, last_type, ts_of(stamps[-1]), joined_count, is_live,
                self.writer.now,
            )
        )  # fmt: skip
        model = self.StoredConversation(
            pk=pk, vonage_id=vonage_id, name=name, display_name=display_name
        )
        self.search_index.index_conversation(model)
        for member in members:
            self.write_member(pk, member)
            self.by_user.setdefault(member.user.id, []).append((stamps[0], vonage_id, member.kind))
        for member in members:  # the body builders set them again, as the events happen
            member.stamps = {}
            member.invited_ms = member.joined_ms = member.left_ms = None
        self.write_events(pk, model, members, steps, stamps)
        self.keys.done(pk)
        self.totals.conversations += 1
        self.totals.live += is_live
        return vonage_id

    @staticmethod
    def final_type(step: Step, members: list[Member]) -> str:
        etype = step[0]
        if etype == "hangup":
            return f"{World.call_kind(members[step[1]])}:hangup"
        if etype == "status":
            return f"{World.call_kind(members[step[1]])}:status"
        return etype

    @staticmethod
    def member_states(
        members: list[Member], steps: list[Step], stamps: list[int]
    ) -> tuple[int, list[int]]:
        states = {"member:invited": "INVITED", "member:joined": "JOINED", "member:left": "LEFT"}
        for i, (etype, j, _) in enumerate(steps):
            state = states.get(etype)
            if state is None:
                continue
            member = members[j]
            member.state, member.state_event_id = state, i + 1
            if state == "INVITED":
                member.invited_ms = stamps[i]
            elif state == "JOINED":
                member.joined_ms = stamps[i]
            else:
                member.left_ms = stamps[i]
        joined = sum(1 for m in members if m.state == "JOINED")
        lefts = [m.left_ms for m in members if m.left_ms is not None]
        return joined, lefts

    def write_member(self, conversation_pk: int, member: Member) -> None:
        if not member.state:
            return  # never reached by the (truncated) plan: no event, no row
        pk = next(self.next_member)
        user = member.user
        self.writer.members.append(
            (
                pk, conversation_pk, member.id, member.state, member.state_event_id, user.id,
                user.name, member.kind, json.dumps(member.channel), ts_of(member.invited_ms),
                ts_of(member.joined_ms), ts_of(member.left_ms),
            )
        )  # fmt: skip
        self.search_index.index_member(
            self.StoredMember(
                conversation_id=conversation_pk,
                vonage_id=member.id,
                user_id=user.id,
                user_name=user.name,
                channel=member.channel,
            )
        )
        self.totals.members += 1

    def write_events(
        self,
        pk: int,
        model: Any,
        members: list[Member],
        steps: list[Step],
        stamps: list[int],
    ) -> None:
        world, rng = self.world, self.world.rng
        vonage_id = model.vonage_id
        batch: list[tuple[int, Row, str, int]] = []

        def flush() -> None:
            self.search_index.index_events(model, [row for _, row, _, _ in batch])
            for event_id, row, sender, ts in batch:
                stamp = iso_ms(ts)
                self.writer.event(
                    (
                        next(self.writer.next_event), pk, event_id, row.type, sender, stamp,
                        json.dumps(row.body), row.text, "webhook", self.writer.now,
                    )
                )  # fmt: skip
            batch.clear()

        for i, step in enumerate(steps):
            member = members[step[1]]
            hostile = None
            if step[0] in ("message", "custom:order-update") and rng.random() < 0.002:
                hostile = self.hostile[rng.randrange(len(self.hostile))]
            etype, payload = world.body(step, member, stamps[i], hostile)
            self.totals.messages += etype == "message"
            self.totals.custom += etype.startswith("custom:")
            body = {
                "application_id": APPLICATION_ID,
                "conversation_id": vonage_id,
                "from": member.id,
                "id": i + 1,
                "timestamp": iso_ms(stamps[i]),
                "type": etype,
                "body": payload,
            }
            if hostile:
                body = self.storable(body)  # as ingestion stores it: no NUL, no lone surrogate
            batch.append((i + 1, Row(etype, body), member.id, stamps[i]))
            if len(batch) >= INDEX_BATCH:
                flush()
        if batch:
            flush()
        self.totals.events += len(steps)

    # the whole store

    def run(self) -> dict[str, Any]:
        args, world, rng = self.args, self.world, self.world.rng
        cursor = self.connection.cursor()
        self.application_id = cursor.execute(
            "INSERT INTO conversations_application (vonage_id) VALUES (%s) RETURNING id",
            (APPLICATION_ID,),
        ).fetchone()[0]
        count = max(2, round(args.events / EVENTS_PER_CONVERSATION))
        world.make_users(customers=max(200, round(count * 1.4)), agents=max(20, count // 60))
        sizes = conversation_sizes(rng, args.events - TIMELINE_EVENTS, count - 1)
        timeline_at = count // 2  # in the middle of the history, as an old big call would be
        pk = 0
        timeline_id = ""
        for index, size in enumerate(sizes):
            if index == timeline_at:
                pk += 1
                timeline_id = self.big(
                    pk, TIMELINE_EVENTS, TIMELINE_MEMBERS, 4 * 3600_000, "timeline"
                )
            pk += 1
            live = rng.random() < LIVE_SHARE
            wanted = rng.choices(*zip(*MEMBER_COUNT_WEIGHTS, strict=True))[0]
            # as many as the size lets join and leave (about 11 events each, 8 for the first)
            members = world.members_of(min(wanted, max(1, (size - 8) // 11 + 1)))
            span = size * rng.randint(1500, 15000)
            if live:
                start = self.now_ms - span - rng.randint(0, 3600_000)
            else:
                start = self.now_ms - rng.randint(3600_000, HISTORY_DAYS * DAY_MS)
            slug, label = rng.choice(TOPICS)
            vonage_id = self.conversation(
                pk, size, members, name=f"{slug}-{pk}", display_name=label, start_ms=start,
                span_ms=span, live=live, spread=False,
            )  # fmt: skip
            if index % max(len(sizes) // 20, 1) == 0:  # ids to search for, all over the history
                self.samples["conversations"].append(vonage_id)
                self.samples["members"].append(members[0].id)
            if pk % 2000 == 0:
                print(f"seed: {pk} conversations, {self.totals.events} events", file=sys.stderr)
        export_id = ""
        if args.export_events:
            pk += 1
            export_id = self.big(pk, args.export_events, EXPORT_MEMBERS, 30 * DAY_MS, "export")
        self.writer.commit()
        return {"timeline": timeline_id, "export": export_id, "last_pk": pk}

    def big(self, pk: int, n: int, member_count: int, span_ms: int, what: str) -> str:
        """A conversation of exactly `n` events, members joining and leaving all along."""
        world = self.world
        members = world.members_of(member_count)
        start = self.now_ms - span_ms - 2 * DAY_MS
        print(f"seed: the {what} conversation, {n:,} events", file=sys.stderr)
        label = "Big conference" if what == "timeline" else "Contact centre queue"
        vonage_id = self.conversation(
            pk, n, members, name=f"bench-{what}", display_name=label, start_ms=start,
            span_ms=span_ms, live=False, spread=True,
        )  # fmt: skip
        return vonage_id


# --- indexes, statistics, marker


def secondary_indexes(cursor: psycopg.Cursor) -> list[tuple[str, str]]:
    """(name, definition) of the big tables' indexes that back no constraint."""
    return cursor.execute(
        """
        SELECT i.indexname, i.indexdef FROM pg_indexes i
        WHERE i.schemaname = 'public' AND i.tablename = ANY(%s)
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
        ORDER BY i.tablename, i.indexname
        """,
        (list(BIG_TABLES),),
    ).fetchall()


def word_counts(cursor: psycopg.Cursor, words: list[str], export_pk: int) -> list[dict[str, Any]]:
    """How many events and conversations each word is in (the GIN index answers), besides the
    export conversation (which has every word)."""
    out = []
    for word in words:
        events, conversations = cursor.execute(
            "SELECT count(*), count(DISTINCT conversation_id) FROM conversations_storedevent "
            "WHERE text_vector @@ to_tsquery('simple', %s) AND conversation_id <> %s",
            (word, export_pk),
        ).fetchone()
        out.append({"word": word, "events": events, "conversations": conversations})
    return out


def pick_samples(seeder: Seeder, rng: random.Random) -> dict[str, Any]:
    """Users whose number, name and SIP address the bench searches for, with the conversations
    each must find (all of them, newest first)."""
    world = seeder.world
    names = [u.name for u in world.users]
    names_sorted = sorted(names)

    def unique_prefix(name: str) -> bool:
        i = bisect.bisect_left(names_sorted, name)
        return i + 1 >= len(names_sorted) or not names_sorted[i + 1].startswith(name)

    def found(user: User, kinds: tuple[str, ...]) -> list[str]:
        seen = sorted((s for s in seeder.by_user.get(user.id, []) if s[2] in kinds), reverse=True)
        return list(dict.fromkeys(conv for _, conv, _ in seen))

    candidates = [u for u in world.customers if u.id in seeder.by_user]
    rng.shuffle(candidates)
    numbers, people, sips = [], [], []
    for user in candidates:
        if len(numbers) < 10 and user.number.startswith("447") and found(user, ("phone",)):
            numbers.append(
                {"user": user.name, "number": user.number, "expect": found(user, ("phone",))}
            )
        elif len(people) < 10 and not user.name.startswith("NAM-") and unique_prefix(user.name):
            people.append({"name": user.name, "expect": found(user, ("phone", "sip", "app"))})
        elif len(sips) < 5 and user.sip and found(user, ("sip",)):
            sips.append({"uri": user.sip, "expect": found(user, ("sip",))})
        if len(numbers) == 10 and len(people) == 10 and len(sips) == 5:
            break
    return {"numbers": numbers, "names": people, "sips": sips}


def seed(args: argparse.Namespace) -> dict[str, Any]:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard_project.settings")
    django.setup()
    from conversations.store import search_index

    began = time.monotonic()
    url = os.environ["DATABASE_URL"]
    with psycopg.connect(url) as connection:
        cursor = connection.cursor()
        if cursor.execute("SELECT count(*) FROM conversations_storedevent").fetchone()[0]:
            raise SystemExit("the database already holds events: seed an empty, migrated one")
        indexes = secondary_indexes(cursor)
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        connection.commit()
        saved = search_index._save
        seeder = Seeder(args, connection)
        search_index._save = seeder.keys  # the collector: keys go in by COPY
        try:
            made = seeder.run()
        finally:
            search_index._save = saved
        loaded = time.monotonic() - began
        print(f"seed: loaded in {loaded:.0f} s; building {len(indexes)} indexes", file=sys.stderr)
        cursor.execute("SET maintenance_work_mem = '512MB'")
        for _, definition in indexes:
            cursor.execute(definition)
        for table in ("storedconversation", "storedmember", "storedevent", "searchkey"):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('conversations_{table}', 'id'), "  # noqa: S608 - our table names
                f"(SELECT coalesce(max(id), 1) FROM conversations_{table}))"
            )
        connection.commit()
        indexed = time.monotonic() - began
        connection.autocommit = True
        # The whole database, the one-row application table too: its statistics decide how
        # many conversations the planner expects behind `application__vonage_id` (49 of 20,000
        # without them, which turns some searches into nested loops). In production autovacuum
        # analyzes it once the reconciler has updated it 50 times.
        print("seed: VACUUM ANALYZE", file=sys.stderr)
        cursor.execute("VACUUM ANALYZE")
        export_pk = made["last_pk"] if made["export"] else 0
        # Mid-frequency words: ranks 100 to 300 of the vocabulary's about 4,000.
        words = seeder.world.words
        mid = word_counts(cursor, [words[r] for r in (120, 160, 200, 240, 280)], export_pk)
        common = word_counts(cursor, [words[2]], export_pk)
        rare = word_counts(cursor, [words[3000]], export_pk)
        totals = cursor.execute(
            "SELECT (SELECT count(*) FROM conversations_storedconversation),"
            " (SELECT count(*) FROM conversations_storedevent),"
            " (SELECT count(*) FROM conversations_storedmember),"
            " (SELECT count(*) FROM conversations_searchkey),"
            " pg_database_size(current_database())"
        ).fetchone()
        samples = pick_samples(seeder, random.Random(args.seed + 1))
        world = {
            "timeline": made["timeline"],
            "timeline_events": TIMELINE_EVENTS,
            "export": made["export"],
            "export_events": args.export_events,
            "words": {"mid": mid, "common": common, "rare": rare},
            "numbers": samples["numbers"],
            "names": samples["names"],
            "sips": samples["sips"],
            "conversations": seeder.samples["conversations"][:10],
            "members": seeder.samples["members"][:10],
            "app_number": APP_NUMBERS[0],
            "totals": {
                "conversations": totals[0],
                "events": totals[1],
                "members": totals[2],
                "keys": totals[3],
                "messages": seeder.totals.messages,
                "custom": seeder.totals.custom,
                "live": seeder.totals.live,
                "database_mb": round(totals[4] / 2**20),
            },
            "seconds": {
                "load": round(loaded),
                "indexes": round(indexed - loaded),
                "total": round(time.monotonic() - began),
            },
        }
        write_marker(cursor, args, world)
    return world


def fingerprint() -> str:
    """What the seeded data depends on: this module and the code that derives text and keys. A
    change to any of them seeds again. (Schema changes do not: the stack migrates the seeded
    database as it starts, as it would a production one.)"""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in (
        Path(__file__).resolve(),
        root / "conversations" / "store" / "search_index.py",
        root / "conversations" / "ids.py",
    ):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def params_of(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "events": args.events,
        "export_events": args.export_events,
        "seed": args.seed,
        "code": fingerprint(),
    }


def write_marker(cursor: psycopg.Cursor, args: argparse.Namespace, world: dict[str, Any]) -> None:
    """Last, once everything is in: a database without it is seeded again from scratch."""
    cursor.execute(
        f"CREATE TABLE {MARKER_TABLE} (params jsonb NOT NULL, world jsonb NOT NULL, "
        "seeded_at timestamptz NOT NULL DEFAULT now())"
    )
    cursor.execute(
        f"INSERT INTO {MARKER_TABLE} (params, world) VALUES (%s, %s)",  # noqa: S608 - a constant
        (json.dumps(params_of(args)), json.dumps(world)),
    )


def read_marker(url: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(params, world) of a seeded database, or None (no database, no marker)."""
    try:
        with psycopg.connect(url, connect_timeout=5) as connection:
            row = connection.execute(
                "SELECT params, world FROM bench_search_seed ORDER BY seeded_at DESC LIMIT 1"
            ).fetchone()
    except psycopg.Error:
        return None
    return (row[0], row[1]) if row else None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/search_seed.py", description=__doc__.split("\n")[0]
    )
    add = parser.add_argument
    add("--events", type=int, default=1_000_000, help="events of the store (1,000,000)")
    add("--export-events", type=int, default=1_000_000,
        help="events of the export's conversation, besides (1,000,000; 0: none)")  # fmt: skip
    add("--seed", type=int, default=11, help="random seed (11)")
    args = parser.parse_args(argv)
    if args.events < TIMELINE_EVENTS * 2:
        parser.error(f"--events must be at least {TIMELINE_EVENTS * 2}")
    return args


def main(argv: list[str] | None = None) -> int:
    world = seed(parse_args(argv))
    print(json.dumps(world))
    return 0


if __name__ == "__main__":
    sys.exit(main())
