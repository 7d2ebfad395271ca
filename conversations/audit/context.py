"""`admin_contact` for the templates: who can help someone locked out or refused
(DASHBOARD_ADMIN_CONTACT, as the operator wrote it; shown escaped). Empty when not set: the pages
then say "a superuser of this dashboard". Never a list of usernames: the lock-out page is for
anonymous visitors, and naming the accounts that can do everything would tell an attacker which
names to try."""

from django.conf import settings
from django.http import HttpRequest


def admin_contact(request: HttpRequest) -> dict[str, str]:
    return {"admin_contact": settings.DASHBOARD_ADMIN_CONTACT}
