"""The request count: each path's requests per notification for the notifier and both floors, at the wire.

All three systems run at once on the private stack, each with its own users, queues and records, and
every HTTP request they make goes through the :class:`~bench.wire.WireTap`: the Functions host and the
floor processes get ``HTTP_PROXY=<tap>``, the benchmark's producer enqueues through it, and Web PubSub's
event handler points at it. Each request is counted for the user it concerns (the subjects of
:mod:`bench.wire_calls`), and each user belongs to one (system, path):

* **realtime acked**: an online user whose client acks; **realtime not acked -> push**: online, with a
  device, the client never acks; **offline -> push**: a device and no connection; **offline, no devices**:
  neither; **both**: ``delivery=both`` to an online user with a device whose client acks;
* **duplicate**: the notifications of a further set of realtime-acked users are enqueued a second time
  (same notificationId) once the first copies are done; only the second copy's requests are counted.

A stage is done when every expected in-app message and push arrived, every queue message put was
deleted, every ack the clients sent was answered, nothing is in flight, and no further request
concerning a counted user came for half a second.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from bench.clients import AckingClients
from bench.floor_base import floor_environment
from bench.floor_process import FloorProcess
from bench.request_table import (
    GUARANTEE_FLOOR,
    NOTIFIER,
    PATHS,
    PRESENCE_FLOOR,
    SYSTEMS,
    PathRequests,
    RequestCount,
    tally,
)
from bench.stack_setup import register_devices, wait_for_presence
from bench.wire import WireTap
from bench.wire_calls import WireCall
from devstack.stack import HUB, RunningStack
from notify.client import NotificationClient
from shared.user_keys import user_key, user_tag

COUNT_ACK_TIMEOUT = 3  # at most: an ack is back in well under a second, waiting longer only slows the count
STAGE_TIMEOUT = 90.0
SETTLE_SECONDS = 0.5


@dataclass(frozen=True)
class CountPath:
    """What a path's users are like and what the benchmark waits for."""

    name: str
    online: bool
    acks: bool
    device: bool
    delivery: str = "auto"
    in_app: bool = False  # an in-app message is expected
    push: bool = False  # a push is expected (from the notifier and the guarantee floor)
    presence_floor_pushes: bool = False
    duplicate: bool = False


COUNT_PATHS = (
    CountPath(PATHS[0], online=True, acks=True, device=False, in_app=True),
    CountPath(PATHS[1], online=True, acks=False, device=True, in_app=True, push=True),
    CountPath(PATHS[2], online=False, acks=False, device=True, push=True, presence_floor_pushes=True),
    CountPath(PATHS[3], online=False, acks=False, device=False),
    CountPath(
        PATHS[4],
        online=True,
        acks=True,
        device=True,
        delivery="both",
        in_app=True,
        push=True,
        presence_floor_pushes=True,
    ),
    CountPath(PATHS[5], online=True, acks=True, device=False, in_app=True, duplicate=True),
)


def proxy_environment(tap_url: str) -> dict[str, str]:
    """Environment that sends a process's HTTP through the tap (nothing bypasses it)."""
    return {"HTTP_PROXY": tap_url, "http_proxy": tap_url, "NO_PROXY": "", "no_proxy": ""}


@dataclass
class Consumer:
    """One system under count: where its notifications go and the queues it reads and writes."""

    system: str
    queue: str
    queues: tuple[str, ...]
    records: str
    users: dict[str, list[str]]  # path -> user ids

    def paths_of(self) -> dict[str, str]:
        """user id -> path."""
        return {user: path for path, users in self.users.items() for user in users}


class RequestCounter:
    """Runs the count on a stack whose host sits behind ``tap`` (see the module docstring)."""

    def __init__(
        self,
        stack: RunningStack,
        tap: WireTap,
        values: Mapping[str, str],
        app_env: Mapping[str, str],
        start_host: Callable[[Mapping[str, str]], Any],
        per_path: int,
        ack_timeout: int = COUNT_ACK_TIMEOUT,
        progress: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.stack = stack
        self.ack_timeout = ack_timeout
        self.tap = tap
        self.values = values
        self.app_env = dict(app_env)
        self.start_host = start_host
        self.per_path = per_path
        self.progress = progress
        self.storage = stack.azurite.connection_string
        tag = uuid.uuid4().hex[:6]
        self.consumers = {
            NOTIFIER: Consumer(
                NOTIFIER,
                values["NOTIFICATIONS_QUEUE"],
                (values["NOTIFICATIONS_QUEUE"], values["DEADLINES_QUEUE"]),
                values["DELIVERIES_TABLE"],
                {},
            ),
            GUARANTEE_FLOOR: Consumer(
                GUARANTEE_FLOOR,
                f"countg{tag}",
                (f"countg{tag}", f"countg{tag}deadlines"),
                f"countg{tag}rows",
                {},
            ),
            PRESENCE_FLOOR: Consumer(
                PRESENCE_FLOOR, f"countp{tag}", (f"countp{tag}",), f"countp{tag}rows", {}
            ),
        }
        short = {NOTIFIER: "n", GUARANTEE_FLOOR: "g", PRESENCE_FLOOR: "p"}
        for system, consumer in self.consumers.items():
            for index, path in enumerate(COUNT_PATHS):
                consumer.users[path.name] = [f"cnt-{tag}-{short[system]}{index}-{i}" for i in range(per_path)]
        self._owners: dict[str, tuple[str, str]] = {}
        for system, consumer in self.consumers.items():
            for user, path_name in consumer.paths_of().items():
                for subject in (user, user_key(user), user_tag(user)):
                    self._owners[subject] = (system, path_name)
        self.clients: AckingClients | None = None
        self.notes: list[str] = []

    # ---- setup ---------------------------------------------------------------------------------------------

    def _users(self, predicate: Callable[[CountPath], bool], systems: Sequence[str] = SYSTEMS) -> list[str]:
        return [
            user
            for system in systems
            for path in COUNT_PATHS
            if predicate(path)
            for user in self.consumers[system].users[path.name]
        ]

    @contextlib.contextmanager
    def _floors(self) -> Iterator[dict[str, FloorProcess]]:
        """Both floor processes, with all their HTTP through the tap."""
        floors: dict[str, FloorProcess] = {}
        try:
            for system, kind in ((GUARANTEE_FLOOR, "guarantee"), (PRESENCE_FLOOR, "presence")):
                consumer = self.consumers[system]
                environ = {
                    **floor_environment(
                        self.storage,
                        self.stack.webpubsub.connection_string,
                        self.stack.notification_hubs.connection_string,
                        HUB,
                        self.values["DEVICES_TABLE"],
                        consumer.records,
                    ),
                    **proxy_environment(self.tap.url),
                }
                deadlines = consumer.queues[1] if kind == "guarantee" else None
                # wait=False: they start while the host does
                floors[system] = FloorProcess(kind, environ, consumer.queue, deadlines, self.ack_timeout,
                                              wait=False)
            yield floors
        finally:
            for floor in floors.values():
                floor.stop()

    def _setup(self, guarantee_webhook: int) -> None:
        register_devices(self.stack, self.app_env, self._users(lambda p: p.device))
        online = self._users(lambda p: p.online)
        silent = self._users(lambda p: p.online and not p.acks) + self._users(
            lambda p: p.online, (PRESENCE_FLOOR,)
        )
        self.clients = AckingClients(
            self.stack.functions_host.url, self.values["AUTH_DEV_SECRET"], online, silent
        )
        self.clients.connect()
        wait_for_presence(self.storage, self.values["DEVICES_TABLE"], online)
        self.tap.route_events(
            [u for users in self.consumers[GUARANTEE_FLOOR].users.values() for u in users],
            ("127.0.0.1", guarantee_webhook),
        )

    # ---- stages --------------------------------------------------------------------------------------------

    def _enqueue(self, duplicates: bool) -> tuple[list[str], list[str]]:
        """Enqueue the stage's notifications through the tap; return the ids expected in-app and pushed."""
        in_app: list[str] = []
        pushed: list[str] = []
        for system, consumer in self.consumers.items():
            queue = QueueClient.from_connection_string(
                self.storage,
                consumer.queue,
                proxies={"http": self.tap.url},
                message_encode_policy=TextBase64EncodePolicy(),
            )
            producer = NotificationClient(queue)
            for path in COUNT_PATHS:
                if duplicates and not path.duplicate:
                    continue
                for user in consumer.users[path.name]:
                    notification_id = f"{user}-n"
                    producer.send(
                        user,
                        "Count",
                        "request count",
                        delivery=path.delivery,
                        notification_id=notification_id,
                    )
                    if duplicates:
                        continue
                    if path.in_app:
                        in_app.append(notification_id)
                    if path.push and (system != PRESENCE_FLOOR or path.presence_floor_pushes):
                        pushed.append(notification_id)
        return in_app, pushed

    def _stage(self, name: str, duplicates: bool) -> tuple[int, int]:
        assert self.clients is not None
        start, acks_before = self.tap.mark(), self.clients.acks_sent
        in_app, pushed = self._enqueue(duplicates)
        deadline = time.monotonic() + STAGE_TIMEOUT
        got = self.clients.wait_for(in_app, STAGE_TIMEOUT)
        while len(got) < len(in_app) or len(self._pushed(pushed)) < len(pushed):
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"request count, {name}: {len(in_app) - len(got)} in-app messages and "
                    f"{len(pushed) - len(self._pushed(pushed))} pushes did not arrive"
                )
            time.sleep(0.1)
            got = self.clients.received_ids(in_app)
        while True:
            waiting = self._waiting_for(self.tap.calls_since(start), self.clients.acks_sent - acks_before)
            if not waiting:
                before = len(self._counted(self.tap.calls_since(start)))
                time.sleep(SETTLE_SECONDS)
                calls = self.tap.calls_since(start)
                if len(self._counted(calls)) == before and not self._waiting_for(
                    calls, self.clients.acks_sent - acks_before
                ):
                    return start, self.tap.mark()
                continue
            if time.monotonic() > deadline:
                raise RuntimeError(f"request count, {name}: still waiting for {waiting}")
            time.sleep(0.1)

    def _pushed(self, ids: Sequence[str]) -> set[str]:
        wanted = set(ids)
        found = set()
        for push in self.stack.notification_hubs.pushes(hub=HUB):
            payload = push.get("payload")
            if isinstance(payload, dict) and payload.get("notificationId") in wanted:
                found.add(str(payload["notificationId"]))
        return found

    def _counted(self, calls: Sequence[WireCall]) -> list[WireCall]:
        return [c for c in calls if any(s in self._owners for s in c.subjects)]

    def _waiting_for(self, calls: Sequence[WireCall], acks_sent: int) -> str:
        """What the stage still waits for ('' when nothing)."""
        put = {m for c in calls if c.column == "queue put" and c.status < 300 for m in c.message_ids}
        deleted = {m for c in calls if c.column == "queue delete" and c.status < 300 for m in c.message_ids}
        acks = sum(1 for c in calls if c.column == "events user.ack")
        if put - deleted:
            return f"{len(put - deleted)} queue messages to be handled"
        if acks < acks_sent:
            return f"{acks_sent - acks} acks to be answered"
        if self.tap.in_flight:
            return f"{self.tap.in_flight} requests in flight"
        return ""

    # ---- the count ---------------------------------------------------------------------------------------

    def run(self) -> RequestCount:
        """Start the floors and the host behind the tap, run both stages, and tally the calls."""
        began = time.monotonic()
        host_env = {
            **self.app_env,
            "ACK_TIMEOUT_SECONDS": str(self.ack_timeout),
            **proxy_environment(self.tap.url),
        }
        self.progress(f"request count: {self.per_path} notifications per path and system")
        with self._floors() as floors:
            self.start_host(host_env)
            for floor in floors.values():
                floor.wait_ready()
            try:
                self._setup(floors[GUARANTEE_FLOOR].webhook_port)
                first = self._stage("first copies", duplicates=False)
                second = self._stage("duplicates", duplicates=True)
            finally:
                if self.clients is not None:
                    self.clients.close()
                self.tap.unroute_events(self._owners)
        return self._result(first, second, time.monotonic() - began)

    def _result(self, first: tuple[int, int], second: tuple[int, int], seconds: float) -> RequestCount:
        calls = self.tap.calls
        duplicate_path = PATHS[5]

        def first_owner(subject: str) -> tuple[str, str] | None:
            owned = self._owners.get(subject)
            return owned if owned is not None and owned[1] != duplicate_path else None

        def second_owner(subject: str) -> tuple[str, str] | None:
            owned = self._owners.get(subject)
            return owned if owned is not None and owned[1] == duplicate_path else None

        counts, replies, idle = tally(calls[first[0] : first[1]], first_owner)
        duplicate_counts, duplicate_replies, _ = tally(calls[second[0] : second[1]], second_owner)
        counts.update(duplicate_counts)
        replies.update(duplicate_replies)
        result = RequestCount(self.per_path, self.ack_timeout, seconds=seconds, notes=self.notes)
        for path in PATHS:
            for system in SYSTEMS:
                result.rows.append(
                    PathRequests(system, path, self.per_path, dict(counts.get((system, path), {})),
                                 replies[(system, path)])
                )
        result.idle_polls = dict(idle)
        failed = [
            c
            for c in calls[first[0] : second[1]]
            if c.status >= 500 and any(s in self._owners for s in c.subjects)
        ]
        if failed:
            result.notes.append(
                f"{len(failed)} counted calls answered 5xx (retried and counted): "
                f"{sorted({c.column for c in failed})}"
            )
        return result
