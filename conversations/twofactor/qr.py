"""The enrolment QR code as inline SVG, drawn on the server from qrcode's module matrix.

Inline, so the page needs no image URL (a data: URL would widen the CSP's img-src) and no
script. Drawn here rather than with qrcode's SVG writer so that the markup is ours alone: it is
made of fixed text and integers, nothing from the user or the secret appears in it as text.
"""

from __future__ import annotations

import qrcode
from django.utils.safestring import SafeString, mark_safe
from qrcode.constants import ERROR_CORRECT_M

# The quiet zone around the code, in modules (4 is what the QR standard asks for).
BORDER = 4
# Shown size in CSS pixels; the drawing itself is in modules (viewBox), so it scales sharply.
SIZE_PX = 220


def modules(text: str) -> list[list[bool]]:
    """The dark (True) and light modules of the smallest QR code holding `text`, quiet zone
    included."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=BORDER)
    code.add_data(text)
    code.make(fit=True)
    return code.get_matrix()


def path_data(matrix: list[list[bool]]) -> str:
    """One SVG path for the dark modules: a rectangle per horizontal run of them."""
    parts = []
    for y, row in enumerate(matrix):
        x = 0
        while x < len(row):
            if not row[x]:
                x += 1
                continue
            start = x
            while x < len(row) and row[x]:
                x += 1
            parts.append(f"M{start} {y}h{x - start}v1h{start - x}z")
    return "".join(parts)


def qr_svg(text: str) -> SafeString:
    """The QR code of `text` as an <svg> element to put straight into a page."""
    matrix = modules(text)
    size = len(matrix)
    # Safe without escaping: every piece is a constant or an int formatted here (path_data is
    # built of "M", "h", "v", "z" and ints); `text` only decides which modules are dark.
    # Black on a white square whatever the theme: scanners expect dark modules on light.
    return mark_safe(  # noqa: S308
        f'<svg xmlns="http://www.w3.org/2000/svg" class="qr-code" viewBox="0 0 {size} {size}" '
        f'width="{SIZE_PX}" height="{SIZE_PX}" shape-rendering="crispEdges" role="img" '
        f'aria-label="QR code for your authenticator app">'
        f'<rect width="{size}" height="{size}" fill="#fff"/>'
        f'<path fill="#000" d="{path_data(matrix)}"/></svg>'
    )
