"""/search/ as staff use it: the header's box, pasted ids going to their page, results linked and
highlighted (escaped), filters and paging kept, any text answering 200 or a clear 400, never a 500,
and nothing read from the API."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils.html import escape
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conversations.store import search

from .conftest import support
from .store_helpers import event, forbid_upstream, webhook
from .test_search import CALLERS, conversation_id, member_id, store_call, user_id

pytestmark = pytest.mark.django_db
URL = reverse("conversations:search")
RAW_MARKERS = ("<script>alert", "<img src=x", 'onfocus="alert', "<b>bold")


@pytest.fixture
def callers(monkeypatch):
    forbid_upstream(monkeypatch)
    for i, caller in enumerate(CALLERS, start=1):
        store_call(i, *caller)


def result_ids(html: str) -> list[str]:
    rows = re.search(r"<tbody>(.*?)</tbody>", html, re.S).group(1)
    return re.findall(r'<code class="id">([^<]+)</code>', rows)


def test_staff_only(client, django_user_model):
    response = client.get(URL, {"q": "ada"})
    assert response.status_code == 302 and "/login/" in response["Location"]
    user = django_user_model.objects.create_user("visitor", password="x" * 12)
    client.force_login(user)
    assert client.get(URL, {"q": "ada"}).status_code == 403


@pytest.mark.parametrize("i", range(1, 6))
def test_staff_find_each_caller_by_number_name_address_and_word(staff_client, callers, i):
    name, number, sip_user, word = CALLERS[i - 1]
    detail = reverse("conversations:detail", args=[conversation_id(i)])
    for text in (
        number,
        f"+{number}",
        f"+{number[:2]} {number[2:6]} {number[6:]}",
        name,
        f"sip:{sip_user}@pbx.example.com",
        word,
    ):
        response = staff_client.get(URL, {"q": text})
        html = response.content.decode()
        assert response.status_code == 200, text
        assert result_ids(html) == [conversation_id(i)], text
        assert f'href="{detail}"' in html
        assert "<mark>" in html, f"what matched {text!r} is highlighted"


def test_the_match_is_highlighted_and_escaped(staff_client, monkeypatch):
    forbid_upstream(monkeypatch)
    con = conversation_id(7)
    webhook(
        event(con, 1, "message", "", {"text": "<b>bold</b> pineapple <script>alert(1)</script>"})
    )
    html = staff_client.get(URL, {"q": "pineapple"}).content.decode()
    assert result_ids(html) == [con]
    assert "<mark>pineapple</mark>" in html
    assert escape("<b>bold</b>") in html
    assert not any(marker in html for marker in RAW_MARKERS)


def test_a_pasted_conversation_or_user_id_goes_to_its_page(staff_client, callers):
    response = staff_client.get(URL, {"q": f"  {conversation_id(1).lower()}  "})
    assert response.status_code == 302
    assert response["Location"] == reverse("conversations:detail", args=[conversation_id(1)])
    response = staff_client.get(URL, {"q": user_id(2)})
    assert response["Location"] == reverse("conversations:user", args=[user_id(2)])
    url = f"https://dash.example{reverse('conversations:detail', args=[conversation_id(3)])}"
    assert staff_client.get(URL, {"q": url})["Location"].endswith(f"/{conversation_id(3)}/")


def test_a_member_id_alone_finds_its_conversation(staff_client, callers):
    response = staff_client.get(URL, {"q": member_id(4)})
    assert response.status_code == 200
    assert result_ids(response.content.decode()) == [conversation_id(4)]


def test_filters_and_paging_keep_each_other(staff_client, callers):
    query = {"q": "+44 7700 900000", "page_size": "10", "event_type": "message", "live": "on"}
    html = staff_client.get(URL, query | {"page_size": "10"}).content.decode()
    assert len(result_ids(html)) == 5
    two = staff_client.get(URL, {"q": "+44 7700 900000", "page_size": "10"}).content.decode()
    assert result_ids(two) == result_ids(html)
    none = staff_client.get(URL, {"q": "+44 7700 900000", "event_type": "audio:dtmf"})
    assert result_ids(none.content.decode()) == []
    assert "Nothing in the stored history matches" in none.content.decode()


def test_paging_links_carry_the_filters(staff_client, callers, settings):
    html = staff_client.get(
        URL, {"q": "+44 7700 900000", "page_size": "10", "event_type": "message"}
    ).content.decode()
    assert 'rel="next"' not in html
    # Five results, pages of 10: one page. With more stored calls, a next link appears.
    for i in range(10, 22):
        store_call(i, f"Caller {i}", f"4477009{i:05d}", f"c{i}", "word")
    html = staff_client.get(
        URL, {"q": "+44 7700 900000", "page_size": "10", "event_type": "message"}
    ).content.decode()
    next_url = re.search(r'<a href="([^"]+)"[^>]*rel="next"', html).group(1).replace("&amp;", "&")
    assert "event_type=message" in next_url and "page_size=10" in next_url
    assert "cursor=o10" in next_url
    second = staff_client.get(next_url).content.decode()
    assert len(result_ids(second)) == 7
    assert not set(result_ids(second)) & set(result_ids(html))


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ({"q": "x" * 201}, 400),
        ({"q": "a\x00b"}, 400),
        ({"q": "ada", "cursor": "bogus"}, 400),
        ({"q": "ada", "cursor": "o999"}, 200),
        ({"q": "ada", "event_type": "member:*"}, 400),
        ({"q": "ada", "date_start": "2026-11-28", "date_end": "2026-11-01"}, 400),
        ({"q": "ada", "date_start": "yesterday"}, 400),
        ({"q": "ada", "page_size": "100000"}, 400),
        ({"q": "ada", "conversation": "<script>"}, 400),
        ({"q": ""}, 200),
        ({}, 200),
    ],
)
def test_bad_parameters_are_a_clear_400(staff_client, callers, query, status):
    response = staff_client.get(URL, query)
    assert response.status_code == status
    if status == 400:
        assert 'class="errornote"' in response.content.decode()


def test_a_search_that_runs_out_of_time_asks_for_a_narrower_one(staff_client, callers, monkeypatch):
    def too_broad(*args, **kwargs):
        raise search.TooBroad()

    monkeypatch.setattr(search, "search", too_broad)
    response = staff_client.get(URL, {"q": "the"})
    assert response.status_code == 400
    assert "took too long" in response.content.decode()
    assert 'value="the"' in response.content.decode(), "the form keeps the query to narrow it"


def test_the_header_box_is_on_every_staff_page_and_not_for_strangers(staff_client):
    for url in (reverse("conversations:live"), URL, "/no/such/page/"):
        html = staff_client.get(url).content.decode()
        assert 'id="header-search"' in html, url
    assert 'id="header-search"' not in Client().get(reverse("login")).content.decode()


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=st.text(max_size=200))
def test_any_text_up_to_200_characters_is_200_or_400_and_escaped(staff_client, text):
    response = staff_client.get(URL, {"q": text})
    assert response.status_code in (200, 302, 400)
    if response.status_code == 302:
        assert response["Location"].startswith("/")
    html = response.content.decode()
    assert not any(marker in html for marker in RAW_MARKERS)


@pytest.mark.parametrize(
    "text",
    [
        '<script>alert("xss")</script>',
        "'><img src=x onerror=alert(1)>",
        '" autofocus onfocus="alert(1)',
        "%",
        "_",
        "' OR 1=1 --",
        "🎉",
        "\u202e<script>alert(1)</script>",
        "{{ request }}{% debug %}",
    ],
)
def test_hostile_queries_are_shown_escaped(staff_client, callers, text):
    response = staff_client.get(URL, {"q": text})
    assert response.status_code == 200
    html = response.content.decode()
    assert not any(marker in html for marker in RAW_MARKERS)
    assert f'value="{escape(text)}"' in html


# --- exports of a search


def read_csv(response) -> list[dict[str, str]]:
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_a_search_exports_every_match_with_what_matched(staff_client, callers):
    query = {"q": "+44 7700 900000", "page_size": "10"}
    response = staff_client.get(URL, query | {"format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "search-44-7700-900000-" in response["Content-Disposition"]
    rows = read_csv(response)
    assert [row["id"] for row in rows] == [conversation_id(i) for i in (5, 4, 3, 2, 1)]
    assert all(row["matched"] == "Number: 447700900000" for row in rows)
    as_json = json.loads(
        b"".join(staff_client.get(URL, query | {"format": "json"}).streaming_content)
    )
    assert [row["id"] for row in as_json] == [row["id"] for row in rows]
    assert as_json[0]["matched"] == ["Number: 447700900000"]
    assert "+447700900211" in rows[3]["numbers"], "the members' numbers in E.164"


def test_the_page_offers_export_links_with_its_filters(staff_client, callers):
    html = staff_client.get(URL, {"q": "ada", "event_type": "message", "cursor": "o0"}).content
    links = re.findall(r'href="(/search/\?[^"]+format=(?:csv|json))"', html.decode())
    assert len(links) == 2
    for link in links:
        link = link.replace("&amp;", "&")
        assert "q=ada" in link and "event_type=message" in link and "cursor" not in link


def test_a_formula_in_a_name_is_harmless_in_the_search_export(staff_client, callers):
    from .store_helpers import api_conversation

    api_conversation(conversation_id(9), '=HYPERLINK("http://x")', "")
    rows = read_csv(staff_client.get(URL, {"q": '=HYPERLINK("http://x")', "format": "csv"}))
    assert [row["name"] for row in rows] == ['\'=HYPERLINK("http://x")']


def test_a_support_user_exports_a_search_masked(client, callers, django_user_model):
    client.force_login(support(django_user_model.objects.create_user("s", is_staff=True)))
    rows = read_csv(client.get(URL, {"q": "pineapple", "format": "csv"}))
    assert [row["id"] for row in rows] == [conversation_id(1)]
    assert rows[0]["matched"] == "Text: •••"
    assert "900100" not in rows[0]["numbers"] and "•••• 0100" in rows[0]["numbers"]


def test_a_bad_export_format_is_a_400(staff_client, callers):
    assert staff_client.get(URL, {"q": "ada", "format": "xlsx"}).status_code == 400
