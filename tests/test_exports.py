"""Exports (conversations/exports.py): the conversation list and a conversation's events as CSV and
JSON files, streamed from the event store.

The store is filled through real ingestion (tests/store_helpers.py); files are read back with
Python's csv and json modules and compared with what the store holds.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import html
import io
import json
import re

import pytest
from django.db import connection
from django.urls import reverse
from huey.contrib.djhuey import HUEY

from conversations import exports
from conversations.store import ingest, queries
from conversations.store.models import StoredConversation, StoredEvent
from tests.conftest import free_port, sandbox_client
from tests.store_helpers import (
    api_conversation,
    app,
    event,
    forbid_upstream,
    membership,
    stamp,
    webhook,
)

CON = "CON-5a0c1e2d-3b4f-4a6b-8c7d-9e0f1a2b3c4d"
ALICE = "MEM-11111111-1111-4111-8111-111111111111"
BOB = "MEM-22222222-2222-4222-8222-222222222222"
USR_A = "USR-aaaaaaaa-1111-4111-8111-111111111111"
USR_B = "USR-bbbbbbbb-2222-4222-8222-222222222222"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
E164 = re.compile(r"\+[0-9]{6,15}")

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_upstream(monkeypatch):
    forbid_upstream(monkeypatch)


def conversation_id(n: int) -> str:
    return f"CON-{n:08d}-1111-4111-8111-111111111111"


def events_url(cid: str = CON, **query: str) -> str:
    url = reverse("conversations:events", args=[cid])
    return f"{url}?{'&'.join(f'{k}={v}' for k, v in query.items())}" if query else url


def fill(cid: str = CON, messages: int = 10) -> None:
    """A call: Alice and Bob join, then text messages, ids 1 to messages + 2."""
    api_conversation(cid, "support_call_7", "Support call")
    webhook(membership(cid, 1, "joined", ALICE, USR_A, "alice", "phone"))
    webhook(membership(cid, 2, "joined", BOB, USR_B, "bob", "app"))
    bodies = [
        event(cid, i, "message", ALICE, {"message_type": "text", "text": f"hello {i}"})
        for i in range(3, messages + 3)
    ]
    ingest.store_events(app(), cid, bodies, StoredEvent.API)


def content(response) -> str:
    assert response.streaming, "an export streams"
    return b"".join(response.streaming_content).decode("utf-8")


def csv_rows(response) -> list[dict[str, str]]:
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    reader = csv.reader(io.StringIO(content(response), newline=""))
    header, *rows = list(reader)
    assert all(len(row) == len(header) for row in rows)
    return [dict(zip(header, row, strict=True)) for row in rows]


def json_rows(response) -> list[dict]:
    assert response["Content-Type"] == "application/json"
    rows = json.loads(content(response))
    assert isinstance(rows, list)
    return rows


def stored_history(cid: str = CON, event_type: str | None = None) -> list[StoredEvent]:
    events = StoredEvent.objects.filter(conversation=queries.find(cid))
    if event_type:
        events = events.filter(type=event_type)
    return list(events.order_by("event_id"))


def parse_time(text: str) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


def spreadsheet_safe(cell: str) -> bool:
    """What the CSV must hold in every cell: nothing a spreadsheet would run as a formula."""
    return not cell.startswith(FORMULA_STARTS) or bool(E164.fullmatch(cell))


def export_links(page_html: str) -> dict[str, str]:
    """The page's export links ({"csv": url, "json": url}), unescaped as a browser reads them."""
    found = re.findall(
        r'<a href="([^"]*format=(csv|json)[^"]*)">Export (?:CSV|JSON)</a>', page_html
    )
    return {fmt: html.unescape(href) for href, fmt in found}


def disposition(fmt: str, *parts: str) -> str:
    today = dt.datetime.now(dt.UTC).date().isoformat()
    return f'attachment; filename="{"-".join([*parts, today])}.{fmt}"'


# --- a conversation's events equal its stored history


def test_the_csv_export_of_a_conversation_equals_its_stored_history(staff_client, no_upstream):
    fill()
    rows = csv_rows(staff_client.get(events_url(format="csv")))
    history = stored_history()
    assert len(rows) == len(history) == 12
    for row, stored in zip(rows, history, strict=True):
        assert row["conversation_id"] == CON
        assert int(row["id"]) == stored.event_id
        assert row["type"] == stored.type
        assert row["from"] == stored.from_member
        assert parse_time(row["timestamp"]) == stored.timestamp
        assert row["source"] == stored.source
        assert json.loads(row["body"]) == stored.body


def test_the_json_export_of_a_conversation_equals_its_stored_history(staff_client, no_upstream):
    fill()
    rows = json_rows(staff_client.get(events_url(format="json")))
    history = stored_history()
    assert len(rows) == len(history) == 12
    for row, stored in zip(rows, history, strict=True):
        assert row == {
            "conversation_id": CON,
            "id": stored.event_id,
            "type": stored.type,
            "from": stored.from_member,
            "timestamp": row["timestamp"],
            "source": stored.source,
            "body": stored.body,
        }
        assert parse_time(row["timestamp"]) == stored.timestamp


@pytest.mark.parametrize("fmt", ["csv", "json"])
@pytest.mark.parametrize(
    "page", ["", "order=desc", "order=asc", "cursor=b9&page_size=10", "order=asc&cursor=a4"]
)
def test_every_event_once_oldest_first_whatever_the_page_order_or_cursor(
    staff_client, no_upstream, monkeypatch, fmt, page
):
    """More events than one chunk (the chunk made small), with holes in the ids: each comes out
    exactly once, oldest first, whatever page of the tab the URL was on."""
    monkeypatch.setattr(exports, "CHUNK_SIZE", 3)
    fill(messages=10)
    later = [event(CON, i, "message", BOB, {"text": f"late {i}"}) for i in (15, 16, 17, 20, 30)]
    ingest.store_events(app(), CON, later, StoredEvent.API)
    url = events_url(format=fmt) + (f"&{page}" if page else "")
    response = staff_client.get(url)
    assert response.status_code == 200
    rows = csv_rows(response) if fmt == "csv" else json_rows(response)
    ids = [int(row["id"]) for row in rows]
    assert ids == [e.event_id for e in stored_history()]
    assert ids == [*range(1, 13), 15, 16, 17, 20, 30]


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_the_type_filter_is_carried_by_the_tab_links_and_applied(staff_client, no_upstream, fmt):
    fill()
    webhook(membership(CON, 13, "left", ALICE, USR_A, "alice", "phone"))
    page = staff_client.get(events_url(event_type="member:joined", order="asc", cursor="a1"))
    assert page.status_code == 200
    link = export_links(page.content.decode())[fmt]
    path, _, query = link.partition("?")
    assert path == reverse("conversations:events", args=[CON])
    # The tab's filters exactly (in the page's order), no cursor, and the format.
    assert query == f"event_type=member%3Ajoined&order=asc&format={fmt}"
    response = staff_client.get(link)
    rows = csv_rows(response) if fmt == "csv" else json_rows(response)
    assert [(int(r["id"]), r["type"]) for r in rows] == [(1, "member:joined"), (2, "member:joined")]
    assert [int(r["id"]) for r in rows] == [
        e.event_id for e in stored_history(event_type="member:joined")
    ]
    assert response["Content-Disposition"] == disposition(fmt, CON, "events", "member-joined")


def test_the_tab_fragment_carries_the_links_too(staff_client, no_upstream):
    """A filter applied through htmx redraws the tab: its links follow the new filter."""
    fill()
    fragment = staff_client.get(events_url(event_type="message"), headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    links = export_links(fragment.content.decode())
    assert set(links) == {"csv", "json"}
    assert "event_type=message" in links["csv"]


def test_links_are_escaped_in_the_page(staff_client, no_upstream):
    fill()
    page = staff_client.get(events_url(event_type="custom:a.b", order="asc")).content.decode()
    assert "?event_type=custom%3Aa.b&amp;order=asc&amp;format=csv" in page


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_an_export_names_its_file_after_what_it_holds_and_the_day(staff_client, no_upstream, fmt):
    fill()
    response = staff_client.get(events_url(format=fmt))
    assert response["Content-Disposition"] == disposition(fmt, CON, "events")
    assert response["Cache-Control"].startswith("max-age=0"), "never cached, like pages"


# --- formula injection


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("+1+1", "'+1+1"),
        ("+447700900100", "+447700900100"),  # one number in E.164: intact
        ("+44 7700 900100", "'+44 7700 900100"),  # not exactly E.164: a formula could start
        ("+12345", "'+12345"),  # too short for E.164
        ("+1234567890123456", "'+1234567890123456"),  # too long
        ("447700900100", "447700900100"),
        ("a=1", "a=1"),
        ("", ""),
    ],
)
def test_cells_that_could_start_a_formula_are_neutralised(value, cell):
    assert exports.neutralise(value) == cell


def test_a_hostile_conversation_is_harmless_in_the_csv_and_intact_in_json(
    staff_client, no_upstream
):
    api_conversation(CON, '=HYPERLINK("http://x")', "-2+3")
    webhook(membership(CON, 1, "joined", ALICE, USR_A, "@SUM(A1)", "phone"))
    webhook(membership(CON, 2, "joined", BOB, USR_B, "\t=1", "app"))
    webhook(event(CON, 3, "message", "=1+2", {"text": "=cmd|' /C calc'!A0"}))
    listing = csv_rows(staff_client.get("/conversations/?format=csv"))
    assert len(listing) == 1
    row = listing[0]
    assert row["name"] == '\'=HYPERLINK("http://x")'
    assert row["display_name"] == "'-2+3"
    assert row["members"] == "'@SUM(A1) (phone); \t=1 (app)"
    assert row["numbers"] == "+447700900100", "one number in E.164, intact"
    events = csv_rows(staff_client.get(events_url(format="csv")))
    assert events[2]["from"] == "'=1+2"
    assert json.loads(events[2]["body"])["body"]["text"] == "=cmd|' /C calc'!A0"
    for cells in [*listing, *events]:
        assert all(spreadsheet_safe(cell) for cell in cells.values()), cells

    as_json = json_rows(staff_client.get("/conversations/?format=json"))
    assert as_json[0]["name"] == '=HYPERLINK("http://x")'
    assert as_json[0]["display_name"] == "-2+3"
    assert as_json[0]["members"] == ["@SUM(A1) (phone)", "\t=1 (app)"]
    assert json_rows(staff_client.get(events_url(format="json")))[2]["from"] == "=1+2"


def test_the_numbers_column_holds_the_members_numbers_in_e164(staff_client, no_upstream):
    api_conversation(CON, "numbers", "")
    channels = {
        1: {"type": "phone", "from": {"number": "447700900100"}, "to": {"number": "14155550100"}},
        2: {"type": "phone", "from": {"number": "Unknown"}, "to": {"number": "447700900100"}},
        3: {"type": "phone", "number": "07700 900200"},  # national: the country is unknown
        4: {"type": "sip", "uri": "sip:alice@example.com"},
        5: {"type": "phone", "number": "+33 1 23 45 67 89"},
    }
    for n, channel in channels.items():
        member = f"MEM-{n:08d}-1111-4111-8111-111111111111"
        body = {"member_id": member, "user": {"id": USR_A, "name": f"m{n}"}, "channel": channel}
        webhook(event(CON, n, "member:joined", member, body))
    row = csv_rows(staff_client.get("/conversations/?format=csv"))[0]
    expected = ["+447700900100", "+14155550100", "+33123456789"]
    assert row["numbers"] == "'" + "; ".join(expected), "several numbers: not one E.164 cell"
    assert json_rows(staff_client.get("/conversations/?format=json"))[0]["numbers"] == expected


# --- hostile bodies survive the round trip


def deep(levels: int) -> dict:
    value: dict = {"leaf": "bottom"}
    for n in range(levels):
        value = {"level": n, "inner": [value]}
    return value


HOSTILE_BODIES = {
    "deep": deep(150),
    "nul": {"text": "a\x00b", "\x00key": "nul in a key"},
    "rtl": {"text": "\u202eevil.exe\u202c \u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627"},
    "emoji": {"text": "\U0001f600 \U0001f468\u200d\U0001f469\u200d\U0001f467 \u2028\u2029"},
    "script": {"text": "</script><script>alert(1)</script>", "html": "<b>&amp;</b>"},
    "quotes": {"text": 'a "quoted", comma\r\nnew line\\', "n": [1.5, -0.0, 10**20, None]},
}


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_hostile_bodies_survive_the_round_trip(staff_client, no_upstream, fmt):
    for n, payload in enumerate(HOSTILE_BODIES.values(), start=1):
        assert webhook(event(CON, n, f"custom:{n}", ALICE, payload))
    history = stored_history()
    assert "\x00" not in json.dumps(history[1].body), "ingestion replaced the NUL already"
    assert history[1].body["body"]["text"] == "a\ufffdb"
    response = staff_client.get(events_url(format=fmt))
    rows = csv_rows(response) if fmt == "csv" else json_rows(response)
    assert len(rows) == len(HOSTILE_BODIES)
    for row, stored in zip(rows, history, strict=True):
        body = json.loads(row["body"]) if fmt == "csv" else row["body"]
        assert body == stored.body


# --- the conversation list


def fill_list() -> list[str]:
    """Conversations started one minute apart: 1-3 ended, 4-5 live, 6 deleted upstream."""
    ids = []
    for n in range(1, 7):
        cid = conversation_id(n)
        ids.append(cid)
        api_conversation(cid, f"call {n}", "", timestamp={"created": stamp(60 * n)})
        joined = membership(cid, 1, "joined", ALICE, USR_A, "alice", "phone")
        webhook(joined | {"timestamp": stamp(60 * n + 1)})
        if n <= 3:
            left = membership(cid, 2, "left", ALICE, USR_A, "alice", "phone")
            webhook(left | {"timestamp": stamp(60 * n + 2)})
    ingest.mark_deleted_upstream(app(), ids[5])
    return ids


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_the_list_links_carry_the_page_filters_and_export_the_whole_list(
    staff_client, no_upstream, fmt
):
    ids = fill_list()
    page = staff_client.get(
        "/conversations/?state=ended&order=asc&date_start=2026-11-27T09:00"
        "&page_size=10&cursor=o10&backoff=2"
    )
    assert page.status_code == 200
    link = export_links(page.content.decode())[fmt]
    path, _, query = link.partition("?")
    assert path == reverse("conversations:list")
    # The page's filters exactly, in its order, without its cursor and backoff.
    assert query == (
        f"state=ended&order=asc&date_start=2026-11-27T09%3A00&page_size=10&format={fmt}"
    )
    response = staff_client.get(link)
    rows = csv_rows(response) if fmt == "csv" else json_rows(response)
    assert [row["id"] for row in rows] == ids[:3], "every ended one, oldest first, not a page"
    assert {row["state"] for row in rows} == {"ended"}
    assert response["Content-Disposition"] == disposition(fmt, "conversations", "ended")


def test_the_list_export_reads_the_store_even_where_the_page_reads_the_api(
    staff_client, no_upstream
):
    ids = fill_list()
    rows = json_rows(staff_client.get("/conversations/?format=json"))
    assert [row["id"] for row in rows] == ids[::-1], "newest first, as the page"
    by_id = {row["id"]: row for row in rows}
    assert [by_id[cid]["state"] for cid in ids] == ["ended"] * 3 + ["live"] * 2 + ["deleted"]
    stored = StoredConversation.objects.get(vonage_id=ids[0])
    assert by_id[ids[0]] | {"started_at": None, "ended_at": None, "last_event_at": None} == {
        "id": ids[0],
        "name": "call 1",
        "display_name": "",
        "state": "ended",
        "started_at": None,
        "ended_at": None,
        "last_event_at": None,
        "members": ["alice (phone)"],
        "numbers": ["+447700900100"],
    }
    for column in ("started_at", "ended_at", "last_event_at"):
        assert parse_time(by_id[ids[0]][column]) == getattr(stored, column)
    live = csv_rows(staff_client.get("/conversations/?format=csv&state=live&date_end=2026-11-27"))
    assert live == [], "a date range that excludes them all: the header alone"


def test_the_list_export_dates_filter_the_start(staff_client, no_upstream):
    ids = fill_list()
    rows = json_rows(
        staff_client.get(
            "/conversations/?format=json&order=asc"
            "&date_start=2026-11-27T09:02&date_end=2026-11-27T09:04"
        )
    )
    assert [row["id"] for row in rows] == ids[1:4]


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_conversations_come_out_once_each_across_chunks(staff_client, monkeypatch, order):
    """Chunks of 2 over conversations that share start times, and some with none (they come
    last, by row): the keyset neither skips nor repeats a row."""
    monkeypatch.setattr(exports, "CHUNK_SIZE", 2)
    for n in range(1, 12):
        created = {"created": stamp(60 * (n % 3))} if n % 4 else {}
        api_conversation(conversation_id(n), f"call {n}", "", timestamp=created)
    rows = json_rows(staff_client.get(f"/conversations/?format=json&order={order}"))
    stored = StoredConversation.objects.all()
    assert stored.filter(started_at=None).count() == 2
    keyed = stored.exclude(started_at=None).order_by(
        *(("-started_at", "-pk") if order == "desc" else ("started_at", "pk"))
    )
    unkeyed = stored.filter(started_at=None).order_by("-pk" if order == "desc" else "pk")
    expected = [c.vonage_id for c in [*keyed, *unkeyed]]
    assert [row["id"] for row in rows] == expected
    assert len(set(expected)) == 11


def test_an_empty_export_is_still_a_valid_file(staff_client, no_upstream):
    assert content(staff_client.get("/conversations/?format=json")) == "[]\n"
    assert content(staff_client.get("/conversations/?format=csv")).splitlines() == [
        ",".join(exports.CONVERSATION_COLUMNS)
    ]


# --- the function the search calls


def test_stream_conversations_streams_a_queryset_in_its_order_with_an_extra_column(monkeypatch):
    monkeypatch.setattr(exports, "CHUNK_SIZE", 2)
    for n in range(1, 6):
        api_conversation(conversation_id(n), f"=call {n}", "", timestamp={"created": stamp(n)})
    asked: list[list[int]] = []

    def matched(pks: list[int]) -> dict[int, object]:
        asked.append(pks)
        return {pk: ["Name", f"=found {pk}"] for pk in pks}

    rows = StoredConversation.objects.exclude(vonage_id=conversation_id(3))
    response = exports.stream_conversations(
        rows.order_by("-started_at", "-pk"),
        "csv",
        filename="search-x-2026-11-28.csv",
        extra=exports.ExtraColumn("matched", matched),
    )
    assert response["Content-Disposition"] == 'attachment; filename="search-x-2026-11-28.csv"'
    found = csv_rows(response)
    assert [r["id"] for r in found] == [conversation_id(n) for n in (5, 4, 2, 1)]
    assert all(len(pks) <= 2 for pks in asked), "the hook gets one chunk at a time"
    pks = {c.vonage_id: c.pk for c in StoredConversation.objects.all()}
    assert found[0]["matched"] == f"Name; =found {pks[conversation_id(5)]}"
    assert found[0]["name"] == "'=call 5"


def test_every_query_of_a_chunk_runs_inside_around_chunk(monkeypatch):
    """The search passes its time limit as `around_chunk`: no query may escape it, and what it
    raises on the first chunk reaches the caller before any response exists."""
    monkeypatch.setattr(exports, "CHUNK_SIZE", 2)
    for n in range(1, 6):
        api_conversation(conversation_id(n), f"call {n}", "", timestamp={"created": stamp(n)})
        webhook(membership(conversation_id(n), 1, "joined", ALICE, USR_A, "alice", "phone"))
    inside = []
    escaped: list[str] = []

    @contextlib.contextmanager
    def time_limit():
        inside.append(True)
        try:
            yield
        finally:
            inside.pop()

    def watch(execute, sql, params, many, context):
        if not inside:
            escaped.append(sql)
        return execute(sql, params, many, context)

    def matched(pks: list[int]) -> dict[int, str]:
        return dict(StoredConversation.objects.filter(pk__in=pks).values_list("pk", "name"))

    rows = StoredConversation.objects.order_by("-started_at", "-pk")
    with connection.execute_wrapper(watch):
        response = exports.stream_conversations(
            rows,
            "json",
            filename="x.json",
            extra=exports.ExtraColumn("matched", matched),
            around_chunk=time_limit,
        )
        found = json_rows(response)
    assert [r["matched"] for r in found] == [f"call {n}" for n in (5, 4, 3, 2, 1)]
    assert escaped == []

    class TooBroad(Exception):
        pass

    @contextlib.contextmanager
    def refuse():
        raise TooBroad
        yield

    with pytest.raises(TooBroad):
        exports.stream_conversations(rows, "csv", filename="x.csv", around_chunk=refuse)


def test_stream_conversations_refuses_an_order_it_cannot_page_by_keyset():
    with pytest.raises(ValueError, match="keyset"):
        exports.stream_conversations(
            StoredConversation.objects.order_by("name", "-pk"), "csv", filename="x.csv"
        )


@pytest.mark.parametrize(
    ("parts", "name"),
    [
        (("search", '=HYPERLINK("http://x")'), "search-HYPERLINK-http-x-2026-11-28.csv"),
        (("search", "\u202eexe.csv \U0001f600"), "search-exe-csv-2026-11-28.csv"),
        (("search", "../../etc/passwd"), "search-etc-passwd-2026-11-28.csv"),
        (("search", "日本"), "search-2026-11-28.csv"),
        ((CON, "events", "member:joined"), f"{CON}-events-member-joined-2026-11-28.csv"),
    ],
)
def test_file_names_are_safe(parts, name):
    assert exports.export_filename(*parts, fmt="csv", day=dt.date(2026, 11, 28)) == name


# --- refusals


@pytest.mark.parametrize("url", ["/conversations/", events_url()])
@pytest.mark.parametrize("fmt", ["xml", "CSV", "<script>alert(1)</script>"])
def test_a_format_other_than_csv_or_json_is_a_clear_400(staff_client, no_upstream, url, fmt):
    fill()
    response = staff_client.get(url, {"format": fmt})
    assert response.status_code == 400
    page = response.content.decode()
    assert "Format: an export is csv or json." in page
    assert "<script>alert(1)" not in page


def test_invalid_filters_refuse_the_export_too(staff_client, no_upstream):
    fill()
    assert staff_client.get(events_url(format="csv", event_type="member:*")).status_code == 400
    assert staff_client.get("/conversations/?format=csv&state=nope").status_code == 400


@pytest.mark.parametrize("url", ["/conversations/?format=csv", events_url(format="json")])
def test_anonymous_users_get_no_export(client, no_upstream, url):
    fill()
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert not response.streaming and b"support_call_7" not in response.content


@pytest.mark.parametrize("url", ["/conversations/?format=csv", events_url(format="json")])
def test_non_staff_users_get_no_export(client, django_user_model, no_upstream, url):
    fill()
    client.force_login(django_user_model.objects.create_user("nobody", password="x-pass-123"))
    response = client.get(url)
    assert response.status_code == 403
    assert not response.streaming and b"support_call_7" not in response.content


# --- a conversation the store has no history of


@pytest.fixture
def _empty_queue():
    HUEY.flush()
    yield
    HUEY.flush()


@pytest.mark.usefixtures("_empty_queue")
def test_a_conversation_not_stored_yet_is_read_into_the_store_then_exported(
    staff_client, sandbox, use_client
):
    use_client(sandbox_client(sandbox))
    model = sandbox.world.conversations()[1]
    assert queries.find(model.id) is None
    rows = json_rows(staff_client.get(events_url(model.id, format="json")))
    assert [row["id"] for row in rows] == [e.id for e in model.events]
    assert [row["body"] for row in rows] == [e.body for e in stored_history(model.id)]
    assert queries.has_history(queries.find(model.id))


@pytest.mark.usefixtures("_empty_queue")
def test_a_conversation_the_api_does_not_know_is_not_found(staff_client, sandbox, use_client):
    use_client(sandbox_client(sandbox))
    response = staff_client.get(events_url(format="csv"))
    assert response.status_code == 404
    assert not response.streaming and CON in response.content.decode()


@pytest.mark.usefixtures("_empty_queue")
def test_an_unreachable_api_says_to_try_again_and_asks_the_worker(
    staff_client, sandbox, use_client
):
    use_client(sandbox_client(sandbox, base_url=f"http://127.0.0.1:{free_port()}"))
    response = staff_client.get(events_url(format="csv"))
    assert response.status_code == 503
    assert response["Retry-After"].isdigit()
    assert "could not be read from the API" in response.content.decode()
    queued = [task.args for task in HUEY.pending() if task.name.endswith("store_conversation")]
    assert queued == [(CON,)]
