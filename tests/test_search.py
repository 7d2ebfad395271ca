"""Search over the stored history (conversations/store/search.py, search_index.py): every form of a
number, SIP addresses and their user part, names, ids and their prefixes, message and custom words,
symbols looked for literally, filters, and the time limit. Runs on SQLite in `make test` and on
PostgreSQL (full-text, generated tsvector) in `make test-production`: the same answers on both."""

from __future__ import annotations

import pytest
from django.db import connection

from conversations.store import search, search_index
from conversations.store.models import SearchKey, StoredEvent

from .store_helpers import api_conversation, event, webhook

pytestmark = pytest.mark.django_db

# Five callers, each with a PSTN number, a SIP address and a message word of their own.
CALLERS = [
    ("Ada Lovelace", "447700900100", "ada", "pineapple"),
    ("Grace Hopper", "447700900211", "grace", "compiler"),
    ("Émile Zola", "33612345678", "emile", "germinal"),
    ("نور الهدى", "12025550143", "noor", "mango"),
    ("Kwame Mensah", "233241234567", "kwame", "cocoa"),
]


def conversation_id(i: int) -> str:
    return f"CON-{i:08x}-1111-4111-8111-111111111111"


def member_id(i: int) -> str:
    return f"MEM-{i:08x}-2222-4222-8222-222222222222"


def user_id(i: int) -> str:
    return f"USR-{i:08x}-3333-4333-8333-333333333333"


def store_call(i: int, name: str, number: str, sip_user: str, word: str) -> None:
    con, mem = conversation_id(i), member_id(i)
    stamp = {"joined": f"2026-11-2{i}T09:00:00.000Z"}
    webhook(
        event(
            con,
            1,
            "member:joined",
            mem,
            {
                "member_id": mem,
                "user": {"id": user_id(i), "name": sip_user, "display_name": name},
                "channel": {
                    "type": "phone",
                    "from": {"type": "phone", "number": number},
                    "to": {"type": "phone", "number": "447700900000"},
                },
                "timestamp": stamp,
            },
        )
    )
    webhook(
        event(
            con,
            2,
            "member:joined",
            f"MEM-{i:08x}-4444-4444-8444-444444444444",
            {
                "member_id": f"MEM-{i:08x}-4444-4444-8444-444444444444",
                "channel": {
                    "type": "sip",
                    "to": {"type": "sip", "uri": f"sip:{sip_user}@pbx.example.com;transport=tls"},
                },
            },
        )
    )
    webhook(
        event(
            con, 3, "message", mem, {"message_type": "text", "text": f"I'd like a {word}, please."}
        )
    )
    webhook(
        event(con, 4, "custom:order-update", mem, {"order_id": f"ORD-{i}", "note": f"ship {word}s"})
    )


@pytest.fixture
def callers():
    for i, caller in enumerate(CALLERS, start=1):
        store_call(i, *caller)
    api_conversation(conversation_id(9), '=HYPERLINK("http://x")', "Quarterly review")


def found(text: str, **filters) -> list[str]:
    results = search.search(
        search.parse(text), search.Filters(**filters), page_size=100, cursor=None
    )
    return [hit.conversation.vonage_id for hit in results.hits]


@pytest.mark.parametrize("i", range(1, 6))
def test_each_callers_number_in_three_forms_finds_their_call_only(callers, i):
    number = CALLERS[i - 1][1]
    forms = [number, f"+{number}", f"+{number[:2]} {number[2:6]} {number[6:]}"]
    for form in forms:
        assert found(form) == [conversation_id(i)], form


def test_a_national_number_with_its_trunk_zero_finds_the_call(callers):
    assert found("(0)7700 900100") == [conversation_id(1)]
    assert found("07700 900100") == [conversation_id(1)]
    assert found("+44 (0)7700 900100") == [conversation_id(1)]
    assert found("0044 7700 900100") == [conversation_id(1)]


def test_the_applications_own_number_finds_every_call(callers):
    assert set(found("+44 7700 900000")) == {conversation_id(i) for i in range(1, 6)}


@pytest.mark.parametrize("i", range(1, 6))
def test_name_sip_and_word_find_the_right_call(callers, i):
    name, _, sip_user, word = CALLERS[i - 1]
    assert found(name) == [conversation_id(i)]
    assert found(name.split()[0].lower()) == [conversation_id(i)]
    assert found(f"sip:{sip_user}@pbx.example.com") == [conversation_id(i)]
    assert found(f"{sip_user}@PBX.example.com") == [conversation_id(i)]
    assert found(sip_user) == [conversation_id(i)]
    assert found(word) == [conversation_id(i)]
    assert found(word.upper()) == [conversation_id(i)]


def test_words_are_whole_words_and_all_of_them(callers):
    assert found("pine") == []  # not a word of "pineapple", nor a name
    assert found("pineapple please") == [conversation_id(1)]
    assert found("pineapple compiler") == []
    assert found("pineapples") == [conversation_id(1)]  # the custom event's body says "pineapples"


def test_custom_event_bodies_are_searchable(callers):
    assert found("ORD-3") == [conversation_id(3)]


def test_ids_and_prefixes(callers):
    assert found(conversation_id(2)) == [conversation_id(2)]
    assert found(conversation_id(2)[:12].lower()) == [conversation_id(2)]
    assert found(member_id(4)) == [conversation_id(4)]
    assert found(user_id(5)[:12]) == [conversation_id(5)]
    assert found(f"{3:08x}") == [conversation_id(3)]  # a bare uuid start: any kind of id
    assert found("CON-0") == []  # shorter than 8 characters: not an id prefix


def test_conversation_names_from_the_api(callers):
    assert found("quarterly review") == [conversation_id(9)]
    assert found('=HYPERLINK("http://x")') == [conversation_id(9)]


@pytest.mark.parametrize(
    "text",
    ["%", "_", "%%", "' OR 1=1 --", "'; DROP TABLE conversations_storedevent; --", '"', "\\", "*"],
)
def test_wildcards_quotes_and_sql_find_only_what_they_say(callers, text):
    assert found(text) == []
    assert StoredEvent.objects.count() == 20


def test_symbols_emoji_and_rtl_are_found_literally():
    con = conversation_id(7)
    webhook(event(con, 1, "message", "", {"text": "discount 100% 🎉 for שלום"}))
    webhook(event(conversation_id(8), 1, "message", "", {"text": "nothing special"}))
    assert found("%") == [con]
    assert found("🎉") == [con]
    assert found("שלום") == [con]
    assert found("100%") == [con]
    assert found("_") == []


def test_filters_narrow_the_answer(callers):
    everyone = {conversation_id(i) for i in range(1, 6)}
    number = "+44 7700 900000"
    assert set(found(number, event_type="message")) == everyone
    assert found(number, event_type="audio:dtmf") == []
    assert found(number, live_only=True) == found(number)  # every call is joined, none left
    assert found("pineapples", event_type="custom:order-update") == [conversation_id(1)]
    assert found("please", event_type="custom:order-update") == []


def test_newest_first_and_paged(callers):
    query, filters = search.parse("+44 7700 900000"), search.Filters()
    first = search.search(query, filters, page_size=2, cursor=None)
    second = search.search(query, filters, page_size=2, cursor=first.next_cursor)
    ids_ = [h.conversation.vonage_id for h in first.hits + second.hits]
    assert ids_ == [conversation_id(i) for i in (5, 4, 3, 2)]
    assert second.prev_cursor == "o0"
    with pytest.raises(search.BadCursor):
        search.search(query, filters, page_size=2, cursor="nonsense")


def test_hits_say_what_matched(callers):
    [hit] = search.search(
        search.parse("07700 900100"), search.Filters(), page_size=5, cursor=None
    ).hits
    assert [(m.kind, m.text) for m in hit.matches] == [("Number", "447700900100")]
    [hit] = search.search(
        search.parse("pineapple"), search.Filters(), page_size=5, cursor=None
    ).hits
    assert [m.kind for m in hit.matches] == ["Text"]
    assert "pineapple" in hit.matches[0].text


def test_hostile_bodies_give_bounded_keys():
    deep: dict = {}
    node = deep
    for _ in range(200):
        node["user"] = {"name": "x"}
        node = node["user"]
    many = {"numbers": [{"number": f"4477009{n:05d}"} for n in range(5000)]}
    assert len(search_index.keys_of(many)) == search_index.MAX_KEYS
    assert search_index.keys_of(deep)  # walked, to a depth
    assert search_index.keys_of({"number": True}) == set()
    assert search_index.keys_of({"number": "call me"}) == set()
    assert search_index.phone_digits("1" * 16) is None


def test_parse_decides_what_a_query_can_be():
    assert search.parse("+44 7700 900100").number == "001009007744"
    assert search.parse("+44 7700 900100").words == ()
    assert search.parse("hello world").words == ("hello", "world")
    assert search.parse("sip:Alice@Example.com;transport=tls").address == "alice@example.com"
    assert search.parse("CON-abcd1234").id_prefixes == ("con-abcd1234",)
    assert search.parse("🎉").literal == "🎉"
    assert search.parse("x" * 500).text == "x" * search.MAX_QUERY_LENGTH
    assert search.is_whole_id(conversation_id(1).lower())  # a uuid body
    assert not search.is_whole_id("CON-49376e2f")  # the start of one, not stored


def test_a_search_that_runs_out_of_time_is_too_broad(settings):
    settings.DASHBOARD_SEARCH_TIMEOUT_MS = 50
    slow = (
        "SELECT pg_sleep(1)"
        if connection.vendor == "postgresql"
        else "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
        "SELECT count(*) FROM n"
    )
    with pytest.raises(search.TooBroad), search.time_limit(), connection.cursor() as cursor:
        cursor.execute(slow)
    # The connection is usable afterwards, without the limit.
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


def test_keys_are_written_once_per_conversation(callers):
    assert SearchKey.objects.filter(value="000009007744").count() == 5
    before = SearchKey.objects.count()
    store_call(1, *CALLERS[0])  # the same deliveries again: duplicates
    assert SearchKey.objects.count() == before


def test_reindex_gives_the_same_keys_and_text(callers):
    keys = set(SearchKey.objects.values_list("conversation_id", "kind", "value"))
    texts = dict(StoredEvent.objects.values_list("pk", "text"))
    SearchKey.objects.all().delete()
    StoredEvent.objects.update(text="")
    from conversations.store.models import StoredConversation

    for conversation in StoredConversation.objects.all():
        search_index.reindex(conversation)
    assert set(SearchKey.objects.values_list("conversation_id", "kind", "value")) == keys
    assert dict(StoredEvent.objects.values_list("pk", "text")) == texts
