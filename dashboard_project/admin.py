"""The Django admin at /admin/, for superusers only: users, groups (the roles of
conversations/privacy/roles.py) and axes' lock-outs to release.

`DashboardAdminConfig` replaces "django.contrib.admin" in INSTALLED_APPS and makes
`DashboardAdminSite` the default site (Django's documented way), so every admin module
(auth's, axes') registers with it as usual.

- An active superuser (with staff status, as Django's admin and the dashboard ask) who passed the
  second factor (always required of superusers) gets the admin; before it, its step.
- Anyone else logged in (staff who are not superusers) gets a 403 page that says who can help:
  never the admin's own login form, which would only offer to log in as someone else.
- Anonymous visitors are sent to the dashboard's login page (one login form for everything: the
  one that axes throttles and the audit log records), and back to the admin afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse


def is_admin(user: Any) -> bool:
    return bool(user.is_active and user.is_staff and user.is_superuser)


class DashboardAdminSite(admin.AdminSite):
    site_header = "Conversation dashboard administration"
    site_title = "Conversation dashboard"
    index_title = "Users, groups and lock-outs"
    site_url = "/"

    def has_permission(self, request: HttpRequest) -> bool:
        return is_admin(request.user)

    def admin_view(self, view: Callable, cacheable: bool = False) -> Callable:
        guarded = super().admin_view(view, cacheable)

        @wraps(guarded)
        def superusers_only(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.user.is_authenticated and not self.has_permission(request):
                return refused(request)
            return second_factor_first(request) or guarded(request, *args, **kwargs)

        return superusers_only

    def login(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        # Imported here: this module is loaded with INSTALLED_APPS, before any model.
        from django.contrib.auth.views import LoginView, redirect_to_login

        if request.user.is_authenticated and not self.has_permission(request):
            return refused(request)
        step = second_factor_first(request)
        if step is not None:
            return step
        # LoginView's own check of `next`: a local URL only.
        after = LoginView().get_redirect_url(request) or reverse("admin:index")
        if self.has_permission(request):
            return HttpResponseRedirect(after)
        return redirect_to_login(after, settings.LOGIN_URL)


def second_factor_first(request: HttpRequest) -> HttpResponse | None:
    """A superuser's session that has not passed its second factor (always required for them:
    conversations/access.py) goes to that step first, as for any dashboard page."""
    from conversations import access

    if request.user.is_authenticated and not access.second_factor_satisfied(request):
        return access.second_factor_redirect(request)
    return None


def refused(request: HttpRequest) -> HttpResponse:
    return render(request, "admin/superusers_only.html", {"title": "Superusers only"}, status=403)


class DashboardAdminConfig(AdminConfig):
    default_site = "dashboard_project.admin.DashboardAdminSite"
