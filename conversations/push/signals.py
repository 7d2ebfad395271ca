"""Streams end when their user's access does: a logout, or any change to the account (staff
status, active flag, password) makes the user's open streams check their session again at once."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .notices import access_changed


@receiver(user_logged_out)
def _logged_out(sender, request, user, **kwargs) -> None:
    if user is not None:
        access_changed(user.pk)


@receiver(post_save, sender=get_user_model())
@receiver(post_delete, sender=get_user_model())
def _account_changed(sender, instance, **kwargs) -> None:
    access_changed(instance.pk)
