"""Streams end when their user's access does: a logout, or any change to the account (staff
status, active flag, password, groups) makes the user's open streams check their session again at
once. A change of a group's permissions does so for every member of the group."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import m2m_changed, post_delete, post_save
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


@receiver(m2m_changed, sender=get_user_model().groups.through)
@receiver(m2m_changed, sender=get_user_model().user_permissions.through)
def _roles_changed(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    if not action.startswith("post_"):
        return
    if reverse:  # group.user_set.add(...): the users are in pk_set
        for pk in pk_set or ():
            access_changed(pk)
    else:
        access_changed(instance.pk)


@receiver(m2m_changed, sender=Group.permissions.through)
def _group_permissions_changed(sender, instance, action, reverse, **kwargs) -> None:
    if action.startswith("post_") and isinstance(instance, Group):
        for pk in instance.user_set.values_list("pk", flat=True):
            access_changed(pk)
