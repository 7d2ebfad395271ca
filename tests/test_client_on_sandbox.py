"""The client reads every sandbox endpoint, in each of the API's shapes, as typed records."""

from __future__ import annotations

import jwt
import pytest

from conversations import client as c
from sandbox.testing import running_sandbox
from tests.conftest import sandbox_client


def walk(list_page) -> list:
    items, cursor, pages = [], None, 0
    while True:
        page = list_page(cursor)
        items.extend(page.items)
        pages += 1
        if not page.next_cursor:
            return items
        cursor = page.next_cursor
        assert pages < 1000, "paging must end"


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_paging_reaches_every_conversation_once(sandbox, order):
    api = sandbox_client(sandbox, cache_seconds=0)
    seen = walk(lambda cursor: api.list_conversations(page_size=7, order=order, cursor=cursor))
    ids = [conversation.id for conversation in seen]
    assert len(ids) == len(set(ids))
    assert set(ids) == {conversation.id for conversation in sandbox.world.conversations()}
    created = [conversation.created for conversation in seen]
    assert created == sorted(created, reverse=order == "desc")


def test_every_read_endpoint(sandbox):
    api = sandbox_client(sandbox, cache_seconds=0)
    world = sandbox.world
    model = next(conv for conv in world.conversations() if conv.members and conv.events)
    conversation = api.get_conversation(model.id)
    assert conversation.id == model.id and conversation.created is not None

    members = walk(lambda cursor: api.list_members(model.id, page_size=2, cursor=cursor))
    assert [m.id for m in members] == [m.id for m in model.members]
    member = api.get_member(model.id, members[0].id)
    assert member.id == members[0].id and member.channel is not None

    events = walk(lambda cursor: api.list_events(model.id, page_size=5, order="asc", cursor=cursor))
    assert [e.id for e in events] == [e.id for e in model.events]  # deleted ones included
    kept = api.list_events(model.id, page_size=100, exclude_deleted_events=True).items
    assert {e.id for e in kept} == {e.id for e in model.events if not e.deleted}
    newest = model.events[-1].id
    assert [e.id for e in api.list_events(model.id, start_id=newest).items] == [newest]
    assert api.list_events(model.id, start_id=newest + 1).items == []
    event = api.get_event(model.id, events[0].id)
    assert event.id == events[0].id and event.type == events[0].type
    typed = api.list_events(model.id, event_type=events[0].type, page_size=100).items
    assert typed and {e.type for e in typed} == {events[0].type}

    user_id = model.members[0].user_id
    user = api.get_user(user_id)
    assert user.id == user_id
    assert [u.id for u in api.list_users(name=user.name).items] == [user_id]
    assert walk(lambda cursor: api.list_users(page_size=20, cursor=cursor))
    assert model.id in {
        item.id
        for item in walk(
            lambda cursor: api.list_user_conversations(user_id, page_size=5, cursor=cursor)
        )
    }
    api.list_user_sessions(user_id)  # parses, whether or not the user has sessions


def test_unknown_ids_are_not_found(sandbox):
    api = sandbox_client(sandbox, cache_seconds=0)
    missing = "CON-00000000-0000-4000-8000-000000000000"
    with pytest.raises(c.NotFound):
        api.get_conversation(missing)
    with pytest.raises(c.NotFound):  # the user 404 has no "code": still a NotFound
        api.get_user("USR-00000000-0000-4000-8000-000000000000")


@pytest.mark.parametrize(
    ("events_shape", "event_id_format"), [("object", "string"), ("array", "number")]
)
def test_both_event_shapes_and_id_formats(events_shape, event_id_format):
    with running_sandbox(
        conversations=5,
        big_conversation_events=50,
        events_shape=events_shape,
        event_id_format=event_id_format,
        links_host="api-us-3.vonage.example",
    ) as sb:
        api = sandbox_client(sb, cache_seconds=0)
        model = next(conv for conv in sb.world.conversations() if len(conv.events) > 3)
        page = api.list_events(model.id, page_size=2, order="asc")
        assert [e.id for e in page.items] == [e.id for e in model.events[:2]]
        assert all(isinstance(e.id, int) for e in page.items)
        assert page.next_cursor, "a cursor from a link on another (regional) host"
        second = api.list_events(model.id, page_size=2, order="asc", cursor=page.next_cursor)
        assert second.items[0].id == model.events[2].id


def test_the_sandbox_sees_valid_jwts_and_no_trailing_slashes(sandbox):
    api = sandbox_client(sandbox, cache_seconds=0)
    api.list_conversations()
    token = api.signer.token()
    claims = jwt.decode(
        token, sandbox.public_key_pem, algorithms=["RS256"], options={"require": ["exp", "iat"]}
    )
    assert claims["application_id"] == sandbox.application_id
    assert claims["jti"] and claims["exp"] - claims["iat"] == 900
    assert not any(path.rstrip().endswith("/") for path in sandbox.stats()["by_path"])


def test_a_wrong_key_is_authentication_failed(sandbox, key_pair):
    api = sandbox_client(sandbox, cache_seconds=0, private_key_pem=key_pair[0])
    with pytest.raises(c.AuthenticationFailed):
        api.list_conversations()
