"""The viewer of the current request: may they see personal data, and how far back.

Set per request by `dashboard_view` (views/base.py), which every page, fragment and export wears;
a ContextVar, so the reads a page runs in other threads (`client.concurrently`, which copies the
context) see the same viewer. Where no viewer was set, the answer is "masked": a door used
outside a page fails closed. Exports, streamed after the view returned, take the viewer with them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import Permission
from django.db.models import Q
from django.utils import timezone

from . import roles

PERMISSION = roles.VIEW_PII_PERMISSION


@dataclass(frozen=True)
class Viewer:
    sees_pii: bool
    # The oldest stored history this viewer may see (SUPPORT_MAX_AGE_DAYS), or None: all of it.
    oldest: dt.datetime | None = None

    def too_old(self, when: dt.datetime | None) -> bool:
        return self.oldest is not None and when is not None and when < self.oldest


MASKED = Viewer(sees_pii=False)
_current: ContextVar[Viewer] = ContextVar("dashboard_viewer", default=MASKED)


def has_pii_permission(user) -> bool:
    """The permission, held directly or through a group (superusers hold every permission): one
    query, where Django's has_perm loads all of the user's permissions in two, on every page."""
    if not (user.is_authenticated and user.is_active):
        return False
    if user.is_superuser:
        return True
    app_label, codename = PERMISSION.split(".")
    return Permission.objects.filter(
        Q(user=user) | Q(group__user=user), content_type__app_label=app_label, codename=codename
    ).exists()


def of(user) -> Viewer:
    """The viewer a user is: personal data with the permission (superusers have them all);
    without it, masked, and limited to SUPPORT_MAX_AGE_DAYS of history when that is set."""
    if has_pii_permission(user):
        return Viewer(sees_pii=True)
    days = settings.SUPPORT_MAX_AGE_DAYS
    oldest = timezone.now() - dt.timedelta(days=days) if days > 0 else None
    return Viewer(sees_pii=False, oldest=oldest)


def current() -> Viewer:
    return _current.get()


@contextlib.contextmanager
def viewing_as(viewer: Viewer) -> Iterator[Viewer]:
    token = _current.set(viewer)
    try:
        yield viewer
    finally:
        _current.reset(token)
