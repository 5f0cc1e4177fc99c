"""Percentiles and rates of a benchmark phase (pure functions)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between ranks; ValueError when empty."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return float(ordered[low])
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


@dataclass(frozen=True)
class LatencySummary:
    """Latency percentiles in milliseconds."""

    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def summarize_latencies(latencies_ms: Sequence[float]) -> LatencySummary:
    """p50/p95/p99/max of latencies in ms; ValueError when there are none."""
    return LatencySummary(
        count=len(latencies_ms),
        p50_ms=percentile(latencies_ms, 50),
        p95_ms=percentile(latencies_ms, 95),
        p99_ms=percentile(latencies_ms, 99),
        max_ms=max(latencies_ms),
    )


def latencies_ms(sent_at: Mapping[str, float], received_at: Mapping[str, float]) -> list[float]:
    """receive - send in ms for every id present in both maps (unix seconds in, ms out)."""
    return [(received_at[key] - sent) * 1000.0 for key, sent in sent_at.items() if key in received_at]


def drain_rate(completion_times: Sequence[float]) -> float:
    """Completions per second between the first and the last completion (0 when fewer than two)."""
    if len(completion_times) < 2:
        return 0.0
    span = max(completion_times) - min(completion_times)
    return (len(completion_times) - 1) / span if span > 0 else math.inf
