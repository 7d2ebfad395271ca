"""Deactivate the sandbox's demo users: `make run` calls it before running on a real application.

The demo user's password is printed on the screen and kept in .sandbox/: it must not open a
dashboard that shows a real application's conversations. A demo user is one that `make run` marked
(the "sandbox demo" group), or, for users made before the mark existed, the user named
$DEMO_USERNAME whose password is the demo password ($DEMO_PASSWORD or .sandbox/demo_password).
Deactivated, not deleted: the next sandbox run (ensure_staff_user) brings it back.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from conversations.management.commands.ensure_staff_user import SANDBOX_DEMO_GROUP


def _demo_passwords() -> list[str]:
    passwords = [os.environ.get("DEMO_PASSWORD", "")]
    path = Path(settings.BASE_DIR) / ".sandbox" / "demo_password"
    if path.is_file():
        passwords.append(path.read_text().strip())
    return [password for password in passwords if password]


class Command(BaseCommand):
    help = (
        "Deactivate the users made for the sandbox demo (make run does it on a real application)."
    )

    def handle(self, *args, **options) -> None:
        users = get_user_model().objects.filter(is_active=True)
        retired = list(users.filter(groups__name=SANDBOX_DEMO_GROUP))
        legacy = users.filter(username=os.environ.get("DEMO_USERNAME") or "demo").first()
        if (
            legacy is not None
            and legacy not in retired
            and any(legacy.check_password(password) for password in _demo_passwords())
        ):
            retired.append(legacy)
        for user in retired:
            user.is_active = False
            user.save(update_fields=["is_active"])
            self.stdout.write(
                f"The sandbox demo user {user.get_username()!r} was deactivated: it cannot log in "
                "to the dashboard on a real application (the next sandbox run restores it)."
            )
