"""Access to every URL, login throttling, headers, and secrets kept out of responses and logs."""

from __future__ import annotations

import logging
import re

import pytest
import responses
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tests.conftest import API, fixture

# URLs that are deliberately public, with why. Everything else must be staff-only.
PUBLIC = {
    "login": "the login page itself",
    "logout": "a POST that ends the session",
    "healthz": "liveness probe, no data",
    "readyz": "readiness probe, timings only",
    "static": "static files",
    "favicon": "the site icon: a redirect to a static file",
    "rtc_webhook": "Vonage's webhooks: trusted by their signature (tests/test_webhooks.py)",
    "rtc_webhook_slash": "the same, with a trailing slash",
}
SAMPLE_ARGS = {
    "conversation_id": "CON-1b7f3c2e-5a8d-4e21-9c0f-7d6e5b4a3c21",
    "member_id": "MEM-0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
    "user_id": "USR-9f8e7d6c-5b4a-4392-8170-6e5d4c3b2a19",
}
FRAGMENT_TARGETS = ["results", "tabs", "conversation-header", "members-panel", "event-rows"]


def walk(patterns, prefix: str = "", namespace: str = ""):
    """Every (name, view, converters) the resolver knows, admin included if it were mounted."""
    for entry in patterns:
        if isinstance(entry, URLResolver):
            ns = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from walk(entry.url_patterns, prefix + str(entry.pattern), ns)
        elif isinstance(entry, URLPattern):
            yield (
                f"{namespace}{entry.name}" if entry.name else prefix + str(entry.pattern),
                entry,
                list(entry.pattern.converters),
            )


def dashboard_urls() -> list[str]:
    urls = []
    for name, _pattern, params in walk(get_resolver().url_patterns):
        if name.split(":")[-1] in PUBLIC or name.startswith("static") or "admin" in name:
            continue
        urls.append(reverse(name, kwargs={p: SAMPLE_ARGS[p] for p in params}))
    return urls


def test_the_walk_finds_every_dashboard_url():
    urls = dashboard_urls()
    assert len(urls) >= 9, urls
    assert reverse("conversations:events", args=[SAMPLE_ARGS["conversation_id"]]) in urls


def test_the_admin_is_the_superusers_only_site():
    # /admin/ is mounted (users, groups, lock-outs): its site lets superusers in only, which
    # tests/test_admin_site.py checks page by page.
    from django.contrib import admin

    from dashboard_project.admin import DashboardAdminSite

    names = [name for name, _p, _a in walk(get_resolver().url_patterns)]
    assert "admin:index" in names
    assert isinstance(admin.site, DashboardAdminSite)


def test_every_view_outside_the_public_list_is_staff_only():
    """A view added without `staff_required` fails here, before any request is made. The
    admin's views are guarded by their site instead (superusers only: test_admin_site.py)."""
    for name, pattern, _params in walk(get_resolver().url_patterns):
        if name.split(":")[-1] in PUBLIC or name.startswith(("admin:", "admin/")):
            continue
        assert getattr(pattern.callback, "staff_required", False), f"{name} is not protected"


@pytest.fixture
def upstream(api, use_client):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        use_client(api)
        yield mock


@pytest.mark.django_db
@pytest.mark.parametrize("target", [None, *FRAGMENT_TARGETS])
def test_anonymous_users_get_nothing_from_any_url_or_fragment(client, upstream, target):
    headers = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": target} if target else {}
    for url in dashboard_urls():
        response = client.get(url, {"after": 1}, **headers)
        assert response.status_code in (200, 302), url
        if response.status_code == 200:
            assert response.content == b"", url  # only the HX-Redirect header
            assert "HX-Redirect" in response, url
    assert len(upstream.calls) == 0


@pytest.mark.django_db
@pytest.mark.parametrize("target", [None, *FRAGMENT_TARGETS])
def test_non_staff_users_get_403_from_any_url_or_fragment(
    client, django_user_model, upstream, target
):
    client.force_login(django_user_model.objects.create_user("nobody", password="x-pass-123"))
    headers = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": target} if target else {}
    for url in dashboard_urls():
        response = client.get(url, {"after": 1}, **headers)
        assert response.status_code == 403, url
        assert SAMPLE_ARGS["conversation_id"] not in response.content.decode()
        if target:  # a poll of a page whose user lost staff status reloads it, to show the 403
            assert response["HX-Refresh"] == "true"
    assert len(upstream.calls) == 0


# --- login throttling


@pytest.mark.django_db
def test_repeated_wrong_passwords_lock_the_account_out(client, staff_user, settings):
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(3):
        response = client.post(reverse("login"), {"username": "staff", "password": "wrong"})
    assert response.status_code == 429
    assert b"locked" in response.content.lower()
    # Even the right password is refused while locked out.
    response = client.post(reverse("login"), {"username": "staff", "password": "staff-password-1"})
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_a_non_staff_user_can_log_out_and_log_in_as_staff(
    client, django_user_model, staff_user, upstream
):
    upstream.get(f"{API}/v1/conversations", json=fixture("conversations_page.json"))
    client.force_login(django_user_model.objects.create_user("nobody", password="x-pass-123"))
    page = client.get(reverse("conversations:list")).content.decode()
    assert f'action="{reverse("logout")}"' in page
    assert client.get(reverse("login")).status_code == 200, "the login form, not a redirect"
    response = client.post(reverse("login"), {"username": "staff", "password": "staff-password-1"})
    assert response.status_code == 302
    assert client.get(reverse("conversations:list")).status_code == 200


@pytest.mark.django_db
def test_a_few_wrong_passwords_then_the_right_one_log_in(client, staff_user, settings):
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(2):
        client.post(reverse("login"), {"username": "staff", "password": "wrong"})
    response = client.post(reverse("login"), {"username": "staff", "password": "staff-password-1"})
    assert response.status_code == 302
    assert "_auth_user_id" in client.session


# --- login throttling behind a proxy (issue 8, fault 10)

PROXY = "10.0.0.1"  # what REMOTE_ADDR says for every client behind the TLS proxy


def login_from(client, address: str, username: str, password: str, forwarded: str | None = None):
    return client.post(
        reverse("login"),
        {"username": username, "password": password},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR=forwarded or address,
    )


@pytest.mark.django_db
def test_wrong_passwords_from_one_client_behind_the_proxy_lock_out_no_other(
    client, staff_user, settings
):
    settings.TRUSTED_PROXY_COUNT = 1
    for _ in range(settings.AXES_FAILURE_LIMIT):
        response = login_from(client, "203.0.113.5", "staff", "wrong")
    assert response.status_code == 429, "client A is locked out"
    other = login_from(Client(), "198.51.100.7", "staff", "staff-password-1")
    assert other.status_code == 302, "the same staff member, from client B, is not"


@pytest.mark.django_db
def test_a_forged_forwarded_for_does_not_escape_a_lock_out(client, staff_user, settings):
    """Only the entry the trusted proxy appended counts; the client writes the ones before it."""
    settings.TRUSTED_PROXY_COUNT = 1
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        forged = f"192.0.2.{attempt}, 203.0.113.5"
        response = login_from(client, "", "staff", "wrong", forwarded=forged)
    assert response.status_code == 429
    assert login_from(client, "203.0.113.5", "staff", "staff-password-1").status_code == 429


@pytest.mark.django_db
def test_many_usernames_from_one_address_are_throttled(client, staff_user, settings):
    """56 attempts against different usernames from one address (seen in 8 s): locked out."""
    settings.TRUSTED_PROXY_COUNT = 1
    statuses = [
        login_from(client, "203.0.113.9", f"user{n}", "wrong").status_code for n in range(56)
    ]
    limit = settings.AXES_IP_FAILURE_LIMIT
    assert statuses[: limit - 1] == [200] * (limit - 1), "a few typos are only failed logins"
    assert set(statuses[limit:]) == {429}
    assert login_from(client, "203.0.113.9", "staff", "staff-password-1").status_code == 429
    assert login_from(Client(), "198.51.100.7", "staff", "staff-password-1").status_code == 302


@pytest.mark.parametrize(
    ("count", "remote", "forwarded", "expected"),
    [
        (0, "198.51.100.1", "203.0.113.5", "198.51.100.1"),  # no proxy: the header is the client's
        (1, PROXY, "203.0.113.5", "203.0.113.5"),
        (1, PROXY, "1.2.3.4, 203.0.113.5", "203.0.113.5"),
        (2, PROXY, "1.2.3.4, 203.0.113.5, 10.0.0.2", "203.0.113.5"),
        (2, PROXY, "203.0.113.5", PROXY),  # fewer hops than proxies: not through them
        (1, PROXY, "", PROXY),
        (1, PROXY, "not-an-address", PROXY),
        (1, PROXY, "2001:db8::1", "2001:db8::1"),
    ],
)
def test_the_client_address_trusts_exactly_the_configured_proxies(
    rf, settings, count, remote, forwarded, expected
):
    from conversations.login_throttle import client_address

    settings.TRUSTED_PROXY_COUNT = count
    request = rf.get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_address(request) == expected


# --- headers


@pytest.mark.django_db
def test_pages_carry_a_strict_content_security_policy(staff_client, upstream):
    upstream.get(f"{API}/v1/conversations", json=fixture("conversations_page.json"))
    response = staff_client.get(reverse("conversations:list"))
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    html = response.content.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "no inline script"
    assert not re.search(r"\son[a-z]+=", html), "no inline event handlers"
    assert "{#" not in html and "{%" not in html, "no template syntax leaks into the page"


# --- secrets


@pytest.mark.django_db
def test_the_private_key_never_reaches_a_page_or_a_log(staff_client, upstream, key_pair, caplog):
    caplog.set_level(logging.DEBUG)
    upstream.get(f"{API}/v1/conversations", status=401, json={"title": "Unauthorized"})
    upstream.get(f"{API}/v1/users", json=fixture("conversations_page.json"))  # a wrong shape
    pages = [
        staff_client.get(reverse("conversations:list")),
        staff_client.get(reverse("conversations:users")),
        staff_client.get("/healthz"),
    ]
    key_body = "".join(key_pair[0].strip().splitlines()[1:-1])
    for response in pages:
        body = response.content.decode()
        assert "PRIVATE KEY" not in body and key_body[20:80] not in body
    assert "PRIVATE KEY" not in caplog.text and key_body[20:80] not in caplog.text
    for call in upstream.calls:
        token = call.request.headers["Authorization"]
        assert token not in caplog.text, "tokens are not logged either"


@pytest.mark.django_db
def test_a_server_error_page_shows_no_token_or_detail(staff_client, use_client, settings):
    """Fault 9: a server error shows the plain 500 page, never Django's debug page (which showed
    the live Authorization header). Whatever the error's message holds."""
    token = "eyJhbGciOiJSUzI1NiJ9.live-token-that-must-not-show"

    class Failing:
        def __getattr__(self, name):
            def fail(*args, **kwargs):
                raise RuntimeError(f"Authorization: Bearer {token}")

            return fail

    use_client(Failing())
    staff_client.raise_request_exception = False
    response = staff_client.get(reverse("conversations:list"), HTTP_AUTHORIZATION=f"Bearer {token}")
    body = response.content.decode()
    assert response.status_code == 500
    assert token not in body and "Bearer" not in body
    assert "Traceback" not in body and "settings" not in body.lower()


def test_the_client_and_its_config_do_not_print_their_key(api, key_pair):
    assert "PRIVATE" not in repr(api.config) and "PRIVATE" not in repr(api.signer)
    assert key_pair[0][40:80] not in repr(vars(api))
