"""Producer side: enqueue notifications for the notifier.

The Functions queue trigger expects base64 message bodies (host.json ``messageEncoding: base64``, the
default). ``azure-storage-queue`` sends raw text unless told otherwise, so a producer that uses the SDK
directly must build its ``QueueClient`` with ``message_encode_policy=TextBase64EncodePolicy()``; this
client does so. Messages are validated with the notifier's own rules before they are enqueued.

In Azure a backend uses its identity, not a key (the Bicep turns storage keys off)::

    from azure.identity import DefaultAzureCredential   # managed identity in Azure, `az login` on a laptop
    client = NotificationClient.from_queue_url(
        "https://<account>.queue.core.windows.net/notifications", DefaultAzureCredential())

The identity needs the role **Storage Queue Data Message Sender** (``c6a89b2d-59bc-44d0-9896-0f6e12d7b80a``)
on the queue or the storage account: it adds messages and nothing else. Each send is one span
(``notify enqueue``) whose W3C ``traceparent`` travels in the message, so the notifier's work joins the
producer's trace (when the producer process has an OpenTelemetry SDK configured).
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.storage.queue import LinearRetry, QueueClient, TextBase64EncodePolicy
from opentelemetry.trace import SpanKind

from notify.deliveries import translate_azure_error
from notify.message import MAX_MESSAGE_BYTES, format_message, parse_message
from notify.model import Delivery, Notification
from notify.telemetry import DeliveryTelemetry, current_traceparent
from shared.clients import queue_retry_policy
from shared.errors import InvalidMessageError, UpstreamError

logger = logging.getLogger(__name__)
SERVICE = "queue storage"


def client_options(fail_fast: bool = False) -> dict[str, Any]:
    """QueueClient options: capped retries; ``fail_fast`` (the CLI) answers within a few seconds."""
    if fail_fast:
        # One retry 0.3 s later, 2 s to connect each time: an unreachable endpoint fails in under 5 s.
        retry = LinearRetry(backoff=0.3, retry_total=1, random_jitter_range=0)  # type: ignore[arg-type]
        return {"retry_policy": retry, "connection_timeout": 2, "read_timeout": 10}
    return {"retry_policy": queue_retry_policy()}


class NotificationClient:
    """Enqueues validated notifications on the notifications queue."""

    def __init__(
        self,
        queue_client: QueueClient,
        clock: Callable[[], float] = time.time,
        telemetry: DeliveryTelemetry | None = None,
    ) -> None:
        self._queue = queue_client
        self._clock = clock
        self._telemetry = telemetry or DeliveryTelemetry()

    @classmethod
    def from_connection_string(
        cls, connection_string: str, queue_name: str, fail_fast: bool = False, **kwargs: Any
    ) -> NotificationClient:
        """A client for ``queue_name`` in the storage account of ``connection_string`` (Azurite locally)."""
        queue = QueueClient.from_connection_string(
            connection_string, queue_name, message_encode_policy=TextBase64EncodePolicy(),
            **{**client_options(fail_fast), **kwargs},
        )
        return cls(queue)

    @classmethod
    def from_queue_url(
        cls, queue_url: str, credential: Any, fail_fast: bool = False, **kwargs: Any
    ) -> NotificationClient:
        """A client for the queue at ``queue_url`` (``https://<account>.queue.core.windows.net/<queue>``).

        ``credential`` is an ``azure-identity`` token credential (``DefaultAzureCredential()``,
        ``ManagedIdentityCredential(client_id=...)``); extra ``kwargs`` go to the QueueClient.
        """
        queue = QueueClient.from_queue_url(
            queue_url, credential=credential, message_encode_policy=TextBase64EncodePolicy(),
            **{**client_options(fail_fast), **kwargs},
        )
        return cls(queue)

    @classmethod
    def from_account_url(
        cls, account_url: str, queue_name: str, credential: Any, fail_fast: bool = False, **kwargs: Any
    ) -> NotificationClient:
        """A client for ``queue_name`` of the queue service at ``account_url`` with a token credential."""
        queue = QueueClient(
            account_url, queue_name, credential=credential, message_encode_policy=TextBase64EncodePolicy(),
            **{**client_options(fail_fast), **kwargs},
        )
        return cls(queue)

    @property
    def queue_url(self) -> str:
        """The URL of the queue this client enqueues to (for messages)."""
        return str(self._queue.url)

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

        Raises InvalidMessageError for a notification the notifier would refuse (a push that would exceed
        the platforms' 4 KB limit included), TransientError when the queue cannot be reached (or answers
        5xx/429), and UpstreamError when it refuses (403, no such queue...).
        """
        try:
            mode = Delivery(delivery)
        except ValueError:
            allowed = ", ".join(m.value for m in Delivery)
            raise InvalidMessageError(f"delivery must be one of {allowed}", field="delivery") from None
        notification_id = notification_id or str(uuid.uuid4())
        with self._telemetry.span(
            "notify enqueue", SpanKind.PRODUCER, notification_id, user_id,
            attributes={"messaging.destination.name": str(getattr(self._queue, "queue_name", ""))},
        ):
            notification = Notification(
                notification_id=notification_id,
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
                traceparent=current_traceparent(),
            )
            text = format_message(notification)
            encoded = text.encode("utf-8")
            if len(encoded) > MAX_MESSAGE_BYTES:
                limit = MAX_MESSAGE_BYTES
                raise InvalidMessageError(f"message is {len(encoded)} bytes; the limit is {limit}")
            parsed = parse_message(encoded)  # also refuses a push that would not fit APNs/FCM (4 KB)
            self._enqueue(text)
        return parsed.notification_id

    def _enqueue(self, text: str) -> None:
        try:
            try:
                self._queue.send_message(text)
            except ResourceNotFoundError:  # a fresh account: create the queue the trigger polls
                self._create_queue()
                self._queue.send_message(text)
        except ClientAuthenticationError as exc:
            if exc.status_code is not None:  # the service answered 401/403: the token or the role is wrong
                status = exc.status_code
                message = f"refused the credential ({status}): {_first_line(exc)}"
                raise UpstreamError(SERVICE, message, status) from exc
            raise UpstreamError(SERVICE, f"the credential could not get a token: {_first_line(exc)}") from exc
        except AzureError as exc:
            raise translate_azure_error(exc, SERVICE, "enqueue notification") from exc

    def _create_queue(self) -> None:
        try:
            with contextlib.suppress(ResourceExistsError):
                self._queue.create_queue()
        except HttpResponseError as exc:
            if exc.status_code == 403:
                raise UpstreamError(
                    SERVICE,
                    f"queue {self._queue.queue_name} does not exist and this identity may not create it "
                    "(the Bicep creates it; Storage Queue Data Message Sender can only add messages)",
                    403,
                ) from exc
            raise


def _first_line(exc: Exception) -> str:
    text = str(getattr(exc, "message", "") or exc)
    return text.strip().splitlines()[0][:300] if text.strip() else type(exc).__name__
