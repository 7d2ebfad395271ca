"""The Conversation API client against `responses`: JWTs, paging, errors, quirks, cache."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests
import responses

from conversations import client as c
from conversations.schema import Event

from .conftest import API, APPLICATION_ID, fixture, make_client

CON = "CON-1b7f3c2e-5a8d-4e21-9c0f-7d6e5b4a3c21"
MEM = "MEM-0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
USR = "USR-9f8e7d6c-5b4a-4392-8170-6e5d4c3b2a19"


def query(call) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url).query)


# --- JWT


@responses.activate
def test_every_request_carries_a_valid_rs256_jwt_with_the_required_claims(api, key_pair):
    responses.get(f"{API}/v1/conversations/{CON}", json=fixture("conversation.json"))
    api.get_conversation(CON)
    header = responses.calls[0].request.headers["Authorization"]
    assert header.startswith("Bearer ")
    token = header.removeprefix("Bearer ")
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    claims = jwt.decode(token, key_pair[1], algorithms=["RS256"])
    assert claims["application_id"] == APPLICATION_ID
    assert {"iat", "jti", "exp"} <= claims.keys()
    assert claims["exp"] - claims["iat"] == 900
    assert "sub" not in claims and "acl" not in claims  # an application JWT reads everything


@responses.activate
def test_one_token_is_reused_until_shortly_before_it_expires(api):
    responses.get(f"{API}/v1/conversations/{CON}", json=fixture("conversation.json"))
    responses.get(f"{API}/v1/users/{USR}", json=fixture("user.json"))
    api.get_conversation(CON)
    api.get_user(USR)
    tokens = {call.request.headers["Authorization"] for call in responses.calls}
    assert len(tokens) == 1
    assert api.signer.signed_count == 1


def test_the_signer_re_signs_near_expiry_and_not_before(key_pair):
    signer = c.TokenSigner(APPLICATION_ID, key_pair[0], ttl_seconds=900)
    first = signer.token(now=1_000_000)
    assert signer.token(now=1_000_000 + 800) == first  # more than a minute left
    second = signer.token(now=1_000_000 + 850)  # inside the refresh margin
    assert second != first
    assert signer.signed_count == 2
    claims = jwt.decode(second, options={"verify_signature": False})
    assert claims["iat"] == 1_000_850
    assert jwt.decode(first, options={"verify_signature": False})["jti"] != claims["jti"]


def test_the_signer_refuses_lifetimes_outside_the_api_limits(key_pair):
    with pytest.raises(ValueError):
        c.TokenSigner(APPLICATION_ID, key_pair[0], ttl_seconds=10)
    with pytest.raises(ValueError):
        c.TokenSigner(APPLICATION_ID, key_pair[0], ttl_seconds=90000)


def test_key_material_never_shows_in_reprs(key_pair):
    client = make_client(key_pair[0])
    assert "PRIVATE" not in repr(client.config) and "PRIVATE" not in repr(client.signer)


# --- endpoints


@responses.activate
def test_list_conversations_sends_filters_and_reads_the_page(api):
    responses.get(f"{API}/v1/conversations", json=fixture("conversations_page.json"))
    page = api.list_conversations(
        page_size=2,
        order="desc",
        date_start="2026-11-01T00:00:00Z",
        date_end="2026-11-30T00:00:00Z",
    )
    call = responses.calls[0]
    assert urlsplit(call.request.url).path == "/v1/conversations"
    assert query(call) == {
        "page_size": ["2"],
        "order": ["desc"],
        "date_start": ["2026-11-01T00:00:00Z"],
        "date_end": ["2026-11-30T00:00:00Z"],
    }
    assert [conv.id for conv in page.items] == [
        "CON-1b7f3c2e-5a8d-4e21-9c0f-7d6e5b4a3c21",
        "CON-2c8a4d3f-6b9e-4f32-8d1a-8e7f6c5b4d32",
    ]
    assert page.items[0].state == ""  # the list does not carry it
    assert page.items[1].destroyed is not None and page.items[1].is_over
    # The next link is on a regional host: only its cursor is kept, decoded.
    assert page.next_cursor == "Qm9va21hcmsxMjM="
    assert page.prev_cursor is None


@responses.activate
def test_a_cursor_is_sent_to_the_configured_host_not_the_one_in_the_link(api):
    responses.get(f"{API}/v1/conversations", json=fixture("conversations_page.json"))
    api.list_conversations(cursor="Qm9va21hcmsxMjM=")
    call = responses.calls[0]
    assert call.request.url.startswith(f"{API}/v1/conversations?")
    assert query(call)["cursor"] == ["Qm9va21hcmsxMjM="]
    assert "Qm9va21hcmsxMjM%3D" in call.request.url  # URL-encoded on the wire


@responses.activate
def test_get_conversation_reads_every_header_field(api):
    responses.get(f"{API}/v1/conversations/{CON}", json=fixture("conversation.json"))
    conv = api.get_conversation(CON)
    assert conv.state == "ACTIVE" and not conv.is_over
    assert conv.sequence_number == 12
    assert conv.ttl == 3600 and conv.type == "voice" and conv.custom_sort_key == "b-17"
    assert conv.custom_data == {"ticket": "T-4411", "priority": 2}
    assert conv.created.isoformat() == "2026-11-20T09:15:02.120000+00:00"


@responses.activate
def test_members_list_and_member(api):
    responses.get(f"{API}/v1/conversations/{CON}/members", json=fixture("members_page.json"))
    responses.get(f"{API}/v1/conversations/{CON}/members/{MEM}", json=fixture("member.json"))
    page = api.list_members(CON)
    assert query(responses.calls[0]) == {"page_size": ["100"], "order": ["asc"]}
    assert page.items[0].user.display_name == "Ana (agent)"
    assert page.items[0].label == "Ana (agent)"
    member = api.get_member(CON, MEM)
    assert member.channel.type == "phone"
    assert member.channel.from_.address == "447700900001"
    assert member.channel.to.address == "447700900002"
    assert member.channel.leg_ids == ["a1b2c3d4e5f60718293a4b5c6d7e8f90"]
    assert member.channel.settings == {"ring_timeout": 60000}
    assert member.audio_muted is True and member.audio_earmuffed is False
    assert member.invited_by.startswith("MEM-") and member.knocking_id.startswith("knocker:")
    assert member.initiators[0].action == "joined" and member.initiators[0].is_system is False


def test_member_initiator_accepts_the_v03_spelling():
    from conversations.schema import parse_member

    member = parse_member({"id": MEM, "initiator": {"invited": {"isSystem": True}}})
    assert member.initiators[0].is_system is True


@responses.activate
def test_events_send_every_filter(api):
    responses.get(f"{API}/v1/conversations/{CON}/events", json=fixture("events_array.json"))
    api.list_events(
        CON,
        page_size=10,
        order="asc",
        start_id=5,
        end_id=9,
        event_type="audio:dtmf",
        exclude_deleted_events=True,
        cursor="ZXZ0Mg==",
    )
    assert query(responses.calls[0]) == {
        "page_size": ["10"],
        "order": ["asc"],
        "cursor": ["ZXZ0Mg=="],
        "start_id": ["5"],
        "end_id": ["9"],
        "event_type": ["audio:dtmf"],
        "exclude_deleted_events": ["true"],
    }


@responses.activate
@pytest.mark.parametrize("shape", ["array", "object"])
def test_events_embedded_comes_as_array_or_object(api, shape):
    payload = fixture("events_array.json")
    if shape == "object":
        payload["_embedded"] = {"events": payload["_embedded"]}
    responses.get(f"{API}/v1/conversations/{CON}/events", json=payload)
    page = api.list_events(CON)
    assert [e.id for e in page.items] == [1, 2]  # "2" came as a string
    assert all(isinstance(e, Event) for e in page.items)
    assert page.items[1].body["text"] == "hello!"
    assert page.items[1].from_user.name == "agent_ana"
    assert page.next_cursor == "ZXZ0Mg=="


@responses.activate
def test_an_empty_list_may_omit_embedded(api):
    responses.get(
        f"{API}/v1/conversations",
        json={"page_size": 10, "_links": {"self": {"href": f"{API}/v1/conversations"}}},
    )
    page = api.list_conversations()
    assert page.items == [] and page.next_cursor is None


@responses.activate
@pytest.mark.parametrize("body", [{"unexpected": True}, [], "ok", None, {"_embedded": "x"}])
def test_a_list_that_is_not_a_list_is_a_bad_response(api, body):
    responses.get(f"{API}/v1/conversations", json=body)
    with pytest.raises(c.BadResponse):
        api.list_conversations()


@responses.activate
def test_users_list_by_exact_name_and_user(api):
    responses.get(
        f"{API}/v1/users",
        json={"_embedded": {"users": [{"id": USR, "name": "agent_ana"}]}, "_links": {}},
    )
    responses.get(f"{API}/v1/users/{USR}", json=fixture("user.json"))
    page = api.list_users(name="agent ana")
    assert query(responses.calls[0])["name"] == ["agent ana"]
    assert page.items[0].name == "agent_ana"
    user = api.get_user(USR)
    assert user.custom_data == {"team": "billing"}
    by_type = {ch.type: ch for ch in user.channels}
    assert by_type["pstn"].address == "447700900001"
    assert by_type["sip"].address == "sip:ana@example.com"
    assert "password" not in by_type["sip"].details  # credentials are never kept for display


@responses.activate
def test_user_conversations_and_sessions(api):
    conversations = fixture("conversations_page.json")
    item = fixture("conversation.json") | {"_embedded": {"id": MEM, "state": "LEFT"}}
    conversations["_embedded"]["conversations"] = [item]
    responses.get(f"{API}/v1/users/{USR}/conversations", json=conversations)
    responses.get(f"{API}/v1/users/{USR}/sessions", json=fixture("user_sessions.json"))
    page = api.list_user_conversations(USR, state="LEFT")
    assert query(responses.calls[0])["state"] == ["LEFT"]
    assert page.items[0].member_id == MEM and page.items[0].member_state == "LEFT"
    sessions = api.list_user_sessions(USR)
    assert sessions.items[0].id.startswith("SES-") and sessions.items[0].ttl == 900


@responses.activate
def test_no_request_path_ends_with_a_slash(api):
    responses.get(f"{API}/v1/conversations/{CON}", json=fixture("conversation.json"))
    responses.get(f"{API}/v1/conversations/{CON}/members", json=fixture("members_page.json"))
    responses.get(f"{API}/v1/users/{USR}/sessions", json=fixture("user_sessions.json"))
    api.get_conversation(CON)
    api.list_members(CON)
    api.list_user_sessions(USR)
    assert all(not urlsplit(call.request.url).path.endswith("/") for call in responses.calls)


@pytest.mark.parametrize(
    "call",
    [
        lambda api: api.get_conversation("CON-../../v1/users"),
        lambda api: api.get_conversation("MEM-0a1b2c3d"),
        lambda api: api.get_member(CON, "MEM-x/../../y"),
        lambda api: api.get_user("USR-a b"),
        lambda api: api.list_events(CON, start_id=-1),
        lambda api: api.list_conversations(page_size=101),
        lambda api: api.list_conversations(order="sideways"),
        lambda api: api.list_user_conversations(USR, state="GONE"),
    ],
)
@responses.activate
def test_invalid_ids_and_parameters_never_reach_the_api(api, call):
    with pytest.raises(ValueError):
        call(api)
    assert len(responses.calls) == 0


# --- errors and retries


@responses.activate
def test_404_without_code_is_not_found(api):
    responses.get(f"{API}/v1/users/{USR}", json=fixture("user_not_found.json"), status=404)
    with pytest.raises(c.NotFound) as caught:
        api.get_user(USR)
    assert caught.value.code == "user:error:not-found"  # from the type's fragment
    assert len(responses.calls) == 1


@responses.activate
@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures_are_not_retried(api, status):
    responses.get(
        f"{API}/v1/conversations",
        json={"title": "Unauthorized", "code": "system:error:invalid-token"},
        status=status,
    )
    with pytest.raises(c.AuthenticationFailed):
        api.list_conversations()
    assert len(responses.calls) == 1


@responses.activate
def test_429_is_retried_after_retry_after(api):
    responses.get(f"{API}/v1/conversations", status=429, headers={"Retry-After": "2"}, json={})
    responses.get(f"{API}/v1/conversations", json=fixture("conversations_page.json"))
    page = api.list_conversations()
    assert len(page.items) == 2
    assert api.slept == [2.0]
    assert len(responses.calls) == 2


@responses.activate
def test_persistent_429_raises_rate_limited_with_retry_after(api):
    responses.get(f"{API}/v1/conversations", status=429, headers={"Retry-After": "3"}, json={})
    with pytest.raises(c.RateLimited) as caught:
        api.list_conversations()
    assert caught.value.retry_after == 3.0
    assert len(responses.calls) == 3  # the first try and two retries
    assert api.slept == [3.0, 3.0]


@responses.activate
def test_a_retry_after_beyond_the_budget_is_not_waited_for(key_pair, monkeypatch):
    client = make_client(key_pair[0], total_budget=5.0)
    monkeypatch.setattr(client, "sleep", lambda s: pytest.fail("must not wait"))
    responses.get(f"{API}/v1/conversations", status=429, headers={"Retry-After": "60"}, json={})
    with pytest.raises(c.RateLimited):
        client.list_conversations()
    assert len(responses.calls) == 1


@responses.activate
@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retried_with_backoff_then_unavailable(api, status):
    responses.get(f"{API}/v1/conversations", status=status, body="<html>Bad gateway</html>")
    with pytest.raises(c.Unavailable) as caught:
        api.list_conversations()
    assert caught.value.status == status
    assert len(responses.calls) == 3
    assert len(api.slept) == 2 and api.slept[1] > api.slept[0]  # exponential


@responses.activate
def test_a_server_error_then_success_recovers(api):
    responses.get(
        f"{API}/v1/conversations", status=500, json={"code": "system:error:internal-error"}
    )
    responses.get(f"{API}/v1/conversations", json=fixture("conversations_page.json"))
    assert len(api.list_conversations().items) == 2


@responses.activate
@pytest.mark.parametrize(
    "error", [requests.ConnectionError("refused"), requests.ReadTimeout("slow")]
)
def test_connection_errors_and_timeouts_are_unavailable(api, error):
    responses.get(f"{API}/v1/conversations", body=error)
    with pytest.raises(c.Unavailable):
        api.list_conversations()
    assert len(responses.calls) == 3


@responses.activate
def test_every_request_has_explicit_timeouts(api, monkeypatch):
    seen = []
    original = api.session.get

    def spy(*args, **kwargs):
        seen.append(kwargs.get("timeout"))
        return original(*args, **kwargs)

    monkeypatch.setattr(api.session, "get", spy)
    responses.get(f"{API}/v1/conversations", json=fixture("conversations_page.json"))
    api.list_conversations()
    connect, read = seen[0]
    assert 0 < connect <= 3.05 and 0 < read <= 10


@responses.activate
def test_malformed_json_is_a_bad_response(api):
    responses.get(
        f"{API}/v1/conversations", body='{"_embedded": [', content_type="application/json"
    )
    with pytest.raises(c.BadResponse):
        api.list_conversations()


@responses.activate
@pytest.mark.parametrize(
    "payload",
    [[], {"_embedded": "nope"}, {"_embedded": {"conversations": [{"name": "no id"}]}}, "text"],
)
def test_a_wrong_shape_is_a_bad_response(api, payload):
    responses.get(f"{API}/v1/conversations", json=payload)
    with pytest.raises(c.BadResponse):
        api.list_conversations()


@responses.activate
def test_a_400_is_a_bad_request_with_its_detail(api):
    responses.get(
        f"{API}/v1/conversations",
        status=400,
        json={
            "code": "http:error:validation-fail",
            "detail": '"date_start" must be a valid ISO 8601 date',
        },
    )
    with pytest.raises(c.BadRequest) as caught:
        api.list_conversations(date_start="x")
    assert "ISO 8601" in caught.value.detail
    assert len(responses.calls) == 1


# --- cache, coalescing, stale data


@responses.activate
def test_a_repeated_read_is_served_from_the_cache(api):
    responses.get(f"{API}/v1/conversations/{CON}", json=fixture("conversation.json"))
    first = api.get_conversation(CON)
    second = api.get_conversation(CON)
    assert first == second
    assert len(responses.calls) == 1


@responses.activate
def test_concurrent_reads_of_one_key_make_one_upstream_call(api):
    def slow(request):
        time.sleep(0.2)
        return 200, {}, json.dumps(fixture("conversation.json"))

    responses.add_callback(responses.GET, f"{API}/v1/conversations/{CON}", callback=slow)
    api.sleep = time.sleep  # real waiting for this one
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(api.get_conversation(CON)))
        for _ in range(10)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 10 and len({r.id for r in results}) == 1
    assert len(responses.calls) == 1


@responses.activate
def test_on_failure_the_last_good_copy_comes_with_the_error(key_pair):
    client = make_client(key_pair[0], cache_seconds=0, max_retries=0)  # no fresh copy kept
    responses.get(f"{API}/v1/conversations/{CON}", json=fixture("conversation.json"))
    good = client.get_conversation(CON)
    responses.replace(responses.GET, f"{API}/v1/conversations/{CON}", status=500, json={})
    with pytest.raises(c.Unavailable) as caught:
        client.get_conversation(CON)
    assert caught.value.stale == good
    assert caught.value.stale_at is not None


@responses.activate
def test_a_fractional_cache_lifetime_still_caches(key_pair):
    # Django's Redis cache truncates float timeouts, and 0 means "do not store": round up.
    client = make_client(key_pair[0], cache_seconds=0.4, max_retries=0)
    responses.get(f"{API}/v1/conversations/{CON}", json=fixture("conversation.json"))
    client.get_conversation(CON)
    client.get_conversation(CON)
    assert len(responses.calls) == 1


@responses.activate
def test_a_failure_is_shared_briefly_instead_of_asked_again(key_pair):
    client = make_client(key_pair[0], max_retries=0)
    responses.get(f"{API}/v1/conversations/{CON}", status=500, json={})
    for _ in range(5):
        with pytest.raises(c.Unavailable):
            client.get_conversation(CON)
    assert len(responses.calls) == 1


@responses.activate
def test_a_rate_limit_pauses_every_read_until_retry_after(key_pair):
    client = make_client(key_pair[0], max_retries=0)
    responses.get(
        f"{API}/v1/conversations/{CON}", status=429, headers={"Retry-After": "30"}, json={}
    )
    responses.get(f"{API}/v1/users/{USR}", json=fixture("user.json"))
    with pytest.raises(c.RateLimited):
        client.get_conversation(CON)
    with pytest.raises(c.RateLimited) as caught:
        client.get_user(USR)  # another endpoint: still waits out the limit
    assert 0 < caught.value.retry_after <= 30
    assert len(responses.calls) == 1


@responses.activate
def test_concurrently_runs_reads_at_once_and_keeps_errors_apart(api):
    responses.get(f"{API}/v1/conversations/{CON}", json=fixture("conversation.json"))
    responses.get(f"{API}/v1/users/{USR}", status=404, json={})
    outcomes = c.concurrently(
        conversation=lambda: api.get_conversation(CON), user=lambda: api.get_user(USR)
    )
    assert outcomes["conversation"].value.id == CON and outcomes["conversation"].error is None
    assert isinstance(outcomes["user"].error, c.NotFound) and outcomes["user"].value is None


@responses.activate
def test_every_upstream_call_is_logged_on_one_line_without_secrets(api, key_pair, caplog):
    caplog.set_level(logging.DEBUG, logger="conversations.upstream")
    responses.get(f"{API}/v1/conversations/{CON}", status=503, json={})
    responses.get(f"{API}/v1/conversations/{CON}", json=fixture("conversation.json"))
    api.get_conversation(CON)
    api.get_conversation(CON)  # from the cache
    lines = [r.getMessage() for r in caplog.records if r.name == "conversations.upstream"]
    path = f"/v1/conversations/{CON}"
    assert re.fullmatch(
        rf"upstream GET {path} cache=miss status=503 duration_ms=\d+ attempt=0 retrying", lines[0]
    )
    assert re.fullmatch(
        rf"upstream GET {path} cache=miss status=200 duration_ms=\d+ attempt=1", lines[1]
    )
    assert lines[2] == f"upstream GET {path} cache=hit"
    token = responses.calls[0].request.headers["Authorization"].split()[1]
    assert token not in caplog.text and "PRIVATE" not in caplog.text


@responses.activate
def test_a_503_with_retry_after_is_retried_after_that_wait(api):
    responses.get(
        f"{API}/v1/conversations/{CON}", status=503, headers={"Retry-After": "3"}, json={}
    )
    responses.get(f"{API}/v1/conversations/{CON}", json=fixture("conversation.json"))
    api.get_conversation(CON)
    assert api.slept == [3.0]


def test_a_key_that_is_not_rsa_cannot_sign_and_says_so():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    client = make_client(pem)
    with pytest.raises(c.NotConfigured):
        client.get_conversation(CON)


@responses.activate
def test_no_answer_at_all_makes_every_read_fail_fast_for_about_three_seconds(key_pair):
    client = make_client(key_pair[0], max_retries=0)
    responses.get(f"{API}/v1/conversations/{CON}", body=requests.ConnectionError("refused"))
    responses.get(f"{API}/v1/users/{USR}", json=fixture("user.json"))
    with pytest.raises(c.Unavailable):
        client.get_conversation(CON)
    with pytest.raises(c.Unavailable) as caught:  # another resource: no upstream call, no wait
        client.get_user(USR)
    assert len(responses.calls) == 1
    assert 2.5 < caught.value.retry_after <= 3  # the README's promise: 3 s
    now = time.time()
    client.reads.clock = lambda: now + 2.8
    with pytest.raises(c.Unavailable):  # still within the window
        client.get_user(USR)
    client.reads.clock = lambda: now + 3.1
    assert client.get_user(USR).id == USR  # the window is over: read again
    assert len(responses.calls) == 2


@responses.activate
def test_an_http_error_does_not_stop_other_reads(key_pair):
    client = make_client(key_pair[0], max_retries=0)
    responses.get(f"{API}/v1/conversations/{CON}", status=500, json={})
    responses.get(f"{API}/v1/users/{USR}", json=fixture("user.json"))
    with pytest.raises(c.Unavailable):
        client.get_conversation(CON)
    assert client.get_user(USR).id == USR
