"""The push sink: every push the emulator would hand to APNs/FCM/... is recorded here for tests to read."""

from __future__ import annotations

import copy
import threading
import time
from typing import Any


class PushSink:
    """Thread-safe list of recorded pushes, filterable, with a blocking wait for tests."""

    def __init__(self) -> None:
        self._pushes: list[dict[str, Any]] = []
        self._changed = threading.Condition()

    def record(self, push: dict[str, Any]) -> None:
        """Append one push record."""
        with self._changed:
            self._pushes.append(push)
            self._changed.notify_all()

    @staticmethod
    def _matches(
        push: dict[str, Any],
        hub: str | None,
        installation_id: str | None,
        tag: str | None,
        notification_id: str | None,
        outcome: str | None,
    ) -> bool:
        return (
            (hub is None or push["hub"] == hub.lower())
            and (installation_id is None or push["installationId"] == installation_id)
            and (tag is None or tag in push["tags"])
            and (notification_id is None or push["notificationId"] == notification_id)
            and (outcome is None or push["outcome"] == outcome)
        )

    def pushes(
        self,
        hub: str | None = None,
        installation_id: str | None = None,
        tag: str | None = None,
        notification_id: str | None = None,
        outcome: str | None = None,
    ) -> list[dict[str, Any]]:
        """Return copies of the recorded pushes that match every given filter, oldest first."""
        with self._changed:
            return [
                copy.deepcopy(push)
                for push in self._pushes
                if self._matches(push, hub, installation_id, tag, notification_id, outcome)
            ]

    def clear(self, hub: str | None = None) -> int:
        """Forget recorded pushes (all, or one hub's); return how many were removed."""
        with self._changed:
            before = len(self._pushes)
            if hub is None:
                self._pushes.clear()
            else:
                self._pushes = [push for push in self._pushes if push["hub"] != hub.lower()]
            return before - len(self._pushes)

    def wait_for(self, count: int, timeout: float = 10.0, **filters: Any) -> list[dict[str, Any]]:
        """Block until at least ``count`` pushes match ``filters``; raise TimeoutError with what was seen."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = self.pushes(**filters)
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"expected {count} push(es) matching {filters}, saw {len(found)} "
                        f"within {timeout:.1f} s"
                    )
                self._changed.wait(remaining)
