"""Presence from Web PubSub system events, in-app acks from the ``ack`` user event, and the stale sweep.

The ``request`` argument arrives as a JSON string (AZURE-CONTRACTS 3.2); the user id always comes from
``connectionContext.userId`` (set by the service from the client's token), never from the payload.
System events that cannot be used (JSON nested too deep, a user id outside the rule of
:func:`shared.user_keys.user_id_problem`, a connection id that is not a safe table key) are ignored with a
log line; unusable acks are answered with an error (:mod:`notify.acks`). Raising would answer the service
with a 500, which for a user event drops the client's connection.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import azure.functions as func

from notify.acks import ack_response, answer_ack
from notify.blueprints.notifier import get_notifier
from notify.notifier import Notifier
from notify.presence import PresenceStore
from notify.realtime import RealtimeSender, get_realtime_sender
from shared.clients import get_table_client
from shared.json_input import JsonInputError, parse_json
from shared.once import process_wide
from shared.settings import get_settings
from shared.user_keys import user_id_problem

logger = logging.getLogger(__name__)
# Connection ids become table RowKeys: no / \ # ? or control characters, and a sane length.
_CONNECTION_ID = re.compile(r"[^/\\#?\x00-\x1f\x7f-\x9f]{1,256}")
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
    """Record the connection of a ``connected`` event; events without a usable user are ignored."""
    ids = _user_and_connection(_connection_context(request))
    if ids is None:
        logger.warning("connected event without a usable userId or connectionId ignored")
        return
    presence.connected(*ids)


def handle_disconnected(request: str | bytes, presence: PresenceStore) -> None:
    """Remove the connection of a ``disconnected`` event (already gone is fine)."""
    ids = _user_and_connection(_connection_context(request))
    if ids is None:
        return
    presence.disconnected(*ids)


def handle_ack(request: str | bytes, notifier: Notifier) -> dict[str, Any]:
    """Record the ack in ``data.notificationId`` for the connection's own user; answer success or an error.

    Never raises (see :mod:`notify.acks`); the answer reaches the client as a server message.
    """
    return answer_ack(request, notifier)


def sweep_presence(presence: PresenceStore, realtime: RealtimeSender, older_than_seconds: float) -> int:
    """Delete presence rows older than the age whose connection Web PubSub no longer knows."""
    return presence.sweep(older_than_seconds, realtime.connection_exists)


@process_wide
def get_presence_store() -> PresenceStore:
    """The process-wide PresenceStore (connection rows live in the users' partitions of DEVICES_TABLE)."""
    return PresenceStore(get_table_client(get_settings().devices_table))


def _load(request: str | bytes) -> dict[str, Any]:
    try:
        event = parse_json(request)
    except JsonInputError as exc:
        logger.warning("web pubsub event %s; ignored", exc)
        return {}
    return event if isinstance(event, dict) else {}


def _user_and_connection(context: dict[str, Any]) -> tuple[str, str] | None:
    user_id, connection_id = context.get("userId"), context.get("connectionId")
    if user_id_problem(user_id) is not None or not isinstance(connection_id, str):
        return None
    if not _CONNECTION_ID.fullmatch(connection_id):
        return None
    assert isinstance(user_id, str)
    return user_id, connection_id


def _connection_context(request: str | bytes) -> dict[str, Any]:
    context = _load(request).get("connectionContext")
    return context if isinstance(context, dict) else {}
