"""Producer side: enqueue notifications for the notifier.

The Functions queue trigger expects base64 message bodies (host.json ``messageEncoding: base64``, the
default). ``azure-storage-queue`` sends raw text unless told otherwise, so a producer that uses the SDK
directly must build its ``QueueClient`` with ``message_encode_policy=TextBase64EncodePolicy()``; this
client does so. Messages are validated with the notifier's own rules before they are enqueued.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from notify.deliveries import translate_azure_error
from notify.message import MAX_MESSAGE_BYTES, format_message, parse_message
from notify.model import Delivery, Notification
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
        critical: bool = False,
        inbox: bool = True,
    ) -> str:
        """Validate and enqueue a notification; return its notificationId.

        Raises InvalidMessageError for a notification the notifier would refuse, and TransientError /
        UpstreamError when the queue cannot be reached.
        """
        try:
            mode = Delivery(delivery)
        except ValueError:
            allowed = ", ".join(m.value for m in Delivery)
            raise InvalidMessageError(f"delivery must be one of {allowed}", field="delivery") from None
        text = format_message(
            Notification(
                notification_id=notification_id or str(uuid.uuid4()),
                user_id=user_id,
                title=title,
                body=body,
                type=type,
                data=dict(data or {}),
                delivery=mode,
                ttl_seconds=ttl_seconds,
                enqueued_at=self._clock(),
                critical=critical,
                inbox=inbox,
            )
        )
        encoded = text.encode("utf-8")
        if len(encoded) > MAX_MESSAGE_BYTES:
            raise InvalidMessageError(f"message is {len(encoded)} bytes; the limit is {MAX_MESSAGE_BYTES}")
        parsed = parse_message(encoded)
        try:
            try:
                self._queue.send_message(text)
            except ResourceNotFoundError:  # a fresh account: create the queue the trigger polls
                with contextlib.suppress(ResourceExistsError):
                    self._queue.create_queue()
                self._queue.send_message(text)
        except AzureError as exc:
            raise translate_azure_error(exc, "queue storage", "enqueue notification") from exc
        return parsed.notification_id
