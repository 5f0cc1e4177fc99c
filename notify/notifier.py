"""Execute delivery decisions: feed events into :mod:`notify.delivery_machine`, write, act.

The notifier makes no delivery decision itself. For each input (a notification from the queue, a deadline
message, a client's ack, an inbox read or archive) it builds an event, asks
:func:`~notify.delivery_machine.decide` for the transition, writes the next state conditionally
(:func:`advance`: on a conflict it reads the row again and decides again) and then executes the
transition's actions in order: send in-app, push, retract, enqueue a deadline, re-enqueue for a re-check,
read the user (``LoadUser``: decide again with the user's preferences), let the host retry, record an
outcome. A send reports its result as the next event (``RealtimeSent``, ``PushSent``, ``RetractSent``,
``SendFailed``, ``SendInterrupted``), which goes through the same loop.

The user is read once per notification (presence, devices and preferences in one request) and turned
into a :class:`~notify.delivery_machine.UserView` by :func:`notify.preferences.channel_gates`.
Sends are retried within the retry policy; a transient failure that outlives it is reported as
``SendInterrupted``: the machine gives the claims back and re-schedules the notification (a delayed
re-enqueue, ``ScheduleRetry``) until the retry horizon, then poisons it (``Poison``: an envelope with the
reason in ``<queue>-poison``); a retract gets another try by deadline. The invocation itself succeeds. A
transient error outside the sends (Table storage unavailable) is re-scheduled by
:meth:`Notifier.reschedule_after_error`, so the Functions host's own retries (``maxDequeueCount``) are left
for permanent errors and an unwritable queue. :meth:`Notifier.recover` re-drives a row the recovery pass
(:mod:`notify.recovery`) found stuck.

**One handling, one span, one webhook message.** Each input is handled inside a span of its own (a child of
the notification's trace, :mod:`notify.telemetry`) and with a per-handling record of what it did (a
context variable, since one Notifier serves many threads): the timeline entries its writes added and the
user's connection count. When the handling ends, those entries go to the event sink (the webhook queue)
as one message, after every send: the sink never delays a delivery, and its failure never fails one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from azure.core.exceptions import AzureError
from opentelemetry.trace import SpanKind

from notify.deliveries import SERVICE, DeliveryRecord, DeliveryStore, expiry_of, translate_azure_error
from notify.delivery_machine import (
    SEND_ACTIONS,
    Acked,
    Archived,
    Arrived,
    Channel,
    DeadlinePassed,
    Event,
    LoadUser,
    Poison,
    PushOutcome,
    PushSent,
    Read,
    RealtimeSent,
    Recheck,
    RecordOutcome,
    Recovered,
    RetractSent,
    Rules,
    ScheduleDeadline,
    ScheduleRetry,
    SendFailed,
    SendInterrupted,
    SendPush,
    SendRealtime,
    SendRetract,
    TimelineEntry,
    Transition,
    UserView,
    decide,
    new_state,
)
from notify.message import format_message
from notify.model import Notification
from notify.poison import PoisonQueue, envelope
from notify.preferences import channel_gates
from notify.push_templates import PushOptions
from notify.telemetry import DeliveryTelemetry, current_traceparent
from notify.user_state import UserState
from shared.errors import NotifyError, TransientError
from shared.log import log_outcome
from shared.retry import RetryPolicy, call_with_retry
from shared.settings import NotificationTypeSettings
from shared.user_keys import redact_user

logger = logging.getLogger(__name__)

RECHECK_SECONDS = 5  # the longest a notification waits before looking again at a channel claimed elsewhere
#: host.json ``extensions.queues.maxDequeueCount``: after this many deliveries the host poisons a message
#: (tests/unit/app/test_notifier_wiring.py keeps the two equal).
HOST_MAX_DEQUEUE_COUNT = 5
_MAX_CONFLICTS = 10


class PushResultLike(Protocol):
    """What a push send reports: ``outcome`` is ``pushed`` or ``no_devices``."""

    @property
    def outcome(self) -> str: ...

    @property
    def nh_notification_id(self) -> str | None: ...


class PushSending(Protocol):
    """Sends pushes (``notify.push.PushSender``)."""

    def send(self, notification: Notification, options: PushOptions) -> PushResultLike:
        """Push the notification; raise TransientError (retryable) or another NotifyError."""
        ...

    def retract(self, user_id: str, notification_id: str, expires_at: float | None) -> PushResultLike:
        """Send the silent retract; raise TransientError (retryable) or another NotifyError."""
        ...


class RealtimeSending(Protocol):
    """Sends a notification in-app (``notify.realtime.RealtimeSender``)."""

    def send(self, notification: Notification) -> None:
        """Send the envelope to the user's connections; raise TransientError or another NotifyError."""
        ...


class UserReading(Protocol):
    """Reads what decisions need to know about a user (``notify.user_state.UserDirectory``)."""

    def read(self, user_id: str) -> UserState:
        """Presence, devices and preferences; raise TransientError / UpstreamError."""
        ...


class MessageQueue(Protocol):
    """The part of ``azure.storage.queue.QueueClient`` the notifier uses."""

    def send_message(self, content: Any, **kwargs: Any) -> Any:
        """Enqueue a message."""
        ...


class DeliveryEvents(Protocol):
    """Where the timeline entries of each handling go (``notify.webhooks.WebhookOutbox``)."""

    def publish(self, user_id: str, notification_id: str, entries: Sequence[TimelineEntry]) -> None:
        """Hand the entries on; raise NotifyError when that fails."""
        ...


@dataclass
class _Handling:
    """What one handling of one input did so far (see the module docstring)."""

    user_id: str
    notification_id: str
    attempt: int = 0
    connections: int | None = None
    entries: list[TimelineEntry] = field(default_factory=list)


_HANDLING: ContextVar[_Handling | None] = ContextVar("notify_handling", default=None)


def new_claim_id() -> str:
    """A fresh claim id: one per handling of an input, shared by the channels it claims."""
    return uuid.uuid4().hex


def advance(
    store: DeliveryStore,
    record: DeliveryRecord,
    event: Event,
    rules: Rules,
    clock: Callable[[], float],
    fresh: bool = True,
) -> tuple[DeliveryRecord, Transition]:
    """Decide ``event`` on the row and write the next state; on a conflict read again and decide again.

    ``fresh=False`` says ``record`` is the store's remembered row, not one just read: a decision that
    writes is checked by the write's ETag like any other, one that writes nothing is taken again on a read.
    Returns the row as written (or as found, when nothing changes) and the transition whose actions are
    due. Raises TransientError when the row keeps changing, and what the store raises.
    """
    for _ in range(_MAX_CONFLICTS):
        step = decide(record.state, event, float(clock()), rules)
        if step.changed_from(record.state):
            written = store.write(record, step.state)
            if written is not None:
                return written, step
        elif fresh:
            return record, step
        # The row changed under the write, or a remembered row (which may be behind: only a write checks
        # it) would change nothing: read it and decide again.
        current = store.get(record.user_id, record.notification_id)
        if current is None:
            return record, Transition("vanished", "the delivery row is gone", record.state)
        record, fresh = current, True
    raise TransientError(SERVICE, "delivery row kept changing; giving up for now")


class Notifier:
    """Turns inputs into events, writes the decided states and executes the decided actions."""

    def __init__(
        self,
        deliveries: DeliveryStore,
        users: UserReading,
        realtime: RealtimeSending,
        push: PushSending,
        deadline_queue: MessageQueue,
        ack_timeout_seconds: int,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        recheck_queue: MessageQueue | None = None,
        claim_lease_seconds: float = 60.0,
        type_settings: Callable[[str], NotificationTypeSettings] = lambda _: NotificationTypeSettings(),
        retry_delay_seconds: int = 10,
        retry_max_delay_seconds: int = 300,
        retry_horizon_seconds: int = 3600,
        poison_queue: PoisonQueue | None = None,
        telemetry: DeliveryTelemetry | None = None,
        events: DeliveryEvents | None = None,
    ) -> None:
        self._deliveries = deliveries
        self._users = users
        self._realtime = realtime
        self._push = push
        self._deadlines = deadline_queue
        self._rules = Rules(
            ack_timeout_seconds, claim_lease_seconds, RECHECK_SECONDS,
            retry_delay_seconds=retry_delay_seconds, retry_max_delay_seconds=retry_max_delay_seconds,
            retry_horizon_seconds=retry_horizon_seconds,
        )
        self._retry = retry or RetryPolicy()
        self._clock = clock
        self._recheck = recheck_queue  # the notifications queue: re-checks and re-scheduled retries
        self._poison = poison_queue
        self._type_settings = type_settings
        self._telemetry = telemetry or DeliveryTelemetry()
        self._events = events

    @property
    def rules(self) -> Rules:
        """The rules decisions are made with."""
        return self._rules

    @property
    def telemetry(self) -> DeliveryTelemetry:
        """Where spans and metrics go."""
        return self._telemetry

    def handle(self, notification: Notification, attempt: int = 0) -> None:
        """Deliver a notification from the queue. Raises TransientError when a retry may succeed.

        ``attempt`` is the host's dequeue count of the message (0 = unknown).
        """
        with self._handling(
            "notify deliver", SpanKind.CONSUMER, notification.user_id, notification.notification_id,
            notification.traceparent, attempt,
        ) as handling:
            user = self._users.read(notification.user_id)  # presence, devices and preferences in one request
            handling.connections = user.connections
            claim_id = new_claim_id()
            now = self._now()
            # Later events of this notification continue the trace from here (the row keeps it).
            notification = dataclasses.replace(
                notification, traceparent=current_traceparent() or notification.traceparent
            )
            event = Arrived(claim_id, self._view(user, notification, now))
            # Decided on the row to be: the insert already carries the first claim (one request, not two).
            row_to_be = new_state(notification.delivery, expiry_of(notification, now), accepted_at=now)
            first = decide(row_to_be, event, now, self._rules)
            record, created = self._deliveries.insert(notification, first.state, now)
            if created:
                handling.entries.extend(first.state.timeline)
                self._trace(record, first)
                self._execute(record, first, notification, event.user)
                return
            logger.info("notification %s seen again (status %s)", notification.notification_id, record.status)
            stored = record.notification()
            self._run(record, Arrived(claim_id, self._view(user, stored, now)), stored)

    def handle_deadline(self, user_id: str, notification_id: str, attempt: int = 0) -> None:
        """A deadline passed (ack deadline, end of a deferral, re-check): do what is due, if anything."""
        record = self._deliveries.get(user_id, notification_id)
        if record is None:
            logger.warning("deadline for unknown notification %s", notification_id)
            return
        notification = record.notification()
        with self._handling(
            "notify deadline", SpanKind.CONSUMER, user_id, notification_id, notification.traceparent, attempt
        ):
            self._run(record, DeadlinePassed(new_claim_id()), notification)

    def handle_ack(self, user_id: str, notification_id: str, connection_id: str = "") -> bool:
        """Record the user's ack of an in-app message; False if the user has no such notification."""
        return self._seen(user_id, notification_id, Acked(new_claim_id(), connection_id))

    def handle_read(self, user_id: str, notification_id: str) -> bool:
        """Record that the user read the notification (inbox); a push that went out is retracted.

        False if the user has no such notification. Raises TransientError / UpstreamError (storage).
        """
        return self._seen(user_id, notification_id, Read(new_claim_id()))

    def handle_archived(self, user_id: str, notification_id: str, deleted: bool = False) -> bool:
        """Record that the user archived (or deleted) the notification in the inbox; a push that went out is
        retracted."""
        return self._seen(user_id, notification_id, Archived(new_claim_id(), deleted))

    def _seen(self, user_id: str, notification_id: str, event: Acked | Read | Archived) -> bool:
        # An ack usually follows this instance's own send by milliseconds: start from the row as written.
        # (A read or archive comes from the inbox, whose transaction has just changed the row.)
        remembered = self._deliveries.recent(user_id, notification_id) if isinstance(event, Acked) else None
        record = remembered or self._deliveries.get(user_id, notification_id)
        if record is None:
            logger.info("%s for unknown notification %s ignored", type(event).__name__, notification_id)
            return False
        notification = record.notification()
        span = f"notify {type(event).__name__.lower()}"
        with self._handling(span, SpanKind.SERVER, user_id, notification_id, notification.traceparent):
            self._run(record, event, notification, fresh=remembered is None)
        return True

    def recover(self, record: DeliveryRecord) -> None:
        """Re-drive a row the recovery pass found past its ``recoverAt`` moment."""
        notification = record.notification()
        view = self._view(self._users.read(notification.user_id), notification, self._now())
        logger.info("recovering notification %s (status %s)", notification.notification_id, record.status)
        with self._handling("notify recover", SpanKind.INTERNAL, notification.user_id,
                            notification.notification_id, notification.traceparent):
            self._run(record, Recovered(new_claim_id(), view), notification, view)

    def reschedule_after_error(
        self, notification: Notification, error: TransientError, first_enqueued_at: float | None = None
    ) -> None:
        """A handling failed transiently outside the sends (Table storage unavailable, say), so no record
        could say ``retrying``: re-enqueue the notification with a growing delay, or put it in the poison
        queue with the reason once it is older than the retry horizon (or its TTL ran out).

        The age is counted from the producer's ``enqueuedAt``, else from ``first_enqueued_at`` (the queue
        message's insertion time), which the re-enqueued copy then carries as its ``enqueuedAt``: the delay
        roughly doubles with each attempt (the age, between the retry delay and its maximum) without a
        counter stored anywhere. Raises ``error`` when there is no queue to re-schedule on, and a
        TransientError when the queue refuses too: the Functions host retries the message then.
        """
        if self._recheck is None or self._poison is None:
            raise error
        now = self._now()
        enqueued_at = notification.enqueued_at or first_enqueued_at or now
        if notification.enqueued_at is None:
            notification = dataclasses.replace(notification, enqueued_at=enqueued_at)
        rules = self._rules
        age = max(0.0, now - enqueued_at)
        horizon_end = enqueued_at + rules.retry_horizon_seconds
        expires_at = enqueued_at + notification.ttl_seconds if notification.ttl_seconds else math.inf
        if now >= expires_at or now >= horizon_end:
            why = "its ttlSeconds ran out" if now >= expires_at else (
                f"retry horizon {rules.retry_horizon_seconds} s since it was enqueued"
            )
            reason = f"gave up after {age:.0f} s ({why}); last error: {error.message}"
            self._poison.put(
                envelope(format_message(notification), reason, notification_id=notification.notification_id,
                         user_id=notification.user_id, attempts=0, failing_since=0.0, poisoned_at=now)
            )
            logger.error("notification %s moved to the poison queue: %s",
                         notification.notification_id, reason)
            self._telemetry.poisoned("notifications", "expired" if now >= expires_at else "retry-horizon")
            return
        delay = min(max(float(rules.retry_delay_seconds), age), float(rules.retry_max_delay_seconds))
        if error.retry_after is not None:
            delay = max(delay, error.retry_after)
        delay = max(1.0, min(delay, horizon_end - now, expires_at - now))
        try:
            self._recheck.send_message(format_message(notification), visibility_timeout=math.ceil(delay))
        except AzureError as exc:
            raise translate_azure_error(exc, "queue storage", "re-schedule notification") from exc
        logger.warning("notification %s failed outside the sends (%s); re-scheduled in %d s",
                       notification.notification_id, error.message, math.ceil(delay))

    @contextlib.contextmanager
    def _handling(
        self,
        span_name: str,
        kind: SpanKind,
        user_id: str,
        notification_id: str,
        traceparent: str | None,
        attempt: int = 0,
    ) -> Iterator[_Handling]:
        """The span and the per-handling record of one input; publishes its timeline entries at the end."""
        handling = _Handling(user_id, notification_id, attempt)
        token = _HANDLING.set(handling)
        try:
            with self._telemetry.span(span_name, kind, notification_id, user_id, traceparent):
                try:
                    yield handling
                finally:
                    self._publish(handling)
        finally:
            _HANDLING.reset(token)

    def _publish(self, handling: _Handling) -> None:
        if not handling.entries or self._events is None:
            return
        try:
            self._events.publish(handling.user_id, handling.notification_id, handling.entries)
        except NotifyError as exc:  # a lost webhook event must never fail or repeat a delivery
            logger.error("delivery events of %s were not queued for the webhook: %s",
                         handling.notification_id, exc.message)
            self._telemetry.webhook("lost", len(handling.entries))

    def _collect(self, step: Transition) -> None:
        handling = _HANDLING.get()
        if handling is not None:
            handling.entries.extend(step.entries)

    def _view(self, user: UserState, notification: Notification, now: float) -> UserView:
        """What the preferences and the user's state say for this notification now."""
        in_app, push = channel_gates(
            notification.type,
            notification.critical,
            user.preferences,
            self._type_settings(notification.type),
            now,
        )
        return UserView(user.online, user.has_devices, in_app, push, user.connections)

    def _run(
        self,
        record: DeliveryRecord,
        event: Event,
        notification: Notification,
        user: UserView | None = None,
        cause: TransientError | None = None,
        fresh: bool = True,
    ) -> DeliveryRecord:
        record, step = advance(self._deliveries, record, event, self._rules, self._now, fresh)
        self._collect(step)
        wants_user = any(isinstance(a, LoadUser) for a in step.actions)
        if wants_user and isinstance(event, DeadlinePassed | SendFailed | Recovered):
            view = user or self._view(self._users.read(record.user_id), notification, self._now())
            event = dataclasses.replace(event, user=view)
            record, step = advance(self._deliveries, record, event, self._rules, self._now)
            self._collect(step)
        self._trace(record, step)
        return self._execute(record, step, notification, user, cause)

    def _execute(
        self,
        record: DeliveryRecord,
        step: Transition,
        notification: Notification,
        user: UserView | None = None,
        cause: TransientError | None = None,
    ) -> DeliveryRecord:
        """Carry out the transition's actions in order; returns the row after the follow-up events."""
        for action in step.actions:
            if isinstance(action, SendRealtime | SendPush | SendRetract):
                channel = SEND_ACTIONS[type(action)]
                if not record.state.may_send(channel, action.claim_id):
                    # An earlier send of this handling was interrupted and gave the claims back.
                    logger.info("%s send of %s skipped: its claim was given back", channel,
                                notification.notification_id)
                elif isinstance(action, SendRealtime):
                    record = self._send_realtime(record, action.claim_id, notification, user)
                elif isinstance(action, SendPush):
                    record = self._send_push(record, action.claim_id, notification)
                else:
                    record = self._send_retract(record, action.claim_id, notification)
            elif isinstance(action, ScheduleDeadline):
                self._enqueue_deadline(notification, action.delay_seconds)
            elif isinstance(action, Recheck):
                self._recheck_later(notification, action)
            elif isinstance(action, RecordOutcome):
                pushed_as = record.state.nh_notification_id if action.channel == Channel.PUSH.value else ""
                log_outcome(notification.notification_id, notification.user_id, action.channel,
                            action.outcome, self._latency_ms(notification), level=action.level,
                            detail=action.detail, nh_notification_id=pushed_as)
                self._telemetry.outcome(action.channel, action.outcome)
            elif isinstance(action, ScheduleRetry):
                self._retry_later(notification, action.delay_seconds, cause)
            elif isinstance(action, Poison):
                self._send_to_poison(record, notification, action.reason)
            elif isinstance(action, LoadUser):  # pragma: no cover - _run answers it before executing
                raise RuntimeError(f"{step.name}: the user was loaded and still asked for")
            else:  # pragma: no cover - the union is exhausted above
                raise TypeError(f"unknown action {action!r}")
        return record

    def _send_realtime(
        self, record: DeliveryRecord, claim_id: str, notification: Notification, user: UserView | None
    ) -> DeliveryRecord:
        handling = _HANDLING.get()
        try:
            with self._send_span(Channel.REALTIME, notification):
                call_with_retry(lambda: self._realtime.send(notification), self._retry, "web pubsub send")
        except TransientError as exc:
            interrupted = SendInterrupted(Channel.REALTIME, claim_id, exc.message, exc.retry_after)
            return self._run(record, interrupted, notification, user, cause=exc)
        except NotifyError as exc:
            logger.error("in-app send of %s failed: %s", notification.notification_id,
                         redact_user(exc.message, notification.user_id))
            failed = SendFailed(Channel.REALTIME, claim_id, user, exc.message)
            return self._run(record, failed, notification, user)
        connections = handling.connections if handling is not None else None
        return self._run(record, RealtimeSent(claim_id, connections), notification, user)

    def _send_push(self, record: DeliveryRecord, claim_id: str, notification: Notification) -> DeliveryRecord:
        options = PushOptions(self._priority(notification), record.state.expires_at)
        try:
            with self._send_span(Channel.PUSH, notification):
                result = self._push.send(notification, options)  # the NH client retries each call itself
        except TransientError as exc:
            interrupted = SendInterrupted(Channel.PUSH, claim_id, exc.message, exc.retry_after)
            return self._run(record, interrupted, notification, cause=exc)
        except NotifyError as exc:
            logger.error("push of %s failed: %s", notification.notification_id,
                         redact_user(exc.message, notification.user_id))
            return self._run(record, SendFailed(Channel.PUSH, claim_id, error=exc.message), notification)
        event = PushSent(claim_id, PushOutcome(result.outcome), result.nh_notification_id)
        return self._run(record, event, notification)

    def _send_retract(
        self, record: DeliveryRecord, claim_id: str, notification: Notification
    ) -> DeliveryRecord:
        try:
            self._push.retract(notification.user_id, notification.notification_id, record.state.expires_at)
        except TransientError as exc:
            logger.warning("retract of %s failed transiently: %s", notification.notification_id,
                           redact_user(exc.message, notification.user_id))
            interrupted = SendInterrupted(Channel.RETRACT, claim_id, exc.message, exc.retry_after)
            return self._run(record, interrupted, notification, cause=exc)
        except NotifyError as exc:
            logger.error("retract of %s failed: %s", notification.notification_id,
                         redact_user(exc.message, notification.user_id))
            failed = SendFailed(Channel.RETRACT, claim_id, error=exc.message)
            return self._run(record, failed, notification)
        return self._run(record, RetractSent(claim_id), notification)

    def _send_span(
        self, channel: Channel, notification: Notification
    ) -> contextlib.AbstractContextManager[Any]:
        return self._telemetry.span(
            f"notify send {channel.value}", SpanKind.CLIENT, notification.notification_id,
            notification.user_id, attributes={"notify.channel": channel.value},
        )

    def _priority(self, notification: Notification) -> Literal["high", "normal"]:
        if notification.critical:
            return "high"
        settings = self._type_settings(notification.type)
        return "high" if settings.critical else settings.priority

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

    def _retry_later(self, notification: Notification, delay: int, cause: TransientError | None) -> None:
        """Re-enqueue the notification to be delivered again after ``delay`` seconds."""
        if self._recheck is None:  # no queue to re-schedule on: let the host retry the message instead
            raise cause or TransientError("notifier", f"cannot re-schedule {notification.notification_id}")
        try:
            self._recheck.send_message(format_message(notification), visibility_timeout=delay)
        except AzureError as exc:
            raise translate_azure_error(exc, "queue storage", "re-schedule notification") from exc
        logger.info("notification %s re-scheduled in %d s", notification.notification_id, delay)

    def _send_to_poison(self, record: DeliveryRecord, notification: Notification, reason: str) -> None:
        """Put the notification in the poison queue in an envelope that says why."""
        if self._poison is None:
            raise TransientError("notifier", f"no poison queue for {notification.notification_id}")
        state = record.state
        self._poison.put(
            envelope(
                format_message(notification), reason,
                notification_id=notification.notification_id, user_id=notification.user_id,
                attempts=state.attempts, failing_since=state.failing_since,
                poisoned_at=state.poisoned_at or self._now(),
            )
        )
        logger.error("notification %s moved to the poison queue: %s", notification.notification_id, reason)
        self._telemetry.poisoned("notifications", "retry-horizon")

    def _enqueue_deadline(self, notification: Notification, delay: int) -> None:
        content = json.dumps({"userId": notification.user_id, "notificationId": notification.notification_id})
        try:  # the queue SDK retries (capped, shared/clients.py)
            self._deadlines.send_message(content, visibility_timeout=delay)
        except AzureError as exc:
            raise translate_azure_error(exc, "queue storage", "enqueue deadline") from exc

    def _trace(self, record: DeliveryRecord, step: Transition) -> None:
        logger.debug("delivery %s: %s (%s) -> %s", record.notification_id, step.name, step.reason,
                     step.state.status)
        enqueued_at = record.entity.get("enqueuedAt")
        self._telemetry.transition(step, float(enqueued_at) if enqueued_at else None)

    def _now(self) -> float:
        # Floats always: an int beyond 2**31 would not fit the Int32 the table SDK picks for ints.
        return float(self._clock())

    def _latency_ms(self, notification: Notification) -> float | None:
        if notification.enqueued_at is None:
            return None
        return max(0.0, (self._clock() - notification.enqueued_at) * 1000.0)
