"""The benchmark's phases on a private local stack (free ports, in-memory Azurite, the real function app).

Per path (realtime, then push), in one run and against the same stack:

1. **notifier, throughput**: the host is stopped, N notifications are enqueued, the host is started and
   drains the queue; throughput = deliveries per second between the first and the last delivery;
2. **floor, throughput**: the same N on a private queue, drained by ``python -m bench.floor`` with the host's
   concurrency and polling;
3. **notifier, latency** and 4. **floor, latency**: after a few primer notifications (so neither consumer
   starts from an idle polling back-off), M notifications enqueued at a steady rate (a fraction of the
   notifier's throughput, the same rate for both); latency = enqueue → client receive (realtime) or
   → push recorded by the Notification Hubs sink (push).

Then the notifier's own CPU per notification is measured under a profiler (:mod:`bench.own_cpu`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient
from azure.storage.queue import QueueClient

from bench.clients import AckingClients
from bench.figures import BenchResult, OwnCpu, PathFigures, SystemFigures
from bench.floor import READY_LINE, floor_environment
from bench.producer import enqueue, plan
from bench.report import machine_description
from bench.stats import drain_rate, latencies_ms, summarize_latencies
from devstack.demo import register_device, target_for_stack
from devstack.functions_host.settings_loader import (
    QueueOptions,
    apply_host_json_overrides,
    load_host_json,
    load_local_settings,
)
from devstack.stack import HUB, REPO_ROOT, RunningStack, StackPorts, running_stack, start_host
from shared.user_keys import user_key

logger = logging.getLogger(__name__)

SETTINGS_FILE = REPO_ROOT / "local.settings.json.example"
HOST_QUEUE_PREFIX = "AzureFunctionsJobHost__extensions__queues__"
PRIMERS = 5


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
    phase_timeout: float = 180.0


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


class Bench:
    """One run on one stack; :meth:`run` returns the figures."""

    def __init__(self, stack: RunningStack, options: BenchOptions, values: dict[str, str],
                 app_env: dict[str, str], batch_size: int, threshold: int, polling_ms: float) -> None:
        self.stack = stack
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

    # ---- setup ---------------------------------------------------------------------------------------

    def setup(self) -> None:
        """Register a device per push user, connect a client per realtime user, wait for presence."""
        secret = self.values["AUTH_DEV_SECRET"]
        url = self.stack.functions_host.url
        target = target_for_stack(self.stack, self.app_env)

        def register(user_id: str) -> None:
            # APNs: the sink's record of an APNs push carries notificationId at the payload's top level.
            register_device(target, user_id, f"dev-{uuid.uuid4().hex[:16]}", platform="apns")

        _in_threads(register, self.push_users, 8)
        self.clients = AckingClients(url, secret, self.realtime_users)
        self.clients.connect()
        presence = TableClient.from_connection_string(self.storage, self.values["PRESENCE_TABLE"])
        deadline = time.monotonic() + 60
        waiting = set(self.realtime_users)
        while waiting and time.monotonic() < deadline:
            with contextlib.suppress(ResourceNotFoundError):  # the host creates the table on first use
                waiting = {user for user in waiting if not _has_presence(presence, user)}
            if waiting:
                time.sleep(0.2)
        if waiting:
            raise RuntimeError(f"{len(waiting)} users have no presence row after 60 s")

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
        deadline = time.monotonic() + self.options.phase_timeout
        wanted = set(ids)
        while True:
            times = {key: value for key, value in self._push_times().items() if key in wanted}
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
        self.stack.functions_host = start_host(self.stack, self.app_env, SETTINGS_FILE)
        pid = self.stack.functions_host.process.pid
        cpu_before = process_cpu_seconds(pid)
        done = self._waiter(path)([item.notification_id for item in items])
        cpu = process_cpu_seconds(pid) - cpu_before
        self._note_host_log(f"{path} notifier drain", 0)
        if path == "realtime":
            self._last_realtime_send = time.time()
        figures = SystemFigures(
            throughput_per_s=drain_rate(list(done.values())),
            latency=summarize_latencies(latencies_ms(produced.sent_at, done) or [0.0]),
            process_cpu_ms_per_notification=cpu * 1000 / max(len(done), 1),
            delivered=len(done),
            expected=len(items),
        )
        return figures, produced.per_second

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

    @contextlib.contextmanager
    def _floor(self, path: str, queue_name: str, count: int) -> Iterator[Callable[[], dict[str, Any]]]:
        env = {
            **os.environ,
            **floor_environment(self.storage, self.stack.webpubsub.connection_string,
                                self.stack.notification_hubs.connection_string, HUB,
                                self.values["PRESENCE_TABLE"], "benchfloor" + uuid.uuid4().hex[:8]),
            "PYTHONPATH": str(REPO_ROOT),
        }
        command = [sys.executable, "-m", "bench.floor", "--path", path, "--queue", queue_name,
                   "--count", str(count), "--concurrency", str(self.batch_size + self.threshold),
                   "--batch-size", str(self.batch_size), "--new-batch-threshold", str(self.threshold),
                   "--max-polling-ms", str(self.polling_ms)]
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True)
        try:
            assert process.stdout is not None
            if process.stdout.readline().strip() != READY_LINE:
                raise RuntimeError("the floor process did not start")

            def result() -> dict[str, Any]:
                assert process.stdout is not None
                line = process.stdout.readline()
                process.wait(30)
                return dict(json.loads(line)) if line else {}

            yield result
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
            if process.stdout is not None:
                process.stdout.close()

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

    def floor_drain(self, path: str) -> SystemFigures:
        """Throughput of the floor draining N pre-enqueued notifications."""
        items = plan(self._users(path), self.options.notifications, f"fd-{path}")
        queue_name = self._floor_queue()
        produced = enqueue(self.storage, queue_name, items, self.options.producers)
        with self._floor(path, queue_name, len(items)) as result:
            done = self._waiter(path)([item.notification_id for item in items])
            outcome = result() if len(done) == len(items) else {}
        self._note_floor_errors(outcome)
        figures = _figures(produced.sent_at, done, len(items), outcome.get("cpu_s"))
        return SystemFigures(drain_rate(list(done.values())), figures.latency,
                             figures.process_cpu_ms_per_notification, figures.delivered, figures.expected)

    def floor_paced(self, path: str, rate: float) -> SystemFigures:
        """Latency of the floor at a steady ``rate``."""
        items = plan(self._users(path), self.options.latency_notifications, f"fp-{path}")
        queue_name = self._floor_queue()
        with self._floor(path, queue_name, len(items) + PRIMERS) as result:
            self._prime(path, queue_name)
            produced = enqueue(self.storage, queue_name, items, self.options.producers, rate)
            done = self._waiter(path)([item.notification_id for item in items])
            outcome = result() if len(done) == len(items) else {}
        self._note_floor_errors(outcome)
        return _figures(produced.sent_at, done, len(items), cpu_s=None)

    def _note_floor_errors(self, outcome: dict[str, Any]) -> None:
        if outcome.get("errors"):
            self.notes.append(f"the floor reported {outcome['errors']} failed messages")

    def measure_path(self, path: str) -> PathFigures:
        """Both systems on one path: drains for throughput, paced runs for latency."""
        assert self.clients is not None
        self.clients.ack = True
        self._clear_sink(path)
        logger.info("%s: notifier drain of %d", path, self.options.notifications)
        notifier, producer_rate = self.notifier_drain(path)
        self.wait_for_deadlines()
        self.clients.ack = False  # the floor has no ack handling: acks would only load the host
        self._clear_sink(path)
        logger.info("%s: floor drain of %d", path, self.options.notifications)
        floor = self.floor_drain(path)
        rate = max(1.0, self.options.latency_load * notifier.throughput_per_s)
        self.clients.ack = True
        self._clear_sink(path)
        logger.info("%s: notifier paced, %d at %.0f/s", path, self.options.latency_notifications, rate)
        notifier_paced = self.notifier_paced(path, rate)
        self.wait_for_deadlines()
        self.clients.ack = False
        self._clear_sink(path)
        logger.info("%s: floor paced, %d at %.0f/s", path, self.options.latency_notifications, rate)
        floor_paced = self.floor_paced(path, rate)
        self.clients.ack = True
        self._clear_sink(path)
        self.notes.append(
            f"{path}: saturated (drain) latency p50 notifier {notifier.latency.p50_ms:.0f} ms, "
            f"floor {floor.latency.p50_ms:.0f} ms (includes the time waiting in the pre-filled queue)"
        )
        return PathFigures(
            path=path,
            notifier=SystemFigures(notifier.throughput_per_s, notifier_paced.latency,
                                   notifier.process_cpu_ms_per_notification, notifier.delivered
                                   + notifier_paced.delivered, notifier.expected + notifier_paced.expected),
            floor=SystemFigures(floor.throughput_per_s, floor_paced.latency,
                                floor.process_cpu_ms_per_notification,
                                floor.delivered + floor_paced.delivered,
                                floor.expected + floor_paced.expected),
            producer_per_s=producer_rate,
            paced_rate_per_s=rate,
        )

    def own_cpu(self, path: str) -> OwnCpu:
        """The notifier's own CPU per notification on ``path`` (child process under a profiler)."""
        samples = self.options.profile_samples
        queue_name = "benchprofile" + uuid.uuid4().hex[:12]
        items = plan(self._users(path), samples + 5, f"cpu-{path}")
        enqueue(self.storage, queue_name, items, self.options.producers)
        env = {**os.environ, **self.values, **self.stack.environment(), **self.app_env,
               "PYTHONPATH": str(REPO_ROOT)}
        assert self.clients is not None
        self.clients.ack = False  # the child acks in-process, as part of the measured work
        try:
            completed = subprocess.run(
                [sys.executable, "-m", "bench.own_cpu", "--path", path, "--queue", queue_name,
                 "--count", str(samples)],
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
        return OwnCpu(
            path=path,
            samples=int(data["samples"]),
            own_ms=float(data["own_ms"]),
            unprofiled_total_ms=float(data["unprofiled_total_ms"]),
            http_requests_per_notification=float(data["http_requests_per_notification"]),
            profiled_ms_by_category={k: float(v) for k, v in data["profiled_ms_by_category"].items()},
            top=list(data["top"]),
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


def _has_presence(presence: TableClient, user_id: str) -> bool:
    rows = presence.query_entities(
        "PartitionKey eq @pk", parameters={"pk": user_key(user_id)}, select=["RowKey"]
    )
    return next(iter(rows), None) is not None


def _in_threads(work: Callable[[str], None], items: Sequence[str], threads: int) -> None:
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            for item in items[index::threads]:
                work(item)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]


def run_benchmark(options: BenchOptions, command: str,
                  progress: Callable[[str], None] = lambda _: None) -> BenchResult:
    """Start a private stack, run every phase, stop the stack; return the figures."""
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
        },
        polling_interval_ms=polling_ms,
    )
    progress("starting a private local stack")
    with running_stack(ports=StackPorts.free(), persist=False, app_env=app_env,
                       settings_file=SETTINGS_FILE) as stack:
        bench = Bench(stack, options, values, app_env, batch_size, threshold, polling_ms)
        try:
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
