"""Parse and validate a notifications-queue message (schema v1, ``notify/notification.schema.json``).

The runtime does not ship ``jsonschema``, so the rules are checked by hand here; a unit test keeps this
parser and the schema file in agreement. Beyond what the schema can say, a message is also refused (and goes
to the poison queue at once) when its JSON nests deeper than :data:`shared.json_input.MAX_DEPTH` levels,
when a string holds a lone surrogate (``"\\ud800"``: nothing can store it), and when it may be pushed
(``delivery`` other than ``realtime``) but its push payload would exceed the 4 KB APNs/FCM limit
(:func:`notify.push_templates.check_payload_size`): better refused at enqueue than failed at push time.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from typing import Any

from notify.model import Delivery, Notification
from notify.push_templates import (
    PushOptions,
    check_payload_size,
    template_properties,
)
from shared.errors import InvalidMessageError
from shared.json_input import JsonInputError, may_hold_surrogates, parse_json, unstorable
from shared.user_keys import MAX_USER_ID_LENGTH, user_id_problem

#: Largest accepted message body in bytes. Storage queue messages are limited to 64 KiB *after* the
#: base64 encoding the Functions host expects (4/3 growth), so 48 KiB of JSON is the most that fits.
MAX_MESSAGE_BYTES = 48 * 1024
MAX_NOTIFICATION_ID_LENGTH = 128
MAX_TYPE_LENGTH = 64
MAX_TTL_SECONDS = 28 * 24 * 3600  # Notification Hubs' own maximum time to live (4 weeks)
SCHEMA_VERSION = 1

_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]+")
_ALLOWED = frozenset(
    {
        "schemaVersion",
        "userId",
        "title",
        "body",
        "type",
        "data",
        "notificationId",
        "delivery",
        "ttlSeconds",
        "enqueuedAt",
        "critical",
        "inbox",
        "traceparent",
    }
)
#: W3C Trace Context ``traceparent``, version 00 (https://www.w3.org/TR/trace-context/#traceparent-header).
_TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
# Deterministic ids for messages that came without one: the same queue message id gives the same id.
_QUEUE_ID_NAMESPACE = uuid.UUID("6f1c7c52-53b1-4d53-9a6e-1f0c2b8e4a10")


def notification_id_is_valid(value: str) -> bool:
    """True for a notificationId schema v1 accepts: 1-128 letters, digits, ``.``, ``_``, ``:`` and ``-``."""
    return 0 < len(value) <= MAX_NOTIFICATION_ID_LENGTH and _ID_PATTERN.fullmatch(value) is not None


def notification_id_for_queue_message(queue_message_id: str) -> str:
    """The notificationId given to a message without one, derived from its queue message id."""
    return "q-" + str(uuid.uuid5(_QUEUE_ID_NAMESPACE, queue_message_id))


def format_message(notification: Notification) -> str:
    """The schema-v1 JSON text of ``notification``: what the producer enqueues and parse_message reads."""
    message: dict[str, Any] = {
        "schemaVersion": SCHEMA_VERSION,
        "notificationId": notification.notification_id,
        "userId": notification.user_id,
        "title": notification.title,
        "body": notification.body,
        "type": notification.type,
        "data": dict(notification.data),
        "delivery": str(notification.delivery),
    }
    if notification.enqueued_at is not None:
        message["enqueuedAt"] = notification.enqueued_at
    if notification.ttl_seconds is not None:
        message["ttlSeconds"] = notification.ttl_seconds
    if notification.critical:
        message["critical"] = True
    if not notification.inbox:
        message["inbox"] = False
    if notification.traceparent is not None:
        message["traceparent"] = notification.traceparent
    for name, value in message.items():
        if unstorable(value):
            raise InvalidMessageError(f"{name} holds a lone surrogate or is not JSON", field=name)
    try:
        return json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidMessageError(f"data is not JSON-serialisable: {exc}", field="data") from None


def parse_message(body: bytes, queue_message_id: str | None = None) -> Notification:
    """Parse a queue message body into a Notification; raise InvalidMessageError with the reason.

    A message without ``notificationId`` gets one derived from ``queue_message_id`` so that a redelivery
    of the same queue message is recognised as a duplicate.
    """
    document = _decode(body)
    notification_id = _optional_id(document)
    if notification_id is None:
        if not queue_message_id:
            raise InvalidMessageError("notificationId is required when there is no queue message id",
                                      field="notificationId")
        notification_id = notification_id_for_queue_message(queue_message_id)
    notification = Notification(
        notification_id=notification_id,
        user_id=_user_id(document),
        title=_string(document, "title", required=True),
        body=_string(document, "body", required=True),
        type=_string(document, "type", default="default", min_length=1, max_length=MAX_TYPE_LENGTH),
        data=_data(document),
        delivery=_delivery(document),
        ttl_seconds=_ttl(document),
        enqueued_at=_enqueued_at(document),
        critical=_critical(document),
        inbox=_inbox(document),
        traceparent=_traceparent(document),
    )
    if notification.delivery is not Delivery.REALTIME:
        # The largest the property bag gets: no TTL ("2419200s") and the longer priority name.
        properties = template_properties(notification, PushOptions("normal"), now=0.0)
        try:
            check_payload_size(properties)
        except InvalidMessageError as exc:
            raise InvalidMessageError(
                f"{exc.message}; shorten title, body or data, or send it with delivery 'realtime'",
                field=exc.field,
            ) from None
    return notification


def validate_document(document: Any) -> None:
    """Check an already-decoded message against schema v1; raise InvalidMessageError with the reason."""
    if not isinstance(document, dict):
        raise InvalidMessageError("the message must be a JSON object")
    extra = sorted(set(document) - _ALLOWED)
    if extra:
        raise InvalidMessageError(f"unknown property {extra[0]!r}", field=extra[0])
    if "schemaVersion" in document and not _is_int(document["schemaVersion"], SCHEMA_VERSION):
        raise InvalidMessageError(f"schemaVersion must be {SCHEMA_VERSION}", field="schemaVersion")
    _optional_id(document)
    _user_id(document)
    _string(document, "title", required=True)
    _string(document, "body", required=True)
    _string(document, "type", default="default", min_length=1, max_length=MAX_TYPE_LENGTH)
    _data(document)
    _delivery(document)
    _ttl(document)
    _enqueued_at(document)
    _critical(document)
    _inbox(document)
    _traceparent(document)


def _decode(body: bytes) -> dict[str, Any]:
    if len(body) > MAX_MESSAGE_BYTES:
        raise InvalidMessageError(f"message is {len(body)} bytes; the limit is {MAX_MESSAGE_BYTES}")
    try:
        document = parse_json(body)
    except JsonInputError as exc:
        raise InvalidMessageError(f"message {exc}") from None
    validate_document(document)
    assert isinstance(document, dict)
    for name, value in document.items() if may_hold_surrogates(body) else ():
        if unstorable(value):
            raise InvalidMessageError(f"{name} holds a lone surrogate (an unpaired \\ud800-\\udfff escape)",
                                      field=name)
    return document


def _is_int(value: Any, expected: int | None = None) -> bool:
    # JSON Schema counts 3.0 as an integer; booleans are never numbers.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return False
    return expected is None or value == expected


def _string(
    document: dict[str, Any],
    name: str,
    required: bool = False,
    default: str = "",
    min_length: int = 0,
    max_length: int | None = None,
) -> str:
    if name not in document:
        if required:
            raise InvalidMessageError(f"{name} is required", field=name)
        return default
    value = document[name]
    if not isinstance(value, str):
        raise InvalidMessageError(f"{name} must be a string", field=name)
    if len(value) < min_length:
        raise InvalidMessageError(f"{name} must not be empty", field=name)
    if max_length is not None and len(value) > max_length:
        raise InvalidMessageError(f"{name} is longer than {max_length} characters", field=name)
    return value


def _user_id(document: dict[str, Any]) -> str:
    value = _string(document, "userId", required=True, min_length=1, max_length=MAX_USER_ID_LENGTH)
    problem = user_id_problem(value)
    if problem is not None:
        raise InvalidMessageError(f"userId {problem}", field="userId")
    return value


def _optional_id(document: dict[str, Any]) -> str | None:
    if "notificationId" not in document:
        return None
    value = _string(document, "notificationId", min_length=1, max_length=MAX_NOTIFICATION_ID_LENGTH)
    if not _ID_PATTERN.fullmatch(value):
        raise InvalidMessageError(
            "notificationId may only contain letters, digits, '.', '_', ':' and '-'", field="notificationId"
        )
    return value


def _data(document: dict[str, Any]) -> dict[str, Any]:
    value = document.get("data", {})
    if not isinstance(value, dict):
        raise InvalidMessageError("data must be a JSON object", field="data")
    return value


def _delivery(document: dict[str, Any]) -> Delivery:
    value = document.get("delivery", Delivery.AUTO.value)
    if not isinstance(value, str) or value not in {d.value for d in Delivery}:
        allowed = ", ".join(d.value for d in Delivery)
        raise InvalidMessageError(f"delivery must be one of {allowed}", field="delivery")
    return Delivery(value)


def _ttl(document: dict[str, Any]) -> int | None:
    if "ttlSeconds" not in document:
        return None
    value = document["ttlSeconds"]
    if not _is_int(value) or not 1 <= value <= MAX_TTL_SECONDS:
        raise InvalidMessageError(
            f"ttlSeconds must be a whole number from 1 to {MAX_TTL_SECONDS}", field="ttlSeconds"
        )
    return int(value)


def _enqueued_at(document: dict[str, Any]) -> float | None:
    if "enqueuedAt" not in document:
        return None
    value = document["enqueuedAt"]
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0:
        raise InvalidMessageError("enqueuedAt must be a non-negative number of unix seconds", "enqueuedAt")
    return float(value)


def _critical(document: dict[str, Any]) -> bool:
    value = document.get("critical", False)
    if not isinstance(value, bool):
        raise InvalidMessageError("critical must be true or false", field="critical")
    return value


def _inbox(document: dict[str, Any]) -> bool:
    value = document.get("inbox", True)
    if not isinstance(value, bool):
        raise InvalidMessageError("inbox must be true or false", field="inbox")
    return value


def _traceparent(document: dict[str, Any]) -> str | None:
    if "traceparent" not in document:
        return None
    value = document["traceparent"]
    if not isinstance(value, str) or not _TRACEPARENT.fullmatch(value):
        raise InvalidMessageError(
            "traceparent must be a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)", field="traceparent"
        )
    return value
