from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import include, path
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_safe

from conversations import health, views
from conversations.views.webhooks import rtc_webhook


@require_safe
def favicon(request: HttpRequest) -> HttpResponse:
    """`/favicon.ico`, which browsers ask for on pages without `<link rel="icon">` (the 500 page,
    `/healthz`): the static icon, which whitenoise serves. A temporary redirect, cached for a day,
    because the static file's hashed name changes with its content."""
    response = redirect(static("dashboard/favicon.svg"))
    patch_cache_control(response, public=True, max_age=86400)
    return response


# The plain 500 page, or the 503 page when the database is what failed (outside a view too).
handler500 = "conversations.middleware.server_error"

urlpatterns = [
    path("", views.home, name="home"),
    # Not redirect_authenticated_user: a logged-in non-staff user must be able to log in as staff.
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # The second factor: the code after the password, setting it up, recovery codes.
    path("account/two-factor/", include("conversations.twofactor.urls")),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("favicon.ico", favicon, name="favicon"),
    # Users, groups and lock-outs, for superusers only (dashboard_project/admin.py).
    path("admin/", admin.site.urls),
    # Vonage's signed RTC event webhooks: with or without the slash, never a redirect.
    path("webhooks/rtc", rtc_webhook, name="rtc_webhook"),
    path("webhooks/rtc/", rtc_webhook, name="rtc_webhook_slash"),
    path("", include("conversations.urls")),
]
