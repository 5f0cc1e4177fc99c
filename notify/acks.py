"""The in-app ack: the ``ack`` user event a client sends once it has shown a notification, and its answer.

Event (client → Web PubSub → the ``ack`` function), data type ``json``::

    {"notificationId": "<id>"}

Answer (the function's return value, which Web PubSub sends back to the same connection as a server
message with data type ``json``)::

    {"kind": "ackResult", "protocolVersion": 1, "notificationId": "<id>", "ok": true}
    {"kind": "ackResult", "protocolVersion": 1, "notificationId": "<id>" | null, "ok": false,
     "error": {"code": "<code>", "message": "<what was wrong>", "retryable": <bool>}}

Error codes: ``malformed`` (not a JSON object with a valid ``notificationId``), ``unknown_notification``
(the caller's user has no such notification; another user's notification gives the same answer, so an ack
cannot probe which ids exist), ``unauthenticated`` (the connection has no user id), ``unavailable`` (storage
failed: retry later) and ``internal``. Acking twice is fine: the second ack answers ``ok`` again.

The function never raises: on Azure an exception in a user-event function leaves the service's webhook
call waiting for its timeout, and a non-2xx answer drops the client's connection. A failed ack is logged and
answered; the ack deadline then pushes the notification as if no ack had come.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from notify.message import MAX_NOTIFICATION_ID_LENGTH, notification_id_is_valid
from notify.model import CLIENT_PROTOCOL_VERSION
from shared.errors import TransientError
from shared.json_input import JsonInputError, parse_json
from shared.user_keys import user_id_problem

logger = logging.getLogger(__name__)

#: Acks are tiny; anything much larger is not an ack.
MAX_ACK_BYTES = 4096
ACK_RESULT_KIND = "ackResult"
#: Every error code an answer can carry, and whether trying the same ack again later may succeed.
ERROR_CODES: dict[str, bool] = {
    "malformed": False,
    "unknown_notification": False,
    "unauthenticated": False,
    "unavailable": True,
    "internal": True,
}


class AckRecorder(Protocol):
    """Records an ack (``notify.notifier.Notifier``)."""

    def handle_ack(self, user_id: str, notification_id: str, connection_id: str = "") -> bool:
        """Record the ack (made on ``connection_id``); False when the user has no such notification."""
        ...


@dataclass(frozen=True)
class AckRejected(Exception):
    """An ack that cannot be recorded; ``code`` is one of :data:`ERROR_CODES`."""

    code: str
    message: str
    notification_id: str | None = None


def parse_ack(request: str | bytes) -> tuple[str, str]:
    """The (user id, notificationId) of an ``ack`` event; raise AckRejected (malformed/unauthenticated)."""
    user_id, notification_id, _ = _parse(request)
    return user_id, notification_id


def _parse(request: str | bytes) -> tuple[str, str, str]:
    """(user id, notificationId, connection id or "") of an ``ack`` event; raise AckRejected."""
    event = _json(request, "the event")
    if not isinstance(event, dict):
        raise AckRejected("malformed", "the event is not a JSON object")
    context = event.get("connectionContext")
    user_id = context.get("userId") if isinstance(context, dict) else None
    connection_id = context.get("connectionId") if isinstance(context, dict) else None
    data = event.get("data")
    if isinstance(data, str | bytes):
        if len(data) > MAX_ACK_BYTES:
            raise AckRejected("malformed", f"the ack is larger than {MAX_ACK_BYTES} bytes")
        data = _json(data, "the ack")
    notification_id = data.get("notificationId") if isinstance(data, dict) else None
    valid = isinstance(notification_id, str) and notification_id_is_valid(notification_id)
    named = notification_id if valid else None
    if not isinstance(user_id, str) or user_id_problem(user_id) is not None:
        raise AckRejected("unauthenticated", "the connection has no usable user id", named)
    if not isinstance(data, dict):
        raise AckRejected("malformed", 'the ack must be a JSON object {"notificationId": "<id>"}')
    if named is None:
        raise AckRejected(
            "malformed",
            f"notificationId must be a string of 1-{MAX_NOTIFICATION_ID_LENGTH} letters, digits, "
            "'.', '_', ':' and '-'",
        )
    return user_id, named, connection_id if isinstance(connection_id, str) else ""


def answer_ack(request: str | bytes, notifier: AckRecorder) -> dict[str, Any]:
    """Record the ack in ``request`` and return the user-event response that answers it; never raises."""
    notification_id: str | None = None
    try:
        user_id, notification_id, connection_id = _parse(request)
        if not notifier.handle_ack(user_id, notification_id, connection_id):
            raise AckRejected("unknown_notification", "this user has no such notification", notification_id)
        return ack_response(notification_id)
    except AckRejected as rejected:
        logger.warning("ack rejected: %s (%s)", rejected.code, rejected.message)
        return ack_response(rejected.notification_id or notification_id, rejected.code, rejected.message)
    except TransientError as exc:
        logger.warning("ack of %s not recorded, storage unavailable: %s", notification_id, exc.message)
        return ack_response(notification_id, "unavailable", "the ack could not be recorded; try again later")
    except Exception:
        logger.exception("ack of %s failed", notification_id)
        return ack_response(notification_id, "internal", "the ack could not be recorded")


def ack_response(
    notification_id: str | None, code: str | None = None, message: str = ""
) -> dict[str, Any]:
    """The Functions user-event response carrying an ack answer (``code`` None means success)."""
    answer: dict[str, Any] = {
        "kind": ACK_RESULT_KIND,
        "protocolVersion": CLIENT_PROTOCOL_VERSION,
        "notificationId": notification_id,
        "ok": code is None,
    }
    if code is not None:
        answer["error"] = {"code": code, "message": message, "retryable": ERROR_CODES[code]}
    # The extension takes user-event data as a string only (AZURE-CONTRACTS 3.3).
    return {"data": json.dumps(answer, separators=(",", ":")), "dataType": "json"}


def _json(text: str | bytes, what: str) -> Any:
    try:
        return parse_json(text)  # nesting bounded (shared.json_input)
    except JsonInputError as exc:
        raise AckRejected("malformed", f"{what} {exc}") from None
