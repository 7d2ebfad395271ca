"""Routing and handlers of the sandbox API: the /v1 read endpoints and the /_sandbox controls.

No sockets here: ``App.handle(Request) -> Response`` is plain Python, and server.py does the
HTTP. A ``Response`` with ``drop`` set means "send nothing": the server closes ("close") or resets
("reset") the connection instead, which is how connection-level faults are emulated.

Every read of the world happens under ``world.lock``, and bodies are serialised before the lock is
released, so live activity can never be seen half-applied or change a dict mid-encoding.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlencode

from sandbox import errors, hostile_wire, shapes
from sandbox.auth import AuthError, Verifier
from sandbox.config import SandboxConfig
from sandbox.errors import ApiError
from sandbox.faults import BAD_GATEWAY_HTML, HOLD_MODES, FaultError, Faults, FaultSettings
from sandbox.model import Conversation, Event, Member, User
from sandbox.paging import Cursor, CursorError, Page, decode_cursor, encode_cursor, paginate
from sandbox.stats import Stats
from sandbox.timefmt import parse_iso8601
from sandbox.webhooks import WebhookError, WebhookSender
from sandbox.world import DuplicateName, World

DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100
ORDERS = ("asc", "desc", "ASC", "DESC")  # the [S3] enum
MEMBER_STATES = ("INVITED", "JOINED", "LEFT")
USER_CONVERSATION_ORDER_BY = ("created", "custom_sort_key")
# A JSON document cut off mid-string: what a client sees when a proxy truncates a body.
MALFORMED_BODY = b'{"page_size":10,"_embedded":{"conversations":[{"id":"CON-'

_INT_RE = re.compile(r"^-?\d{1,18}$")
_ID_RE = re.compile(r"^\d{1,18}$")


@dataclass
class Request:
    method: str
    path: str  # without the query string, still percent-encoded
    query: dict[str, list[str]] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)  # case-insensitive .get is best
    body: bytes = b""
    base: str = "http://127.0.0.1"  # scheme://host[:port] that _links point at


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    drop: str | None = None  # "close" | "reset": send nothing and drop the connection
    # How the server breaks the sending of this response (hostile_wire.WIRE_MODES), if it does.
    wire: str | None = None
    drip_interval: float = 0.0

    def json(self) -> Any:
        return json.loads(self.body)


def _hostile(response: Response, mode: str, settings: FaultSettings) -> Response:
    if mode in hostile_wire.WIRE_MODES:
        response.wire = mode
        response.drip_interval = settings.drip_interval_ms / 1000
        return response
    body, headers = hostile_wire.rewrite_body(response.body, mode, settings)
    return Response(200, body, response.content_type, response.headers + headers)


def dumps(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def json_response(status: int, data: Any, headers: Sequence[tuple[str, str]] = ()) -> Response:
    return Response(status, dumps(data), headers=list(headers))


def error_response(exc: ApiError) -> Response:
    return json_response(exc.status, exc.body, exc.headers)


# ---------------------------------------------------------------------- query parameters


class Params:
    """Query-string validation that collects every problem, like the live 400 body does."""

    def __init__(self, query: Mapping[str, list[str]]) -> None:
        self.query = query
        self.invalid: list[tuple[str, str]] = []

    def raw(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def bad(self, name: str, reason: str) -> None:
        self.invalid.append((name, reason))

    def check(self) -> None:
        if self.invalid:
            raise errors.validation_failed(self.invalid)

    def page_size(self) -> int:
        raw = self.raw("page_size")
        if raw is None:
            return DEFAULT_PAGE_SIZE
        if not _INT_RE.match(raw.strip()):
            self.bad("page_size", '"page_size" must be a number')
            return DEFAULT_PAGE_SIZE
        value = int(raw)
        if value < 1:
            self.bad("page_size", '"page_size" must be larger than or equal to 1')
        elif value > MAX_PAGE_SIZE:
            self.bad("page_size", f'"page_size" must be less than or equal to {MAX_PAGE_SIZE}')
        return value

    def order(self) -> str:
        raw = self.raw("order")
        if raw is None:
            return "asc"
        if raw not in ORDERS:
            self.bad("order", f'"order" must be one of [{", ".join(ORDERS)}]')
            return "asc"
        return raw.lower()

    def cursor(self, kind: str, key_types: Sequence[type]) -> Cursor | None:
        raw = self.raw("cursor")
        if not raw:
            return None
        try:
            return decode_cursor(raw, kind, key_types)
        except CursorError:
            self.bad("cursor", '"cursor" is invalid')
            return None

    def date(self, name: str) -> int | None:
        raw = self.raw(name)
        if raw is None:
            return None
        value = parse_iso8601(raw)
        if value is None:
            self.bad(name, f'"{name}" must be a valid ISO 8601 date')
        return value

    def event_id(self, name: str) -> int | None:
        raw = self.raw(name)
        if raw is None or raw == "":
            return None
        if not _ID_RE.match(raw.strip()):
            self.bad(name, f'"{name}" must be a number')
            return None
        return int(raw)

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.raw(name)
        if raw is None:
            return default
        if raw.lower() not in ("true", "false"):
            self.bad(name, f'"{name}" must be a boolean')
            return default
        return raw.lower() == "true"

    def choice(self, name: str, choices: Sequence[str], *, upper: bool = False) -> str | None:
        raw = self.raw(name)
        if raw is None or raw == "":
            return None
        value = raw.upper() if upper else raw
        if value not in choices:
            self.bad(name, f'"{name}" must be one of [{", ".join(choices)}]')
            return None
        return value

    def text(self, name: str) -> str | None:
        raw = self.raw(name)
        return raw or None


# ---------------------------------------------------------------------- routing


Handler = Callable[..., Response]


@dataclass(frozen=True)
class Route:
    template: str  # e.g. "/v1/conversations/{id}" (stats key)
    pattern: re.Pattern[str]
    methods: dict[str, str]  # HTTP method -> App method name


def _route(template: str, **methods: str) -> Route:
    regex = re.sub(r"\{[a-z_]+\}", "([^/]+)", template)
    return Route(template, re.compile(regex), methods)


V1_ROUTES = [
    _route("/v1/conversations", GET="list_conversations"),
    _route("/v1/conversations/{id}", GET="get_conversation"),
    _route("/v1/conversations/{id}/members", GET="list_members"),
    _route("/v1/conversations/{id}/members/{member_id}", GET="get_member"),
    _route("/v1/conversations/{id}/events", GET="list_events"),
    _route("/v1/conversations/{id}/events/{event_id}", GET="get_event"),
    _route("/v1/users", GET="list_users"),
    _route("/v1/users/{id}", GET="get_user"),
    _route("/v1/users/{id}/conversations", GET="list_user_conversations"),
    _route("/v1/users/{id}/sessions", GET="list_sessions"),
]

CONTROL_ROUTES = [
    _route("/_sandbox/healthz", GET="c_healthz"),
    _route("/_sandbox/state", GET="c_state"),
    _route("/_sandbox/faults", GET="c_faults", PUT="c_faults_put", DELETE="c_faults_delete"),
    _route("/_sandbox/conversations", POST="c_create_conversation"),
    _route("/_sandbox/conversations/{id}", DELETE="c_delete_conversation"),
    _route("/_sandbox/conversations/{id}/events", POST="c_append_event"),
    _route("/_sandbox/conversations/{id}/end", POST="c_end_conversation"),
    _route("/_sandbox/tick", POST="c_tick"),
    _route("/_sandbox/stats", GET="c_stats"),
    _route("/_sandbox/stats/reset", POST="c_stats_reset"),
    _route(
        "/_sandbox/webhooks", GET="c_webhooks", PUT="c_webhooks_put", DELETE="c_webhooks_delete"
    ),
    _route("/_sandbox/webhooks/send", POST="c_webhooks_send"),
    _route("/_sandbox/webhooks/stats/reset", POST="c_webhooks_stats_reset"),
]


def match(routes: list[Route], path: str) -> tuple[Route, list[str]] | tuple[None, None]:
    for route in routes:
        m = route.pattern.fullmatch(path)
        if m:
            return route, [unquote(g) for g in m.groups()]
    return None, None


def _conversation_key(c: Conversation) -> tuple[int, str]:
    return (c.created, c.id)


def _seq_key(item: Member | User | Any) -> tuple[int]:
    return (item.seq,)


def _event_key(e: Event) -> tuple[int]:
    return (e.id,)


# ---------------------------------------------------------------------- the app


class App:
    def __init__(
        self,
        config: SandboxConfig,
        verifier: Verifier,
        world: World,
        *,
        faults: Faults | None = None,
        stats: Stats | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.verifier = verifier
        self.world = world
        self.faults = faults or Faults(config.fault_settings(), config.seed)
        self.stats = stats or Stats()
        self.log = log or (lambda message: None)
        self.started = time.time()
        # Started and stopped by the server; events queue (or are dropped) until then.
        self.webhooks = WebhookSender(
            config.delivery_settings(),
            secret=config.signature_secret,
            api_key=config.api_key or world.api_key,
            application_id=config.application_id,
            seed=config.seed,
            queue_size=config.webhook_queue_size,
            timeout=config.webhook_timeout_seconds,
            retries=config.webhook_retries,
            log=log_to_stderr,  # drops and failures are always worth a (rate-limited) line
        )
        world.add_listener(self._on_event)

    def _on_event(self, conv: Conversation, event: Event) -> None:
        """Under the world lock: render the webhook now (a consistent snapshot), send later."""
        if self.webhooks.url is None:
            self.webhooks.submit(b"")  # counted as dropped_no_url, nothing rendered
            return
        body = dumps(self.webhook_payload(conv, event))
        self.webhooks.submit(body, f"{event.type} {conv.id} #{event.id}")

    def webhook_payload(self, conv: Conversation, event: Event) -> dict[str, Any]:
        """The RTC webhook of an event (WEBHOOKS.md section 2): the REST event's fields, the
        same body, plus application_id and conversation_id. No _embedded: Vonage's is
        unverified, and receivers must not need it."""
        rest = shapes.event("", conv, event, self.world.users_by_id, self.config.event_id_format)
        out: dict[str, Any] = {
            "application_id": self.config.application_id,
            "conversation_id": conv.id,
        }
        if "from" in rest:
            out["from"] = rest["from"]
        for key in ("id", "timestamp", "type", "body"):
            out[key] = rest[key]
        return out

    def handle(self, req: Request) -> Response:
        try:
            if req.path == "/v1" or req.path.startswith("/v1/"):
                return self._v1(req)
            if req.path.startswith("/_sandbox/"):
                return self._control(req)
            return error_response(errors.path_not_found())
        except ApiError as exc:
            return error_response(exc)

    # ------------------------------------------------------------------ /v1

    def _v1(self, req: Request) -> Response:
        route, args = match(V1_ROUTES, req.path)
        self.stats.record(req.method, route.template if route else "(unmatched)", req.path)
        settings = self.faults.snapshot()
        if settings.latency_ms:
            time.sleep(settings.latency_ms / 1000)
        hostile = None
        if self.faults.applies(req.path, settings) and self.faults.draw(settings):
            if settings.mode in hostile_wire.WIRE_MODES + hostile_wire.BODY_MODES:
                hostile = settings.mode  # applied to the real answer below
            else:
                faulty = self._fault(settings)
                if faulty is not None:
                    return faulty
        claims = self._authenticate(req)
        if route is None or args is None:
            raise errors.path_not_found()
        name = route.methods.get(req.method)
        if name is None:
            raise errors.method_not_allowed(", ".join(route.methods))
        response = getattr(self, name)(req, Params(req.query), claims, *args)
        if hostile is not None and response.status == 200:
            response = _hostile(response, hostile, settings)
        return response

    def _fault(self, s: FaultSettings) -> Response | None:
        mode = s.mode
        if mode == "500":
            return error_response(errors.internal_error())
        if mode == "502":
            return Response(502, BAD_GATEWAY_HTML.encode(), "text/html")
        if mode == "503":
            return error_response(errors.service_unavailable(s.retry_after))
        if mode == "429":
            return error_response(errors.rate_limited(s.retry_after))
        if mode == "401":
            return error_response(errors.invalid_token())
        if mode in ("reset", "close"):
            return Response(0, drop=mode)
        if mode == "malformed":
            return Response(200, MALFORMED_BODY)
        if mode == "wrong_shape":
            return json_response(200, self.faults.wrong_shape())
        if mode in HOLD_MODES:
            outcome = self.faults.hold(mode, s.timeout_seconds)
            if outcome == "closed" or (outcome == "expired" and mode == "timeout"):
                return Response(0, drop="close")
        return None  # "slow", or a "timeout" released because the fault was changed

    def _authenticate(self, req: Request) -> dict[str, Any]:
        try:
            return self.verifier.verify_header(req.headers.get("Authorization"))
        except AuthError as exc:
            self.log(f"401 for {req.method} {req.path}: {exc}")
            raise errors.invalid_token() from exc

    def _conversation(self, conversation_id: str) -> Conversation:
        conv = self.world.conversation(conversation_id)
        if conv is None:
            raise errors.conversation_not_found()
        return conv

    def _user(self, user_id: str) -> User:
        user = self.world.user(user_id)
        if user is None:
            raise errors.user_not_found()
        return user

    def _list(
        self,
        req: Request,
        link_params: list[tuple[str, Any]],
        page: Page[Any],
        page_size: int,
        embedded: Any,
    ) -> Response:
        """A HAL list body: page_size, _embedded (left out when empty), _links."""

        def href(extra: list[tuple[str, Any]]) -> dict[str, str]:
            query = urlencode(link_params + extra, quote_via=quote, safe="")
            return {"href": f"{req.base}{req.path}?{query}"}

        given = req.query.get("cursor", [""])[0]
        links = {"first": href([]), "self": href([("cursor", given)] if given else [])}
        if page.next is not None:
            links["next"] = href([("cursor", encode_cursor(page.next))])
        if page.prev is not None:
            links["prev"] = href([("cursor", encode_cursor(page.prev))])
        body: dict[str, Any] = {"page_size": page_size}
        if page.items:
            body["_embedded"] = embedded
        body["_links"] = links
        return json_response(200, body)

    # GET /v1/conversations
    def list_conversations(self, req: Request, p: Params, claims: dict) -> Response:
        size, order = p.page_size(), p.order()
        start, end = p.date("date_start"), p.date("date_end")
        cursor = p.cursor("conversations", (int, str))
        p.check()
        links: list[tuple[str, Any]] = [("order", order), ("page_size", size)]
        links += [(n, p.raw(n)) for n in ("date_start", "date_end") if p.raw(n) is not None]
        with self.world.lock:
            items: Sequence[Conversation] = self.world.conversations()
            if start is not None or end is not None:
                items = [c for c in items if _within(c.created, start, end)]
            page = paginate(
                items,
                _conversation_key,
                kind="conversations",
                order=order,
                page_size=size,
                cursor=cursor,
            )
            rendered = [shapes.conversation_lite(req.base, c) for c in page.items]
            return self._list(req, links, page, size, {"conversations": rendered})

    # GET /v1/conversations/{id}
    def get_conversation(self, req: Request, p: Params, claims: dict, cid: str) -> Response:
        with self.world.lock:
            return json_response(200, shapes.conversation(req.base, self._conversation(cid)))

    # GET /v1/conversations/{id}/members
    def list_members(self, req: Request, p: Params, claims: dict, cid: str) -> Response:
        size, order = p.page_size(), p.order()
        cursor = p.cursor("members", (int,))
        p.check()
        with self.world.lock:
            conv = self._conversation(cid)
            page = paginate(
                conv.members, _seq_key, kind="members", order=order, page_size=size, cursor=cursor
            )
            users = self.world.users_by_id
            rendered = [shapes.member_lite(req.base, m, users.get(m.user_id)) for m in page.items]
            links = [("order", order), ("page_size", size)]
            return self._list(req, links, page, size, {"members": rendered})

    # GET /v1/conversations/{id}/members/{member_id}
    def get_member(self, req: Request, p: Params, claims: dict, cid: str, mid: str) -> Response:
        with self.world.lock:
            conv = self._conversation(cid)
            member = conv.member_index.get(mid)
            if member is None and mid == "me":
                # The member of the JWT's user (``sub`` is the user *name*).
                sub = claims.get("sub")
                mine = [
                    m for m in conv.members if (u := self.world.user(m.user_id)) and u.name == sub
                ]
                member = mine[-1] if sub and mine else None
            if member is None:
                raise errors.member_not_found()
            user = self.world.user(member.user_id)
            return json_response(200, shapes.member(req.base, member, user))

    # GET /v1/conversations/{id}/events
    def list_events(self, req: Request, p: Params, claims: dict, cid: str) -> Response:
        size, order = p.page_size(), p.order()
        cursor = p.cursor("events", (int,))
        start_id, end_id = p.event_id("start_id"), p.event_id("end_id")
        event_type = p.text("event_type")
        exclude_deleted = p.boolean("exclude_deleted_events", False)
        p.check()
        links: list[tuple[str, Any]] = [
            ("page_size", size),
            ("order", order),
            ("exclude_deleted_events", "true" if exclude_deleted else "false"),
        ]
        links += [(n, p.raw(n)) for n in ("start_id", "end_id", "event_type") if p.raw(n)]
        with self.world.lock:
            conv = self._conversation(cid)
            items: Sequence[Event] = conv.events
            if start_id is not None or end_id is not None or event_type or exclude_deleted:
                items = [
                    e
                    for e in items
                    if (start_id is None or e.id >= start_id)
                    and (end_id is None or e.id <= end_id)
                    and (event_type is None or e.type == event_type)
                    and not (exclude_deleted and e.deleted)
                ]
            page = paginate(
                items, _event_key, kind="events", order=order, page_size=size, cursor=cursor
            )
            users, fmt = self.world.users_by_id, self.config.event_id_format
            rendered = [shapes.event(req.base, conv, e, users, fmt) for e in page.items]
            embedded = rendered if self.config.events_shape == "array" else {"events": rendered}
            return self._list(req, links, page, size, embedded)

    # GET /v1/conversations/{id}/events/{event_id}
    def get_event(self, req: Request, p: Params, claims: dict, cid: str, eid: str) -> Response:
        with self.world.lock:
            conv = self._conversation(cid)
            if not _ID_RE.match(eid):
                raise errors.validation_failed([("event_id", '"event_id" must be a number')])
            event = _find_event(conv, int(eid))
            if event is None:
                raise errors.event_not_found()
            users, fmt = self.world.users_by_id, self.config.event_id_format
            return json_response(200, shapes.event(req.base, conv, event, users, fmt))

    # GET /v1/users
    def list_users(self, req: Request, p: Params, claims: dict) -> Response:
        size, order = p.page_size(), p.order()
        cursor = p.cursor("users", (int,))
        name = p.text("name")
        p.check()
        links: list[tuple[str, Any]] = [("order", order), ("page_size", size)]
        if name is not None:
            links.append(("name", name))
        with self.world.lock:
            items: Sequence[User] = self.world.users()
            if name is not None:
                items = [u for u in items if u.name == name]
            page = paginate(
                items, _seq_key, kind="users", order=order, page_size=size, cursor=cursor
            )
            rendered = [shapes.user_lite(req.base, u) for u in page.items]
            return self._list(req, links, page, size, {"users": rendered})

    # GET /v1/users/{id}
    def get_user(self, req: Request, p: Params, claims: dict, uid: str) -> Response:
        with self.world.lock:
            return json_response(200, shapes.user(req.base, self._user(uid)))

    # GET /v1/users/{id}/conversations
    def list_user_conversations(self, req: Request, p: Params, claims: dict, uid: str) -> Response:
        size, order = p.page_size(), p.order()
        state = p.choice("state", MEMBER_STATES, upper=True)
        order_by = p.choice("order_by", USER_CONVERSATION_ORDER_BY) or "created"
        start, end = p.date("date_start"), p.date("date_end")
        # Accepted and validated; the sandbox always includes custom_data (see README).
        p.boolean("include_custom_data", False)
        by_sort_key = order_by == "custom_sort_key"
        kind = "user_conversations:" + order_by
        cursor = p.cursor(kind, (str, str) if by_sort_key else (int, str))
        p.check()
        links: list[tuple[str, Any]] = [("order", order), ("page_size", size)]
        for n in ("state", "order_by", "include_custom_data", "date_start", "date_end"):
            if p.raw(n):
                links.append((n, p.raw(n)))
        with self.world.lock:
            self._user(uid)
            items = [
                (c, m)
                for c, m in self.world.memberships(uid)
                if (state is None or m.state == state) and _within(c.created, start, end)
            ]
            key: Callable[[tuple[Conversation, Member]], tuple[Any, ...]]
            if by_sort_key:
                key = _custom_sort_key
                items.sort(key=key)
            else:
                key = _membership_created_key
            page = paginate(items, key, kind=kind, order=order, page_size=size, cursor=cursor)
            rendered = [shapes.user_conversation(req.base, c, m) for c, m in page.items]
            return self._list(req, links, page, size, {"conversations": rendered})

    # GET /v1/users/{id}/sessions
    def list_sessions(self, req: Request, p: Params, claims: dict, uid: str) -> Response:
        size, order = p.page_size(), p.order()
        cursor = p.cursor("sessions", (int,))
        p.check()
        with self.world.lock:
            user = self._user(uid)
            page = paginate(
                user.sessions, _seq_key, kind="sessions", order=order, page_size=size, cursor=cursor
            )
            rendered = [shapes.session(user, s) for s in page.items]
            links = [("order", order), ("page_size", size)]
            return self._list(req, links, page, size, {"sessions": rendered})

    # ------------------------------------------------------------------ /_sandbox

    def _control(self, req: Request) -> Response:
        route, args = match(CONTROL_ROUTES, req.path)
        if route is None or args is None:
            raise errors.sandbox_error(404, "No such sandbox endpoint.", "sandbox:error:not-found")
        name = route.methods.get(req.method)
        if name is None:
            allowed = ", ".join(route.methods)
            exc = errors.sandbox_error(405, f"Allowed: {allowed}.", "sandbox:error:method")
            exc.headers.append(("Allow", allowed))
            raise exc
        return getattr(self, name)(req, *args)

    @staticmethod
    def _json_body(req: Request) -> dict[str, Any]:
        if not req.body.strip():
            return {}
        try:
            data = json.loads(req.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise errors.sandbox_error(400, "The body must be JSON.") from exc
        if not isinstance(data, dict):
            raise errors.sandbox_error(400, "The body must be a JSON object.")
        return data

    def c_healthz(self, req: Request) -> Response:
        return json_response(200, {"ok": True})

    def c_state(self, req: Request) -> Response:
        return json_response(200, self.state())

    def c_faults(self, req: Request) -> Response:
        return json_response(200, self.faults.as_dict())

    def c_faults_put(self, req: Request) -> Response:
        try:
            return json_response(200, self.set_faults(self._json_body(req)))
        except FaultError as exc:
            raise errors.sandbox_error(400, str(exc)) from exc

    def c_faults_delete(self, req: Request) -> Response:
        return json_response(200, self.clear_faults())

    def c_create_conversation(self, req: Request) -> Response:
        data = self._json_body(req)
        unknown = set(data) - {"name", "display_name", "members"}
        if unknown:
            raise errors.sandbox_error(400, f"Unknown fields: {sorted(unknown)}.")
        for name in ("name", "display_name"):
            if data.get(name) is not None and not isinstance(data[name], str):
                raise errors.sandbox_error(400, f"{name} must be a string.")
        members = data.get("members", 2)
        if isinstance(members, bool) or not isinstance(members, int) or not 0 <= members <= 6:
            raise errors.sandbox_error(400, "members must be an integer from 0 to 6.")
        conv = self.create_conversation(
            req.base, name=data.get("name"), display_name=data.get("display_name"), members=members
        )
        return json_response(201, conv)

    def c_append_event(self, req: Request, cid: str) -> Response:
        data = self._json_body(req)
        unknown = set(data) - {"type", "from", "body"}
        if unknown:
            raise errors.sandbox_error(400, f"Unknown fields: {sorted(unknown)}.")
        etype, from_id, body = data.get("type"), data.get("from"), data.get("body")
        if not isinstance(etype, str) or not etype:
            raise errors.sandbox_error(400, "type must be a non-empty string.")
        if from_id is not None and not isinstance(from_id, str):
            raise errors.sandbox_error(400, "from must be a member id.")
        if body is not None and not isinstance(body, dict):
            raise errors.sandbox_error(400, "body must be a JSON object.")
        return json_response(201, self.append_event(req.base, cid, etype, body, from_id))

    def c_end_conversation(self, req: Request, cid: str) -> Response:
        return json_response(200, self.end_conversation(req.base, cid))

    def c_delete_conversation(self, req: Request, cid: str) -> Response:
        return json_response(200, self.delete_conversation(req.base, cid))

    def c_tick(self, req: Request) -> Response:
        return json_response(200, self.world.tick())

    def c_stats(self, req: Request) -> Response:
        return json_response(200, self.stats.snapshot())

    def c_stats_reset(self, req: Request) -> Response:
        self.stats.reset()
        return json_response(200, self.stats.snapshot())

    def c_webhooks(self, req: Request) -> Response:
        return json_response(200, self.webhooks_state())

    def c_webhooks_put(self, req: Request) -> Response:
        try:
            self.webhooks.update(self._json_body(req))
        except WebhookError as exc:
            raise errors.sandbox_error(400, str(exc)) from exc
        return json_response(200, self.webhooks_state())

    def c_webhooks_delete(self, req: Request) -> Response:
        self.webhooks.reset()
        return json_response(200, self.webhooks_state())

    def c_webhooks_send(self, req: Request) -> Response:
        data = self._json_body(req)
        unknown = set(data) - {"payload", "raw"}
        if unknown or len(data) != 1:
            raise errors.sandbox_error(400, "Give exactly one of payload (JSON) or raw (string).")
        if "raw" in data and not isinstance(data["raw"], str):
            raise errors.sandbox_error(400, "raw must be a string.")
        return json_response(202, self.send_webhook(data.get("payload"), data.get("raw")))

    def c_webhooks_stats_reset(self, req: Request) -> Response:
        self.webhooks.reset_stats()
        return json_response(200, self.webhooks_state())

    # ------------------------------------------------------------------ control operations
    # (shared by the endpoints above and sandbox.testing)

    def state(self) -> dict[str, Any]:
        return {
            "config": self.config.as_dict(),
            "faults": self.faults.as_dict(),
            "world": self.world.summary(),
            "uptime_seconds": round(time.time() - self.started, 3),
        }

    def set_faults(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Merge validated changes; raises FaultError."""
        self.faults.update(changes)
        return self.faults.as_dict()

    def clear_faults(self) -> dict[str, Any]:
        self.faults.reset()
        return self.faults.as_dict()

    def create_conversation(
        self,
        base: str,
        *,
        name: str | None = None,
        display_name: str | None = None,
        members: int = 2,
    ) -> dict[str, Any]:
        with self.world.lock:
            try:
                conv = self.world.create_conversation(name, display_name, members=members)
            except DuplicateName as exc:
                raise errors.duplicate_conversation_name() from exc
            return shapes.conversation(base, conv)

    def append_event(
        self,
        base: str,
        conversation_id: str,
        type: str,
        body: dict[str, Any] | None = None,
        from_id: str | None = None,
    ) -> dict[str, Any]:
        with self.world.lock:
            try:
                event = self.world.append_event(conversation_id, type, body, from_id)
            except KeyError as exc:
                raise errors.conversation_not_found() from exc
            except ValueError as exc:
                raise errors.sandbox_error(400, str(exc)) from exc
            conv = self._conversation(conversation_id)
            users, fmt = self.world.users_by_id, self.config.event_id_format
            return shapes.event(base, conv, event, users, fmt)

    def delete_conversation(self, base: str, conversation_id: str) -> dict[str, Any]:
        """Delete it from the API (404 from now on); returns it as it was just before."""
        with self.world.lock:
            try:
                conv = self.world.delete_conversation(conversation_id)
            except KeyError as exc:
                raise errors.conversation_not_found() from exc
            return shapes.conversation(base, conv)

    def webhooks_state(self) -> dict[str, Any]:
        settings = self.webhooks.settings()
        return {
            "settings": dataclasses.asdict(settings),
            "signed": self.webhooks.secret is not None,
            "api_key": self.webhooks.api_key,
            "stats": self.webhooks.stats(),
        }

    def send_webhook(self, payload: Any = None, raw: str | None = None) -> dict[str, Any]:
        """Queue one arbitrary webhook (any JSON, e.g. an app:knocking with no conversation_id;
        or ``raw`` text sent as is). It goes through the delivery options like any other."""
        if self.webhooks.url is None:
            raise errors.sandbox_error(400, "No webhook URL is configured.")
        body = raw.encode("utf-8", "surrogatepass") if raw is not None else dumps(payload)
        label = payload.get("type", "custom") if isinstance(payload, dict) else "raw"
        queued = self.webhooks.submit(body, f"{label} (sent by hand)")
        return {"queued": queued, "bytes": len(body)}

    def end_conversation(self, base: str, conversation_id: str) -> dict[str, Any]:
        with self.world.lock:
            try:
                conv = self.world.end_conversation(conversation_id)
            except KeyError as exc:
                raise errors.conversation_not_found() from exc
            return shapes.conversation(base, conv)


def _within(ts: int, start: int | None, end: int | None) -> bool:
    return (start is None or ts >= start) and (end is None or ts <= end)


def _membership_created_key(item: tuple[Conversation, Member]) -> tuple[int, str]:
    return (item[0].created, item[0].id)


def _custom_sort_key(item: tuple[Conversation, Member]) -> tuple[str, str]:
    return (str(item[0].properties.get("custom_sort_key", "")), item[0].id)


def _find_event(conv: Conversation, event_id: int) -> Event | None:
    """Events are numbered 1, 2, ... in list order; fall back to a scan if that ever breaks."""
    if 1 <= event_id <= len(conv.events) and conv.events[event_id - 1].id == event_id:
        return conv.events[event_id - 1]
    return next((e for e in conv.events if e.id == event_id), None)


def log_to_stderr(message: str) -> None:
    sys.stderr.write(message.rstrip("\n") + "\n")
