"""Cursor paging: complete walks with no duplicates, prev links, validation, live inserts."""

from __future__ import annotations

import pytest

from sandbox.paging import Cursor, CursorError, decode_cursor, encode_cursor, paginate

from .conftest import SMALL_WORLD, walk


@pytest.mark.parametrize("order", ["asc", "desc", "DESC"])
@pytest.mark.parametrize("page_size", [1, 7, 10, 100])
def test_walk_sees_every_conversation_exactly_once(api, sb, order, page_size):
    items = walk(api, "/v1/conversations", "conversations", order=order, page_size=page_size)
    ids = [c["id"] for c in items]
    assert len(ids) == len(set(ids)) == SMALL_WORLD["conversations"]
    expected = [c.id for c in sb.world.conversations()]
    assert ids == (expected if order == "asc" else expected[::-1])


def test_default_page_size_and_order(api, sb):
    body = api.json("/v1/conversations")
    assert body["page_size"] == 10
    ids = [c["id"] for c in body["_embedded"]["conversations"]]
    assert ids == [c.id for c in sb.world.conversations()[:10]]
    assert body["_links"]["self"]["href"].endswith("/v1/conversations?order=asc&page_size=10")


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_prev_links_walk_back(api, order):
    pages = []
    url = "/v1/conversations"
    body = api.json(url, order=order, page_size=4)
    pages.append([c["id"] for c in body["_embedded"]["conversations"]])
    while "next" in body["_links"]:
        body = api.json(body["_links"]["next"]["href"])
        pages.append([c["id"] for c in body["_embedded"]["conversations"]])
    back = []
    while "prev" in body["_links"]:
        body = api.json(body["_links"]["prev"]["href"])
        back.append([c["id"] for c in body["_embedded"]["conversations"]])
    assert back == pages[-2::-1]


def test_self_link_repeats_the_cursor(api):
    first = api.json("/v1/conversations", page_size=3)
    second = api.json(first["_links"]["next"]["href"])
    assert second["_links"]["self"]["href"] == first["_links"]["next"]["href"]
    again = api.json(second["_links"]["self"]["href"])
    assert again["_embedded"] == second["_embedded"]


def test_members_and_events_walks(api, sb):
    cid = sb.world.big_conversation_id
    for order in ("asc", "desc"):
        members = walk(api, f"/v1/conversations/{cid}/members", "members", order=order, page_size=4)
        assert len({m["id"] for m in members}) == len(members) == 6
        events = walk(api, f"/v1/conversations/{cid}/events", None, order=order, page_size=100)
        ids = [e["id"] for e in events]
        expected = list(range(1, SMALL_WORLD["big_conversation_events"] + 1))
        assert ids == (expected if order == "asc" else expected[::-1])


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("0", '"page_size" must be larger than or equal to 1'),
        ("-3", '"page_size" must be larger than or equal to 1'),
        ("101", '"page_size" must be less than or equal to 100'),
        ("abc", '"page_size" must be a number'),
        ("", '"page_size" must be a number'),
        ("1.5", '"page_size" must be a number'),
    ],
)
def test_page_size_validation(api, value, reason):
    for path in ("/v1/conversations", "/v1/users"):
        r = api.get(path, page_size=value)
        assert r.status_code == 400
        body = r.json()
        assert body["code"] == "http:error:validation-fail"
        assert body["invalid_parameters"] == [{"name": "page_size", "reason": reason}]
        assert body["detail"] == reason


def test_page_size_bounds_are_accepted(api):
    assert api.json("/v1/conversations", page_size=1)["page_size"] == 1
    assert api.json("/v1/conversations", page_size=100)["page_size"] == 100


def test_every_invalid_parameter_is_listed(api, sb):
    r = api.get(
        f"/v1/conversations/{sb.world.big_conversation_id}/events",
        page_size=0,
        order="sideways",
        start_id="x",
        exclude_deleted_events="maybe",
        cursor="!!!",
    )
    assert r.status_code == 400
    names = [p["name"] for p in r.json()["invalid_parameters"]]
    assert sorted(names) == ["cursor", "exclude_deleted_events", "order", "page_size", "start_id"]


def test_cursor_of_another_resource_is_rejected(api):
    users_next = api.json("/v1/users", page_size=2)["_links"]["next"]["href"]
    cursor = users_next.split("cursor=")[1]
    r = api.get(f"/v1/conversations?cursor={cursor}")
    assert r.status_code == 400
    assert r.json()["invalid_parameters"][0]["name"] == "cursor"


def test_empty_list_omits_embedded(api):
    body = api.json("/v1/users", name="nobody-has-this-name")
    assert "_embedded" not in body
    assert body["page_size"] == 10
    assert set(body["_links"]) == {"first", "self"}


def test_walks_are_stable_while_conversations_are_created(fresh_api, fresh_sb):
    """Keyset cursors: a new call started mid-walk is never repeated nor shifts the walk."""
    seen: list[str] = []
    body = fresh_api.json("/v1/conversations", order="desc", page_size=4)
    seen += [c["id"] for c in body["_embedded"]["conversations"]]
    new = fresh_sb.create_conversation(members=2)
    while "next" in body["_links"]:
        body = fresh_api.json(body["_links"]["next"]["href"])
        seen += [c["id"] for c in body["_embedded"]["conversations"]]
    assert new["id"] not in seen
    assert len(seen) == len(set(seen)) == SMALL_WORLD["conversations"]

    asc = fresh_api.json("/v1/conversations", order="asc", page_size=5)
    later = fresh_sb.create_conversation(members=1)
    seen = [c["id"] for c in asc["_embedded"]["conversations"]]
    while "next" in asc["_links"]:
        asc = fresh_api.json(asc["_links"]["next"]["href"])
        seen += [c["id"] for c in asc["_embedded"]["conversations"]]
    assert seen[-2:] == [new["id"], later["id"]]
    assert len(seen) == len(set(seen))


# ---------------------------------------------------------------------- paging.py unit tests


def key(x: int) -> tuple[int]:
    return (x,)


def test_paginate_both_directions_unit():
    items = list(range(10))
    page = paginate(items, key, kind="t", order="asc", page_size=4, cursor=None)
    assert page.items == [0, 1, 2, 3]
    assert page.prev is None
    page = paginate(items, key, kind="t", order="asc", page_size=4, cursor=page.next)
    assert page.items == [4, 5, 6, 7]
    page = paginate(items, key, kind="t", order="asc", page_size=4, cursor=page.next)
    assert page.items == [8, 9]
    assert page.next is None
    page = paginate(items, key, kind="t", order="asc", page_size=4, cursor=page.prev)
    assert page.items == [4, 5, 6, 7]

    page = paginate(items, key, kind="t", order="desc", page_size=4, cursor=None)
    assert page.items == [9, 8, 7, 6]
    page = paginate(items, key, kind="t", order="desc", page_size=4, cursor=page.next)
    assert page.items == [5, 4, 3, 2]
    page = paginate(items, key, kind="t", order="desc", page_size=4, cursor=page.prev)
    assert page.items == [9, 8, 7, 6]
    assert page.prev is None


def test_paginate_empty_unit():
    page = paginate([], key, kind="t", order="asc", page_size=4, cursor=None)
    assert (page.items, page.next, page.prev) == ([], None, None)


def test_cursor_round_trip_and_rejections():
    cursor = Cursor("conversations", "n", (123, "CON-x"))
    text = encode_cursor(cursor)
    assert decode_cursor(text, "conversations", (int, str)) == cursor
    assert decode_cursor(text.rstrip("="), "conversations", (int, str)) == cursor
    for bad, kind, types in [
        (text, "users", (int,)),
        (text, "conversations", (int,)),
        (text, "conversations", (str, str)),
        ("bm90IGpzb24", "conversations", (int, str)),
        ("$$$", "conversations", (int, str)),
        (encode_cursor(Cursor("users", "n", (True,))), "users", (int,)),
    ]:
        with pytest.raises(CursorError):
            decode_cursor(bad, kind, types)
