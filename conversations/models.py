"""The app's models live with the store (conversations/store/models.py); Django looks here."""

from conversations.store.models import (  # noqa: F401
    Application,
    SearchKey,
    StoredConversation,
    StoredEvent,
    StoredMember,
    WebhookReceipt,
)
