"""`manage.py reconcile`: one reconciler run now (the worker runs it every interval)."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from conversations.client import get_client
from conversations.store import ingest, reconcile


class Command(BaseCommand):
    help = "Fill the gaps of the stored history from the API once (what the worker does)."

    def handle(self, *args, **options) -> None:
        app = ingest.application(settings.VONAGE_APPLICATION_ID)
        report = reconcile.reconcile(app, get_client())
        self.stdout.write(f"Reconciled: {report.as_dict()}")
