"""Frames of the ``json.webpubsub.azure.v1`` family; payload bytes, content types and dataTypes."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

JSON_PROTOCOL = "json.webpubsub.azure.v1"
RELIABLE_JSON_PROTOCOL = "json.reliable.webpubsub.azure.v1"
JSON_PROTOCOLS = (JSON_PROTOCOL, RELIABLE_JSON_PROTOCOL)

CONTENT_TYPE_TO_DATA_TYPE = {
    "application/json": "json",
    "text/plain": "text",
    "application/octet-stream": "binary",
}
DATA_TYPE_TO_CONTENT_TYPE = {
    "json": "application/json",
    "text": "text/plain",
    "binary": "application/octet-stream",
    "protobuf": "application/x-protobuf",
}


class FrameError(ValueError):
    """A client frame that is not valid JSON or misses a required field; the message says what."""


class PayloadError(ValueError):
    """A payload that does not match its declared content type (e.g. invalid JSON for application/json)."""


@dataclass(frozen=True)
class Payload:
    """A message body with its content type: application/json, text/plain or application/octet-stream."""

    body: bytes
    content_type: str

    @property
    def data_type(self) -> str:
        """The json-subprotocol dataType of this payload."""
        return CONTENT_TYPE_TO_DATA_TYPE.get(self.content_type, "binary")

    def frame_data(self) -> Any:
        """The ``data`` value of a message frame carrying this payload."""
        if self.data_type == "json":
            return json.loads(self.body.decode("utf-8"))
        if self.data_type == "text":
            return self.body.decode("utf-8")
        return base64.b64encode(self.body).decode("ascii")


def media_type(content_type: str | None) -> str:
    """``text/plain; charset=utf-8`` -> ``text/plain``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def payload_from_http(body: bytes, content_type: str | None) -> Payload:
    """Validate a REST/upstream body against its content type; raises PayloadError."""
    mt = media_type(content_type)
    if mt not in CONTENT_TYPE_TO_DATA_TYPE:
        allowed = ", ".join(CONTENT_TYPE_TO_DATA_TYPE)
        raise PayloadError(f"unsupported Content-Type {content_type!r}; use one of {allowed}")
    if mt == "application/json":
        try:
            json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise PayloadError(f"the body is not valid JSON: {exc}") from exc
    elif mt == "text/plain":
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PayloadError("the text/plain body is not valid UTF-8") from exc
    return Payload(body=body, content_type=mt)


def payload_from_frame(data: Any, data_type: str) -> Payload:
    """The payload of a client ``event``/``sendToGroup`` frame; raises FrameError."""
    if data_type == "json":
        return Payload(json.dumps(data, separators=(",", ":")).encode("utf-8"), "application/json")
    if data_type == "text":
        if not isinstance(data, str):
            raise FrameError("'data' must be a string when dataType is text")
        return Payload(data.encode("utf-8"), "text/plain")
    if data_type in ("binary", "protobuf"):
        if not isinstance(data, str):
            raise FrameError("'data' must be a base64 string when dataType is binary")
        try:
            return Payload(base64.b64decode(data, validate=True), "application/octet-stream")
        except (binascii.Error, ValueError) as exc:
            raise FrameError("'data' is not valid base64") from exc
    raise FrameError(f"unknown dataType {data_type!r}; use json, text or binary")


def connected_frame(
    user_id: str | None, connection_id: str, reconnection_token: str | None
) -> dict[str, Any]:
    """The ``connected`` system frame (``reconnectionToken`` only on the reliable subprotocol)."""
    frame: dict[str, Any] = {
        "type": "system",
        "event": "connected",
        "userId": user_id,
        "connectionId": connection_id,
    }
    if reconnection_token is not None:
        frame["reconnectionToken"] = reconnection_token
    return frame


def disconnected_frame(message: str) -> dict[str, Any]:
    """The ``disconnected`` system frame sent before the service closes a connection."""
    return {"type": "system", "event": "disconnected", "message": message}


def server_message_frame(payload: Payload) -> dict[str, Any]:
    """A message from the server (REST send or an upstream user-event response)."""
    return {"type": "message", "from": "server", "dataType": payload.data_type, "data": payload.frame_data()}


def group_message_frame(group: str, from_user_id: str | None, payload: Payload) -> dict[str, Any]:
    """A message published to a group by a client (or sent to a group over REST)."""
    frame: dict[str, Any] = {"type": "message", "from": "group", "group": group}
    if from_user_id is not None:
        frame["fromUserId"] = from_user_id
    frame["dataType"] = payload.data_type
    frame["data"] = payload.frame_data()
    return frame


def pong_frame() -> dict[str, Any]:
    """The service's answer to a client ``ping`` (the keep-alive of ``@azure/web-pubsub-client``)."""
    return {"type": "pong"}


def invoke_response_frame(
    invocation_id: str, payload: Payload | None, error_name: str | None = None, message: str = ""
) -> dict[str, Any]:
    """The answer to a client ``invoke``: the upstream response as data, or ``success: false``."""
    frame: dict[str, Any] = {"type": "invokeResponse", "invocationId": invocation_id}
    if error_name is not None:
        frame["success"] = False
        frame["error"] = {"name": error_name, "message": message}
        return frame
    frame["success"] = True
    if payload is not None:
        frame["dataType"] = payload.data_type
        frame["data"] = payload.frame_data()
    return frame


def ack_frame(ack_id: int, error_name: str | None = None, message: str = "") -> dict[str, Any]:
    """An ``ack`` frame; ``error_name`` is Forbidden, InternalServerError or Duplicate."""
    frame: dict[str, Any] = {"type": "ack", "ackId": ack_id, "success": error_name is None}
    if error_name is not None:
        frame["error"] = {"name": error_name, "message": message}
    return frame


@dataclass(frozen=True)
class ClientFrame:
    """A parsed client frame: joinGroup, leaveGroup, sendToGroup, event, sequenceAck, ping, invoke,
    cancelInvocation or invokeResponse."""

    type: str
    ack_id: int | None = None
    group: str | None = None
    event: str | None = None
    payload: Payload | None = None
    no_echo: bool = False
    sequence_id: int | None = None
    invocation_id: str | None = None


def _uint(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FrameError(f"'{name}' must be a non-negative integer")
    return value


def _name(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise FrameError(f"'{name}' must be a non-empty string")
    return value


def parse_client_frame(text: str) -> ClientFrame:
    """Parse one text frame from a json-subprotocol client; raises FrameError saying what is wrong."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise FrameError(f"the frame is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise FrameError("the frame must be a JSON object")
    kind = raw.get("type")
    ack_id = _uint(raw["ackId"], "ackId") if raw.get("ackId") is not None else None
    if kind in ("joinGroup", "leaveGroup"):
        return ClientFrame(type=kind, ack_id=ack_id, group=_name(raw.get("group"), "group"))
    if kind == "sendToGroup":
        return ClientFrame(
            type=kind,
            ack_id=ack_id,
            group=_name(raw.get("group"), "group"),
            payload=payload_from_frame(raw.get("data"), raw.get("dataType") or "json"),
            no_echo=bool(raw.get("noEcho", False)),
        )
    if kind == "event":
        return ClientFrame(
            type=kind,
            ack_id=ack_id,
            event=_name(raw.get("event"), "event"),
            payload=payload_from_frame(raw.get("data"), raw.get("dataType") or "json"),
        )
    if kind == "sequenceAck":
        return ClientFrame(type=kind, sequence_id=_uint(raw.get("sequenceId"), "sequenceId"))
    if kind == "ping":
        return ClientFrame(type=kind)
    if kind == "invoke":
        target = raw.get("target", "event")
        if target not in (None, "event"):
            raise FrameError(f"unknown invoke target {target!r}; only 'event' is supported")
        has_data = raw.get("data") is not None
        return ClientFrame(
            type=kind,
            invocation_id=_name(raw.get("invocationId"), "invocationId"),
            event=_name(raw.get("event"), "event"),
            payload=payload_from_frame(raw.get("data"), raw.get("dataType") or "json")
            if has_data
            else Payload(b"", "text/plain"),
        )
    if kind in ("cancelInvocation", "invokeResponse"):
        return ClientFrame(type=kind, invocation_id=_name(raw.get("invocationId"), "invocationId"))
    raise FrameError(f"unknown frame type {kind!r}")
