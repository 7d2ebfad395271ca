"""The live server of the browser tests (pytest-django's `live_server`) answers each request in a
thread of its own, at the same time as others, as the dashboard's own servers do: a page's panels
all ask at once when it is shown again. Each such request must be answered as its user.

Once, both browser tries of a test failed because they were not: the live server's request
threads all used the test thread's one in-memory SQLite connection, which is not safe to use from
several threads at once (a session read found no row; its cookie was deleted; the page went to the
login form). tests/settings.py gives SQLite tests a database file instead, where each thread has
a connection of its own."""

from __future__ import annotations

import threading

import pytest
import requests
from django.conf import settings

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 8
ROUNDS = 60


def test_the_live_server_shares_no_database_connection_between_threads(live_server):
    # With an in-memory SQLite database, pytest-django gives the server the test thread's
    # connection, for every request thread to use.
    assert live_server.thread.connections_override == {}


def test_concurrent_requests_of_a_logged_in_user_are_all_answered_as_that_user(
    live_server, client, django_user_model
):
    staff = django_user_model.objects.create_user("staff", password="staff-pass-1", is_staff=True)
    client.force_login(staff)
    cookies = {settings.SESSION_COOKIE_NAME: client.cookies[settings.SESSION_COOKIE_NAME].value}
    answers: list[str] = []
    together = threading.Barrier(THREADS)

    def browse() -> None:
        for _ in range(ROUNDS):
            together.wait(timeout=60)  # each round's requests sent at once
            try:
                # The cookie given each time: an answer that deletes it does not hide the others.
                response = requests.get(
                    live_server.url + "/", cookies=cookies, allow_redirects=False, timeout=30
                )
                answers.append(f"{response.status_code} {response.headers.get('Location')}")
            except requests.RequestException as exc:
                answers.append(repr(exc))

    threads = [threading.Thread(target=browse) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert len(answers) == THREADS * ROUNDS
    # "/" sends staff to the live board; anyone the dashboard takes for anonymous to the login.
    wrong = [answer for answer in answers if answer != "302 /live/"]
    assert wrong == [], f"{len(wrong)} of {len(answers)} answered otherwise: {sorted(set(wrong))}"
