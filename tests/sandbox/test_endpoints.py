"""Every /v1 read endpoint: status, shape (API.md section 4 and examples/), errors and quirks."""

from __future__ import annotations

import re

import pytest
import requests

from sandbox import hostile
from sandbox.testing import running_sandbox

from .conftest import SMALL_WORLD, Api, walk

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
LINK_KEYS = {"first", "self", "next", "prev"}


def first_conversation(api: Api, **params) -> dict:
    return api.json("/v1/conversations", page_size=1, **params)["_embedded"]["conversations"][0]


def assert_list(body: dict, key: str | None, page_size: int) -> list[dict]:
    assert body["page_size"] == page_size
    assert set(body["_links"]) <= LINK_KEYS
    assert {"first", "self"} <= set(body["_links"])
    for link in body["_links"].values():
        assert link["href"].startswith("http://")
    embedded = body["_embedded"]
    return embedded if key is None else embedded[key]


def assert_error(response: requests.Response, status: int, code: str | None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert {"title", "type", "detail", "instance"} <= set(body)
    if code is None:
        assert "code" not in body
    else:
        assert body["code"] == code
        assert body["type"].endswith("#" + code)
    return body


def test_conversations_list_shape(api, sb):
    body = api.json("/v1/conversations", page_size=5, order="desc")
    items = assert_list(body, "conversations", 5)
    assert len(items) == 5
    for item in items:
        assert set(item) <= {"id", "name", "display_name", "image_url", "timestamp", "_links"}
        assert item["id"].startswith("CON-")
        assert ISO.match(item["timestamp"]["created"])
        assert item["_links"]["self"]["href"] == f"{sb.base_url}/v1/conversations/{item['id']}"
    links = body["_links"]
    assert links["first"]["href"] == f"{sb.base_url}/v1/conversations?order=desc&page_size=5"
    assert "cursor=" in links["next"]["href"]
    assert "prev" not in links  # the first page has nothing before it
    created = [i["timestamp"]["created"] for i in items]
    assert created == sorted(created, reverse=True)


def test_conversation_shape(api, sb):
    item = first_conversation(api)
    conv = api.json(f"/v1/conversations/{item['id']}")
    assert conv["id"] == item["id"]
    assert conv["state"] in ("ACTIVE", "INACTIVE", "DELETED")
    assert isinstance(conv["sequence_number"], int)
    assert set(conv["properties"]) == {"ttl", "type", "custom_sort_key", "custom_data"}
    assert {"created", "updated"} <= set(conv["timestamp"])
    assert conv["_links"]["self"]["href"] == f"{sb.base_url}/v1/conversations/{conv['id']}"
    world_conv = sb.world.conversation(conv["id"])
    assert conv["sequence_number"] == world_conv.events[-1].id


def test_members_list_and_member(api, sb):
    cid = sb.world.big_conversation_id
    body = api.json(f"/v1/conversations/{cid}/members", page_size=100)
    members = assert_list(body, "members", 100)
    assert len(members) == 6
    assert "next" not in body["_links"]
    for m in members:
        assert set(m) == {"id", "state", "_embedded", "_links"}
        assert m["state"] in ("INVITED", "JOINED", "LEFT")
        assert set(m["_links"]) == {"href"}  # not "self": a live quirk
        assert m["_embedded"]["user"]["id"].startswith("USR-")
        assert m["_embedded"]["user"]["_links"]["self"]["href"].startswith(sb.base_url)
    member = api.json(f"/v1/conversations/{cid}/members/{members[0]['id']}")
    assert member["id"] == members[0]["id"]
    assert member["conversation_id"] == cid
    assert member["state"] == "LEFT"
    assert {"invited", "joined", "left"} & set(member["timestamp"])
    assert {"joined"} <= set(member["initiator"]) or {"invited"} <= set(member["initiator"])
    assert member["channel"]["type"] in ("phone", "sip", "app")
    assert set(member["media"]["audio_settings"]) == {"enabled", "earmuffed", "muted"}
    assert member["_links"]["href"] == members[0]["_links"]["href"]


def test_member_me_uses_the_jwt_sub(api, sb):
    cid = sb.world.big_conversation_id
    conv = sb.world.conversation(cid)
    member = conv.members[2]
    user = sb.world.user(member.user_id)
    r = api.get(f"/v1/conversations/{cid}/members/me", headers=sb.auth_headers(sub=user.name))
    assert r.status_code == 200
    assert r.json()["id"] == member.id
    assert_error(
        api.get(f"/v1/conversations/{cid}/members/me"), 404, "conversation:error:member-not-found"
    )


def test_events_list_shape_and_event(api, sb):
    cid = sb.world.big_conversation_id
    body = api.json(f"/v1/conversations/{cid}/events", page_size=20)
    events = assert_list(body, None, 20)  # a bare array by default
    assert isinstance(events, list)
    assert [e["id"] for e in events] == list(range(1, 21))
    for e in events:
        assert {"id", "type", "body", "timestamp", "_links"} <= set(e)
        assert ISO.match(e["timestamp"])
        assert e["from"].startswith("MEM-")
        assert e["_embedded"]["from_member"]["id"] == e["from"]
        assert e["_embedded"]["from_user"]["id"].startswith("USR-")
    assert events[0]["type"] == "leg:status:update"
    href = body["_links"]["first"]["href"]
    assert href.endswith("/events?page_size=20&order=asc&exclude_deleted_events=false")
    one = api.json(f"/v1/conversations/{cid}/events/7")
    assert one == events[6]
    assert one["_links"]["self"]["href"] == f"{sb.base_url}/v1/conversations/{cid}/events/7"


def test_big_conversation_has_the_configured_number_of_events(api, sb):
    cid = sb.world.big_conversation_id
    conv = api.json(f"/v1/conversations/{cid}")
    assert conv["sequence_number"] == SMALL_WORLD["big_conversation_events"]
    last = api.json(f"/v1/conversations/{cid}/events", order="desc", page_size=1)["_embedded"]
    assert last[0]["id"] == SMALL_WORLD["big_conversation_events"]


def test_event_filters(api, sb):
    cid = sb.world.big_conversation_id
    ranged = walk(api, f"/v1/conversations/{cid}/events", None, start_id=13, end_id=40, page_size=9)
    assert [e["id"] for e in ranged] == list(range(13, 41))
    first = api.json(f"/v1/conversations/{cid}/events", start_id=13, end_id=19)
    assert [e["id"] for e in first["_embedded"]] == list(range(13, 20))
    for link in first["_links"].values():
        assert "start_id=13&end_id=19" in link["href"]

    joined = walk(api, f"/v1/conversations/{cid}/events", None, event_type="member:joined")
    assert len(joined) == 6
    assert {e["type"] for e in joined} == {"member:joined"}

    desc = api.json(f"/v1/conversations/{cid}/events", order="desc", start_id=5, end_id=8)
    assert [e["id"] for e in desc["_embedded"]] == [8, 7, 6, 5]


def test_exclude_deleted_events(api, sb):
    cid = sb.world.big_conversation_id
    deleted = {e.id for e in sb.world.conversation(cid).events if e.deleted}
    assert deleted, "the big conversation has deleted messages"
    everything = walk(api, f"/v1/conversations/{cid}/events", None, page_size=100)
    kept = walk(
        api, f"/v1/conversations/{cid}/events", None, page_size=100, exclude_deleted_events="true"
    )
    assert len(everything) == SMALL_WORLD["big_conversation_events"]
    assert {e["id"] for e in everything} - {e["id"] for e in kept} == deleted
    deletes = [e for e in everything if e["type"] == "event:delete"]
    assert {e["body"]["event_id"] for e in deletes} == deleted


def test_users_list_user_and_name_filter(api, sb):
    users = walk(api, "/v1/users", "users", page_size=100)
    assert len(users) == SMALL_WORLD["users"]
    assert len({u["id"] for u in users}) == len(users)
    for u in users:
        assert set(u) <= {"id", "name", "display_name", "_links"}
    user = api.json(f"/v1/users/{users[3]['id']}")
    assert user["id"] == users[3]["id"]
    assert set(user) >= {"id", "name", "properties", "channels", "_links"}
    assert "custom_data" in user["properties"]
    found = api.json("/v1/users", name=users[3]["name"])
    assert [u["id"] for u in found["_embedded"]["users"]] == [users[3]["id"]]
    assert "name=" in found["_links"]["self"]["href"]


def test_user_conversations_and_state_filter(api, sb):
    member = sb.world.conversation(sb.world.big_conversation_id).members[0]
    uid = member.user_id
    items = walk(api, f"/v1/users/{uid}/conversations", "conversations", page_size=2)
    assert sb.world.big_conversation_id in {c["id"] for c in items}
    expected = {c.id for c, _ in sb.world.memberships(uid)}
    assert {c["id"] for c in items} == expected
    for c in items:
        assert {"state", "sequence_number", "properties"} <= set(c)
        assert c["_embedded"]["id"].startswith("MEM-")
        assert c["_embedded"]["state"] in ("INVITED", "JOINED", "LEFT")
    left = walk(api, f"/v1/users/{uid}/conversations", "conversations", state="LEFT")
    assert {c["_embedded"]["state"] for c in left} <= {"LEFT"}
    by_key = walk(
        api, f"/v1/users/{uid}/conversations", "conversations", order_by="custom_sort_key"
    )
    keys = [c["properties"]["custom_sort_key"] for c in by_key]
    assert keys == sorted(keys)
    bad = api.get(f"/v1/users/{uid}/conversations", state="SLEEPING")
    assert_error(bad, 400, "http:error:validation-fail")


def test_user_sessions(api, sb):
    user = next(u for u in sb.world.users() if len(u.sessions) >= 2)
    body = api.json(f"/v1/users/{user.id}/sessions", page_size=1)
    sessions = assert_list(body, "sessions", 1)
    assert sessions[0]["id"].startswith("SES-")
    assert sessions[0]["_embedded"]["user"] == {"id": user.id, "name": user.name}
    assert isinstance(sessions[0]["properties"]["ttl"], int)
    everything = walk(api, f"/v1/users/{user.id}/sessions", "sessions", page_size=1)
    assert [s["id"] for s in everything] == [s.id for s in user.sessions]


def test_not_found_bodies(api, sb):
    cid = sb.world.big_conversation_id
    assert_error(api.get("/v1/conversations/CON-nope"), 404, "conversation:error:not-found")
    assert_error(api.get("/v1/conversations/CON-nope/events"), 404, "conversation:error:not-found")
    assert_error(
        api.get(f"/v1/conversations/{cid}/members/MEM-nope"),
        404,
        "conversation:error:member-not-found",
    )
    assert_error(api.get(f"/v1/conversations/{cid}/events/999999"), 404, "event:error:not-found")
    assert_error(api.get(f"/v1/conversations/{cid}/events/abc"), 400, "http:error:validation-fail")
    assert_error(api.get("/v1/nowhere"), 404, "http:error:not-found")


def test_unknown_user_404_has_no_code(api):
    for path in ("/v1/users/USR-nope", "/v1/users/USR-nope/conversations", "/v1/users/x/sessions"):
        body = assert_error(api.get(path), 404, None)
        assert body["type"] == "https://developer.vonage.com/api/conversation#user:error:not-found"
        assert body["title"] == "Not found."


@pytest.mark.parametrize(
    "path",
    [
        "/v1/conversations/",
        "/v1/users/",
        "/v1/conversations/{cid}/",
        "/v1/conversations/{cid}/events/",
    ],
)
def test_trailing_slash_is_404(api, sb, path):
    r = api.get(path.format(cid=sb.world.big_conversation_id))
    assert_error(r, 404, "http:error:not-found")


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_wrong_method_is_405(sb, method):
    r = requests.request(
        method, f"{sb.base_url}/v1/conversations", headers=sb.auth_headers(), timeout=10
    )
    assert_error(r, 405, "http:error:method-not-allowed")
    assert r.headers["Allow"] == "GET"


def test_links_follow_the_host_header(api, sb):
    body = api.json("/v1/conversations", headers={"Host": "api.example.test:9999"})
    assert body["_links"]["self"]["href"].startswith("http://api.example.test:9999/v1/")


def test_links_host_option():
    with running_sandbox(links_host="https://api.nexmo.com", **SMALL_WORLD) as sb:
        client = Api(sb)
        try:
            body = client.json("/v1/conversations")
        finally:
            client.close()
    conv = body["_embedded"]["conversations"][0]
    assert conv["_links"]["self"]["href"].startswith("https://api.nexmo.com/v1/conversations/")
    assert body["_links"]["next"]["href"].startswith("https://api.nexmo.com/v1/conversations?")


def test_events_object_shape_and_string_ids():
    with running_sandbox(events_shape="object", event_id_format="string", **SMALL_WORLD) as sb:
        client = Api(sb)
        try:
            cid = sb.world.big_conversation_id
            body = client.json(f"/v1/conversations/{cid}/events", page_size=3)
            one = client.json(f"/v1/conversations/{cid}/events/2")
            conv = client.json(f"/v1/conversations/{cid}")
            empty = client.json(f"/v1/conversations/{cid}/events", start_id=10**6)
        finally:
            client.close()
    assert set(body["_embedded"]) == {"events"}
    assert [e["id"] for e in body["_embedded"]["events"]] == ["1", "2", "3"]
    assert one["id"] == "2"
    assert isinstance(conv["sequence_number"], int)
    assert "_embedded" not in empty


def test_events_number_ids_by_default(api, sb):
    cid = sb.world.big_conversation_id
    e = api.json(f"/v1/conversations/{cid}/events/3")
    assert e["id"] == 3
    assert isinstance(e["id"], int)


def test_hostile_world(api, sb):
    world = sb.world
    conv = api.json(f"/v1/conversations/{world.hostile_conversation_id}")
    assert conv["name"] == "<script>alert(1)</script>"
    assert conv["image_url"].lower().startswith("javascript:")
    assert hostile.PAYLOADS[1] in conv["properties"]["custom_data"]
    events = walk(api, f"/v1/conversations/{world.hostile_conversation_id}/events", None)
    texts = {e["body"].get("text") for e in events if e["type"] == "message"}
    for payload in hostile.PAYLOADS:
        assert payload in texts
    assert any("\u202e" in (t or "") for t in texts)
    assert any(len(t or "") >= 500 for t in texts)
    images = [e["body"]["image"]["url"] for e in events if e["body"].get("message_type") == "image"]
    assert images
    assert images[0] in hostile.HOSTILE_URLS
    assert any(e["type"].startswith("custom:") and "<" in e["type"] for e in events)
    user = api.json(f"/v1/users/{world.hostile_user_id}")
    assert user["name"] == hostile.PAYLOADS[0]
    assert user["display_name"] == hostile.PAYLOADS[1]
    assert user["image_url"] == hostile.HOSTILE_URLS[0]


def test_date_filters(api, sb):
    convs = sb.world.conversations()
    middle = convs[len(convs) // 2]
    iso = api.json(f"/v1/conversations/{middle.id}")["timestamp"]["created"]
    after = walk(api, "/v1/conversations", "conversations", date_start=iso, page_size=100)
    assert after[0]["id"] == middle.id
    assert len(after) == len(convs) - len(convs) // 2
    before = walk(api, "/v1/conversations", "conversations", date_end=iso, page_size=100)
    assert before[-1]["id"] == middle.id
    space_form = api.json("/v1/conversations", date_start="2000-01-01 10:00:00")
    assert "date_start=2000-01-01%2010%3A00%3A00" in space_form["_links"]["self"]["href"]
    future = api.json("/v1/conversations", date_start="2999-01-01T00:00:00Z")
    assert "_embedded" not in future
    assert "next" not in future["_links"]
