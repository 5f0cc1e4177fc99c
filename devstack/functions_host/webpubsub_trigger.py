"""Web PubSub triggers at ``/runtime/webhooks/webpubsub``, behaving like the extension's dispatcher.

Order of checks (WebPubSubTriggerDispatcher): OPTIONS/GET → abuse-protection reply; CloudEvents headers
that cannot be parsed → 400; no function for ``hub.eventType.eventName`` (case-insensitive) → 404;
bad signature → 401; non-POST → 400; otherwise the function runs and its return value becomes the response.

The ``request`` JSON is what the extension serialises with its Newtonsoft settings: enums as their C# names
(``"eventType": "System"``, ``"dataType": "Text"``), states as raw JSON values, BinaryData as text. The host's
default type for a script trigger is ``string``, so the parameter chosen by name arrives as ``string``
TypedData: objects as ``JToken.ToString()`` writes them (indented JSON), strings as they are.

A ``connect`` or ``disconnected`` body is deserialised with System.Text.Json before any function runs; a body
that is not that JSON shape (not JSON, not an object, a field of the wrong type, nesting deeper than 64, or
``null``) throws in the extension, and the host's webhook route answers 500 without running the function. The
service never sends such a body; this host answers the same, logs why, and goes on serving.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from devstack.functions_host.indexing import IndexedFunction, IndexingError
from devstack.functions_host.invocation_log import REASON_HTTP
from devstack.functions_host.invoker import InvocationFailed, Invoker
from devstack.functions_host.typed_data import from_typed_data, newtonsoft_indented, to_typed_data

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/runtime/webhooks/webpubsub"
DEFAULT_CONNECTION_SETTING = "WebPubSubConnectionString"
DEFAULT_HUB_SETTING = "WebPubSubHub"
SYSTEM_PREFIX = "azure.webpubsub.sys."
_CONTENT_TYPES = {"application/octet-stream": "Binary", "application/json": "Json", "text/plain": "Text"}
_DATA_TYPES = {"binary": "application/octet-stream", "json": "application/json", "text": "text/plain"}
_ERROR_STATUS = {0: 401, 1: 400, 2: 500}
_ERROR_NAMES = {"unauthorized": 0, "usererror": 1, "servererror": 2, "success": -1}
_BLOCKING = ("connect", "user")


def parse_connection_string(connection_string: str) -> tuple[str, str | None]:
    """Return (endpoint host, access key or None) from a Web PubSub connection string."""
    properties: dict[str, str] = {}
    for part in connection_string.split(";"):
        key, separator, value = part.partition("=")
        if separator:
            properties[key.strip().lower()] = value.strip()
    endpoint = properties.get("endpoint")
    if not endpoint:
        raise ValueError("Web PubSub connection string has no Endpoint")
    host = urlsplit(endpoint.rstrip("/")).hostname
    if not host:
        raise ValueError("Web PubSub connection string has an invalid Endpoint")
    return host.lower(), properties.get("accesskey") or None


def compute_signature(access_key: str, connection_id: str) -> str:
    """Return ``sha256=<hex>`` as the service signs ``connection_id`` with ``access_key``."""
    digest = hmac.new(access_key.encode("utf-8"), connection_id.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"sha256={digest}"


@dataclass(frozen=True)
class ValidationOptions:
    """Hosts and access keys that requests are validated against (empty = validation skipped)."""

    keys_by_host: Mapping[str, str | None]

    @classmethod
    def from_connection_strings(cls, connection_strings: Sequence[str]) -> ValidationOptions:
        """Build the options from connection strings (empty strings are ignored)."""
        mapping: dict[str, str | None] = {}
        for item in connection_strings:
            if item:
                host, key = parse_connection_string(item)
                mapping[host] = key
        return cls(mapping)

    def signature_is_valid(self, origins: Sequence[str], connection_id: str, signature: str | None) -> bool:
        """Check ``ce-signature`` like the extension: any listed signature made with the origin's key."""
        if not self.keys_by_host:
            return True
        for origin in origins:
            if origin.lower() not in self.keys_by_host:
                continue
            key = self.keys_by_host[origin.lower()]
            if not key:
                return True
            if not signature:
                return False
            expected = compute_signature(key, connection_id)
            candidates = [s.strip() for s in signature.split(",") if s.strip()]
            if any(hmac.compare_digest(candidate.lower(), expected.lower()) for candidate in candidates):
                return True
        return False


@dataclass(frozen=True)
class WebPubSubListenerEntry:
    """One trigger function registered under ``hub.eventType.eventName``."""

    function: IndexedFunction
    validation: ValidationOptions


def listener_key(hub: str, event_type: str, event_name: str) -> str:
    """The dispatcher key (compared case-insensitively)."""
    return f"{hub}.{event_type}.{event_name}".lower()


def build_listeners(
    functions: Sequence[IndexedFunction], settings: Mapping[str, str]
) -> tuple[dict[str, WebPubSubListenerEntry], ValidationOptions]:
    """Register the Web PubSub trigger functions; return them and the global validation options."""
    global_connection = settings.get(DEFAULT_CONNECTION_SETTING, "")
    global_options = ValidationOptions.from_connection_strings([global_connection])
    listeners: dict[str, WebPubSubListenerEntry] = {}
    for function in functions:
        if function.trigger_type.lower() != "webpubsubtrigger":
            continue
        trigger = function.trigger
        hub = str(trigger.get("hub") or settings.get(DEFAULT_HUB_SETTING) or "")
        if not hub:
            raise IndexingError(
                f"function '{function.name}': Web PubSub hub is not set (binding 'hub' or WebPubSubHub)"
            )
        event_type = str(trigger.get("eventType", "")).lower()
        if event_type not in ("system", "user"):
            raise IndexingError(f"function '{function.name}': eventType must be 'system' or 'user'")
        event_name = str(trigger.get("eventName", ""))
        connections = trigger.get("connections")
        if connections:
            validation = ValidationOptions.from_connection_strings(
                [_resolve_connection(str(item), settings) for item in connections]
            )
        else:
            validation = global_options
        key = listener_key(hub, event_type, event_name)
        if key in listeners:
            raise IndexingError(f"Duplicated binding attribute find: {hub},{event_type},{event_name}")
        listeners[key] = WebPubSubListenerEntry(function, validation)
    return listeners, global_options


def _resolve_connection(item: str, settings: Mapping[str, str]) -> str:
    """A ``connections`` entry: a connection string (older extension versions) or an app setting name.

    An identity-based setting (``<name>__serviceUri``) has no key, so it yields an Endpoint without AccessKey,
    which turns signature checks off for that host, as in the extension.
    """
    if "endpoint=" in item.lower():
        return item
    if settings.get(item):
        return settings[item]
    service_uri = settings.get(f"{item}__serviceUri")
    return f"Endpoint={service_uri}" if service_uri else ""


def _split_header(values: Sequence[str]) -> list[str]:
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def _decode_states(header: str | None) -> dict[str, Any]:
    if not header:
        return {}
    try:
        decoded = json.loads(base64.b64decode(header))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("ce-connectionState is not base64 JSON") from exc
    if not isinstance(decoded, dict):
        raise ValueError("ce-connectionState is not a JSON object")
    return decoded


def _encode_states(states: Mapping[str, Any]) -> str:
    return base64.b64encode(json.dumps(states, separators=(",", ":")).encode("utf-8")).decode("ascii")


@dataclass
class _Context:
    event_type: str  # "System" | "User"
    event_name: str
    hub: str
    connection_id: str
    user_id: str | None
    signature: str | None
    origin: str
    states: dict[str, Any]
    headers: dict[str, list[str]]

    def to_json(self) -> dict[str, Any]:
        return {
            "eventType": self.event_type,
            "eventName": self.event_name,
            "hub": self.hub,
            "connectionId": self.connection_id,
            "userId": self.user_id,
            "signature": self.signature,
            "origin": self.origin,
            "states": self.states,
            "headers": self.headers,
        }


def _parse_cloud_event(request: web.Request) -> _Context:
    headers = request.headers

    def single(name: str) -> str:
        values = headers.getall(name)
        if len(values) != 1:
            raise ValueError(f"header {name} must appear once")
        return values[0]

    ce_type = single("ce-type")
    grouped: dict[str, list[str]] = {}
    for key, value in headers.items():
        if key.lower() in ("content-type", "content-length"):
            continue  # .NET keeps these in Content.Headers, not Request.Headers
        grouped.setdefault(key, []).append(value)
    return _Context(
        event_type="System" if ce_type.lower().startswith(SYSTEM_PREFIX) else "User",
        event_name=single("ce-eventName"),
        hub=single("ce-hub"),
        connection_id=single("ce-connectionId"),
        user_id=headers.get("ce-userId"),
        signature=",".join(headers.getall("ce-signature")) if "ce-signature" in headers else None,
        origin=",".join(headers.getall("WebHook-Request-Origin")),
        states=_decode_states(headers.get("ce-connectionState")),
        headers=grouped,
    )


def _request_kind(context: _Context) -> str:
    if context.event_type == "User":
        return "user"
    return {"connect": "connect", "connected": "connected", "disconnected": "disconnected"}.get(
        context.event_name.lower(), "ignored"
    )


MAX_JSON_DEPTH = 64  # JsonSerializerOptions.MaxDepth default


class MalformedEventBody(ValueError):
    """A connect/disconnected body the extension's System.Text.Json deserialisation would throw on."""


def _json_depth(value: Any) -> int:
    depth, level = 0, [(value, 1)]
    while level:
        item, d = level.pop()
        depth = max(depth, d)
        if isinstance(item, dict):
            level.extend((v, d + 1) for v in item.values())
        elif isinstance(item, list):
            level.extend((v, d + 1) for v in item)
    return depth


def _event_object(body: bytes, kind: str) -> dict[str, Any]:
    text = body.decode("utf-8", errors="replace")
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise MalformedEventBody(f"the {kind} body is not JSON") from exc
    if document is None:
        raise MalformedEventBody(f"the {kind} body is null")
    if not isinstance(document, dict):
        raise MalformedEventBody(f"the {kind} body is a JSON {type(document).__name__}, not an object")
    if _json_depth(document) > MAX_JSON_DEPTH:
        raise MalformedEventBody(f"the {kind} body is nested deeper than {MAX_JSON_DEPTH}")
    return document


def _expect(document: Mapping[str, Any], name: str, check: Any, shape: str) -> Any:
    value = document.get(name)
    if value is not None and not check(value):
        raise MalformedEventBody(f"'{name}' is not {shape}")
    return value


def _is_strings(value: Any) -> bool:
    return isinstance(value, list) and all(item is None or isinstance(item, str) for item in value)


def _is_string_arrays(value: Any) -> bool:
    return isinstance(value, dict) and all(item is None or _is_strings(item) for item in value.values())


def _is_certificates(value: Any) -> bool:
    return isinstance(value, list) and all(
        item is None
        or (
            isinstance(item, dict)
            and all(
                item.get(key) is None or isinstance(item.get(key), str) for key in ("thumbprint", "content")
            )
        )
        for item in value
    )


def parse_connect_body(body: bytes) -> dict[str, Any]:
    """The ConnectEventRequest fields of a connect body; MalformedEventBody where the extension throws."""
    document = _event_object(body, "connect")
    return {
        "claims": _expect(document, "claims", _is_string_arrays, "an object of string arrays"),
        "query": _expect(document, "query", _is_string_arrays, "an object of string arrays"),
        "headers": _expect(document, "headers", _is_string_arrays, "an object of string arrays"),
        "subprotocols": _expect(document, "subprotocols", _is_strings, "an array of strings"),
        "clientCertificates": _expect(
            document, "clientCertificates", _is_certificates, "an array of {thumbprint, content}"
        ),
    }


def parse_disconnected_body(body: bytes) -> str | None:
    """The reason of a disconnected body; MalformedEventBody where the extension would throw."""
    reason: str | None = _expect(
        _event_object(body, "disconnected"), "reason", lambda v: isinstance(v, str), "a string"
    )
    return reason


class WebPubSubDispatcher:
    """aiohttp handler for the Web PubSub webhook path."""

    def __init__(
        self,
        listeners: dict[str, WebPubSubListenerEntry],
        global_options: ValidationOptions,
        invoker: Invoker,
    ) -> None:
        self._listeners = listeners
        self._global = global_options
        self._invoker = invoker

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Serve one webhook request."""
        if request.method in ("OPTIONS", "GET"):
            return self._abuse_protection(request)
        try:
            context = _parse_cloud_event(request)
        except (KeyError, ValueError):
            return web.Response(status=400)
        entry = self._listeners.get(listener_key(context.hub, context.event_type, context.event_name))
        if entry is None:
            return web.Response(status=404)
        if not entry.validation.signature_is_valid(
            _split_header([context.origin]), context.connection_id, context.signature
        ):
            return web.Response(status=401)
        if request.method != "POST":
            return web.Response(status=400)
        kind = _request_kind(context)
        event: dict[str, Any] = {"connectionContext": context.to_json()}
        try:
            if kind == "connect":
                event.update(parse_connect_body(await request.read()))
            elif kind == "disconnected":
                event["reason"] = parse_disconnected_body(await request.read())
        except MalformedEventBody as exc:
            logger.warning(
                "Web PubSub %s event for '%s' refused with 500 (the extension throws on it): %s",
                context.event_name,
                entry.function.name,
                exc,
            )
            return web.Response(status=500)
        if kind == "user":
            if "Content-Type" not in request.headers:
                # The extension reads Content.Headers.ContentType.MediaType: no header is a
                # NullReferenceException.
                logger.warning(
                    "Web PubSub user event '%s' without Content-Type refused with 500", context.event_name
                )
                return web.Response(status=500)
            media_type = (request.content_type or "").lower()
            if media_type not in _CONTENT_TYPES:
                return web.Response(status=400, text=f"Not supported data type: {request.content_type}")
            event["data"] = (await request.read()).decode("utf-8", errors="replace")
            event["dataType"] = _CONTENT_TYPES[media_type]
        try:
            result = await self._invoker.invoke(
                entry.function, self._argument(entry.function, event), REASON_HTTP
            )
        except InvocationFailed as failure:  # the extension turns a failure into ServerError
            if kind in _BLOCKING:
                return web.Response(status=500, text=failure.message)
            return web.Response(status=200)
        if kind in _BLOCKING and result.return_value is not None:
            return self._blocking_response(kind, from_typed_data(result.return_value), context)
        return web.Response(status=200)

    def _abuse_protection(self, request: web.Request) -> web.Response:
        hosts = _split_header(request.headers.getall("WebHook-Request-Origin", []))
        if not self._global.keys_by_host:
            return web.Response(status=200, headers={"WebHook-Allowed-Origin": "*"})
        for host in hosts:
            if host.lower() in self._global.keys_by_host:
                return web.Response(status=200, headers={"WebHook-Allowed-Origin": host})
        return web.Response(status=400)

    @staticmethod
    def _argument(function: IndexedFunction, event: dict[str, Any]) -> Any:
        """The TypedData for the trigger parameter, chosen by its name (any other name gets an empty one)."""
        name = str(function.trigger["name"]).lower()
        if name == "request":
            return to_typed_data(newtonsoft_indented(event))
        lookup = {key.lower(): key for key in event}
        if name not in lookup:
            return to_typed_data(None)
        value = event[lookup[name]]
        if value is None or isinstance(value, str):
            return to_typed_data(value)
        return to_typed_data(newtonsoft_indented(value))

    @staticmethod
    def _blocking_response(kind: str, result: Any, context: _Context) -> web.Response:
        if not isinstance(result, dict):
            logger.warning(
                "Invalid response type %s regarding current request: %s", type(result).__name__, kind
            )
            return web.Response(status=200)
        error = _error_code(result.get("code"))
        if error is not None:
            return web.Response(
                status=_ERROR_STATUS.get(error, 500), text=str(result.get("errorMessage") or "")
            )
        headers: dict[str, str] = {}
        states = result.get("states")
        if isinstance(states, dict):
            merged = {**context.states, **states}
            merged = {key: value for key, value in merged.items() if value is not None}
            if merged:
                headers["ce-connectionState"] = _encode_states(merged)
        if kind == "connect":
            # Newtonsoft serialises ConnectEventResponse with every member, nulls included.
            payload = {
                "userId": result.get("userId"),
                "groups": result.get("groups"),
                "subprotocol": result.get("subprotocol"),
                "roles": result.get("roles"),
            }
            return web.Response(
                status=200,
                body=json.dumps(payload).encode("utf-8"),
                headers={**headers, "Content-Type": "application/json"},
            )
        data = result.get("data")
        data_type = str(result.get("dataType") or "text").lower()
        content_type = _DATA_TYPES.get(data_type, "application/octet-stream")
        if data is None:
            body = b""
        elif isinstance(data, str):
            body = data.encode("utf-8")
        else:
            # The extension's BinaryData converter accepts only strings here (and Node Buffers).
            return web.Response(status=500, text="Message should be string, please stringify object.")
        return web.Response(status=200, body=body, headers={**headers, "Content-Type": content_type})


def _error_code(code: Any) -> int | None:
    """Return the WebPubSubErrorCode number for an error response, None for success/absent."""
    if code is None:
        return None
    if isinstance(code, bool):
        return None
    if isinstance(code, int):
        return None if code == -1 else code
    number = _ERROR_NAMES.get(str(code).replace("_", "").lower())
    if number is None:
        return 2
    return None if number == -1 else number
