"""The `{% load dashboard %}` filters and tags, called directly and through real template rendering.

Their input is upstream data: hostile URLs must never become links, hostile ids never dashboard
links, and every label comes out escaped.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import unicodedata

import pytest
from django.template import Context, Template
from django.urls import reverse
from django.utils.safestring import SafeString
from hypothesis import given, settings
from hypothesis import strategies as st

from conversations import display
from conversations.templatetags.dashboard import (
    duration,
    id_link,
    member_link,
    pretty_json,
    safe_url,
    truncate_middle,
    utc_time,
    utc_time_tag,
)

CON = "CON-1b7f3c2e-5a8d-4e21-9c0f-7d6e5b4a3c21"
MEM = "MEM-0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
USR = "USR-9f8e7d6c-5b4a-4392-8170-6e5d4c3b2a19"
XSS = '<script>alert("x")</script>'
ESCAPED_XSS = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"


def render(source: str, **context) -> str:
    return Template("{% load dashboard %}" + source).render(Context(context))


# --- safe_url

UNSAFE_URLS = [
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "JAVASCRIPT:alert(1)",
    "\x00javascript:alert(1)",
    "   javascript:alert(1)",
    "\t\n javascript:alert(1)",
    "\u200bjavascript:alert(1)",  # zero-width space
    "\ufeffjavascript:alert(1)",  # byte-order mark
    "\u202ejavascript:alert(1)",  # right-to-left override
    "\u2066javascript:alert(1)",  # left-to-right isolate
    "\u00a0javascript:alert(1)",  # no-break space
    "java\nscript:alert(1)",
    "java\tscript:alert(1)",
    "java\u200bscript:alert(1)",
    "javascript&colon;alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "DATA:image/svg+xml;base64,PHN2Zz4=",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "ftp://files.example/x",
    "mailto:someone@example.com",
    "//evil.example/x.png",
    "\\\\evil.example/x.png",
    "https:\\\\evil.example",
    "https:/evil.example",
    "https:evil.example",
    "https:",
    "https://",
    "/static/avatar.png",
    "avatar.png",
    "../avatar.png",
    "?q=1",
    "#top",
    "",
    "   ",
    "\uff48ttps://evil.example",  # a fullwidth h: not the http scheme
    "https\u200b://evil.example",
    "https://ok.example/\x00x",
    "https://ok.example/a\nb",
]


@pytest.mark.parametrize("url", UNSAFE_URLS)
def test_safe_url_rejects_every_other_scheme_and_relative_urls(url):
    assert safe_url(url) == ""
    assert render('<img src="{{ url|safe_url }}">', url=url) == '<img src="">'


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.com/avatar.png", "https://example.com/avatar.png"),
        ("http://example.com", "http://example.com"),
        ("HTTPS://EXAMPLE.COM/A", "HTTPS://EXAMPLE.COM/A"),
        ("  https://example.com/a  ", "https://example.com/a"),
        ("\u200bhttps://example.com/a\u200b", "https://example.com/a"),
        ("\ufeffhttps://example.com/a\n", "https://example.com/a"),
        ("https://example.com/a?b=1&c=2#d", "https://example.com/a?b=1&c=2#d"),
        ("https://example.com/ünïcode", "https://example.com/ünïcode"),
    ],
)
def test_safe_url_keeps_http_and_https(url, expected):
    assert safe_url(url) == expected


@pytest.mark.parametrize("value", [None, 5, b"https://example.com", ["https://example.com"]])
def test_safe_url_of_a_non_string_is_empty(value):
    assert safe_url(value) == ""


def test_an_accepted_url_is_still_escaped_in_an_attribute():
    url = 'https://example.com/"><script>alert(1)</script>'
    html = render('<a href="{{ url|safe_url }}">x</a>', url=url)
    assert "<script>" not in html
    assert html == (
        '<a href="https://example.com/&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;">x</a>'
    )


# --- utc_time


@pytest.mark.parametrize(
    ("value", "iso", "shown"),
    [
        ("2019-09-03T18:40:24.324Z", "2019-09-03T18:40:24.324Z", "2019-09-03 18:40:24"),
        ("2019-09-03T20:40:24.324+02:00", "2019-09-03T18:40:24.324Z", "2019-09-03 18:40:24"),
        ("2019-09-03 18:40:24", "2019-09-03T18:40:24.000Z", "2019-09-03 18:40:24"),
        ("2020-01-01T14:00:00.00Z", "2020-01-01T14:00:00.000Z", "2020-01-01 14:00:00"),
        (dt.datetime(2026, 11, 20, 9, 15, 2, 120000, tzinfo=dt.UTC), "2026-11-20T09:15:02.120Z",
         "2026-11-20 09:15:02"),
        (dt.datetime(2026, 11, 20, 9, 15, 2), "2026-11-20T09:15:02.000Z", "2026-11-20 09:15:02"),
        (dt.datetime(2026, 11, 20, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
         "2026-11-19T19:00:00.000Z", "2026-11-19 19:00:00"),
    ],
)  # fmt: skip
def test_utc_time_gives_a_time_element_in_utc(value, iso, shown):
    millis = iso[11:23]
    expected = (
        f'<time datetime="{iso}" title="{iso[:10]} {millis} UTC" data-local-time>{shown} UTC</time>'
    )
    assert utc_time(value) == expected
    assert utc_time_tag(value) == expected
    assert render("{% utc_time when %}", when=value) == expected
    assert render("{{ when|utc_time }}", when=value) == expected, "markup, not escaped text"


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        "2019-13-45T99:99:99Z",
        XSS,
        "2019-09-03T18:40:24Z<script>",
        0,
        1700000000,
        1700000000.5,
        True,
        dt.date(2026, 11, 20),
        ["2019-09-03T18:40:24Z"],
        dt.datetime.min.replace(tzinfo=dt.timezone(dt.timedelta(hours=2))),
        dt.datetime.max.replace(tzinfo=dt.timezone(dt.timedelta(hours=-2))),
    ],
    ids=lambda value: type(value).__name__,
)
def test_utc_time_of_no_usable_time_is_a_dash(value):
    assert utc_time(value) == "—"
    assert render("{% utc_time when %}|{{ when|utc_time }}", when=value) == "—|—"


# --- pretty_json


def test_pretty_json_sorts_and_indents():
    assert pretty_json({"b": 1, "a": [1, "é"]}) == '{\n  "a": [\n    1,\n    "é"\n  ],\n  "b": 1\n}'
    assert pretty_json(None) == "null"
    assert pretty_json("text") == '"text"'


def test_pretty_json_output_is_escaped_in_a_template():
    html = render("<pre>{{ raw|pretty_json }}</pre>", raw={"text": XSS, "k<": "'"})
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "&quot;k&lt;&quot;: &quot;&#x27;&quot;" in html
    assert not isinstance(pretty_json({"text": XSS}), SafeString)


def test_pretty_json_of_a_huge_value_is_cut_with_a_note():
    huge = {"name": "N" * 1_000_000, "items": list(range(100_000))}
    shown = pretty_json(huge)
    assert len(shown) < display.JSON_LIMIT + 200
    assert shown.startswith('{\n  "items": [')
    assert "cut here: the whole value is" in shown
    html = render("<pre>{{ v|pretty_json }}</pre>", v={"x": XSS * 20_000})
    assert "<script>" not in html and "cut here" in html, "cut, and still escaped"


def test_pretty_json_of_keys_that_cannot_be_sorted_keeps_their_order():
    assert pretty_json({"b": 1, 2: "two"}) == '{\n  "b": 1,\n  "2": "two"\n}'


def test_pretty_json_shows_unserialisable_values_as_text():
    value = {
        "when": dt.datetime(2026, 11, 20, 9, 15, tzinfo=dt.UTC),
        "amount": decimal.Decimal("1.50"),
        "tags": {"only"},
        "object": object,
    }
    shown = pretty_json(value)
    assert '"when": "2026-11-20 09:15:00+00:00"' in shown
    assert '"amount": "1.50"' in shown
    assert '"tags": "{\'only\'}"' in shown
    assert '"object": "<class \'object\'>"' in shown
    assert "&lt;class" in render("{{ v|pretty_json }}", v=value)


def test_pretty_json_of_a_value_json_cannot_hold():
    circular: list[object] = []
    circular.append(circular)
    message = "(a value that cannot be shown as JSON)"
    assert pretty_json(circular) == message
    assert pretty_json({"n": 10**5000}) == message  # more digits than Python will print
    deep: list[object] = []
    for _ in range(5_000):
        deep = [deep]
    assert pretty_json(deep) == message
    assert render("{{ v|pretty_json }}", v=circular) == message


# --- duration


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0, "0 s"),
        (0.9, "0 s"),
        (45, "45 s"),
        (60, "1 min"),
        (61, "1 min 1 s"),
        (3599, "59 min 59 s"),
        (3600, "1 h"),
        (3660, "1 h 1 min"),
        (3661, "1 h 1 min"),
        (86400, "1 d"),
        (90061, "1 d 1 h"),
        (86400 * 400, "400 d"),
        ("90", "1 min 30 s"),
        ("90.7", "1 min 30 s"),
        (dt.timedelta(minutes=2, seconds=3), "2 min 3 s"),
        (dt.timedelta(days=1, hours=2, minutes=3), "1 d 2 h"),
        (None, "—"),
        (-1, "—"),
        (dt.timedelta(seconds=-5), "—"),
        ("ten", "—"),
        ("", "—"),
        (True, "—"),
        (False, "—"),
        (float("nan"), "—"),
        (float("inf"), "—"),
        (10**400, "—"),
        ([60], "—"),
        ({"s": 1}, "—"),
    ],
)
def test_duration(value, shown):
    assert duration(value) == shown
    assert render("{{ v|duration }}", v=value) == shown


# --- truncate_middle


@pytest.mark.parametrize(
    ("value", "length", "shown"),
    [
        (CON, 24, "CON-1b7f3c2e…d6e5b4a3c21"),
        (CON, 10, "CON-1…3c21"),
        (CON, 1, "CO…21"),  # never shorter than five characters
        (CON, "x", "CON-1b7f3c2e…d6e5b4a3c21"),
        (CON, None, "CON-1b7f3c2e…d6e5b4a3c21"),
        (CON, 10**400, CON),
        (CON, len(CON), CON),
        ("short", 24, "short"),
        (12345678901234567890123456789, 10, "12345…6789"),
        (None, 24, ""),
        pytest.param(10**5000, 24, "", id="more-digits-than-python-prints"),
    ],
)
def test_truncate_middle(value, length, shown):
    assert truncate_middle(value, length) == shown
    if "…" in shown:
        assert len(shown) == max(int(length) if isinstance(length, int) else 24, 5)


def test_truncate_middle_in_a_template_escapes_what_it_keeps():
    assert render("{{ v|truncate_middle }}", v=CON) == "CON-1b7f3c2e…d6e5b4a3c21"
    assert render("{{ v|truncate_middle:10 }}", v=CON) == "CON-1…3c21"
    assert render("{{ v|truncate_middle:40 }}", v=XSS) == ESCAPED_XSS
    assert render("{{ v|truncate_middle:9 }}", v=XSS) == "&lt;scr…ipt&gt;"


# --- id_link and member_link


@pytest.mark.parametrize(
    ("kind", "value", "route"),
    [
        ("conversation", CON, "conversations:detail"),
        ("user", USR, "conversations:user"),
        ("conversation", "CON-46edebio0391", "conversations:detail"),
        ("conversation", "CON-" + "a" * 80, "conversations:detail"),
    ],
)
def test_id_link_links_a_well_formed_id(kind, value, route):
    url = reverse(route, args=[value])
    assert id_link(kind, value) == f'<a href="{url}">{value}</a>'
    assert render("{% id_link kind value %}", kind=kind, value=value) == (
        f'<a href="{url}">{value}</a>'
    )
    assert render("{% id_link kind value label %}", kind=kind, value=value, label=XSS) == (
        f'<a href="{url}">{ESCAPED_XSS}</a>'
    )


def test_id_link_urls_are_the_dashboard_pages():
    assert id_link("conversation", CON) == f'<a href="/conversations/{CON}/">{CON}</a>'
    assert id_link("user", USR, "Ana") == f'<a href="/users/{USR}/">Ana</a>'
    assert id_link("user", USR, "") == f'<a href="/users/{USR}/">{USR}</a>', "no label: the id"


MALFORMED_IDS = [
    "CONV-1b7f3c2e",
    "con-1b7f3c2e",
    "CON-",
    "CON--abc",
    "CON-a/b",
    "CON-../x",
    "CON-..",
    "../CON-abc",
    "CON-abc/../../admin",
    "CON-abc?x=1",
    "CON-abc#x",
    "CON-abc%2F..",
    "CON-abc\n",
    " CON-abc",
    "CON-abc ",
    "CON-ab\u200bc",
    "CON-\uff41\uff42\uff43",  # fullwidth letters
    "CON-" + "a" * 81,
    "CON-" + "a" * 10_000,
    "CON-<script>",
    'CON-abc"><script>alert(1)</script>',
    USR,  # the wrong kind
    MEM,
]


@pytest.mark.parametrize("value", MALFORMED_IDS)
def test_id_link_of_a_malformed_id_is_escaped_text(value):
    html = render("{% id_link 'conversation' value %}", value=value)
    assert "<a" not in html and "href" not in html
    assert "<script>" not in html
    assert html == str(id_link("conversation", value))
    assert "&lt;" in html or "<" not in value


@pytest.mark.parametrize(
    ("kind", "value", "label", "shown"),
    [
        ("conversation", None, None, "—"),
        ("conversation", "", None, "—"),
        ("conversation", None, "Unnamed", "Unnamed"),
        ("conversation", 12345, None, "12345"),
        ("conversation", ["CON-abc"], None, "[&#x27;CON-abc&#x27;]"),
        pytest.param("conversation", 10**5000, None, "—", id="more-digits-than-python-prints"),
        ("member", MEM, None, MEM),  # members need their conversation: member_link
        ("session", "SES-abc", None, "SES-abc"),
        (None, CON, None, CON),
        (["conversation"], CON, None, CON),
        ("conversation", "CON-<b>", "<i>label</i>", "&lt;i&gt;label&lt;/i&gt;"),
    ],
)
def test_id_link_without_a_route_or_a_usable_id_is_text(kind, value, label, shown):
    assert id_link(kind, value, label) == shown
    assert render("{% id_link kind value label %}", kind=kind, value=value, label=label) == shown


def test_member_link_links_a_member_of_a_conversation():
    url = reverse("conversations:member", args=[CON, MEM])
    assert url == f"/conversations/{CON}/members/{MEM}/"
    assert member_link(CON, MEM) == f'<a href="{url}">{MEM}</a>'
    html = render("{% member_link con mem label %}", con=CON, mem=MEM, label=XSS)
    assert html == f'<a href="{url}">{ESCAPED_XSS}</a>'


@pytest.mark.parametrize(
    ("conversation_id", "member_id", "shown"),
    [
        (CON, "MEM-../x", "MEM-../x"),
        (CON, "MEM-a/b", "MEM-a/b"),
        (CON, "knocker:1a2b3c", "knocker:1a2b3c"),
        (CON, "MEM-" + "a" * 81, "MEM-" + "a" * 81),
        (CON, USR, USR),
        (CON, "MEM-<script>", "MEM-&lt;script&gt;"),
        (CON, None, "—"),
        (CON, "", "—"),
        ("CON-../x", MEM, MEM),
        (None, MEM, MEM),
        ("", MEM, MEM),
        (MEM, MEM, MEM),
    ],
)
def test_member_link_of_a_malformed_id_is_escaped_text(conversation_id, member_id, shown):
    assert member_link(conversation_id, member_id) == shown
    html = render("{% member_link con mem %}", con=conversation_id, mem=member_id)
    assert html == shown
    assert "<a" not in html


def test_member_link_label_replaces_the_id_in_text_too():
    assert member_link(CON, "MEM-bad/", "Ana <agent>") == "Ana &lt;agent&gt;"
    assert member_link(CON, "", "Ana") == "Ana"


def test_a_link_never_carries_a_hostile_value_into_its_href():
    html = render(
        "{% for v in values %}{% id_link 'conversation' v %}{% id_link 'user' v %}"
        "{% member_link v v %}{% endfor %}",
        values=[*(v for v in MALFORMED_IDS if v not in (USR, MEM)), XSS, "javascript:alert(1)"],
    )
    assert "href" not in html
    assert "<" not in html, "all of it escaped text"
    assert "&lt;script&gt;" in html


# --- any input at all


@settings(max_examples=300, deadline=None)
@given(
    st.text()
    | st.builds(
        lambda junk, scheme, rest: junk + scheme + rest,
        st.text(alphabet=" \t\n\x00\u200b\u202e\ufeff\u00a0", max_size=3),
        st.sampled_from(["https://", "http://", "javascript:", "data:", "//", "HtTpS://", ""]),
        st.text(max_size=20),
    )
)
def test_safe_url_only_ever_gives_an_absolute_http_url(value):
    url = safe_url(value)
    if url:
        assert re.match(r"(?i)https?://.", url), url
        assert url in value, "never rewritten, only trimmed"
        assert not any(unicodedata.category(char) == "Cc" for char in url)


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.datetimes()
    | st.sampled_from([XSS, "<b>bold</b>", CON, MEM])
)


@settings(max_examples=200, deadline=None)
@given(value=scalars | st.lists(scalars, max_size=3), length=scalars)
def test_the_filters_never_raise_and_always_give_text(value, length):
    for shown in (
        utc_time(value),
        duration(value),
        truncate_middle(value, length),
        pretty_json(value),
        id_link("conversation", value, length),
        member_link(value, value),
    ):
        assert isinstance(shown, str)
    html = render(
        "{{ v|utc_time }}{{ v|duration }}{{ v|truncate_middle }}{{ v|pretty_json }}"
        "{% id_link 'conversation' v %}{% member_link v v %}",
        v=value,
    )
    assert "<script" not in html and "<b>" not in html


# --- fetch_again


def test_fetch_again_asks_for_its_region_again_after_a_delay():
    html = render('<div id="x" {% fetch_again url "x" 2 %}></div>', url="/users/?a=1&b=2")
    assert 'hx-get="/users/?a=1&amp;b=2"' in html
    assert 'hx-trigger="load delay:2s"' in html
    assert 'hx-select="#x"' in html and 'hx-swap="outerHTML"' in html


def test_fetch_again_escapes_what_it_is_given():
    html = render('<div {% fetch_again url "x" 1 %}></div>', url='/x/" onmouseover="alert(1)')
    assert 'onmouseover="alert' not in html
    assert "&quot; onmouseover=&quot;alert(1)" in html
