"""The audit log's table, and the dashboard's own permissions.

An audit entry is written once and never changed: `save()` refuses to update a row, and `delete()`
(on a row or a queryset) and `update()` refuse too. The one way rows go is the retention
(audit/retention.py, on the worker), through the model's plain base manager. The application
cannot be made to alter its own log by mistake; a database account without UPDATE and DELETE on
the table would make it so against anyone (README, "Audit log").

Deleting a Django user keeps their entries: the user column is emptied (Django's own SET_NULL,
which goes through the base manager too) and the username written beside it stays.
"""

from __future__ import annotations

from typing import Any, NoReturn

from django.conf import settings
from django.db import models
from django.utils import timezone

from conversations.privacy import roles


class Action(models.TextChoices):
    """Everything the log records: the one list (the middleware, the sign-in receivers, the
    exports and the second-factor views name their actions from here)."""

    VIEW_CONVERSATION = "view_conversation", "Viewed a conversation"
    VIEW_MEMBER = "view_member", "Viewed a member"
    VIEW_USER = "view_user", "Viewed a user"
    SEARCH = "search", "Searched"
    EXPORT = "export", "Exported"
    LOGIN = "login", "Logged in"
    LOGOUT = "logout", "Logged out"
    LOGIN_FAILED = "login_failed", "Failed to log in"
    OTP_ENROLLED = "otp_enrolled", "Enrolled a second factor"
    OTP_VERIFIED = "otp_verified", "Verified a second factor"
    OTP_FAILED = "otp_failed", "Failed a second factor"
    RECOVERY_CODE_USED = "recovery_code_used", "Used a recovery code"
    RECOVERY_CODES_REPLACED = "recovery_codes_replaced", "Replaced their recovery codes"
    OTP_REMOVED = "otp_removed", "Removed their second factor"


class AppendOnly(Exception):
    """An attempt to change or delete an audit entry through the application."""


def _refuse(what: str) -> NoReturn:
    raise AppendOnly(f"The audit log is append-only: {what} is refused.")


class AuditQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> NoReturn:
        _refuse("updating entries")

    def delete(self) -> NoReturn:
        _refuse("deleting entries")

    def bulk_update(self, objs: Any, fields: Any, batch_size: Any = None) -> NoReturn:
        _refuse("updating entries")

    def update_or_create(self, defaults: Any = None, **kwargs: Any) -> NoReturn:
        _refuse("updating entries")


class AuditEntry(models.Model):
    """Who did what, when, from which address. Written by conversations.audit.record()."""

    at = models.DateTimeField("time", default=timezone.now, editable=False)
    # Null once the user is deleted (or for a failed login, which has no user); `username` stays.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    # The user's name when the entry was written; for a failed login, the name that was typed.
    username = models.CharField(max_length=150, blank=True, editable=False)
    # The client's address, as login throttling reads it behind TRUSTED_PROXY_COUNT proxies.
    address = models.GenericIPAddressField(null=True, blank=True, editable=False)
    action = models.CharField(max_length=32, choices=Action.choices, editable=False)
    object_id = models.CharField(max_length=200, blank=True, editable=False)
    # What else the action had: the page's path and status, a search's query and filters, an
    # export's filters and row count.
    details = models.JSONField(default=dict, blank=True, editable=False)

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit entries"
        # Only "view" (the permission to read the log at /audit/): there is nothing to add,
        # change or delete by hand, so no permission to grant it.
        default_permissions = ("view",)
        indexes = [
            # The log is read newest first (by id), filtered by one of these.
            models.Index(fields=["username", "-id"], name="audit_username"),
            models.Index(fields=["action", "-id"], name="audit_action"),
            models.Index(fields=["object_id", "-id"], name="audit_object"),
            models.Index(fields=["at"], name="audit_at"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.username or '-'} {self.action} {self.object_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            _refuse("changing an entry")
        kwargs["force_insert"] = True  # never an UPDATE, whatever the primary key says
        kwargs.pop("force_update", None)
        kwargs.pop("update_fields", None)
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("deleting an entry")


class DashboardAccess(models.Model):
    """No rows: the holder of the dashboard's own permissions, which belong to no stored model.

    `conversations.view_pii`: personal data shown unmasked (the masking policy reads it). The
    groups Supervisors (with it) and Support (without) are made by a data migration
    (privacy/roles.py). A real, empty table rather than an unmanaged model, so that tools that
    read every model (dumpdata) keep working.
    """

    class Meta:
        verbose_name = "dashboard access"
        verbose_name_plural = "dashboard access"
        default_permissions = ()
        permissions = [(roles.VIEW_PII, roles.VIEW_PII_NAME)]

    def __str__(self) -> str:
        return "dashboard access"
