"""What the inbox costs in requests, counted on the wire like test_requests_per_notification.py.

Without the badge (the default) the inbox adds nothing to the delivery path: that file's figures hold
unchanged with every delivery row being an inbox item. With ``INBOX_PUSH_BADGE`` a push reads the unread
count first: one table query more per push. The inbox's own operations are counted here too.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient
from azure.messaging.webpubsubservice import WebPubSubServiceClient
from azure.storage.queue import BinaryBase64EncodePolicy, QueueClient, TextBase64EncodePolicy

from devstack.azurite import RunningAzurite
from devstack.notificationhubs.emulator import RunningNotificationHubs
from devstack.webpubsub.running import RunningWebPubSub
from notify.deliveries import DeliveryStore
from notify.devices import DeviceRegistry
from notify.inbox import Inbox
from notify.inbox_model import Mark
from notify.inbox_store import InboxStore
from notify.notifier import Notifier
from notify.push import PushSender
from notify.realtime import RealtimeSender
from notify.user_state import UserDirectory
from shared.notification_hubs import NotificationHubsClient
from shared.retry import RetryPolicy
from tests.integration.app.test_notifier import deliver_with, notification
from tests.integration.app.test_requests_per_notification import (
    CountingSession,
    CountingTransport,
    RequestLog,
    counting_tables,
)

pytestmark = pytest.mark.integration
RETRY = RetryPolicy(attempts=2, base_delay=0.01, budget_seconds=2)


@dataclass
class Counted:
    notifier: Notifier
    deliveries: TableClient
    inbox: Inbox
    devices: DeviceRegistry
    poison: QueueClient
    log: RequestLog

    def counting(self) -> contextlib.AbstractContextManager[RequestLog]:
        return self.log.window()


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
    tables, names = counting_tables(conn, log, unique_name)
    deadlines = QueueClient.from_connection_string(conn, unique_name("deadlines"),
                                                   message_encode_policy=TextBase64EncodePolicy(),
                                                   transport=CountingTransport(log, "deadlines"))
    deadlines.create_queue()
    poison = QueueClient.from_connection_string(conn, unique_name("poison"),
                                                message_encode_policy=BinaryBase64EncodePolicy())
    wps = WebPubSubServiceClient.from_connection_string(
        webpubsub_emulator.connection_string, hub=unique_name("hub"), retry_total=0,
        transport=CountingTransport(log, "wps"),
    )
    nh_client = NotificationHubsClient(notification_hubs_emulator.connection_string, nh_hub,
                                       session=CountingSession(log), retry=RETRY)
    deliveries = tables.get_table_client(names["deliveries"])
    realtime = RealtimeSender(wps)
    inbox = Inbox(InboxStore(deliveries), envelopes=realtime)
    devices = DeviceRegistry(tables.get_table_client(names["devices"]), nh_client, badge=True)
    notifier = Notifier(
        deliveries=DeliveryStore(deliveries),
        users=UserDirectory(tables.get_table_client(names["devices"])),
        realtime=realtime,
        push=PushSender(nh_client, unread_count=inbox.unread_count),
        deadline_queue=deadlines,
        ack_timeout_seconds=1,
        retry=RETRY,
    )
    try:
        yield Counted(notifier, deliveries, inbox, devices, poison, log)
    finally:
        nh_client.close()
        wps.close()
        for queue in (deadlines, poison):
            with contextlib.suppress(ResourceNotFoundError):
                queue.delete_queue()
        for name in names.values():
            tables.delete_table(name)


def test_with_the_badge_a_push_costs_one_query_more(counted: Counted) -> None:
    counted.devices.register("ob", "d-" + uuid.uuid4().hex, "fcmv1", "fcm-token-" + uuid.uuid4().hex)
    with counted.counting() as log:
        deliver_with(counted.notifier, counted.poison, notification("ob"))
    assert log.count() == {
        "devices GET": 1,  # the user's state (connections, devices, preferences)
        "deliveries POST": 1,
        "deliveries GET": 1,  # the unread count for the badge: the one request the badge adds
        "nh POST": 1,
        "deliveries PATCH": 1,
    }  # 5; without the badge 4 (test_requests_per_notification.py::test_offline_is_pushed)


def test_without_devices_the_badge_is_not_read(counted: Counted) -> None:
    with counted.counting() as log:
        deliver_with(counted.notifier, counted.poison, notification("nd"))
    assert log.count() == {"devices GET": 1, "deliveries POST": 1}  # as without the badge


def test_what_the_inbox_operations_cost(counted: Counted) -> None:
    ids = [notification("io")["notificationId"] for _ in range(3)]
    for nid in ids:
        document = notification("io", notificationId=nid, delivery="realtime")
        deliver_with(counted.notifier, counted.poison, document)
    with counted.counting() as log:
        counted.inbox.counts("io")
    assert log.count() == {"deliveries GET": 1}  # the counter row and the pending items, one query
    with counted.counting() as log:
        counted.inbox.page("io")
    assert log.count() == {
        "deliveries GET": 2,  # counter + pending; the page of items
        "other POST": 1,  # one transaction takes the three pending items in
        "wps POST": 1,  # the "new" inbox envelope
    }
    with counted.counting() as log:
        counted.inbox.mark("io", ids[0], Mark.READ)
    assert log.count() == {"deliveries GET": 1, "other POST": 1, "wps POST": 1}
    with counted.counting() as log:
        counted.inbox.mark("io", ids[0], Mark.READ)
    assert log.count() == {"deliveries GET": 1}  # already read: nothing written, nothing announced
    with counted.counting() as log:
        counted.inbox.changes("io")
    assert log.count() == {"deliveries GET": 2}


def test_a_read_in_the_inbox_also_tells_the_delivery(counted: Counted) -> None:
    """As the app wires it (get_inbox): a read of an item whose delivery is still open records the read on
    the delivery (a push still due is dropped; one that went out is retracted)."""
    from notify.inbox import tell
    from notify.inbox_store import InboxStore

    wired = Inbox(InboxStore(counted.deliveries), on_read_or_archived=tell(counted.notifier))
    open_item = notification("rd", delivery="realtime")  # sent in-app, never acked: still open
    deliver_with(counted.notifier, counted.poison, open_item)
    wired.page("rd")
    with counted.counting() as log:
        wired.mark("rd", open_item["notificationId"], Mark.READ)
    assert log.count() == {
        "deliveries GET": 2,  # the inbox's snapshot; the notifier reads the delivery
        "other POST": 1,  # the inbox transaction
        "deliveries PATCH": 1,  # the delivery records the read
    }
