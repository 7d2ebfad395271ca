"""The /_sandbox control endpoints (no auth, JSON) and the matching sandbox.testing helpers."""

from __future__ import annotations

import requests

from .conftest import SMALL_WORLD, walk


def control(sb, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, f"{sb.base_url}/_sandbox{path}", timeout=5, **kwargs)


def test_healthz(sb):
    r = control(sb, "GET", "/healthz")
    assert r.status_code == 200
    assert r.json() == {"ok": True}


def test_state(sb):
    body = control(sb, "GET", "/state").json()
    assert set(body) == {"config", "faults", "world", "uptime_seconds"}
    assert body["config"]["port"] == sb.server.port  # the real port, not 0
    assert body["config"]["application_id"] == sb.application_id
    assert body["config"]["conversations"] == SMALL_WORLD["conversations"]
    world = body["world"]
    assert world["big_conversation_id"] == sb.world.big_conversation_id
    assert world["hostile_conversation_id"] == sb.world.hostile_conversation_id
    assert world["hostile_user_id"] == sb.world.hostile_user_id
    assert world["conversations"] == SMALL_WORLD["conversations"]
    assert body["faults"]["mode"] == "none"
    assert body == sb.state() | {"uptime_seconds": body["uptime_seconds"]}


def test_create_conversation(fresh_sb, fresh_api):
    r = control(fresh_sb, "POST", "/conversations", json={"name": "my-call", "members": 3})
    assert r.status_code == 201
    conv = r.json()
    assert conv["id"].startswith("CON-")
    assert conv["name"] == "my-call"
    assert conv["state"] == "ACTIVE"
    assert conv["sequence_number"] > 0
    assert conv["_links"]["self"]["href"] == f"{fresh_sb.base_url}/v1/conversations/{conv['id']}"
    newest = fresh_api.json("/v1/conversations", order="desc", page_size=1)
    assert newest["_embedded"]["conversations"][0]["id"] == conv["id"]
    members = fresh_api.json(f"/v1/conversations/{conv['id']}/members")["_embedded"]["members"]
    assert len(members) == 3
    assert members[0]["state"] == "JOINED"
    assert {m["state"] for m in members[1:]} == {"INVITED"}  # still ringing

    dup = control(fresh_sb, "POST", "/conversations", json={"name": "my-call"})
    assert dup.status_code == 409
    assert dup.json()["code"] == "conversation:error:duplicate-name"
    assert control(fresh_sb, "POST", "/conversations", json={"members": 99}).status_code == 400
    assert control(fresh_sb, "POST", "/conversations", json={"nope": 1}).status_code == 400
    assert control(fresh_sb, "POST", "/conversations", data=b"[1]").status_code == 400
    bare = control(fresh_sb, "POST", "/conversations")
    assert bare.status_code == 201
    assert bare.json()["name"].startswith("NAM-")


def test_append_event(fresh_sb, fresh_api):
    cid = fresh_sb.world.conversations()[-1].id  # the ACTIVE one
    before = fresh_api.json(f"/v1/conversations/{cid}")["sequence_number"]
    payload = {"type": "custom:note", "body": {"text": "<b>hi</b>"}}
    r = control(fresh_sb, "POST", f"/conversations/{cid}/events", json=payload)
    assert r.status_code == 201
    event = r.json()
    assert event["id"] == before + 1
    assert event["type"] == "custom:note"
    assert event["body"] == {"text": "<b>hi</b>"}
    assert event["from"].startswith("MEM-")
    assert fresh_api.json(f"/v1/conversations/{cid}/events/{event['id']}") == event
    assert fresh_api.json(f"/v1/conversations/{cid}")["sequence_number"] == before + 1

    member = fresh_sb.world.conversation(cid).members[-1].id
    r = control(
        fresh_sb, "POST", f"/conversations/{cid}/events", json={"type": "message", "from": member}
    )
    assert r.status_code == 201
    assert r.json()["from"] == member
    assert r.json()["body"] == {}

    bad_from = {"type": "message", "from": "MEM-stranger"}
    assert (
        control(fresh_sb, "POST", f"/conversations/{cid}/events", json=bad_from).status_code == 400
    )
    assert control(fresh_sb, "POST", f"/conversations/{cid}/events", json={}).status_code == 400
    bad_body = {"type": "x", "body": "text"}
    assert (
        control(fresh_sb, "POST", f"/conversations/{cid}/events", json=bad_body).status_code == 400
    )
    missing = control(fresh_sb, "POST", "/conversations/CON-nope/events", json={"type": "x"})
    assert missing.status_code == 404
    assert missing.json()["code"] == "conversation:error:not-found"


def test_inject_event_helper(fresh_sb, fresh_api):
    cid = fresh_sb.world.big_conversation_id
    event = fresh_sb.inject_event(cid, "message", {"message_type": "text", "text": "hello"})
    assert event["id"] == 501
    assert event["_links"]["self"]["href"].startswith(fresh_sb.base_url)
    last = fresh_api.json(f"/v1/conversations/{cid}/events", order="desc", page_size=1)
    assert last["_embedded"][0] == event
    member = fresh_sb.world.conversation(cid).members[1].id
    assert fresh_sb.inject_event(cid, "audio:dtmf", {"digit": "5"}, from_=member)["from"] == member


def test_end_conversation(fresh_sb, fresh_api):
    conv = fresh_sb.create_conversation(members=3)
    r = control(fresh_sb, "POST", f"/conversations/{conv['id']}/end")
    assert r.status_code == 200
    ended = r.json()
    assert ended["state"] == "INACTIVE"
    assert "destroyed" in ended["timestamp"]
    members = fresh_api.json(f"/v1/conversations/{conv['id']}/members")["_embedded"]["members"]
    assert {m["state"] for m in members} == {"LEFT"}
    events = walk(fresh_api, f"/v1/conversations/{conv['id']}/events", None)
    assert events[-1]["type"] == "member:left"
    again = control(fresh_sb, "POST", f"/conversations/{conv['id']}/end")
    assert again.json()["sequence_number"] == ended["sequence_number"]  # idempotent
    assert control(fresh_sb, "POST", "/conversations/CON-nope/end").status_code == 404
    other = fresh_sb.create_conversation()
    assert fresh_sb.end_conversation(other["id"])["state"] == "INACTIVE"


def test_stats(sb, api):
    assert control(sb, "POST", "/stats/reset").json() == {
        "requests": 0,
        "by_endpoint": {},
        "by_path": {},
    }
    cid = sb.world.big_conversation_id
    api.get("/v1/conversations")
    api.get("/v1/conversations")
    api.get(f"/v1/conversations/{cid}")
    api.get(f"/v1/conversations/{cid}/events")
    api.get("/v1/users/USR-nope")
    requests.get(f"{sb.base_url}/v1/users", timeout=5)  # 401s count too
    api.get("/v1/nowhere")
    stats = control(sb, "GET", "/stats").json()
    assert stats["requests"] == 7
    assert stats["by_endpoint"] == {
        "GET (unmatched)": 1,
        "GET /v1/conversations": 2,
        "GET /v1/conversations/{id}": 1,
        "GET /v1/conversations/{id}/events": 1,
        "GET /v1/users": 1,
        "GET /v1/users/{id}": 1,
    }
    assert stats["by_path"][f"GET /v1/conversations/{cid}"] == 1
    assert sb.stats() == stats
    sb.reset_stats()
    assert sb.stats()["requests"] == 0


def test_tick_endpoint(fresh_sb):
    before = fresh_sb.world.summary()["events"]
    r = control(fresh_sb, "POST", "/tick")
    assert r.status_code == 200
    assert set(r.json()) == {"started", "ended", "invited", "joined", "left", "events"}
    assert fresh_sb.world.summary()["events"] == before + r.json()["events"]


def test_unknown_control_paths_and_methods(sb):
    r = control(sb, "GET", "/nothing")
    assert r.status_code == 404
    assert r.json()["code"] == "sandbox:error:not-found"
    r = control(sb, "POST", "/healthz")
    assert r.status_code == 405
    assert r.headers["Allow"] == "GET"
    r = control(sb, "GET", "/stats/reset")
    assert r.status_code == 405
    assert requests.get(f"{sb.base_url}/elsewhere", timeout=5).status_code == 404
