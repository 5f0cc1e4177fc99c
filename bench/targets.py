"""The issue's targets, evaluated from a path's notifier and floor figures (pure functions)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

THROUGHPUT_RATIO_MIN = 0.9
LATENCY_FACTOR_MAX = 1.5
OWN_CPU_MS_MAX = 1.0


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


def throughput_target(notifier_per_s: float, floor_per_s: float) -> TargetResult:
    """Throughput ratio notifier / floor must be at least 0.9."""
    measured = ratio(notifier_per_s, floor_per_s)
    return TargetResult(
        "throughput ratio", measured, THROUGHPUT_RATIO_MIN, measured >= THROUGHPUT_RATIO_MIN,
        f"notifier/floor >= {THROUGHPUT_RATIO_MIN}",
    )


def latency_target(notifier_p50_ms: float, floor_p50_ms: float, polling_interval_ms: float) -> TargetResult:
    """p50 latency must not exceed 1.5 x the floor's p50 plus the configured queue polling interval."""
    limit = LATENCY_FACTOR_MAX * floor_p50_ms + polling_interval_ms
    return TargetResult(
        "p50 latency (ms)", notifier_p50_ms, limit, notifier_p50_ms <= limit,
        f"<= {LATENCY_FACTOR_MAX} x floor p50 + maxPollingInterval ({polling_interval_ms:.0f} ms)",
    )


def own_cpu_target(own_cpu_ms: float) -> TargetResult:
    """The project's own CPU per notification must stay under 1 ms."""
    return TargetResult(
        "own CPU per notification (ms)", own_cpu_ms, OWN_CPU_MS_MAX, own_cpu_ms < OWN_CPU_MS_MAX,
        f"< {OWN_CPU_MS_MAX} ms",
    )
