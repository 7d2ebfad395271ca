"""Who may see the dashboard: logged-in, active staff users, and nobody else."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_htmx.http import HttpResponseClientRedirect


def staff_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Anonymous users go to the login page; logged-in non-staff users get a 403 page.

    Checked before the view runs, so neither ever causes an upstream call. An htmx request (a poll
    whose session expired) is told to load the login page as a whole, not to swap it into a panel.
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        user = request.user
        if not user.is_authenticated:
            login = redirect_to_login(request.get_full_path())
            if getattr(request, "htmx", False):
                return HttpResponseClientRedirect(login["Location"])
            return login
        if not (user.is_active and user.is_staff):
            response = render(request, "403.html", {"title": "Staff only"}, status=403)
            if getattr(request, "htmx", False):
                # A poll of a page whose user lost staff status: reload it, to show this page.
                response["HX-Refresh"] = "true"
            return response
        return view(request, *args, **kwargs)

    wrapper.staff_required = True  # type: ignore[attr-defined]  # the access test looks for it
    return wrapper
