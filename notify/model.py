"""The notification as the whole app sees it once a queue message has been validated."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

#: Version of what clients receive (the in-app envelope, ack answers); see docs/CLIENT-PROTOCOL.md.
CLIENT_PROTOCOL_VERSION = 1


class Delivery(StrEnum):
    """Which channel(s) a notification may use."""

    AUTO = "auto"  # in-app when the user is online and acks in time, push otherwise
    REALTIME = "realtime"  # in-app only
    PUSH = "push"  # push only
    BOTH = "both"  # in-app and push; the client drops the duplicate by notificationId


@dataclass(frozen=True)
class Notification:
    """A validated notification (queue message schema v1)."""

    notification_id: str
    user_id: str
    title: str
    body: str
    type: str = "default"
    data: dict[str, Any] = field(default_factory=dict)
    delivery: Delivery = Delivery.AUTO
    ttl_seconds: int | None = None
    enqueued_at: float | None = None  # unix seconds, set by the producer; used for latency logs
    critical: bool = False  # bypasses the user's mutes and quiet hours, pushed with high priority
    inbox: bool = True  # listed in the user's inbox (False: delivered, never listed, e.g. "typing")
    traceparent: str | None = None  # W3C trace context of the producer's enqueue (one trace per notification)

    def envelope(self) -> dict[str, Any]:
        """The in-app message sent over Web PubSub (docs/CLIENT-PROTOCOL.md, "The in-app envelope")."""
        return {
            "kind": "notification",
            "protocolVersion": CLIENT_PROTOCOL_VERSION,
            "notificationId": self.notification_id,
            "title": self.title,
            "body": self.body,
            "type": self.type,
            "data": self.data,
            "inbox": self.inbox,
        }
