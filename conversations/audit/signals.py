"""Logging in and out, and failed logins, from Django's own auth signals: whichever form or view
did it (the dashboard's login page, the admin's), it is recorded.

A failed login has no user: the name typed is kept (cut to 150 characters), and shown escaped like
everything else. Attempts refused because axes has locked the name or address out are failed
logins too (axes refuses them inside authenticate()), marked `locked_out`, as is the failure
that locked them out.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import signals
from django.dispatch import receiver

from .models import Action
from .recording import record


@receiver(signals.user_logged_in, dispatch_uid="audit.login")
def logged_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    record(request, Action.LOGIN, username=user.get_username())


@receiver(signals.user_logged_out, dispatch_uid="audit.logout")
def logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is None:  # logging out without being logged in
        return
    record(request, Action.LOGOUT, username=user.get_username())


@receiver(signals.user_login_failed, dispatch_uid="audit.login_failed")
def login_failed(sender: Any, credentials: dict, request: Any = None, **kwargs: Any) -> None:
    typed = credentials.get("username")
    record(
        request,
        Action.LOGIN_FAILED,
        username=typed if isinstance(typed, str) else "",
        locked_out=bool(getattr(request, "axes_locked_out", False)),
    )
