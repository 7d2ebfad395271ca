"""How a voice call unfolds as Conversation API events.

Generation works in two passes so that seeded conversations can spread their events evenly over
the call's lifetime: planners return ``Step`` tuples (type, member, data) without timestamps,
then ``CallScript.apply`` turns one step into an ``Event`` at a given time, updating member state
(timestamps, media) as the live API would. Live activity calls ``apply`` with "now".
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from typing import Any

from sandbox import hostile
from sandbox.model import Conversation, Event, Member, User
from sandbox.timefmt import iso_ms

# (event type, member the event is from, planner data)
Step = tuple[str, Member | None, dict[str, Any]]

TEXTS = [
    "Hi, I'd like to check the status of my order.",
    "Can you call me back in 10 minutes?",
    "Thanks, that solved it!",
    "I'm transferring you to billing now.",
    "Please hold while I look that up.",
    "Sure, my reference is 48213.",
    "Is there anything else I can help with?",
    "Bonjour, je voudrais parler à un conseiller.",
    "Ok \U0001f44d",
]
ORDER_STATUSES = ["created", "paid", "packed", "shipped", "delivered", "refunded"]
HANGUP_REASONS = [("16", "normal"), ("17", "busy"), ("31", "normal unspecified")]
NO_ANSWER = ("487", "Request Terminated: no answer")


def new_uuid(rng: random.Random) -> str:
    """A version-4 UUID drawn from the seeded RNG (uuid.uuid4 would break determinism)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def leg_of(member: Member) -> str:
    return member.channel.get("id", "")


class CallScript:
    """Plans and applies call events for one world; ``rng`` decides the details."""

    def __init__(self, rng: random.Random, users: dict[str, User]) -> None:
        self.rng = rng
        self.users = users
        self._builders: dict[str, Callable[[Conversation, Member | None, dict, int], dict]] = {
            "member:invited": self._member_invited,
            "member:joined": self._member_joined,
            "member:left": self._member_left,
            "member:media": self._member_media,
            "leg:status:update": self._leg_status,
            "sip:ringing": self._channel_direction,
            "sip:answered": self._channel_direction,
            "rtc:ringing": self._channel_direction,
            "rtc:answered": self._channel_direction,
            "sip:status": self._status,
            "rtc:status": self._status,
            "sip:hangup": self._hangup,
            "rtc:hangup": self._hangup,
            "audio:dtmf": self._dtmf,
            "audio:mute:on": self._leg_only,
            "audio:mute:off": self._leg_only,
            "audio:earmuff:on": self._leg_only,
            "audio:earmuff:off": self._leg_only,
            "audio:speaking:on": self._leg_only,
            "audio:speaking:off": self._leg_only,
            "audio:play": self._play,
            "audio:play:done": self._play_done,
            "audio:record": self._record,
            "audio:record:done": self._record_done,
            "message": self._message,
            "event:delete": self._delete,
        }

    # ------------------------------------------------------------------ planners

    def opening(self, caller: Member) -> list[Step]:
        """The first member calls in: the leg starts, is answered, and the member joins."""
        d = {"direction": "inbound"}
        kind = "rtc" if caller.channel["type"] == "app" else "sip"
        return [
            ("leg:status:update", caller, {**d, "status": "started"}),
            ("member:joined", caller, d),
            ("leg:status:update", caller, {**d, "status": "answered"}),
            (f"{kind}:answered", caller, d),
            ("member:media", caller, d),
        ]

    def ring(self, member: Member) -> list[Step]:
        """An outbound leg to an invited member starts ringing."""
        d = {"direction": "outbound"}
        kind = "rtc" if member.channel["type"] == "app" else "sip"
        return [
            ("member:invited", member, d),
            ("leg:status:update", member, {**d, "status": "started"}),
            (f"{kind}:ringing", member, d),
            ("leg:status:update", member, {**d, "status": "ringing"}),
        ]

    def answer(self, member: Member) -> list[Step]:
        d = {"direction": "outbound"}
        kind = "rtc" if member.channel["type"] == "app" else "sip"
        return [
            ("leg:status:update", member, {**d, "status": "answered"}),
            (f"{kind}:answered", member, d),
            ("member:joined", member, d),
            ("member:media", member, d),
        ]

    def hangup(self, member: Member, *, answered: bool, hostile_text: bool = False) -> list[Step]:
        # Invited members were dialled out to; the first member called in.
        direction = "outbound" if member.invited_by else "inbound"
        kind = "rtc" if member.channel["type"] == "app" else "sip"
        code, text = self.rng.choice(HANGUP_REASONS) if answered else NO_ANSWER
        if hostile_text:
            text = hostile.payload(self.rng.randrange(len(hostile.PAYLOADS)))
        d = {"direction": direction, "reason": {"code": code, "text": text}}
        return [
            ("leg:status:update", member, {**d, "status": "completed"}),
            (f"{kind}:hangup", member, d),
            ("member:left", member, d),
        ]

    def middle(
        self, members: list[Member], count: int, *, messages: bool, hostile_rate: float = 0.0
    ) -> list[Step]:
        """``count`` in-call events from ``members`` (who are expected to be joined by then)."""
        steps: list[Step] = []
        if not members:
            return steps
        rng = self.rng
        deletable = 0
        while len(steps) < count:
            m = rng.choice(members)
            h = rng.random() < hostile_rate
            roll = rng.random()
            if messages and roll < 0.25:
                steps.append(("message", m, {"hostile": h, "image": rng.random() < 0.1}))
                deletable += 1
            elif roll < 0.35:
                steps.append(("audio:dtmf", m, {"multi": rng.random() < 0.3}))
            elif roll < 0.45:
                steps += [("audio:speaking:on", m, {}), ("audio:speaking:off", m, {})]
            elif roll < 0.52:
                steps += [("audio:mute:on", m, {}), ("audio:mute:off", m, {})]
            elif roll < 0.58:
                play = {"play_id": new_uuid(rng), "hostile": h}
                steps += [("audio:play", m, play), ("audio:play:done", m, play)]
            elif roll < 0.63:
                rec = {"recording_id": new_uuid(rng), "hostile": h}
                steps += [("audio:record", m, rec), ("audio:record:done", m, rec)]
            elif roll < 0.66:
                steps.append(("audio:earmuff:on", m, {}))
            elif roll < 0.71:
                kind = "rtc" if m.channel["type"] == "app" else "sip"
                steps.append((f"{kind}:status", m, {"direction": "outbound"}))
            elif roll < 0.80:
                steps.append(("custom:order-update", m, {"hostile": h}))
                deletable += 1
            elif roll < 0.86:
                steps.append(("x-vendor:telemetry", m, {"hostile": h}))
            elif roll < 0.89 and deletable:
                steps.append(("event:delete", m, {}))
                deletable -= 1
            else:
                steps.append(("audio:dtmf", m, {"multi": False}))
        return steps[:count] if len(steps) > count else steps

    # ------------------------------------------------------------------ apply

    def apply(self, conv: Conversation, step: Step, ts: int) -> Event:
        """Append the event for ``step`` at ``ts`` and update the member it is about."""
        etype, member, data = step
        flag = MEDIA_FLAGS.get(etype)
        if flag is not None and member is not None:
            # Mute/earmuff events change what GET member later reports in media.audio_settings.
            member.media["audio_settings"][flag[0]] = flag[1]
        builder = self._builders.get(etype)
        if builder is None:
            builder = self._custom if etype.startswith("custom:") else self._vendor
        body = builder(conv, member, data, ts)
        event = Event(
            id=conv.sequence_number + 1,
            type=etype,
            from_id=member.id if member is not None else data.get("from"),
            body=body,
            ts=ts,
        )
        conv.events.append(event)
        conv.updated = ts
        return event

    # ------------------------------------------------------------------ bodies

    def _user_ref(self, member: Member, full: bool = False) -> dict[str, Any]:
        user = self.users.get(member.user_id)
        ref: dict[str, Any] = {"id": member.user_id}
        if full and user is not None:
            ref["name"] = user.name
            if user.display_name is not None:
                ref["display_name"] = user.display_name
        return ref

    @staticmethod
    def _member_timestamps(member: Member) -> dict[str, str]:
        out = {}
        for key in ("invited", "joined", "left"):
            value = getattr(member, key)
            if value is not None:
                out[key] = iso_ms(value)
        return out

    def _member_invited(self, conv, member, data, ts):
        member.state = "INVITED"
        member.invited = ts
        body = {
            "user": self._user_ref(member, full=True),
            "channel": member.channel,
            "media": _copy_media(member.media),
            "timestamp": self._member_timestamps(member),
            "initiator": member.initiator,
        }
        if member.invited_by:
            body["invited_by"] = member.invited_by
        return body

    def _member_joined(self, conv, member, data, ts):
        member.state = "JOINED"
        member.joined = ts
        member.media["audio"] = True
        member.media["audio_settings"]["enabled"] = True
        return {
            "user": self._user_ref(member),
            "channel": member.channel,
            "timestamp": self._member_timestamps(member),
        }

    def _member_left(self, conv, member, data, ts):
        member.state = "LEFT"
        member.left = ts
        member.media["audio"] = False
        member.media["audio_settings"]["enabled"] = False
        return {
            "user": self._user_ref(member),
            "channel": member.channel,
            "timestamp": self._member_timestamps(member),
        }

    def _member_media(self, conv, member, data, ts):
        return {
            "audio": member.media["audio"],
            "media": _copy_media(member.media),
            "channel": member.channel,
        }

    def _leg_status(self, conv, member, data, ts):
        return {
            "leg_id": leg_of(member),
            "status": data["status"],
            "direction": data["direction"],
            "type": _leg_type(member),
        }

    def _channel_direction(self, conv, member, data, ts):
        return {"channel": member.channel, "direction": data["direction"]}

    def _status(self, conv, member, data, ts):
        status = self.rng.choice(["ringing", "answered", "early_media", "connected"])
        return {"channel": member.channel, "direction": data["direction"], "status": status}

    def _hangup(self, conv, member, data, ts):
        body = {"channel": member.channel, "direction": data["direction"], "reason": data["reason"]}
        if member.joined is not None:
            body["duration"] = max(0, (ts - member.joined) // 1000)
        return body

    def _dtmf(self, conv, member, data, ts):
        if data.get("multi"):
            digits = "".join(self.rng.choice("0123456789*#") for _ in range(self.rng.randint(2, 6)))
            return {"digits": digits, "timed_out": False, "channel": _leg_channel(member)}
        return {"digit": self.rng.choice("0123456789*#"), "channel": _leg_channel(member)}

    def _leg_only(self, conv, member, data, ts):
        return {"channel": _leg_channel(member)}

    def _play(self, conv, member, data, ts):
        if data.get("hostile"):
            urls = [hostile.url(self.rng.randrange(len(hostile.HOSTILE_URLS)))]
        else:
            urls = [f"https://media.example.com/prompts/{self.rng.choice(PROMPTS)}.mp3"]
        data["stream_url"] = urls
        return {"play_id": data["play_id"], "stream_url": urls, "loop": 1, "level": 0}

    def _play_done(self, conv, member, data, ts):
        return {"play_id": data["play_id"], "stream_url": data.get("stream_url", [])}

    def _record(self, conv, member, data, ts):
        data["start"] = ts
        return {
            "recording_id": data["recording_id"],
            "format": "mp3",
            "channels": 1,
            "split": False,
            "beep_start": self.rng.random() < 0.5,
            "detect_speech": False,
        }

    def _record_done(self, conv, member, data, ts):
        if data.get("hostile"):
            url = hostile.url(self.rng.randrange(len(hostile.HOSTILE_URLS)))
        else:
            url = f"https://api.nexmo.com/v1/files/{new_uuid(self.rng)}"
        start = data.get("start", ts)
        return {
            "recording_id": data["recording_id"],
            "recording_url": url,
            "format": "mp3",
            "start_time": iso_ms(start),
            "end_time": iso_ms(ts),
            "size": max(1, (ts - start) // 1000) * 16000,
        }

    def _message(self, conv, member, data, ts):
        rng = self.rng
        if data.get("image"):
            url = (
                hostile.url(rng.randrange(len(hostile.HOSTILE_URLS)))
                if data.get("hostile")
                else f"https://media.example.com/uploads/{new_uuid(rng)}.jpg"
            )
            return {"message_type": "image", "image": {"url": url}}
        if data.get("text") is not None:
            text = data["text"]
        elif data.get("hostile"):
            text = hostile.payload(rng.randrange(len(hostile.PAYLOADS)))
        else:
            text = rng.choice(TEXTS)
        return {"message_type": "text", "text": text}

    def _custom(self, conv, member, data, ts):
        rng = self.rng
        if "body" in data:
            return data["body"]
        body: dict[str, Any] = {
            "order_id": f"ORD-{rng.randint(10000, 99999)}",
            "status": rng.choice(ORDER_STATUSES),
            "amount": {"value": round(rng.uniform(5, 500), 2), "currency": "EUR"},
            "items": [{"sku": f"SKU-{rng.randint(100, 999)}", "qty": rng.randint(1, 3)}],
        }
        if data.get("hostile"):
            i = rng.randrange(len(hostile.PAYLOADS))
            body["note"] = hostile.payload(i)
            body[hostile.payload(i + 1)] = hostile.payload(i + 2)
            body["tracking_url"] = hostile.url(i)
        return body

    def _vendor(self, conv, member, data, ts):
        # Unknown event types: the dashboard must render these generically.
        rng = self.rng
        if "body" in data:
            return data["body"]
        body: dict[str, Any] = {
            "mos": round(rng.uniform(2.5, 4.5), 2),
            "jitter_ms": rng.randint(1, 80),
            "packet_loss": round(rng.uniform(0, 0.05), 4),
            "codec": rng.choice(["opus", "PCMU", "PCMA", "G722"]),
            "samples": [rng.randint(0, 100) for _ in range(3)],
        }
        if data.get("hostile"):
            i = rng.randrange(len(hostile.PAYLOADS))
            body["agent"] = hostile.payload(i)
            body[hostile.payload(i + 3)] = {"nested": hostile.payload(i + 4)}
        return body

    def _delete(self, conv, member, data, ts):
        # Mark the most recent deletable event; exclude_deleted_events hides it.
        for event in reversed(conv.events):
            if not event.deleted and (event.type == "message" or event.type.startswith("custom:")):
                event.deleted = True
                return {"event_id": event.id}
        return {"event_id": None}


PROMPTS = ["welcome", "hold-music", "menu", "goodbye", "queue-position"]
MEDIA_FLAGS = {
    "audio:mute:on": ("muted", True),
    "audio:mute:off": ("muted", False),
    "audio:earmuff:on": ("earmuffed", True),
    "audio:earmuff:off": ("earmuffed", False),
}


def _copy_media(media: dict[str, Any]) -> dict[str, Any]:
    return {"audio_settings": dict(media["audio_settings"]), "audio": media["audio"]}


def _leg_type(member: Member) -> str:
    return member.channel["type"]


def _leg_channel(member: Member) -> dict[str, Any]:
    return {"type": member.channel["type"], "id": leg_of(member)}
