"""What one benchmark run measured, as dataclasses that turn into JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bench.request_table import GUARANTEE_FLOOR, NOTIFIER, PATHS, RequestCount
from bench.stats import LatencySummary
from bench.targets import (
    TargetResult,
    cpu_target,
    latency_target,
    own_cpu_target,
    ratio,
    requests_target,
    throughput_target,
)


@dataclass(frozen=True)
class SystemFigures:
    """One system (the notifier, or a floor) on one path."""

    throughput_per_s: float
    latency: LatencySummary
    process_cpu_ms_per_notification: float  # CPU of the whole consuming process during the drain
    delivered: int
    expected: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class PathFigures:
    """Every system on one timed path (realtime or push), plus the load that was offered.

    ``hosted_floor`` is the guarantee floor run as a Functions app in the local Functions host, like the
    notifier: the reference of the throughput, CPU and latency targets. ``guarantee_floor`` is the same code
    as a bare process (no host): a reference row, so that the host's own share stays visible.
    """

    path: str
    notifier: SystemFigures
    hosted_floor: SystemFigures
    guarantee_floor: SystemFigures
    presence_floor: SystemFigures
    producer_per_s: float
    paced_rate_per_s: float

    @property
    def throughput_ratio(self) -> float:
        """notifier / hosted guarantee floor throughput."""
        return ratio(self.notifier.throughput_per_s, self.hosted_floor.throughput_per_s)

    @property
    def p50_ratio(self) -> float:
        """notifier / hosted guarantee floor p50 latency."""
        return ratio(self.notifier.latency.p50_ms, self.hosted_floor.latency.p50_ms)

    @property
    def cpu_ratio(self) -> float:
        """notifier / hosted guarantee floor process CPU per notification."""
        return ratio(
            self.notifier.process_cpu_ms_per_notification, self.hosted_floor.process_cpu_ms_per_notification
        )

    def bare_floor_ratios(self) -> dict[str, float]:
        """notifier / bare guarantee floor: throughput, p50 and CPU (a reference, not a target)."""
        bare = self.guarantee_floor
        return {
            "throughput": ratio(self.notifier.throughput_per_s, bare.throughput_per_s),
            "p50": ratio(self.notifier.latency.p50_ms, bare.latency.p50_ms),
            "cpu": ratio(self.notifier.process_cpu_ms_per_notification, bare.process_cpu_ms_per_notification),
        }

    @property
    def host_cpu_ms(self) -> float:
        """The local Functions host's CPU per notification: hosted minus bare guarantee floor."""
        return (
            self.hosted_floor.process_cpu_ms_per_notification
            - self.guarantee_floor.process_cpu_ms_per_notification
        )

    def targets(self) -> list[TargetResult]:
        """The throughput, CPU and latency targets of this path (against the hosted guarantee floor)."""
        return [
            throughput_target(self.notifier.throughput_per_s, self.hosted_floor.throughput_per_s),
            cpu_target(
                self.notifier.process_cpu_ms_per_notification,
                self.hosted_floor.process_cpu_ms_per_notification,
            ),
            latency_target(self.notifier.latency.p50_ms, self.hosted_floor.latency.p50_ms),
        ]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with ratios and target verdicts."""
        return {
            "path": self.path,
            "notifier": self.notifier.to_dict(),
            "hosted_floor": self.hosted_floor.to_dict(),
            "guarantee_floor": self.guarantee_floor.to_dict(),
            "presence_floor": self.presence_floor.to_dict(),
            "producer_per_s": self.producer_per_s,
            "paced_rate_per_s": self.paced_rate_per_s,
            "ratios_against": "hosted_floor",  # runs before it: against guarantee_floor (the bare process)
            "throughput_ratio": self.throughput_ratio,
            "p50_ratio": self.p50_ratio,
            "cpu_ratio": self.cpu_ratio,
            "bare_floor_ratios": self.bare_floor_ratios(),
            "host_cpu_ms_per_notification": self.host_cpu_ms,
            "targets": [t.to_dict() for t in self.targets()],
        }


@dataclass(frozen=True)
class OwnCpu:
    """CPU per notification, one thread handling messages one by one (see :mod:`bench.own_cpu`)."""

    path: str
    samples: int
    own_ms: float  # self time of functions in notify/, shared/ and function_app.py (profiled)
    unprofiled_total_ms: float  # thread CPU of all code, without the profiler
    http_requests_per_notification: float = 0.0
    profiled_ms_by_category: dict[str, float] = field(default_factory=dict)  # own, azure_sdk, ...
    top: list[dict[str, Any]] = field(default_factory=list)  # [{"function", "ms"}] of own code
    floor_total_ms: float | None = None  # the guarantee floor's thread CPU, measured the same way

    @property
    def floor_ratio(self) -> float | None:
        """Thread CPU per notification, notifier / guarantee floor (one message at a time), if measured."""
        return ratio(self.unprofiled_total_ms, self.floor_total_ms) if self.floor_total_ms else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass
class BenchResult:
    """Everything a run produced."""

    command: str
    started_at: str
    machine: dict[str, Any]
    settings: dict[str, Any]
    polling_interval_ms: float
    requests: RequestCount | None = None
    paths: list[PathFigures] = field(default_factory=list)
    own_cpu: list[OwnCpu] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def targets(self) -> list[tuple[str, TargetResult]]:
        """Every target verdict, tagged with its path."""
        verdicts: list[tuple[str, TargetResult]] = []
        if self.requests is not None:
            for path in PATHS:
                notifier, floor = self.requests.row(NOTIFIER, path), self.requests.row(GUARANTEE_FLOOR, path)
                if notifier is not None and floor is not None:
                    verdicts.append((path, requests_target(notifier.total, floor.total)))
        verdicts += [(p.path, t) for p in self.paths for t in p.targets()]
        verdicts += [(c.path, own_cpu_target(c.own_ms)) for c in self.own_cpu]
        return verdicts

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the whole run."""
        return {
            "command": self.command,
            "started_at": self.started_at,
            "machine": self.machine,
            "settings": self.settings,
            "polling_interval_ms": self.polling_interval_ms,
            "requests": self.requests.to_dict() if self.requests is not None else None,
            "paths": [p.to_dict() for p in self.paths],
            "own_cpu": [c.to_dict() for c in self.own_cpu],
            "targets": [{"path": path, **t.to_dict()} for path, t in self.targets()],
            "notes": self.notes,
        }
