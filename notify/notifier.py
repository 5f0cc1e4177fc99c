"""Execute delivery decisions: feed events into :mod:`notify.delivery_machine`, write, act.

The notifier makes no delivery decision itself. For each input (a notification from the queue, an ack
deadline, a client's ack) it builds an event, asks :func:`~notify.delivery_machine.decide` for the
transition, writes the next state conditionally (:func:`advance`: on a conflict it reads the row again and
decides again) and then executes the transition's actions in order: send in-app, push, enqueue a deadline,
re-enqueue for a re-check, record an outcome. A send reports its result as the next event
(``RealtimeSent``, ``PushSent``, ``SendFailed``, ``SendInterrupted``), which goes through the same loop.

Delivery modes, exactly-once claims and the re-check of channels claimed elsewhere are described in
:mod:`notify.delivery_machine`. Sends are retried within the retry policy; a transient failure that outlives
it gives the claims back (``SendInterrupted``) and propagates, so the Functions host redelivers the message.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from azure.core.exceptions import AzureError

from notify.deliveries import SERVICE, DeliveryRecord, DeliveryStore, expiry_of, translate_azure_error
from notify.delivery_machine import (
    Acked,
    Arrived,
    Channel,
    DeadlinePassed,
    Event,
    PushOutcome,
    PushSent,
    RealtimeSent,
    Recheck,
    RecordOutcome,
    Rules,
    ScheduleDeadline,
    SendFailed,
    SendInterrupted,
    SendPush,
    SendRealtime,
    Transition,
    decide,
    new_state,
)
from notify.message import format_message
from notify.model import Delivery, Notification
from notify.presence import PresenceStore
from shared.errors import NotifyError, TransientError
from shared.log import log_outcome
from shared.retry import RetryPolicy, call_with_retry

logger = logging.getLogger(__name__)

RECHECK_SECONDS = 5  # the longest a notification waits before looking again at a channel claimed elsewhere
_MAX_CONFLICTS = 10


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


def new_claim_id() -> str:
    """A fresh claim id: one per handling of an input, shared by the channels it claims."""
    return uuid.uuid4().hex


def advance(
    store: DeliveryStore,
    record: DeliveryRecord,
    event: Event,
    rules: Rules,
    clock: Callable[[], float],
) -> tuple[DeliveryRecord, Transition]:
    """Decide ``event`` on the row and write the next state; on a conflict read again and decide again.

    Returns the row as written (or as found, when nothing changes) and the transition whose actions are
    due. Raises TransientError when the row keeps changing, and what the store raises.
    """
    for _ in range(_MAX_CONFLICTS):
        step = decide(record.state, event, float(clock()), rules)
        if not step.changed_from(record.state):
            return record, step
        written = store.write(record, step.state)
        if written is not None:
            return written, step
        current = store.get(record.user_id, record.notification_id)
        if current is None:
            return record, Transition("vanished", "the delivery row is gone", record.state)
        record = current
    raise TransientError(SERVICE, "delivery row kept changing; giving up for now")


class Notifier:
    """Turns inputs into events, writes the decided states and executes the decided actions."""

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
        claim_lease_seconds: float = 120.0,
    ) -> None:
        self._deliveries = deliveries
        self._presence = presence
        self._realtime = realtime
        self._push = push
        self._deadlines = deadline_queue
        self._rules = Rules(ack_timeout_seconds, claim_lease_seconds, RECHECK_SECONDS)
        self._retry = retry or RetryPolicy()
        self._clock = clock
        self._recheck = recheck_queue

    @property
    def rules(self) -> Rules:
        """The rules decisions are made with."""
        return self._rules

    def handle(self, notification: Notification) -> None:
        """Deliver a notification from the queue. Raises TransientError when a retry may succeed."""
        online = None
        if notification.delivery is Delivery.AUTO:
            online = self._presence.is_online(notification.user_id)
        event = Arrived(new_claim_id(), online)
        now = self._now()
        # Decided on the row to be: the insert already carries the first claim (one request, not two).
        row_to_be = new_state(notification.delivery, expiry_of(notification, now))
        first = decide(row_to_be, event, now, self._rules)
        record, created = self._deliveries.insert(notification, first.state, now)
        if created:
            self._trace(record, first)
            self._execute(record, first, notification)
            return
        logger.info("notification %s seen again (status %s)", notification.notification_id, record.status)
        self._run(record, event, record.notification())

    def handle_deadline(self, user_id: str, notification_id: str) -> None:
        """The ack deadline of an ``auto`` notification passed: push unless acked (at most once)."""
        record = self._deliveries.get(user_id, notification_id)
        if record is None:
            logger.warning("deadline for unknown notification %s", notification_id)
            return
        self._run(record, DeadlinePassed(new_claim_id()), record.notification())

    def handle_ack(self, user_id: str, notification_id: str) -> bool:
        """Record the user's ack of an in-app message; False if the user has no such notification."""
        record = self._deliveries.get(user_id, notification_id)
        if record is None:
            logger.info("ack for unknown notification %s ignored", notification_id)
            return False
        self._run(record, Acked(), record.notification())
        return True

    def _run(self, record: DeliveryRecord, event: Event, notification: Notification) -> DeliveryRecord:
        record, step = advance(self._deliveries, record, event, self._rules, self._now)
        self._trace(record, step)
        return self._execute(record, step, notification)

    def _execute(
        self, record: DeliveryRecord, step: Transition, notification: Notification
    ) -> DeliveryRecord:
        """Carry out the transition's actions in order; returns the row after the follow-up events."""
        for action in step.actions:
            if isinstance(action, SendRealtime):
                record = self._send_realtime(record, action.claim_id, notification)
            elif isinstance(action, SendPush):
                record = self._send_push(record, action.claim_id, notification)
            elif isinstance(action, ScheduleDeadline):
                self._enqueue_deadline(notification, action.delay_seconds)
            elif isinstance(action, Recheck):
                self._recheck_later(notification, action)
            elif isinstance(action, RecordOutcome):
                log_outcome(notification.notification_id, notification.user_id, action.channel,
                            action.outcome, self._latency_ms(notification), level=action.level)
            else:  # pragma: no cover - the union is exhausted above
                raise TypeError(f"unknown action {action!r}")
        return record

    def _send_realtime(
        self, record: DeliveryRecord, claim_id: str, notification: Notification
    ) -> DeliveryRecord:
        try:
            call_with_retry(lambda: self._realtime.send(notification), self._retry, "web pubsub send")
        except TransientError:
            self._run(record, SendInterrupted(Channel.REALTIME, claim_id), notification)
            raise
        except NotifyError as exc:
            logger.error("in-app send of %s failed: %s", notification.notification_id, exc.message)
            return self._run(record, SendFailed(Channel.REALTIME, claim_id), notification)
        return self._run(record, RealtimeSent(claim_id), notification)

    def _send_push(
        self, record: DeliveryRecord, claim_id: str, notification: Notification
    ) -> DeliveryRecord:
        try:
            result = self._push.send(notification)  # the NH client retries each call itself
        except TransientError:
            self._run(record, SendInterrupted(Channel.PUSH, claim_id), notification)
            raise
        except NotifyError as exc:
            logger.error("push of %s failed: %s", notification.notification_id, exc.message)
            return self._run(record, SendFailed(Channel.PUSH, claim_id), notification)
        event = PushSent(claim_id, PushOutcome(result.outcome), result.nh_notification_id)
        return self._run(record, event, notification)

    def _recheck_later(self, notification: Notification, action: Recheck) -> None:
        """Another handler holds a claim: re-enqueue the notification to look again after its lease."""
        names = ",".join(str(c) for c in action.channels)
        if self._recheck is None:
            raise TransientError(
                "notifier", f"another handler is delivering {notification.notification_id} ({names})"
            )
        try:
            self._recheck.send_message(format_message(notification), visibility_timeout=action.delay_seconds)
        except AzureError as exc:
            raise translate_azure_error(exc, "queue storage", "re-enqueue notification") from exc
        logger.info("notification %s is busy on %s elsewhere; rechecking in %d s",
                    notification.notification_id, names, action.delay_seconds)

    def _enqueue_deadline(self, notification: Notification, delay: int) -> None:
        content = json.dumps({"userId": notification.user_id, "notificationId": notification.notification_id})
        try:  # the queue SDK retries (capped, shared/clients.py)
            self._deadlines.send_message(content, visibility_timeout=delay)
        except AzureError as exc:
            raise translate_azure_error(exc, "queue storage", "enqueue deadline") from exc

    def _trace(self, record: DeliveryRecord, step: Transition) -> None:
        logger.debug("delivery %s: %s (%s) -> %s", record.notification_id, step.name, step.reason,
                     step.state.status)

    def _now(self) -> float:
        # Floats always: an int beyond 2**31 would not fit the Int32 the table SDK picks for ints.
        return float(self._clock())

    def _latency_ms(self, notification: Notification) -> float | None:
        if notification.enqueued_at is None:
            return None
        return max(0.0, (self._clock() - notification.enqueued_at) * 1000.0)
