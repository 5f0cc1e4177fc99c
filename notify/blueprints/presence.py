"""Presence from Web PubSub system events, in-app acks from the ``ack`` user event, and the stale sweep.

The ``request`` argument arrives as a JSON string (AZURE-CONTRACTS 3.2); the user id always comes from
``connectionContext.userId`` (set by the service from the client's token), never from the payload.
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from typing import Any

import azure.functions as func

from notify.acks import ack_response, answer_ack
from notify.blueprints.notifier import get_notifier
from notify.notifier import Notifier
from notify.presence import PresenceStore
from notify.realtime import RealtimeSender, get_realtime_sender
from shared.clients import get_table_client
from shared.settings import get_settings

logger = logging.getLogger(__name__)
bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.generic_trigger(
    arg_name="request",
    type="webPubSubTrigger",
    hub="%WebPubSubHub%",
    eventType="system",
    eventName="connected",
)
def presence_connected(request: str) -> None:
    """Record a new connection."""
    handle_connected(request, get_presence_store())


@bp.generic_trigger(
    arg_name="request",
    type="webPubSubTrigger",
    hub="%WebPubSubHub%",
    eventType="system",
    eventName="disconnected",
)
def presence_disconnected(request: str) -> None:
    """Forget a closed connection."""
    handle_disconnected(request, get_presence_store())


@bp.generic_trigger(
    arg_name="request", type="webPubSubTrigger", hub="%WebPubSubHub%", eventType="user", eventName="ack"
)
def notification_ack(request: str) -> dict[str, Any]:
    """Record a client's ack of an in-app notification and answer it."""
    try:
        notifier = get_notifier()
    except Exception:  # settings or clients unusable: still answer, never raise to the host
        logger.exception("ack received but the notifier could not be built")
        return ack_response(None, "internal", "the service is misconfigured")
    return handle_ack(request, notifier)


@bp.timer_trigger(arg_name="timer", schedule="%PRESENCE_SWEEP_SCHEDULE%", run_on_startup=False)
def presence_sweep(timer: func.TimerRequest) -> None:
    """Remove presence rows whose connection is gone (lost ``disconnected`` events)."""
    sweep_presence(get_presence_store(), get_realtime_sender(), get_settings().presence_stale_seconds)


def handle_connected(request: str | bytes, presence: PresenceStore) -> None:
    """Record the connection of a ``connected`` event; events without a user are ignored."""
    context = _connection_context(request)
    user_id, connection_id = context.get("userId"), context.get("connectionId")
    if not (isinstance(user_id, str) and user_id and isinstance(connection_id, str) and connection_id):
        logger.warning("connected event without userId or connectionId ignored")
        return
    presence.connected(user_id, connection_id)


def handle_disconnected(request: str | bytes, presence: PresenceStore) -> None:
    """Remove the connection of a ``disconnected`` event (already gone is fine)."""
    context = _connection_context(request)
    user_id, connection_id = context.get("userId"), context.get("connectionId")
    if not (isinstance(user_id, str) and user_id and isinstance(connection_id, str) and connection_id):
        return
    presence.disconnected(user_id, connection_id)


def handle_ack(request: str | bytes, notifier: Notifier) -> dict[str, Any]:
    """Record the ack in ``data.notificationId`` for the connection's own user; answer success or an error.

    Never raises (see :mod:`notify.acks`); the answer reaches the client as a server message.
    """
    return answer_ack(request, notifier)


def sweep_presence(presence: PresenceStore, realtime: RealtimeSender, older_than_seconds: float) -> int:
    """Delete presence rows older than the age whose connection Web PubSub no longer knows."""
    return presence.sweep(older_than_seconds, realtime.connection_exists)


@lru_cache(maxsize=1)
def get_presence_store() -> PresenceStore:
    """The process-wide PresenceStore built from settings."""
    return PresenceStore(get_table_client(get_settings().presence_table))


def _load(request: str | bytes) -> dict[str, Any]:
    try:
        event = json.loads(request)
    except ValueError:
        logger.warning("web pubsub event is not JSON; ignored")
        return {}
    return event if isinstance(event, dict) else {}


def _connection_context(request: str | bytes) -> dict[str, Any]:
    context = _load(request).get("connectionContext")
    return context if isinstance(context, dict) else {}
