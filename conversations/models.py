"""The app's models live with the store (conversations/store/models.py) and the audit log
(conversations/audit/models.py); Django looks here."""

from conversations.audit.models import AuditEntry, DashboardAccess  # noqa: F401
from conversations.store.models import (  # noqa: F401
    Application,
    SearchKey,
    StoredConversation,
    StoredEvent,
    StoredMember,
    WebhookReceipt,
)
