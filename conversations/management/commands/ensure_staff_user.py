"""Create (or update) a staff user with a given password: used by `make run` for the demo user."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create or update a staff user; the password comes from --password or $DEMO_PASSWORD."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--username", required=True)
        parser.add_argument(
            "--password-env",
            default="DEMO_PASSWORD",
            help="Name of the environment variable holding the password.",
        )

    def handle(self, *args, username: str, password_env: str, **options) -> None:
        import os

        password = os.environ.get(password_env, "")
        if len(password) < 8:
            raise CommandError(f"${password_env} must hold a password of at least 8 characters.")
        user, created = get_user_model().objects.get_or_create(username=username)
        user.is_staff = True
        user.is_active = True
        user.set_password(password)
        user.save()
        self.stdout.write(f"{'Created' if created else 'Updated'} staff user {username!r}.")
