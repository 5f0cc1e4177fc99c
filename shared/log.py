"""Structured delivery-outcome log lines that Application Insights can query.

Each outcome is one log record whose fields are both in ``extra`` (custom dimensions) and in the message
text. The user id is hashed; bodies, tokens and push channels are never logged.
"""

from __future__ import annotations

import logging

from shared.user_keys import user_hash

logger = logging.getLogger("notify.outcome")

#: SDK loggers whose INFO/DEBUG lines carry request URLs, and URLs carry user ids (Web PubSub
#: ``/users/{userId}/:send``, table keys). The Functions host forwards INFO lines to Application Insights,
#: so these speak only from WARNING on.
URL_LOGGERS = ("azure.core.pipeline.policies.http_logging_policy", "urllib3.connectionpool")


def quiet_url_loggers() -> None:
    """Raise the SDK loggers that print request URLs to WARNING (idempotent)."""
    for name in URL_LOGGERS:
        sdk_logger = logging.getLogger(name)
        if sdk_logger.level < logging.WARNING:
            sdk_logger.setLevel(logging.WARNING)


def log_outcome(
    notification_id: str,
    user_id: str,
    channel: str,
    outcome: str,
    latency_ms: float | None = None,
    level: int = logging.INFO,
    detail: str = "",
    nh_notification_id: str = "",
) -> None:
    """Log one delivery outcome (``channel`` realtime|push|retract|none, ``outcome`` e.g. sent, pushed).

    ``detail`` says more where an outcome has more to say: the rule that suppressed, the deferral's time.
    """
    hashed = user_hash(user_id)
    latency = None if latency_ms is None else round(latency_ms, 1)
    extra: dict[str, object] = {
        "notificationId": notification_id,
        "userHash": hashed,
        "channel": channel,
        "outcome": outcome,
        "latencyMs": latency,
    }
    message = "delivery notificationId=%s userHash=%s channel=%s outcome=%s latencyMs=%s"
    args: tuple[object, ...] = (notification_id, hashed, channel, outcome, latency)
    if detail:
        extra["detail"] = detail
        message += " detail=%s"
        args += (detail,)
    if nh_notification_id:  # what Notification Hubs' per-message telemetry is looked up by
        extra["nhNotificationId"] = nh_notification_id
        message += " nhNotificationId=%s"
        args += (nh_notification_id,)
    logger.log(level, message, *args, extra=extra)
