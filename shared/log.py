"""Structured delivery-outcome log lines that Application Insights can query.

Each outcome is one log record whose fields are both in ``extra`` (custom dimensions) and in the message
text. The user id is hashed; bodies, tokens and push channels are never logged.
"""

from __future__ import annotations

import logging

from shared.user_keys import user_hash

logger = logging.getLogger("notify.outcome")


def log_outcome(
    notification_id: str,
    user_id: str,
    channel: str,
    outcome: str,
    latency_ms: float | None = None,
    level: int = logging.INFO,
) -> None:
    """Log one delivery outcome (``channel`` realtime|push|none, ``outcome`` e.g. sent, pushed, expired)."""
    hashed = user_hash(user_id)
    latency = None if latency_ms is None else round(latency_ms, 1)
    logger.log(
        level,
        "delivery notificationId=%s userHash=%s channel=%s outcome=%s latencyMs=%s",
        notification_id,
        hashed,
        channel,
        outcome,
        latency,
        extra={
            "notificationId": notification_id,
            "userHash": hashed,
            "channel": channel,
            "outcome": outcome,
            "latencyMs": latency,
        },
    )
