"""The event store: what Vonage's signed webhooks (and the reconciler's API reads) told us, kept for
good and ordered by event id.

- models.py: the tables (applications, conversations, members, events, webhook receipts);
- webhook.py: verification of a signed RTC webhook (HS256, payload hash, iat window, key, app);
- ingest.py: storing events in one transaction, idempotently, with derived state that follows the
  highest event id applied, never the order of arrival;
- reconcile.py (+ api_records.py): filling gaps, finding new conversations and final states from
  the API; retention.py: deleting old history in batches;
- queries.py: the store read back in the shapes pages show.
"""
