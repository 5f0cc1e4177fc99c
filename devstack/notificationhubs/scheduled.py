"""Scheduled sends (``POST /{hub}/schedulednotifications``): held until their time, then fanned out like an
ordinary send to the installations that match *then*; cancellable by id until they fire. Standard tier only.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from devstack.notificationhubs.sends import SendError, SendRequest

SCHEDULE_TIME_HEADER = "ServiceBusNotification-ScheduleTime"
#: "Standard tier notification hubs support scheduling notifications up to seven days in the future."
MAX_SCHEDULE_AHEAD = timedelta(days=7)
TIERS = ("free", "basic", "standard")
#: Detail of the service's refusal on a lower tier (as reported by users; the .NET SDK raised it as
#: QuotaExceededException: "This operation is not available for your tier").
TIER_REFUSAL = "This operation is not available for your tier"


def parse_schedule_time(value: str | None, now: datetime | None = None) -> datetime:
    """The UTC time of a ``ServiceBusNotification-ScheduleTime`` header; raises SendError (400).

    SDKs send ``yyyy-MM-ddTHH:mm:ss`` in UTC without a zone (.NET, Java, the REST samples) or an ISO 8601
    instant with milliseconds and ``Z`` (the JS SDK's ``Date.toISOString()``); both are accepted.
    """
    if not value or not value.strip():
        raise SendError(400, f"The {SCHEDULE_TIME_HEADER} header is required for a scheduled notification.")
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError as exc:
        raise SendError(
            400,
            f"The {SCHEDULE_TIME_HEADER} header '{value[:60]}' is not a UTC date and time "
            "(yyyy-MM-ddTHH:mm:ss).",
        ) from exc
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    current = now or datetime.now(UTC)
    if moment - current > MAX_SCHEDULE_AHEAD:
        raise SendError(400, "A notification can be scheduled at most 7 days in the future.")
    return moment


@dataclass
class ScheduledSend:
    """One pending scheduled notification."""

    id: str
    hub: str
    send: SendRequest
    due: datetime
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    handle: asyncio.TimerHandle | None = None

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary for ``GET /_devstack/scheduled``."""
        return {
            "notificationId": self.id,
            "hub": self.hub.lower(),
            "format": self.send.format,
            "tags": self.send.tags_header,
            "scheduledTime": self.due.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        }


class Scheduler:
    """Pending scheduled sends; timers run on the server's event loop, reads are safe from any thread."""

    def __init__(self) -> None:
        self._pending: dict[str, ScheduledSend] = {}
        self._lock = threading.Lock()

    def schedule(
        self, hub: str, send: SendRequest, due: datetime, deliver: Callable[[ScheduledSend], None]
    ) -> ScheduledSend:
        """Hold ``send`` until ``due`` (at once if it is past), then call ``deliver``; runs on the loop."""
        item = ScheduledSend(id=uuid.uuid4().hex, hub=hub, send=send, due=due)
        delay = max(0.0, (due - datetime.now(UTC)).total_seconds())

        def fire() -> None:
            with self._lock:
                if self._pending.pop(item.id, None) is None:
                    return
            deliver(item)

        with self._lock:
            self._pending[item.id] = item
        item.handle = asyncio.get_running_loop().call_later(delay, fire)
        return item

    def cancel(self, hub: str, notification_id: str) -> bool:
        """Cancel a pending send of ``hub``; False when there is none (unknown, fired or cancelled)."""
        with self._lock:
            item = self._pending.get(notification_id)
            if item is None or item.hub.lower() != hub.lower():
                return False
            del self._pending[notification_id]
        if item.handle is not None:
            item.handle.cancel()
        return True

    def pending(self, hub: str | None = None) -> list[dict[str, Any]]:
        """Summaries of the pending sends (of one hub), soonest first."""
        with self._lock:
            items = [i for i in self._pending.values() if hub is None or i.hub.lower() == hub.lower()]
        return [i.describe() for i in sorted(items, key=lambda i: i.due)]
