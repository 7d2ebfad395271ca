"""Personal data and roles (issue 12): the masking rules, the doors every view gets data through,
and a walk through every URL pattern as a Support user over the sandbox's world (full of phone
numbers, SIP addresses, custom data and messages) that finds none of it, while a Supervisor sees it.
"""

from __future__ import annotations

import ast
import html
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from conversations import schema
from conversations.privacy import masking, roles, sources, viewer
from conversations.store import ingest, reconcile, search
from conversations.store.models import StoredConversation
from tests.conftest import sandbox_client, supervisor, support

VIEWS = Path(__file__).resolve().parent.parent / "conversations" / "views"


# --- the rules


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("447700900100", "•••• 0100"),
        ("+44 7700 900100", "•••• 0100"),
        (447700900100, "•••• 0100"),
        ("123", "•••"),
    ],
)
def test_a_number_keeps_at_most_its_last_4_digits(value, masked):
    assert masking.number(value) == masked


def test_sip_email_and_text_rules():
    assert masking.sip("sip:alice@pbx.example.com;transport=tls") == (
        "sip:•••@pbx.example.com;transport=tls"
    )
    assert masking.sip("sips:bob@x.example") == "sips:•••@x.example"
    assert masking.email("ada@example.com") == "•••@example.com"
    scrubbed = masking.scrub("call +44 7700 900100 or 12025550143, mail ada@example.com")
    assert "900100" not in scrubbed and "5550143" not in scrubbed and "ada@" not in scrubbed
    assert "•••• 0100" in scrubbed and "•••• 0143" in scrubbed


@pytest.mark.parametrize(
    "kept",
    [
        "CON-12345678-1111-4111-8111-111111111111",
        "2026-11-27T09:00:01.000Z",
        "2026-11-27 09:00:01",
        "order 42 of 2026",
        "leg 1b7f3c2e-12ab-4cde-8f01-123456789abc",
    ],
)
def test_ids_dates_and_small_numbers_are_not_numbers(kept):
    assert masking.scrub(kept) == kept


def test_raw_json_is_masked_by_key_and_by_shape():
    body = {
        "type": "message",
        "body": {"text": "my card is 4111 1111 1111 1111", "message_type": "text"},
        "channel": {"from": {"number": "447700900100"}, "to": {"uri": "sip:ann@pbx.example.com"}},
        "custom_data": {"vip": "yes", "account": {"iban": "GB33BUKB20201555555555"}},
        "user": {"name": "ada", "image_url": "https://img.example/ada.png", "email": "a@b.co"},
    }
    masked = masking.json(body)
    assert masked["body"]["text"] == masking.MASK
    assert masked["body"]["message_type"] == "text"
    assert masked["channel"]["from"]["number"] == "•••• 0100"
    assert masked["channel"]["to"]["uri"] == "sip:•••@pbx.example.com"
    assert masked["custom_data"] == {"vip": "•••", "account": {"iban": "•••"}}
    assert masked["user"] == {"name": "ada", "image_url": "•••", "email": "•••@b.co"}
    assert masking.json(masked) == masked, "masking is idempotent"


def test_a_custom_events_whole_body_is_masked_keys_kept():
    event = schema.Event(id=3, type="custom:order", body={"order": "ORD-1", "note": "fragile"})
    masked = masking.value_of(event)
    assert masked.body == {"order": "•••", "note": "•••"}
    assert masked.type == "custom:order" and masked.id == 3


def test_records_are_masked_by_channel_type():
    member = schema.Member(
        id="MEM-1",
        user=schema.UserRef(id="USR-1", name="ada"),
        channel=schema.Channel(
            type="phone",
            from_=schema.Endpoint(type="phone", address="447700900100"),
            to=schema.Endpoint(type="sip", address="sip:ann@pbx.example.com"),
        ),
    )
    masked = masking.value_of(member)
    assert masked.channel.from_.address == "•••• 0100"
    assert masked.channel.to.address == "sip:•••@pbx.example.com"
    assert masked.user.name == "ada"
    user = schema.User(
        id="USR-1",
        name="ada",
        image_url="https://img.example/a.png",
        custom_data={"tier": "gold"},
        channels=[schema.UserChannel(type="pstn", address="447700900100")],
    )
    masked = masking.value_of(user)
    assert masked.image_url == "" and masked.custom_data == {"tier": "•••"}
    assert masked.channels[0].address == "•••• 0100"


# --- the doors


def test_views_get_data_only_through_the_privacy_doors():
    """No view module imports the store's queries or search, the client's registry, or runs an
    ORM query itself: data reaches a page only through conversations/privacy/sources.py."""
    offences = []
    # The audit log is the dashboard's own record, not customers' data from the store or the
    # API: its page reads it directly, for those allowed to audit (superusers, view_auditentry).
    own_records = {"audit.py"}
    for path in sorted(p for p in VIEWS.glob("*.py") if p.name not in own_records):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = {alias.name for alias in node.names}
                if node.module in ("conversations.store", "conversations.client") and (
                    names & {"queries", "search", "registry", "get_client"}
                ):
                    offences.append(f"{path.name}: from {node.module} import {names}")
                if node.module.startswith(
                    ("conversations.store.queries", "conversations.store.search")
                ):
                    offences.append(f"{path.name}: from {node.module}")
                if node.module == "conversations" and names & {"client"}:
                    offences.append(f"{path.name}: from conversations import client")
            if isinstance(node, ast.Attribute) and node.attr in ("objects", "get_client"):
                offences.append(f"{path.name}:{node.lineno}: .{node.attr}")
    assert offences == []


def test_outside_a_page_the_doors_fail_closed(db):
    con = "CON-aaaaaaaa-1111-4111-8111-111111111111"
    ingest.store_webhook(
        ingest.application("test-app"),
        "jti-privacy-1",
        {"conversation_id": con, "id": 1, "type": "message", "body": {"text": "secret words"}},
    )
    assert viewer.current() == viewer.MASKED
    with viewer.viewing_as(viewer.Viewer(sees_pii=True)):
        assert viewer.current().sees_pii


def test_support_max_age_hides_older_history(db, settings, django_user_model):
    settings.SUPPORT_MAX_AGE_DAYS = 7
    user = support(django_user_model.objects.create_user("s", is_staff=True))
    who = viewer.of(user)
    assert who.oldest is not None and not who.sees_pii
    old = schema.Conversation(id="CON-1", created=who.oldest.replace(year=2000))
    new = schema.Conversation(id="CON-2", created=who.oldest.replace(year=2999))
    page = sources.present(schema.Page(items=[old, new]), who)
    assert [c.id for c in page.items] == ["CON-2"]
    boss = supervisor(django_user_model.objects.create_user("b", is_staff=True))
    assert viewer.of(boss).oldest is None, "Supervisors see all of the history"


# --- every URL, as Support and as a Supervisor


def digit_windows(value: str, width: int = 8) -> set[str]:
    digits = re.sub(r"\D", "", value)
    return {digits[i : i + width] for i in range(len(digits) - width + 1)}


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


class Secrets:
    """What a Support user must never see, taken from the sandbox's own world."""

    def __init__(self, world, conversation_ids: list[str]) -> None:
        self.windows: set[str] = set()
        self.texts: set[str] = set()
        shown = set()  # names, ids and types are not personal: a text equal to one is not a secret
        for conv in world.conversations():
            shown |= {conv.id, conv.name or "", conv.display_name or ""}
        for user in world.users():
            shown |= {user.id, user.name or "", user.display_name or ""}
        for conv in (world.conversation(i) for i in conversation_ids):
            for member in conv.members:
                for key in ("from", "to"):
                    end = member.channel.get(key) or {}
                    if isinstance(end.get("number"), str):
                        self.windows |= digit_windows(end["number"])
            for event in conv.events:
                body = event.body if isinstance(event.body, dict) else {}
                if event.type == "message" and isinstance(body.get("text"), str):
                    self.texts.add(body["text"])
                if event.type.startswith("custom:"):
                    self.texts |= set(_strings(body))
            self.texts |= set(_strings(conv.properties.get("custom_data") or {}))
        for user in world.users():
            self.texts |= set(_strings(user.custom_data or {}))
            for channel in ("pstn", "sms", "whatsapp"):
                for item in user.channels.get(channel, []):
                    if isinstance(item.get("number"), str):
                        self.windows |= digit_windows(item["number"])
        # Short or common strings (a "yes", an amount) would be found in any page's chrome.
        self.texts = {t for t in self.texts if len(t.strip()) >= 12 and t not in shown}

    def found_in(self, page: str) -> list[str]:
        page = html.unescape(page)
        runs = set()
        for run in re.findall(r"\d{8,}", page):
            runs |= digit_windows(run)
        leaks = sorted(runs & self.windows)[:3]
        leaks += [t[:40] for t in self.texts if t in page][:3]
        return leaks


def url_names() -> set[str]:
    names = set()
    for pattern in get_resolver().url_patterns:
        if isinstance(pattern, URLResolver) and pattern.namespace == "conversations":
            names |= {
                f"conversations:{p.name}" for p in pattern.url_patterns if isinstance(p, URLPattern)
            }
    return names


@pytest.fixture
def world(sandbox, use_client, settings, db):
    settings.VONAGE_APPLICATION_ID = sandbox.application_id
    ingest.forget_applications()
    client = use_client(sandbox_client(sandbox))
    world = sandbox.world
    rich = [
        conv.id
        for conv in world.conversations()
        if any((m.channel.get("from") or {}).get("number") for m in conv.members)
        and any(e.type == "message" for e in conv.events)
    ][:3]
    api_only = next(c.id for c in world.conversations() if c.id not in rich)
    app = ingest.application(sandbox.application_id)
    for conversation_id in rich:
        reconcile.store_one(app, client, conversation_id)
    assert StoredConversation.objects.filter(vonage_id__in=rich, last_event_id__gt=0).count() == 3
    return world, rich, api_only


def urls_to_walk(world, rich, api_only) -> list[tuple[str, str, dict[str, str]]]:
    """(url name, url, query) for every URL pattern of the dashboard, with real ids."""
    stored = world.conversation(rich[0])
    member = next(m for m in stored.members if (m.channel.get("from") or {}).get("number"))
    number = member.channel["from"]["number"]
    walk = []
    for conversation_id in (rich[0], api_only):
        conv = world.conversation(conversation_id)
        args = [conversation_id]
        walk += [
            ("conversations:detail", reverse("conversations:detail", args=args), {}),
            ("conversations:members", reverse("conversations:members", args=args), {}),
            ("conversations:events", reverse("conversations:events", args=args), {}),
            (
                "conversations:events",
                reverse("conversations:events", args=args),
                {"event_type": "message"},
            ),
            ("conversations:header", reverse("conversations:header", args=args), {}),
            ("conversations:members_panel", reverse("conversations:members_panel", args=args), {}),
            ("conversations:timeline", reverse("conversations:timeline", args=args), {}),
            (
                "conversations:events_poll",
                reverse("conversations:events_poll", args=args),
                {"after": "0"},
            ),
        ]
        for fmt in ("csv", "json"):
            walk.append(
                (
                    "conversations:events",
                    reverse("conversations:events", args=args),
                    {"format": fmt},
                )
            )
        for m in conv.members[:3]:
            walk.append(
                (
                    "conversations:member",
                    reverse("conversations:member", args=[conversation_id, m.id]),
                    {},
                )
            )
    walk += [
        ("conversations:live", reverse("conversations:live"), {}),
        ("conversations:list", reverse("conversations:list"), {}),
        ("conversations:list", reverse("conversations:list"), {"state": "ended"}),
        ("conversations:list", reverse("conversations:list"), {"format": "csv"}),
        ("conversations:list", reverse("conversations:list"), {"format": "json"}),
        ("conversations:users", reverse("conversations:users"), {}),
        ("conversations:user", reverse("conversations:user", args=[member.user_id]), {}),
        ("conversations:search", reverse("conversations:search"), {"q": number}),
        ("conversations:search", reverse("conversations:search"), {"q": f"+{number}"}),
        ("conversations:search", reverse("conversations:search"), {"q": number, "format": "csv"}),
        ("conversations:search", reverse("conversations:search"), {"q": number, "format": "json"}),
        ("conversations:jump", reverse("conversations:jump"), {"id": rich[0]}),
        ("conversations:audit", reverse("conversations:audit"), {}),
        ("conversations:stream", reverse("conversations:stream"), {"topics": "live"}),
    ]
    for user in world.users()[:5]:
        walk.append(("conversations:user", reverse("conversations:user", args=[user.id]), {}))
    return walk


def walk(client, world, rich, api_only) -> tuple[set[str], list[tuple[str, str]]]:
    visited, pages = set(), []
    for name, url, query in urls_to_walk(world, rich, api_only):
        for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
            response = client.get(url, query, follow=True, **headers)
            assert response.status_code < 500 or name == "conversations:stream", (url, query)
            visited.add(name)
            body = b"".join(response.streaming_content) if response.streaming else response.content
            page = html.unescape(body.decode())
            if name == "conversations:search":
                # The query as the user typed it, in the box and the title, is theirs: what the
                # search found is checked.
                page = page.replace(query["q"], "").replace(quote_plus(query["q"]), "")
            pages.append((f"{url}?{query}", page))
    return visited, pages


def test_support_sees_no_personal_data_on_any_page(client, world, django_user_model):
    world_, rich, api_only = world
    secrets = Secrets(world_, rich)
    assert secrets.windows and secrets.texts, "the world is full of personal data"
    client.force_login(support(django_user_model.objects.create_user("support", is_staff=True)))
    visited, pages = walk(client, world_, rich, api_only)
    assert visited == url_names(), "every URL pattern is walked"
    leaks = {url: found for url, page in pages if (found := secrets.found_in(page))}
    assert leaks == {}
    # Searching by a full number still works, and shows the number masked.
    search_page = next(p for u, p in pages if "/search/" in u and "%2B" not in u)
    assert rich[0] in search_page and "•••• " in search_page


def test_a_supervisor_sees_the_same_pages_unmasked(client, world, django_user_model):
    world_, rich, api_only = world
    secrets = Secrets(world_, rich)
    client.force_login(supervisor(django_user_model.objects.create_user("boss", is_staff=True)))
    _, pages = walk(client, world_, rich, api_only)
    assert any(secrets.found_in(page) for _, page in pages)
    everything = html.unescape("".join(page for _, page in pages))
    assert any(window in re.sub(r"\D", "", everything) for window in secrets.windows)


def test_the_groups_exist_with_the_right_permission(db):
    supervisors, support_group = roles.group(roles.SUPERVISORS), roles.group(roles.SUPPORT)
    assert supervisors.permissions.filter(codename="view_pii").exists()
    assert not support_group.permissions.filter(codename="view_pii").exists()


def test_search_matches_are_masked_but_names_stay(db):
    match = search.Match("Number", "447700900100", whole=True)
    assert masking.value_of(match).text == "•••• 0100"
    assert masking.value_of(search.Match("Text", "hello secret", ("hello",))).text == masking.MASK
    assert masking.value_of(search.Match("Name", "Ada Lovelace", ("ada",))).text == "Ada Lovelace"
    sip = masking.value_of(search.Match("SIP address", "sip:ann@pbx.example.com", whole=True))
    assert sip.text == "sip:•••@pbx.example.com"


def test_the_one_query_permission_check_agrees_with_djangos(db, django_user_model):
    from django.contrib.auth.models import Permission

    permission = Permission.objects.get(codename="view_pii")
    direct = django_user_model.objects.create_user("direct", is_staff=True)
    direct.user_permissions.add(permission)
    grouped = supervisor(django_user_model.objects.create_user("grouped", is_staff=True))
    plain = support(django_user_model.objects.create_user("plain", is_staff=True))
    boss = django_user_model.objects.create_superuser("boss", password="x" * 12)
    gone = supervisor(django_user_model.objects.create_user("gone", is_active=False))
    for user in (direct, grouped, plain, boss, gone):
        user = django_user_model.objects.get(pk=user.pk)  # no cached permissions
        assert viewer.has_pii_permission(user) == user.has_perm(viewer.PERMISSION), user.username
    assert [viewer.has_pii_permission(u) for u in (direct, plain, boss, gone)] == [
        True,
        False,
        True,
        False,
    ]


def test_a_stored_custom_event_keeps_its_envelope_and_masks_its_payload():
    from conversations.store.models import StoredEvent

    body = {"id": 7, "type": "custom:order", "from": "MEM-1", "body": {"note": "fragile"}}
    row = masking.value_of(StoredEvent(event_id=7, type="custom:order", body=body, text="fragile"))
    assert row.body == {"id": 7, "type": "custom:order", "from": "MEM-1", "body": {"note": "•••"}}
    assert row.text == masking.MASK


def test_a_support_users_events_export_masks_payloads_not_envelopes(client, db, django_user_model):
    import json as jsonlib

    from tests.store_helpers import event, webhook

    con = "CON-bbbbbbbb-1111-4111-8111-111111111111"
    webhook(
        event(con, 1, "custom:order", "MEM-x1", {"note": "fragile vase", "tel": "+447700900100"})
    )
    webhook(event(con, 2, "message", "MEM-x1", {"text": "call me on 07700 900100"}))
    client.force_login(support(django_user_model.objects.create_user("s", is_staff=True)))
    response = client.get(reverse("conversations:events", args=[con]), {"format": "json"})
    rows = jsonlib.loads(b"".join(response.streaming_content))
    assert [(r["id"], r["type"], r["body"]["type"], r["body"]["id"]) for r in rows] == [
        (1, "custom:order", "custom:order", 1),
        (2, "message", "message", 2),
    ]
    assert rows[0]["body"]["body"] == {"note": "•••", "tel": "•••"}
    assert rows[1]["body"]["body"]["text"] == "•••"


def test_a_number_dressed_as_an_id_is_still_masked():
    assert "900100" not in masking.scrub("CON-447700900100")
    assert "900100" not in masking.scrub("see MEM-447700900100x")
    kept = "CON-1b7f3c2e-12ab-4cde-8f01-123456789abc"
    assert masking.scrub(f"call {kept} now") == f"call {kept} now"
