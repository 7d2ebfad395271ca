"""Simulated staff: logged-in `requests.Session`s that open pages and poll the way htmx does.

Every request goes through `Staff.get`, which times it (sending to the last byte of the body) and
files the latency and status under a kind ("detail", "events-poll", ...) in a `Recorder`.
"""

from __future__ import annotations

import html
import random
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
ATTRIBUTE = re.compile(r'([a-z-]+)="([^"]*)"')

HTMX_TABS = {"HX-Request": "true", "HX-Target": "tabs"}


@dataclass
class Recorder:
    """Latencies (seconds) and statuses per kind of request, from many threads."""

    samples: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, seconds: float, status: str) -> None:
        with self.lock:
            self.samples[kind].append(seconds)
            self.statuses[kind][status] += 1

    def errors(self, kind: str, expected: tuple[int, ...]) -> int:
        ok = {str(code) for code in expected}
        return sum(n for status, n in self.statuses[kind].items() if status not in ok)


class BenchError(RuntimeError):
    pass


class Staff:
    """One browser: its own connection pool and cookies."""

    def __init__(self, base_url: str, recorder: Recorder) -> None:
        self.base_url = base_url
        self.recorder = recorder
        self.session = requests.Session()

    def login(self, username: str, password: str) -> None:
        started = time.perf_counter()
        page = self.session.get(self.base_url + "/login/", timeout=30)
        token = CSRF_FIELD.search(page.text)
        if page.status_code != 200 or token is None:
            raise BenchError(f"GET /login/ answered {page.status_code} without a CSRF token")
        answer = self.session.post(
            self.base_url + "/login/",
            data={
                "csrfmiddlewaretoken": token.group(1),
                "username": username,
                "password": password,
                "next": "",
            },
            headers={"Referer": self.base_url + "/login/"},
            allow_redirects=False,
            timeout=30,
        )
        self.recorder.add("login", time.perf_counter() - started, str(answer.status_code))
        if answer.status_code != 302 or "sessionid" not in self.session.cookies:
            raise BenchError(f"logging in as {username!r} failed ({answer.status_code})")

    def share_login(self, other: Staff) -> None:
        """Use another browser's session cookie (a second tab of the same staff member)."""
        self.session.cookies.update(other.session.cookies)

    def get(
        self, kind: str, path: str, headers: dict[str, str] | None = None
    ) -> requests.Response | None:
        started = time.perf_counter()
        try:
            response = self.session.get(
                self.base_url + path, headers=headers, timeout=30, allow_redirects=False
            )
        except requests.RequestException as exc:
            self.recorder.add(kind, time.perf_counter() - started, type(exc).__name__)
            return None
        self.recorder.add(kind, time.perf_counter() - started, str(response.status_code))
        return response

    def close(self) -> None:
        self.session.close()


def closed_loop(browsers: list[Staff], seconds: float, request: Callable[[Staff], object]) -> float:
    """Each browser in its own thread sends requests back to back for `seconds`.

    Returns the measured wall time (for throughput), from the common start to the last answer.
    """
    start = threading.Barrier(len(browsers) + 1)
    deadline: list[float] = []

    def loop(browser: Staff) -> None:
        start.wait()
        while time.monotonic() < deadline[0]:
            request(browser)

    threads = [threading.Thread(target=loop, args=(b,), daemon=True) for b in browsers]
    for thread in threads:
        thread.start()
    began = time.monotonic()
    deadline.append(began + seconds)
    start.wait()
    for thread in threads:
        thread.join()
    return time.monotonic() - began


def in_threads(count: int, work: Callable[[int], object]) -> None:
    """Run work(0..count-1) in `count` threads and re-raise the first failure."""
    failures: list[BaseException] = []

    def run(index: int) -> None:
        try:
            work(index)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


@dataclass(frozen=True)
class Poll:
    """What htmx sends for a polling element: its hx-get, and HX-Target set to the id of the
    element it swaps into (hx-target's, or the element's own when it has none)."""

    url: str
    headers: dict[str, str]


def htmx_poll(page: requests.Response | None, element_id: str, *, live: bool = True) -> Poll | None:
    """The poll of the element with this id in a page (None when it is not there or, with
    `live`, when it does not poll: without, any hx-get it has, such as a load trigger's)."""
    if page is None or page.status_code != 200:
        return None
    tag = re.search(rf'<[a-z]+ id="{re.escape(element_id)}"[^>]*>', page.text)
    if tag is None:
        return None
    attributes = {k: html.unescape(v) for k, v in ATTRIBUTE.findall(tag.group(0))}
    if "hx-get" not in attributes or (live and "data-poll" not in tag.group(0)):
        return None
    target = attributes.get("hx-target", "this")
    target_id = element_id if target == "this" else target.removeprefix("#")
    return Poll(attributes["hx-get"], {"HX-Request": "true", "HX-Target": target_id})


def staff_visits(browser: Staff, conversations: list[str], *, pause: float = 0.0) -> None:
    """What a staff member does with each conversation they look into.

    The list page, the conversation (members tab), the events tab as a page, then a tab switch
    back to members through htmx (as a click on the tab does).
    """
    for conversation_id in conversations:
        base = f"/conversations/{conversation_id}"
        browser.get("list", "/conversations/")
        browser.get("detail", f"{base}/")
        browser.get("events-tab", f"{base}/events/")
        browser.get("tab-switch", f"{base}/members/", HTMX_TABS)
        if pause:
            time.sleep(pause)


def viewer(
    browser: Staff,
    conversation_id: str,
    *,
    tab: str,
    opened: threading.Barrier,
    started: threading.Event,
    until: list[float],
    interval: float,
    rng: random.Random,
) -> None:
    """A staff member with a conversation's tab open ("events" or "members"): the header and the
    tab's live panel poll every `interval` s.

    The members panel first loads itself (each member's record) and polls from that answer. The
    first polls come at a random point of the first interval, as viewers open the page at
    different moments; after that, every `interval` seconds like htmx's `every 5s`.
    """
    page = browser.get("viewer-open", f"/conversations/{conversation_id}/{tab}/")
    header = htmx_poll(page, "conversation-header")
    if tab == "events":
        panel, kind = htmx_poll(page, "events-poller"), "events-poll"
    else:
        loader = htmx_poll(page, "members-panel", live=False)
        loaded = browser.get("members-load", loader.url, loader.headers) if loader else None
        panel, kind = htmx_poll(loaded, "members-panel"), "members-poll"
    opened.wait()
    started.wait()
    if panel is None or header is None:
        raise BenchError(f"the {tab} tab of {conversation_id} does not poll both panels")
    next_at = time.monotonic() + rng.uniform(0, interval)
    while next_at < until[0]:
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        browser.get(kind, panel.url, panel.headers)
        browser.get("header-poll", header.url, header.headers)
        next_at += interval
