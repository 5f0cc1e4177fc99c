"""Producer side: enqueue notifications for the notifier.

The Functions queue trigger expects base64 message bodies (host.json ``messageEncoding: base64``, the
default). ``azure-storage-queue`` sends raw text unless told otherwise, so a producer that uses the SDK
directly must build its ``QueueClient`` with ``message_encode_policy=TextBase64EncodePolicy()``; this
client does so. Messages are validated with the notifier's own rules before they are enqueued.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from notify.deliveries import translate_azure_error
from notify.message import MAX_MESSAGE_BYTES, parse_message
from notify.model import Delivery
from shared.errors import InvalidMessageError


class NotificationClient:
    """Enqueues validated notifications on the notifications queue."""

    def __init__(self, queue_client: QueueClient, clock: Callable[[], float] = time.time) -> None:
        self._queue = queue_client
        self._clock = clock

    @classmethod
    def from_connection_string(cls, connection_string: str, queue_name: str) -> NotificationClient:
        """A client for ``queue_name`` in the storage account of ``connection_string``."""
        queue = QueueClient.from_connection_string(
            connection_string, queue_name, message_encode_policy=TextBase64EncodePolicy()
        )
        return cls(queue)

    def send(
        self,
        user_id: str,
        title: str,
        body: str,
        type: str = "default",
        data: Mapping[str, Any] | None = None,
        delivery: Delivery | str = Delivery.AUTO,
        notification_id: str | None = None,
        ttl_seconds: int | None = None,
    ) -> str:
        """Validate and enqueue a notification; return its notificationId.

        Raises InvalidMessageError for a notification the notifier would refuse, and TransientError /
        UpstreamError when the queue cannot be reached.
        """
        message: dict[str, Any] = {
            "schemaVersion": 1,
            "notificationId": notification_id or str(uuid.uuid4()),
            "userId": user_id,
            "title": title,
            "body": body,
            "type": type,
            "data": dict(data or {}),
            "delivery": str(delivery),
            "enqueuedAt": self._clock(),
        }
        if ttl_seconds is not None:
            message["ttlSeconds"] = ttl_seconds
        try:
            text = json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidMessageError(f"data is not JSON-serialisable: {exc}", field="data") from None
        encoded = text.encode("utf-8")
        if len(encoded) > MAX_MESSAGE_BYTES:
            raise InvalidMessageError(f"message is {len(encoded)} bytes; the limit is {MAX_MESSAGE_BYTES}")
        parse_message(encoded)
        try:
            try:
                self._queue.send_message(text)
            except ResourceNotFoundError:  # a fresh account: create the queue the trigger polls
                with contextlib.suppress(ResourceExistsError):
                    self._queue.create_queue()
                self._queue.send_message(text)
        except AzureError as exc:
            raise translate_azure_error(exc, "queue storage", "enqueue notification") from exc
        return str(message["notificationId"])
