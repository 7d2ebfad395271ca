"""/account/two-factor/…: the second factor's pages (included by dashboard_project/urls.py)."""

from django.urls import path

from . import views

app_name = "two_factor"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("verify/", views.verify, name="verify"),
    path("enrol/", views.enrol, name="enrol"),
    path("recovery-codes/", views.new_recovery_codes, name="recovery_codes"),
    path("remove/", views.remove, name="remove"),
]
