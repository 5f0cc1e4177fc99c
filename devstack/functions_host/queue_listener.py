"""Queue triggers: poll a Storage queue (Azurite locally) like the Storage Queues extension 5.x.

* receive up to ``batchSize`` messages with a 10 minute visibility (renewed at half-time while running);
  fetch the next batch once in-flight invocations drop to ``newBatchThreshold``;
* success deletes the message; failure makes it visible again after ``visibilityTimeout``;
  ``dequeueCount >= maxDequeueCount`` on failure (or ``>`` before running) moves it to ``<queue>-poison``;
* ``messageEncoding`` base64 (default) or none; with base64 an undecodable message goes straight to poison;
* empty polls back off exponentially (randomised) from 100 ms to ``maxPollingInterval``; a message resets it;
* the function gets the body as ``string`` TypedData (the host's default type for a script trigger), or as
  ``bytes`` when it is not valid UTF-8 (what the host does then is not settled here: extension 4.x failed the
  binding, 5.x's ``BinaryData.ToString`` replaces the bytes; unchanged bytes let the app judge them), with the
  trigger metadata the extension binds: ``QueueTrigger``, ``Id``,
  ``DequeueCount``, ``ExpirationTime``, ``InsertionTime``, ``NextVisibleTime``, ``PopReceipt``, plus the
  top-level properties of a JSON-object body (the host's ApplyBindingData).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueMessage as StorageQueueMessage
from azure.storage.queue.aio import QueueClient, QueueServiceClient

from devstack.functions_host import function_rpc as protos
from devstack.functions_host.indexing import IndexedFunction
from devstack.functions_host.invocation_log import reason_queue
from devstack.functions_host.invoker import InvocationFailed, Invoker
from devstack.functions_host.settings_loader import QueueOptions
from devstack.functions_host.typed_data import apply_binding_data, dotnet_iso, newtonsoft_json, to_typed_data

logger = logging.getLogger(__name__)

RECEIVE_VISIBILITY = timedelta(minutes=10)  # QueueListener._visibilityTimeout in the extension
MIN_POLLING_INTERVAL = timedelta(milliseconds=100)  # QueuePollingIntervals.Minimum
POISON_SUFFIX = "-poison"
MAX_QUEUE_NAME = 63


def decode_body(raw: str, encoding: str) -> bytes | None:
    """Return the message body the function sees, or None if a base64 message cannot be decoded."""
    if encoding == "none":
        return raw.encode("utf-8")
    try:
        return base64.b64decode(raw.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None


def trigger_metadata(
    message: StorageQueueMessage, body: str, dequeue_count: int, pop_receipt: str
) -> dict[str, Any]:
    """The queue trigger's binding data as the host sends it (strings, numbers and dates as JSON)."""
    metadata: dict[str, Any] = {"QueueTrigger": to_typed_data(body), "Id": to_typed_data(str(message.id))}
    metadata["DequeueCount"] = to_typed_data(dequeue_count)
    for name, moment in (
        ("ExpirationTime", message.expires_on),
        ("InsertionTime", message.inserted_on),
        ("NextVisibleTime", message.next_visible_on),
    ):
        if isinstance(moment, datetime):
            # A DateTimeOffset is not a string to the host: it is serialised, so it arrives as JSON text.
            metadata[name] = protos.TypedData(json=newtonsoft_json(dotnet_iso(moment)))
    metadata["PopReceipt"] = to_typed_data(pop_receipt)
    apply_binding_data(body, metadata)
    return metadata


class PollingBackoff:
    """Randomised exponential back-off between a minimum and a maximum, reset when a poll finds messages."""

    def __init__(self, minimum: timedelta, maximum: timedelta) -> None:
        self._minimum = minimum.total_seconds()
        self._maximum = max(maximum.total_seconds(), self._minimum)
        self._current = self._minimum

    def next_delay(self, found_messages: bool) -> float:
        """Return the seconds to wait before the next poll."""
        if found_messages:
            self._current = self._minimum
            return self._minimum
        delay = self._current
        self._current = min(self._current * 2, self._maximum)
        # The extension randomises each step by ±20 % so that many listeners do not poll in lockstep.
        return min(self._maximum, max(self._minimum, delay * random.uniform(0.8, 1.2)))


@dataclass
class _InFlight:
    message: StorageQueueMessage
    pop_receipt: str
    abandoned: bool = False
    renewal: asyncio.Task[None] | None = field(default=None, repr=False)


class QueueListener:
    """Polls one queue for one function until :meth:`stop`."""

    def __init__(
        self,
        function: IndexedFunction,
        connection_string: str,
        options: QueueOptions,
        invoker: Invoker,
        receive_visibility: timedelta = RECEIVE_VISIBILITY,
    ) -> None:
        self.function = function
        self.queue_name = str(function.trigger["queueName"]).lower()
        self._options = options
        self._invoker = invoker
        self._receive_visibility = receive_visibility
        # Few quick retries: the poll loop itself retries, and shutdown must not wait on long back-offs.
        self._service = QueueServiceClient.from_connection_string(
            connection_string, retry_total=2, retry_backoff_factor=0.2, retry_backoff_max=2
        )
        self._queue: QueueClient = self._service.get_queue_client(self.queue_name)
        self._in_flight: dict[str, _InFlight] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._poller: asyncio.Task[None] | None = None
        self._stopping = False
        self._receiving = False  # a receive is under way: its messages are not tracked yet
        self._wakeup = asyncio.Event()
        self._backoff = PollingBackoff(MIN_POLLING_INTERVAL, options.max_polling_interval)

    async def start(self) -> None:
        """Create the queue (if missing) and start polling; storage errors are retried by the poll loop."""
        try:
            with contextlib.suppress(ResourceExistsError):
                await asyncio.wait_for(self._queue.create_queue(), timeout=5)
        except Exception as exc:  # noqa: BLE001 - Azurite may come up later
            logger.warning("Cannot create queue '%s' yet: %s", self.queue_name, exc)
        self._poller = asyncio.create_task(self._poll_forever(), name=f"queue-listener-{self.queue_name}")

    async def stop(self, drain_timeout: float) -> None:
        """Stop polling; wait up to ``drain_timeout`` s for running invocations, then release the rest."""
        if self._poller is not None:
            self._stopping = True
            # Cancelled in the middle of a receive, the batch just received (invisible for 10 minutes)
            # would be neither run nor released: let that poll finish, it stops right after.
            if not self._receiving:
                self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=drain_timeout)
        for entry in list(self._in_flight.values()):
            # Abandoned: make it visible again right away so another host instance picks it up.
            entry.abandoned = True
            if entry.renewal is not None:
                entry.renewal.cancel()
            with contextlib.suppress(Exception):
                await self._queue.update_message(entry.message.id, entry.pop_receipt, visibility_timeout=0)
            logger.warning(
                "Released in-flight message %s on '%s' at shutdown", entry.message.id, self.queue_name
            )
        for task in list(self._tasks):
            task.cancel()
        self._in_flight.clear()
        await self._queue.close()
        await self._service.close()

    async def _poll_forever(self) -> None:
        queue_ready = False
        while not self._stopping:
            try:
                if not queue_ready:
                    with contextlib.suppress(ResourceExistsError):
                        await self._queue.create_queue()
                    queue_ready = True
                while len(self._tasks) > self._options.new_batch_threshold:
                    await asyncio.wait(set(self._tasks), return_when=asyncio.FIRST_COMPLETED)
                self._receiving = True
                try:
                    found = await self._poll_once()
                finally:
                    self._receiving = False
                if self._stopping:
                    return
            except asyncio.CancelledError:
                raise
            except ResourceNotFoundError:
                queue_ready = False
                found = False
            except Exception as exc:  # noqa: BLE001 - storage hiccups back off like an empty poll
                logger.warning("Polling queue '%s' failed: %s", self.queue_name, exc)
                found = False
            if not found:
                await self._sleep(self._backoff.next_delay(False))
            else:
                self._backoff.next_delay(True)

    def notify(self) -> None:
        """Cut the current back-off short: this host just wrote to the queue (like the queue watcher)."""
        self._wakeup.set()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), timeout=seconds)
        self._wakeup.clear()

    async def _poll_once(self) -> bool:
        pages = self._queue.receive_messages(
            messages_per_page=self._options.batch_size,
            visibility_timeout=int(self._receive_visibility.total_seconds()),
        ).by_page()
        messages: list[StorageQueueMessage] = []
        with contextlib.suppress(StopAsyncIteration):
            page = await pages.__anext__()
            messages = [message async for message in page]
        for message in messages:
            task = asyncio.create_task(self._process(message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return bool(messages)

    async def _process(self, message: StorageQueueMessage) -> None:
        entry = _InFlight(message=message, pop_receipt=str(message.pop_receipt))
        self._in_flight[message.id] = entry
        try:
            await self._process_entry(entry)
        except Exception:
            logger.exception("Completing message %s on '%s' failed", message.id, self.queue_name)
        finally:
            if entry.renewal is not None:
                entry.renewal.cancel()
            self._in_flight.pop(message.id, None)

    async def _process_entry(self, entry: _InFlight) -> None:
        message = entry.message
        raw = str(message.content or "")
        dequeue_count = int(message.dequeue_count or 1)
        body = decode_body(raw, self._options.message_encoding)
        if body is None:
            logger.warning(
                "Message decoding has failed! Check MessageEncoding settings. MessageId=%s.", message.id
            )
            await self._move_to_poison(entry, raw)
            return
        if dequeue_count > self._options.max_dequeue_count:
            await self._move_to_poison(entry, raw)
            return
        entry.renewal = asyncio.create_task(self._renew_visibility(entry))
        try:
            text = body.decode("utf-8", errors="replace")
            metadata = trigger_metadata(message, text, dequeue_count, entry.pop_receipt)
            # Valid UTF-8 goes as the string the host binds; other bytes go unchanged (see the module doc).
            value = to_typed_data(text if text.encode("utf-8") == body else body)
            await self._invoker.invoke(self.function, value, reason_queue(self.queue_name), metadata)
            succeeded = True
        except InvocationFailed:  # logged by the invoker; the message is retried
            succeeded = False
        except Exception:  # a message this host cannot even hand over: retried, then poisoned, never stranded
            logger.exception("Message %s on '%s' could not be invoked", message.id, self.queue_name)
            succeeded = False
        entry.renewal.cancel()
        if entry.abandoned:
            return
        if succeeded:
            with contextlib.suppress(ResourceNotFoundError):  # already gone is success
                await self._queue.delete_message(message.id, entry.pop_receipt)
        elif dequeue_count >= self._options.max_dequeue_count and not self.queue_name.endswith(POISON_SUFFIX):
            logger.warning(
                "Message has reached MaxDequeueCount of %s. Moving message to queue '%s%s'.",
                self._options.max_dequeue_count,
                self.queue_name,
                POISON_SUFFIX,
            )
            await self._move_to_poison(entry, raw)
        else:
            await self._queue.update_message(
                message.id,
                entry.pop_receipt,
                visibility_timeout=int(self._options.visibility_timeout.total_seconds()),
            )

    async def _renew_visibility(self, entry: _InFlight) -> None:
        half = self._receive_visibility.total_seconds() / 2
        while True:
            await asyncio.sleep(half)
            updated = await self._queue.update_message(
                entry.message.id,
                entry.pop_receipt,
                visibility_timeout=int(self._receive_visibility.total_seconds()),
            )
            entry.pop_receipt = str(updated.pop_receipt)

    async def _move_to_poison(self, entry: _InFlight, raw: str) -> None:
        poison_name = self.queue_name + POISON_SUFFIX
        if self.queue_name.endswith(POISON_SUFFIX) or len(poison_name) > MAX_QUEUE_NAME:
            logger.error(
                "Message %s on '%s' failed and has no poison queue; leaving it", entry.message.id, poison_name
            )
            return
        poison = self._service.get_queue_client(poison_name)
        async with poison:
            with contextlib.suppress(ResourceExistsError):
                await poison.create_queue()
            await poison.send_message(raw)
        logger.warning("Moved message %s from '%s' to '%s'.", entry.message.id, self.queue_name, poison_name)
        with contextlib.suppress(ResourceNotFoundError):
            await self._queue.delete_message(entry.message.id, entry.pop_receipt)
