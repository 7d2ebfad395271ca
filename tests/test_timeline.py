"""The timeline of a conversation (conversations/timeline.py, its panel and page) and the live
board's chart of conversations started per hour.

The store is filled through real ingestion (signed-webhook storage), with bodies shaped like the
sandbox's calls and Vonage's example payloads; the conversation in CALL below lasts 100 seconds,
so on its axis a second is one percent.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from conversations import dom, timeline
from conversations.store import queries
from conversations.store.models import StoredConversation
from conversations.views.live import CHART_PLOT
from tests.conftest import supervisor, support
from tests.store_helpers import app, event, forbid_upstream, stamp, webhook

CON = "CON-7a0c1e2d-3b4f-4a6b-8c7d-9e0f1a2b3c4d"
ALICE = "MEM-11111111-1111-4111-8111-111111111111"
BOB = "MEM-22222222-2222-4222-8222-222222222222"
CAROL = "MEM-33333333-3333-4333-8333-333333333333"
USR = "USR-aaaaaaaa-1111-4111-8111-111111111111"
T0 = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC)  # stamp(0)
HTMX = {"HTTP_HX_REQUEST": "true"}

pytestmark = pytest.mark.django_db


def at(second: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=second)


class Call:
    """Events of one conversation, as a call's webhooks bring them, ids in order."""

    def __init__(self, conversation_id: str = CON) -> None:
        self.conversation_id = conversation_id
        self.next_id = 1

    def add(self, event_type: str, sender: str, body: dict, second: int) -> dict:
        found = event(self.conversation_id, self.next_id, event_type, sender, body, second)
        self.next_id += 1
        webhook(found)
        return found

    def member(self, kind: str, member: str, name: str, leg: str, second: int, channel="phone"):
        self.add(
            f"member:{kind}",
            member,
            {
                "member_id": member,
                "user": {"id": USR, "name": name},
                "channel": {"type": channel, "id": leg, "leg_ids": [leg]},
                "timestamp": {kind: stamp(second)},
            },
            second,
        )

    def leg(self, member: str, leg: str, status: str, second: int, direction: str = "inbound"):
        body = {"leg_id": leg, "status": status, "direction": direction, "type": "phone"}
        self.add("leg:status:update", member, body, second)


def call(*, bob_leaves: bool = True) -> Call:
    """Alice calls in at 0 s; Bob is invited at 10 s and joins at 20 s; DTMF, a recording, a
    transfer; Alice hangs up at 90 s; Bob leaves at 100 s (unless told not to)."""
    c = Call()
    c.leg(ALICE, "leg-a", "started", 0)
    c.member("joined", ALICE, "alice", "leg-a", 0)
    c.leg(ALICE, "leg-a", "answered", 2)
    c.member("invited", BOB, "bob", "leg-b", 10, channel="app")
    c.leg(BOB, "leg-b", "ringing", 12, "outbound")
    c.member("joined", BOB, "bob", "leg-b", 20, channel="app")
    c.leg(BOB, "leg-b", "answered", 21, "outbound")
    c.add("audio:dtmf", ALICE, {"digit": "5", "channel": {"type": "phone", "id": "leg-a"}}, 30)
    c.add("audio:record", BOB, {"recording_id": "r1", "format": "mp3"}, 50)
    c.add("audio:record:done", BOB, {"recording_id": "r1", "size": 32000}, 70)
    c.add("rtc:transfer", BOB, {"channel": {"type": "app", "id": "leg-b"}}, 80)
    reason = {"code": "16", "text": "normal"}
    c.add("sip:hangup", ALICE, {"channel": {"id": "leg-a"}, "reason": reason}, 90)
    c.leg(ALICE, "leg-a", "completed", 90)
    c.member("left", ALICE, "alice", "leg-a", 90)
    if bob_leaves:
        c.leg(BOB, "leg-b", "completed", 100, "outbound")
        c.member("left", BOB, "bob", "leg-b", 100, channel="app")
    return c


def build(*, now: dt.datetime | None = None, over: bool | None = None) -> timeline.Timeline:
    stored = queries.find(CON)
    if over is None:
        over = queries.conversation(stored).is_over
    return timeline.build(stored, now=now or at(3600), over=over)


def percent(value: str) -> float:
    assert value.endswith("%"), value
    return float(value[:-1])


def span(stretch: timeline.Stretch) -> tuple[float, float]:
    """A bar's start and end in seconds of CALL (one second = one percent)."""
    start = percent(stretch.x)
    return round(start, 1), round(start + percent(stretch.width), 1)


def row_of(chart: timeline.Timeline, label: str) -> timeline.Row:
    return next(row for row in chart.rows if row.label == label)


@pytest.fixture
def no_upstream(monkeypatch):
    forbid_upstream(monkeypatch)


# --- the model: rows, bars, lanes, marks


def test_one_row_per_member_with_bars_from_joining_to_leaving():
    call()
    chart = build()
    assert (chart.start, chart.end) == (at(0), at(100))
    assert [row.label for row in chart.rows] == ["alice", "bob"]
    assert [row.channel for row in chart.rows] == ["phone", "app"]
    alice, bob = chart.rows
    assert [(bar.kind, span(bar)) for bar in alice.bars] == [("joined", (0, 90))]
    assert [(bar.kind, span(bar)) for bar in bob.bars] == [
        ("invited", (10, 20)),
        ("joined", (20, 100)),
    ]
    assert alice.bars[0].title == "alice: joined 09:00:00, left 09:01:30 (1 min 30 s)"
    assert bob.in_call == "invited 09:00:10, joined 09:00:20, left 09:01:40"
    assert bob.top > alice.top  # rows below one another
    assert chart.height > bob.top


def test_a_member_still_in_the_call_runs_to_now():
    call(bob_leaves=False)
    chart = build(now=at(200))
    assert chart.live and chart.end == at(200)
    bob = row_of(chart, "bob")
    joined = bob.bars[-1]
    assert joined.kind == "joined" and percent(joined.x) == pytest.approx(10.0)
    assert percent(joined.x) + percent(joined.width) == pytest.approx(100.0)
    assert "still in the conversation" in joined.title
    # Alice left at 90 s: her bar stops there, at 45 % of 200 s.
    alice = row_of(chart, "alice").bars[0]
    assert percent(alice.x) + percent(alice.width) == pytest.approx(45.0)


def test_once_over_a_member_who_never_left_runs_to_the_last_event():
    call(bob_leaves=False)
    chart = build(now=at(5000), over=True)
    assert not chart.live and chart.end == at(90)  # the last stored time
    joined = row_of(chart, "bob").bars[-1]
    assert span(joined) == (round(20 / 90 * 100, 1), 100.0)
    assert "no leaving recorded" in joined.title


def test_legs_and_their_statuses_on_the_same_axis():
    call()
    alice, bob = build().rows
    assert len(alice.lanes) == 1 and len(bob.lanes) == 1
    # Started 0-2 s, answered 2-90 s, completed at 90 s: the lane ends there.
    assert [(s.kind, span(s)) for s in alice.lanes[0].stretches] == [
        ("setup", (0, 2)),
        ("up", (2, 90)),
    ]
    assert [(s.kind, span(s)) for s in bob.lanes[0].stretches] == [
        ("setup", (12, 21)),
        ("up", (21, 100)),
    ]
    assert "Leg leg-a (inbound) answered from 09:00:02 until 09:01:30" in (
        alice.lanes[0].stretches[1].title
    )
    assert alice.legs_text == [
        "Leg leg-a (inbound): started 09:00:00, answered 09:00:02, completed 09:01:30"
    ]
    assert alice.lanes[0].y > alice.bar_y


def test_a_leg_belongs_to_the_member_whose_channel_carries_it_whoever_sent_the_event():
    # As in the API docs' call example: every event is "from" the first member.
    call()
    c = Call()
    c.next_id = 100
    c.leg(ALICE, "leg-b", "early_media", 15, "outbound")
    bob = row_of(build(), "bob")
    assert "early_media 09:00:15" in bob.legs_text[0]
    assert all("leg-b" not in line for line in row_of(build(), "alice").legs_text)


def test_a_leg_without_leg_events_is_drawn_from_its_call_events():
    c = Call()
    c.member("joined", ALICE, "alice", "leg-a", 0)
    c.add("sip:ringing", ALICE, {"channel": {"id": "leg-a"}}, 0)
    c.add("sip:answered", ALICE, {"channel": {"id": "leg-a"}, "direction": "inbound"}, 5)
    c.add("sip:hangup", ALICE, {"channel": {"id": "leg-a"}, "reason": "busy"}, 50)
    c.member("left", ALICE, "alice", "leg-a", 50)
    alice = build().rows[0]
    assert [(s.kind, span(s)) for s in alice.lanes[0].stretches] == [
        ("setup", (0, 10)),
        ("up", (10, 100)),
    ]
    assert [(m.kind, m.title) for m in alice.marks] == [
        ("hangup", "alice: Hung up (busy) at 09:00:50 UTC")
    ]


def test_dtmf_recordings_transfers_and_hang_ups_are_marks_where_they_happened():
    call()
    alice, bob = build().rows
    assert [(m.kind, percent(m.x), m.title) for m in alice.marks] == [
        ("dtmf", 30.0, "alice: DTMF 5 at 09:00:30 UTC"),
        ("hangup", 90.0, "alice: Hung up (16 normal) at 09:01:30 UTC"),
    ]
    assert [(m.kind, percent(m.x), m.title) for m in bob.marks] == [
        ("record", 50.0, "bob: Recording started at 09:00:50 UTC"),
        ("record", 70.0, "bob: Recording finished at 09:01:10 UTC"),
        ("transfer", 80.0, "bob: Transferred at 09:01:20 UTC"),
    ]
    assert bob.marks_text == [
        "Recording started at 09:00:50",
        "Recording finished at 09:01:10",
        "Transferred at 09:01:20",
    ]


def test_marks_closer_than_one_step_merge_and_say_how_many():
    call()
    c = Call()
    c.next_id = 100
    for digits in ("1", "2", "3"):  # all at 31 s: one step is 0.5 s here
        c.add("audio:dtmf", ALICE, {"digits": digits, "channel": {"id": "leg-a"}}, 31)
    alice = row_of(build(), "alice")
    merged = [m for m in alice.marks if m.count > 1]
    assert len(merged) == 1 and merged[0].count == 3
    assert merged[0].title == "alice: 3 DTMF events from 09:00:31 to 09:00:31 UTC: 1, 2, 3"
    assert len(alice.marks_text) == 5  # the table lists each one


def test_a_busy_row_merges_its_marks_over_wider_steps_instead_of_dropping_them():
    c = Call()
    c.member("joined", ALICE, "alice", "leg-a", 0)
    for second in range(1000):
        c.add("audio:dtmf", ALICE, {"digit": "1", "channel": {"id": "leg-a"}}, second)
    chart = build(over=True)
    marks = chart.rows[0].marks
    assert len(marks) <= timeline.MAX_MARKS
    assert sum(m.count for m in marks) == 1000  # every event is in a mark
    assert not chart.notes


def test_events_of_no_member_drawn_get_a_row_of_their_own():
    call()
    c = Call()
    c.next_id = 100
    c.add("audio:dtmf", "", {"digit": "9"}, 40)  # no sender, no leg
    chart = build()
    assert chart.rows[-1].label == "Not tied to a member"
    assert [m.title for m in chart.rows[-1].marks] == [
        "Not tied to a member: DTMF 9 at 09:00:40 UTC"
    ]


def test_ticks_are_round_times_inside_the_axis():
    call()
    ticks = build().ticks
    assert [t.label for t in ticks] == ["09:00:30", "09:01:00", "09:01:30"]
    assert [percent(t.x) for t in ticks] == [30.0, 60.0, 90.0]
    assert len(ticks) <= timeline.MAX_TICKS


def test_nothing_timed_gives_no_chart():
    webhook({**event(CON, 1, "audio:dtmf", ALICE, {"digit": "1"}), "timestamp": None})
    assert build() is None


# --- hostile bodies


def test_values_of_the_wrong_type_are_left_out_not_drawn_as_text():
    c = Call()
    c.member("joined", ALICE, "alice", "leg-a", 0)
    c.add("leg:status:update", ALICE, {"leg_id": {"x": 1}, "status": ["up"]}, 5)
    c.add("leg:status:update", ALICE, {"leg_id": "leg-a", "status": 200}, 6)
    c.add("audio:dtmf", ALICE, {"digit": {"nested": "x"}, "channel": "leg-a"}, 7)
    c.add("audio:dtmf", ALICE, {"digits": [1, 2]}, 8)
    c.add("sip:hangup", ALICE, {"reason": ["a", "b"], "channel": {"id": 42}}, 9)
    c.add("audio:record", ALICE, "not an object", 10)
    c.add("rtc:transfer", ALICE, None, 11)
    chart = build(over=True)
    alice = chart.rows[0]
    leg_a = next(line for line in alice.legs_text if line.startswith("Leg leg-a"))
    assert leg_a == "Leg leg-a: 200 09:00:06"  # a number is a value; a list is not
    assert "Leg 42: hung up 09:00:09" in alice.legs_text  # the hang-up's leg, a number
    assert [m.title.split(" at ")[0] for m in alice.marks] == [
        "alice: DTMF",
        "alice: DTMF",
        "alice: Hung up",
        "alice: Recording started",
        "alice: Transferred",
    ]
    assert all("{" not in m.title and "[" not in m.title for m in alice.marks)


def test_events_without_a_time_are_counted_not_drawn():
    call()
    webhook({**event(CON, 200, "audio:dtmf", ALICE, {"digit": "7"}), "timestamp": "not a time"})
    chart = build()
    assert "1 event without a time not drawn." in chart.notes
    assert all("DTMF 7" not in m.title for m in row_of(chart, "alice").marks)


def test_times_out_of_order_never_draw_backwards():
    c = Call()
    c.add("audio:dtmf", ALICE, {"digit": "1"}, 0)
    c.member("joined", ALICE, "alice", "leg-a", 50)
    c.member("left", ALICE, "alice", "leg-a", 10)  # left before joining
    c.leg(ALICE, "leg-a", "started", 30)
    c.leg(ALICE, "leg-a", "ringing", 40)
    c.leg(ALICE, "leg-a", "answered", 20)  # a later event with an earlier time
    chart = build(over=True)
    assert (chart.start, chart.end) == (at(0), at(50))
    alice = chart.rows[0]
    # Left when joined: a bar of no length, still seen, at the end of the axis.
    [bar] = alice.bars
    assert percent(bar.width) == timeline.MIN_WIDTH and percent(bar.x) + percent(bar.width) == 100
    assert alice.in_call == "joined 09:00:50, left 09:00:50"
    # Started at 60 %, ringing at 80 %, then answered: drawn at 80 % too, never back at 40 %.
    assert [(s.kind, span(s)) for s in alice.lanes[0].stretches] == [
        ("setup", (60, 80)),
        ("up", (80, 100)),
    ]


def test_times_in_the_far_future_or_past_do_not_stretch_the_axis():
    call()
    c = Call()
    c.next_id = 100
    future = {
        **event(CON, 100, "audio:dtmf", ALICE, {"digit": "8"}),
        "timestamp": "2999-01-01T00:00:00Z",
    }
    past = {
        **event(CON, 101, "audio:dtmf", ALICE, {"digit": "9"}),
        "timestamp": "1970-01-01T00:00:00Z",
    }
    webhook(future)
    webhook(past)
    chart = build(now=at(100), over=True)
    assert chart.end == at(100)
    assert chart.end - chart.start == timeline.MAX_SPAN  # not back to 1970
    titles = " ".join(m.title for m in row_of(chart, "alice").marks)
    assert "DTMF 8" not in titles and "DTMF 9" not in titles
    assert any("in the future or long before" in note for note in chart.notes)


def test_hostile_names_are_cut_and_lose_their_bidi_overrides():
    c = Call()
    c.member("joined", ALICE, "\u202eevil" + "x" * 500, "leg-a", 0)
    label = build(over=True).rows[0].label
    assert "\u202e" not in label and len(label) <= timeline.NAME_LIMIT and label.endswith("…")


# --- caps


def test_hundreds_of_members_draw_the_first_rows_and_say_how_many_more():
    c = Call()
    for n in range(timeline.MAX_ROWS + 40):
        member = f"MEM-90000000-0000-4000-8000-{n:012d}"
        c.member("joined", member, f"m{n}", f"leg-{n}", n)
        c.add("audio:dtmf", member, {"digit": "1", "channel": {"id": f"leg-{n}"}}, n)
    chart = build(now=at(500))
    assert len(chart.rows) == timeline.MAX_ROWS
    assert chart.members_total == timeline.MAX_ROWS + 40
    assert [row.label for row in chart.rows[:3]] == ["m0", "m1", "m2"]
    assert "40 more members not drawn (the first 30 are); the Members tab lists them all." in (
        chart.notes
    )
    # A hidden member's events are not drawn on another's row (their legs say whose they are).
    assert all(row.label != "Not tied to a member" for row in chart.rows)


def test_more_events_than_read_says_so(monkeypatch):
    monkeypatch.setattr(timeline, "MAX_EVENTS", 20)
    c = Call()
    c.member("joined", ALICE, "alice", "leg-a", 0)
    for second in range(1, 40):
        c.add("audio:dtmf", ALICE, {"digit": "1", "channel": {"id": "leg-a"}}, second)
    chart = build(over=True)
    assert "Only the first 20 call events are drawn." in chart.notes
    assert sum(m.count for m in chart.rows[0].marks) == 19  # 20 read, one the joining


def test_legs_past_the_cap_are_listed_not_drawn():
    c = Call()
    c.member("joined", ALICE, "alice", "leg-0", 0)
    for n in range(timeline.MAX_LEGS_PER_ROW + 2):
        c.leg(ALICE, f"leg-{n}", "answered", n)
    alice = build(now=at(100)).rows[0]
    assert len(alice.lanes) == timeline.MAX_LEGS_PER_ROW and alice.more_legs == 2
    assert len(alice.legs_text) == timeline.MAX_LEGS_PER_ROW + 2


def test_a_rows_share_of_marks_keeps_its_busiest_and_says_what_it_left_out(monkeypatch):
    monkeypatch.setattr(timeline, "MAX_MARKS", 4)
    c = Call()
    c.member("joined", ALICE, "alice", "leg-a", 0)
    c.add("audio:dtmf", ALICE, {"digit": "1"}, 0)
    c.add("audio:record", ALICE, {}, 20)
    c.add("audio:record", ALICE, {}, 21)  # merges with the one before: the busiest mark
    c.add("rtc:transfer", ALICE, {}, 40)
    c.add("sip:hangup", ALICE, {}, 60)
    c.add("audio:dtmf", ALICE, {"digit": "2"}, 80)
    c.add("audio:dtmf", ALICE, {"digit": "3"}, 100)
    chart = build(over=True)
    marks = chart.rows[0].marks
    assert len(marks) == 4
    assert [(m.kind, m.count) for m in marks][:2] == [("dtmf", 1), ("record", 2)]
    assert [percent(m.x) for m in marks] == sorted(percent(m.x) for m in marks)
    assert "2 events not drawn: too many marks." in chart.notes


def test_the_timeline_costs_two_queries_and_loads_no_body():
    call()
    stored = queries.find(CON)
    with CaptureQueriesContext(connection) as captured:
        timeline.build(stored, now=at(200), over=True)
    assert len(captured.captured_queries) == 2
    for query in captured.captured_queries:
        # A body is only read through JSON operators, never selected whole.
        assert not re.search(r'"body"\s*(,\s*"|FROM)', query["sql"]), query["sql"]
    events_query = captured.captured_queries[1]["sql"]
    assert "member:joined" in events_query and "audio:dtmf" in events_query
    assert "message" not in events_query  # only the types drawn


# --- the panel and its page


def test_the_conversation_page_has_the_timeline_region_which_loads_itself(
    staff_client, no_upstream
):
    call(bob_leaves=False)
    html = staff_client.get(reverse("conversations:detail", args=[CON])).content.decode()
    url = reverse("conversations:timeline", args=[CON])
    region = re.search(r'<div id="timeline"[^>]*>', html).group(0)
    assert f'hx-get="{url}"' in region and 'hx-trigger="load"' in region
    assert f'hx-include="#{dom.OVER_FLAG}"' in region
    assert 'id="timeline-table"' in html and "<summary>The timeline as a table</summary>" in html
    assert f'<noscript> <a href="{url}">Open the timeline</a></noscript>' in html


def test_the_panel_is_a_live_fragment_with_the_table_out_of_band(staff_client, no_upstream):
    call(bob_leaves=False)
    response = staff_client.get(reverse("conversations:timeline", args=[CON]), **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html and html.lstrip().startswith('<div id="timeline"')
    region = re.search(r'<div id="timeline"[^>]*>', html).group(0)
    assert "data-poll" in region
    for trigger in (
        "sse:events",
        "sse:members",
        "sse:resync",
        f"{dom.CONVERSATION_OVER} from:body",
    ):
        assert trigger in region
    assert '<svg class="timeline-chart" width="100%"' in html and 'role="img"' in html
    assert '<div id="timeline-table" hx-swap-oob="true">' in html
    assert html.count("<title>") >= 6  # the chart's, each bar's and mark's
    assert "<td>invited 09:00:10, joined 09:00:20, still in the conversation</td>" in html


def test_once_over_the_panel_stops_polling(staff_client, no_upstream):
    call()
    response = staff_client.get(reverse("conversations:timeline", args=[CON]), **HTMX)
    assert response.status_code == 286  # htmx swaps it, then stops
    region = re.search(r'<div id="timeline"[^>]*>', response.content.decode()).group(0)
    assert "hx-get" not in region and "data-poll" not in region


def test_the_headers_over_flag_stops_it_too(staff_client, no_upstream):
    call(bob_leaves=False)
    url = reverse("conversations:timeline", args=[CON])
    assert staff_client.get(url, {"over": "1"}, **HTMX).status_code == 286


def test_opened_directly_it_is_a_page_of_its_own(staff_client, no_upstream):
    call()
    response = staff_client.get(reverse("conversations:timeline", args=[CON]))
    html = response.content.decode()
    assert response.status_code == 200 and "<html" in html
    assert "<title>Timeline: " in html
    assert f'<a href="{reverse("conversations:detail", args=[CON])}">' in html  # breadcrumbs
    assert 'class="timeline-chart"' in html and '<div id="timeline-table">' in html
    assert f'id="{dom.OVER_FLAG}"' in html  # what the region would send


def test_without_stored_history_a_note_instead_of_a_chart(staff_client, no_upstream):
    unknown = "CON-00000000-0000-4000-8000-00000000abcd"
    url = reverse("conversations:timeline", args=[unknown])
    live = staff_client.get(url, **HTMX)
    assert live.status_code == 200  # asks again: the worker is storing it
    assert "No stored history of this conversation yet" in live.content.decode()
    assert "<svg" not in live.content.decode()
    assert staff_client.get(url, {"over": "1"}, **HTMX).status_code == 286


def test_malformed_ids_and_parameters_are_refused(staff_client, no_upstream):
    assert staff_client.get("/conversations/CON-!!/timeline/").status_code == 404
    assert staff_client.get("/conversations/MEM-1234/timeline/").status_code == 404
    url = reverse("conversations:timeline", args=[CON])
    for query in ({"over": "yes"}, {"backoff": "99"}, {"backoff": "-1"}):
        response = staff_client.get(url, query)
        assert response.status_code == 400, query
    # htmx does not swap a 400: the panel is told to reload its page.
    assert staff_client.get(url, {"over": "2"}, **HTMX)["HX-Refresh"] == "true"


def test_an_id_in_another_case_is_redirected(staff_client, no_upstream):
    response = staff_client.get(f"/conversations/{CON.lower()}/timeline/")
    assert response.status_code == 302
    assert response["Location"] == reverse("conversations:timeline", args=[CON])


def test_the_timeline_is_staff_only(client, django_user_model, no_upstream):
    call()
    url = reverse("conversations:timeline", args=[CON])
    anonymous = client.get(url, **HTMX)  # htmx is sent to the login page
    assert anonymous["HX-Redirect"].startswith(reverse("login"))
    assert "alice" not in anonymous.content.decode()
    assert client.get(url).status_code == 302
    user = django_user_model.objects.create_user("visitor", password="visitor-password-1")
    client.force_login(user)
    assert client.get(url).status_code == 403
    assert client.post(url).status_code in (403, 405)


def test_hostile_names_are_escaped_inside_the_svg(staff_client, no_upstream):
    hostile = '</title><script>alert(1)</script><svg onload="x()">&'
    c = Call()
    c.member("joined", ALICE, hostile, "leg-a", 0)
    c.add("audio:dtmf", ALICE, {"digit": "<b>1</b>", "channel": {"id": "leg-a"}}, 5)
    html = staff_client.get(reverse("conversations:timeline", args=[CON]), **HTMX).content.decode()
    assert "<script>" not in html and "onload=" not in html.replace("onload=&quot;", "")
    assert "<b>" not in html
    escaped = "&lt;/title&gt;&lt;script&gt;alert(1)&lt;/script&gt;"
    assert f"<title>{escaped}" in html  # the bar's text alternative
    assert re.search(rf'<text x="0" y="\d+" class="tl-label">{re.escape(escaped)}', html)
    assert "DTMF &lt;b&gt;1&lt;/b&gt; at 09:00:05 UTC</title>" in html


# --- the live board's chart of conversations started per hour


def started(conversation_id: str, when: dt.datetime | None, application=None) -> None:
    StoredConversation.objects.create(
        application=application or app(), vonage_id=conversation_id, started_at=when
    )


NOW = dt.datetime(2026, 11, 27, 15, 20, 5, tzinfo=dt.UTC)
FIRST_HOUR = dt.datetime(2026, 11, 26, 16, 0, tzinfo=dt.UTC)  # 23 whole hours before 15:00


def test_conversations_are_counted_per_hour_with_empty_hours_kept():
    for n, when in enumerate(
        [NOW - dt.timedelta(minutes=5), NOW - dt.timedelta(minutes=19), at(0), at(30), at(3599)]
    ):
        started(f"CON-40000000-0000-4000-8000-{n:012d}", when)
    hours = queries.conversations_started_per_hour(NOW)
    assert len(hours) == 24
    assert [start for start, _count in hours] == [
        FIRST_HOUR + dt.timedelta(hours=i) for i in range(24)
    ]
    counts = dict(hours)
    assert counts[dt.datetime(2026, 11, 27, 15, tzinfo=dt.UTC)] == 2  # the hour so far
    assert counts[dt.datetime(2026, 11, 27, 9, tzinfo=dt.UTC)] == 3
    assert sum(counts.values()) == 5
    assert counts[dt.datetime(2026, 11, 27, 10, tzinfo=dt.UTC)] == 0


def test_the_window_edges():
    started("CON-40000000-0000-4000-8000-000000000001", FIRST_HOUR)  # in: its first instant
    started("CON-40000000-0000-4000-8000-000000000002", FIRST_HOUR - dt.timedelta(seconds=1))
    started("CON-40000000-0000-4000-8000-000000000003", NOW)  # in: now
    started("CON-40000000-0000-4000-8000-000000000004", NOW + dt.timedelta(seconds=1))  # future
    started("CON-40000000-0000-4000-8000-000000000005", None)  # never started
    other = StoredConversation._meta.get_field("application").related_model.objects.create(
        vonage_id="ffffffff-0000-4000-8000-000000000000"
    )
    started("CON-40000000-0000-4000-8000-000000000006", NOW, application=other)
    hours = queries.conversations_started_per_hour(NOW)
    assert hours[0] == (FIRST_HOUR, 1)
    assert hours[-1] == (dt.datetime(2026, 11, 27, 15, tzinfo=dt.UTC), 1)
    assert sum(count for _start, count in hours) == 2


def test_the_live_board_draws_the_chart_with_a_table(staff_client, no_upstream):
    now = timezone.now()
    for n in range(3):
        started(f"CON-40000000-0000-4000-8000-00000000000{n}", now - dt.timedelta(seconds=n))
    started("CON-40000000-0000-4000-8000-000000000009", now - dt.timedelta(hours=3))
    html = staff_client.get(reverse("conversations:live")).content.decode()
    chart = re.search(r'<div id="started-chart".*?</svg>', html, re.S).group(0)
    assert 'role="img"' in chart and "4 in all, at most 3 in one hour" in chart
    assert chart.count('class="started-column"') == 24
    assert re.search(
        r"<title>\d\d:00 to \d\d:00 UTC: 3 conversations started so far</title>", chart
    )
    assert re.search(r"<title>\d\d:00 to \d\d:00 UTC: 1 conversation started</title>", chart)
    heights = [int(h) for h in re.findall(r'height="(\d+)" class="started-bar', chart)]
    assert sorted(heights) == [round(CHART_PLOT / 3), CHART_PLOT]
    table = re.search(r'<div id="started-table".*?</table>', html, re.S).group(0)
    assert table.count("<tr>") == 25 and "<td>3 (so far)</td>" in table
    assert "<summary>The chart as a table</summary>" in html


def test_the_chart_refreshes_with_the_board_out_of_band(staff_client, no_upstream):
    html = staff_client.get(reverse("conversations:live"), **HTMX).content.decode()
    assert html.lstrip().startswith(f'<div id="{dom.LIVE_BOARD}"')
    assert '<div id="started-chart" class="started-region" hx-swap-oob="true">' in html
    assert '<div id="started-table" class="started-table-wrap" hx-swap-oob="true">' in html
    assert "No conversation started in the last 24 hours" in html
    assert "<details" not in html  # stays open or closed as staff left it


# --- personal data (issue 12): the timeline goes through the same policy as every page


def test_support_sees_the_timeline_with_personal_data_masked(client, django_user_model):
    c = Call()
    c.member("joined", ALICE, "+44 7700 900100", "leg-a", 0)
    c.add("audio:dtmf", ALICE, {"digits": "4111111111111111", "channel": {"id": "leg-a"}}, 5)
    c.add("sip:hangup", ALICE, {"channel": {"id": "leg-a"}, "reason": "call 447700900123"}, 9)
    url = reverse("conversations:timeline", args=[CON])
    user = django_user_model.objects.create_user("support", is_staff=True)
    client.force_login(support(user))
    masked = client.get(url, **HTMX).content.decode()
    for secret in ("7700 900100", "4111111111111111", "447700900123"):
        assert secret not in masked
    assert "•••• 0100" in masked and "DTMF •••• 1111" in masked and "•••• 0123" in masked
    client.force_login(supervisor(django_user_model.objects.create_user("boss", is_staff=True)))
    plain = client.get(url, **HTMX).content.decode()
    assert "+44 7700 900100" in plain and "DTMF 4111111111111111" in plain


def test_support_gets_no_timeline_of_history_older_than_their_role_may_see(
    client, django_user_model, settings
):
    settings.SUPPORT_MAX_AGE_DAYS = 1
    call()
    StoredConversation.objects.filter(vonage_id=CON).update(
        started_at=timezone.now() - dt.timedelta(days=2)
    )
    user = django_user_model.objects.create_user("support", is_staff=True)
    client.force_login(support(user))
    html = client.get(reverse("conversations:timeline", args=[CON]), **HTMX).content.decode()
    assert "alice" not in html and "<svg" not in html
    assert "No stored history of this conversation" in html  # as if it were not stored


def test_the_hourly_counts_are_shared_for_a_minute(staff_client, no_upstream):
    started("CON-40000000-0000-4000-8000-000000000001", timezone.now())
    assert "1 in all" in staff_client.get(reverse("conversations:live")).content.decode()
    started("CON-40000000-0000-4000-8000-000000000002", timezone.now())
    again = staff_client.get(reverse("conversations:live"), **HTMX).content.decode()
    assert "1 in all" in again  # every viewer's 2-second refresh reads the same counts
    cache.clear()  # a minute later
    assert "2 in all" in staff_client.get(reverse("conversations:live")).content.decode()
