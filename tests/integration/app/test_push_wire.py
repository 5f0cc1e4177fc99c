"""PushSender over the wire: installations registered by the real DeviceRegistry (Azurite), pushes read
from the NH emulator's sink as each platform would receive them: payload, collapse id, expiry, priority."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import pytest
from azure.data.tables import TableClient

from devstack.azurite import RunningAzurite
from devstack.notificationhubs.emulator import RunningNotificationHubs
from notify.devices import DeviceRegistry
from notify.model import Notification
from notify.push import PushSender
from notify.push_templates import FCM_MAX_TTL_SECONDS, PushOptions, collapse_id
from shared.errors import InvalidMessageError, TransientError
from shared.notification_hubs import NotificationHubsClient
from shared.retry import RetryPolicy

pytestmark = pytest.mark.integration

APNS = "0a" * 32
FCM = "cZ1:APA91b" + "q" * 140
NOW = 1_900_000_000.0


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
        yield registry, PushSender(nh, clock=lambda: NOW)
    finally:
        nh.close()
        table.delete_table()
        table.close()


def _notification(user: str = "alice", body: str = "hello", notification_id: str = "nid-42") -> Notification:
    return Notification(
        notification_id=notification_id, user_id=user, title="Hi", body=body, type="chat", data={"room": "r1"}
    )


def by_platform(pushes: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    return {str(p["platform"]): p for p in pushes}


def test_push_reaches_every_device_of_the_user_only_with_the_notification_template(
    parts: tuple[DeviceRegistry, PushSender], notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    registry, sender = parts
    registry.register("alice", "phone", "apns", APNS)
    registry.register("alice", "tablet", "fcmv1", FCM)
    registry.register("bob", "bobs-phone", "apns", "cc" * 32)
    result = sender.send(_notification(), PushOptions())
    assert result.outcome == "pushed"
    assert result.nh_notification_id
    pushes = notification_hubs_emulator.wait_for_pushes(2, timeout=5, hub=nh_hub)
    time.sleep(0.1)  # a push to the retract template would be recorded by now
    pushes = notification_hubs_emulator.pushes(hub=nh_hub)
    assert sorted((p["installationId"], p["template"]) for p in pushes) == [
        ("phone", "notify-v1"), ("tablet", "notify-v1")
    ]
    assert all(p["outcome"] == "delivered" for p in pushes), [p["reason"] for p in pushes]
    by_id = {p["installationId"]: p["payload"] for p in pushes}
    assert by_id["phone"]["notificationId"] == "nid-42" and by_id["phone"]["kind"] == "notification"
    assert by_id["tablet"]["message"]["data"]["notificationId"] == "nid-42"
    assert json.loads(by_id["tablet"]["message"]["data"]["data"]) == {"room": "r1"}
    assert notification_hubs_emulator.pushes(hub=nh_hub, installation_id="bobs-phone") == []


def test_every_push_carries_collapse_id_expiry_and_priority_as_each_platform_expects(
    parts: tuple[DeviceRegistry, PushSender], notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    registry, sender = parts
    registry.register("alice", "phone", "apns", APNS)
    registry.register("alice", "tablet", "fcmv1", FCM)
    sender.send(_notification(notification_id="n-ttl"), PushOptions("high", expires_at=NOW + 3600.5))
    sender.send(_notification(notification_id="n-normal"), PushOptions("normal"))
    pushes = notification_hubs_emulator.wait_for_pushes(4, timeout=5, hub=nh_hub)
    assert all(p["outcome"] == "delivered" for p in pushes), [p["reason"] for p in pushes]

    def of(notification_id: str) -> dict[str, dict[str, object]]:
        return by_platform([p for p in pushes if notification_id in str(p["payloadText"])])

    with_ttl, normal = of("n-ttl"), of("n-normal")
    assert with_ttl["apns"]["headers"] == {
        "apns-push-type": "alert",
        "apns-priority": "10",
        "apns-collapse-id": "n-ttl",
        "apns-expiration": str(int(NOW + 3600)),
    }
    android = with_ttl["fcmv1"]["payload"]["message"]["android"]  # type: ignore[index]
    assert android == {"ttl": "3600s", "priority": "HIGH", "notification": {"tag": "n-ttl"}}
    assert with_ttl["fcmv1"]["headers"] == {}  # FCM takes all of it in the payload
    assert normal["apns"]["headers"] == {
        "apns-push-type": "alert", "apns-priority": "5", "apns-collapse-id": "n-normal"
    }
    android = normal["fcmv1"]["payload"]["message"]["android"]  # type: ignore[index]
    tag = {"tag": "n-normal"}
    assert android == {"ttl": f"{FCM_MAX_TTL_SECONDS}s", "priority": "NORMAL", "notification": tag}


def test_a_long_notification_id_gets_a_collapse_id_apns_accepts(
    parts: tuple[DeviceRegistry, PushSender], notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    registry, sender = parts
    registry.register("alice", "phone", "apns", APNS)
    long_id = "order-" + "x" * 100
    sender.send(_notification(notification_id=long_id), PushOptions())
    [push] = notification_hubs_emulator.wait_for_pushes(1, timeout=5, hub=nh_hub)
    assert push["outcome"] == "delivered", push["reason"]
    assert push["headers"]["apns-collapse-id"] == collapse_id(long_id) != long_id
    assert push["payload"]["notificationId"] == long_id
    assert push["payload"]["collapseId"] == collapse_id(long_id)


def test_a_retract_is_one_silent_push_per_device(
    parts: tuple[DeviceRegistry, PushSender], notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    registry, sender = parts
    registry.register("alice", "phone", "apns", APNS)
    registry.register("alice", "tablet", "fcmv1", FCM)
    sender.retract("alice", "nid-42", expires_at=NOW + 60)
    pushes = notification_hubs_emulator.wait_for_pushes(2, timeout=5, hub=nh_hub)
    time.sleep(0.1)
    pushes = notification_hubs_emulator.pushes(hub=nh_hub)
    assert sorted(p["template"] for p in pushes) == ["notify-retract-v1", "notify-retract-v1"]
    assert all(p["outcome"] == "delivered" for p in pushes), [p["reason"] for p in pushes]
    apns, fcm = by_platform(pushes)["apns"], by_platform(pushes)["fcmv1"]
    assert apns["payload"] == {
        "aps": {"content-available": 1}, "kind": "retract", "notificationId": "nid-42", "collapseId": "nid-42"
    }
    assert apns["headers"] == {
        "apns-push-type": "background", "apns-priority": "5", "apns-expiration": str(int(NOW + 60))
    }
    assert fcm["payload"] == {  # data-only: nothing for the system tray to show
        "message": {
            "android": {"ttl": "60s", "priority": "NORMAL"},
            "data": {"kind": "retract", "notificationId": "nid-42", "collapseId": "nid-42"},
        }
    }


def test_429_then_success_pushes_exactly_once(
    parts: tuple[DeviceRegistry, PushSender], notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    registry, sender = parts
    registry.register("alice", "phone", "apns", APNS)
    notification_hubs_emulator.inject_fault(status=429, count=1, retry_after=0, path="/messages")
    assert sender.send(_notification(), PushOptions()).outcome == "pushed"
    notification_hubs_emulator.wait_for_pushes(1, timeout=5, hub=nh_hub)
    assert len(notification_hubs_emulator.pushes(hub=nh_hub)) == 1


def test_persistent_503_is_transient(
    parts: tuple[DeviceRegistry, PushSender], notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    registry, sender = parts
    registry.register("alice", "phone", "apns", APNS)
    notification_hubs_emulator.inject_fault(status=503, count=5, path="/messages")
    with pytest.raises(TransientError):
        sender.send(_notification(), PushOptions())
    assert notification_hubs_emulator.pushes(hub=nh_hub) == []


def test_oversize_payload_is_refused_before_sending(
    parts: tuple[DeviceRegistry, PushSender], notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    registry, sender = parts
    registry.register("alice", "phone", "apns", APNS)
    with pytest.raises(InvalidMessageError):
        sender.send(_notification(body="x" * 5000), PushOptions())
    assert notification_hubs_emulator.pushes(hub=nh_hub) == []
