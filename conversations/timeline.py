"""A conversation's timeline: who was in it when, their legs' statuses, and what happened on the
call (DTMF, recordings, transfers, hang-ups), as rows, bars and marks on one time axis.

`build()` turns stored rows into a model that the template draws as SVG with no arithmetic of its
own: every horizontal position is a fraction of the axis (0 its start, 1 its end), handed over
as a percentage string, so the chart is as wide as its box at any screen width; vertical
positions are pixels.

- One row per member (StoredMember: invited, joined and left times, as ingestion derived them
  from the membership events; the events' own timestamps fill a time the body did not give),
  in the order they came in. A bar from invited to joined (ringing), and from joined to left (in
  the call); a member still in the call runs to the axis end ("now" while the conversation lives,
  its last known time once it is over).
- Under it, a lane per leg: the leg's statuses from `leg:status:update` (or, for a leg that has
  none, from the `sip:*`/`rtc:*` call events), each status a stretch until the next.
- Marks on the member's bar: `audio:dtmf`, `audio:record*`, `rtc:transfer`, and the hang-ups
  (`sip:hangup`, `rtc:hangup`, `rtc:terminate`). A leg's or mark's member is the one whose
  channel carries its leg id, else the event's sender.

Stored bodies are hostile input. The store is asked only for the event types drawn, through the
(conversation, type) index, and only for the few body values drawn, extracted and cut short by
the database: no whole body is loaded. Every value is checked for its type; a missing or
unparsable time leaves its mark out (counted); times out of order are drawn in event-id order
(a status never ends before it starts); times far in the future or long before the rest are left
out (counted). Everything is capped: rows, legs per row, events read, leg stretches and marks.
Marks of a kind closer together than one step of the axis (1/BUCKETS of it) merge into one that
says how many it holds; a busy row merges over wider steps, then keeps its share of MAX_MARKS,
its busiest marks. Each cap that cut something is said in `notes`.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any

from django.db.models import Case, TextField, When
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce, Length, Substr

from conversations import ids
from conversations.store.models import StoredConversation

# --- what is drawn, and the caps

MAX_ROWS = 30  # member rows drawn; more says how many more
MAX_MEMBERS_READ = 2000  # members read to tell whose legs the events are on
MAX_EVENTS = 20_000  # timeline events read (the oldest first); more says so
MAX_LEGS_PER_ROW = 3
BUCKETS = 200  # marks and status changes closer than 1/BUCKETS of the axis merge into one
MIN_BUCKETS = 12  # the widest step a busy row's marks merge over
MAX_MARKS = 300  # marks drawn in all (after merging): each row has its share, its budget
MAX_STRETCHES = 600  # leg status stretches drawn in all (after merging)
MAX_LISTED = 10  # marks and statuses listed per row in the table
MAX_MERGED_LABELS = 3  # values named in the title of merged marks ("5, 1, #")

FUTURE_SLACK = dt.timedelta(minutes=2)  # clocks differ a little; later than this is wrong
MAX_SPAN = dt.timedelta(days=31)  # a time further back than this before the end is left out
MIN_SPAN = dt.timedelta(seconds=10)

NAME_LIMIT = 60
ID_LIMIT = 100  # longest leg id, member id and value read from a body
TEXT_LIMIT = 80
SHORT_LEG = 8  # characters of a leg id shown

# --- event types (the Conversation API's event reference, and its RTC webhook types)

MEMBERSHIP_TYPES = {"member:invited": "invited", "member:joined": "joined", "member:left": "left"}
LEG_TYPES = ("leg:status:update",)
# Call events that say a leg's status, for legs with no leg:status:update (older data); None: the
# body's `status` says it.
CALL_STATUS_TYPES = {
    "sip:ringing": "ringing",
    "sip:answered": "answered",
    "sip:status": None,
    "sip:machine": "machine",
    "sip:amd_machine": "machine",
    "rtc:ringing": "ringing",
    "rtc:answered": "answered",
    "rtc:answer": "answered",
    "rtc:status": None,
}
HANGUP_TYPES = ("sip:hangup", "rtc:hangup", "rtc:terminate")
TRANSFER_TYPES = ("rtc:transfer",)  # the only transfer type the API documents
DTMF_TYPES = ("audio:dtmf",)
RECORD_TYPES = {
    "audio:record": "Recording started",
    "audio:record:stop": "Recording stopped",
    "audio:record:done": "Recording finished",
}
EVENT_TYPES = (
    *MEMBERSHIP_TYPES,
    *LEG_TYPES,
    *CALL_STATUS_TYPES,
    *HANGUP_TYPES,
    *TRANSFER_TYPES,
    *DTMF_TYPES,
    *RECORD_TYPES,
)
MARK_KINDS = ("dtmf", "record", "transfer", "hangup")
MARK_NAMES = {"dtmf": "DTMF", "record": "Recording", "transfer": "Transfer", "hangup": "Hang-up"}

# A leg in one of these has ended: its lane stops there.
TERMINAL_STATUSES = frozenset(
    {
        "completed",
        "busy",
        "cancelled",
        "canceled",
        "failed",
        "rejected",
        "timeout",
        "unanswered",
        "disconnected",
        "hangup",
        "hung up",
        "terminated",
    }
)
# How a status is drawn (a CSS class): the rest are "other".
STATUS_CLASSES = {
    "started": "setup",
    "ringing": "setup",
    "early_media": "setup",
    "answered": "up",
    "connected": "up",
    "machine": "up",
    "human": "up",
}

# --- layout (pixels)

AXIS_HEIGHT = 24
ROW_LABEL_Y = 13  # the member's name, from the row's top
BAR_Y = 18
BAR_HEIGHT = 10
LEG_Y = 32  # the first leg lane
LEG_STEP = 8
LEG_HEIGHT = 5
ROW_GAP = 8
MIN_WIDTH = 0.4  # percent: a bar of no length is still seen

_BIDI_CONTROLS = dict.fromkeys(map(ord, "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"))


# --- the model the template draws


@dataclass(frozen=True)
class Stretch:
    """A horizontal bar: part of a member's time in the conversation, or a leg's status."""

    x: str  # percent of the axis, "12.50%"
    width: str
    kind: str  # a CSS class suffix: invited/joined, or setup/up/other for a leg status
    title: str  # its text alternative


@dataclass(frozen=True)
class Lane:
    """One leg of a member, under the member's bar."""

    y: int
    title: str
    stretches: list[Stretch]


@dataclass(frozen=True)
class Mark:
    x: str
    kind: str  # one of MARK_KINDS
    title: str
    count: int  # events merged into this mark


@dataclass(frozen=True)
class Tick:
    x: str
    label: str
    anchor: str  # text-anchor: start, middle or end (so no label sticks out of the chart)


@dataclass
class Row:
    """One member (or the events tied to no member shown)."""

    member_id: str
    label: str
    channel: str
    state: str
    top: int = 0
    bars: list[Stretch] = field(default_factory=list)
    lanes: list[Lane] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    more_legs: int = 0
    invited: dt.datetime | None = None
    joined: dt.datetime | None = None
    left: dt.datetime | None = None
    in_call: str = ""  # the membership in words
    legs_text: list[str] = field(default_factory=list)  # one line per leg, for the table
    marks_text: list[str] = field(default_factory=list)  # one line per event, for the table
    more_marks_text: int = 0

    @property
    def label_y(self) -> int:
        return self.top + ROW_LABEL_Y

    @property
    def bar_y(self) -> int:
        return self.top + BAR_Y

    @property
    def mark_y(self) -> int:
        return self.top + BAR_Y + BAR_HEIGHT // 2

    @property
    def height(self) -> int:
        return LEG_Y + len(self.lanes) * LEG_STEP + ROW_GAP - (LEG_STEP - LEG_HEIGHT)


@dataclass(frozen=True)
class Timeline:
    start: dt.datetime
    end: dt.datetime
    live: bool  # the axis ends now: the conversation goes on
    rows: list[Row]
    ticks: list[Tick]
    height: int
    title: str  # the chart's accessible name
    members_total: int
    notes: list[str]  # what is not drawn, and why

    @property
    def bar_height(self) -> int:
        return BAR_HEIGHT

    @property
    def leg_height(self) -> int:
        return LEG_HEIGHT

    @property
    def axis_y(self) -> int:
        return AXIS_HEIGHT - 4

    @property
    def duration(self) -> dt.timedelta:
        return self.end - self.start


# --- values from the store, checked


@functools.lru_cache(maxsize=4096)
def _text(value: Any, limit: int = TEXT_LIMIT) -> str:
    """A stored string or number as short, printable text; "" for anything else (a JSON
    object read as text, a boolean). Remembered: a conversation repeats its legs and statuses
    thousands of times."""
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str):
        return ""
    value = value.translate(_BIDI_CONTROLS).strip()
    if value[:1] in ("{", "["):  # an object or a list where a value was expected
        return ""
    return value if len(value) <= limit else value[: limit - 1] + "…"


@functools.lru_cache(maxsize=1024)
def _member_id(value: str) -> str:
    """A sender or subject as a stored member's id ("" when it is none): a conversation has few
    of them, and 10,000 events name them again and again."""
    return ids.canonical(value) if ids.is_valid("member", value) else ""


def _short_leg(leg: str) -> str:
    return leg if len(leg) <= SHORT_LEG + 1 else leg[:SHORT_LEG] + "…"


def _clock(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%H:%M:%S")


def _span_words(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def _plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count:,} {one if count == 1 else (many or one + 's')}"


# --- reading the store


def _body_text(path: str, limit: int = ID_LIMIT) -> Substr:
    """One value of an event's body (`body.body.<path>`), as text cut short by the database."""
    return Substr(KT(f"body__body__{path}"), 1, limit)


def _read_members(stored: StoredConversation) -> list[dict[str, Any]]:
    return list(
        stored.members.order_by("id")
        .values(
            "vonage_id",
            "state",
            "user_id",
            "user_name",
            "channel_type",
            "invited_at",
            "joined_at",
            "left_at",
        )
        .annotate(
            leg_a=Substr(KT("channel__id"), 1, ID_LIMIT),
            leg_b=Substr(KT("channel__leg_ids__0"), 1, ID_LIMIT),
            leg_c=Substr(KT("channel__leg_ids__1"), 1, ID_LIMIT),
            name_cut=Substr("user_name", 1, NAME_LIMIT),
            name_length=Length("user_name"),
        )[: MAX_MEMBERS_READ + 1]
    )


def _for(types: Any, value: Any) -> Case:
    """`value` for the events of these types only (NULL for the others): the database does not
    read into the bodies of events that do not say it."""
    return Case(When(type__in=list(types), then=value), default=None, output_field=TextField())


def _read_events(stored: StoredConversation) -> list[dict[str, Any]]:
    """The timeline's events, oldest first, each with the few body values drawn."""
    statuses = (*LEG_TYPES, *CALL_STATUS_TYPES)
    return list(
        stored.events.filter(type__in=EVENT_TYPES)
        .order_by("event_id")
        .values("event_id", "type", "from_member", "timestamp")
        .annotate(
            # The leg: leg:status:update says `leg_id`; call and audio events, their channel's.
            leg=Coalesce(
                _body_text("leg_id"),
                _body_text("channel__id"),
                _body_text("channel__leg_ids__0"),
            ),
            subject=_for(MEMBERSHIP_TYPES, _body_text("member_id")),
            status=_for(statuses, _body_text("status", 40)),
            direction=_for(statuses, _body_text("direction", 20)),
            digits=_for(DTMF_TYPES, Coalesce(_body_text("digit", 40), _body_text("digits", 40))),
            reason_code=_for(HANGUP_TYPES, _body_text("reason__code", 20)),
            reason_text=_for(HANGUP_TYPES, _body_text("reason__text", TEXT_LIMIT)),
            reason=_for(HANGUP_TYPES, _body_text("reason", TEXT_LIMIT)),
        )[: MAX_EVENTS + 1]
    )


# --- the axis


class _Axis:
    def __init__(self, start: dt.datetime, end: dt.datetime) -> None:
        self.start = start
        self.end = end
        self.seconds = (end - start).total_seconds()

    def inside(self, when: dt.datetime | None) -> bool:
        return when is not None and self.start <= when <= self.end

    def fraction(self, when: dt.datetime) -> float:
        value = (when - self.start).total_seconds() / self.seconds
        return min(max(value, 0.0), 1.0)


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.2f}%"


def _stretch(start: float, end: float, kind: str, title: str) -> Stretch:
    width = max(end - start, MIN_WIDTH / 100)
    start = min(start, 1 - width)
    return Stretch(x=_percent(start), width=_percent(width), kind=kind, title=title)


# Seconds between two ticks: the first that gives at most MAX_TICKS.
_MINUTE, _HOUR, _DAY = 60, 3600, 86400
_TICK_STEPS = [1, 2, 5, 10, 15, 30]
_TICK_STEPS += [m * _MINUTE for m in (1, 2, 5, 10, 15, 30)]
_TICK_STEPS += [h * _HOUR for h in (1, 2, 3, 6, 12)] + [d * _DAY for d in (1, 2, 7)]
MAX_TICKS = 5


def _ticks(axis: _Axis) -> list[Tick]:
    step = next((s for s in _TICK_STEPS if axis.seconds / s <= MAX_TICKS), _TICK_STEPS[-1])
    first = int(axis.start.timestamp()) // step * step + step
    ticks = []
    moment = first
    while moment <= axis.end.timestamp() and len(ticks) < MAX_TICKS + 1:
        when = dt.datetime.fromtimestamp(moment, dt.UTC)
        if axis.seconds >= 86400:
            label = when.strftime("%m-%d %H:%M")
        elif step >= 60:
            label = when.strftime("%H:%M")
        else:
            label = when.strftime("%H:%M:%S")
        fraction = axis.fraction(when)
        anchor = "start" if fraction < 0.06 else "end" if fraction > 0.94 else "middle"
        ticks.append(Tick(x=_percent(fraction), label=label, anchor=anchor))
        moment += step
    return ticks


# --- building


@dataclass
class _Status:
    event_id: int
    when: dt.datetime
    status: str


@dataclass
class _Leg:
    leg_id: str
    direction: str = ""
    from_legs: list[_Status] = field(default_factory=list)  # leg:status:update
    from_calls: list[_Status] = field(default_factory=list)  # sip:*/rtc:*

    @property
    def statuses(self) -> list[_Status]:
        return self.from_legs or self.from_calls


@dataclass
class _Event:
    kind: str
    when: dt.datetime
    text: str  # "DTMF 5", "Hung up (16 normal)"
    value: str  # what a merged mark names ("5")


@dataclass
class _Member:
    member_id: str
    label: str
    channel: str
    state: str
    invited: dt.datetime | None
    joined: dt.datetime | None
    left: dt.datetime | None
    legs: dict[str, _Leg] = field(default_factory=dict)
    events: list[_Event] = field(default_factory=list)


NO_MEMBER = ""  # the key of the row of events tied to no member drawn


class _Counts:
    """What was left out, to say so under the chart."""

    def __init__(self) -> None:
        self.untimed = 0
        self.outside = 0
        self.marks_cut = 0
        self.stretches_cut = 0
        self.legs_cut = 0
        self.stretches_drawn = 0


def build(
    stored: StoredConversation, *, now: dt.datetime, over: bool, title: str = ""
) -> Timeline | None:
    """The timeline of a stored conversation, or None when nothing it stores has a time (no
    member with a time, no timed event): then there is nothing to draw."""
    member_rows = _read_members(stored)
    members_total = len(member_rows)
    if members_total > MAX_MEMBERS_READ:
        members_total = stored.members.count()
        member_rows = member_rows[:MAX_MEMBERS_READ]
    event_rows = _read_events(stored)
    more_events = len(event_rows) > MAX_EVENTS
    event_rows = event_rows[:MAX_EVENTS]
    return _build(
        member_rows,
        event_rows,
        members_total=members_total,
        more_events=more_events,
        now=now,
        over=over,
        ended=stored.ended_at,
        title=title or stored.vonage_id,
    )


def _build(
    member_rows: list[dict[str, Any]],
    event_rows: list[dict[str, Any]],
    *,
    members_total: int,
    more_events: bool,
    now: dt.datetime,
    over: bool,
    ended: dt.datetime | None,
    title: str,
) -> Timeline | None:
    counts = _Counts()
    members, leg_owner = _members(member_rows)
    membership_times: dict[str, dict[str, dt.datetime]] = defaultdict(dict)
    unowned = _Member(NO_MEMBER, "Not tied to a member", "", "", None, None, None)

    _place_events(event_rows, members, leg_owner, unowned, membership_times, counts)
    for member in members.values():
        times = membership_times.get(member.member_id, {})
        member.invited = member.invited or times.get("invited")
        member.joined = member.joined or times.get("joined")
        member.left = member.left or times.get("left")

    axis = _axis(members.values(), event_rows, now=now, over=over, ended=ended)
    if axis is None:
        return None
    drawn = sorted(members.values(), key=_row_order)
    hidden = drawn[MAX_ROWS:]
    drawn = drawn[:MAX_ROWS]
    if unowned.legs or unowned.events:
        drawn.append(unowned)
    budget = MAX_MARKS // max(len(drawn), 1)
    rows = [_row(member, axis, counts, live=not over, budget=budget) for member in drawn]
    top = AXIS_HEIGHT
    for row in rows:
        row.top = top
        row.lanes = [
            replace(lane, y=top + LEG_Y + index * LEG_STEP) for index, lane in enumerate(row.lanes)
        ]
        top += row.height
    notes = _notes(counts, len(hidden), more_events)
    summary = f"Timeline of {title}: {_plural(len(rows), 'row')} from {_clock(axis.start)} to "
    summary += f"{_clock(axis.end)} UTC" + (" (now)" if not over else "")
    return Timeline(
        start=axis.start,
        end=axis.end,
        live=not over,
        rows=rows,
        ticks=_ticks(axis),
        height=top + 2,
        title=summary,
        members_total=members_total,
        notes=notes,
    )


def _place_events(
    event_rows: list[dict[str, Any]],
    members: dict[str, _Member],
    leg_owner: dict[str, str],
    unowned: _Member,
    membership_times: dict[str, dict[str, dt.datetime]],
    counts: _Counts,
) -> None:
    """Each event on its member: a membership event's time (for a time its body did not give),
    a leg's status, or a mark. The member is the one whose channel carries the event's leg, else
    its sender, else none (`unowned`)."""

    def owner_of(leg: str, sender: str) -> _Member:
        owner = leg_owner.get(leg) if leg else None
        if owner is None:
            owner = sender if sender in members else None
            if owner is not None and leg:
                leg_owner[leg] = owner  # the leg's later events, even with another sender
        return members[owner] if owner is not None else unowned

    for row in event_rows:
        kind = row["type"]
        when = row["timestamp"] if isinstance(row["timestamp"], dt.datetime) else None
        sender = _member_id(row["from_member"])
        leg = _text(row["leg"], ID_LIMIT)
        if kind in MEMBERSHIP_TYPES:
            subject = _member_id(row["subject"]) or sender
            if subject and when is not None:
                membership_times[subject].setdefault(MEMBERSHIP_TYPES[kind], when)
            continue
        member = owner_of(leg, sender)
        if when is None:
            counts.untimed += 1
            continue
        if kind in LEG_TYPES or kind in CALL_STATUS_TYPES:
            status = _text(row["status"], 40).lower()
            if kind in CALL_STATUS_TYPES:
                status = CALL_STATUS_TYPES[kind] or status
            if not status:
                continue
            found = member.legs.setdefault(leg, _Leg(leg))
            found.direction = found.direction or _text(row["direction"], 20)
            target = found.from_legs if kind in LEG_TYPES else found.from_calls
            target.append(_Status(row["event_id"], when, status))
            continue
        if kind in HANGUP_TYPES:
            if leg:  # the leg ends here, for a leg told only by call events
                found = member.legs.setdefault(leg, _Leg(leg))
                found.from_calls.append(_Status(row["event_id"], when, "hung up"))
            reason = _reason(row)
            member.events.append(
                _Event("hangup", when, "Hung up" + (f" ({reason})" if reason else ""), reason)
            )
        elif kind in TRANSFER_TYPES:
            member.events.append(_Event("transfer", when, "Transferred", ""))
        elif kind in DTMF_TYPES:
            digits = _text(row["digits"], 40)
            member.events.append(
                _Event("dtmf", when, f"DTMF {digits}" if digits else "DTMF", digits)
            )
        elif kind in RECORD_TYPES:
            words = RECORD_TYPES[kind]
            member.events.append(_Event("record", when, words, words.split()[-1]))


def _members(member_rows: list[dict[str, Any]]) -> tuple[dict[str, _Member], dict[str, str]]:
    members: dict[str, _Member] = {}
    leg_owner: dict[str, str] = {}
    for row in member_rows:
        member_id = row["vonage_id"]
        name = _text(row["name_cut"], NAME_LIMIT)
        if name and (row["name_length"] or 0) > NAME_LIMIT and not name.endswith("…"):
            name = name[: NAME_LIMIT - 1] + "…"  # cut by the database: say so
        name = name or _text(row["user_id"]) or member_id
        members[member_id] = _Member(
            member_id=member_id,
            label=name,
            channel=_text(row["channel_type"], 20),
            state=_text(row["state"], 20),
            invited=row["invited_at"],
            joined=row["joined_at"],
            left=row["left_at"],
        )
        for key in ("leg_a", "leg_b", "leg_c"):
            leg = _text(row[key], ID_LIMIT)
            if leg:
                leg_owner.setdefault(leg, member_id)
    return members, leg_owner


def _reason(row: dict[str, Any]) -> str:
    code, text = _text(row["reason_code"], 20), _text(row["reason_text"])
    if code or text:
        return " ".join(part for part in (code, text) if part)
    return _text(row["reason"])


def _axis(
    members: Any,
    event_rows: list[dict[str, Any]],
    *,
    now: dt.datetime,
    over: bool,
    ended: dt.datetime | None,
) -> _Axis | None:
    """From the first time to the last (now, while the conversation goes on). Times later than
    now (beyond a clock's slack) are wrong; a time far before the end would squash the rest into
    a line: both are left out of the axis."""
    latest = now + FUTURE_SLACK
    times = [row["timestamp"] for row in event_rows if isinstance(row["timestamp"], dt.datetime)]
    for member in members:
        times += [t for t in (member.invited, member.joined, member.left) if t is not None]
    if over and ended is not None:
        times.append(ended)
    times = [t for t in times if t <= latest]
    if not times:
        return None
    end = max(times) if over else max(now, max(times))
    start = max(min(times), end - MAX_SPAN)
    if end - start < MIN_SPAN:
        end = start + MIN_SPAN
    return _Axis(start, end)


def _row_order(member: _Member) -> tuple[int, dt.datetime]:
    first = member.invited or member.joined or member.left
    return (0, first) if first is not None else (1, dt.datetime.max.replace(tzinfo=dt.UTC))


def _row(member: _Member, axis: _Axis, counts: _Counts, *, live: bool, budget: int) -> Row:
    row = Row(
        member_id=member.member_id,
        label=member.label,
        channel=member.channel,
        state=member.state,
        invited=member.invited,
        joined=member.joined,
        left=member.left,
    )
    end_at = _membership(member, row, axis, live=live)
    for leg in sorted(member.legs.values(), key=_first_event):
        if not leg.statuses:
            continue
        line, stretches = _lane(member, leg, leg.statuses, axis, end_at, counts)
        row.legs_text.append(line)
        if not stretches:  # ended where it began, or outside the axis: the table says it
            continue
        if len(row.lanes) >= MAX_LEGS_PER_ROW:
            row.more_legs += 1
            counts.legs_cut += 1
            continue
        row.lanes.append(Lane(y=0, title=line, stretches=stretches))
    row.marks = _marks(member, row, axis, counts, budget=budget)
    return row


def _first_event(leg: _Leg) -> int:
    return min((s.event_id for s in leg.statuses), default=0)


def _membership(member: _Member, row: Row, axis: _Axis, *, live: bool) -> float:
    """The member's bars; returns where the member's time ends (a fraction of the axis)."""
    if member.member_id == NO_MEMBER:
        row.in_call = "Legs and events that name no member of the conversation"
        return 1.0
    invited, joined, left = member.invited, member.joined, member.left
    # Out of order (a hostile or skewed clock): a later step never starts before an earlier one.
    if invited and joined and joined < invited:
        invited = joined
    if left and (joined or invited) and left < (joined or invited):
        left = joined or invited
    has_left = left is not None or member.state == "LEFT"
    # In the conversation with no joining time stored (its event lost or without one).
    joined_unknown = joined is None and (
        member.state == "JOINED" or (member.state == "LEFT" and invited is None)
    )
    end = axis.fraction(left) if left is not None else 1.0
    name = member.label

    if left is not None:
        leaving = f"left {_clock(left)}"
    elif has_left:
        leaving = "left at a time not recorded"
    else:
        leaving = "still in the conversation" if live else "no leaving recorded"
    words = [f"invited {_clock(invited)}"] if invited else []
    if joined is not None:
        words.append(f"joined {_clock(joined)}")
    elif joined_unknown:
        words.append("joined at a time not recorded")
    elif invited is not None and has_left:
        words.append("did not join")
    row.in_call = ", ".join([*words, leaving])

    if invited is not None and not joined_unknown:
        until = joined or left
        to = axis.fraction(until) if until is not None else end
        if joined is not None:
            title = f"{name}: invited {_clock(invited)}, ringing until joined {_clock(joined)}"
        elif has_left:
            title = f"{name}: invited {_clock(invited)}, did not join, {leaving}"
        else:
            title = f"{name}: invited {_clock(invited)}, not joined yet"
        row.bars.append(_stretch(axis.fraction(invited), to, "invited", title))
    if joined is not None or joined_unknown:
        if joined is not None:
            start, since = axis.fraction(joined), f"joined {_clock(joined)}"
        else:
            start = axis.fraction(invited) if invited is not None else 0.0
            since = "joined at a time not recorded"
        length = ""
        if joined is not None and left is not None:
            length = f" ({_span_words((left - joined).total_seconds())})"
        row.bars.append(_stretch(start, end, "joined", f"{name}: {since}, {leaving}{length}"))
    return end


def _lane(
    member: _Member,
    leg: _Leg,
    statuses: list[_Status],
    axis: _Axis,
    end_at: float,
    counts: _Counts,
) -> tuple[str, list[Stretch]]:
    """A leg's status stretches, in event-id order, and the leg in words."""
    ordered = sorted(statuses, key=lambda s: s.event_id)
    name = f"Leg {_short_leg(leg.leg_id)}" if leg.leg_id else "Leg"
    if leg.direction:
        name += f" ({leg.direction})"
    words = [f"{s.status} {_clock(s.when)}" for s in ordered[:MAX_LISTED]]
    if len(ordered) > MAX_LISTED:
        words.append(f"and {_plural(len(ordered) - MAX_LISTED, 'more status', 'more statuses')}")
    line = f"{name}: {', '.join(words)}"
    # Positions follow the event order: a status never ends before it starts.
    points: list[tuple[float, _Status]] = []
    position = 0.0
    for status in ordered:
        if not axis.inside(status.when):
            counts.outside += 1
            continue
        position = max(position, axis.fraction(status.when))
        # Changes within one step of the axis cannot be told apart: the later one wins.
        if points and int(points[-1][0] * BUCKETS) == int(position * BUCKETS):
            points[-1] = (points[-1][0], status)
        elif points and points[-1][1].status == status.status:
            continue
        else:
            points.append((position, status))
    stretches: list[Stretch] = []
    for index, (start, status) in enumerate(points):
        if status.status in TERMINAL_STATUSES:
            break  # the leg ended
        following = points[index + 1] if index + 1 < len(points) else None
        end = following[0] if following else max(end_at, start)
        until = f"until {_clock(following[1].when)}" if following else "onwards"
        if counts.stretches_drawn >= MAX_STRETCHES:
            counts.stretches_cut += 1
            continue
        counts.stretches_drawn += 1
        stretches.append(
            _stretch(
                start,
                end,
                STATUS_CLASSES.get(status.status, "other"),
                f"{member.label}: {name} {status.status} from {_clock(status.when)} {until}",
            )
        )
    return line, stretches


def _marks(member: _Member, row: Row, axis: _Axis, counts: _Counts, *, budget: int) -> list[Mark]:
    """The member's events as marks. Those of a kind within one step of the axis merge; a row
    with more marks than its `budget` merges over wider steps (down to 1/MIN_BUCKETS of the
    axis), then keeps its `budget` busiest marks (the others are counted)."""
    events = sorted(member.events, key=lambda e: e.when)
    for event in events[:MAX_LISTED]:
        row.marks_text.append(f"{event.text} at {_clock(event.when)}")
    row.more_marks_text = max(len(events) - MAX_LISTED, 0)
    placed = []
    for event in events:
        if axis.inside(event.when):
            placed.append((axis.fraction(event.when), event))
        else:
            counts.outside += 1
    buckets = BUCKETS
    while True:
        groups: dict[tuple[str, int], list[_Event]] = {}
        for fraction, event in placed:
            groups.setdefault((event.kind, int(fraction * buckets)), []).append(event)
        if len(groups) <= budget or buckets <= MIN_BUCKETS:
            break
        buckets //= 2
    kept = list(groups.values())
    if len(kept) > budget:
        kept.sort(key=len, reverse=True)
        counts.marks_cut += sum(len(group) for group in kept[budget:])
        kept = sorted(kept[:budget], key=lambda group: group[0].when)
    return [
        Mark(
            x=_percent(axis.fraction(group[0].when)),
            kind=group[0].kind,
            title=_mark_title(member.label, group[0].kind, group),
            count=len(group),
        )
        for group in kept
    ]


def _mark_title(name: str, kind: str, group: list[_Event]) -> str:
    first = group[0]
    if len(group) == 1:
        return f"{name}: {first.text} at {_clock(first.when)} UTC"
    values = [e.value for e in group if e.value][:MAX_MERGED_LABELS]
    named = f": {', '.join(values)}" + ("…" if len(group) > len(values) and values else "")
    span = f"from {_clock(first.when)} to {_clock(group[-1].when)} UTC"
    return f"{name}: {_plural(len(group), MARK_NAMES[kind] + ' event')} {span}{named}"


def _notes(counts: _Counts, hidden_members: int, more_events: bool) -> list[str]:
    notes = []
    if hidden_members:
        notes.append(
            f"{_plural(hidden_members, 'more member')} not drawn (the first {MAX_ROWS} are); "
            "the Members tab lists them all."
        )
    if more_events:
        notes.append(f"Only the first {MAX_EVENTS:,} call events are drawn.")
    if counts.legs_cut:
        notes.append(
            f"{_plural(counts.legs_cut, 'leg')} not drawn (at most {MAX_LEGS_PER_ROW} a member); "
            "the table lists them."
        )
    if counts.marks_cut:
        notes.append(f"{_plural(counts.marks_cut, 'event')} not drawn: too many marks.")
    if counts.stretches_cut:
        notes.append(f"{_plural(counts.stretches_cut, 'leg status', 'leg statuses')} not drawn.")
    if counts.untimed:
        notes.append(f"{_plural(counts.untimed, 'event')} without a time not drawn.")
    if counts.outside:
        notes.append(
            f"{_plural(counts.outside, 'event')} not drawn: "
            "their times are in the future or long before the rest."
        )
    return notes
