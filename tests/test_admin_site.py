"""The Django admin at /admin/ (issue 12): superusers only (users, groups, axes' lock-outs), the
dashboard's login page in front of it, its pages under the dashboard's CSP; and the lock-out page
naming who can help without naming accounts."""

from __future__ import annotations

import re

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from tests.conftest import login_with_second_factor

pytestmark = pytest.mark.django_db

ADMIN_PAGES = [
    "/admin/",
    "/admin/auth/user/",
    "/admin/auth/group/",
    "/admin/axes/accessattempt/",
    "/admin/auth/user/add/",
]


@pytest.fixture
def root(django_user_model):
    return django_user_model.objects.create_superuser("root", password="root-password-1")


@pytest.fixture
def root_client(root):
    return login_with_second_factor(Client(), root)


def test_a_superuser_gets_users_groups_and_lock_outs(root_client, root):
    html = root_client.get("/admin/").content.decode()
    for name in ("Users", "Groups", "Access attempts"):
        assert f">{name}<" in html, name
    for path in ADMIN_PAGES:
        assert root_client.get(path).status_code == 200, path
    group = Group.objects.get(name="Supervisors")
    page = root_client.get(reverse("admin:auth_group_change", args=[group.pk])).content.decode()
    assert "Can see personal data" in page


@pytest.mark.parametrize(
    "flags",
    [
        {"is_staff": True},  # staff, not a superuser
        {"is_staff": False, "is_superuser": True},  # a superuser without staff status
    ],
)
def test_anyone_else_logged_in_gets_a_403_and_no_admin(django_user_model, flags):
    user = django_user_model.objects.create_user("someone", password="x-pass-123", **flags)
    browser = Client()
    browser.force_login(user)
    for path in [*ADMIN_PAGES, "/admin/login/"]:
        response = browser.get(path)
        assert response.status_code == 403, path
        html = response.content.decode()
        assert "Superusers only" in html
        assert "a superuser of this dashboard" in html
        assert 'id="login-form"' not in html and "Access attempts" not in html


def test_staff_cannot_change_anything_through_the_admin(django_user_model, staff_user):
    browser = Client()
    browser.force_login(staff_user)
    url = reverse("admin:auth_user_change", args=[staff_user.pk])
    response = browser.post(url, {"username": "staff", "is_superuser": "on", "is_staff": "on"})
    assert response.status_code == 403
    staff_user.refresh_from_db()
    assert not staff_user.is_superuser


def test_anonymous_visitors_log_in_on_the_dashboards_page_and_come_back(root):
    browser = Client()
    response = browser.get("/admin/auth/user/", follow=True)
    first, last = response.redirect_chain[0][0], response.redirect_chain[-1][0]
    assert first.startswith(reverse("admin:login"))
    assert last == f"{reverse('login')}?next=/admin/auth/user/"
    assert 'id="login-form"' in response.content.decode()
    answer = browser.post(
        reverse("login"),
        {"username": "root", "password": "root-password-1", "next": "/admin/auth/user/"},
    )
    assert answer.status_code == 302 and answer["Location"] == "/admin/auth/user/"
    # A superuser's password alone does not open the admin: the second factor comes first.
    step = browser.get("/admin/auth/user/")
    assert step.status_code == 302
    assert step["Location"].startswith(reverse("two_factor:enrol"))
    assert "next=/admin/auth/user/" in step["Location"].replace("%2F", "/")
    assert browser.get(reverse("admin:login"))["Location"].startswith(reverse("two_factor:enrol"))
    login_with_second_factor(browser, root)
    assert browser.get("/admin/auth/user/").status_code == 200


def test_the_admin_login_does_not_redirect_elsewhere(root):
    browser = Client()
    response = browser.get(reverse("admin:login"), {"next": "https://evil.example/"})
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next=/admin/"
    login_with_second_factor(browser, root)
    response = browser.get(reverse("admin:login"), {"next": "https://evil.example/"})
    assert response["Location"] == "/admin/"


def test_a_superuser_releases_a_lock_out(client, staff_user, root_client, settings):
    settings.AXES_FAILURE_LIMIT = 2
    for _ in range(2):
        client.post(reverse("login"), {"username": "staff", "password": "wrong"})
    right = {"username": "staff", "password": "staff-password-1"}
    assert client.post(reverse("login"), right).status_code == 429
    attempt = AccessAttempt.objects.get(username="staff")
    url = reverse("admin:axes_accessattempt_delete", args=[attempt.pk])
    assert root_client.post(url, {"post": "yes"}).status_code == 302
    assert client.post(reverse("login"), right).status_code == 302


def test_admin_pages_run_no_inline_script_or_style(root_client, root):
    """The dashboard's CSP (script-src and style-src 'self', no 'unsafe-inline') applies to the
    admin too: its pages must not need inline code (the browser test loads them for real)."""
    pages = [
        *ADMIN_PAGES,
        reverse("admin:auth_user_change", args=[root.pk]),
        reverse("admin:auth_group_add"),
    ]
    for path in pages:
        response = root_client.get(path)
        assert "script-src 'self'" in response["Content-Security-Policy"]
        html = response.content.decode()
        inline = [s for s in re.findall(r"<script\b[^>]*>", html) if "src=" not in s]
        assert inline == [] or all('type="application/json"' in s for s in inline), (path, inline)
        assert not re.search(r"<style\b", html) and ' style="' not in html, path
        assert not re.search(r"\son\w+=", html), path  # onclick= and the like


# --- the lock-out page


def locked_out(settings) -> str:
    settings.AXES_FAILURE_LIMIT = 1
    browser = Client()
    browser.post(reverse("login"), {"username": "staff", "password": "wrong"})
    response = browser.post(reverse("login"), {"username": "staff", "password": "wrong"})
    assert response.status_code == 429
    return response.content.decode()


def test_the_lock_out_page_names_a_role_not_accounts(settings, root, staff_user):
    html = locked_out(settings)
    assert "a superuser of this dashboard" in html
    assert "root" not in html, "no superuser's name to an anonymous visitor"


def test_the_lock_out_page_names_the_configured_contact_escaped(settings, staff_user):
    settings.DASHBOARD_ADMIN_CONTACT = "the IT desk <it@example.com>"
    html = locked_out(settings)
    assert "the IT desk &lt;it@example.com&gt;" in html
    assert "a superuser of this dashboard" not in html


def test_the_header_links_the_audit_log_and_the_admin_only_for_who_may_open_them(
    root_client, staff_user
):
    html = root_client.get(reverse("conversations:live")).content.decode()
    assert 'href="/audit/"' in html and 'href="/admin/"' in html
    staff = Client()
    staff.force_login(staff_user)
    html = staff.get(reverse("conversations:live")).content.decode()
    assert 'href="/audit/"' not in html and 'href="/admin/"' not in html
