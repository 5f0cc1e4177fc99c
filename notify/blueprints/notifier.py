"""Queue-triggered delivery (the notifications queue and the ack-deadlines queue) and the recovery timer.

The triggers are thin: they build (once per process) a Notifier from settings and call
:func:`process_notification_message` / :func:`process_deadline_message`, which tests call with their own.
The timer runs :class:`notify.recovery.RecoveryPass` over rows a crash left stuck.
"""

from __future__ import annotations

import logging

import azure.functions as func
from azure.storage.queue import QueueClient

from notify.deliveries import DeliveryStore
from notify.message import notification_id_is_valid, parse_message
from notify.notifier import HOST_MAX_DEQUEUE_COUNT, MessageQueue, Notifier, PushSending
from notify.poison import PoisonQueue
from notify.realtime import get_realtime_sender
from notify.recovery import RecoveryPass
from notify.telemetry import get_telemetry
from notify.user_state import get_user_directory
from notify.webhooks import WebhookOutbox
from shared.clients import get_queue_client, get_table_client
from shared.errors import InvalidMessageError, TransientError
from shared.json_input import JsonInputError, parse_json
from shared.once import process_wide
from shared.retry import RetryPolicy
from shared.settings import Settings, get_settings
from shared.user_keys import user_id_problem

logger = logging.getLogger(__name__)
bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.queue_trigger(arg_name="msg", queue_name="%NOTIFICATIONS_QUEUE%", connection="AzureWebJobsStorage")
def deliver_notification(msg: func.QueueMessage) -> None:
    """Deliver one notification from the notifications queue."""
    settings = get_settings()
    poison = get_queue_client(settings.notifications_queue + "-poison", binary=True)
    process_notification_message(msg, get_notifier(), poison)


@bp.queue_trigger(arg_name="msg", queue_name="%DEADLINES_QUEUE%", connection="AzureWebJobsStorage")
def push_after_deadline(msg: func.QueueMessage) -> None:
    """Push a notification whose in-app ack did not arrive in time."""
    poison = get_queue_client(get_settings().deadlines_queue + "-poison", binary=True)
    process_deadline_message(msg, get_notifier(), poison)


@bp.timer_trigger(arg_name="timer", schedule="%RECOVERY_SCHEDULE%", run_on_startup=False)
def recover_deliveries(timer: func.TimerRequest) -> None:
    """Re-drive deliveries a crashed instance left stuck (claims past their lease, lost deadlines)."""
    get_recovery_pass().run()


def process_notification_message(
    msg: func.QueueMessage, notifier: Notifier, poison_queue: QueueClient
) -> None:
    """Parse and deliver; an invalid message goes to the poison queue at once.

    A transient failure outside the sends is re-scheduled (:meth:`Notifier.reschedule_after_error`); the
    TransientError propagates (the host retries the message) only when that cannot be done either.

    ``poison_queue`` must encode with ``BinaryBase64EncodePolicy`` (the original bytes are re-enqueued).
    """
    body = msg.get_body()
    try:
        notification = parse_message(body, msg.id)
    except InvalidMessageError as exc:
        logger.error(
            "queue message %s is invalid (%s, field %s); moved to the poison queue",
            msg.id,
            exc.message,
            exc.field,
        )
        _send_to_poison(poison_queue, body)
        notifier.telemetry.poisoned("notifications", "invalid")
        return
    attempt = _dequeue_count(msg)
    try:
        notifier.handle(notification, attempt)
    except TransientError as exc:  # outside the sends (those re-schedule themselves): e.g. Table storage
        notifier.reschedule_after_error(notification, exc, _insertion_time(msg))
    except Exception:
        if attempt >= HOST_MAX_DEQUEUE_COUNT:  # the host moves it to <queue>-poison now
            notifier.telemetry.poisoned("notifications", "retries-exhausted")
        raise


def _insertion_time(msg: func.QueueMessage) -> float | None:
    inserted = msg.insertion_time
    return inserted.timestamp() if inserted is not None else None


def process_deadline_message(
    msg: func.QueueMessage, notifier: Notifier, poison_queue: QueueClient | None = None
) -> None:
    """Handle an ack deadline ``{"userId", "notificationId"}``; a malformed one goes to the poison queue.

    (Deadlines are written by the notifier itself, so a malformed one means someone else wrote to the queue.)
    """
    body = msg.get_body()
    try:
        document = parse_json(body)
        if not isinstance(document, dict):
            raise JsonInputError("is not a JSON object")
        user_id = document.get("userId")
        notification_id = document.get("notificationId")
        if not isinstance(user_id, str) or user_id_problem(user_id) is not None:
            raise JsonInputError("has no valid userId")
        if not isinstance(notification_id, str) or not notification_id_is_valid(notification_id):
            raise JsonInputError("has no valid notificationId")
    except JsonInputError as exc:
        logger.error("deadline message %s %s; moved to the poison queue", msg.id, exc)
        if poison_queue is not None:
            _send_to_poison(poison_queue, body)
            notifier.telemetry.poisoned("deadlines", "invalid")
        return
    attempt = _dequeue_count(msg)
    try:
        notifier.handle_deadline(user_id, notification_id, attempt)
    except Exception:
        if attempt >= HOST_MAX_DEQUEUE_COUNT:
            notifier.telemetry.poisoned("deadlines", "retries-exhausted")
        raise


def _dequeue_count(msg: func.QueueMessage) -> int:
    """How many times the host has delivered ``msg`` (1 the first time; 0 when unknown)."""
    count = getattr(msg, "dequeue_count", None)
    return count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 0


def _send_to_poison(poison_queue: QueueClient, body: bytes) -> None:
    PoisonQueue(poison_queue).put(body)


# ---- the process-wide notifier, built once from settings ------------------------------------------------


def retry_policy(settings: Settings) -> RetryPolicy:
    """The retry policy the settings ask for."""
    return RetryPolicy(attempts=settings.retry_max_attempts, budget_seconds=settings.retry_budget_seconds)


def _push_sender(settings: Settings) -> PushSending:
    from notify.push import get_push_sender

    sender: PushSending = get_push_sender()
    return sender


@process_wide
def get_notifier() -> Notifier:
    """The process-wide Notifier built from :func:`get_settings`."""
    settings = get_settings()
    deadlines: MessageQueue = get_queue_client(settings.deadlines_queue)
    events = WebhookOutbox(get_queue_client(settings.webhooks.queue)) if settings.webhooks.enabled else None
    return Notifier(
        deliveries=DeliveryStore(get_table_client(settings.deliveries_table)),
        users=get_user_directory(),
        realtime=get_realtime_sender(),
        push=_push_sender(settings),
        deadline_queue=deadlines,
        ack_timeout_seconds=settings.ack_timeout_seconds,
        retry=retry_policy(settings),
        recheck_queue=get_queue_client(settings.notifications_queue),
        type_settings=settings.type_settings,
        claim_lease_seconds=settings.claim_lease_seconds,
        retry_delay_seconds=settings.retry_delay_seconds,
        retry_max_delay_seconds=settings.retry_max_delay_seconds,
        retry_horizon_seconds=settings.retry_horizon_seconds,
        poison_queue=PoisonQueue(get_queue_client(settings.notifications_queue + "-poison", binary=True)),
        telemetry=get_telemetry(),
        events=events,
    )


@process_wide
def get_recovery_pass() -> RecoveryPass:
    """The process-wide recovery pass over the deliveries table."""
    settings = get_settings()
    return RecoveryPass(DeliveryStore(get_table_client(settings.deliveries_table)), get_notifier())
