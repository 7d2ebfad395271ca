"""The second-factor pages: the code asked after the password, setting an app up, recovery
codes, and the page that shows where one stands (linked from the header).

Who must pass which step is decided in conversations/access.py. `verify` and `enrol` are the
steps themselves, open to a staff session that has not passed its second factor yet; the other
pages need it passed, like every dashboard page.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import django_otp
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from conversations import access, audit
from conversations.push.notices import access_changed

from . import devices
from .devices import Check
from .forms import WRONG_CODE, CodeForm
from .qr import qr_svg

# Recovery codes left at which a verified user is told to make new ones.
FEW_RECOVERY_CODES = 3


def _audit(request: HttpRequest, action: str, **details: Any) -> None:
    """One audit point of the second factor (otp_enrolled, otp_verified, otp_failed,
    recovery_code_used, recovery_codes_replaced, otp_removed), in the audit log."""
    audit.record(request, audit.Action(action), **details)


# --- the decorator stacks


def _step(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A second-factor step: GET shows it, POST answers it; staff, passed or not."""
    view = require_http_methods(["GET", "POST"])(view)
    view = access.staff_before_second_factor(view)
    view = sensitive_post_parameters("code")(view)
    return never_cache(view)


def _page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A page of the second factor's own: staff who passed it (when they need it)."""
    return never_cache(access.staff_required(require_http_methods(["GET"])(view)))


def _action(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A button of the settings page: POST only, staff who passed it (when they need it).
    The access check comes before the method check, so that anonymous visitors are sent to
    the login page whatever the method."""
    return never_cache(access.staff_required(require_POST(view)))


# --- helpers


def _next_url(request: HttpRequest) -> str:
    """Where to go once the step is done: the page asked for, if it is on this site."""
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return reverse(settings.LOGIN_REDIRECT_URL)


def _log_in_device(request: HttpRequest, device: Any) -> None:
    """Mark this session as having passed the second factor. A new session key first: the
    session gains rights, so one known before (fixation) must not gain them too."""
    request.session.cycle_key()
    django_otp.login(request, device)


def _refusal(form: CodeForm, check: Check) -> int:
    """Put why the code was refused on the form; the status to answer with."""
    if check.locked_until is None:
        form.add_error("code", WRONG_CODE)
        return 200
    wait = max(1, math.ceil((check.locked_until - timezone.now()).total_seconds()))
    when = f"{wait} seconds" if wait < 120 else f"{math.ceil(wait / 60)} minutes"
    form.add_error(None, f"Too many wrong codes. Try again in {when}.")
    return 429


def _pending_context(request: HttpRequest) -> dict[str, Any]:
    """Whether the page is shown to a session that has not passed its second factor yet (it
    then offers no navigation: every page would send it back here)."""
    user = request.user
    return {"pending": access.second_factor_step(user, access.is_verified(user)) is not None}


# --- the steps


@_step
def verify(request: HttpRequest) -> HttpResponse:
    """The code asked after the password, from the app or a recovery code."""
    user = request.user
    next_url = _next_url(request)
    step = access.second_factor_step(user, access.is_verified(user))
    if step is None:
        return redirect(next_url)  # passed already, or nothing to pass
    if step == access.ENROL:
        return redirect(access.step_url(access.ENROL, next_url))
    status = 200
    if request.method == "POST":
        form = CodeForm(request.POST)
        if form.is_valid():
            check = devices.check_code(user, form.cleaned_data["code"])
            if check.accepted:
                _log_in_device(request, check.device)
                if check.recovery_code:
                    _audit(request, "recovery_code_used")
                    _tell_codes_left(request, user)
                else:
                    _audit(request, "otp_verified")
                return redirect(next_url)
            status = _refusal(form, check)
            _audit(request, "otp_failed", throttled=check.locked_until is not None)
        else:
            _audit(request, "otp_failed", throttled=False)
    else:
        form = CodeForm()
    context = {"title": "Two-factor authentication", "form": form, "next": next_url}
    return render(request, "two_factor/verify.html", context | {"pending": True}, status=status)


def _tell_codes_left(request: HttpRequest, user: Any) -> None:
    left = devices.recovery_codes_left(user)
    text = f"You used a recovery code: {left} left."
    if left <= FEW_RECOVERY_CODES:
        messages.warning(request, f"{text} Make new ones on the Two-factor page.")
    else:
        messages.info(request, text)


@_step
def enrol(request: HttpRequest) -> HttpResponse:
    """Set up an authenticator app: a QR code (and the key as text), then a code from the app
    confirms it, and the recovery codes are shown once.

    A session may only do this when the user has no second factor yet, or has passed it: with
    a password alone nobody adds their own app to an account that has one."""
    user = request.user
    if access.has_second_factor(user) and not access.is_verified(user):
        return redirect(access.step_url(access.VERIFY, request.get_full_path()))
    next_url = _next_url(request)
    status = 200
    if request.method == "POST":
        form = CodeForm(request.POST, recovery=False)
        if form.is_valid():
            check, codes = devices.confirm_app(user, form.cleaned_data["code"])
            if check.accepted:
                _log_in_device(request, check.device)
                access_changed(user.pk)  # the user's other sessions' streams check again now
                _audit(request, "otp_enrolled")
                return _show_recovery_codes(request, codes, next_url)
            status = _refusal(form, check)
    else:
        form = CodeForm(recovery=False)
    device = devices.pending_app(user)
    context = {
        "title": "Set up two-factor authentication",
        "form": form,
        "next": next_url,
        "qr_code": qr_svg(device.config_url),
        "manual_key": devices.manual_key(device),
        "issuer": settings.OTP_TOTP_ISSUER,
        "required": access.second_factor_required(user),
        "replacing": devices.confirmed_app(user) is not None,
    }
    return render(
        request, "two_factor/enrol.html", context | _pending_context(request), status=status
    )


def _show_recovery_codes(request: HttpRequest, codes: list[str], next_url: str) -> HttpResponse:
    """The codes, this once: the answer to the POST that made them, never stored in the
    session or shown again (never_cache: not kept by the browser either)."""
    context = {"title": "Your recovery codes", "codes": codes, "next": next_url}
    return render(request, "two_factor/recovery_codes.html", context)


# --- where one stands


@_page
def overview(request: HttpRequest) -> HttpResponse:
    user = request.user
    app = devices.confirmed_app(user)
    context = {
        "title": "Two-factor authentication",
        "app": app,
        "codes_left": devices.recovery_codes_left(user),
        "few_codes": FEW_RECOVERY_CODES,
        "required": access.second_factor_required(user),
        "on": access.has_second_factor(user),
    }
    return render(request, "two_factor/overview.html", context)


@_action
def new_recovery_codes(request: HttpRequest) -> HttpResponse:
    user = request.user
    if not access.has_second_factor(user):
        return redirect("two_factor:overview")
    codes = devices.replace_recovery_codes(user)
    _audit(request, "recovery_codes_replaced")
    return _show_recovery_codes(request, codes, reverse("two_factor:overview"))


@_action
def remove(request: HttpRequest) -> HttpResponse:
    """Turn the second factor off, where it is not required."""
    user = request.user
    if access.second_factor_required(user):
        messages.error(request, "Two-factor authentication is required for your account.")
        return redirect("two_factor:overview")
    devices.remove_all(user)
    _audit(request, "otp_removed")
    messages.success(request, "Two-factor authentication is off.")
    return redirect("two_factor:overview")
