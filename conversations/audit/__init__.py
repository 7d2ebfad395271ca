"""Who looked at what: the audit log (append-only), and the dashboard's roles.

The API the rest of the code calls:

    from conversations import audit

    audit.record(request, audit.Action.OTP_VERIFIED)            # who and where from the request
    audit.record(request, audit.Action.VIEW_USER, user_id, path=request.get_full_path())
    audit.record(request, audit.Action.LOGIN_FAILED, username="typed name")
    audit.record_export(request, "events", filters, rows, object_id=conversation_id)
    rows = audit.audited_rows(request, "events", filters, rows, object_id=conversation_id)

Page views and searches are recorded by `middleware.AuditMiddleware` from their URL names, and
logins, logouts and failed logins from Django's auth signals (`signals`, connected on import):
views need not call anything.

- models.py: the entry, the list of actions (`Action`), the dashboard's permissions;
- recording.py: record, record_export, audited_rows;
- middleware.py: which requests are looks, and which are refreshes of a look already recorded;
- signals.py: logins and logouts (the roles and their permissions: privacy/roles.py);
- retention.py: the only deletion (the worker's hourly task) (CSV cells: exports.neutralise);
- forms.py: the /audit/ page's filters (the page: conversations/views/audit.py).
"""

from . import signals  # noqa: F401  (connects the login, logout and failed-login receivers)
from .models import Action, AppendOnly, AuditEntry
from .recording import audited_rows, record, record_export

__all__ = ["Action", "AppendOnly", "AuditEntry", "audited_rows", "record", "record_export"]
