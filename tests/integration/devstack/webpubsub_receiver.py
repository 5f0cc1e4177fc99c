"""A test-side upstream event handler, written independently of the emulator: it answers the abuse-protection
handshake, checks ``ce-signature`` with its own HMAC and records every event it receives."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from multidict import CIMultiDict

from devstack.server_thread import ServerThread


@dataclass
class ReceivedEvent:
    """One POST the handler received."""

    headers: dict[str, str]
    body: bytes
    signature_valid: bool
    path_qs: str = ""

    @property
    def ce_type(self) -> str:
        return self.headers.get("ce-type", "")

    @property
    def event_name(self) -> str:
        return self.headers.get("ce-eventName", "")

    @property
    def connection_id(self) -> str:
        return self.headers.get("ce-connectionId", "")


Responder = Callable[[ReceivedEvent], web.Response]


def expected_signature(key: str, connection_id: str) -> str:
    """``sha256=<hex>`` the way the receiving side computes it."""
    digest = hmac.new(key.encode("utf-8"), connection_id.encode("utf-8"), hashlib.sha256).hexdigest()
    return "sha256=" + digest


@dataclass
class EventReceiver:
    """Runs on a free port; ``responders`` maps an event name to the response to give (default 204)."""

    access_key: str
    allowed_origin: str | None = None  # None: answer '*' to any origin
    # When set: answer the handshake with these WebHook-Allowed-Origin headers (one header each), whatever
    # the origin, as @azure/web-pubsub-express does with `allowedEndpoints`.
    allowed_origin_headers: list[str] | None = None
    responders: dict[str, Responder] = field(default_factory=dict)
    events: list[ReceivedEvent] = field(default_factory=list)
    handshake_origins: list[str] = field(default_factory=list)
    handshake_headers: list[dict[str, str]] = field(default_factory=list)
    handshake_paths: list[str] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _server: ServerThread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.port}/upstream/{{hub}}/{{event}}"

    def start(self) -> EventReceiver:
        app = web.Application()
        app.router.add_route("OPTIONS", "/upstream/{hub}/{event}", self._options)
        app.router.add_post("/upstream/{hub}/{event}", self._post)
        self._server = ServerThread(app, name="event-receiver")
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    async def _options(self, request: web.Request) -> web.Response:
        origin = request.headers.get("WebHook-Request-Origin", "")
        with self._cond:
            self.handshake_origins.append(origin)
            self.handshake_headers.append(dict(request.headers))
            self.handshake_paths.append(request.path)
        if self.allowed_origin_headers is not None:
            headers = CIMultiDict(("WebHook-Allowed-Origin", value) for value in self.allowed_origin_headers)
            return web.Response(status=200, headers=headers)
        if self.allowed_origin is None:
            return web.Response(status=200, headers={"WebHook-Allowed-Origin": "*"})
        if origin == self.allowed_origin:
            return web.Response(status=200, headers={"WebHook-Allowed-Origin": origin})
        return web.Response(status=400, text="origin not allowed")

    async def _post(self, request: web.Request) -> web.Response:
        headers = dict(request.headers)
        body = await request.read()
        wanted = expected_signature(self.access_key, headers.get("ce-connectionId", ""))
        offered = [s.strip().lower() for s in headers.get("ce-signature", "").split(",")]
        event = ReceivedEvent(
            headers=headers, body=body, signature_valid=wanted in offered, path_qs=request.path_qs
        )
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()
        if not event.signature_valid:
            return web.Response(status=401, text="signature mismatch")
        responder = self.responders.get(event.event_name)
        return responder(event) if responder is not None else web.Response(status=204)

    def wait_for(self, predicate: Callable[[ReceivedEvent], bool], timeout: float = 10.0) -> ReceivedEvent:
        """Block until an event matching ``predicate`` arrived; raise AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [(e.ce_type, e.connection_id) for e in self.events]
                    raise AssertionError(f"no matching event within {timeout} s; received {seen}")
                self._cond.wait(remaining)

    def of_connection(self, connection_id: str) -> list[ReceivedEvent]:
        with self._cond:
            return [e for e in self.events if e.connection_id == connection_id]
