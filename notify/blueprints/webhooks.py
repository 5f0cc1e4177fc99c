"""The webhook queue's trigger: POST each delivery event to WEBHOOK_URL (see :mod:`notify.webhooks`)."""

from __future__ import annotations

import azure.functions as func

from notify.telemetry import get_telemetry
from notify.webhooks import DispatchResult, WebhookDispatcher
from shared.clients import get_queue_client, pooled_session
from shared.once import process_wide
from shared.settings import get_settings

bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.queue_trigger(arg_name="msg", queue_name="%WEBHOOK_QUEUE%", connection="AzureWebJobsStorage")
def deliver_webhook_events(msg: func.QueueMessage) -> None:
    """POST the delivery events of one message; failures are re-enqueued with backoff, then poisoned."""
    process_webhook_message(msg, get_webhook_dispatcher())


def process_webhook_message(msg: func.QueueMessage, dispatcher: WebhookDispatcher) -> DispatchResult:
    """Dispatch one webhook-queue message (raises only when a queue write fails: the host retries)."""
    return dispatcher.dispatch(msg.get_body())


@process_wide
def get_webhook_dispatcher() -> WebhookDispatcher:
    """The process-wide dispatcher built from :func:`get_settings`."""
    settings = get_settings().webhooks
    return WebhookDispatcher(
        settings,
        queue=get_queue_client(settings.queue),
        poison_queue=get_queue_client(settings.queue + "-poison"),
        session=pooled_session(),
        telemetry=get_telemetry(),
    )
