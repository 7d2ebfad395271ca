"""Hostile strings the sandbox plants in its world.

Everything the Conversation API returns is user-controlled text (names, custom data, message
bodies, SIP URIs...). A dashboard must escape all of it, refuse dangerous URL schemes, and never
evaluate it as a template. These payloads make such bugs visible in the browser and in tests.
"""

from __future__ import annotations

# Script/HTML/template/SQL/Unicode payloads. Order is stable: the world picks from this list
# with its seeded RNG, so reordering it changes every seeded world.
PAYLOADS: list[str] = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "</textarea><svg onload=alert(1)>",
    "'><svg/onload=alert(document.domain)>",
    "</script><script>alert(1)</script>",
    "<iframe src=javascript:alert(1)></iframe>",
    '<a href="javascript:alert(1)">click</a>',
    "<style>*{display:none}</style>",
    "{{ 7*7 }}",
    "{% debug %}",
    "{{ request.META }}",
    "${7*7}",
    "'; DROP TABLE conversations; --",
    "1' OR '1'='1",
    "\u202egnp.exe",  # right-to-left override: renders as "exe.png"
    "emoji \U0001f600\U0001f4de\U0001f44d\U0001f3fd family "
    "\U0001f468\u200d\U0001f469\u200d\U0001f467",
    "zero\u200bwidth\u200bspaces",
    "A" * 500,
    "line one\r\nSet-Cookie: sandbox=1",
    "tab\tand\nnewline",
    "nul\u0000byte",
    '=HYPERLINK("http://evil.example","x")',
    "[click me](javascript:alert(1))",
    "../../../../etc/passwd",
    "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    "&lt;b&gt;already escaped&lt;/b&gt;",
    "back\\slash \"double\" 'single' `backtick`",
    "<!-- unclosed comment",
    "null",
    "undefined",
    "",
]

# URLs with schemes a dashboard must never put in href/src as-is.
HOSTILE_URLS: list[str] = [
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    " javascript:alert(1)",
    "java\tscript:alert(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "vbscript:msgbox(1)",
    'https://example.com/x.png"><script>alert(1)</script>',
    "//evil.example/pixel.png",
]


def payload(index: int) -> str:
    """Return a payload by index, wrapping around, so callers can cycle through the corpus."""
    return PAYLOADS[index % len(PAYLOADS)]


def url(index: int) -> str:
    """Return a hostile URL by index, wrapping around."""
    return HOSTILE_URLS[index % len(HOSTILE_URLS)]
