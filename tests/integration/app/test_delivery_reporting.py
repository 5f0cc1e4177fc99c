"""What a backend and an operator learn about each delivery, over the wire: the timeline in the delivery
row, the webhook queue's messages, and OpenTelemetry spans and metrics (in-memory exporters).

The producer is the real NotificationClient on an Azurite queue; its messages are taken from the queue and
handed to the notifier as the host would (with their dequeue count), against the Web PubSub and
Notification Hubs emulators.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableServiceClient
from azure.functions.queue import QueueMessage
from azure.messaging.webpubsubservice import WebPubSubServiceClient
from azure.storage.queue import (
    BinaryBase64DecodePolicy,
    BinaryBase64EncodePolicy,
    QueueClient,
    TextBase64EncodePolicy,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from devstack.azurite import RunningAzurite
from devstack.notificationhubs.emulator import RunningNotificationHubs
from devstack.webpubsub.running import RunningWebPubSub
from notify.blueprints.notifier import process_deadline_message, process_notification_message
from notify.blueprints.presence import handle_ack, handle_connected
from notify.client import NotificationClient
from notify.deliveries import DeliveryStore
from notify.delivery_machine import Status, TimelineEntry
from notify.devices import DeviceRegistry
from notify.notifier import Notifier
from notify.poison import PoisonQueue
from notify.presence import PresenceStore
from notify.push import PushSender
from notify.realtime import RealtimeSender
from notify.telemetry import DeliveryTelemetry
from notify.user_state import UserDirectory
from notify.webhooks import WebhookOutbox
from shared.notification_hubs import NotificationHubsClient
from shared.retry import RetryPolicy
from shared.user_keys import user_hash
from tests.integration.app.test_notifier import UserSocket, system_event, take_deadline_from

pytestmark = pytest.mark.integration
RETRY = RetryPolicy(attempts=2, base_delay=0.01, budget_seconds=2)


@dataclass
class Reporting:
    producer: NotificationClient
    notifications: QueueClient
    notifier: Notifier
    deliveries: DeliveryStore
    presence: PresenceStore
    devices: DeviceRegistry
    wps: WebPubSubServiceClient
    deadlines: QueueClient
    poison: QueueClient
    webhook_queue: QueueClient
    nh: RunningNotificationHubs
    hub: str
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    notifier_args: dict[str, Any]

    def notifier_with(self, **overrides: Any) -> Notifier:
        """A notifier like the fixture's, with some arguments changed."""
        return Notifier(**{**self.notifier_args, **overrides})

    def send(self, user_id: str, **kwargs: Any) -> str:
        return self.producer.send(user_id, "Hello", "World", **kwargs)

    def deliver_next(self, dequeue_count: int = 1) -> None:
        """Take the next message off the notifications queue and run the trigger's logic on it."""
        body, message_id = self.take_next()
        self.redeliver(body, message_id, dequeue_count)

    def take_next(self) -> tuple[bytes, str]:
        [message] = self.notifications.receive_messages(max_messages=1)
        self.notifications.delete_message(message)
        return base64.b64decode(message.content), message.id

    def redeliver(self, body: bytes, message_id: str, dequeue_count: int) -> None:
        """What the host does with a message it delivers for the ``dequeue_count``-th time."""
        message = QueueMessage(id=message_id, body=body, dequeue_count=dequeue_count)  # type: ignore[no-untyped-call]
        process_notification_message(message, self.notifier, self.poison)

    def timeline(self, user_id: str, notification_id: str) -> list[TimelineEntry]:
        record = self.deliveries.get(user_id, notification_id)
        assert record is not None
        return list(record.state.timeline)

    def connect(self, user_id: str) -> UserSocket:
        sock = UserSocket(self.wps, user_id)
        handle_connected(system_event("connected", user_id, sock.connection_id), self.presence)
        return sock

    def register_device(self, user_id: str) -> None:
        self.devices.register(user_id, "d-" + uuid.uuid4().hex, "fcmv1", "fcm-token-" + uuid.uuid4().hex)

    def webhook_messages(self) -> list[dict[str, Any]]:
        """Every message on the webhook queue, in order (waiting for follow-ups, held back a second)."""
        found = []
        give_up = time.monotonic() + 10
        while self.webhook_queue.get_queue_properties().approximate_message_count:
            assert time.monotonic() < give_up, "a webhook message never became visible"
            for message in self.webhook_queue.receive_messages(max_messages=32):
                found.append(json.loads(base64.b64decode(message.content)))
                self.webhook_queue.delete_message(message)
            time.sleep(0.1)
        return found

    def spans_of(self, notification_id: str) -> list[ReadableSpan]:
        return [
            s for s in self.spans.get_finished_spans()
            if (s.attributes or {}).get("notify.notification_id") == notification_id
        ]

    def metric_points(self) -> dict[str, list[tuple[dict[str, Any], Any]]]:
        """instrument name -> [(attributes, data point)] of everything recorded so far."""
        found: dict[str, list[tuple[dict[str, Any], Any]]] = {}
        data = self.metrics.get_metrics_data()
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        found.setdefault(metric.name, []).append((dict(point.attributes or {}), point))
        return found


@pytest.fixture
def reporting(
    azurite: RunningAzurite,
    webpubsub_emulator: RunningWebPubSub,
    notification_hubs_emulator: RunningNotificationHubs,
    nh_hub: str,
    unique_name: Callable[[str], str],
) -> Iterator[Reporting]:
    conn = azurite.connection_string
    tables = TableServiceClient.from_connection_string(conn)
    table_names = [unique_name("deliveries"), unique_name("devices")]
    deliveries_table, devices_table = (tables.create_table(name) for name in table_names)

    def text_queue(name: str) -> QueueClient:
        encode = TextBase64EncodePolicy()
        client = QueueClient.from_connection_string(conn, name, message_encode_policy=encode)
        client.create_queue()
        return client

    notifications = text_queue(unique_name("notifications"))
    deadlines = text_queue(unique_name("deadlines"))
    webhook_queue = text_queue(unique_name("webhooks"))
    poison = QueueClient.from_connection_string(
        conn, notifications.queue_name + "-poison",
        message_encode_policy=BinaryBase64EncodePolicy(), message_decode_policy=BinaryBase64DecodePolicy(),
    )
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    telemetry = DeliveryTelemetry(tracer_provider, MeterProvider(metric_readers=[reader]))
    wps = WebPubSubServiceClient.from_connection_string(
        webpubsub_emulator.connection_string, hub=unique_name("hub"), retry_total=0
    )
    nh_client = NotificationHubsClient(notification_hubs_emulator.connection_string, nh_hub, retry=RETRY)
    deliveries = DeliveryStore(deliveries_table)
    presence = PresenceStore(devices_table)  # connection rows live in the users' partitions there
    devices = DeviceRegistry(devices_table, nh_client)
    notifier_args: dict[str, Any] = {
        "deliveries": deliveries,
        "users": UserDirectory(devices_table),
        "realtime": RealtimeSender(wps),
        "push": PushSender(nh_client),
        "deadline_queue": deadlines,
        "ack_timeout_seconds": 1,
        "retry": RETRY,
        "recheck_queue": notifications,
        "telemetry": telemetry,
        "events": WebhookOutbox(webhook_queue),
    }
    notifier = Notifier(**notifier_args)
    producer = NotificationClient(notifications, telemetry=telemetry)
    try:
        yield Reporting(
            producer, notifications, notifier, deliveries, presence, devices, wps, deadlines, poison,
            webhook_queue, notification_hubs_emulator, nh_hub, spans, reader, notifier_args,
        )
    finally:
        nh_client.close()
        wps.close()
        for queue in (notifications, deadlines, webhook_queue, poison):
            with contextlib.suppress(ResourceNotFoundError):
                queue.delete_queue()
        for name in table_names:
            tables.delete_table(name)


def names(timeline: list[TimelineEntry]) -> list[str]:
    return [entry.name for entry in timeline]


def acked_path(reporting: Reporting) -> tuple[str, str]:
    """User online, the client acks, the deadline finds it acked; returns (notificationId, connectionId)."""
    reporting.register_device("ra")
    sock = reporting.connect("ra")
    try:
        notification_id = reporting.send("ra")
        reporting.deliver_next()
        ack = system_event("ack", "ra", sock.connection_id, {"notificationId": notification_id})
        handle_ack(ack, reporting.notifier)
        process_deadline_message(take_deadline_from(reporting.deadlines), reporting.notifier)
        return notification_id, sock.connection_id
    finally:
        sock.close()


def test_acked_path_timeline(reporting: Reporting) -> None:
    notification_id, connection_id = acked_path(reporting)
    timeline = reporting.timeline("ra", notification_id)
    assert names(timeline) == ["accepted", "claim", "realtime-sent", "acked"]
    assert [e.status for e in timeline] == ["accepted", "accepted", "sent_realtime", "acked"]
    assert [e.seq for e in timeline] == [0, 1, 2, 3]
    accepted, claim, sent, acked = timeline
    assert accepted.reason == "accepted for auto delivery"
    assert claim.reason == "the user is online: claim realtime" and claim.details == {}
    assert sent.reason == "sent in-app to 1 connection" and sent.details == {"connections": 1}
    assert acked.details == {"connectionId": connection_id}
    assert acked.reason == f"the client acknowledged the in-app message on connection {connection_id}"
    assert [e.at for e in timeline] == sorted(e.at for e in timeline)


def test_ack_timeout_path_timeline(reporting: Reporting) -> None:
    reporting.register_device("rn")
    sock = reporting.connect("rn")
    try:
        notification_id = reporting.send("rn")
        reporting.deliver_next()
        process_deadline_message(take_deadline_from(reporting.deadlines), reporting.notifier)
    finally:
        sock.close()
    timeline = reporting.timeline("rn", notification_id)
    assert names(timeline) == ["accepted", "claim", "realtime-sent", "claim", "push-sent"]
    fallback, pushed = timeline[3:]
    assert fallback.reason == "no ack within the 1 s ack deadline: claim push"
    assert fallback.details == {"fallback": "ack-deadline"}
    assert pushed.status == "pushed" and pushed.reason.startswith("pushed through Notification Hubs")
    nh_id = pushed.details["nhNotificationId"]  # from the send's Location header
    assert isinstance(nh_id, str) and nh_id and f"(notification id {nh_id})" in pushed.reason


def test_offline_and_no_device_paths_timeline(reporting: Reporting) -> None:
    reporting.register_device("op")
    pushed_id = reporting.send("op")
    reporting.deliver_next()
    nobody_id = reporting.send("nd")
    reporting.deliver_next()
    pushed = reporting.timeline("op", pushed_id)
    assert names(pushed) == ["accepted", "claim", "push-sent"]
    assert pushed[1].reason == "the user is offline: claim push"
    assert pushed[1].details == {"fallback": "offline"}
    nobody = reporting.timeline("nd", nobody_id)
    assert names(nobody) == ["accepted", "no-devices"]  # decided from the user's read: no NH call
    assert [e.status for e in nobody][-1] == "no_devices"
    assert nobody[-1].reason == "the user is offline: not pushed: the user has no device registered for push"


def test_expired_path_timeline(reporting: Reporting) -> None:
    late = NotificationClient(reporting.notifications, clock=lambda: time.time() - 120)
    notification_id = late.send("ex", "Old", "News", ttl_seconds=60)
    reporting.deliver_next()
    timeline = reporting.timeline("ex", notification_id)
    assert names(timeline) == ["accepted", "expired"]
    assert timeline[0].details["expiresAt"] == timeline[1].details["expiresAt"]
    assert timeline[1].status == "expired" and "time to live ran out" in timeline[1].reason


def test_permanent_push_failure_is_failed_with_the_error(reporting: Reporting) -> None:
    reporting.register_device("pf")
    reporting.nh.inject_fault(status=400, count=1, path=f"/{reporting.hub}/messages")
    notification_id = reporting.send("pf", delivery="push")
    reporting.deliver_next()
    timeline = reporting.timeline("pf", notification_id)
    assert names(timeline) == ["accepted", "claim", "failed"]
    failed = timeline[-1]
    assert failed.status == "failed" and failed.details["channel"] == "push"
    assert "400" in str(failed.details["error"])
    assert failed.reason.startswith("the push send failed permanently (")


def test_failed_after_retries_records_each_attempt_and_the_poisoning(reporting: Reporting) -> None:
    # An outage longer than the retry horizon: each attempt is re-scheduled with its delay, then the
    # notification goes to the poison queue. The clock is the notifier's, moved to each retry's moment.
    clock = [time.time()]
    notifier = reporting.notifier_with(
        clock=lambda: clock[0], retry_delay_seconds=10, retry_max_delay_seconds=10, retry_horizon_seconds=35,
        poison_queue=PoisonQueue(reporting.poison),
    )
    reporting.register_device("fr")
    reporting.nh.inject_fault(status=503, count=1000, path=f"/{reporting.hub}/messages")
    notification_id = reporting.send("fr", delivery="push")
    body, message_id = reporting.take_next()
    for _ in range(10):
        message = QueueMessage(id=message_id, body=body, dequeue_count=1)  # type: ignore[no-untyped-call]
        process_notification_message(message, notifier, reporting.poison)  # re-scheduled: no error
        record = reporting.deliveries.get("fr", notification_id)
        assert record is not None
        if record.state.poisoned_at:
            break
        clock[0] = record.state.retry_at + 0.1  # the re-scheduled copy comes back then
    timeline = reporting.timeline("fr", notification_id)
    scheduled = [e for e in timeline if e.name == "retry-scheduled"]
    assert len(scheduled) >= 2
    retried = ["claim", "retry-scheduled"] * len(scheduled)
    assert names(timeline) == ["accepted", *retried, "claim", "poisoned"]
    assert [e.details["attempt"] for e in scheduled] == list(range(1, len(scheduled) + 1))
    assert all("503" in str(e.details["error"]) and e.details["channel"] == "push" for e in scheduled)
    assert scheduled[0].reason.startswith("the push send failed transiently (")
    last = timeline[-1]
    assert last.details["poisoned"] is True and last.details["attempts"] == len(scheduled) + 1
    assert last.reason.startswith(f"gave up after {len(scheduled) + 1} attempts")
    assert "retry horizon" in last.reason
    assert last.status == Status.POISONED
    poisoned = reporting.metric_points()["notify.poisoned"]
    assert [(attrs, p.value) for attrs, p in poisoned] == [
        ({"queue": "notifications", "reason": "retry-horizon"}, 1)
    ]
    retries = reporting.metric_points()["notify.delivery.retries"]
    assert [(attrs, p.value) for attrs, p in retries] == [({"channel": "push"}, len(scheduled))]


def test_one_webhook_message_per_handling_with_its_entries(reporting: Reporting) -> None:
    notification_id, _ = acked_path(reporting)
    messages = reporting.webhook_messages()
    # The first handling (insert + send), the ack; the deadline changed nothing and sent nothing.
    assert [[e["name"] for e in m["events"]] for m in messages] == [
        ["accepted", "claim", "realtime-sent"],
        ["acked"],
    ]
    ids = {(m["userId"], m["notificationId"], m["attempt"]) for m in messages}
    assert ids == {("ra", notification_id, 0)}
    assert [e["seq"] for m in messages for e in m["events"]] == [0, 1, 2, 3]


def test_one_connected_trace_per_notification(reporting: Reporting) -> None:
    acked_id, _ = acked_path(reporting)
    reporting.register_device("rn")
    sock = reporting.connect("rn")
    try:
        pushed_id = reporting.send("rn")
        reporting.deliver_next()
        process_deadline_message(take_deadline_from(reporting.deadlines), reporting.notifier)
    finally:
        sock.close()
    for notification_id, expected in (
        (acked_id, {"notify enqueue", "notify deliver", "notify send realtime", "notify acked",
                    "notify deadline"}),
        (pushed_id, {"notify enqueue", "notify deliver", "notify send realtime", "notify deadline",
                     "notify send push"}),
    ):
        spans = reporting.spans_of(notification_id)
        assert {s.name for s in spans} == expected
        assert len({s.context.trace_id for s in spans}) == 1, "one trace per notification"
        [root] = [s for s in spans if s.parent is None]
        assert root.name == "notify enqueue"
        ids = {s.context.span_id for s in spans}
        assert all(s.parent.span_id in ids for s in spans if s.parent is not None), "every span is connected"
        by_name = {s.name: s for s in spans}
        assert by_name["notify deliver"].parent.span_id == root.context.span_id  # type: ignore[union-attr]
        attributes = json.dumps([dict(s.attributes or {}) for s in spans])
        assert '"ra"' not in attributes and '"rn"' not in attributes  # no user id, only its hash
    trace_ids = {reporting.spans_of(n)[0].context.trace_id for n in (acked_id, pushed_id)}
    assert len(trace_ids) == 2
    deliver_span = next(s for s in reporting.spans_of(pushed_id) if s.name == "notify deadline")
    assert [e.name for e in deliver_span.events] == ["claim", "push-sent"]


def test_metrics_of_the_paths(reporting: Reporting) -> None:
    acked_path(reporting)
    reporting.register_device("op")
    reporting.send("op")
    reporting.deliver_next()
    reporting.send("nd")
    reporting.deliver_next()
    points = reporting.metric_points()
    outcomes = Counter({(a["channel"], a["outcome"]): p.value for a, p in points["notify.delivery.outcomes"]})
    assert outcomes == Counter({("realtime", "sent"): 1, ("realtime", "acked"): 1, ("push", "pushed"): 1,
                                ("push", "no_devices"): 1})
    fallbacks = {a["reason"]: p.value for a, p in points["notify.push.fallbacks"]}
    assert fallbacks == {"offline": 2}
    latencies = ("notify.latency.enqueue_to_realtime", "notify.latency.enqueue_to_push", "notify.latency.ack")
    for name in latencies:
        [(_, histogram)] = points[name]
        assert histogram.count == 1 and histogram.sum >= 0, name


def test_logs_never_carry_the_user_id(reporting: Reporting, caplog: pytest.LogCaptureFixture) -> None:
    user = "Pii.User-7f3a"  # upper case: its key is a hash, its logs must show only userHash
    caplog.set_level(logging.DEBUG)
    reporting.register_device(user)
    sock = reporting.connect(user)
    try:
        notification_id = reporting.send(user)
        reporting.deliver_next()
        handle_ack(system_event("ack", user, sock.connection_id, {"notificationId": notification_id}),
                   reporting.notifier)
    finally:
        sock.close()
    reporting.nh.inject_fault(status=400, count=1, path=f"/{reporting.hub}/messages")
    reporting.send(user, delivery="push")
    reporting.deliver_next()
    lines = [record.getMessage() for record in caplog.records]
    assert any(f"userHash={user_hash(user)}" in line for line in lines)
    assert [line for line in lines if user in line or user.lower() in line] == []
