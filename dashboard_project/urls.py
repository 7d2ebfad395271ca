from django.contrib.auth import views as auth_views
from django.urls import include, path

from conversations import health, views

# The plain 500 page, or the 503 page when the database is what failed (outside a view too).
handler500 = "conversations.middleware.server_error"

urlpatterns = [
    path("", views.home, name="home"),
    # Not redirect_authenticated_user: a logged-in non-staff user must be able to log in as staff.
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("", include("conversations.urls")),
]
