"""A counting HTTP proxy: every request that crosses it is relayed unchanged and recorded as a WireCall.

The benchmark's private stack routes through one :class:`WireTap` on 127.0.0.1 in two ways:

* **forward proxy** (``HTTP_PROXY=<tap url>`` in a process's environment, or ``proxies=`` of an SDK client):
  the Azure SDKs and ``requests`` then send absolute-form requests (``GET http://127.0.0.1:10002/...``)
  to the tap, which relays them to that address. The URL, the ``Host`` header and every signed header stay
  as the client made them, so Shared Key, SAS and Web PubSub JWT audiences keep verifying;
* **reverse proxy** (origin-form requests): the tap listens where Web PubSub's event handler points (the
  Functions host's port) and relays each event to the host, or, for ``user`` events of users routed with
  :meth:`WireTap.route_events`, to another consumer (the guarantee floor's webhook); when that consumer does
  not answer, to the host (Web PubSub closes the connection of a client whose user event fails).

The service of a forward request is named by the port it goes to (``services``); reverse requests are
``events``. Each answered request becomes a :class:`~bench.wire_calls.WireCall` (see
:mod:`bench.wire_calls`) in :attr:`WireTap.calls`; nothing is estimated. A request the upstream never
answers is answered 502 and recorded with that status. Upstream connections are not reused, so the tap
never relays on a connection the server has already closed.
"""

from __future__ import annotations

import http.client
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

from bench.wire_calls import Exchange, WireCall, classify

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
# Hop-by-hop headers (RFC 9110 7.6.1) plus the ones the tap recomputes for the body it relays.
_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)
_BODILESS_STATUSES = frozenset({204, 304})
UPSTREAM_TIMEOUT = 60.0

Address = tuple[str, int]


class WireTap:
    """The proxy server and its record of calls; a context manager that starts and stops it."""

    def __init__(self, services: Mapping[Address, str], port: int = 0, events_target: Address | None = None):
        self._services = dict(services)
        self._events_target = events_target
        self._routes: dict[str, Address] = {}
        self._lock = threading.Lock()
        self._calls: list[WireCall] = []
        self._message_subjects: dict[str, str] = {}
        self._in_flight = 0
        self._server = _Server((HOST, port), _Handler)
        self._server.tap = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, name="wire-tap", daemon=True)

    @property
    def port(self) -> int:
        """The port the tap listens on."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: the value for ``HTTP_PROXY`` or an SDK's ``proxies``."""
        return f"http://{HOST}:{self.port}"

    def start(self) -> WireTap:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(10)
        self._server.server_close()

    def __enter__(self) -> WireTap:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    # ---- routing of inbound events -------------------------------------------------------------------------

    def set_events_target(self, target: Address) -> None:
        """Where events go by default (the Functions host)."""
        with self._lock:
            self._events_target = target

    def route_events(self, user_ids: Iterable[str], target: Address) -> None:
        """Send the ``user`` events (acks) of ``user_ids`` to ``target`` instead of the default."""
        with self._lock:
            self._routes.update({user: target for user in user_ids})

    def unroute_events(self, user_ids: Iterable[str]) -> None:
        """Send the events of ``user_ids`` to the default target again."""
        with self._lock:
            for user in user_ids:
                self._routes.pop(user, None)

    def _event_target(self, headers: Mapping[str, str]) -> Address | None:
        with self._lock:
            if headers.get("ce-type", "").startswith("azure.webpubsub.user."):
                routed = self._routes.get(headers.get("ce-userid", ""))
                if routed is not None:
                    return routed
            return self._events_target

    # ---- the record ---------------------------------------------------------------------------------------

    @property
    def calls(self) -> list[WireCall]:
        """A copy of every call recorded so far, in the order the answers came back."""
        with self._lock:
            return list(self._calls)

    def mark(self) -> int:
        """The number of calls recorded so far (a position for :meth:`calls_since`)."""
        with self._lock:
            return len(self._calls)

    def calls_since(self, mark: int) -> list[WireCall]:
        """The calls recorded after ``mark``."""
        with self._lock:
            return self._calls[mark:]

    @property
    def in_flight(self) -> int:
        """Requests received and not answered yet."""
        with self._lock:
            return self._in_flight

    def service_for(self, address: Address) -> str:
        """The service listening at ``address`` (``other`` when unknown)."""
        return self._services.get(address, "other")

    def _begin(self) -> None:
        with self._lock:
            self._in_flight += 1

    def _end(self, exchange: Exchange | None) -> None:
        call = None
        if exchange is not None:
            call = classify(exchange, self._message_subjects.get, time.monotonic())
        with self._lock:
            self._in_flight -= 1
            if call is not None:
                self._calls.append(call)
                if call.service == "queue" and call.operation in ("put", "get"):
                    for index, message_id in enumerate(call.message_ids):
                        subject = (
                            call.subjects[index if call.operation == "get" else 0] if call.subjects else ""
                        )
                        if subject:
                            self._message_subjects[message_id] = subject


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default listen backlog of 5 drops connections when many clients connect


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "bench-wire-tap"

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def _relay(self) -> None:
        tap: WireTap = self.server.tap  # type: ignore[attr-defined]
        headers = {name.lower(): value for name, value in self.headers.items()}
        body = self._read_body()
        target_url = urlsplit(self.path)
        if target_url.scheme:  # absolute form: forward proxy
            if target_url.scheme != "http" or target_url.hostname is None:
                self._answer(501, "Not Implemented", [], b"the wire tap relays plain http only")
                return
            address: Address | None = (target_url.hostname, target_url.port or 80)
            service = tap.service_for((target_url.hostname, target_url.port or 80))
            target = target_url.path + (f"?{target_url.query}" if target_url.query else "")
        else:
            address = tap._event_target(headers)
            service, target = "events", self.path
        tap._begin()
        exchange: Exchange | None = None
        answer_headers: list[tuple[str, str]] = []
        try:
            if address is None:
                status, reason, answer = 502, "Bad Gateway", b"no event target"
            else:
                status, reason, answer_headers, answer = self._forward(address, target, body)
                default = tap._events_target
                if status == 502 and service == "events" and default is not None and address != default:
                    # A routed consumer that is gone (a floor that just stopped): Web PubSub closes a
                    # client whose user event fails, so the event goes to the default target instead.
                    status, reason, answer_headers, answer = self._forward(default, target, body)
            exchange = Exchange(service, self.command, target, headers, body, status, answer)
        finally:
            tap._end(exchange)
        self._answer(status, reason, answer_headers, answer)

    def _forward(
        self, address: Address, target: str, body: bytes
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(*address, timeout=UPSTREAM_TIMEOUT)
        try:
            connection.putrequest(self.command, target, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in _HOP:
                    connection.putheader(name, value)
            if body or self.command in ("POST", "PUT", "PATCH", "MERGE"):
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body or None)
            response = connection.getresponse()
            answer = response.read()
            headers = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP]
            if self.command == "HEAD":
                headers += [(k, v) for k, v in response.getheaders() if k.lower() == "content-length"]
            return response.status, response.reason, headers, answer
        except (OSError, http.client.HTTPException) as exc:
            logger.info("wire tap: %s %s to %s:%d failed: %s", self.command, target, *address, exc)
            return 502, "Bad Gateway", [], f"upstream failed: {type(exc).__name__}".encode()
        finally:
            connection.close()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _answer(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response_only(status, reason)
        for name, value in headers:
            self.send_header(name, value)
        bodiless = self.command == "HEAD" or status in _BODILESS_STATUSES or status < 200
        if not bodiless:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not bodiless:
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_MERGE = _relay
