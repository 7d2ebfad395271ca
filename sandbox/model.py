"""In-memory records of the sandbox world.

These are internal records, not API shapes: ``shapes.py`` renders them into the exact v1 JSON.
Times are epoch milliseconds. Records are mutated only under ``World.lock``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Session:
    id: str  # SES-<uuid>
    ttl: int
    api_key: str
    seq: int  # insertion order; the paging key


@dataclass(slots=True)
class User:
    id: str  # USR-<uuid>
    name: str
    display_name: str | None
    image_url: str | None
    custom_data: dict[str, Any]
    channels: dict[str, list[dict[str, Any]]]
    seq: int
    sessions: list[Session] = field(default_factory=list)


@dataclass(slots=True)
class Member:
    id: str  # MEM-<uuid>
    conversation_id: str
    user_id: str
    channel: dict[str, Any]
    seq: int  # position in the conversation's member list; the paging key
    state: str = "INVITED"  # INVITED | JOINED | LEFT
    invited: int | None = None
    joined: int | None = None
    left: int | None = None
    initiator: dict[str, Any] = field(default_factory=dict)
    media: dict[str, Any] = field(default_factory=dict)
    knocking_id: str | None = None
    invited_by: str | None = None


@dataclass(slots=True)
class Event:
    id: int  # sequential per conversation, starting at 1
    type: str
    from_id: str | None  # MEM-... or knocker:...; None for system events without a sender
    body: dict[str, Any]
    ts: int
    deleted: bool = False


@dataclass(slots=True)
class Conversation:
    id: str  # CON-<uuid>
    name: str
    display_name: str | None
    image_url: str | None
    created: int
    updated: int
    properties: dict[str, Any]
    state: str = "ACTIVE"  # ACTIVE | INACTIVE | DELETED
    destroyed: int | None = None
    members: list[Member] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    member_index: dict[str, Member] = field(default_factory=dict)

    @property
    def sequence_number(self) -> int:
        # API.md: sequence_number is the last event id.
        return self.events[-1].id if self.events else 0

    @property
    def sort_key(self) -> tuple[int, str]:
        return (self.created, self.id)

    def add_member(self, member: Member) -> None:
        self.members.append(member)
        self.member_index[member.id] = member

    def last_ts(self) -> int:
        return self.events[-1].ts if self.events else self.created
