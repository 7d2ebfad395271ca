"""Review of issues 11 and 12 (search, exports, timeline, masking, audit, second factor).

Each test here is a defect found in review: it fails on main as merged (2598f72) and passes once
the defect is fixed. Each names the file and line of the defect and a one-line suggested fix.
Runs on SQLite and PostgreSQL (DATABASE_URL=postgres://.../review CACHE_URL=redis://.../8).
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import re

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from conversations import schema
from conversations.client import StillLoading
from conversations.store import search

from .conftest import supervisor, support
from .store_helpers import api_conversation, event, forbid_upstream, webhook
from .test_audit import sent

pytestmark = pytest.mark.django_db

CON = "CON-0badc0de-1111-4111-8111-111111111111"
OLD_CON = "CON-0badc0de-2222-4222-8222-222222222222"
MEM = "MEM-0badc0de-3333-4333-8333-333333333333"
USR = "USR-0badc0de-4444-4444-8444-444444444444"
NUMBER = "447700900100"
SEARCH = reverse("conversations:search")


def digits_of(page: str) -> str:
    """The page with the separators between digits taken out: "any 8 consecutive digits of a
    number" is looked for in it (`+44 7700 900100` hides nothing)."""
    return re.sub(r"(?<=\d)[\s().\-/](?=\d)", "", html.unescape(page))


def body(response) -> str:
    raw = b"".join(response.streaming_content) if response.streaming else response.content
    return html.unescape(raw.decode())


@pytest.fixture
def support_client(client, django_user_model):
    client.force_login(support(django_user_model.objects.create_user("sup", is_staff=True)))
    return client


@pytest.fixture
def supervisor_client(client, django_user_model):
    client.force_login(supervisor(django_user_model.objects.create_user("boss", is_staff=True)))
    return client


def stored_call(con: str = CON, name: str = "", **event_overrides) -> None:
    """A stored conversation with one member (a phone number) and one message."""
    joined = event(
        con,
        1,
        "member:joined",
        MEM,
        {
            "member_id": MEM,
            "user": {"id": USR, "name": "caller"},
            "channel": {"type": "phone", "from": {"type": "phone", "number": NUMBER}},
        },
    )
    joined.update(event_overrides)
    webhook(joined)
    message = event(con, 2, "message", MEM, {"message_type": "text", "text": "hello there"})
    message.update(event_overrides)
    webhook(message)
    if name:
        api_conversation(con, name)


# --- 1. personal data shown to Support


@pytest.mark.parametrize(
    "name",
    [
        f"callback-{NUMBER}",  # a dash before the number (the look-behind keeps it)
        f"call_{NUMBER}",  # an underscore
        f"tel{NUMBER}",  # letters
        f"{NUMBER}_recording",  # letters after
    ],
)
def test_a_number_inside_a_conversation_name_is_masked_for_support(
    support_client, monkeypatch, name
):
    """HIGH. conversations/privacy/masking.py:41 `_NUMBER_IN_TEXT`: the look-arounds
    `(?<![\\w-])` / `(?![\\w-])` (there to keep ids like `leg 1b7f3c2e-12345678`) also keep a
    full phone number glued to a word, a dash or an underscore, which is how conversation names
    are often made (`callback-447700900100`). Support sees the whole number in the name on the
    search results, the conversation page, the list, exports.
    Fix: in `_number_in_text` mask any run of 8+ digits (after separators) that is not inside a
    known id shape (CON-/MEM-/USR-/uuid), instead of refusing matches next to word characters."""
    forbid_upstream(monkeypatch)
    stored_call(name=name)
    pages = [
        support_client.get(reverse("conversations:detail", args=[CON])),
        support_client.get(reverse("conversations:list"), {"format": "csv"}),
    ]
    prefix = name.split(NUMBER)[0]
    if prefix:  # the name found by its first word
        pages.append(support_client.get(SEARCH, {"q": prefix.strip("-_")}))
    for response in pages:
        page = body(response)
        assert CON in page, "the conversation is shown"
        assert "77009001" not in digits_of(page), (response.request["PATH_INFO"], name)


def test_a_custom_data_value_under_name_is_shown_in_search_matches(support_client, monkeypatch):
    """HIGH. conversations/store/search_index.py:166-168 indexes every `name` field of a
    `conversation:*` event (`names_anywhere`) as a NAME key, including one inside
    `properties.custom_data`; its label is the custom data value, which search.py:96
    (`Match.__masked__`, kind Name) only `scrub`s. A Support user who searches for it sees a
    custom data value (personal data) in "What matched", and in the search export's `matched`.
    Fix: in keys_of, skip leaves under `custom_data` (track the path, not only the parent), or
    mask Name matches whose key did not come from a conversation's/user's own name field."""
    forbid_upstream(monkeypatch)
    stored_call()
    webhook(
        event(
            CON,
            3,
            "conversation:updated",
            "",
            {
                "name": "sales line",
                "properties": {"custom_data": {"name": "Patient Zelda diagnosis confidential"}},
            },
        )
    )
    page = body(support_client.get(SEARCH, {"q": "patient zelda"}))
    exported = body(support_client.get(SEARCH, {"q": "patient zelda", "format": "csv"}))
    # Custom data is not indexed as names at all (search_index.keys_of skips it): not found by
    # it, and its value never shown as "what matched".
    assert "diagnosis confidential" not in page.lower()
    assert "diagnosis confidential" not in exported.lower()


def test_an_image_message_url_is_masked_for_support(support_client, monkeypatch):
    """MEDIUM. conversations/privacy/masking.py:36 TEXT_KEYS = {"text", "transcript"}: a message's
    content other than text (an image, file, audio or video message's `url`, a location) is not
    masked: Support sees the URL of a customer's photo on the events tab and in exports (issue 12
    lists message texts and image URLs as personal data).
    Fix: mask the whole `body` of `message`/`message:*` events except `message_type` (as a
    custom event's payload is masked), or add the media keys (`image`, `file`, `audio`, `video`,
    `vcard`, `location`) to the keys masked whole."""
    forbid_upstream(monkeypatch)
    secret_url = "https://media.example.com/uploads/customer-passport-scan.jpg"
    stored_call()
    webhook(event(CON, 3, "message", MEM, {"message_type": "image", "image": {"url": secret_url}}))
    tab = body(support_client.get(reverse("conversations:events", args=[CON])))
    exported = body(
        support_client.get(reverse("conversations:events", args=[CON]), {"format": "json"})
    )
    assert "customer-passport-scan" not in tab
    assert "customer-passport-scan" not in exported


def test_the_audit_log_shows_searched_numbers_to_a_reader_without_view_pii(
    client, django_user_model, monkeypatch
):
    """MEDIUM. conversations/views/audit.py:107 `row_of` (and :159 `csv_cells`): the audit page
    shows entries' details as stored, unmasked, to anyone allowed to read it; a data protection
    officer given `conversations.view_auditentry` but not `view_pii` (roles.py: "Given by hand";
    neither group has it) reads the full numbers, emails and message words others searched for.
    Issue 12: "Any staff user without it sees personal data masked ... on every page".
    Fix: pass each detail through privacy.sources.present (masking.value_of) in row_of and
    csv_cells when the reader lacks view_pii (ids and paths stay)."""
    forbid_upstream(monkeypatch)
    stored_call()
    boss = supervisor(django_user_model.objects.create_user("boss", is_staff=True))
    client.force_login(boss)
    assert client.get(SEARCH, {"q": f"+{NUMBER}"}).status_code == 200
    client.logout()
    dpo = support(django_user_model.objects.create_user("dpo", is_staff=True))
    dpo.user_permissions.add(Permission.objects.get(codename="view_auditentry"))
    client.force_login(dpo)
    page = client.get(reverse("conversations:audit"))
    assert page.status_code == 200 and "boss" in page.content.decode()
    assert "77009001" not in digits_of(body(page))
    exported = client.get(reverse("conversations:audit"), {"format": "csv"})
    assert "77009001" not in digits_of(body(exported))


# --- 1b. SUPPORT_MAX_AGE_DAYS


OLD = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


class OldConversationClient:
    """An API that knows an old conversation (created in 2000) and its member."""

    def __init__(self, *, conversation_fails: bool = False) -> None:
        self.conversation_fails = conversation_fails
        self.conversation = schema.Conversation(
            id=OLD_CON, name="ancient-call-name", state="ACTIVE", created=OLD
        )
        self.member = schema.Member(
            id=MEM,
            state="JOINED",
            conversation_id=OLD_CON,
            user=schema.UserRef(id=USR, name="ancient-member-name"),
            joined=OLD,
        )

    def get_conversation(self, conversation_id, **kwargs):
        if self.conversation_fails:
            error = StillLoading("The read did not finish within 3 s")
            error.stale = self.conversation  # the last good copy
            raise error
        return self.conversation

    def list_members(self, conversation_id, **kwargs):
        return schema.Page(items=[self.member])

    def get_member(self, conversation_id, member_id, **kwargs):
        return self.member

    def list_events(self, conversation_id, **kwargs):
        return schema.Page(items=[])

    def __getattr__(self, name):
        raise AssertionError(f"unexpected read: {name}")


def test_support_max_age_does_not_hide_an_old_conversations_stale_copy(
    support_client, use_client, settings
):
    """HIGH. conversations/privacy/sources.py:118-121: when a read fails, the door masks the
    error's last good copy (`exc.stale = present(...)`) but never asks whether it is too old, as
    it does for an answer (line 123, `_refuse`). While the API is slow or failing, a Support
    user limited by SUPPORT_MAX_AGE_DAYS opens a conversation of any age by its id and sees its
    header (name, times, state) from the stale copy.
    Fix: in through_policy's except branch, set `exc.stale = None` (or raise `self._single`'s
    NotFound) when `viewer.too_old(_age(exc.stale))`, and filter stale pages like answers."""
    settings.SUPPORT_MAX_AGE_DAYS = 7
    use_client(OldConversationClient(conversation_fails=True))
    # Within budget: the same conversation, read successfully, is refused (404).
    page = support_client.get(reverse("conversations:detail", args=[OLD_CON]))
    assert "ancient-call-name" not in body(page), page.status_code


def test_support_max_age_does_not_hide_an_old_conversations_members_panel(
    support_client, use_client, settings
):
    """MEDIUM. conversations/views/conversation.py:318-319 (members_panel) reads
    `client.list_members` without reading the conversation, and sources.py:37-43 `_age` has no
    age for a schema.Member, so the door lets every member through: the conversation's page is
    a 404 for Support (too old), but its members panel URL lists its members and their channels.
    Fix: have members_panel (and any list-only read) check the conversation through the door
    first (as member_detail does), or give `_age` the conversation's age for members."""
    settings.SUPPORT_MAX_AGE_DAYS = 7
    use_client(OldConversationClient())
    assert support_client.get(reverse("conversations:detail", args=[OLD_CON])).status_code == 404
    panel = support_client.get(
        reverse("conversations:members_panel", args=[OLD_CON]), HTTP_HX_REQUEST="true"
    )
    assert "ancient-member-name" not in body(panel), panel.status_code


# --- 3. search: the same answers on SQLite and PostgreSQL


@pytest.mark.parametrize(
    ("text", "query"),
    [
        ("please write to ada.lovelace@example.com today", "lovelace"),
        ("please write to ada.lovelace@example.com today", "example.com"),
        ("the order is on shop.example.com/orders now", "orders"),
    ],
)
def test_a_word_inside_an_email_or_url_is_found_on_both_databases(
    supervisor_client, monkeypatch, text, query
):
    """MEDIUM (PostgreSQL only). conversations/migrations/0004_search.py:11 indexes
    `to_tsvector('simple', text)`, whose parser keeps an email, a host or a URL as ONE token
    (`ada.lovelace@example.com`, `shop.example.com/orders`): on PostgreSQL the words inside them
    are not found, while SQLite's whole-word regular expression (search.py:211) finds them.
    Staff searching a customer's email domain or name part get nothing in production.
    Fix: build the tsvector from the text with `@ . /` replaced by spaces (or add the parts:
    `to_tsvector(...) || to_tsvector(regexp_replace(text, '[@./:]', ' ', 'g'))`), reindex."""
    forbid_upstream(monkeypatch)
    webhook(event(CON, 1, "message", MEM, {"message_type": "text", "text": text}))
    page = supervisor_client.get(SEARCH, {"q": query})
    assert page.status_code == 200
    assert CON in page.content.decode(), f"{query!r} is in {text!r}"


def test_nine_words_narrow_the_search_on_sqlite_as_on_postgresql(monkeypatch):
    """LOW (SQLite only). conversations/store/search.py:139 keeps MAX_WORDS = 8 words for SQLite
    (search.py:209) while PostgreSQL's websearch_to_tsquery gets the whole text (search.py:203):
    a ninth word that no text holds narrows the search to nothing on PostgreSQL, not on SQLite.
    Fix: refuse (400) or truncate the query text itself to MAX_WORDS words for both paths."""
    forbid_upstream(monkeypatch)
    words = "alpha bravo charlie delta echo foxtrot golf hotel"
    webhook(event(CON, 1, "message", MEM, {"message_type": "text", "text": words}))
    query = search.parse(words + " zzzznotthere")
    assert search.search(query, search.Filters(), page_size=10, cursor=None).hits == []


# --- 4. exports


def test_the_search_export_is_not_also_recorded_as_a_search(
    supervisor_client, monkeypatch, django_capture_on_commit_callbacks
):
    """LOW. conversations/audit/middleware.py:150 skips the SEARCH entry only for a streamed
    `format=csv`: a JSON export of a search records a SEARCH entry as well as its EXPORT entry
    (the same for events:json, recorded as a conversation view too, middleware.py:122).
    Fix: test `request.GET.get("format") in exports.FORMATS` in both places."""
    from conversations.audit.models import Action, AuditEntry

    forbid_upstream(monkeypatch)
    stored_call()
    for fmt in ("csv", "json"):
        response = supervisor_client.get(SEARCH, {"q": "caller", "format": fmt})
        b"".join(response.streaming_content)
        sent(response)  # as a server does after the last byte: the export records itself
    actions = list(AuditEntry.objects.order_by("id").values_list("action", flat=True))
    assert actions.count(Action.EXPORT) == 2
    assert Action.SEARCH not in actions, actions


def test_every_row_of_a_search_export_says_what_matched(supervisor_client, monkeypatch):
    """MEDIUM. conversations/store/search.py:273 `_explain` reads at most 200 matching keys for
    all the hits at once (`.order_by("pk")[:200]`); the export calls it for a whole chunk of
    CHUNK_SIZE (2000) conversations (search.matched, :290), so past the 200th key the `matched`
    column is empty: an export of 250 conversations named "zebra…" says what matched for 200.
    (On the page, one conversation with 200 matching members starves the page's other hits.)
    Fix: bound the keys per hit, not per call (a window function, or 3 keys per pk in a loop
    over the pks), or call _explain per page-sized slice of the chunk."""
    forbid_upstream(monkeypatch)
    for i in range(250):
        api_conversation(f"CON-{i:08x}-5555-4555-8555-555555555555", f"zebra crossing {i}")
    response = supervisor_client.get(SEARCH, {"q": "zebra", "format": "csv"})
    rows = list(csv.DictReader(io.StringIO(body(response))))
    assert len(rows) == 250
    unexplained = [row["id"] for row in rows if not row["matched"]]
    assert unexplained == [], f"{len(unexplained)} rows without what matched"


@pytest.mark.parametrize(
    ("text", "query"),
    [
        ("the order ref is snake_case here", "snake_case"),
        ("the order ref is snake_case here", "of_the"),
        ("wir treffen uns in der Straße", "Straße"),
        ("a flight to İstanbul tomorrow", "İstanbul"),
    ],
)
def test_a_word_typed_as_it_is_stored_is_found_on_sqlite_as_on_postgresql(
    supervisor_client, monkeypatch, text, query
):
    """MEDIUM (SQLite only). conversations/store/search.py:151 and :209-211: the query is
    casefolded (`Straße` -> `strasse`, `İstanbul` -> `i̇stanbul`) and split at `_`, then each
    piece must be a whole word of the stored text by a case-insensitive regular expression that
    does not casefold the text, with `\\w` boundaries (for which `_` is a letter). So on SQLite
    a word typed exactly as stored is not found (`snake_case`, `Straße`, `İstanbul`), while
    PostgreSQL finds all three: issue 11, "`_` ... find what they literally say".
    (The "of_the" case is the same split: no text holds it, but "snake_case" does.)
    Fix: lower() rather than casefold() for words, and on SQLite use `[^\\W_]` boundaries
    (`(?<![^\\W_])word(?![^\\W_])`), as the PostgreSQL parser splits at `_`."""
    forbid_upstream(monkeypatch)
    webhook(event(CON, 1, "message", MEM, {"message_type": "text", "text": text}))
    found = CON in supervisor_client.get(SEARCH, {"q": query}).content.decode()
    assert found == (query != "of_the"), f"{query!r} in {text!r}"


def test_a_number_stored_as_a_json_integer_is_masked_for_support(support_client, monkeypatch):
    """LOW. conversations/privacy/masking.py:117-118: in raw JSON an integer is masked only under
    a NUMBER_KEYS key; a phone number sent as a JSON integer anywhere else (a SIP header
    `X-Caller-Id`, a `cli`, a `caller` field) is shown whole, on the raw JSON view and in
    exports, while the same number as a string is scrubbed.
    Fix: in masking.json, treat an int with 7+ digits like a string (`scrub(str(value))`)."""
    forbid_upstream(monkeypatch)
    stored_call()
    webhook(
        event(
            CON,
            3,
            "sip:ringing",
            MEM,
            {"channel": {"type": "sip", "headers": {"X-Caller-Id": int(NUMBER)}}},
        )
    )
    exported = body(
        support_client.get(reverse("conversations:events", args=[CON]), {"format": "json"})
    )
    tab = body(support_client.get(reverse("conversations:events", args=[CON])))
    assert "77009001" not in digits_of(exported)
    assert "77009001" not in digits_of(tab)
