"""The world: determinism, special conversations, live activity and thread safety."""

from __future__ import annotations

import threading
import time

from sandbox import hostile
from sandbox.testing import running_sandbox
from sandbox.timefmt import iso_ms, parse_iso8601
from sandbox.world import World

from .conftest import SMALL_WORLD, Api, walk

NOW = 1_780_000_000.0


def small_world(seed: int = 42) -> World:
    return World(seed=seed, conversations=30, users=20, big_conversation_events=300, now=NOW)


def test_same_seed_same_world():
    assert small_world().fingerprint() == small_world().fingerprint()
    assert small_world().fingerprint() != small_world(seed=7).fingerprint()


def test_ticks_are_reproducible():
    a, b = small_world(), small_world()
    for i in range(5):
        assert a.tick(now=NOW + i) == b.tick(now=NOW + i)
    assert a.fingerprint() == b.fingerprint()


def test_special_conversations():
    world = small_world()
    big = world.conversation(world.big_conversation_id)
    assert len(big.events) == 300
    assert [e.id for e in big.events] == list(range(1, 301))
    assert big.state == "INACTIVE"
    hostile_conv = world.conversation(world.hostile_conversation_id)
    assert hostile_conv.name == hostile.PAYLOADS[0]
    texts = {e.body.get("text") for e in hostile_conv.events}
    assert set(hostile.PAYLOADS) <= texts
    assert any(m.user_id == world.hostile_user_id for m in hostile_conv.members)
    assert world.user(world.hostile_user_id).name == hostile.PAYLOADS[0]


def test_world_invariants():
    world = small_world()
    convs = world.conversations()
    assert [c.sort_key for c in convs] == sorted(c.sort_key for c in convs)
    assert len({c.name for c in convs}) == len(convs)
    for conv in convs:
        assert [e.id for e in conv.events] == list(range(1, len(conv.events) + 1))
        stamps = [e.ts for e in conv.events]
        assert stamps == sorted(stamps)
        for e in conv.events:
            assert e.from_id is None or e.from_id in conv.member_index
        if conv.state != "ACTIVE":
            assert {m.state for m in conv.members} == {"LEFT"}
            assert conv.destroyed is not None
    assert any(c.state == "ACTIVE" for c in convs)


def test_tick_adds_events_starts_and_ends_calls():
    world = small_world()
    started, ended, events = set(), set(), 0
    for i in range(40):
        done = world.tick(now=NOW + 2 * i)
        started.update(done["started"])
        ended.update(done["ended"])
        events += done["events"]
    assert started
    assert ended
    assert events > 40
    assert world.summary()["conversations"] == 30 + len(started)
    for cid in ended:
        conv = world.conversation(cid)
        assert conv.state == "INACTIVE"
        assert conv.events[-1].type == "member:left"


def test_live_activity_thread_adds_events():
    with running_sandbox(activity_interval=0.05, **SMALL_WORLD) as sb:
        client = Api(sb)
        try:
            before = sb.world.summary()["events"]
            deadline = time.monotonic() + 5
            while sb.world.summary()["events"] == before and time.monotonic() < deadline:
                time.sleep(0.05)
            assert sb.world.summary()["events"] > before
            newest = client.json("/v1/conversations", order="desc", page_size=1)
            cid = newest["_embedded"]["conversations"][0]["id"]
            assert client.json(f"/v1/conversations/{cid}")["sequence_number"] > 0
        finally:
            client.close()


def test_reads_during_heavy_activity_stay_consistent():
    """Pages read while another thread ticks hard never repeat an item or break a shape."""
    with running_sandbox(**SMALL_WORLD) as sb:
        stop = threading.Event()

        def churn() -> None:
            # Much faster than real activity (every 2 s), with gaps so readers get the lock.
            while not stop.wait(0.002):
                sb.world.tick()

        thread = threading.Thread(target=churn)
        thread.start()
        client = Api(sb)
        try:
            for _ in range(3):
                items = walk(client, "/v1/conversations", "conversations", page_size=7)
                ids = [c["id"] for c in items]
                assert len(ids) == len(set(ids)) >= SMALL_WORLD["conversations"]
                active = next(c for c in reversed(sb.world.conversations()))
                events = walk(client, f"/v1/conversations/{active.id}/events", None, page_size=5)
                assert [e["id"] for e in events] == list(range(1, len(events) + 1))
        finally:
            stop.set()
            thread.join()
            client.close()


def test_time_format_round_trip():
    assert iso_ms(1_567_536_024_324) == "2019-09-03T18:40:24.324Z"
    assert parse_iso8601("2019-09-03T18:40:24.324Z") == 1_567_536_024_324
    assert parse_iso8601("2018-01-01 10:00:00") == parse_iso8601("2018-01-01T10:00:00+00:00")
    assert parse_iso8601("2018-01-01") is not None
    for bad in ("yesterday", "20180101", "2018-W01-1", "2018-13-01", ""):
        assert parse_iso8601(bad) is None
