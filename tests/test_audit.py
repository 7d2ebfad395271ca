"""The audit log (issue 12): append-only entries, what is recorded (page views, searches, exports,
logins) and what is not (polls and pushes of a page already recorded), the /audit/ page (access,
filters, paging, CSV), and retention.

Pages are read from the event store, filled through real ingestion (tests/store_helpers.py), so no
upstream API is involved; the user page reads a `responses` mock.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from html.parser import HTMLParser

import pytest
import responses
from django.contrib.auth.models import Permission
from django.core.signals import request_finished
from django.db import DatabaseError, IntegrityError, close_old_connections, transaction
from django.http import HttpResponse
from django.test import Client
from django.urls import get_resolver, reverse
from django.utils import timezone

from conversations import audit, dom, tasks
from conversations.audit import retention
from conversations.audit.middleware import AUDITED, SEEN_KEY, UNAUDITED, remember
from conversations.audit.models import Action, AppendOnly, AuditEntry
from conversations.store import ingest
from conversations.store.models import StoredEvent
from tests.conftest import API, fixture, login_with_second_factor
from tests.store_helpers import api_conversation, app, event, forbid_upstream, membership, webhook
from tests.test_security import walk

CON = "CON-5a0c1e2d-3b4f-4a6b-8c7d-9e0f1a2b3c4d"
OTHER = "CON-6b1d2f3e-4c5a-4b7c-8d9e-0f1a2b3c4d5e"
ALICE = "MEM-11111111-1111-4111-8111-111111111111"
USR_A = "USR-aaaaaaaa-1111-4111-8111-111111111111"
USR = "USR-9f8e7d6c-5b4a-4392-8170-6e5d4c3b2a19"
HOSTILE = "<script>alert(1)</script>\"'&"

pytestmark = pytest.mark.django_db


def entries(action: str | None = None) -> list[AuditEntry]:
    rows = AuditEntry.objects.order_by("id")
    return list(rows.filter(action=action) if action else rows)


def views() -> list[AuditEntry]:
    return [e for e in entries() if e.action.startswith("view_")]


def fill(conversation_id: str = CON) -> None:
    """A live call from the store: Alice joined, then a few messages."""
    api_conversation(conversation_id, "support_call_7", "Support call")
    webhook(membership(conversation_id, 1, "joined", ALICE, USR_A, "alice", "phone"))
    bodies = [
        event(conversation_id, i, "message", ALICE, {"message_type": "text", "text": f"hi {i}"})
        for i in range(2, 6)
    ]
    ingest.store_events(app(), conversation_id, bodies, StoredEvent.API)


@pytest.fixture
def no_upstream(monkeypatch):
    forbid_upstream(monkeypatch)


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", password="root-password-1")


@pytest.fixture
def superuser_client(superuser):
    """A browser of its own (`client` is the one staff_client logs in)."""
    return login_with_second_factor(Client(), superuser)


def url(name: str, *args: str) -> str:
    return reverse(f"conversations:{name}", args=args)


# --- append-only


def make_entry(**fields) -> AuditEntry:
    return AuditEntry.objects.create(action=Action.SEARCH, username="someone", **fields)


def test_an_entry_cannot_be_changed_by_saving_it_again():
    entry = make_entry(details={"query": "first"})
    entry.details = {"query": "changed"}
    with pytest.raises(AppendOnly):
        entry.save()
    with pytest.raises(AppendOnly):
        entry.save(update_fields=["details"])
    assert AuditEntry.objects.get(pk=entry.pk).details == {"query": "first"}


def test_a_new_object_with_an_existing_id_is_an_insert_that_fails_not_an_update():
    entry = make_entry(details={"query": "first"})
    forged = AuditEntry(pk=entry.pk, action=Action.LOGIN, username="forged")
    with pytest.raises(IntegrityError), transaction.atomic():  # an INSERT: never an UPDATE
        forged.save()
    assert AuditEntry.objects.get(pk=entry.pk).username == "someone"


def test_entries_cannot_be_deleted_or_updated_through_the_app():
    entry = make_entry()
    with pytest.raises(AppendOnly):
        entry.delete()
    with pytest.raises(AppendOnly):
        AuditEntry.objects.filter(pk=entry.pk).delete()
    with pytest.raises(AppendOnly):
        AuditEntry.objects.all().update(username="changed")
    with pytest.raises(AppendOnly):
        AuditEntry.objects.update(username="changed")
    with pytest.raises(AppendOnly):
        AuditEntry.objects.bulk_update([entry], ["username"])
    with pytest.raises(AppendOnly):
        AuditEntry.objects.update_or_create(pk=entry.pk, defaults={"username": "changed"})
    assert AuditEntry.objects.get(pk=entry.pk).username == "someone"


def test_deleting_a_user_keeps_their_entries_with_their_name(django_user_model, rf):
    user = django_user_model.objects.create_user("leaver", password="x-pass-123", is_staff=True)
    request = rf.get("/")
    request.user = user
    audit.record(request, Action.VIEW_USER, USR)
    user.delete()
    (entry,) = entries(Action.VIEW_USER)
    assert entry.user_id is None
    assert entry.username == "leaver"


# --- record()


def test_record_writes_who_when_where_what(staff_user, rf, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7")
    request.user = staff_user
    before = timezone.now()
    audit.record(request, Action.VIEW_CONVERSATION, CON, path="/x/", status=200)
    (entry,) = entries(Action.VIEW_CONVERSATION)
    assert entry.user_id == staff_user.pk and entry.username == "staff"
    assert entry.address == "203.0.113.7", "the farthest trusted proxy's entry, not the client's"
    assert entry.object_id == CON
    assert entry.details == {"path": "/x/", "status": 200}
    assert before <= entry.at <= timezone.now()


def test_without_trusted_proxies_the_address_is_the_connection(staff_user, rf, settings):
    settings.TRUSTED_PROXY_COUNT = 0
    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6")
    request.user = staff_user
    audit.record(request, Action.SEARCH)
    assert entries(Action.SEARCH)[0].address == "10.0.0.2"


def test_an_unknown_action_is_a_programming_error(staff_user, rf):
    request = rf.get("/")
    request.user = staff_user
    with pytest.raises(ValueError, match="Unknown audit action"):
        audit.record(request, "viewed_something")


def test_auditing_off_writes_nothing(staff_user, rf, settings):
    settings.DASHBOARD_AUDIT = False
    request = rf.get("/")
    request.user = staff_user
    assert audit.record(request, Action.SEARCH, query="x") is None
    assert entries() == []


def test_hostile_details_are_stored_cleaned(staff_user, rf):
    request = rf.get("/")
    request.user = staff_user
    audit.record(
        request,
        Action.SEARCH,
        "id\x00with nul",
        query="nul\x00 and a lone \ud800 surrogate" + "x" * 5000,
        score=float("nan"),
        when=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        many=list(range(500)),
        deep={"a": {"b": {"c": {"d": {"e": "too deep"}}}}},
    )
    (entry,) = entries(Action.SEARCH)
    entry.refresh_from_db()  # what the database kept (PostgreSQL refuses NUL and NaN in JSON)
    assert "\x00" not in entry.object_id
    assert entry.details["query"].startswith("nul\ufffd and a lone ? surrogate")
    assert len(entry.details["query"]) == 500
    assert entry.details["score"] == "nan"
    assert entry.details["when"] == "2026-01-02T03:04:05+00:00"
    assert len(entry.details["many"]) == 50
    assert isinstance(entry.details["deep"]["a"]["b"], dict)
    assert entry.details["deep"]["a"]["b"]["c"] == "{'d': {'e': 'too deep'}}", "cut at 4 levels"


def test_an_export_is_recorded_with_its_filters_and_rows(staff_user, rf):
    request = rf.get("/")
    request.user = staff_user
    rows = list(
        audit.audited_rows(request, "events", {"event_type": "text"}, iter("abc"), object_id=CON)
    )
    assert rows == ["a", "b", "c"]
    (entry,) = entries(Action.EXPORT)
    assert entry.object_id == CON
    assert entry.details == {
        "what": "events",
        "filters": {"event_type": "text"},
        "rows": 3,
        "complete": True,
    }


def test_an_export_stopped_half_way_is_recorded_with_the_rows_sent(staff_user, rf):
    request = rf.get("/")
    request.user = staff_user
    rows = audit.audited_rows(request, "search", {"q": "447700"}, iter(range(100)))
    assert [next(rows), next(rows)] == [0, 1]
    assert entries(Action.EXPORT) == [], "nothing yet: the stream is still going"
    rows.close()  # what Django does when the client goes away
    (entry,) = entries(Action.EXPORT)
    assert entry.details["rows"] == 2 and entry.details["complete"] is False


def sent(response: HttpResponse) -> None:
    """Close `response` as a server does after its last byte, keeping the test's database
    connection (request_finished would close it; Django's test client does the same)."""
    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)


def test_a_page_view_is_written_once_its_response_has_been_sent(staff_user, rf):
    request = rf.get("/")
    request.user = staff_user
    response = HttpResponse("the page")
    made = audit.recording.record_after(response, request, Action.VIEW_USER, USR, status=200)
    assert entries() == [], "nothing written while the response is being sent"
    sent(response)
    (entry,) = entries(Action.VIEW_USER)
    assert entry.at == made.at, "the time is the request's, not the write's"


def test_a_write_that_fails_after_the_response_is_logged_not_raised(
    staff_user, rf, monkeypatch, caplog
):
    def refuse(*args, **kwargs):
        raise DatabaseError("the database went away")

    monkeypatch.setattr(AuditEntry, "save", refuse)
    request = rf.get("/")
    request.user = staff_user
    response = HttpResponse("the page")
    audit.recording.record_after(response, request, Action.VIEW_USER, USR)
    sent(response)
    assert "audit: could not record view_user" in caplog.text


def test_the_session_note_is_saved_after_the_page_and_never_revives_a_session(
    staff_client, no_upstream
):
    fill()
    staff_client.get(url("detail", CON))
    assert staff_client.session[SEEN_KEY] == [f"{Action.VIEW_CONVERSATION}:{CON}"]
    # A logout in another tab while a page was being sent: its note does not bring it back.
    from django.contrib.sessions.models import Session

    session = staff_client.session
    response = HttpResponse("the page")
    request = type("Request", (), {"session": session})()
    remember(request, response, ["view_user:x"])
    Session.objects.all().delete()
    sent(response)
    assert not Session.objects.exists()


# --- page views, recorded by the middleware


def test_every_dashboard_url_is_either_audited_or_said_not_to_be():
    names = {
        name
        for name, _pattern, _params in walk(get_resolver().url_patterns)
        if name.startswith("conversations:")
    }
    assert names, "the walk found the dashboard's URLs"
    unclassified = names - set(AUDITED) - set(UNAUDITED)
    assert unclassified == set(), "classify each new page in conversations/audit/middleware.py"
    assert set(AUDITED) & set(UNAUDITED) == set()
    assert not (set(AUDITED) | set(UNAUDITED)) - names, "no stale names"


def test_a_conversation_page_is_one_view_with_user_time_address_and_id(
    staff_client, staff_user, no_upstream, settings
):
    settings.TRUSTED_PROXY_COUNT = 1
    fill()
    response = staff_client.get(
        url("detail", CON), REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.4"
    )
    assert response.status_code == 200
    (entry,) = views()
    assert entry.action == Action.VIEW_CONVERSATION
    assert entry.user_id == staff_user.pk and entry.username == "staff"
    assert entry.address == "198.51.100.4"
    assert entry.object_id == CON
    assert entry.details == {"path": url("detail", CON), "status": 200}
    assert (timezone.now() - entry.at).total_seconds() < 60


def test_tabs_and_event_pages_reached_with_htmx_are_views(staff_client, no_upstream):
    fill()
    staff_client.get(url("detail", CON))
    tab = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": dom.TABS, "HTTP_HX_TRIGGER": "tab-events"}
    assert staff_client.get(url("events", CON), **tab).status_code == 200
    # The events' filter form and paginator links have no id: htmx sends no HX-Trigger.
    nav = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": dom.TABS}
    staff_client.get(url("events", CON), {"page_size": "10"}, **nav)
    # Back, with htmx's history cache off: a history restore is a page load.
    staff_client.get(
        url("members", CON), HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true"
    )
    recorded = views()
    assert [e.details["path"] for e in recorded] == [
        url("detail", CON),
        url("events", CON),
        url("events", CON) + "?page_size=10",
        url("members", CON),
    ]
    assert all(e.object_id == CON and "refresh" not in e.details for e in recorded)


class _Elements(HTMLParser):
    """Every element with hx-get in a page, with its attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if "hx-get" in attributes:
            self.found.append(attributes)


LIVE_TRIGGERS = ("every ", "load", "sse:", "dashboard:refresh")


def live_regions(html: str) -> list[dict[str, str]]:
    parser = _Elements()
    parser.feed(html)
    return [a for a in parser.found if any(t in a.get("hx-trigger", "") for t in LIVE_TRIGGERS)]


def as_htmx_asks(client, region: dict[str, str]):
    """The request htmx makes for a live region: HX-Trigger is the element's id, HX-Target the
    id of the element it swaps (hx-target, or itself)."""
    own = region.get("id", "")
    target = region.get("hx-target", "")
    target = own if target in ("", "this") else target.lstrip("#")
    headers = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": target}
    if own:
        headers["HTTP_HX_TRIGGER"] = own
    return client.get(region["hx-get"], **headers)


def test_the_live_regions_of_a_page_already_viewed_are_not_new_views(
    staff_client, no_upstream, settings
):
    """Found in the pages as rendered: every poll, push refresh and retry a page carries, asked
    for as htmx asks for it. A new live region on these pages is checked here too."""
    fill()
    for name in ("detail", "events"):
        response = staff_client.get(url(name, CON))
        regions = live_regions(response.content.decode())
        assert regions, f"the {name} page of a live call has live regions"
        recorded = len(views())
        for region in regions:
            for _ in range(3):
                assert as_htmx_asks(staff_client, region).status_code in (200, 204, 286)
        assert len(views()) == recorded, [r["hx-get"] for r in regions]
    assert len(views()) == 2


def test_the_user_page_refreshed_by_its_stream_is_one_view(staff_client, settings, api, use_client):
    settings.VONAGE_SIGNATURE_SECRET = "a-secret"
    settings.DASHBOARD_PUSH = True
    with responses.RequestsMock(assert_all_requests_are_fired=False) as upstream:
        use_client(api)
        upstream.get(f"{API}/v1/users/{USR}", json=fixture("user.json"))
        for path in ("conversations", "sessions"):
            upstream.get(
                f"{API}/v1/users/{USR}/{path}",
                json={"page_size": 25, "_embedded": {path: []}, "_links": {}},
            )
        served = {"dashboard.streams_served": True}  # as the ASGI application says
        response = staff_client.get(url("user", USR), **served)
        assert response.status_code == 200
        regions = live_regions(response.content.decode())
        assert any(r.get("id") == "user-live" for r in regions)
        for region in regions:
            assert as_htmx_asks(staff_client, region).status_code == 200
    (entry,) = views()
    assert entry.action == Action.VIEW_USER and entry.object_id == USR


def test_a_page_fetching_itself_again_or_the_events_retry_is_not_a_new_view(
    staff_client, no_upstream
):
    fill()
    member = url("member", CON, ALICE)
    staff_client.get(member)
    staff_client.get(url("events", CON))
    again = {
        "HTTP_HX_REQUEST": "true",
        "HTTP_HX_TARGET": dom.CONTENT,
        "HTTP_HX_TRIGGER": dom.CONTENT,
    }
    staff_client.get(member, {"backoff": "1"}, **again)
    retry = {
        "HTTP_HX_REQUEST": "true",
        "HTTP_HX_TARGET": dom.TABS,
        "HTTP_HX_TRIGGER": dom.EVENTS_RETRY,
    }
    staff_client.get(url("events", CON), **retry)
    assert [(e.action, e.object_id) for e in views()] == [
        (Action.VIEW_MEMBER, ALICE),
        (Action.VIEW_CONVERSATION, CON),
    ]
    assert views()[0].details["conversation_id"] == CON


def test_a_panel_of_a_conversation_never_opened_here_is_recorded(staff_client, no_upstream):
    """Refresh headers are the client's to send: they spare only what this session has seen."""
    fill()
    fill(OTHER)
    staff_client.get(url("detail", CON))
    poll = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": dom.HEADER, "HTTP_HX_TRIGGER": dom.HEADER}
    staff_client.get(url("header", CON), **poll)  # the page's own poll: not recorded
    staff_client.get(url("header", OTHER), **poll)  # read without its page: recorded
    staff_client.get(url("header", OTHER), **poll)  # and then seen
    forged = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "x", "HTTP_HX_TRIGGER": "x"}
    staff_client.get(url("member", OTHER, ALICE), **forged)
    recorded = [(e.action, e.object_id, e.details.get("refresh")) for e in views()]
    assert recorded == [
        (Action.VIEW_CONVERSATION, CON, None),
        (Action.VIEW_CONVERSATION, OTHER, True),
        (Action.VIEW_MEMBER, ALICE, True),
    ]


def test_what_showed_nothing_is_not_recorded(staff_client, django_user_model, no_upstream):
    fill()
    anonymous = Client()
    assert anonymous.get(url("detail", CON)).status_code == 302  # to the login page
    lower = url("detail", CON).replace("CON-", "con-")
    assert staff_client.get(lower).status_code == 302  # to the canonical id: recorded there
    assert staff_client.post(url("detail", CON)).status_code == 405
    not_staff = Client()
    not_staff.force_login(django_user_model.objects.create_user("nobody", password="x-pass-123"))
    assert not_staff.get(url("detail", CON)).status_code == 403
    assert views() == []


def test_a_search_is_recorded_with_its_query_and_filters(staff_client, no_upstream):
    fill()
    staff_client.get(url("search"))  # the empty page: nothing searched
    response = staff_client.get(
        url("search"), {"q": "447700 900100", "live": "on", "event_type": ""}
    )
    assert response.status_code == 200
    staff_client.get(url("search"), {"q": CON})  # a pasted id: straight to its page
    searches = entries(Action.SEARCH)
    assert [(s.details["query"], s.details["filters"], s.details["status"]) for s in searches] == [
        ("447700 900100", {"live": "on"}, 200),
        (CON, {}, 302),
    ]
    assert searches[0].username == "staff"


def test_a_bad_search_is_recorded_as_typed(staff_client, no_upstream):
    response = staff_client.get(url("search"), {"q": HOSTILE, "date_start": "yesterday"})
    assert response.status_code == 400
    (search,) = entries(Action.SEARCH)
    assert search.details["query"] == HOSTILE
    assert search.details["filters"] == {"date_start": "yesterday"}


# --- logins


def log_in(client, username: str, password: str, **extra):
    return client.post(reverse("login"), {"username": username, "password": password}, **extra)


def test_login_logout_and_failed_login_are_recorded_with_the_address(client, staff_user, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    proxy = {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "192.0.2.1, 203.0.113.9"}
    assert log_in(client, "staff", "wrong", **proxy).status_code == 200
    assert log_in(client, "staff", "staff-password-1", **proxy).status_code == 302
    assert client.post(reverse("logout"), **proxy).status_code == 302
    recorded = [(e.action, e.user_id, e.username, e.address) for e in entries()]
    assert recorded == [
        (Action.LOGIN_FAILED, None, "staff", "203.0.113.9"),
        (Action.LOGIN, staff_user.pk, "staff", "203.0.113.9"),
        (Action.LOGOUT, staff_user.pk, "staff", "203.0.113.9"),
    ]


def test_a_failed_login_keeps_the_name_typed_and_marks_lock_outs(client, settings):
    settings.AXES_FAILURE_LIMIT = 2
    for _ in range(3):
        log_in(client, HOSTILE, "wrong")
    failed = entries(Action.LOGIN_FAILED)
    assert [f.username for f in failed] == [HOSTILE] * 3
    assert all(f.user_id is None for f in failed)
    # The second failure locks the name out; the third is refused by the lock-out itself.
    assert [f.details["locked_out"] for f in failed] == [False, True, True]


# --- the /audit/ page


@pytest.fixture
def reader(django_user_model):
    user = django_user_model.objects.create_user("dpo", password="dpo-password-1", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_auditentry"))
    return user


def test_superusers_and_holders_of_the_permission_read_the_log(client, superuser, reader):
    for user in (superuser, reader):
        login_with_second_factor(client, user)
        response = client.get(url("audit"))
        assert response.status_code == 200, user
        assert "Audit log" in response.content.decode()


def test_other_staff_anonymous_and_non_staff_are_refused(client, staff_client, django_user_model):
    from django.contrib.auth.models import Group

    response = staff_client.get(url("audit"))
    assert response.status_code == 403
    assert "result_list" not in response.content.decode()
    supervisor = django_user_model.objects.create_user("sup", password="x-pass-123", is_staff=True)
    supervisor.groups.add(Group.objects.get(name="Supervisors"))
    client.force_login(supervisor)
    assert client.get(url("audit")).status_code == 403, (
        "seeing personal data is not reading the log"
    )
    client.logout()
    response = client.get(url("audit"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    client.force_login(django_user_model.objects.create_user("nobody", password="x-pass-123"))
    assert client.get(url("audit")).status_code == 403


def test_the_log_shows_newest_first_with_who_what_and_the_object(
    superuser_client, staff_client, no_upstream
):
    fill()
    staff_client.get(url("detail", CON))
    staff_client.get(url("search"), {"q": "447700"})
    html = superuser_client.get(url("audit")).content.decode()
    body = html[html.index("<tbody>") :]
    search_at, view_at = body.index("Searched"), body.index("Viewed a conversation")
    assert search_at < view_at, "newest first"
    assert f'href="{url("detail", CON)}"' in body, "the conversation's id links to its page"
    assert "447700" in body and ">staff<" in body


def test_hostile_input_is_shown_escaped(superuser_client, staff_client, no_upstream):
    log_in(Client(), HOSTILE, "wrong")
    staff_client.get(url("search"), {"q": HOSTILE})
    html = superuser_client.get(url("audit")).content.decode()
    assert "<script>alert(1)" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 2


def filtered(client, **query):
    response = client.get(url("audit"), query)
    assert response.status_code == 200, response.content.decode()[:500]
    return response.content.decode()


def test_filters_by_user_action_object_and_time(superuser_client, staff_user, rf):
    request = rf.get("/")
    request.user = staff_user
    audit.record(request, Action.VIEW_CONVERSATION, CON)
    audit.record(request, Action.VIEW_CONVERSATION, OTHER)
    audit.record(request, Action.VIEW_USER, USR)
    audit.record(None, Action.LOGIN_FAILED, username="mallory")
    old = AuditEntry.objects.create(
        action=Action.VIEW_MEMBER, username="staff", object_id=ALICE,
        at=timezone.now() - dt.timedelta(days=3),
    )  # fmt: skip

    def shown(**query) -> set[str]:
        html = filtered(superuser_client, **query)
        return set(re.findall(r'<tr class="audit-(\w+)">', html))

    assert shown(user="mallory") == {"login_failed"}
    assert shown(action="view_user") == {"view_user"}
    html = filtered(superuser_client, object_id=OTHER)
    assert OTHER in html and CON not in html.split("<tbody>")[1]
    to = (timezone.now() - dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    assert shown(date_to=to) == {"view_member"}
    since = (old.at + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert "view_member" not in shown(date_from=since)
    assert shown(user="nobody-at-all") == set()


@pytest.mark.parametrize(
    "query",
    [
        {"action": "drop_tables"},
        {"date_from": "yesterday"},
        {"date_from": "2026-01-02", "date_to": "2026-01-01"},
        {"user": "nul\x00byte"},
        {"object_id": "x" * 201},
        {"page_size": "7"},
        {"before": "-1"},
        {"before": "5", "after": "2"},
        {"format": "xlsx"},
    ],
)
def test_bad_parameters_are_a_400(superuser_client, query):
    response = superuser_client.get(url("audit"), query)
    assert response.status_code == 400
    assert "errornote" in response.content.decode()


def test_the_log_is_paged_by_id_both_ways(superuser_client):
    made = [make_entry(object_id=f"obj-{i}") for i in range(7)]
    html = filtered(superuser_client, page_size="25", action="search")
    assert all(f"obj-{i}" in html for i in range(7))
    # Pages of 25 are the smallest: ask for older than the 3rd newest, then newer than the oldest.
    html = filtered(superuser_client, before=str(made[4].pk), action="search")
    assert re.findall(r"obj-\d", html.split("<tbody>")[1]) == ["obj-3", "obj-2", "obj-1", "obj-0"]
    assert 'rel="prev"' in html and 'rel="next"' not in html
    html = filtered(superuser_client, after=str(made[1].pk), action="search")
    assert re.findall(r"obj-\d", html.split("<tbody>")[1]) == [
        "obj-6",
        "obj-5",
        "obj-4",
        "obj-3",
        "obj-2",
    ]
    assert 'rel="next"' in html and 'rel="prev"' not in html


def test_the_csv_export_streams_every_match_neutralised_and_is_itself_recorded(
    superuser_client, superuser
):
    client = Client()
    log_in(client, '=HYPERLINK("http://evil")', "wrong")
    log_in(client, "+1+1", "wrong")
    log_in(client, "plain", "wrong")
    response = superuser_client.get(url("audit"), {"format": "csv", "action": "login_failed"})
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="audit-')
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["time", "username", "user id", "address", "action", "object id", "details"]
    assert [r[1] for r in rows[1:]] == ["plain", "'+1+1", '\'=HYPERLINK("http://evil")']
    assert all(r[4] == "login_failed" for r in rows[1:])
    (export,) = entries(Action.EXPORT)
    assert export.user_id == superuser.pk
    assert export.details == {
        "what": "audit",
        "filters": {"action": "login_failed"},
        "rows": 3,
        "complete": True,
    }


def test_the_csv_export_reads_in_batches(superuser_client, monkeypatch):
    from conversations.views import audit as audit_view

    monkeypatch.setattr(audit_view, "CSV_BATCH", 3)
    for i in range(8):
        make_entry(object_id=f"obj-{i}")
    response = superuser_client.get(url("audit"), {"format": "csv", "action": "search"})
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r[5] for r in rows[1:]] == [f"obj-{i}" for i in reversed(range(8))]


# --- retention


def test_retention_deletes_only_entries_older_than_the_setting(settings):
    settings.AUDIT_RETENTION_DAYS = 30
    now = timezone.now()
    for days in (400, 31, 31, 31, 29, 0):
        AuditEntry.objects.create(
            action=Action.LOGIN, username=f"{days}d", at=now - dt.timedelta(days=days)
        )
    assert retention.purge(now=now, batch=2) == 4
    assert sorted(e.username for e in entries()) == ["0d", "29d"]


def test_retention_zero_keeps_everything(settings):
    settings.AUDIT_RETENTION_DAYS = 0
    AuditEntry.objects.create(action=Action.LOGIN, at=timezone.now() - dt.timedelta(days=5000))
    assert retention.purge() == 0
    assert len(entries()) == 1


def test_the_worker_purges_hourly_under_a_lock(settings):
    settings.AUDIT_RETENTION_DAYS = 365
    AuditEntry.objects.create(action=Action.LOGIN, at=timezone.now() - dt.timedelta(days=366))
    with tasks.AUDIT_RETENTION_LOCK:
        assert tasks.purge_old_audit_entries.call_local() is None  # another worker purges
    assert len(entries()) == 1
    assert tasks.purge_old_audit_entries.call_local() == 1
    assert entries() == []


# --- issue 12's "done when", as a Support user and a reader of the log would try it


def test_a_support_users_view_search_and_export_are_on_the_log_they_cannot_open(
    django_user_model, superuser_client, no_upstream
):
    from tests.conftest import support

    fill()
    helpdesk_user = support(django_user_model.objects.create_user("helpdesk", is_staff=True))
    helpdesk = Client()
    helpdesk.force_login(helpdesk_user)
    assert helpdesk.get(url("detail", CON)).status_code == 200
    assert helpdesk.get(url("search"), {"q": "alice"}).status_code == 200
    export = helpdesk.get(url("events", CON), {"format": "csv"})
    assert export.status_code == 200
    b"".join(export.streaming_content)  # the export is recorded once it has been sent
    assert helpdesk.get(url("audit")).status_code == 403

    mine = AuditEntry.objects.filter(username="helpdesk")
    looked = {
        (e.action, e.object_id, e.details.get("query", e.details.get("what", ""))) for e in mine
    }
    assert {
        ("view_conversation", CON, ""),
        ("search", "", "alice"),
        ("export", CON, "events"),
    } <= looked
    looks = [e for e in mine if e.action in ("view_conversation", "search", "export")]
    assert {(e.user_id, e.address) for e in looks} == {(helpdesk_user.pk, "127.0.0.1")}
    assert all(e.at is not None for e in looks)
    html = superuser_client.get(url("audit"), {"user": "helpdesk"}).content.decode()
    for text in ("helpdesk", "view_conversation", "search", "export", CON, "alice"):
        assert text in html, text
