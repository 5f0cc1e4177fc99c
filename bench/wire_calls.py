"""What one HTTP exchange on the wire was: service, operation and the users it concerns (pure functions).

:class:`bench.wire.WireTap` hands every request it relays to :func:`classify` as an :class:`Exchange`.
The result, a :class:`WireCall`, names

* the **service**: ``table``, ``queue`` (Azure Storage), ``webpubsub`` (its data-plane REST API),
  ``notificationhubs`` (its REST API), ``events`` (Web PubSub events posted to an app's webhook), or
  ``blob`` / ``other``;
* the **operation**, as the service bills and documents it: table ``read`` (one entity), ``query``,
  ``insert``, ``merge`` (``If-Match`` given: the entity must exist), ``upsert`` (insert or merge/replace),
  ``replace``, ``delete``, ``batch``; queue ``put``, ``get``, ``delete``, ``update``, ``peek``; Web PubSub
  ``send to user`` and the other REST calls; Notification Hubs ``send`` and ``installation`` calls; events by
  CloudEvents type (``user.ack``, ``sys.connected``);
* for an event, whether the app **replied** with a body (Web PubSub sends it to the client as one more
  message: billed, though no request of its own);
* the **subjects**: strings that identify the user concerned (a table PartitionKey, a queue message's
  ``userId``, a Web PubSub user id, a Notification Hubs tag, the event's ``ce-userId``). A queue ``get``
  has one subject per message it returned (none for an empty poll), so that per-notification counts can
  split a get that returned several messages.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

SERVICES = ("table", "queue", "webpubsub", "notificationhubs", "events", "blob", "other")

_ENTITY = re.compile(r"^(?P<table>[^(]+)\((?P<keys>.*)\)$")
_KEY = re.compile(r"(PartitionKey|RowKey)='((?:[^']|'')*)'")
_FILTER_PARTITION = re.compile(r"PartitionKey\s+eq\s+'((?:[^']|'')*)'")
_WPS_USER = re.compile(r"^/api/hubs/[^/]+/users/([^/]+)(/.*)?$")


@dataclass(frozen=True)
class Exchange:
    """One request and its answer as the proxy relayed them (header names lower case)."""

    service: str
    method: str
    target: str  # path and query, origin form
    headers: Mapping[str, str]
    body: bytes
    status: int
    response_body: bytes = b""


@dataclass(frozen=True)
class WireCall:
    """One classified request (see the module docstring)."""

    service: str
    operation: str
    resource: str  # table or queue name, hub, event type; '' when none applies
    status: int
    subjects: tuple[str, ...] = ()
    message_ids: tuple[str, ...] = ()  # queue messages put, received or deleted by this call
    at: float = 0.0  # time.monotonic() when the answer came back
    replied: bool = False  # an event answered with a body: Web PubSub sends it to the client as a message

    @property
    def column(self) -> str:
        """``service operation``, e.g. ``table merge``."""
        return f"{self.service} {self.operation}"


MessageLookup = Callable[[str], str | None]


def classify(
    exchange: Exchange, message_subject: MessageLookup = lambda _: None, at: float = 0.0
) -> WireCall:
    """Classify one exchange; ``message_subject`` maps a queue message id to the subject it carried."""
    split = urlsplit(exchange.target)
    path, query = unquote(split.path), parse_qs(split.query)
    if exchange.service == "table":
        operation, resource, subjects = _table(exchange, path, query)
        return WireCall("table", operation, resource, exchange.status, subjects, at=at)
    if exchange.service == "queue":
        return _queue(exchange, path, query, message_subject, at)
    if exchange.service == "webpubsub":
        operation, resource, subjects = _webpubsub(exchange.method, split.path)
        return WireCall("webpubsub", operation, resource, exchange.status, subjects, at=at)
    if exchange.service == "notificationhubs":
        operation, resource, subjects = _notification_hubs(exchange, path)
        return WireCall("notificationhubs", operation, resource, exchange.status, subjects, at=at)
    if exchange.service == "events":
        operation, resource, subjects = _event(exchange, path)
        replied = 200 <= exchange.status < 300 and bool(exchange.response_body.strip())
        return WireCall("events", operation, resource, exchange.status, subjects, at=at, replied=replied)
    return WireCall(exchange.service, exchange.method.lower(), path, exchange.status, at=at)


# ---- Table storage -------------------------------------------------------------------------------------


def _table(exchange: Exchange, path: str, query: Mapping[str, list[str]]) -> tuple[str, str, tuple[str, ...]]:
    last = path.rstrip("/").rsplit("/", 1)[-1]
    method = exchange.method.upper()
    if last == "$batch":
        return "batch", "", ()
    if last == "Tables" or last.startswith("Tables("):
        operation = {"GET": "list tables", "POST": "create table", "DELETE": "delete table"}.get(
            method, "table"
        )
        return operation, "", ()
    match = _ENTITY.match(last)
    table = match.group("table") if match else last
    keys = (
        {name: value.replace("''", "'") for name, value in _KEY.findall(match.group("keys"))} if match else {}
    )
    partition = keys.get("PartitionKey")
    if_match = "if-match" in exchange.headers
    if method == "GET":
        if partition is not None and "RowKey" in keys:
            return "read", table, (partition,)
        found = _FILTER_PARTITION.search(" ".join(query.get("$filter", [])))
        return "query", table, ((found.group(1).replace("''", "'"),) if found else ())
    if method == "POST":
        return "insert", table, _body_partition(exchange.body)
    if method in ("PATCH", "MERGE"):
        return ("merge" if if_match else "upsert"), table, _partition(partition, exchange.body)
    if method == "PUT":
        return ("replace" if if_match else "upsert"), table, _partition(partition, exchange.body)
    if method == "DELETE":
        return "delete", table, _partition(partition, b"")
    return method.lower(), table, _partition(partition, b"")


def _partition(partition: str | None, body: bytes) -> tuple[str, ...]:
    return (partition,) if partition is not None else _body_partition(body)


def _body_partition(body: bytes) -> tuple[str, ...]:
    try:
        value = json.loads(body or b"null")
    except ValueError:
        return ()
    key = value.get("PartitionKey") if isinstance(value, dict) else None
    return (key,) if isinstance(key, str) else ()


# ---- Queue storage -------------------------------------------------------------------------------------


def _queue(
    exchange: Exchange, path: str, query: Mapping[str, list[str]], message_subject: MessageLookup, at: float
) -> WireCall:
    segments = [s for s in path.split("/") if s]
    method = exchange.method.upper()
    status = exchange.status
    if "messages" not in segments:
        queue = segments[-1] if segments else ""
        comp = query.get("comp", [""])[0]
        if comp == "list":
            return WireCall("queue", "list queues", "", status, at=at)
        operation = {
            "PUT": "create" if not comp else "set metadata",
            "DELETE": "delete queue",
            "GET": "properties",
            "HEAD": "properties",
        }.get(method, method.lower())
        return WireCall("queue", operation, queue, status, at=at)
    index = segments.index("messages")
    queue = segments[index - 1] if index > 0 else ""
    message_id = segments[index + 1] if len(segments) > index + 1 else None
    if method == "POST":
        subjects = tuple(s for s in (_message_subject(_texts(exchange.body)),) if s)
        ids = tuple(m for m, _ in _messages(exchange.response_body))
        return WireCall("queue", "put", queue, status, subjects, ids, at)
    if method == "GET":
        peek = query.get("peekonly", [""])[0].lower() == "true"
        received = _messages(exchange.response_body)
        subjects = tuple(_message_subject([text]) or "" for _, text in received)
        ids = () if peek else tuple(m for m, _ in received)
        return WireCall("queue", "peek" if peek else "get", queue, status, subjects, ids, at)
    if method == "DELETE" and message_id is None:
        return WireCall("queue", "clear", queue, status, at=at)
    if message_id is not None and method in ("DELETE", "PUT"):
        subject = message_subject(message_id)
        return WireCall(
            "queue",
            "delete" if method == "DELETE" else "update",
            queue,
            status,
            (subject,) if subject else (),
            (message_id,),
            at,
        )
    return WireCall("queue", method.lower(), queue, status, at=at)


def _texts(body: bytes) -> list[str]:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return []
    return [element.text or "" for element in root.iter("MessageText")]


def _messages(body: bytes) -> list[tuple[str, str]]:
    """(MessageId, MessageText) of every message in a queue XML answer."""
    if not body:
        return []
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return []
    return [
        (m.findtext("MessageId") or "", m.findtext("MessageText") or "") for m in root.iter("QueueMessage")
    ]


def _message_subject(texts: list[str]) -> str | None:
    """The ``userId`` of a message body that is JSON, base64-encoded JSON or base64 of base64 JSON."""
    for text in texts:
        candidate = text
        for _ in range(3):
            document = _json_object(candidate)
            if document is not None:
                user = document.get("userId")
                return user if isinstance(user, str) else None
            try:
                candidate = base64.b64decode(candidate, validate=True).decode("utf-8")
            except (binascii.Error, ValueError):
                break
    return None


def _json_object(text: str) -> dict[str, object] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


# ---- Web PubSub and Notification Hubs ------------------------------------------------------------------


def _webpubsub(method: str, raw_path: str) -> tuple[str, str, tuple[str, ...]]:
    user = _WPS_USER.match(raw_path)
    if user is not None:
        rest = user.group(2) or ""
        subject = (unquote(user.group(1)),)
        if rest == "/:send":
            return "send to user", "", subject
        return ("user exists" if method.upper() == "HEAD" else f"user {method.lower()}"), "", subject
    path = unquote(raw_path)
    if path.endswith("/:send"):
        return (
            (
                "send to connection"
                if "/connections/" in path
                else "send to group"
                if "/groups/" in path
                else "broadcast"
            ),
            "",
            (),
        )
    if "/connections/" in path and method.upper() == "HEAD":
        return "connection exists", "", ()
    if path.endswith("/:generateToken"):
        return "generate token", "", ()
    return f"{method.lower()} {path}", "", ()


_TAG_IN_EXPRESSION = re.compile(r"[^\s()!&|]+")


def _notification_hubs(exchange: Exchange, path: str) -> tuple[str, str, tuple[str, ...]]:
    segments = [s for s in path.split("/") if s]
    hub = segments[0] if segments else ""
    if len(segments) >= 2 and segments[1] == "messages" and exchange.method.upper() == "POST":
        # A tag or a tag expression ("user:alice && !notify:retract"): each tag in it is a subject.
        tags = exchange.headers.get("servicebusnotification-tags", "")
        return "send", hub, tuple(dict.fromkeys(_TAG_IN_EXPRESSION.findall(tags)))
    if len(segments) >= 2 and segments[1] == "installations":
        return f"installation {exchange.method.lower()}", hub, ()
    return f"{exchange.method.lower()} {path}", hub, ()


def _event(exchange: Exchange, path: str) -> tuple[str, str, tuple[str, ...]]:
    if exchange.method.upper() == "OPTIONS":
        return "validate", "", ()
    kind = exchange.headers.get("ce-type", "")
    user = exchange.headers.get("ce-userid")
    if kind.startswith("azure.webpubsub."):
        return kind.removeprefix("azure.webpubsub."), "", (user,) if user else ()
    return f"{exchange.method.lower()} {path}", "", ()
