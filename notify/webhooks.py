"""Delivery webhooks: every recorded transition, POSTed to ``WEBHOOK_URL`` as a signed CloudEvent.

The way an event travels::

    notifier handling ends ─▶ WebhookOutbox.publish ─▶ [WEBHOOK_QUEUE] ─▶ deliver_webhook_events (trigger)
        one message per handling (its timeline entries)          └─▶ WebhookDispatcher.dispatch: POST each
                                                                       event in order; the rest, on failure:
        re-enqueued with backoff (WEBHOOK_BACKOFF_SECONDS, doubling, at most an hour) ◀─┘
        until WEBHOOK_RETRY_SECONDS have passed, then to <WEBHOOK_QUEUE>-poison with the reason

The notifier enqueues after its sends and never fails a delivery because of a webhook; the POSTs happen
in another function, so a slow or failing receiver never delays a notification.

**The request.** One event per POST, a CloudEvent 1.0 in structured mode (``Content-Type:
application/cloudevents+json``): ``id`` (stable across retries: derived from the user, the notification
and the entry's sequence number), ``source`` ``/azure-notify/deliveries``, ``type``
``azure-notify.delivery.<transition name>`` (``accepted``, ``claim``, ``realtime-sent``, ``acked``,
``push-sent``, ``no-devices``, ``released``, ``failed``, ``realtime-failed``, ``expired``, and whatever a
later version adds), ``subject`` ``users/<userId>/notifications/<notificationId>`` (URL-encoded), ``time``,
and ``data`` ``{"userId", "notificationId", "sequence", "name", "status", "reason", "details"}``.

**The signature** follows Standard Webhooks (https://www.standardwebhooks.com/, "Signature scheme"):

* ``webhook-id``: the event id; ``webhook-timestamp``: unix seconds of this attempt;
* ``webhook-signature``: ``v1,<base64 HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<body>")>``, one per
  configured secret, separated by spaces (so a secret can be rotated without a gap);
* the key is the base64 part of the ``whsec_<base64>`` secret, decoded.

A receiver recomputes the HMAC over the raw body, compares in constant time, refuses a timestamp more than
five minutes from its clock (the replay window) and drops an ``id`` it has already processed (delivery is
at least once: after a crash between a POST and its bookkeeping an event can come twice). The README
has a verification recipe; any Standard Webhooks library verifies these requests too.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import random
import secrets
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import requests
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError

from notify.deliveries import translate_azure_error
from notify.delivery_machine import TimelineEntry
from notify.telemetry import DeliveryTelemetry
from shared.settings import WebhookSettings

logger = logging.getLogger(__name__)

SOURCE = "/azure-notify/deliveries"
TYPE_PREFIX = "azure-notify.delivery."
CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
USER_AGENT = "azure-notify-webhooks/1"
#: Longest wait between two attempts.
MAX_BACKOFF_SECONDS = 3600
#: Per POST: seconds to connect, seconds to wait for the answer.
POST_TIMEOUT = (5.0, 10.0)
#: Hold-back of a notification's later messages, so that its earlier one is usually POSTed first.
FOLLOW_UP_DELAY_SECONDS = 1
#: Largest queue message (JSON) the outbox writes: 64 KiB after base64 is 48 KiB; some room to spare.
MAX_MESSAGE_CHARS = 40_000
_EVENT_NAMESPACE = uuid.UUID("2f6b3f0e-7f35-4c59-9a43-5b1f7b0d9c21")


class MessageQueue(Protocol):
    """The part of ``azure.storage.queue.QueueClient`` the webhooks use."""

    def send_message(self, content: Any, **kwargs: Any) -> Any:
        """Enqueue a message."""
        ...

    def create_queue(self, **kwargs: Any) -> Any:
        """Create the queue."""
        ...


def event_id(user_id: str, notification_id: str, seq: int) -> str:
    """The stable id of one timeline entry's event (the same on every retry)."""
    return str(uuid.uuid5(_EVENT_NAMESPACE, f"{user_id}\n{notification_id}\n{seq}"))


def cloud_event(user_id: str, notification_id: str, entry: TimelineEntry) -> dict[str, Any]:
    """The CloudEvent (structured JSON) for one timeline entry."""
    return {
        "specversion": "1.0",
        "id": event_id(user_id, notification_id, entry.seq),
        "source": SOURCE,
        "type": TYPE_PREFIX + entry.name,
        "subject": f"users/{quote(user_id, safe='')}/notifications/{quote(notification_id, safe='')}",
        "time": rfc3339(entry.at),
        "datacontenttype": "application/json",
        "data": {
            "userId": user_id,
            "notificationId": notification_id,
            "sequence": entry.seq,
            "name": entry.name,
            "status": entry.status,
            "reason": entry.reason,
            "details": dict(entry.details),
        },
    }


def rfc3339(unix_seconds: float) -> str:
    """``2026-12-01T12:00:01.123Z``."""
    return datetime.fromtimestamp(unix_seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sign(keys: Sequence[bytes], message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: ``v1,<base64 signature>`` per key, space-separated."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digests = (hmac.new(key, signed, hashlib.sha256).digest() for key in keys)
    return " ".join("v1," + base64.b64encode(digest).decode("ascii") for digest in digests)


def signed_request(
    keys: Sequence[bytes], event: Mapping[str, Any], timestamp: int
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of the POST carrying ``event``, signed at ``timestamp``."""
    body = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    headers = {
        "Content-Type": CONTENT_TYPE,
        "User-Agent": USER_AGENT,
        "webhook-id": str(event["id"]),
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(keys, str(event["id"]), timestamp, body),
    }
    return body, headers


def new_secret() -> str:
    """A fresh ``whsec_`` secret (32 random bytes) for WEBHOOK_SECRET."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


# ---- the notifier's side: one queue message per handling -------------------------------------------------


class WebhookOutbox:
    """Puts the timeline entries of one handling on the webhook queue (what the notifier calls)."""

    def __init__(self, queue: MessageQueue, clock: Callable[[], float] = time.time) -> None:
        self._queue = queue
        self._clock = clock

    def publish(self, user_id: str, notification_id: str, entries: Sequence[TimelineEntry]) -> None:
        """Enqueue the entries (one message, more only when they would not fit one). Raises UpstreamError.

        Messages that continue a notification (their first entry is not its first) become visible
        :data:`FOLLOW_UP_DELAY_SECONDS` later: the dispatcher handles messages in parallel, and the hold-back
        lets the previous message of the same notification go first (an ack follows its in-app send within
        milliseconds). It is not a guarantee: after a retry, order by ``data.sequence``.
        """
        now = float(self._clock())
        delay = FOLLOW_UP_DELAY_SECONDS if entries and entries[0].seq > 0 else 0
        for batch in _batches(user_id, notification_id, [e.to_dict() for e in entries]):
            text = _message(user_id, notification_id, batch, attempt=0, first_attempt_at=now)
            _send(self._queue, text, delay)


def _batches(user_id: str, notification_id: str, events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    batches: list[list[dict[str, Any]]] = [[]]
    for event in events:
        candidate = [*batches[-1], event]
        if batches[-1] and len(_message(user_id, notification_id, candidate, 0, 0.0)) > MAX_MESSAGE_CHARS:
            batches.append([event])
        else:
            batches[-1] = candidate
    return [batch for batch in batches if batch]


def _message(
    user_id: str, notification_id: str, events: list[dict[str, Any]], attempt: int, first_attempt_at: float
) -> str:
    document = {
        "v": 1,
        "userId": user_id,
        "notificationId": notification_id,
        "events": events,
        "attempt": attempt,
        "firstAttemptAt": first_attempt_at,
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def _send(queue: MessageQueue, text: str, delay: int) -> None:
    try:
        try:
            queue.send_message(text, visibility_timeout=delay or None)
        except ResourceNotFoundError:  # a fresh account: create the queue the trigger polls
            with contextlib.suppress(ResourceExistsError):
                queue.create_queue()
            queue.send_message(text, visibility_timeout=delay or None)
    except AzureError as exc:
        raise translate_azure_error(exc, "queue storage", "enqueue webhook events") from exc


# ---- the dispatcher: the webhook queue's trigger ---------------------------------------------------------


@dataclass(frozen=True)
class DispatchResult:
    """What one dispatch did with the events of one message."""

    delivered: int = 0
    retried: int = 0
    poisoned: int = 0


class WebhookDispatcher:
    """POSTs the events of webhook-queue messages; re-enqueues what failed, poisons what ran out of time."""

    def __init__(
        self,
        settings: WebhookSettings,
        queue: MessageQueue,
        poison_queue: MessageQueue,
        session: requests.Session | None = None,
        telemetry: DeliveryTelemetry | None = None,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._settings = settings
        self._queue = queue
        self._poison = poison_queue
        self._session = session or requests.Session()
        self._telemetry = telemetry or DeliveryTelemetry()
        self._clock = clock
        self._jitter = jitter

    def backoff(self, attempt: int) -> int:
        """Seconds to wait before retry number ``attempt`` (from 1): doubling, capped, 25 % jitter down.

        A ``backoff_seconds`` of 0 (tests only; the setting's minimum is 1) retries at once.
        """
        if self._settings.backoff_seconds <= 0:
            return 0
        ceiling = min(MAX_BACKOFF_SECONDS, self._settings.backoff_seconds * 2 ** min(attempt - 1, 20))
        return max(1, round(float(ceiling) * (0.75 + 0.25 * self._jitter())))

    def dispatch(self, body: bytes) -> DispatchResult:
        """Deliver the events of one queue message. Raises UpstreamError only when a queue write fails."""
        try:
            message = _parse(body)
        except ValueError as exc:
            logger.error("webhook queue message is malformed (%s); moved to the poison queue", exc)
            self._poison_raw(body, f"malformed message: {exc}")
            return DispatchResult(poisoned=1)
        user_id, notification_id, events = message["userId"], message["notificationId"], message["events"]
        if not self._settings.url or not self._settings.secrets:
            self._to_poison(message, events, "WEBHOOK_URL is not set: webhooks are off", "")
            return DispatchResult(poisoned=len(events))
        readable = [(raw, entry) for raw in events if (entry := TimelineEntry.from_dict(raw)) is not None]
        unreadable = [raw for raw in events if TimelineEntry.from_dict(raw) is None]
        if unreadable:  # they cannot become events; keep them for the operator
            self._to_poison(message, unreadable, "malformed timeline entries", "")
        delivered = 0
        error = ""
        for _, entry in readable:
            error = self._post(cloud_event(user_id, notification_id, entry))
            if error:
                break
            delivered += 1
        self._telemetry.webhook("delivered", delivered)
        remaining = [raw for raw, _ in readable[delivered:]]
        if not remaining:
            return DispatchResult(delivered=delivered, poisoned=len(unreadable))
        return self._retry_later(message, remaining, error, delivered)

    def _post(self, event: dict[str, Any]) -> str:
        """POST one event; return "" when the receiver took it (2xx), else what went wrong."""
        body, headers = signed_request(self._settings.secrets, event, int(self._clock()))
        assert self._settings.url is not None
        try:
            response = self._session.post(
                self._settings.url, data=body, headers=headers, timeout=POST_TIMEOUT, allow_redirects=False
            )
        except requests.RequestException as exc:
            return f"{type(exc).__name__} reaching {urlsplit(self._settings.url).netloc}"
        with contextlib.closing(response):
            if 200 <= response.status_code < 300:
                return ""
            return f"the receiver answered HTTP {response.status_code}"

    def _retry_later(
        self, message: dict[str, Any], remaining: list[Any], error: str, delivered: int
    ) -> DispatchResult:
        attempt = int(message["attempt"]) + 1
        first = float(message["firstAttemptAt"]) or float(self._clock())
        delay = self.backoff(attempt)
        spent = float(self._clock()) - first
        if spent + delay > self._settings.retry_seconds:
            reason = f"gave up after {attempt} attempts in {spent:.0f} s (WEBHOOK_RETRY_SECONDS)"
            self._to_poison(message, remaining, reason, error)
            self._telemetry.poisoned("webhooks", "webhook-gave-up")
            return DispatchResult(delivered=delivered, poisoned=len(remaining))
        logger.warning(
            "webhook delivery of %s failed (%s); %d event(s) retried in %d s (attempt %d)",
            message["notificationId"], error, len(remaining), delay, attempt,
        )
        text = _message(message["userId"], message["notificationId"], remaining, attempt, first)
        _send(self._queue, text, delay)
        self._telemetry.webhook("retry", len(remaining))
        return DispatchResult(delivered=delivered, retried=len(remaining))

    def _to_poison(self, message: dict[str, Any], events: list[Any], reason: str, error: str) -> None:
        logger.error("webhook events of %s moved to the poison queue: %s %s",
                     message["notificationId"], reason, error)
        document = {
            "reason": reason,
            "lastError": error,
            "attempts": int(message.get("attempt", 0)) + 1,
            "firstAttemptAt": message.get("firstAttemptAt"),
            "poisonedAt": float(self._clock()),
            "userId": message["userId"],
            "notificationId": message["notificationId"],
            "events": events,
        }
        _send(self._poison, json.dumps(document, ensure_ascii=False, separators=(",", ":")), 0)
        self._telemetry.webhook("poisoned", len(events))

    def _poison_raw(self, body: bytes, reason: str) -> None:
        document = {"reason": reason, "poisonedAt": float(self._clock()),
                    "message": body.decode("utf-8", "replace")[:MAX_MESSAGE_CHARS]}
        _send(self._poison, json.dumps(document, ensure_ascii=False, separators=(",", ":")), 0)
        self._telemetry.poisoned("webhooks", "invalid")


def _parse(body: bytes) -> dict[str, Any]:
    """The webhook queue message; ValueError saying what is wrong."""
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ValueError("not UTF-8 JSON") from None
    if not isinstance(document, dict) or document.get("v") != 1:
        raise ValueError("not a version 1 webhook message")
    user_id, notification_id = document.get("userId"), document.get("notificationId")
    events = document.get("events")
    attempt, first = document.get("attempt", 0), document.get("firstAttemptAt", 0)
    if not (isinstance(user_id, str) and user_id and isinstance(notification_id, str) and notification_id):
        raise ValueError("userId and notificationId must be non-empty strings")
    if not isinstance(events, list) or not events:
        raise ValueError("events must be a non-empty list")
    if not (isinstance(attempt, int) and attempt >= 0 and isinstance(first, int | float)):
        raise ValueError("attempt and firstAttemptAt must be numbers")
    return document
