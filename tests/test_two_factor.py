"""The second factor: enrolment (QR code, key, recovery codes), the code after the password,
throttling and replays, who must have it (superusers; everyone with DASHBOARD_REQUIRE_2FA;
anyone who set it up), htmx and the stream, and the function the admin site uses.

Codes are computed from the device's key with django-otp's own TOTP (django_otp.oath), at a
pinned clock (`clock`), so that no test depends on where in a 30 s step it runs.
"""

from __future__ import annotations

import re
import threading
from base64 import b32encode
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import qrcode
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp import models as totp_models
from django_otp.plugins.otp_totp.models import TOTPDevice
from qrcode.constants import ERROR_CORRECT_M

from conversations import access
from conversations.push.hub import hub
from conversations.push.limits import tickets
from conversations.twofactor import devices, views
from conversations.twofactor.forms import WRONG_CODE
from tests import aio
from tests.test_push import request_stream
from tests.test_security import dashboard_urls

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "a-long-password-for-tests-0123"
# The middle of a 30 s step: a code one step away is 30 s away whichever way.
NOW = 1_800_000_015.0
LIVE = reverse("conversations:live")
VERIFY = reverse("two_factor:verify")
ENROL = reverse("two_factor:enrol")
OVERVIEW = reverse("two_factor:overview")


@pytest.fixture
def clock(monkeypatch):
    """TOTP's clock (django-otp reads time.time() in the TOTP model's module), pinned."""
    pinned = SimpleNamespace(now=NOW)
    monkeypatch.setattr(totp_models, "time", SimpleNamespace(time=lambda: pinned.now))
    return pinned


@pytest.fixture
def slow_throttle(settings):
    """A wrong code makes the next try wait a minute, not a second: long enough that no test
    reaches the end of it by being slow."""
    settings.OTP_TOTP_THROTTLE_FACTOR = 60
    settings.OTP_STATIC_THROTTLE_FACTOR = 60


def code_of(device: TOTPDevice, at: float = NOW) -> str:
    """The code an authenticator app with the device's key shows at `at`."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits)
    totp.time = at
    return f"{totp.token():0{device.digits}d}"


def wrong_code(device: TOTPDevice) -> str:
    """A well-formed app code that no step within the tolerance shows."""
    near = {code_of(device, NOW + seconds) for seconds in (-30, 0, 30)}
    return next(code for code in (f"{n:06d}" for n in range(10)) if code not in near)


def make_user(username: str = "staff", **flags) -> object:
    return get_user_model().objects.create_user(username, password=PASSWORD, is_staff=True, **flags)


def with_second_factor(user) -> tuple[TOTPDevice, list[str]]:
    """An app and recovery codes, set up as enrolment does."""
    device = devices.pending_app(user)
    device.confirmed = True
    device.save()
    return device, devices.replace_recovery_codes(user)


def log_in(client: Client, user) -> None:
    response = client.post(
        reverse("login"), {"username": user.get_username(), "password": PASSWORD}
    )
    assert response.status_code == 302, "the password is right"


def verified(client: Client, user, device) -> Client:
    """A session that passed its second factor with `device`."""
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


def lock_expires(user) -> None:
    """As if the wait after the last wrong code had passed."""
    long_ago = timezone.now() - timedelta(days=1)
    for model in (TOTPDevice, StaticDevice):
        model.objects.filter(user=user).update(throttling_failure_timestamp=long_ago)


# --- optional by default


@pytest.mark.django_db
def test_a_staff_user_without_a_device_logs_in_with_a_password_only(client):
    staff = make_user()
    log_in(client, staff)
    assert client.get(LIVE).status_code == 200
    assert not TOTPDevice.objects.exists()
    page = client.get(LIVE).content.decode()
    assert f'href="{OVERVIEW}"' in page, "the header links to the two-factor page"
    assert "Off: a password alone" in client.get(OVERVIEW).content.decode()


def test_the_settings_are_documented_in_env_example():
    example = (ROOT / ".env.example").read_text()
    assert re.search(r"^DASHBOARD_REQUIRE_2FA=false$", example, re.M)
    assert re.search(r"^DASHBOARD_2FA_ISSUER=", example, re.M)


# --- enrolment


def svg_of(page: str) -> str:
    match = re.search(r'<svg [^>]*class="qr-code".*?</svg>', page, re.S)
    assert match, "the QR code is inline SVG"
    return match.group(0)


def dark_modules(svg: str) -> set[tuple[int, int]]:
    """The dark modules an SVG path of `M x y h w v1 h -w z` runs draws."""
    dark = set()
    for x, y, width in re.findall(r"M(\d+) (\d+)h(\d+)v1h-\d+z", svg):
        dark |= {(int(x) + dx, int(y)) for dx in range(int(width))}
    return dark


@pytest.mark.django_db
def test_enrolment_shows_the_key_as_a_qr_code_and_as_text_and_escapes_the_rest(client):
    user = make_user('eve"><script>alert(1)</script>')
    client.force_login(user)
    response = client.get(ENROL)
    page = response.content.decode()
    assert response.status_code == 200
    device = TOTPDevice.objects.get(user=user, confirmed=False)

    svg = svg_of(page)
    expected = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=4)
    expected.add_data(device.config_url)
    expected.make(fit=True)
    matrix = expected.get_matrix()
    want = {(x, y) for y, row in enumerate(matrix) for x, dark in enumerate(row) if dark}
    assert dark_modules(svg) == want, "the QR code holds the otpauth URL of this device's key"
    assert f'viewBox="0 0 {len(matrix)} {len(matrix)}"' in svg
    assert "script" not in svg and "style=" not in svg and "data:" not in svg

    key = b32encode(device.bin_key).decode()
    shown = re.search(r'<code id="manual-key">([A-Z2-7 ]+)</code>', page).group(1)
    assert shown.replace(" ", "") == key
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    assert "unsafe-inline" not in response["Content-Security-Policy"]
    assert response["Cache-Control"].count("no-store"), "the key is not kept by the browser"

    again = client.get(ENROL).content.decode()
    assert svg_of(again) == svg, "a reload shows the key already scanned"


@pytest.mark.django_db
def test_a_code_from_the_key_turns_it_on_and_shows_ten_recovery_codes_once(client, clock):
    superuser = make_user("root", is_superuser=True)
    log_in(client, superuser)
    client.get(ENROL)
    device = TOTPDevice.objects.get(user=superuser)

    wrong = client.post(ENROL, {"code": wrong_code(device)})
    assert WRONG_CODE in wrong.content.decode()
    assert client.get(LIVE)["Location"].startswith(ENROL), "still nothing but enrolment"
    lock_expires(superuser)

    response = client.post(ENROL, {"code": code_of(device), "next": LIVE})
    page = response.content.decode()
    codes = re.findall(r"<li><code>([a-z2-7]{8})</code></li>", page)
    assert response.status_code == 200
    assert len(set(codes)) == devices.RECOVERY_CODE_COUNT == 10
    assert set(codes) == set(
        StaticToken.objects.filter(device__user=superuser).values_list("token", flat=True)
    )
    assert f'href="{LIVE}"' in page
    device.refresh_from_db()
    assert device.confirmed
    assert client.get(LIVE).status_code == 200, "this session passed its second factor"
    overview = client.get(OVERVIEW).content.decode()
    assert "On: every login" in overview and not any(code in overview for code in codes)


@pytest.mark.django_db
def test_a_new_app_replaces_the_old_one_only_once_confirmed(client, clock):
    user = make_user()
    old, _codes = with_second_factor(user)
    verified(client, user, old)
    client.get(ENROL)
    new = TOTPDevice.objects.get(user=user, confirmed=False)
    assert client.get(LIVE).status_code == 200, "the old app still counts meanwhile"
    client.post(ENROL, {"code": code_of(new)})
    assert list(TOTPDevice.objects.filter(user=user)) == [new]
    assert client.get(LIVE).status_code == 200, "verified with the new app"


# --- the code after the password


@pytest.mark.django_db
def test_a_user_with_an_app_gives_a_code_after_the_password(client, clock):
    user = make_user()
    device, _codes = with_second_factor(user)
    log_in(client, user)
    response = client.get(LIVE)
    assert response.status_code == 302
    assert response["Location"] == f"{VERIFY}?next=%2Flive%2F"
    assert client.get(VERIFY).status_code == 200
    before = client.session.session_key
    response = client.post(VERIFY, {"code": code_of(device), "next": LIVE})
    assert response.status_code == 302 and response["Location"] == LIVE
    assert client.session.session_key != before, "a new session key once the factor is passed"
    assert client.get(LIVE).status_code == 200

    client.post(reverse("logout"))
    log_in(client, user)
    replay = client.post(VERIFY, {"code": code_of(device), "next": LIVE})
    assert WRONG_CODE in replay.content.decode(), "a code is accepted once"
    clock.now += 30
    lock_expires(user)
    assert client.post(VERIFY, {"code": code_of(device, clock.now)}).status_code == 302


@pytest.mark.django_db
def test_a_recovery_code_logs_in_once(client, clock):
    user = make_user()
    _device, codes = with_second_factor(user)
    log_in(client, user)
    typed = f"{codes[3][:4].upper()}-{codes[3][4:].upper()}"  # as one might copy it
    response = client.post(VERIFY, {"code": typed, "next": LIVE})
    assert response["Location"] == LIVE
    assert "You used a recovery code: 9 left." in client.get(LIVE).content.decode()

    client.post(reverse("logout"))
    log_in(client, user)
    again = client.post(VERIFY, {"code": codes[3]})
    assert again.status_code == 200 and WRONG_CODE in again.content.decode()
    assert client.get(LIVE)["Location"].startswith(VERIFY)
    assert not StaticToken.objects.filter(token=codes[3]).exists()


@pytest.mark.django_db
def test_wrong_codes_get_one_message_and_slow_every_kind_of_code_down(client, clock, slow_throttle):
    user = make_user()
    device, codes = with_second_factor(user)
    log_in(client, user)
    answers = [client.post(VERIFY, {"code": "not a code at all"})]
    answers.append(client.post(VERIFY, {"code": "zzzzzzzz"}))  # a recovery code's shape
    lock_expires(user)
    answers.append(client.post(VERIFY, {"code": wrong_code(device)}))
    errors = [re.findall(r'class="errornote"[^>]*>([^<]*)<', a.content.decode()) for a in answers]
    assert errors == [[WRONG_CODE]] * 3, "the same words whatever was wrong"

    # After a wrong code, no code is tried for a while: not the right app code, nor a recovery
    # code (guessing those instead gains nothing).
    for right in (code_of(device), codes[0]):
        refused = client.post(VERIFY, {"code": right})
        assert refused.status_code == 429
        assert "Too many wrong codes" in refused.content.decode()
    assert client.get(LIVE)["Location"].startswith(VERIFY)
    assert StaticToken.objects.filter(token=codes[0]).exists(), "not spent while refused"

    lock_expires(user)
    assert client.post(VERIFY, {"code": code_of(device)}).status_code == 302
    assert TOTPDevice.objects.get(pk=device.pk).throttling_failure_count == 0
    assert StaticDevice.objects.get(user=user).throttling_failure_count == 0


@pytest.mark.django_db
def test_the_wait_doubles_with_each_wrong_code_of_either_kind(clock, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = settings.OTP_STATIC_THROTTLE_FACTOR = 1
    user = make_user()
    device, _codes = with_second_factor(user)
    waits = []
    for wrong in [wrong_code(device), "zzzzzzzz"] * 2:  # taking turns gains nothing
        lock_expires(user)
        assert not devices.check_code(user, wrong).accepted
        check = devices.check_code(user, code_of(device))
        failed_at = TOTPDevice.objects.get(pk=device.pk).throttling_failure_timestamp
        waits.append(round((check.locked_until - failed_at).total_seconds()))
    assert waits == [1, 2, 4, 8]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("seconds", "accepted"), [(-60, False), (-30, True), (30, True), (60, False)]
)
def test_an_app_code_one_step_off_is_accepted_two_steps_off_is_not(
    clock, settings, seconds, accepted
):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # this test is about the window, not the throttle
    settings.OTP_STATIC_THROTTLE_FACTOR = 0
    user = make_user()
    device, _codes = with_second_factor(user)
    code = code_of(device, NOW + seconds)
    assert devices.check_code(user, code).accepted is accepted
    assert not devices.check_code(user, code).accepted, "never twice"


@pytest.mark.django_db(transaction=True)
def test_one_recovery_code_sent_twice_at_once_logs_in_once(clock):
    user = make_user()
    _device, codes = with_second_factor(user)
    results: list[bool] = []
    start = threading.Barrier(2)

    def spend() -> None:
        from django.db import connection

        try:
            start.wait()
            results.append(devices.check_code(user, codes[0]).accepted)
        finally:
            connection.close()

    threads = [threading.Thread(target=spend) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, True]


@pytest.mark.django_db
def test_next_leads_only_to_this_site_and_is_escaped(client, clock):
    user = make_user()
    device, _codes = with_second_factor(user)
    log_in(client, user)
    hostile = '"><script>alert(1)</script>'
    page = client.get(VERIFY, {"next": hostile}).content.decode()
    assert "<script>alert(1)" not in page
    response = client.post(VERIFY, {"code": code_of(device), "next": "https://evil.example/"})
    assert response["Location"] == reverse("conversations:list")


@pytest.mark.django_db
@pytest.mark.parametrize("code", ["\x00123456", "1" * 10_000, "١٢٣٤٥٦", "", " "])
def test_hostile_codes_are_refused_with_the_same_words(client, code):
    user = make_user()
    with_second_factor(user)
    log_in(client, user)
    response = client.post(VERIFY, {"code": code})
    assert response.status_code == 200
    assert "errornote" in response.content.decode()
    assert client.get(LIVE)["Location"].startswith(VERIFY)


# --- who must


@pytest.fixture
def no_upstream(monkeypatch):
    """Every refusal comes before the view: a page that reached the API would fail here."""
    from conversations import client as client_module

    class Unreachable:
        def __getattr__(self, name):
            raise AssertionError(f"the API was called ({name}) before the second factor")

    monkeypatch.setattr(client_module.registry, "_override", Unreachable())


STEP_URLS = {VERIFY, ENROL}


@pytest.mark.django_db
@pytest.mark.parametrize("htmx", [False, True])
def test_a_superuser_reaches_no_page_before_setting_up_a_second_factor(client, no_upstream, htmx):
    superuser = make_user("root", is_superuser=True)
    log_in(client, superuser)
    headers = {"HTTP_HX_REQUEST": "true", "HTTP_HX_CURRENT_URL": "http://testserver/live/"}
    for url in dashboard_urls():
        if url.split("?")[0] in STEP_URLS:
            continue
        method = (
            client.post if url.rstrip("/").endswith(("recovery-codes", "remove")) else client.get
        )
        response = method(url, **(headers if htmx else {}))
        if htmx:
            assert response.status_code == 200 and response.content == b"", url
            assert response["HX-Redirect"] == f"{ENROL}?next=%2Flive%2F", url
        else:
            assert response.status_code == 302, url
            assert response["Location"].startswith(f"{ENROL}?next="), url
    assert client.get(VERIFY)["Location"].startswith(ENROL), "nothing to verify yet"
    assert not TOTPDevice.objects.filter(confirmed=True).exists()


@pytest.mark.django_db
def test_a_superuser_with_an_app_must_give_a_code_and_cannot_add_another(client, no_upstream):
    superuser = make_user("root", is_superuser=True)
    with_second_factor(superuser)
    client.force_login(superuser)  # the password only
    assert client.get(LIVE)["Location"] == f"{VERIFY}?next=%2Flive%2F"
    assert client.get(OVERVIEW)["Location"].startswith(VERIFY)
    enrol = client.get(ENROL)
    assert enrol["Location"].startswith(VERIFY), "a password alone adds no app"
    assert not TOTPDevice.objects.filter(confirmed=False).exists()
    poll = client.get(LIVE, HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL="http://evil.example/x")
    assert poll["HX-Redirect"] == f"{VERIFY}?next=%2Fconversations%2F", "no other site"


@pytest.mark.django_db
def test_everyone_must_with_dashboard_require_2fa(client, settings):
    staff = make_user()
    log_in(client, staff)
    assert client.get(LIVE).status_code == 200
    settings.DASHBOARD_REQUIRE_2FA = True
    assert client.get(LIVE)["Location"].startswith(ENROL), "from the next request on"
    page = client.get(ENROL).content.decode()
    assert "needs a second factor" in page
    assert f'href="{reverse("conversations:list")}"' not in page, "no way around: no navigation"
    settings.DASHBOARD_REQUIRE_2FA = False
    assert client.get(LIVE).status_code == 200


@pytest.mark.django_db
def test_an_optional_second_factor_once_set_up_is_asked_for_and_can_be_turned_off(client, clock):
    staff = make_user()
    device, _codes = with_second_factor(staff)
    log_in(client, staff)
    assert client.get(LIVE)["Location"].startswith(VERIFY)
    client.post(VERIFY, {"code": code_of(device)})
    response = client.post(reverse("two_factor:remove"))
    assert response["Location"] == OVERVIEW
    assert not TOTPDevice.objects.exists() and not StaticDevice.objects.exists()
    client.post(reverse("logout"))
    log_in(client, staff)
    assert client.get(LIVE).status_code == 200


@pytest.mark.django_db
def test_a_superuser_cannot_turn_it_off(client):
    superuser = make_user("root", is_superuser=True)
    device, _codes = with_second_factor(superuser)
    verified(client, superuser, device)
    response = client.post(reverse("two_factor:remove"), follow=True)
    assert "required for your account" in response.content.decode()
    assert TOTPDevice.objects.filter(user=superuser, confirmed=True).exists()


@pytest.mark.django_db
def test_new_recovery_codes_replace_the_old_and_keep_the_session(client, clock):
    user = make_user()
    _device, old = with_second_factor(user)
    log_in(client, user)
    client.post(VERIFY, {"code": old[0]})  # verified with a recovery code
    response = client.post(reverse("two_factor:recovery_codes"))
    new = re.findall(r"<li><code>([a-z2-7]{8})</code></li>", response.content.decode())
    assert len(new) == 10 and not set(new) & set(old)
    assert client.get(LIVE).status_code == 200, "still verified"
    assert not devices.check_code(user, old[1]).accepted
    lock_expires(user)
    assert devices.check_code(user, new[1]).accepted


@pytest.mark.django_db
def test_new_recovery_codes_leave_one_sheet_whatever_was_there(clock):
    user = make_user()
    with_second_factor(user)
    extra = StaticDevice.objects.create(user=user, name="By an administrator")
    extra.token_set.create(token="aaaaaaaa")
    unconfirmed = StaticDevice.objects.create(user=user, name="Half made", confirmed=False)
    unconfirmed.token_set.create(token="bbbbbbbb")
    codes = devices.replace_recovery_codes(user)
    sheet = StaticDevice.objects.get(user=user)
    assert sheet.confirmed
    assert sorted(sheet.token_set.values_list("token", flat=True)) == sorted(codes)
    assert not devices.check_code(user, "aaaaaaaa").accepted


@pytest.mark.django_db
def test_a_superuser_who_lost_everything_gets_back_in_with_a_code_from_the_command_line(client):
    """The README's way back in: `manage.py addstatictoken USER` prints a one-time code."""
    from io import StringIO

    from django.core.management import call_command

    superuser = make_user("root", is_superuser=True)
    with_second_factor(superuser)
    StaticToken.objects.all().delete()  # every recovery code used up, the phone lost
    out = StringIO()
    call_command("addstatictoken", "root", stdout=out)
    log_in(client, superuser)
    response = client.post(VERIFY, {"code": out.getvalue().strip(), "next": ENROL})
    assert response["Location"] == ENROL
    assert client.get(ENROL).status_code == 200, "and may set up a new app"


@pytest.mark.django_db
def test_second_factor_satisfied_is_what_the_admin_site_asks(rf, clock):
    from django.contrib.auth.models import AnonymousUser
    from django.contrib.sessions.backends.db import SessionStore
    from django_otp.middleware import OTPMiddleware

    superuser = make_user("root", is_superuser=True)
    staff = make_user()

    def request_as(user, device=None):
        request = rf.get("/admin/")
        request.session = SessionStore()
        if device is not None:
            request.session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        request.user = user
        OTPMiddleware(lambda r: None)(request)
        return request

    assert not access.second_factor_satisfied(request_as(AnonymousUser()))
    assert not access.second_factor_satisfied(request_as(superuser))
    assert access.second_factor_satisfied(request_as(staff))
    device, _codes = with_second_factor(superuser)
    assert not access.second_factor_satisfied(request_as(superuser))
    assert access.second_factor_satisfied(request_as(superuser, device))
    other, _ = with_second_factor(staff)
    assert not access.second_factor_satisfied(request_as(superuser, other)), "not another's"


@pytest.mark.django_db
def test_each_step_is_an_audit_point(client, clock, monkeypatch, slow_throttle):
    recorded: list[str] = []
    monkeypatch.setattr(views, "_audit", lambda request, action, **details: recorded.append(action))
    user = make_user()
    log_in(client, user)
    client.get(ENROL)
    device = TOTPDevice.objects.get(user=user)
    codes = re.findall(
        r"<li><code>([a-z2-7]{8})</code></li>",
        client.post(ENROL, {"code": code_of(device)}).content.decode(),
    )
    client.post(reverse("logout"))
    log_in(client, user)
    client.post(VERIFY, {"code": wrong_code(device)})
    lock_expires(user)
    client.post(VERIFY, {"code": codes[0]})
    client.post(reverse("two_factor:recovery_codes"))
    client.post(reverse("logout"))
    log_in(client, user)
    clock.now += 30
    client.post(VERIFY, {"code": code_of(device, clock.now)})
    client.post(reverse("two_factor:remove"))
    assert recorded == [
        "otp_enrolled",
        "otp_failed",
        "recovery_code_used",
        "recovery_codes_replaced",
        "otp_verified",
        "otp_removed",
    ]


# --- the stream


@pytest.fixture
def in_process(settings):
    settings.PUSH_URL = ""
    settings.ALLOWED_HOSTS = ["testserver"]


@pytest.mark.django_db(transaction=True)
def test_the_stream_refuses_a_session_that_has_not_passed_its_second_factor(in_process, settings):
    superuser = make_user("root", is_superuser=True)
    staff = make_user()

    def cookie_for(user, device=None) -> str:
        session_client = Client()
        session_client.force_login(user)
        if device is not None:
            verified(session_client, user, device)
        return f"sessionid={session_client.session.session_key}"

    async def status(cookie: str) -> tuple[int, bytes]:
        stream = await request_stream("topic=live", cookie)
        if stream.status == 200:
            await stream.read_until(b": open")
            await stream.leave()
        else:
            await stream.read_until(b".")
        return stream.status, stream.body

    assert aio.run(status(cookie_for(superuser))) == (403, b"Enter your second factor first.")
    device, _codes = with_second_factor(superuser)
    assert aio.run(status(cookie_for(superuser)))[0] == 403
    assert aio.run(status(cookie_for(superuser, device)))[0] == 200
    others, _codes = with_second_factor(make_user("other"))
    assert aio.run(status(cookie_for(superuser, others)))[0] == 403, "another user's device"
    assert aio.run(status(cookie_for(staff)))[0] == 200, "optional and not set up: no step"
    settings.DASHBOARD_REQUIRE_2FA = True
    assert aio.run(status(cookie_for(staff)))[0] == 403
    assert tickets.held() == 0 and hub.count() == 0


@pytest.mark.django_db
def test_enrolment_and_codes_are_in_the_audit_log(client, clock, slow_throttle):
    from conversations.audit.models import AuditEntry

    user = make_user()
    log_in(client, user)
    client.get(ENROL)
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    client.post(ENROL, {"code": code_of(device)})
    client.logout()
    log_in(client, user)
    client.post(VERIFY, {"code": wrong_code(device)})
    lock_expires(user)
    client.post(VERIFY, {"code": code_of(device, NOW + 30)})
    actions = list(
        AuditEntry.objects.filter(user=user).order_by("pk").values_list("action", flat=True)
    )
    second_factor = [a for a in actions if a.startswith(("otp_", "recovery"))]
    assert second_factor == ["otp_enrolled", "otp_failed", "otp_verified"]
