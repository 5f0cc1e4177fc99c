"""Fault injection: answer the next N matching requests with an error status and/or a delay."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any


class FaultSpecError(ValueError):
    """A fault description is invalid."""


@dataclass
class Fault:
    """One armed fault; ``remaining`` counts down on every request it answers."""

    status: int | None
    remaining: int
    retry_after: float | None
    delay_seconds: float
    path: str | None
    method: str | None

    def matches(self, method: str, path: str) -> bool:
        """True when this fault applies to a request with ``method`` and ``path``."""
        return (self.method is None or self.method == method.upper()) and (
            self.path is None or self.path in path
        )


def parse_fault(spec: dict[str, Any]) -> Fault:
    """Build a :class:`Fault` from ``{"status", "count", "retryAfter", "delaySeconds", "path", "method"}``."""
    if not isinstance(spec, dict):
        raise FaultSpecError("A fault must be a JSON object.")
    status = spec.get("status")
    delay = spec.get("delaySeconds", 0)
    if status is None and not delay:
        raise FaultSpecError("A fault needs a 'status' or a 'delaySeconds'.")
    if status is not None and (not isinstance(status, int) or not 400 <= status <= 599):
        raise FaultSpecError("'status' must be an HTTP error status (400-599).")
    count = spec.get("count", 1)
    if not isinstance(count, int) or count < 1:
        raise FaultSpecError("'count' must be a positive integer.")
    if not isinstance(delay, int | float) or delay < 0:
        raise FaultSpecError("'delaySeconds' must be a non-negative number.")
    retry_after = spec.get("retryAfter")
    if retry_after is not None and (not isinstance(retry_after, int | float) or retry_after < 0):
        raise FaultSpecError("'retryAfter' must be a non-negative number of seconds.")
    method = spec.get("method")
    return Fault(
        status=status,
        remaining=count,
        retry_after=retry_after,
        delay_seconds=float(delay),
        path=spec.get("path"),
        method=method.upper() if isinstance(method, str) else None,
    )


class FaultInjector:
    """The armed faults, consulted (and consumed) once per data-plane request."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> None:
        """Arm a fault; faults fire in the order they were added."""
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._faults.clear()

    def take(self, method: str, path: str) -> Fault | None:
        """Return (and count down) the first fault matching the request, or None."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
            return None

    def armed(self) -> list[dict[str, Any]]:
        """Describe the armed faults (for GET /_devstack/faults)."""
        with self._lock:
            return [
                {
                    "status": f.status,
                    "count": f.remaining,
                    "retryAfter": f.retry_after,
                    "delaySeconds": f.delay_seconds,
                    "path": f.path,
                    "method": f.method,
                }
                for f in self._faults
            ]
