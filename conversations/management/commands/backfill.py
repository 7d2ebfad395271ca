"""`manage.py backfill --days N`: read what the API still has of the last N days into the store."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from conversations.client import UpstreamError, get_client
from conversations.store import ingest, reconcile


def positive_days(value: str) -> float:
    try:
        days = float(value)
    except ValueError:
        raise CommandError("--days must be a number of days") from None
    if not 0 < days <= 3650:
        raise CommandError("--days must be more than 0 and at most 3650")
    return days


class Command(BaseCommand):
    help = (
        "Read the conversations started in the last N days (their answer, events and members) "
        "from the API into the store. Safe to run again: only what is missing is stored."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--days",
            type=str,
            default=str(settings.DASHBOARD_BACKFILL_DAYS or 2),
            help="How many days back (default DASHBOARD_BACKFILL_DAYS).",
        )

    def handle(self, *args, **options) -> None:
        days = positive_days(options["days"])
        app = ingest.application(settings.VONAGE_APPLICATION_ID)
        try:
            report = reconcile.backfill(app, get_client(), days=days)
        except UpstreamError as exc:
            raise CommandError(f"The API stopped the backfill: {exc}") from None
        self.stdout.write(
            f"Backfilled {days:g} days: {report.read} conversations read, {report.events} "
            f"events and {report.members} members stored, {report.deleted} gone upstream, "
            f"{report.errors} failed (the reconciler retries recent ones)."
        )
