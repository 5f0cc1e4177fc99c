"""Deliver a notification: in-app over Web PubSub when the user is online, push otherwise.

Delivery modes (``Notification.delivery``):

* ``auto``: online → in-app, then a deadline message ``{"userId", "notificationId"}`` on the deadlines
  queue, invisible for ``ack_timeout_seconds``; when it comes back unacked, push (exactly once).
  ``ack_timeout_seconds == 0`` trusts presence: no deadline, no push. Offline → push at once.
* ``realtime``: in-app only. ``push``: push only. ``both``: one of each.

Every send claims its channel in the delivery row first (see :mod:`notify.deliveries`), so redelivered or
concurrent messages never send twice on one channel. A message that finds a channel claimed by another
handler is not simply dropped: that handler may die before it records the send, and its own message may
already be gone. The notification is re-enqueued (``recheck_queue``) to be looked at again a few seconds
later, and again until the claim is recorded as sent (nothing to do) or its lease has run out (free to be
claimed).
Sends are retried within the retry policy; a transient failure that outlives it releases the claim and
propagates so the Functions host redelivers the message.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any, Protocol

from azure.core.exceptions import AzureError

from notify.deliveries import (
    FINAL_STATUSES,
    Channel,
    Claim,
    DeliveryRecord,
    DeliveryStore,
    Status,
    translate_azure_error,
)
from notify.message import format_message
from notify.model import Delivery, Notification
from notify.presence import PresenceStore
from shared.errors import NotifyError, TransientError
from shared.log import log_outcome
from shared.retry import RetryPolicy, call_with_retry

logger = logging.getLogger(__name__)

RECHECK_SECONDS = 5  # the longest a notification waits before looking again at a channel claimed elsewhere


class PushResultLike(Protocol):
    """What a push send reports: ``outcome`` is ``pushed`` or ``no_devices``."""

    @property
    def outcome(self) -> str: ...

    @property
    def nh_notification_id(self) -> str | None: ...


class PushSending(Protocol):
    """Sends a notification as a push (``notify.push.PushSender``)."""

    def send(self, notification: Notification) -> PushResultLike:
        """Push the notification; raise TransientError (retryable) or another NotifyError."""
        ...


class RealtimeSending(Protocol):
    """Sends a notification in-app (``notify.realtime.RealtimeSender``)."""

    def send(self, notification: Notification) -> None:
        """Send the envelope to the user's connections; raise TransientError or another NotifyError."""
        ...


class MessageQueue(Protocol):
    """The part of ``azure.storage.queue.QueueClient`` the notifier uses."""

    def send_message(self, content: Any, **kwargs: Any) -> Any:
        """Enqueue a message."""
        ...


class Notifier:
    """Decides how to deliver each notification and records what happened."""

    def __init__(
        self,
        deliveries: DeliveryStore,
        presence: PresenceStore,
        realtime: RealtimeSending,
        push: PushSending,
        deadline_queue: MessageQueue,
        ack_timeout_seconds: int,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        recheck_queue: MessageQueue | None = None,
    ) -> None:
        self._deliveries = deliveries
        self._presence = presence
        self._realtime = realtime
        self._push = push
        self._deadlines = deadline_queue
        self._ack_timeout = ack_timeout_seconds
        self._retry = retry or RetryPolicy()
        self._clock = clock
        self._recheck = recheck_queue

    def handle(self, notification: Notification) -> None:
        """Deliver a notification from the queue. Raises TransientError when a retry may succeed."""
        online: bool | None = None
        if notification.delivery is Delivery.AUTO:
            online = self._presence.is_online(notification.user_id)
        push_first = notification.delivery is Delivery.PUSH or online is False
        first = Channel.PUSH if push_first else Channel.REALTIME
        record, claim = self._deliveries.accept_and_claim(notification, first)
        if claim is None:
            logger.info("notification %s seen again (status %s)", notification.notification_id, record.status)
            if record.status in (Status.FAILED, Status.EXPIRED):
                return
            notification = record.notification()
        if self._expired(record, notification):
            return
        mode = notification.delivery
        busy: list[Channel] = []
        if mode is Delivery.PUSH:
            busy += self._send_push(record, notification, claim=claim)
        elif mode is Delivery.REALTIME:
            outcome, record = self._send_realtime(record, notification, claim)
            if outcome == "failed":
                self._deliveries.set_status(record, Status.FAILED)
            elif outcome == "busy":
                busy.append(Channel.REALTIME)
        elif mode is Delivery.BOTH:
            outcome, record = self._send_realtime(record, notification, claim)
            if outcome == "busy":
                busy.append(Channel.REALTIME)
            busy += self._send_push(record, notification)
        else:
            busy = self._handle_auto(record, notification, bool(online), claim)
        if busy:
            self._recheck_later(notification, busy)

    def handle_deadline(self, user_id: str, notification_id: str) -> None:
        """The ack deadline of an ``auto`` notification passed: push unless acked (at most once)."""
        record = self._deliveries.get(user_id, notification_id)
        if record is None:
            logger.warning("deadline for unknown notification %s", notification_id)
            return
        if record.acked or record.status in FINAL_STATUSES or record.sent(Channel.PUSH):
            logger.debug("deadline for %s: nothing to do (status %s)", notification_id, record.status)
            return
        notification = record.notification()
        if self._expired(record, notification):
            return
        if self._send_push(record, notification, allowed=_not_acked_nor_final):
            # Another handler is pushing; look again when its claim would have expired.
            current = self._deliveries.get(user_id, notification_id) or record
            self._enqueue_deadline(notification, self._recheck_delay(current, [Channel.PUSH]))

    def handle_ack(self, user_id: str, notification_id: str) -> bool:
        """Record the user's ack of an in-app message; False if the user has no such notification."""
        record = self._deliveries.mark_acked(user_id, notification_id)
        if record is None:
            logger.info("ack for unknown notification %s ignored", notification_id)
            return False
        latency = self._latency_ms(record.notification())
        log_outcome(notification_id, user_id, Channel.REALTIME, "acked", latency)
        return True

    def _handle_auto(
        self, record: DeliveryRecord, notification: Notification, online: bool, claim: Claim | None
    ) -> list[Channel]:
        """Returns the channels another handler is busy with (to be rechecked later).

        ``claim`` is the channel claimed with the insert (push when offline, realtime when online), if any.
        """
        if record.status in FINAL_STATUSES or record.sent(Channel.PUSH):
            return []
        push_claim = claim if claim is not None and claim.channel is Channel.PUSH else None
        realtime_claim = claim if claim is not None and claim.channel is Channel.REALTIME else None
        if push_claim is None and self._deliveries.claim_is_live(record, Channel.PUSH):
            return [Channel.PUSH]
        if not record.sent(Channel.REALTIME):
            if not online:
                return self._send_push(record, notification, allowed=_not_acked_nor_final, claim=push_claim)
            outcome, record = self._send_realtime(record, notification, realtime_claim)
            if outcome == "failed":
                return self._send_push(record, notification, allowed=_not_acked_nor_final)
            if outcome == "busy":
                return [Channel.REALTIME]
        if self._ack_timeout > 0:
            self._enqueue_deadline(notification)
        return []

    def _send_realtime(
        self, record: DeliveryRecord, notification: Notification, claim: Claim | None = None
    ) -> tuple[str, DeliveryRecord]:
        """Returns ("sent" | "busy" | "failed", the latest record); ``claim``: one already won."""
        claim = claim or self._deliveries.claim(record, Channel.REALTIME)
        if claim is None:
            current = self._deliveries.get(notification.user_id, notification.notification_id) or record
            return ("sent" if current.sent(Channel.REALTIME) else "busy"), current
        try:
            call_with_retry(lambda: self._realtime.send(notification), self._retry, "web pubsub send")
        except TransientError:
            self._deliveries.release(claim)
            log_outcome(notification.notification_id, notification.user_id, Channel.REALTIME, "retry",
                        level=logging.WARNING)
            raise
        except NotifyError as exc:
            logger.error("in-app send of %s failed: %s", notification.notification_id, exc.message)
            log_outcome(notification.notification_id, notification.user_id, Channel.REALTIME, "failed",
                        self._latency_ms(notification), level=logging.ERROR)
            return "failed", claim.record
        updated = self._deliveries.mark_sent(claim, Status.SENT_REALTIME)
        log_outcome(notification.notification_id, notification.user_id, Channel.REALTIME, "sent",
                    self._latency_ms(notification))
        return "sent", updated

    def _send_push(
        self,
        record: DeliveryRecord,
        notification: Notification,
        allowed: Callable[[DeliveryRecord], bool] = lambda _: True,
        claim: Claim | None = None,
    ) -> list[Channel]:
        """Push once; returns ``[Channel.PUSH]`` when another handler holds the push claim, else ``[]``."""
        claim = claim or self._deliveries.claim(record, Channel.PUSH, allowed)
        if claim is None:
            current = self._deliveries.get(notification.user_id, notification.notification_id) or record
            live = not current.sent(Channel.PUSH) and self._deliveries.claim_is_live(current, Channel.PUSH)
            return [Channel.PUSH] if live and allowed(current) else []
        try:
            result = self._push.send(notification)  # the NH client retries each call itself
        except TransientError:
            self._deliveries.release(claim)
            log_outcome(notification.notification_id, notification.user_id, Channel.PUSH, "retry",
                        level=logging.WARNING)
            raise
        except NotifyError as exc:
            logger.error("push of %s failed: %s", notification.notification_id, exc.message)
            self._deliveries.set_status(claim.record, Status.FAILED)
            log_outcome(notification.notification_id, notification.user_id, Channel.PUSH, "failed",
                        self._latency_ms(notification), level=logging.ERROR)
            return []
        status = Status.PUSHED if result.outcome == "pushed" else Status.NO_DEVICES
        fields = {"nhNotificationId": result.nh_notification_id} if result.nh_notification_id else {}
        self._deliveries.mark_sent(claim, status, **fields)
        log_outcome(notification.notification_id, notification.user_id, Channel.PUSH, status.value,
                    self._latency_ms(notification))
        return []

    def _recheck_delay(self, record: DeliveryRecord, channels: list[Channel]) -> int:
        # Usually the other handler finishes within a second; look again soon, and at the latest just after
        # its lease runs out. A recheck that still finds a live claim re-enqueues itself.
        remaining = max(self._deliveries.lease_remaining(record, c) for c in channels)
        return min(math.ceil(remaining) + 1, RECHECK_SECONDS)

    def _recheck_later(self, notification: Notification, channels: list[Channel]) -> None:
        """Another handler holds a claim: re-enqueue the notification to look again after its lease."""
        record = self._deliveries.get(notification.user_id, notification.notification_id)
        delay = self._recheck_delay(record, channels) if record is not None else 1
        names = ",".join(str(c) for c in channels)
        if self._recheck is None:
            raise TransientError(
                "notifier", f"another handler is delivering {notification.notification_id} ({names})"
            )
        try:
            self._recheck.send_message(format_message(notification), visibility_timeout=delay)
        except AzureError as exc:
            raise translate_azure_error(exc, "queue storage", "re-enqueue notification") from exc
        logger.info("notification %s is busy on %s elsewhere; rechecking in %d s",
                    notification.notification_id, names, delay)

    def _enqueue_deadline(self, notification: Notification, delay: int | None = None) -> None:
        content = json.dumps({"userId": notification.user_id, "notificationId": notification.notification_id})
        try:  # the queue SDK retries (capped, shared/clients.py)
            self._deadlines.send_message(
                content, visibility_timeout=self._ack_timeout if delay is None else delay
            )
        except AzureError as exc:
            raise translate_azure_error(exc, "queue storage", "enqueue deadline") from exc

    def _expired(self, record: DeliveryRecord, notification: Notification) -> bool:
        if notification.ttl_seconds is None:
            return False
        start = notification.enqueued_at or float(record.entity.get("acceptedAt", 0.0))
        if self._clock() <= start + notification.ttl_seconds:
            return False
        self._deliveries.set_status(record, Status.EXPIRED)
        log_outcome(notification.notification_id, notification.user_id, "none", "expired",
                    self._latency_ms(notification))
        return True

    def _latency_ms(self, notification: Notification) -> float | None:
        if notification.enqueued_at is None:
            return None
        return max(0.0, (self._clock() - notification.enqueued_at) * 1000.0)


def _not_acked_nor_final(record: DeliveryRecord) -> bool:
    return not record.acked and record.status not in FINAL_STATUSES
