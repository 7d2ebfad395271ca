"""The audit log (issue 12), and the holder of the dashboard's own permissions (view_pii)."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0004_search"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="DashboardAccess",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
            ],
            options={
                "verbose_name": "dashboard access",
                "verbose_name_plural": "dashboard access",
                "permissions": [
                    (
                        "view_pii",
                        "Can see personal data (phone numbers, SIP users, emails, custom data, "
                        "message texts)",
                    )
                ],
                "default_permissions": (),
            },
        ),
        migrations.CreateModel(
            name="AuditEntry",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "at",
                    models.DateTimeField(
                        default=django.utils.timezone.now, editable=False, verbose_name="time"
                    ),
                ),
                ("username", models.CharField(blank=True, editable=False, max_length=150)),
                ("address", models.GenericIPAddressField(blank=True, editable=False, null=True)),
                (
                    "action",
                    models.CharField(
                        choices=[
                            ("view_conversation", "Viewed a conversation"),
                            ("view_member", "Viewed a member"),
                            ("view_user", "Viewed a user"),
                            ("search", "Searched"),
                            ("export", "Exported"),
                            ("login", "Logged in"),
                            ("logout", "Logged out"),
                            ("login_failed", "Failed to log in"),
                            ("otp_enrolled", "Enrolled a second factor"),
                            ("otp_verified", "Verified a second factor"),
                            ("otp_failed", "Failed a second factor"),
                            ("recovery_code_used", "Used a recovery code"),
                        ],
                        editable=False,
                        max_length=32,
                    ),
                ),
                ("object_id", models.CharField(blank=True, editable=False, max_length=200)),
                ("details", models.JSONField(blank=True, default=dict, editable=False)),
                (
                    "user",
                    models.ForeignKey(
                        blank=True,
                        editable=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "verbose_name": "audit entry",
                "verbose_name_plural": "audit entries",
                "ordering": ["-id"],
                "default_permissions": ("view",),
                "indexes": [
                    models.Index(fields=["username", "-id"], name="audit_username"),
                    models.Index(fields=["action", "-id"], name="audit_action"),
                    models.Index(fields=["object_id", "-id"], name="audit_object"),
                    models.Index(fields=["at"], name="audit_at"),
                ],
            },
        ),
    ]
