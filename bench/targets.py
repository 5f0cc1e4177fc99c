"""The issue's targets, each against the guarantee floor of the same run (pure functions).

The timed targets are against the guarantee floor as a Functions app in the local Functions host (the
hosted floor), which pays the host's per-invocation work as the notifier does; the request count is the
bare floor process's (the same SDK calls):

* requests per notification: the notifier makes no more than the guarantee floor, on every path;
* throughput (drain) at least 0.9 x the hosted guarantee floor's;
* CPU per notification of the consuming process at most 1.1 x the hosted guarantee floor's;
* p50 latency (paced) at most 1.5 x the hosted guarantee floor's; both read their own queue with the same
  host, so no allowance for the queue hop is needed;
* the project's own CPU per notification (profiled, one thread) under 1 ms.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

THROUGHPUT_RATIO_MIN = 0.9
CPU_RATIO_MAX = 1.1
LATENCY_RATIO_MAX = 1.5
OWN_CPU_MS_MAX = 1.0
REFERENCE = "hosted guarantee floor"  # the floor the timed targets compare with


@dataclass(frozen=True)
class TargetResult:
    """One target: what was measured, the limit, and whether the measurement meets it."""

    name: str
    measured: float
    limit: float
    met: bool
    rule: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, or 0.0 when the denominator is not positive."""
    return numerator / denominator if denominator > 0 else 0.0


def requests_target(notifier: float, floor: float) -> TargetResult:
    """Requests per notification must not exceed the guarantee floor's."""
    return TargetResult(
        "requests per notification", notifier, floor, notifier <= floor + 1e-9, "<= guarantee floor"
    )


def throughput_target(notifier_per_s: float, floor_per_s: float) -> TargetResult:
    """Throughput ratio notifier / hosted guarantee floor must be at least 0.9."""
    measured = ratio(notifier_per_s, floor_per_s)
    return TargetResult(
        "throughput ratio",
        measured,
        THROUGHPUT_RATIO_MIN,
        measured >= THROUGHPUT_RATIO_MIN,
        f"notifier/{REFERENCE} >= {THROUGHPUT_RATIO_MIN}",
    )


def cpu_target(notifier_ms: float, floor_ms: float) -> TargetResult:
    """CPU per notification of the consuming process must be at most 1.1 x the hosted guarantee floor's."""
    measured = ratio(notifier_ms, floor_ms)
    met = floor_ms > 0 and measured <= CPU_RATIO_MAX
    return TargetResult(
        "CPU ratio",
        measured,
        CPU_RATIO_MAX,
        met,
        f"process CPU per notification, notifier/{REFERENCE} <= {CPU_RATIO_MAX}",
    )


def latency_target(notifier_p50_ms: float, floor_p50_ms: float) -> TargetResult:
    """p50 latency must not exceed 1.5 x the hosted guarantee floor's p50."""
    limit = LATENCY_RATIO_MAX * floor_p50_ms
    return TargetResult(
        "p50 latency (ms)",
        notifier_p50_ms,
        limit,
        floor_p50_ms > 0 and notifier_p50_ms <= limit,
        f"<= {LATENCY_RATIO_MAX} x {REFERENCE} p50",
    )


def own_cpu_target(own_cpu_ms: float) -> TargetResult:
    """The project's own CPU per notification must stay under 1 ms."""
    return TargetResult(
        "own CPU per notification (ms)",
        own_cpu_ms,
        OWN_CPU_MS_MAX,
        own_cpu_ms < OWN_CPU_MS_MAX,
        f"< {OWN_CPU_MS_MAX} ms",
    )
