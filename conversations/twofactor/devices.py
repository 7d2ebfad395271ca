"""Setting up a second factor and checking its codes, on django-otp's devices.

A user's second factor is one authenticator app (a TOTPDevice) and a sheet of single-use
recovery codes (one StaticDevice holding RECOVERY_CODE_COUNT StaticTokens).

Checking a code, whatever its kind:
- a wrong code slows every kind of code down alike (django-otp's throttling, per device, in the
  database: waits of 1, 2, 4, 8... seconds after successive failures), so guessing recovery
  codes instead of app codes, or both in turn, gains nothing;
- while throttled, no code is tried at all, not even the right one;
- the devices are locked for the check (SELECT ... FOR UPDATE; SQLite runs one writer at a time):
  two requests cannot both spend one recovery code, nor race past the throttle;
- an app code is accepted within one 30 s step either way (clock drift), and never twice: only a
  step after the last one accepted counts (django-otp's `last_t`);
- a recovery code is deleted when used.
"""

from __future__ import annotations

import re
from base64 import b32encode
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

RECOVERY_CODE_COUNT = 10
# Steps of 30 s either side of now whose codes are accepted too: phones' clocks drift a little.
TOTP_TOLERANCE = 1
APP_DEVICE_NAME = "Authenticator app"
RECOVERY_DEVICE_NAME = "Recovery codes"

# What each kind of code looks like once normalised: 6 digits from an app; 8 characters of
# lower-case base32 for a recovery code (StaticToken.random_token: 5 random bytes).
APP_CODE = re.compile(r"[0-9]{6}")
RECOVERY_CODE = re.compile(r"[a-z2-7]{8}")


def normalise(code: str) -> str:
    """A code as typed or pasted ("123 456", "ABCD-EFGH") in the form it is stored in."""
    return re.sub(r"[\s-]", "", code).lower()


@dataclass(frozen=True)
class Check:
    """The outcome of one code: the device that accepted it, or why not (a wrong code, or
    `locked_until`: too many wrong codes, none is tried until then)."""

    device: Device | None = None
    locked_until: datetime | None = None

    @property
    def accepted(self) -> bool:
        return self.device is not None

    @property
    def recovery_code(self) -> bool:
        return isinstance(self.device, StaticDevice)


def _lock_out(devices: list[Any]) -> datetime | None:
    """Until when the throttled devices among these refuse to check a code (None: none is)."""
    refusals = [info for allowed, info in (d.verify_is_allowed() for d in devices) if not allowed]
    return max((info["locked_until"] for info in refusals), default=None)


def check_code(user: Any, code: str) -> Check:
    """Check a normalised code against the user's confirmed devices."""
    with transaction.atomic():
        devices = [
            *TOTPDevice.objects.select_for_update()
            .filter(user=user, confirmed=True)
            .order_by("pk"),
            *StaticDevice.objects.select_for_update()
            .filter(user=user, confirmed=True)
            .order_by("pk"),
        ]
        locked_until = _lock_out(devices)
        if locked_until is not None:
            return Check(locked_until=locked_until)
        kind = TOTPDevice if APP_CODE.fullmatch(code) else StaticDevice
        for device in devices:
            if isinstance(device, kind) and device.verify_token(code):
                for other in devices:
                    if other is not device and other.throttling_failure_count:
                        other.throttle_reset()
                return Check(device=device)
        # verify_token counted the failure on the devices of this kind; count it on the others.
        for device in devices:
            if not isinstance(device, kind):
                device.throttle_increment()
        return Check()


def pending_app(user: Any) -> TOTPDevice:
    """The authenticator app being set up: the same key until it is confirmed, so that a page
    reload shows the QR code already scanned."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    if device is None:
        device = TOTPDevice.objects.create(
            user=user, name=APP_DEVICE_NAME, confirmed=False, tolerance=TOTP_TOLERANCE
        )
    return device


def confirm_app(user: Any, code: str) -> tuple[Check, list[str]]:
    """Confirm the app being set up with a code from it. Once confirmed it replaces any earlier
    app, and a new sheet of recovery codes replaces any earlier one: the codes are returned, to
    be shown this once."""
    with transaction.atomic():
        device = (
            TOTPDevice.objects.select_for_update()
            .filter(user=user, confirmed=False)
            .order_by("pk")
            .first()
        )
        if device is None:  # confirmed meanwhile (another tab), or removed
            return Check(), []
        locked_until = _lock_out([device])
        if locked_until is not None:
            return Check(locked_until=locked_until), []
        if not device.verify_token(code):
            return Check(), []
        TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        return Check(device=device), replace_recovery_codes(user)


def replace_recovery_codes(user: Any) -> list[str]:
    """A new sheet of recovery codes; the old codes stop working. The user's confirmed sheet is
    kept as a device (so a session verified with a recovery code stays verified, and its
    throttling state stays); any other (an administrator's extra or unconfirmed one) goes."""
    with transaction.atomic():
        sheets = StaticDevice.objects.select_for_update().filter(user=user)
        device = sheets.filter(confirmed=True).order_by("pk").first()
        if device is None:
            device = StaticDevice.objects.create(user=user, name=RECOVERY_DEVICE_NAME)
        sheets.exclude(pk=device.pk).delete()
        device.token_set.all().delete()
        codes: list[str] = []
        while len(codes) < RECOVERY_CODE_COUNT:
            code = StaticToken.random_token()
            if code not in codes:
                codes.append(code)
        StaticToken.objects.bulk_create([StaticToken(device=device, token=c) for c in codes])
        return codes


def remove_all(user: Any) -> None:
    """Turn the second factor off: the app and the recovery codes are forgotten."""
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).delete()
        StaticDevice.objects.filter(user=user).delete()


def confirmed_app(user: Any) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()


def recovery_codes_left(user: Any) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


def manual_key(device: TOTPDevice) -> str:
    """The secret as typed into an app by hand: base32, in groups of four."""
    key = b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(key[i : i + 4] for i in range(0, len(key), 4))
