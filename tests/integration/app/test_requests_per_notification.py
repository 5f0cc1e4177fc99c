"""How many requests one notification costs on each delivery path, counted on the wire.

Every SDK client the notifier uses gets a counting transport (tables, queues, Web PubSub) or session
(Notification Hubs), so each request is seen as it leaves the process. The figures are what users pay per
notification (docs/PERFORMANCE.md); a change that adds a request on a path makes its test fail.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.core.pipeline.transport import RequestsTransport
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
from notify.blueprints.presence import handle_ack, handle_connected
from notify.deliveries import DeliveryStore
from notify.devices import DeviceRegistry
from notify.notifier import Notifier
from notify.preferences import parse_preferences
from notify.presence import PresenceStore
from notify.push import PushSender
from notify.realtime import RealtimeSender
from notify.user_state import UserDirectory
from notify.webhooks import WebhookOutbox
from shared.notification_hubs import NotificationHubsClient
from shared.retry import RetryPolicy
from tests.integration.app.test_notifier import (
    UserSocket,
    deliver_with,
    notification,
    system_event,
    take_deadline_from,
)

pytestmark = pytest.mark.integration


@dataclass
class RequestLog:
    """Requests seen, as ``"<service> <METHOD>"`` (service: the table or queue name, wps, nh)."""

    names: dict[str, str] = field(default_factory=dict)  # first path segment after the account → label
    seen: list[str] = field(default_factory=list)
    counting: bool = False

    def record(self, service: str, method: str) -> None:
        if self.counting:
            self.seen.append(f"{service} {method}")

    def label(self, url: str) -> str:
        parts = [p for p in urlsplit(url).path.split("/") if p]
        for part in parts:
            name = part.split("(")[0]
            if name in self.names:
                return self.names[name]
        return "other"

    def count(self) -> Counter[str]:
        return Counter(self.seen)

    @contextlib.contextmanager
    def window(self) -> Iterator[RequestLog]:
        """Record the requests made inside the ``with`` block only (what came before is forgotten)."""
        self.seen.clear()
        self.counting = True
        try:
            yield self
        finally:
            self.counting = False


def counting_tables(
    connection_string: str, log: RequestLog, unique_name: Callable[[str], str]
) -> tuple[TableServiceClient, dict[str, str]]:
    """Fresh deliveries and devices tables whose requests ``log`` counts, and their names by label."""
    names = {"deliveries": unique_name("deliveries"), "devices": unique_name("devices")}
    log.names.update({value: key for key, value in names.items()})
    tables = TableServiceClient.from_connection_string(connection_string, transport=CountingTransport(log))
    for name in names.values():
        tables.create_table(name)
    return tables, names


class CountingTransport(RequestsTransport):
    def __init__(self, log: RequestLog, service: str | None = None) -> None:
        super().__init__()
        self._log = log
        self._service = service

    def send(self, request: Any, **kwargs: Any) -> Any:
        self._log.record(self._service or self._log.label(request.url), request.method)
        return super().send(request, **kwargs)


class CountingSession(requests.Session):
    def __init__(self, log: RequestLog) -> None:
        super().__init__()
        self._log = log

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        self._log.record("nh", str(method))
        return super().request(method, url, *args, **kwargs)


@dataclass
class Counted:
    notifier: Notifier
    presence: PresenceStore
    devices: DeviceRegistry
    users: UserDirectory
    wps: WebPubSubServiceClient
    deadlines: QueueClient
    poison: QueueClient
    log: RequestLog

    def counting(self) -> contextlib.AbstractContextManager[RequestLog]:
        return self.log.window()


@contextlib.contextmanager
def counted_stack(
    azurite: RunningAzurite,
    webpubsub_emulator: RunningWebPubSub,
    notification_hubs_emulator: RunningNotificationHubs,
    nh_hub: str,
    unique_name: Callable[[str], str],
    webhooks: bool = False,
) -> Iterator[Counted]:
    """A notifier on fresh tables and queues whose every request is counted (``webhooks``: with an outbox
    on a counted ``webhooks`` queue)."""
    conn = azurite.connection_string
    log = RequestLog()
    tables, names = counting_tables(conn, log, unique_name)
    labels = ("notifications", "deadlines", "webhooks") if webhooks else ("notifications", "deadlines")
    queue_names = {label: unique_name(label) for label in labels}
    queues = {
        label: QueueClient.from_connection_string(
            conn, name, transport=CountingTransport(log, label),
            message_encode_policy=TextBase64EncodePolicy(),
        )
        for label, name in queue_names.items()
    }
    for each in queues.values():
        each.create_queue()
    poison = QueueClient.from_connection_string(
        conn,
        queue_names["notifications"] + "-poison",
        message_encode_policy=BinaryBase64EncodePolicy(),
        message_decode_policy=BinaryBase64DecodePolicy(),
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
        deadline_queue=queues["deadlines"],
        ack_timeout_seconds=1,
        retry=retry,
        recheck_queue=queues["notifications"],
        events=WebhookOutbox(queues["webhooks"]) if webhooks else None,
    )
    try:
        yield Counted(notifier, presence, devices, users, wps, queues["deadlines"], poison, log)
    finally:
        nh_client.close()
        wps.close()
        for each in (*queues.values(), poison):
            with contextlib.suppress(ResourceNotFoundError):
                each.delete_queue()
        for name in names.values():
            tables.delete_table(name)


@pytest.fixture
def counted(
    azurite: RunningAzurite,
    webpubsub_emulator: RunningWebPubSub,
    notification_hubs_emulator: RunningNotificationHubs,
    nh_hub: str,
    unique_name: Callable[[str], str],
) -> Iterator[Counted]:
    with counted_stack(azurite, webpubsub_emulator, notification_hubs_emulator, nh_hub, unique_name) as stack:
        yield stack


def register_device(counted: Counted, user_id: str) -> None:
    counted.devices.register(user_id, "d-" + uuid.uuid4().hex, "fcmv1", "fcm-token-" + uuid.uuid4().hex)


def connect(counted: Counted, user_id: str) -> UserSocket:
    sock = UserSocket(counted.wps, user_id)
    handle_connected(system_event("connected", user_id, sock.connection_id), counted.presence)
    return sock


# Before issue 14 (presence, device index and preferences apart; decisions in Notifier/DeliveryStore):
# realtime acked 8, not acked -> push 10, offline -> push 5, offline without devices 4, both 7.
USER_READ = "devices GET"  # one partition query: connections, devices, preferences


def realtime_acked(counted: Counted, user_id: str) -> RequestLog:
    """An online user with a device acks the in-app message; then its deadline comes: what that costs."""
    register_device(counted, user_id)
    sock = connect(counted, user_id)
    document = notification(user_id)
    try:
        with counted.counting() as log:
            deliver_with(counted.notifier, counted.poison, document)
            data = {"notificationId": document["notificationId"]}
            ack = system_event("ack", user_id, sock.connection_id, data)
            handle_ack(ack, counted.notifier)
            process_deadline_message(take_deadline_from(counted.deadlines), counted.notifier)
    finally:
        sock.close()
    return log


def test_realtime_acked(counted: Counted) -> None:
    log = realtime_acked(counted, "ra")
    assert log.count() == {
        USER_READ: 1,  # online? devices? preferences?
        "deliveries POST": 1,  # insert the record with the in-app channel claimed and its send recorded
        "wps POST": 1,  # send to the user
        "deliveries PATCH": 1,  # record the ack (the send was recorded with its claim, ahead of it)
        "deadlines POST": 1,  # the ack deadline
        "deliveries GET": 1,  # the deadline reads the record and stops (the ack decides on the row as
        # this instance wrote it, its write conditional on that ETag)
    }
    assert len(log.seen) == 6  # before: 7 (the ack read the record), 8 (the send had a record of its own)


def test_not_acked_falls_back_to_push(counted: Counted) -> None:
    register_device(counted, "rn")
    sock = connect(counted, "rn")
    try:
        with counted.counting() as log:
            deliver_with(counted.notifier, counted.poison, notification("rn"))
            process_deadline_message(take_deadline_from(counted.deadlines), counted.notifier)
    finally:
        sock.close()
    assert log.count() == {
        USER_READ: 2,  # on arrival; again at the deadline (preferences and quiet hours may have changed)
        "deliveries POST": 1,
        "wps POST": 1,
        "deliveries PATCH": 2,  # claim the push; record the push (the in-app send: recorded with its claim)
        "deadlines POST": 1,
        "deliveries GET": 1,  # the deadline reads the record
        "nh POST": 1,  # the template send
    }
    assert len(log.seen) == 9  # before: 10 (the device-index query was the second read), then 10


def test_offline_is_pushed(counted: Counted) -> None:
    register_device(counted, "op")
    with counted.counting() as log:
        deliver_with(counted.notifier, counted.poison, notification("op"))
    assert log.count() == {
        USER_READ: 1,
        "deliveries POST": 1,  # insert with the push claimed
        "nh POST": 1,
        "deliveries PATCH": 1,  # record the push
    }
    assert len(log.seen) == 4  # before: 5


def test_offline_without_devices(counted: Counted) -> None:
    with counted.counting() as log:
        deliver_with(counted.notifier, counted.poison, notification("nd"))
    assert log.count() == {
        USER_READ: 1,
        "deliveries POST": 1,  # inserted as no_devices: nothing to claim, nothing to send
    }
    assert len(log.seen) == 2  # before: 4


def test_both(counted: Counted) -> None:
    register_device(counted, "bo")
    sock = connect(counted, "bo")
    try:
        with counted.counting() as log:
            deliver_with(counted.notifier, counted.poison, notification("bo", delivery="both"))
    finally:
        sock.close()
    assert log.count() == {
        USER_READ: 1,  # preferences (and devices)
        "deliveries POST": 1,  # insert with both channels claimed
        "wps POST": 1,
        "deliveries PATCH": 2,  # record the in-app send; record the push
        "nh POST": 1,
    }
    assert len(log.seen) == 6  # before: 7


def test_muted_offline(counted: Counted) -> None:
    register_device(counted, "mo")
    counted.users.replace_preferences("mo", parse_preferences({"channels": {"push": False}}))
    with counted.counting() as log:
        deliver_with(counted.notifier, counted.poison, notification("mo"))
    assert log.count() == {USER_READ: 1, "deliveries POST": 1}  # inserted as suppressed, with its rule


def test_deferred_offline_then_pushed(counted: Counted) -> None:
    register_device(counted, "dq")
    window = {"start": "00:00", "end": "24:00"}
    counted.users.replace_preferences("dq", parse_preferences(
        {"quietHours": {"timeZone": "Europe/Berlin", "windows": [window]}}
    ))
    with counted.counting() as log:
        deliver_with(counted.notifier, counted.poison, notification("dq"))
    assert log.count() == {
        USER_READ: 1,
        "deliveries POST": 1,  # inserted as deferred
        "deadlines POST": 1,  # the deferral: a deadline message delayed to the window's end
    }


def test_pushed_then_read_then_retracted(counted: Counted) -> None:
    register_device(counted, "rr")
    document = notification("rr")
    deliver_with(counted.notifier, counted.poison, document)
    with counted.counting() as log:
        counted.notifier.handle_read("rr", document["notificationId"])
    assert log.count() == {
        "deliveries GET": 1,
        "deliveries PATCH": 2,  # record the read with the retract claimed; record the retract
        "nh POST": 1,  # the retract: one template send reaches every device of the user
    }
