"""The poison queue ``<NOTIFICATIONS_QUEUE>-poison``: what goes there, with its reason, and how it comes back.

Three kinds of message end there, and :func:`read_entry` tells them apart:

* **envelopes** written by the notifier when a notification was retried for the whole retry horizon
  (``RETRY_HORIZON_SECONDS``) and still failed: a JSON object ``{"notifyPoison": 1, "reason", "poisonedAt",
  "notificationId", "userId", "attempts", "failingSince", "message"}`` whose ``message`` is the
  notification as the notifications queue takes it (schema v1). The delivery record says ``poisoned``
  with the same reason (unless Table storage was what failed: then there may be no record to say it);
* **invalid messages** the notifier refused at once (not JSON, schema violations): the original body;
* messages the **Functions host** moved after ``maxDequeueCount`` failed attempts (a permanent error such
  as a 403, or the queue itself unavailable, so that nothing could be re-scheduled): the original body.

A replay (:meth:`PoisonQueue.replay`) re-enqueues the notification on the notifications queue and then
deletes the poison message. It never doubles a delivery: the notifier recognises a notificationId it has
seen (the delivery record), sends only on channels not sent yet, and a poisoned record that is replayed
tries once more. So replaying twice, or replaying something that was delivered meanwhile, sends nothing
again. Invalid messages are not replayed (they would come straight back), nor, unless forced, are messages
without a ``notificationId`` (the notifier would take them for a new notification).
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient, QueueMessage

from notify.message import parse_message
from shared.errors import InvalidMessageError, UpstreamError

ENVELOPE_KEY = "notifyPoison"
#: A queue message holds at most 64 KiB of (base64) text; an envelope that would not fit is left out and
#: the original body is poisoned as it is (the reason stays on the delivery record).
MAX_QUEUE_MESSAGE_CHARS = 64 * 1024
HIDE_SECONDS = 60  # how long list/replay keep the messages they look at hidden from another list/replay
HOST_MOVED = (
    "no envelope: moved by the Functions host after maxDequeueCount failed attempts (see the delivery record)"
)


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def envelope(
    message_text: str,
    reason: str,
    *,
    notification_id: str,
    user_id: str,
    attempts: int,
    failing_since: float,
    poisoned_at: float,
) -> bytes:
    """The poison envelope around a notification message (UTF-8 JSON), or the message alone if too big."""
    document = {
        ENVELOPE_KEY: 1,
        "reason": reason,
        "poisonedAt": _iso(poisoned_at),
        "notificationId": notification_id,
        "userId": user_id,
        "attempts": attempts,
        "failingSince": _iso(failing_since) if failing_since else None,
        "message": json.loads(message_text),
    }
    wrapped = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if len(base64.b64encode(wrapped)) > MAX_QUEUE_MESSAGE_CHARS:
        return message_text.encode("utf-8")
    return wrapped


@dataclass(frozen=True)
class PoisonEntry:
    """One poison message as an operator sees it."""

    message_id: str
    inserted_on: datetime | None
    reason: str
    notification_id: str | None  # None: the message has none (or is not a notification at all)
    user_id: str | None
    body: bytes  # what a replay enqueues on the notifications queue (UTF-8 JSON when replayable)
    replayable: bool
    enveloped: bool

    def to_dict(self) -> dict[str, Any]:
        """The entry as JSON-ready data (``python -m notify poison list --json``)."""
        return {
            "messageId": self.message_id,
            "insertedOn": self.inserted_on.isoformat() if self.inserted_on else None,
            "notificationId": self.notification_id,
            "userId": self.user_id,
            "reason": self.reason,
            "replayable": self.replayable,
            "envelope": self.enveloped,
        }


def read_entry(message_id: str, inserted_on: datetime | None, body: bytes) -> PoisonEntry:
    """Classify a poison message body (see the module docstring)."""
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        document = None
    if isinstance(document, dict) and document.get(ENVELOPE_KEY) == 1 and isinstance(
        document.get("message"), dict
    ):
        message = json.dumps(document["message"], ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return PoisonEntry(
            message_id, inserted_on, str(document.get("reason") or ""),
            _text(document.get("notificationId")), _text(document.get("userId")), message, True, True,
        )
    try:
        # With the poison message's id as a stand-in, a valid message without a notificationId still
        # parses (it is replayable, but only by force: its original id is gone).
        notification = parse_message(body, message_id or "poison")
    except InvalidMessageError as exc:
        where = f" (field {exc.field})" if exc.field else ""
        reason = f"invalid message: {exc.message}{where}"
        return PoisonEntry(message_id, inserted_on, reason, None, None, body, False, False)
    has_id = isinstance(document, dict) and isinstance(document.get("notificationId"), str)
    return PoisonEntry(
        message_id, inserted_on, HOST_MOVED, notification.notification_id if has_id else None,
        notification.user_id, body, True, False,
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class ReplayResult:
    """What a replay did with one poison message."""

    entry: PoisonEntry
    replayed: bool
    note: str


class PoisonQueue:
    """The poison queue of the notifications queue (a QueueClient with ``BinaryBase64EncodePolicy`` and
    ``BinaryBase64DecodePolicy``, so bodies are the bytes the notifier saw)."""

    def __init__(self, queue: QueueClient) -> None:
        self._queue = queue

    def put(self, body: bytes) -> None:
        """Add a poison message (creating the queue on first use). Raises TransientError / UpstreamError."""
        from notify.deliveries import translate_azure_error

        try:
            try:
                self._queue.send_message(body)
            except ResourceNotFoundError:
                with contextlib.suppress(ResourceExistsError):
                    self._queue.create_queue()
                self._queue.send_message(body)
        except AzureError as exc:
            raise translate_azure_error(exc, "queue storage", "send to poison queue") from exc

    def entries(self, matches: Callable[[PoisonEntry], bool] = lambda _: True) -> list[PoisonEntry]:
        """Every poison message that ``matches``, oldest first; each is visible again afterwards.

        Raises UpstreamError.
        """
        taken = self._take_all()
        for message, _ in taken:
            self._release(message)
        found = [entry for _, entry in taken if matches(entry)]
        return sorted(found, key=lambda e: e.inserted_on or datetime.min.replace(tzinfo=UTC))

    def replay(
        self,
        notifications: QueueClient,
        matches: Callable[[PoisonEntry], bool] = lambda _: True,
        force: bool = False,
        dry_run: bool = False,
    ) -> list[ReplayResult]:
        """Move the matching poison messages back to ``notifications`` (a ``TextBase64EncodePolicy`` client,
        as producers use), one by one: enqueue first, then delete, so a crash in between replays one twice
        (harmless) and loses none.

        Raises UpstreamError (what was replayed until then stays replayed).
        """
        results: list[ReplayResult] = []
        taken = sorted(self._take_all(), key=lambda t: t[1].inserted_on or datetime.min.replace(tzinfo=UTC))
        for index, (message, entry) in enumerate(taken):
            if not matches(entry):
                self._release(message)
                continue
            skip = None
            if not entry.replayable:
                skip = "not replayed: it can never be delivered"
            elif entry.notification_id is None and not force:
                skip = "not replayed: without a notificationId it could be delivered twice (--force)"
            if skip or dry_run:
                self._release(message)
                results.append(ReplayResult(entry, False, skip or "would be replayed (dry run)"))
                continue
            try:
                notifications.send_message(entry.body.decode("utf-8"))
                with contextlib.suppress(ResourceNotFoundError):  # gone already: replayed by another
                    self._queue.delete_message(message.id, message.pop_receipt)
            except AzureError as exc:
                for rest, _ in taken[index:]:
                    self._release(rest)
                raise UpstreamError("queue storage", f"replay failed: {type(exc).__name__}") from exc
            results.append(ReplayResult(entry, True, "replayed"))
        return results

    def _release(self, message: QueueMessage) -> None:
        """Make a message visible again at once (best effort: it reappears after the hide anyway)."""
        with contextlib.suppress(AzureError):
            self._queue.update_message(message.id, pop_receipt=message.pop_receipt, visibility_timeout=0)

    def _take_all(self) -> list[tuple[QueueMessage, PoisonEntry]]:
        """Receive every message (each hidden for :data:`HIDE_SECONDS` meanwhile). Raises UpstreamError."""
        taken: list[tuple[QueueMessage, PoisonEntry]] = []
        try:
            while True:
                batch = list(self._queue.receive_messages(max_messages=32, visibility_timeout=HIDE_SECONDS))
                if not batch:
                    return taken
                for message in batch:
                    body = message.content if isinstance(message.content, bytes) else b""
                    taken.append((message, read_entry(str(message.id), message.inserted_on, body)))
        except ResourceNotFoundError:
            return taken  # no poison queue: nothing was ever poisoned
        except AzureError as exc:
            for message, _ in taken:
                self._release(message)
            what = f"reading the poison queue failed: {type(exc).__name__}"
            raise UpstreamError("queue storage", what) from exc

