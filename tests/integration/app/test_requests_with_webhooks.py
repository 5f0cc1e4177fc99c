"""What webhooks add to a notification's requests, counted on the wire like
``test_requests_per_notification.py`` (whose figures, with webhooks off, stay as they are): one enqueue on
the webhook queue per handling that changed the delivery record, after its sends."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableServiceClient
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
from notify.blueprints.notifier import process_deadline_message
from notify.blueprints.presence import handle_ack
from notify.deliveries import DeliveryStore
from notify.devices import DeviceRegistry
from notify.notifier import Notifier
from notify.presence import PresenceStore
from notify.push import PushSender
from notify.realtime import RealtimeSender
from notify.user_state import UserDirectory
from notify.webhooks import WebhookOutbox
from shared.notification_hubs import NotificationHubsClient
from shared.retry import RetryPolicy
from tests.integration.app.test_notifier import deliver_with, notification, system_event, take_deadline_from
from tests.integration.app.test_requests_per_notification import (
    Counted,
    CountingSession,
    CountingTransport,
    RequestLog,
    connect,
    register_device,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def counted(
    azurite: RunningAzurite,
    webpubsub_emulator: RunningWebPubSub,
    notification_hubs_emulator: RunningNotificationHubs,
    nh_hub: str,
    unique_name: Callable[[str], str],
) -> Iterator[Counted]:
    conn = azurite.connection_string
    log = RequestLog()
    names = {"deliveries": unique_name("deliveries"), "devices": unique_name("devices")}
    log.names.update({value: key for key, value in names.items()})
    tables = TableServiceClient.from_connection_string(conn, transport=CountingTransport(log))
    for name in names.values():
        tables.create_table(name)
    queue_names = {label: unique_name(label) for label in ("notifications", "deadlines", "webhooks")}

    def queue(label: str, **kwargs: Any) -> QueueClient:
        return QueueClient.from_connection_string(
            conn, queue_names[label], transport=CountingTransport(log, label),
            message_encode_policy=TextBase64EncodePolicy(), **kwargs,
        )

    notifications, deadlines, webhooks = (queue(label) for label in queue_names)
    for each in (notifications, deadlines, webhooks):
        each.create_queue()
    poison = QueueClient.from_connection_string(
        conn, queue_names["notifications"] + "-poison",
        message_encode_policy=BinaryBase64EncodePolicy(), message_decode_policy=BinaryBase64DecodePolicy(),
    )
    wps = WebPubSubServiceClient.from_connection_string(
        webpubsub_emulator.connection_string, hub=unique_name("hub"), retry_total=0,
        transport=CountingTransport(log, "wps"),
    )
    retry = RetryPolicy(attempts=2, base_delay=0.01, budget_seconds=2)
    nh_client = NotificationHubsClient(
        notification_hubs_emulator.connection_string, nh_hub, session=CountingSession(log), retry=retry
    )
    presence = PresenceStore(tables.get_table_client(names["devices"]))
    users = UserDirectory(tables.get_table_client(names["devices"]))
    devices = DeviceRegistry(tables.get_table_client(names["devices"]), nh_client)
    notifier = Notifier(
        deliveries=DeliveryStore(tables.get_table_client(names["deliveries"])),
        users=users,
        realtime=RealtimeSender(wps),
        push=PushSender(nh_client),
        deadline_queue=deadlines,
        ack_timeout_seconds=1,
        retry=retry,
        recheck_queue=notifications,
        events=WebhookOutbox(webhooks),
    )
    try:
        yield Counted(notifier, presence, devices, users, wps, deadlines, poison, log)
    finally:
        nh_client.close()
        wps.close()
        for each in (notifications, deadlines, webhooks, poison):
            with contextlib.suppress(ResourceNotFoundError):
                each.delete_queue()
        for name in names.values():
            tables.delete_table(name)


def test_realtime_acked_adds_two(counted: Counted) -> None:
    register_device(counted, "ra")
    sock = connect(counted, "ra")
    document = notification("ra")
    try:
        with counted.counting() as log:
            deliver_with(counted.notifier, counted.poison, document)
            data = {"notificationId": document["notificationId"]}
            ack = system_event("ack", "ra", sock.connection_id, data)
            handle_ack(ack, counted.notifier)
            process_deadline_message(take_deadline_from(counted.deadlines), counted.notifier)
    finally:
        sock.close()
    # The delivery's handling and the ack's; the deadline changed nothing.
    assert log.count()["webhooks POST"] == 2
    assert len(log.seen) == 7 + 2  # test_requests_per_notification's count, plus the two
    assert log.seen.index("webhooks POST") > log.seen.index("wps POST"), "after the send"


def test_not_acked_push_adds_two(counted: Counted) -> None:
    register_device(counted, "rn")
    sock = connect(counted, "rn")
    try:
        with counted.counting() as log:
            deliver_with(counted.notifier, counted.poison, notification("rn"))
            process_deadline_message(take_deadline_from(counted.deadlines), counted.notifier)
    finally:
        sock.close()
    assert log.count()["webhooks POST"] == 2
    assert len(log.seen) == 9 + 2
    assert log.seen[-1] == "webhooks POST", "after the push and its record"


@pytest.mark.parametrize(
    ("user", "delivery", "device", "without"),
    [("op", "auto", True, 4), ("nd", "auto", False, 2), ("bo", "both", True, 6)],
)
def test_single_handling_paths_add_one(
    counted: Counted, user: str, delivery: str, device: bool, without: int
) -> None:
    if device:
        register_device(counted, user)
    sock = connect(counted, user) if delivery == "both" else None
    try:
        with counted.counting() as log:
            deliver_with(counted.notifier, counted.poison, notification(user, delivery=delivery))
    finally:
        if sock is not None:
            sock.close()
    assert log.count()["webhooks POST"] == 1
    assert len(log.seen) == without + 1
    assert log.seen[-1] == "webhooks POST"
