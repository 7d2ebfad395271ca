"""The dashboard's roles: two groups, and the permissions they are about.

- `conversations.view_pii` ("Can see personal data"): phone numbers, SIP users, emails, custom
  data and message texts shown as they are. Without it a staff user sees them masked (the masking
  policy reads this permission). Superusers have every permission.
- `conversations.view_auditentry`: reading the audit log at /audit/ (Django's default "view"
  permission of the audit model; superusers have it too). Given by hand, to whoever reads the log
  (a data protection officer): neither group has it.
- Groups: Supervisors (with view_pii) and Support (without). Staff in neither group see personal
  data masked, as Support does: being trusted with it is what a group says, not the default.

`ensure_roles` is what the data migration runs; `group()` makes sure of one group at run time
(`manage.py ensure_staff_user --role`). Permissions are normally created after the last
migration (post_migrate), so on a fresh database the permission would not exist yet when the
group is made: it is created here explicitly, with its content type. Safe to run again.
"""

from __future__ import annotations

from typing import Any

APP_LABEL = "conversations"
VIEW_PII = "view_pii"
VIEW_PII_NAME = (
    "Can see personal data (phone numbers, SIP users, emails, custom data, message texts)"
)
VIEW_PII_PERMISSION = f"{APP_LABEL}.{VIEW_PII}"  # for user.has_perm()
VIEW_AUDIT_PERMISSION = f"{APP_LABEL}.view_auditentry"

SUPERVISORS = "Supervisors"
SUPPORT = "Support"
ROLES = (SUPERVISORS, SUPPORT)


def ensure_roles(apps: Any) -> None:
    """Create the view_pii permission and the two groups if missing (`apps`: the migration's
    historical apps, or django.apps.apps)."""
    content_type_model = apps.get_model("contenttypes", "ContentType")
    permission_model = apps.get_model("auth", "Permission")
    group_model = apps.get_model("auth", "Group")

    content_type, _ = content_type_model.objects.get_or_create(
        app_label=APP_LABEL, model="dashboardaccess"
    )
    view_pii, _ = permission_model.objects.get_or_create(
        content_type=content_type, codename=VIEW_PII, defaults={"name": VIEW_PII_NAME}
    )
    supervisors, _ = group_model.objects.get_or_create(name=SUPERVISORS)
    supervisors.permissions.add(view_pii)
    group_model.objects.get_or_create(name=SUPPORT)


def group(name: str):
    """The role's group, with exactly the personal-data permission it should have."""
    from django.apps import apps
    from django.contrib.auth.models import Group

    if name not in ROLES:
        raise ValueError(f"not a role: {name!r}")
    ensure_roles(apps)
    found = Group.objects.get(name=name)
    if name == SUPPORT:  # a Support group edited by hand to see personal data is put right
        found.permissions.remove(*found.permissions.filter(codename=VIEW_PII))
    return found
