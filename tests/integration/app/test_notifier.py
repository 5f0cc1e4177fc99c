"""The notifier over the wire: Azurite tables and queues, the Web PubSub emulator with a real WebSocket
client, and the Notification Hubs emulator behind the real PushSender and DeviceRegistry.

Functions are called as the host calls them: queue messages as ``azure.functions.queue.QueueMessage``,
Web PubSub events as the JSON ``request`` string.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import websocket
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, TableServiceClient
from azure.functions.queue import QueueMessage
from azure.messaging.webpubsubservice import WebPubSubServiceClient
from azure.storage.queue import (
    BinaryBase64DecodePolicy,
    BinaryBase64EncodePolicy,
    QueueClient,
    TextBase64EncodePolicy,
)

from devstack.azurite import RunningAzurite
from devstack.notificationhubs.emulator import RunningNotificationHubs
from devstack.webpubsub.running import RunningWebPubSub
from notify.blueprints.notifier import process_deadline_message, process_notification_message
from notify.blueprints.presence import handle_ack, handle_connected
from notify.deliveries import DeliveryStore
from notify.delivery_machine import Acked, Arrived, Rules, SendPush, Status, decide, new_state
from notify.devices import DeviceRegistry
from notify.message import parse_message
from notify.notifier import Notifier, advance
from notify.presence import PresenceStore
from notify.push import PushSender
from notify.realtime import RealtimeSender
from notify.user_state import UserDirectory
from shared.errors import TransientError
from shared.notification_hubs import NotificationHubsClient
from shared.retry import RetryPolicy
from shared.user_keys import user_tag

pytestmark = pytest.mark.integration
NH_RETRY = RetryPolicy(attempts=3, base_delay=0.01, budget_seconds=2)

ACK_TIMEOUT = 1
FCM_TEMPLATE = json.dumps(
    {
        "message": {
            "notification": {"title": "$(title)", "body": "$(body)"},
            "data": {"id": "$(notificationId)"},
        }
    }
)


@dataclass
class Stack:
    notifier: Notifier
    deliveries: DeliveryStore
    presence: PresenceStore
    wps: WebPubSubServiceClient
    deadlines: QueueClient
    notifications: QueueClient
    poison: QueueClient
    nh: RunningNotificationHubs
    nh_client: NotificationHubsClient
    hub: str
    realtime: RealtimeSender
    push: PushSender
    devices: DeviceRegistry
    deliveries_table: TableClient
    users: UserDirectory

    def pushes_to(self, user_id: str) -> list[dict[str, Any]]:
        return self.nh.pushes(hub=self.hub, tag=user_tag(user_id))

    def register_device(self, user_id: str) -> None:
        self.devices.register(user_id, str(uuid.uuid4()), "fcmv1", "fcm-token-" + uuid.uuid4().hex)


@pytest.fixture
def stack(
    azurite: RunningAzurite,
    webpubsub_emulator: RunningWebPubSub,
    notification_hubs_emulator: RunningNotificationHubs,
    nh_hub: str,
    unique_name: Callable[[str], str],
) -> Iterator[Stack]:
    conn = azurite.connection_string
    tables = TableServiceClient.from_connection_string(conn)
    table_names = [unique_name("deliveries"), unique_name("devices")]
    deliveries_table, devices_table = (tables.create_table(name) for name in table_names)
    queue_name = unique_name("notifications")
    queues = [
        QueueClient.from_connection_string(conn, queue_name, message_encode_policy=TextBase64EncodePolicy()),
        QueueClient.from_connection_string(
            conn,
            queue_name + "-poison",
            message_encode_policy=BinaryBase64EncodePolicy(),
            message_decode_policy=BinaryBase64DecodePolicy(),
        ),
        QueueClient.from_connection_string(
            conn, unique_name("deadlines"), message_encode_policy=TextBase64EncodePolicy()
        ),
    ]
    notifications, poison, deadlines = queues
    for queue in (notifications, deadlines):
        queue.create_queue()
    wps = WebPubSubServiceClient.from_connection_string(
        webpubsub_emulator.connection_string, hub=unique_name("hub"), retry_total=0
    )
    nh_client = NotificationHubsClient(
        notification_hubs_emulator.connection_string, nh_hub, retry=NH_RETRY
    )
    deliveries = DeliveryStore(deliveries_table)
    presence = PresenceStore(devices_table)  # connection rows live in the users' partitions there
    realtime = RealtimeSender(wps)
    devices = DeviceRegistry(devices_table, nh_client)
    push = PushSender(nh_client)
    users = UserDirectory(devices_table)
    notifier = Notifier(
        deliveries=deliveries,
        users=users,
        realtime=realtime,
        push=push,
        deadline_queue=deadlines,
        ack_timeout_seconds=ACK_TIMEOUT,
        retry=RetryPolicy(attempts=2, base_delay=0.01, budget_seconds=2),
        recheck_queue=notifications,
    )
    try:
        yield Stack(
            notifier,
            deliveries,
            presence,
            wps,
            deadlines,
            notifications,
            poison,
            notification_hubs_emulator,
            nh_client,
            nh_hub,
            realtime,
            push,
            devices,
            deliveries_table,
            users,
        )
    finally:
        nh_client.close()
        wps.close()
        for queue in queues:
            with contextlib.suppress(ResourceNotFoundError):  # the poison queue exists only if used
                queue.delete_queue()
        for name in table_names:
            tables.delete_table(name)


class UserSocket:
    """A real client connected to the emulator as one user (json.webpubsub.azure.v1)."""

    def __init__(self, wps: WebPubSubServiceClient, user_id: str) -> None:
        url = wps.get_client_access_token(user_id=user_id)["url"]
        self.ws = websocket.create_connection(url, subprotocols=["json.webpubsub.azure.v1"], timeout=10)
        frame = json.loads(self.ws.recv())
        assert frame["type"] == "system" and frame["event"] == "connected"
        self.connection_id: str = frame["connectionId"]
        self.user_id = user_id
        self._wps = wps

    def notifications_until_marker(self) -> list[dict[str, Any]]:
        """Every notification envelope received, read up to a marker the test sends last."""
        marker = uuid.uuid4().hex
        self._wps.send_to_connection(self.connection_id, {"marker": marker}, content_type="application/json")
        received: list[dict[str, Any]] = []
        while True:
            frame = json.loads(self.ws.recv())
            if frame.get("type") != "message":
                continue
            if frame["data"] == {"marker": marker}:
                return received
            received.append(frame["data"])

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def connect(stack: Stack) -> Iterator[Callable[[str], UserSocket]]:
    sockets: list[UserSocket] = []

    def open_socket(user_id: str) -> UserSocket:
        sock = UserSocket(stack.wps, user_id)
        sockets.append(sock)
        handle_connected(system_event("connected", user_id, sock.connection_id), stack.presence)
        return sock

    yield open_socket
    for sock in sockets:
        sock.close()


def system_event(name: str, user_id: str, connection_id: str, data: Any = None) -> str:
    event: dict[str, Any] = {
        "connectionContext": {
            "eventType": "User" if name == "ack" else "System",
            "eventName": name,
            "hub": "notify",
            "connectionId": connection_id,
            "userId": user_id,
            "states": {},
            "headers": {},
        }
    }
    if data is not None:
        event["data"] = data
        event["dataType"] = "json"
    return json.dumps(event)


def queue_message(document: dict[str, Any] | bytes) -> QueueMessage:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    return QueueMessage(id=str(uuid.uuid4()), body=body, dequeue_count=1)  # type: ignore[no-untyped-call]


def notification(user_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "notificationId": "n-" + uuid.uuid4().hex,
        "userId": user_id,
        "title": "Hello",
        "body": "World",
        "type": "chat",
        "data": {"room": "r1"},
        "enqueuedAt": time.time(),
        **extra,
    }


def deliver(stack: Stack, document: dict[str, Any] | bytes) -> None:
    deliver_with(stack.notifier, stack.poison, document)


def deliver_with(notifier: Notifier, poison: QueueClient, document: dict[str, Any] | bytes) -> None:
    process_notification_message(queue_message(document), notifier, poison)


def take_deadline(stack: Stack) -> QueueMessage:
    return take_deadline_from(stack.deadlines)


def take_deadline_from(deadlines: QueueClient) -> QueueMessage:
    """Wait for the deadline message to become visible, then hand it over as the host would.

    Reads through a client of its own, so that a counting transport on ``deadlines`` sees no test reads.
    """
    reader = QueueClient.from_queue_url(deadlines.url, credential=deadlines.credential)
    give_up = time.monotonic() + 15
    while time.monotonic() < give_up:
        for message in reader.receive_messages(max_messages=1):
            reader.delete_message(message)
            body = base64.b64decode(message.content)
            return QueueMessage(id=message.id, body=body, dequeue_count=1)  # type: ignore[no-untyped-call]
        time.sleep(0.2)
    raise AssertionError("no deadline message became visible")


def status_of(stack: Stack, document: dict[str, Any]) -> Status:
    record = stack.deliveries.get(document["userId"], document["notificationId"])
    assert record is not None
    return record.status


def test_online_user_gets_the_envelope_and_an_ack_prevents_the_push(stack: Stack, connect: Any) -> None:
    stack.register_device("alice")
    sock = connect("alice")
    document = notification("alice")

    deliver(stack, document)

    [envelope] = sock.notifications_until_marker()
    assert envelope == {
        "kind": "notification",
        "protocolVersion": 1,
        "notificationId": document["notificationId"],
        "title": "Hello",
        "body": "World",
        "type": "chat",
        "data": {"room": "r1"},
        "inbox": True,
    }
    ack = system_event("ack", "alice", sock.connection_id, {"notificationId": document["notificationId"]})
    answer = handle_ack(ack, stack.notifier)
    assert answer["dataType"] == "json"
    assert json.loads(answer["data"]) == {
        "kind": "ackResult",
        "protocolVersion": 1,
        "notificationId": document["notificationId"],
        "ok": True,
    }
    process_deadline_message(take_deadline(stack), stack.notifier)

    assert stack.pushes_to("alice") == []
    assert status_of(stack, document) == Status.ACKED


def test_no_ack_means_exactly_one_push_after_the_deadline(stack: Stack, connect: Any) -> None:
    stack.register_device("bob")
    sock = connect("bob")
    document = notification("bob")
    deliver(stack, document)
    assert len(sock.notifications_until_marker()) == 1
    assert stack.pushes_to("bob") == []  # nothing pushed before the deadline

    deadline = take_deadline(stack)
    process_deadline_message(deadline, stack.notifier)
    process_deadline_message(deadline, stack.notifier)  # redelivered deadline

    [push] = stack.pushes_to("bob")
    assert push["outcome"] == "delivered"
    assert document["notificationId"] in push["payloadText"]
    assert status_of(stack, document) == Status.PUSHED


def test_an_ack_from_another_user_does_not_count(stack: Stack, connect: Any) -> None:
    stack.register_device("carol")
    connect("carol")
    mallory = connect("mallory")
    document = notification("carol")
    deliver(stack, document)
    forged = system_event(
        "ack", "mallory", mallory.connection_id, {"notificationId": document["notificationId"]}
    )
    answer = json.loads(handle_ack(forged, stack.notifier)["data"])
    assert answer["ok"] is False
    assert answer["error"]["code"] == "unknown_notification"  # the same as for an id that does not exist
    process_deadline_message(take_deadline(stack), stack.notifier)
    assert len(stack.pushes_to("carol")) == 1


def test_offline_user_is_pushed_at_once_without_a_deadline(stack: Stack) -> None:
    stack.register_device("dave")
    document = notification("dave")
    deliver(stack, document)
    deliver(stack, document)  # the same message again: still one push
    assert len(stack.pushes_to("dave")) == 1
    assert stack.deadlines.get_queue_properties().approximate_message_count == 0
    assert status_of(stack, document) == Status.PUSHED


def test_offline_user_without_devices_is_recorded(stack: Stack) -> None:
    document = notification("nodevices")
    deliver(stack, document)
    assert stack.pushes_to("nodevices") == []
    assert status_of(stack, document) == Status.NO_DEVICES


def test_both_sends_one_of_each_even_when_handled_twice(stack: Stack, connect: Any) -> None:
    stack.register_device("erin")
    sock = connect("erin")
    document = notification("erin", delivery="both")
    deliver(stack, document)
    deliver(stack, document)
    envelopes = sock.notifications_until_marker()
    assert [e["notificationId"] for e in envelopes] == [document["notificationId"]]
    assert len(stack.pushes_to("erin")) == 1


def test_realtime_only_never_pushes(stack: Stack, connect: Any) -> None:
    stack.register_device("frank")
    sock = connect("frank")
    document = notification("frank", delivery="realtime")
    deliver(stack, document)
    deliver(stack, document)
    assert len(sock.notifications_until_marker()) == 1
    assert stack.pushes_to("frank") == []
    assert stack.deadlines.get_queue_properties().approximate_message_count == 0


def test_push_only_skips_the_socket(stack: Stack, connect: Any) -> None:
    stack.register_device("gina")
    sock = connect("gina")
    deliver(stack, notification("gina", delivery="push"))
    assert sock.notifications_until_marker() == []
    assert len(stack.pushes_to("gina")) == 1


def test_same_message_without_id_dedups_by_queue_message_id(stack: Stack) -> None:
    stack.register_device("hank")
    document = notification("hank")
    del document["notificationId"]
    message = queue_message(document)
    process_notification_message(message, stack.notifier, stack.poison)
    process_notification_message(message, stack.notifier, stack.poison)
    assert len(stack.pushes_to("hank")) == 1


def test_expired_notification_is_recorded_and_not_sent(stack: Stack, connect: Any) -> None:
    stack.register_device("ivy")
    sock = connect("ivy")
    document = notification("ivy", ttlSeconds=1, enqueuedAt=time.time() - 60)
    deliver(stack, document)
    assert sock.notifications_until_marker() == []
    assert stack.pushes_to("ivy") == []
    assert status_of(stack, document) == Status.EXPIRED


def test_invalid_message_goes_to_poison_at_once_with_the_reason_logged(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    body = json.dumps({"userId": "jo", "title": "t", "body": "b", "delivery": "fax"}).encode()
    with caplog.at_level(logging.ERROR, logger="notify.blueprints.notifier"):
        deliver(stack, body)  # returns normally, so the host deletes the original
    [poisoned] = list(stack.poison.receive_messages(max_messages=5))
    assert poisoned.content == body
    assert any("delivery" in record.getMessage() for record in caplog.records)


def test_transient_push_failure_releases_the_claim_and_is_re_scheduled(stack: Stack) -> None:
    stack.register_device("kim")
    document = notification("kim")
    stack.nh.inject_fault(status=503, count=50, path=f"/{stack.hub}/messages")
    deliver(stack, document)  # returns normally: the host deletes the message, a retry is queued
    stack.nh.clear_faults()
    assert stack.pushes_to("kim") == []
    record = stack.deliveries.get("kim", document["notificationId"])
    assert record is not None and record.status is Status.RETRYING
    assert record.state.push.claim_id == "" and "503" in record.state.last_error
    assert stack.notifications.get_queue_properties().approximate_message_count == 1  # the retry, delayed
    deliver(stack, document)  # the retry arriving (early is fine: it sends what is still to send)
    assert len(stack.pushes_to("kim")) == 1
    assert status_of(stack, document) == Status.PUSHED


def test_push_is_retried_in_one_layer_only(stack: Stack) -> None:
    stack.register_device("kai")
    document = notification("kai")
    path = f"/{stack.hub}/messages"
    stack.nh.inject_fault(status=503, count=NH_RETRY.attempts, path=path)
    deliver(stack, document)  # a second retry layer would have succeeded on a later round
    stack.nh.clear_faults()
    assert status_of(stack, document) == Status.RETRYING and stack.pushes_to("kai") == []
    stack.nh.inject_fault(status=503, count=NH_RETRY.attempts - 1, path=path)
    deliver(stack, document)  # the re-scheduled attempt; its last NH attempt succeeds
    stack.nh.clear_faults()
    assert len(stack.pushes_to("kai")) == 1


def test_zero_ack_timeout_trusts_presence(stack: Stack, connect: Any) -> None:
    trusting = Notifier(stack.deliveries, stack.users, stack.realtime, stack.push, stack.deadlines, 0)
    stack.register_device("lee")
    sock = connect("lee")
    document = notification("lee")
    process_notification_message(queue_message(document), trusting, stack.poison)
    assert len(sock.notifications_until_marker()) == 1
    assert stack.deadlines.get_queue_properties().approximate_message_count == 0
    assert stack.pushes_to("lee") == []
    assert status_of(stack, document) == Status.SENT_REALTIME


def test_permanent_in_app_failure_falls_back_to_push(
    stack: Stack, connect: Any, webpubsub_emulator: RunningWebPubSub
) -> None:
    wrong_key = webpubsub_emulator.connection_string.replace(webpubsub_emulator.access_key, "x" * 40)
    refused_client = WebPubSubServiceClient.from_connection_string(wrong_key, hub="h", retry_total=0)
    refused = RealtimeSender(refused_client)
    notifier = Notifier(stack.deliveries, stack.users, refused, stack.push, stack.deadlines, ACK_TIMEOUT)
    stack.register_device("max")
    sock = connect("max")
    document = notification("max")
    process_notification_message(queue_message(document), notifier, stack.poison)
    assert sock.notifications_until_marker() == []
    assert len(stack.pushes_to("max")) == 1
    assert status_of(stack, document) == Status.PUSHED
    refused_client.close()


def short_lease_notifier(stack: Stack, recheck: bool = True) -> tuple[Notifier, DeliveryStore]:
    notifier = Notifier(
        stack.deliveries, stack.users, stack.realtime, stack.push, stack.deadlines, ACK_TIMEOUT,
        recheck_queue=stack.notifications if recheck else None, claim_lease_seconds=1.0,
    )
    return notifier, stack.deliveries


def hold_push_claim(deliveries: DeliveryStore, document: dict[str, Any]) -> None:
    """What a handler that claimed the push and then died leaves behind: the row inserted, nothing sent."""
    notification = parse_message(json.dumps(document).encode())
    now = time.time()
    step = decide(new_state(notification.delivery, None), Arrived("dead-handler"), now, Rules(ACK_TIMEOUT))
    assert step.actions == (SendPush("dead-handler"),)
    _, created = deliveries.insert(notification, step.state, now)
    assert created


def test_a_claim_left_by_a_dead_handler_is_rechecked_after_its_lease_and_pushed_once(stack: Stack) -> None:
    stack.register_device("ned")
    document = notification("ned", delivery="push")
    notifier, deliveries = short_lease_notifier(stack)
    hold_push_claim(deliveries, document)

    process_notification_message(queue_message(document), notifier, stack.poison)  # the duplicate
    assert stack.pushes_to("ned") == []
    assert stack.notifications.peek_messages() == []  # re-enqueued invisible until the lease has run out
    give_up = time.monotonic() + 10
    recheck: list[Any] = []
    while not recheck and time.monotonic() < give_up:
        recheck = list(stack.notifications.receive_messages(max_messages=1))
        time.sleep(0.2)
    [message] = recheck
    body = base64.b64decode(message.content)
    assert json.loads(body)["notificationId"] == document["notificationId"]

    msg = QueueMessage(id=message.id, body=body, dequeue_count=1)  # type: ignore[no-untyped-call]
    process_notification_message(msg, notifier, stack.poison)
    process_notification_message(msg, notifier, stack.poison)  # and once more: already pushed
    assert len(stack.pushes_to("ned")) == 1
    assert status_of(stack, document) == Status.PUSHED


def test_without_a_recheck_queue_a_busy_claim_makes_the_host_retry(stack: Stack) -> None:
    stack.register_device("ola")
    document = notification("ola", delivery="push")
    notifier, deliveries = short_lease_notifier(stack, recheck=False)
    hold_push_claim(deliveries, document)
    with pytest.raises(TransientError):
        process_notification_message(queue_message(document), notifier, stack.poison)
    assert stack.pushes_to("ola") == []


def another_instance(stack: Stack) -> Notifier:
    """A second Functions instance: the same table and services, a store of its own (nothing remembered)."""
    return Notifier(
        DeliveryStore(stack.deliveries_table), stack.users, stack.realtime, stack.push, stack.deadlines,
        ACK_TIMEOUT, recheck_queue=stack.notifications,
    )


def retracts(stack: Stack, user_id: str) -> list[dict[str, Any]]:
    return [p for p in stack.pushes_to(user_id) if p["template"] == "notify-retract-v1"]


def test_an_ack_decided_on_a_remembered_row_another_instance_changed_is_decided_again(
    stack: Stack, connect: Any
) -> None:
    """This instance sent the message and remembers its row; another instance pushed it at the deadline.
    The late ack reaches this instance: its write on the remembered row meets 412, so it reads the row
    and decides on what is there, as with a fresh read: the push that went out is retracted, once."""
    stack.register_device("gina")
    sock = connect("gina")
    document = notification("gina")
    deliver(stack, document)
    assert stack.deliveries.recent("gina", document["notificationId"]) is not None
    process_deadline_message(take_deadline(stack), another_instance(stack))
    assert status_of(stack, document) == Status.PUSHED

    ack = system_event("ack", "gina", sock.connection_id, {"notificationId": document["notificationId"]})
    assert json.loads(handle_ack(ack, stack.notifier)["data"])["ok"] is True
    handle_ack(ack, stack.notifier)  # a repeat: decided on the row this instance now remembers

    assert status_of(stack, document) == Status.RETRACTED
    assert len(retracts(stack, "gina")) == 1


def test_a_remembered_row_on_which_nothing_would_change_is_read_again(stack: Stack, connect: Any) -> None:
    """Only a write checks a remembered row (its ETag). When the event would change nothing on it, the
    row is read and the event decided on what is really there."""
    sock = connect("hugo")
    document = notification("hugo", delivery="realtime")
    deliver(stack, document)
    ack = system_event("ack", "hugo", sock.connection_id, {"notificationId": document["notificationId"]})
    handle_ack(ack, stack.notifier)
    remembered = stack.deliveries.recent("hugo", document["notificationId"])
    assert remembered is not None and remembered.status is Status.ACKED
    other = DeliveryStore(stack.deliveries_table)
    current = other.get("hugo", document["notificationId"])
    assert current is not None
    read = dataclasses.replace(current.state, read_at=time.time(), status=Status.READ)
    changed = other.write(current, read)
    assert changed is not None

    late_ack = Acked("late", sock.connection_id)
    record, step = advance(stack.deliveries, remembered, late_ack, Rules(ACK_TIMEOUT), time.time, fresh=False)
    assert record.etag == changed.etag and record.status is Status.READ
    assert not step.changed_from(record.state)
