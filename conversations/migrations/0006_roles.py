"""The roles (issue 12): the permission conversations.view_pii, and the groups Supervisors (with
it) and Support (without). The permission is created here, with its content type, because Django
makes permissions only after the last migration (post_migrate): the group could not get it
otherwise on a fresh database. Safe to run again; undoing it leaves the groups (they may have
members by then)."""

from django.db import migrations

from conversations.privacy.roles import ensure_roles


def create_roles(apps, schema_editor):
    ensure_roles(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0005_audit"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
