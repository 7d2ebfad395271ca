"""Create (or update) a staff user with a given password: used by `make run` for the demo user."""

from __future__ import annotations

import os

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

from conversations.privacy import roles

# The group that marks the users `make run` made for the sandbox demo: they are deactivated when
# the dashboard runs on a real application (retire_sandbox_demo_users).
SANDBOX_DEMO_GROUP = "sandbox demo"


class Command(BaseCommand):
    help = "Create or update a staff user; the password comes from --password or $DEMO_PASSWORD."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--username", required=True)
        parser.add_argument(
            "--password-env",
            default="DEMO_PASSWORD",
            help="Name of the environment variable holding the password.",
        )
        parser.add_argument(
            "--role",
            choices=roles.ROLES,
            default=roles.SUPERVISORS,
            help="Supervisors see personal data; Support sees it masked (default: Supervisors).",
        )
        parser.add_argument(
            "--sandbox-demo",
            action="store_true",
            help="Mark the user as the sandbox's demo user (no login on a real application).",
        )

    def handle(
        self, *args, username: str, password_env: str, role: str, sandbox_demo: bool, **options
    ) -> None:
        password = os.environ.get(password_env, "")
        if len(password) < 8:
            raise CommandError(f"${password_env} must hold a password of at least 8 characters.")
        user, created = get_user_model().objects.get_or_create(username=username)
        user.is_staff = True
        user.is_active = True
        user.set_password(password)
        user.save()
        user.groups.remove(*Group.objects.filter(name__in=roles.ROLES))
        user.groups.add(roles.group(role))
        if sandbox_demo:
            user.groups.add(Group.objects.get_or_create(name=SANDBOX_DEMO_GROUP)[0])
        self.stdout.write(
            f"{'Created' if created else 'Updated'} staff user {username!r} ({role})."
        )
