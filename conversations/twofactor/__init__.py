"""The second factor: TOTP authenticator apps and single-use recovery codes, on django-otp.

- `devices.py`: setting a factor up, checking a code (throttled, replay-proof), recovery codes.
- `qr.py`: the enrolment QR code as inline SVG drawn here (no image, no script: CSP as is).
- `forms.py`, `views.py`, `urls.py`: the pages under /account/two-factor/.
Who needs it and when a session has passed it is decided in conversations/access.py.
"""
