"""The roles (issue 12): the permission conversations.view_pii and the groups Supervisors (with it)
and Support (without) exist after `migrate`, on a fresh database too (where Django has not made
any permission yet when the data migration runs), and making them again changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.auth.models import Group, Permission

from conversations.privacy import roles

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.django_db


def test_the_groups_and_the_permission_exist_after_migrate():
    permission = Permission.objects.get(
        content_type__app_label="conversations", codename="view_pii"
    )
    assert permission.name.startswith("Can see personal data")
    supervisors = Group.objects.get(name="Supervisors")
    support = Group.objects.get(name="Support")
    assert list(supervisors.permissions.all()) == [permission]
    assert list(support.permissions.all()) == []


def test_who_may_see_personal_data(django_user_model):
    def member_of(name: str, group: str | None):
        user = django_user_model.objects.create_user(name, password="x-pass-123", is_staff=True)
        if group:
            user.groups.add(Group.objects.get(name=group))
        return django_user_model.objects.get(pk=user.pk)  # no cached permissions

    assert member_of("sam", roles.SUPERVISORS).has_perm(roles.VIEW_PII_PERMISSION)
    assert not member_of("tom", roles.SUPPORT).has_perm(roles.VIEW_PII_PERMISSION)
    assert not member_of("una", None).has_perm(roles.VIEW_PII_PERMISSION)
    root = django_user_model.objects.create_superuser("root", password="root-password-1")
    assert root.has_perm(roles.VIEW_PII_PERMISSION)
    assert root.has_perm(roles.VIEW_AUDIT_PERMISSION)
    assert not member_of("vic", roles.SUPERVISORS).has_perm(roles.VIEW_AUDIT_PERMISSION)


def test_making_the_roles_again_changes_nothing_and_repairs_a_stripped_group():
    Group.objects.get(name="Supervisors").permissions.clear()
    roles.ensure_roles(apps)
    roles.ensure_roles(apps)
    assert Permission.objects.filter(codename="view_pii").count() == 1
    assert Group.objects.filter(name__in=["Supervisors", "Support"]).count() == 2
    assert [p.codename for p in Group.objects.get(name="Supervisors").permissions.all()] == [
        "view_pii"
    ]


def test_the_audit_model_offers_only_the_view_permission():
    codenames = set(
        Permission.objects.filter(content_type__model="auditentry").values_list(
            "codename", flat=True
        )
    )
    assert codenames == {"view_auditentry"}, "nothing to add, change or delete by hand"


# --- on a database that has never been migrated


def fresh_databases() -> list[str]:
    kinds = ["sqlite"]
    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        kinds.append("postgresql")  # the run on PostgreSQL checks it there too
    return kinds


def admin_sql(statement: str) -> None:
    import psycopg

    default = settings.DATABASES["default"]
    with psycopg.connect(
        host=default["HOST"] or "127.0.0.1",
        port=default["PORT"] or 5432,
        user=default["USER"] or "postgres",
        password=default["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    ) as connection:
        connection.execute(statement)


@pytest.fixture(params=fresh_databases())
def fresh_database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
        return
    name = f"audit_fresh_{uuid.uuid4().hex[:10]}"
    admin_sql(f"CREATE DATABASE {name}")
    default = settings.DATABASES["default"]
    user, host = default["USER"] or "postgres", default["HOST"] or "127.0.0.1"
    try:
        yield f"postgres://{user}@{host}:{default['PORT'] or 5432}/{name}"
    finally:
        admin_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


SHOW_ROLES = """
import json
from django.contrib.auth.models import Group
print(json.dumps({g.name: sorted(p.codename for p in g.permissions.all())
                  for g in Group.objects.order_by("name")}))
"""


def manage(database_url: str, queue: Path, *args: str) -> str:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "READ_DOT_ENV": "false",
        "DEBUG": "true",
        "DATABASE_URL": database_url,
        "QUEUE_PATH": str(queue),
    }
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_a_fresh_database_gets_the_groups_with_their_permission(fresh_database_url, tmp_path):
    queue = tmp_path / "queue.sqlite3"
    manage(fresh_database_url, queue, "migrate", "--noinput", "-v", "0")
    manage(fresh_database_url, queue, "migrate", "--noinput", "-v", "0")  # again: nothing to do
    said = manage(fresh_database_url, queue, "shell", "-c", SHOW_ROLES)
    shown = json.loads(said.strip().splitlines()[-1])
    assert shown == {"Supervisors": ["view_pii"], "Support": []}
