"""The two roles staff have: Supervisors see personal data, Support sees it masked. A data migration
creates both groups; `group()` makes sure of one at run time too (`manage.py ensure_staff_user`)."""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission

SUPERVISORS = "Supervisors"
SUPPORT = "Support"
ROLES = (SUPERVISORS, SUPPORT)


def group(name: str) -> Group:
    """The role's group, with exactly the personal-data permission it should have."""
    if name not in ROLES:
        raise ValueError(f"not a role: {name!r}")
    found, _ = Group.objects.get_or_create(name=name)
    permission = Permission.objects.get(
        content_type__app_label="conversations", codename="view_pii"
    )
    if name == SUPERVISORS:
        found.permissions.add(permission)
    else:
        found.permissions.remove(permission)
    return found
