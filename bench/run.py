"""The benchmark's phases on a private local stack (free ports, in-memory Azurite, the real function app).

First the request count (:mod:`bench.request_count`): requests per notification at the wire on six paths
for the notifier and both floors. The Functions host listens behind the :class:`~bench.wire.WireTap`, which
holds the stack's Functions port, so that Web PubSub's events always cross it; only during the count do the
host and the floors send all their HTTP through it too.

Then per timed path (realtime, then push), in one run and against the same stack, for the notifier, the
guarantee floor as a Functions app in the local Functions host (``bench/hosted_floor/``: the reference of
the targets), the same floor as a bare process (:mod:`bench.guarantee_floor`: the host's share is the
difference) and the presence floor (:mod:`bench.presence_floor`):

1. **throughput**: N notifications are enqueued while the consumer is stopped (the notifier's host) or not
   yet started (a floor, on its own queue), then it drains them; throughput = deliveries per second between
   the first and the last delivery; the consumer process's CPU over the same time;
2. **latency**: after a few primer notifications (so no consumer starts from an idle polling back-off), M
   notifications enqueued at a steady rate (a fraction of the notifier's throughput, the same rate for
   all); latency = enqueue → client receive (realtime) or → push recorded by the Notification Hubs sink.

Then CPU per notification one message at a time (:mod:`bench.own_cpu`): the notifier's, with its own code
under a profiler, and the guarantee floor's code on the same messages, paired with it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient

from bench.clients import AckingClients
from bench.figures import BenchResult, OwnCpu, PathFigures, SystemFigures
from bench.floor_base import floor_environment
from bench.floor_process import FloorProcess, HostedFloor
from bench.producer import enqueue, plan
from bench.report import machine_description
from bench.request_count import COUNT_ACK_TIMEOUT, RequestCounter
from bench.request_table import RequestCount
from bench.stack_setup import register_devices, wait_for_presence
from bench.stats import drain_rate, latencies_ms, summarize_latencies
from bench.wire import HOST, WireTap
from devstack.functions_host.settings_loader import (
    QueueOptions,
    apply_host_json_overrides,
    load_host_json,
    load_local_settings,
)
from devstack.net import free_port
from devstack.stack import HUB, REPO_ROOT, RunningStack, StackPorts, running_stack, start_host

logger = logging.getLogger(__name__)

SETTINGS_FILE = REPO_ROOT / "local.settings.json.example"
HOST_QUEUE_PREFIX = "AzureFunctionsJobHost__extensions__queues__"
PRIMERS = 5
HOST_WORKER_THREADS = 32  # the local host's (and the Python worker's default maximum) thread pool
# The hosted guarantee floor first: its phases are the nearest in time to the notifier's, which it is the
# reference of (a shared machine's load drifts over minutes).
FLOORS = ("hosted", "guarantee", "presence")
ACKING_FLOORS = ("hosted", "guarantee")
FLOOR_NAMES = {"hosted": "hosted guarantee", "guarantee": "bare guarantee", "presence": "presence"}


@dataclass(frozen=True)
class BenchOptions:
    """The knobs of a run (see ``python -m bench --help``)."""

    notifications: int = 2000
    users: int = 100
    concurrency: int | None = None  # None: host.json's batchSize + newBatchThreshold
    ack_timeout: int = 5
    producers: int = 4
    latency_notifications: int = 300
    latency_load: float = 0.5
    profile_samples: int = 200
    count_notifications: int = 10  # per path and system in the request count
    phase_timeout: float = 180.0  # a phase gives up when nothing arrived for this long


def queue_limits(concurrency: int | None, host_json: dict[str, Any]) -> tuple[int, int]:
    """(batchSize, newBatchThreshold): host.json's, or a split of ``concurrency`` in flight at most."""
    if concurrency is None:
        options = QueueOptions.from_host_json(host_json)
        return options.batch_size, options.new_batch_threshold
    if concurrency < 2:
        raise ValueError("concurrency must be at least 2")
    batch = min(32, concurrency - concurrency // 3)
    return batch, concurrency - batch


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of a Linux process so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tap_services(stack: RunningStack) -> dict[tuple[str, int], str]:
    """Which service listens on which address of the stack (for the wire tap)."""
    azurite = stack.azurite
    return {
        (HOST, azurite.blob_port): "blob",
        (HOST, azurite.queue_port): "queue",
        (HOST, azurite.table_port): "table",
        (HOST, stack.ports.webpubsub): "webpubsub",
        (HOST, stack.ports.notification_hubs): "notificationhubs",
    }


class Bench:
    """One run on one stack; the phases below fill a :class:`BenchResult`."""

    def __init__(self, stack: RunningStack, tap: WireTap, host_port: int, options: BenchOptions,
                 values: dict[str, str], app_env: dict[str, str], batch_size: int, threshold: int,
                 polling_ms: float) -> None:
        self.stack = stack
        self.tap = tap
        self.host_port = host_port
        self.options = options
        self.values = values
        self.app_env = app_env
        self.batch_size = batch_size
        self.threshold = threshold
        self.polling_ms = polling_ms
        self.storage = stack.azurite.connection_string
        self.queue = values["NOTIFICATIONS_QUEUE"]
        self.notes: list[str] = []
        tag = uuid.uuid4().hex[:6]
        self.realtime_users = [f"bench-rt-{tag}-{i}" for i in range(options.users)]
        self.push_users = [f"bench-push-{tag}-{i}" for i in range(options.users)]
        self.clients: AckingClients | None = None
        self._last_realtime_send = 0.0

    def start_host(self, env: Mapping[str, str]) -> None:
        """(Re)start the Functions host behind the tap with ``env`` as its app settings."""
        if self.stack.functions_host is not None:
            self.stack.functions_host.stop()
        self.stack.functions_host = start_host(self.stack, env, SETTINGS_FILE, port=self.host_port)

    # ---- setup ---------------------------------------------------------------------------------------

    def count_requests(self, progress: Callable[[str], None]) -> RequestCount:
        """The request count (:mod:`bench.request_count`), on a host started for it."""
        counter = RequestCounter(self.stack, self.tap, self.values, self.app_env, self.start_host,
                                 self.options.count_notifications,
                                 min(self.options.ack_timeout, COUNT_ACK_TIMEOUT), progress)
        return counter.run()

    def setup(self) -> None:
        """Register a device per push user, connect a client per realtime user, wait for presence."""
        register_devices(self.stack, self.app_env, self.push_users)
        self.clients = AckingClients(self.stack.functions_host.url, self.values["AUTH_DEV_SECRET"],
                                     self.realtime_users)
        self.clients.connect()
        wait_for_presence(self.storage, self.values["DEVICES_TABLE"], self.realtime_users)

    def close(self) -> None:
        """Disconnect the clients."""
        if self.clients is not None:
            self.clients.close()

    # ---- completion watchers ---------------------------------------------------------------------------

    def _wait_realtime(self, ids: Sequence[str]) -> dict[str, float]:
        assert self.clients is not None
        return self.clients.wait_for(ids, self.options.phase_timeout)

    def _push_times(self) -> dict[str, float]:
        times: dict[str, float] = {}
        for push in self.stack.notification_hubs.pushes(hub=HUB):
            payload = push.get("payload")
            if isinstance(payload, dict) and "notificationId" in payload:
                stamp = datetime.strptime(push["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
                times.setdefault(str(payload["notificationId"]), stamp.timestamp())
        return times

    def _wait_push(self, ids: Sequence[str]) -> dict[str, float]:
        """Wait until every push is in the sink, or none came for the phase timeout; return their times."""
        deadline = time.monotonic() + self.options.phase_timeout
        wanted = set(ids)
        count = 0
        while True:
            times = {key: value for key, value in self._push_times().items() if key in wanted}
            if len(times) > count:
                count, deadline = len(times), time.monotonic() + self.options.phase_timeout
            if len(times) == len(wanted) or time.monotonic() > deadline:
                return times
            # Reading the sink copies every record, in the process that also runs the emulators: rarely
            # while many are expected.
            time.sleep(0.2 if len(wanted) < 100 else 1.0)

    def _waiter(self, path: str) -> Callable[[Sequence[str]], dict[str, float]]:
        return self._wait_realtime if path == "realtime" else self._wait_push

    def _users(self, path: str) -> list[str]:
        return self.realtime_users if path == "realtime" else self.push_users

    # ---- phases ------------------------------------------------------------------------------------------

    def warm_up(self) -> None:
        """A few notifications per path through the notifier (lazy clients, connection pools)."""
        for path in ("realtime", "push"):
            items = plan(self._users(path), min(20, self.options.notifications), f"warm-{path}")
            enqueue(self.storage, self.queue, items, self.options.producers)
            self._waiter(path)([item.notification_id for item in items])
        self._last_realtime_send = time.time()
        self.wait_for_deadlines()

    def wait_for_deadlines(self) -> None:
        """Let pending ack deadlines come back and be handled, so they do not load the next phase."""
        time.sleep(max(0.0, self._last_realtime_send + self.options.ack_timeout + 0.5 - time.time()))
        queue = QueueClient.from_connection_string(self.storage, self.values["DEADLINES_QUEUE"])
        deadline = time.monotonic() + self.options.ack_timeout + 60
        with contextlib.suppress(Exception):
            while time.monotonic() < deadline and queue.get_queue_properties().approximate_message_count:
                time.sleep(0.25)

    def notifier_drain(self, path: str) -> tuple[SystemFigures, float]:
        """Throughput of the notifier draining N pre-enqueued notifications; also the producer's rate."""
        items = plan(self._users(path), self.options.notifications, f"nd-{path}")
        self.stack.functions_host.stop()
        produced = enqueue(self.storage, self.queue, items, self.options.producers)
        self.start_host(self.app_env)
        pid = self.stack.functions_host.process.pid
        cpu_before = process_cpu_seconds(pid)
        done = self._waiter(path)([item.notification_id for item in items])
        cpu = process_cpu_seconds(pid) - cpu_before
        self._note_host_log(f"{path} notifier drain", 0)
        if path == "realtime":
            self._last_realtime_send = time.time()
        return _figures(produced.sent_at, done, len(items), cpu), produced.per_second

    def notifier_paced(self, path: str, rate: float) -> SystemFigures:
        """Latency of the notifier at a steady ``rate`` of notifications per second."""
        items = plan(self._users(path), self.options.latency_notifications, f"np-{path}")
        self._prime(path, self.queue)
        log_start = len(self.stack.functions_host.log_lines)
        produced = enqueue(self.storage, self.queue, items, self.options.producers, rate)
        done = self._waiter(path)([item.notification_id for item in items])
        self._note_host_log(f"{path} notifier paced", log_start)
        if path == "realtime":
            self._last_realtime_send = time.time()
        return _figures(produced.sent_at, done, len(items), cpu_s=None)

    def _floor_environment(self, records_table: str) -> dict[str, str]:
        """A floor's settings on this stack, its rows in ``records_table``."""
        return floor_environment(self.storage, self.stack.webpubsub.connection_string,
                                 self.stack.notification_hubs.connection_string, HUB,
                                 self.values["DEVICES_TABLE"], records_table)

    def _start_floor(self, kind: str, queue_name: str) -> FloorProcess | HostedFloor:
        """A floor reading ``queue_name``: a bare process, or (``hosted``) a Functions host process."""
        name = "benchfloor" + uuid.uuid4().hex[:8]
        environ = self._floor_environment(name)
        if kind == "hosted":
            # The host's settings as the notifier gets them: the stack's, and the same host.json overrides.
            overrides = {k: v for k, v in self.app_env.items() if k.startswith(HOST_QUEUE_PREFIX)}
            return HostedFloor({**environ, **self.stack.environment(), **overrides}, queue_name,
                               name + "deadlines", self.options.ack_timeout)
        options = {"concurrency": str(HOST_WORKER_THREADS), "batch-size": str(self.batch_size),
                   "new-batch-threshold": str(self.threshold), "max-polling-ms": str(self.polling_ms)}
        return FloorProcess(kind, environ, queue_name, name + "deadlines", self.options.ack_timeout, options)

    @contextlib.contextmanager
    def _floor(self, kind: str, queue_name: str) -> Iterator[FloorProcess | HostedFloor]:
        """A floor reading ``queue_name``; a guarantee floor also gets the realtime users' acks (the tap
        routes their user events to its webhook, or to its host's Web PubSub webhook)."""
        floor = self._start_floor(kind, queue_name)
        assert self.clients is not None
        start, acks_before = self.tap.mark(), self.clients.acks_sent
        if kind in ACKING_FLOORS:
            self.tap.route_events(self.realtime_users, (HOST, floor.webhook_port))
        try:
            yield floor
        finally:
            self._settle_acks(start, acks_before)
            self.tap.unroute_events(self.realtime_users)
            outcome = floor.stop()
            if outcome.get("errors"):
                self.notes.append(f"the {FLOOR_NAMES[kind]} floor made {outcome['errors']} failed attempts "
                                  f"(retried): {outcome.get('error_types', {})}")

    def _settle_acks(self, start: int, acks_before: int, timeout: float = 15.0) -> None:
        """Wait until every ack the clients sent since ``start`` was answered (at most ``timeout``)."""
        assert self.clients is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answered = sum(1 for call in self.tap.calls_since(start) if call.column == "events user.ack")
            if answered >= self.clients.acks_sent - acks_before and not self.tap.in_flight:
                return
            time.sleep(0.05)

    def _note_host_log(self, phase: str, start: int) -> None:
        """Note failed invocations (retried after the visibility timeout) and HTTP pool overflows."""
        lines = self.stack.functions_host.log_lines[start:]
        failed = sum(1 for line in lines if "(Failed," in line)
        pool_full = sum(1 for line in lines if "Connection pool is full" in line)
        if failed or pool_full:
            self.notes.append(f"{phase}: {failed} failed invocations (retried by the host), {pool_full} "
                              "'connection pool is full' warnings in the host log")

    def _clear_sink(self, path: str) -> None:
        if path == "push":  # keeps each phase's reads of the push sink small
            self.stack.notification_hubs.clear_pushes()

    def _prime(self, path: str, queue_name: str) -> None:
        """A few notifications first, so an idle consumer's polling back-off is reset as under load."""
        primers = plan(self._users(path), PRIMERS, f"prime-{path}")
        enqueue(self.storage, queue_name, primers, 1)
        self._waiter(path)([item.notification_id for item in primers])

    def _floor_queue(self) -> str:
        name = "benchfloor" + uuid.uuid4().hex[:12]
        with contextlib.suppress(ResourceExistsError):
            QueueClient.from_connection_string(self.storage, name).create_queue()
        return name

    def floor_phases(self, kind: str, path: str, rate: float) -> tuple[SystemFigures, SystemFigures]:
        """One floor process: drain N pre-enqueued notifications (throughput, CPU), then the paced run."""
        assert self.clients is not None
        self.clients.ack = kind in ACKING_FLOORS  # the presence floor has no ack handling
        self._clear_sink(path)
        items = plan(self._users(path), self.options.notifications, f"fd{kind[0]}-{path}")
        queue_name = self._floor_queue()
        produced = enqueue(self.storage, queue_name, items, self.options.producers)
        with self._floor(kind, queue_name) as floor:
            cpu_before = process_cpu_seconds(floor.pid)
            done = self._waiter(path)([item.notification_id for item in items])
            drain = _figures(produced.sent_at, done, len(items), process_cpu_seconds(floor.pid) - cpu_before)
            self._clear_sink(path)
            items = plan(self._users(path), self.options.latency_notifications, f"fp{kind[0]}-{path}")
            self._prime(path, queue_name)
            produced = enqueue(self.storage, queue_name, items, self.options.producers, rate)
            done = self._waiter(path)([item.notification_id for item in items])
        self.clients.ack = True
        return drain, _figures(produced.sent_at, done, len(items), cpu_s=None)

    def measure_path(self, path: str) -> PathFigures:
        """Every system on one path: a drain for throughput and CPU, then a paced run for latency."""
        assert self.clients is not None
        drains: dict[str, SystemFigures] = {}
        paced: dict[str, SystemFigures] = {}
        self.clients.ack = True
        self._clear_sink(path)
        logger.info("%s: notifier drain of %d", path, self.options.notifications)
        drains["notifier"], producer_rate = self.notifier_drain(path)
        rate = max(1.0, self.options.latency_load * drains["notifier"].throughput_per_s)
        self.wait_for_deadlines()
        self._clear_sink(path)
        paced["notifier"] = self.notifier_paced(path, rate)
        self.wait_for_deadlines()
        for kind in FLOORS:
            drains[kind], paced[kind] = self.floor_phases(kind, path, rate)
        self._clear_sink(path)
        self.notes.append(f"{path}: saturated (drain) latency p50 notifier "
                          f"{drains['notifier'].latency.p50_ms:.0f} ms, " + ", ".join(
            f"{FLOOR_NAMES[name]} {drains[name].latency.p50_ms:.0f} ms" for name in FLOORS)
            + " (includes the time waiting in the pre-filled queue)")

        def combined(name: str) -> SystemFigures:
            drain, steady = drains[name], paced[name]
            return SystemFigures(drain.throughput_per_s, steady.latency,
                                 drain.process_cpu_ms_per_notification, drain.delivered + steady.delivered,
                                 drain.expected + steady.expected)

        return PathFigures(path, notifier=combined("notifier"), hosted_floor=combined("hosted"),
                           guarantee_floor=combined("guarantee"), presence_floor=combined("presence"),
                           producer_per_s=producer_rate, paced_rate_per_s=rate)

    def own_cpu(self, path: str) -> OwnCpu:
        """CPU per notification on ``path``, one message at a time (child process): the notifier's, its own
        code under a profiler, and the guarantee floor's code on the same messages, paired with it."""
        samples = self.options.profile_samples
        queue_name = "benchprofile" + uuid.uuid4().hex[:12]
        items = plan(self._users(path), samples + 5, f"cpu-{path}")
        enqueue(self.storage, queue_name, items, self.options.producers)
        records = "benchfloorcpu" + uuid.uuid4().hex[:8]
        env = {**os.environ, **self.values, **self.stack.environment(), **self.app_env,
               **self._floor_environment(records),
               "PYTHONPATH": str(REPO_ROOT)}
        assert self.clients is not None
        self.clients.ack = False  # the child acks in-process, as part of the measured work
        try:
            completed = subprocess.run(
                [sys.executable, "-m", "bench.own_cpu", "--path", path, "--queue", queue_name,
                 "--count", str(samples), "--floor-deadlines", records + "deadlines",
                 "--ack-timeout", str(self.options.ack_timeout)],
                cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                timeout=self.options.phase_timeout, check=False,
            )
        finally:
            self.clients.ack = True
        if completed.returncode != 0:
            raise RuntimeError(f"own CPU measurement failed: {completed.stderr[-2000:]}")
        data = json.loads(completed.stdout.strip().splitlines()[-1])
        if data.get("failures"):
            self.notes.append(f"own CPU {path}: {len(data['failures'])} of {data['samples']} messages failed "
                              f"(the host would retry them): {sorted(set(data['failures']))[:3]}")
        if path == "realtime":
            self._last_realtime_send = time.time()
        floor = data.get("floor_total_ms")
        return OwnCpu(
            path=path,
            samples=int(data["samples"]),
            own_ms=float(data["own_ms"]),
            unprofiled_total_ms=float(data["unprofiled_total_ms"]),
            http_requests_per_notification=float(data["http_requests_per_notification"]),
            profiled_ms_by_category={k: float(v) for k, v in data["profiled_ms_by_category"].items()},
            top=list(data["top"]),
            floor_total_ms=float(floor) if floor is not None else None,
        )


def _figures(
    sent_at: dict[str, float], done: dict[str, float], expected: int, cpu_s: float | None
) -> SystemFigures:
    lat = latencies_ms(sent_at, done)
    return SystemFigures(
        throughput_per_s=drain_rate(list(done.values())),
        latency=summarize_latencies(lat or [0.0]),
        process_cpu_ms_per_notification=(cpu_s or 0.0) * 1000 / max(len(done), 1),
        delivered=len(done),
        expected=expected,
    )


def run_benchmark(options: BenchOptions, command: str,
                  progress: Callable[[str], None] = lambda _: None,
                  on_requests: Callable[[RequestCount], None] = lambda _: None,
                  requests_only: bool = False) -> BenchResult:
    """Start a private stack, count requests, run every timed phase, stop the stack; return the figures.

    ``on_requests`` gets the request count as soon as it is done; ``requests_only`` stops there.
    """
    values = load_local_settings(SETTINGS_FILE)
    host_json = load_host_json(REPO_ROOT)
    batch_size, threshold = queue_limits(options.concurrency, host_json)
    app_env = {
        "ACK_TIMEOUT_SECONDS": str(options.ack_timeout),
        # The 5-minute presence sweep is not per-notification work; keep it out of the measured phases.
        "PRESENCE_SWEEP_SCHEDULE": "0 0 0 1 1 *",
        HOST_QUEUE_PREFIX + "batchSize": str(batch_size),
        HOST_QUEUE_PREFIX + "newBatchThreshold": str(threshold),
    }
    queue_options = QueueOptions.from_host_json(apply_host_json_overrides(host_json, app_env))
    polling_ms = queue_options.max_polling_interval.total_seconds() * 1000
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    result = BenchResult(
        command=command,
        started_at=started,
        machine=machine_description(),
        settings={
            "notifications": options.notifications,
            "users": options.users,
            "concurrency": batch_size + threshold,
            "batchSize": batch_size,
            "newBatchThreshold": threshold,
            "ack_timeout_s": options.ack_timeout,
            "producers": options.producers,
            "latency_notifications": options.latency_notifications,
            "latency_load": options.latency_load,
            "profile_samples": options.profile_samples,
            "count_notifications": options.count_notifications,
        },
        polling_interval_ms=polling_ms,
    )
    progress("starting a private local stack")
    ports = StackPorts.free()
    host_port = free_port(HOST)
    # The tap holds the stack's Functions port (where Web PubSub posts events); the host listens behind it.
    with running_stack(with_host=False, ports=ports, persist=False) as stack, \
            WireTap(tap_services(stack), port=ports.functions, events_target=(HOST, host_port)) as tap:
        bench = Bench(stack, tap, host_port, options, values, app_env, batch_size, threshold, polling_ms)
        try:
            result.requests = bench.count_requests(progress)
            on_requests(result.requests)
            if requests_only:
                return result
            bench.start_host(app_env)  # from here on without the proxy: only events cross the tap
            progress(f"connecting {options.users} clients and registering {options.users} devices")
            bench.setup()
            bench.warm_up()
            for path in ("realtime", "push"):
                progress(f"{path} path")
                result.paths.append(bench.measure_path(path))
                bench.wait_for_deadlines()
            for path in ("realtime", "push"):
                progress(f"own CPU, {path}")
                result.own_cpu.append(bench.own_cpu(path))
        finally:
            bench.close()
            result.notes += bench.notes
    return result
