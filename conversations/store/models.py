"""The store's tables. Raw bodies are kept whole (JSON); the columns beside them are what pages,
filters and the reconciler need, derived from those bodies by ingest.py.

Identity is always (application, upstream id): one dashboard may later watch several applications,
and upstream ids are only unique within one.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class Application(models.Model):
    """A Vonage application whose events the store holds."""

    vonage_id = models.CharField(max_length=64, unique=True)
    # The reconciler's cursor for finding new conversations from the list (date_start since then).
    listed_until = models.DateTimeField(null=True, blank=True)
    backfilled_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.vonage_id


class StoredConversation(models.Model):
    """One conversation, with what its events (and the API, when read) say about it."""

    application = models.ForeignKey(Application, on_delete=models.CASCADE)
    vonage_id = models.CharField(max_length=100)
    name = models.TextField(blank=True)
    display_name = models.TextField(blank=True)
    # The API's last answer for this conversation (None until read): kept whole, shown as history.
    api_body = models.JSONField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True, db_index=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # The API answered 404 (or a conversation:deleted event arrived): its history stays.
    deleted_upstream_at = models.DateTimeField(null=True, blank=True)
    # Derived from stored events (ingest.refresh_conversation):
    last_event_id = models.IntegerField(default=0)  # the highest stored event id
    contiguous_event_id = models.IntegerField(default=0)  # every id up to this one is stored
    # The reconciler's: the highest id an ascending API read returned. Ids up to it that are not
    # stored are holes the API will not fill (deleted events, items the database refused).
    read_through_event_id = models.IntegerField(default=0)
    last_event_type = models.CharField(max_length=100, blank=True)
    last_event_at = models.DateTimeField(null=True, blank=True, db_index=True)
    joined_count = models.IntegerField(default=0)  # members whose latest state is JOINED
    is_live = models.BooleanField(default=False, db_index=True)
    reconciled_at = models.DateTimeField(null=True, blank=True)
    first_seen_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["application", "vonage_id"], name="store_conversation_unique"
            )
        ]
        indexes = [
            models.Index(
                fields=["application", "-started_at"],
                name="store_conversation_started",
            ),
            models.Index(
                fields=["application", "is_live"],
                name="store_conversation_live",
                condition=Q(is_live=True),
            ),
        ]

    def __str__(self) -> str:
        return self.vonage_id

    @property
    def complete_through(self) -> int:
        """The id up to which the store lacks nothing it can get: every id is stored, or the API
        was read past it (an id the API never returns, a deleted event, is a hole for ever)."""
        return max(self.contiguous_event_id, self.read_through_event_id)

    @property
    def state(self) -> str:
        """live, ended, deleted (upstream) or waiting (no member has joined yet)."""
        if self.deleted_upstream_at is not None:
            return "deleted"
        if self.is_live:
            return "live"
        if self.ended_at is not None:
            return "ended"
        return "waiting"


class StoredMember(models.Model):
    """A member as its membership events describe it; the latest state is the one of the highest
    member event id applied (`state_event_id`)."""

    conversation = models.ForeignKey(
        StoredConversation, on_delete=models.CASCADE, related_name="members"
    )
    vonage_id = models.CharField(max_length=100)
    state = models.CharField(max_length=20, blank=True)  # INVITED, JOINED or LEFT
    state_event_id = models.IntegerField(default=0)
    user_id = models.CharField(max_length=100, blank=True)
    user_name = models.TextField(blank=True)
    channel_type = models.CharField(max_length=40, blank=True)
    channel = models.JSONField(default=dict, blank=True)
    invited_at = models.DateTimeField(null=True, blank=True)
    joined_at = models.DateTimeField(null=True, blank=True)
    left_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "vonage_id"], name="store_member_unique"
            )
        ]
        indexes = [models.Index(fields=["user_id"], name="store_member_user")]

    def __str__(self) -> str:
        return self.vonage_id


class StoredEvent(models.Model):
    """One event, once: unique per conversation and event id, so a duplicate is a no-op."""

    WEBHOOK = "webhook"
    API = "api"

    conversation = models.ForeignKey(
        StoredConversation, on_delete=models.CASCADE, related_name="events"
    )
    event_id = models.IntegerField()
    type = models.CharField(max_length=100, db_index=True)
    from_member = models.CharField(max_length=100, blank=True)
    timestamp = models.DateTimeField(null=True, blank=True)
    body = models.JSONField()  # the whole event as it arrived (webhook body or API item)
    # The words staff search for (message texts, custom event bodies), derived at ingestion by
    # search_index.py. On PostgreSQL a generated tsvector column over it has a GIN index
    # (migration 0004), which the model does not declare: search.py queries it by name.
    text = models.TextField(blank=True, default="")
    source = models.CharField(max_length=10, default=WEBHOOK)
    stored_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["conversation", "event_id"], name="store_event_unique")
        ]
        # A conversation's events of some types: the timeline, the search's event type filter.
        indexes = [models.Index(fields=["conversation", "type"], name="store_event_type")]

    def __str__(self) -> str:
        return f"{self.conversation_id}#{self.event_id}"


class SearchKey(models.Model):
    """One thing a conversation can be found by, other than words: a phone number, a SIP
    address, a name or an id, normalised by search_index.py so that every common form of it
    finds the same row. Written with the events, members and API answers that mention it."""

    NUMBER = "number"  # the digits of the number, reversed: a suffix search is a prefix search
    SIP = "sip"  # a SIP address without its scheme and parameters, and its user part alone
    NAME = "name"  # a name or display name, lowercased, whole and word by word
    ID = "id"  # a conversation, member or user id, lowercased

    conversation = models.ForeignKey(
        StoredConversation, on_delete=models.CASCADE, related_name="search_keys"
    )
    kind = models.CharField(max_length=8)
    # db_index: on PostgreSQL Django adds a varchar_pattern_ops index too, which prefix
    # searches (LIKE 'x%') use whatever the database's collation.
    value = models.CharField(max_length=200, db_index=True)
    label = models.CharField(max_length=200)  # the form it was first seen in, shown as the match

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "kind", "value"], name="store_search_key_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


class WebhookReceipt(models.Model):
    """Every accepted webhook: the audit of what arrived, the only home of events that belong to
    no conversation (app:knocking), and the replay guard (a jti is accepted once)."""

    application = models.ForeignKey(Application, on_delete=models.CASCADE)
    jti = models.CharField(max_length=200, unique=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    type = models.CharField(max_length=100, blank=True)
    conversation_vonage_id = models.CharField(max_length=100, blank=True)
    event_id = models.IntegerField(null=True, blank=True)
    # The body as it arrived, when no StoredEvent holds it already (a duplicate, or an event of no
    # conversation); None when it was stored as a new event (its StoredEvent has it whole).
    body = models.JSONField(null=True, blank=True)
    stored = models.BooleanField(default=False)  # True: it was stored as a new event

    def __str__(self) -> str:
        return self.jti
