"""PushSender over the wire: Azurite device index plus the NH emulator's push sink."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from azure.data.tables import TableClient

from devstack.azurite import RunningAzurite
from devstack.notificationhubs.emulator import RunningNotificationHubs
from notify.devices import DeviceRegistry
from notify.model import Notification
from notify.push import PushSender
from shared.errors import InvalidMessageError, TransientError
from shared.notification_hubs import NotificationHubsClient
from shared.retry import RetryPolicy

pytestmark = pytest.mark.integration

APNS = "0a" * 32
FCM = "cZ1:APA91b" + "q" * 140


@pytest.fixture
def parts(
    azurite: RunningAzurite,
    notification_hubs_emulator: RunningNotificationHubs,
    nh_hub: str,
    unique_name: Callable[[str], str],
) -> Iterator[tuple[DeviceRegistry, PushSender]]:
    table = TableClient.from_connection_string(azurite.connection_string, unique_name("devices"))
    table.create_table()
    nh = NotificationHubsClient(
        notification_hubs_emulator.hub_connection_string(nh_hub),
        retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02, budget_seconds=5),
    )
    registry = DeviceRegistry(table, nh)
    try:
        yield registry, PushSender(nh, registry)
    finally:
        nh.close()
        table.delete_table()
        table.close()


def _notification(user: str = "alice", body: str = "hello") -> Notification:
    return Notification(
        notification_id="nid-42", user_id=user, title="Hi", body=body, type="chat", data={"room": "r1"}
    )


def test_push_reaches_every_device_of_the_user_only(
    parts: tuple[DeviceRegistry, PushSender], notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    registry, sender = parts
    registry.register("alice", "phone", "apns", APNS)
    registry.register("alice", "tablet", "fcmv1", FCM)
    registry.register("bob", "bobs-phone", "apns", "cc" * 32)
    result = sender.send(_notification())
    assert result.outcome == "pushed"
    assert result.nh_notification_id
    pushes = notification_hubs_emulator.wait_for_pushes(2, timeout=5, hub=nh_hub)
    assert sorted(p["installationId"] for p in pushes) == ["phone", "tablet"]
    assert {p["notificationId"] for p in pushes} == {result.nh_notification_id}
    assert all(p["outcome"] == "delivered" for p in pushes)
    by_id = {p["installationId"]: p["payload"] for p in pushes}
    assert by_id["phone"]["notificationId"] == "nid-42"
    assert by_id["tablet"]["message"]["data"]["notificationId"] == "nid-42"
    assert json.loads(by_id["tablet"]["message"]["data"]["data"]) == {"room": "r1"}
    assert notification_hubs_emulator.pushes(hub=nh_hub, installation_id="bobs-phone") == []


def test_no_devices_makes_no_nh_call(
    parts: tuple[DeviceRegistry, PushSender], notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    _, sender = parts
    # Any call to NH would hit this permanent fault and raise.
    notification_hubs_emulator.inject_fault(status=400, count=1)
    result = sender.send(_notification(user="nobody"))
    assert result.outcome == "no_devices"
    assert result.nh_notification_id is None
    assert [f["count"] for f in notification_hubs_emulator.state.faults.armed()] == [1]


def test_429_then_success_pushes_exactly_once(
    parts: tuple[DeviceRegistry, PushSender], notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    registry, sender = parts
    registry.register("alice", "phone", "apns", APNS)
    notification_hubs_emulator.inject_fault(status=429, count=1, retry_after=0, path="/messages")
    assert sender.send(_notification()).outcome == "pushed"
    notification_hubs_emulator.wait_for_pushes(1, timeout=5, hub=nh_hub)
    assert len(notification_hubs_emulator.pushes(hub=nh_hub)) == 1


def test_persistent_503_is_transient(
    parts: tuple[DeviceRegistry, PushSender], notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    registry, sender = parts
    registry.register("alice", "phone", "apns", APNS)
    notification_hubs_emulator.inject_fault(status=503, count=5, path="/messages")
    with pytest.raises(TransientError):
        sender.send(_notification())
    assert notification_hubs_emulator.pushes(hub=nh_hub) == []


def test_oversize_payload_is_refused_before_sending(
    parts: tuple[DeviceRegistry, PushSender], notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    registry, sender = parts
    registry.register("alice", "phone", "apns", APNS)
    with pytest.raises(InvalidMessageError):
        sender.send(_notification(body="x" * 5000))
    assert notification_hubs_emulator.pushes(hub=nh_hub) == []
