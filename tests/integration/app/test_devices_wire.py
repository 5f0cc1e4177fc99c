"""Device registration over the wire: Azurite for ownership, the NH emulator for installations."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import azure.functions as func
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

from devstack.azurite import RunningAzurite
from devstack.notificationhubs.emulator import RunningNotificationHubs
from notify.blueprints.devices import register_device_response, unregister_device_response
from notify.devices import DeviceRegistry
from notify.push_templates import template_body
from shared.auth import Authenticator, make_dev_token
from shared.errors import BusyError, ForbiddenError, TransientError, UpstreamError
from shared.notification_hubs import NotificationHubsClient
from shared.retry import RetryPolicy
from shared.settings import AuthSettings
from shared.user_keys import user_key, user_tag

pytestmark = pytest.mark.integration

APNS = "0a" * 32
APNS2 = "1b" * 40
FCM = "cZ1:APA91b" + "q" * 140
SECRET = "dev-secret-for-tests-0123456789abcdef"


@pytest.fixture
def registry(
    azurite: RunningAzurite,
    notification_hubs_emulator: RunningNotificationHubs,
    nh_hub: str,
    unique_name: Callable[[str], str],
) -> Iterator[DeviceRegistry]:
    table = TableClient.from_connection_string(azurite.connection_string, unique_name("devices"))
    table.create_table()
    nh = NotificationHubsClient(
        notification_hubs_emulator.hub_connection_string(nh_hub),
        retry=RetryPolicy(attempts=2, base_delay=0.01, budget_seconds=2),
    )
    try:
        yield DeviceRegistry(table, nh)
    finally:
        nh.close()
        table.delete_table()
        table.close()


def test_register_sets_server_side_tags_user_and_templates(
    registry: DeviceRegistry, notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    assert registry.register("Alice@Example.com", "dev-a", "fcm", FCM) == "fcmv1"
    stored = notification_hubs_emulator.installation(nh_hub, "dev-a")
    assert stored is not None
    assert stored["tags"] == [user_tag("Alice@Example.com")]
    assert stored["userId"] == user_key("Alice@Example.com")
    assert stored["platform"] == "fcmv1"
    assert stored["templates"]["notify-v1"]["body"] == template_body("fcmv1")
    assert registry.has_devices("Alice@Example.com")


def test_other_user_cannot_overwrite_or_delete(
    registry: DeviceRegistry, notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    registry.register("alice", "dev-b", "apns", APNS)
    before = notification_hubs_emulator.installation(nh_hub, "dev-b")
    with pytest.raises(ForbiddenError):
        registry.register("mallory", "dev-b", "apns", APNS2)
    with pytest.raises(ForbiddenError):
        registry.unregister("mallory", "dev-b")
    assert notification_hubs_emulator.installation(nh_hub, "dev-b") == before
    assert not registry.has_devices("mallory")


def test_reregister_is_idempotent_and_replaces_the_channel(
    registry: DeviceRegistry, notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    registry.register("alice", "dev-c", "apns", APNS)
    registry.register("alice", "dev-c", "apns", APNS)
    registry.register("alice", "dev-c", "apns", APNS2)
    stored = notification_hubs_emulator.installation(nh_hub, "dev-c")
    assert stored is not None and stored["pushChannel"] == APNS2


def test_unregister_removes_installation_and_index(
    registry: DeviceRegistry, notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    assert not registry.has_devices("bob")
    registry.register("bob", "dev-d", "apns", APNS)
    assert registry.has_devices("bob")
    registry.unregister("bob", "dev-d")
    assert notification_hubs_emulator.installation(nh_hub, "dev-d") is None
    assert not registry.has_devices("bob")
    registry.unregister("bob", "dev-d")  # gone is success
    registry.register("carol", "dev-d", "apns", APNS)  # the id is free again
    assert registry.has_devices("carol")


# --- the HTTP functions, called as the host calls them -------------------------------------------------

AUTH = Authenticator(AuthSettings(dev_secret=SECRET))


def _request(
    method: str,
    installation_id: str,
    user: str | None,
    body: object = None,
    content_type: str = "application/json",
) -> func.HttpRequest:
    headers = {"Content-Type": content_type}
    if user is not None:
        headers["Authorization"] = f"Bearer {make_dev_token(SECRET, user)}"
    raw = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else b"")
    return func.HttpRequest(
        method=method,
        url=f"http://localhost/api/devices/{installation_id}",
        headers=headers,
        route_params={"installationId": installation_id},
        body=raw,
    )


def _error(resp: func.HttpResponse) -> dict[str, object]:
    error = json.loads(resp.get_body())["error"]
    assert isinstance(error, dict)
    return error


def test_put_and_delete_through_the_function(
    registry: DeviceRegistry, notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    resp = register_device_response(
        _request("PUT", "dev-h", "alice", {"platform": "APNS", "pushChannel": APNS}), AUTH, registry
    )
    assert resp.status_code == 200
    assert json.loads(resp.get_body()) == {"installationId": "dev-h", "platform": "apns"}
    assert notification_hubs_emulator.installation(nh_hub, "dev-h") is not None

    resp = unregister_device_response(_request("DELETE", "dev-h", "mallory"), AUTH, registry)
    assert resp.status_code == 403
    assert _error(resp)["code"] == "forbidden"
    assert notification_hubs_emulator.installation(nh_hub, "dev-h") is not None

    resp = register_device_response(
        _request("PUT", "dev-h", "mallory", {"platform": "apns", "pushChannel": APNS2}), AUTH, registry
    )
    assert resp.status_code == 403

    resp = unregister_device_response(_request("DELETE", "dev-h", "alice"), AUTH, registry)
    assert resp.status_code == 204
    assert notification_hubs_emulator.installation(nh_hub, "dev-h") is None


@pytest.mark.parametrize(
    ("body", "content_type", "field"),
    [
        ({"platform": "apns", "pushChannel": APNS, "tags": ["user:admin"]}, "application/json", "tags"),
        ({"pushChannel": APNS}, "application/json", "platform"),
        ({"platform": "apns"}, "application/json", "pushChannel"),
        ({"platform": "wns", "pushChannel": APNS}, "application/json", "platform"),
        ({"platform": "apns", "pushChannel": APNS, "extra": 1}, "application/json", "extra"),
        (b"{not json", "application/json", None),
        ([1, 2], "application/json", None),
        ({"platform": "apns", "pushChannel": APNS}, "text/plain", None),
    ],
)
def test_bad_bodies_are_400_and_register_nothing(
    registry: DeviceRegistry,
    notification_hubs_emulator: RunningNotificationHubs,
    nh_hub: str,
    body: object,
    content_type: str,
    field: str | None,
) -> None:
    resp = register_device_response(_request("PUT", "dev-x", "alice", body, content_type), AUTH, registry)
    assert resp.status_code == 400
    assert _error(resp).get("field") == field
    assert notification_hubs_emulator.installation(nh_hub, "dev-x") is None
    assert not registry.has_devices("alice")


def test_invalid_installation_id_is_400(registry: DeviceRegistry) -> None:
    resp = register_device_response(
        _request("PUT", "bad.id", "alice", {"platform": "apns", "pushChannel": APNS}), AUTH, registry
    )
    assert resp.status_code == 400
    assert _error(resp)["field"] == "installationId"


def test_unauthenticated_is_401(registry: DeviceRegistry) -> None:
    resp = register_device_response(
        _request("PUT", "dev-y", None, {"platform": "apns", "pushChannel": APNS}), AUTH, registry
    )
    assert resp.status_code == 401
    assert unregister_device_response(_request("DELETE", "dev-y", None), AUTH, registry).status_code == 401


# --- interrupted changes: crashes, failures, a change slower than its lease ------------------------------


class Crash(BaseException):
    """Stands for the process dying: no handler of the registry catches it."""


class CrashingHubs:
    """The real NH client, except that the next call named ``crash_on`` kills the 'process' first."""

    def __init__(self, nh: NotificationHubsClient) -> None:
        self._nh = nh
        self.crash_on: str | None = None

    def __getattr__(self, name: str) -> Any:
        if name == self.crash_on:
            self.crash_on = None
            raise Crash(name)
        return getattr(self._nh, name)


class Clock:
    """Wall time plus an offset the test moves forward (leases are unix seconds in the table)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class Parts:
    table: TableClient
    nh: NotificationHubsClient
    hubs: CrashingHubs
    clock: Clock

    def registry(self, lease_seconds: float = 60.0, wait_seconds: float = 10.0) -> DeviceRegistry:
        return DeviceRegistry(
            self.table, self.hubs, clock=self.clock, lease_seconds=lease_seconds,  # type: ignore[arg-type]
            wait_seconds=wait_seconds,
        )

    def record(self, installation_id: str) -> dict[str, Any] | None:
        try:
            return dict(self.table.get_entity(f"installation:{installation_id}", ""))
        except ResourceNotFoundError:
            return None

    def indexed(self, user_id: str, installation_id: str) -> bool:
        try:
            self.table.get_entity(f"user:{user_key(user_id)}", installation_id)
        except ResourceNotFoundError:
            return False
        return True

    def markers(self) -> list[str]:
        return [str(e["RowKey"]) for e in self.table.query_entities("PartitionKey eq 'repair'")]


@pytest.fixture
def parts(
    azurite: RunningAzurite,
    notification_hubs_emulator: RunningNotificationHubs,
    nh_hub: str,
    unique_name: Callable[[str], str],
) -> Iterator[Parts]:
    table = TableClient.from_connection_string(azurite.connection_string, unique_name("devices"))
    table.create_table()
    nh = NotificationHubsClient(
        notification_hubs_emulator.hub_connection_string(nh_hub),
        retry=RetryPolicy(attempts=2, base_delay=0.01, budget_seconds=2),
    )
    try:
        yield Parts(table, nh, CrashingHubs(nh), Clock())
    finally:
        nh.close()
        table.delete_table()
        table.close()


def test_a_delete_that_crashed_before_nh_is_completed_by_the_repair_pass(
    parts: Parts, notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    registry = parts.registry()
    registry.register("alice", "dev-crash-1", "apns", APNS)
    parts.hubs.crash_on = "delete_installation"
    with pytest.raises(Crash):
        registry.unregister("alice", "dev-crash-1")
    # What the dead process left: NH still has the device, the record says it is being deleted.
    assert notification_hubs_emulator.installation(nh_hub, "dev-crash-1") is not None
    assert (parts.record("dev-crash-1") or {})["state"] == "deleted"
    assert registry.repair() == 0  # the lease is still live: the change might still be running
    parts.clock.offset = 61
    assert registry.repair() == 1
    assert notification_hubs_emulator.installation(nh_hub, "dev-crash-1") is None
    assert parts.record("dev-crash-1") is None and not parts.indexed("alice", "dev-crash-1")
    assert not registry.has_devices("alice")
    assert registry.repair() == 0 and parts.markers() == []


def test_a_registration_that_crashed_before_nh_is_completed_by_the_repair_pass(
    parts: Parts, notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    registry = parts.registry()
    parts.hubs.crash_on = "put_installation"
    with pytest.raises(Crash):
        registry.register("alice", "dev-crash-2", "apns", APNS)
    assert notification_hubs_emulator.installation(nh_hub, "dev-crash-2") is None
    parts.clock.offset = 61
    assert registry.repair() == 1
    stored = notification_hubs_emulator.installation(nh_hub, "dev-crash-2")
    assert stored is not None and stored["tags"] == [user_tag("alice")] and stored["pushChannel"] == APNS
    record = parts.record("dev-crash-2")
    assert record is not None and record["leaseUntil"] == 0 and record["owner"] == "alice"


def test_the_next_change_completes_a_crashed_one_before_deciding(
    parts: Parts, notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    registry = parts.registry()
    registry.register("alice", "dev-crash-3", "apns", APNS)
    parts.hubs.crash_on = "delete_installation"
    with pytest.raises(Crash):
        registry.unregister("alice", "dev-crash-3")  # alice signed out; the delete died halfway
    parts.clock.offset = 61
    registry.register("bob", "dev-crash-3", "apns", APNS2)  # no timer ran: bob's change repairs first
    stored = notification_hubs_emulator.installation(nh_hub, "dev-crash-3")
    assert stored is not None and stored["tags"] == [user_tag("bob")]
    assert not parts.indexed("alice", "dev-crash-3") and parts.indexed("bob", "dev-crash-3")


def test_a_live_lease_makes_other_changes_wait_then_answer_busy(parts: Parts) -> None:
    registry = parts.registry(wait_seconds=0.3)
    parts.hubs.crash_on = "put_installation"
    with pytest.raises(Crash):
        registry.register("alice", "dev-busy", "apns", APNS)
    started = time.monotonic()
    with pytest.raises(BusyError) as raised:
        registry.unregister("alice", "dev-busy")
    assert time.monotonic() - started >= 0.25
    assert raised.value.status == 503 and raised.value.code == "busy" and raised.value.retry_after


def test_a_failed_nh_call_answers_503_and_the_retry_succeeds(
    parts: Parts, notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    registry = parts.registry()
    notification_hubs_emulator.inject_fault(status=503, count=2, method="PUT")
    with pytest.raises(TransientError):
        registry.register("alice", "dev-fail", "apns", APNS)
    record = parts.record("dev-fail")
    assert record is not None and 0 < record["leaseUntil"] <= time.time() + 1  # expired at once
    registry.register("alice", "dev-fail", "apns", APNS2)  # no wait for a lease: the client retries
    stored = notification_hubs_emulator.installation(nh_hub, "dev-fail")
    assert stored is not None and stored["pushChannel"] == APNS2


def test_a_registration_nh_refuses_for_good_leaves_nothing_behind(
    parts: Parts, notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    registry = parts.registry()
    notification_hubs_emulator.inject_fault(status=400, count=1, method="PUT")
    with pytest.raises(UpstreamError) as raised:
        registry.register("alice", "dev-refused", "apns", APNS)
    assert not isinstance(raised.value, TransientError)
    assert parts.record("dev-refused") is None and not parts.indexed("alice", "dev-refused")
    registry.register("bob", "dev-refused", "apns", APNS)  # nothing blocks the installation id


def test_a_registration_slower_than_its_lease_cannot_resurrect_a_deleted_device(
    parts: Parts, notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    slow = parts.registry(lease_seconds=1.0)
    registry = parts.registry(lease_seconds=1.0)
    registry.register("alice", "dev-slow", "apns", APNS)
    # The re-registration's NH PUT arrives at NH only after its lease ran out and a delete went through.
    notification_hubs_emulator.inject_fault(delay_seconds=2.5, count=1, method="PUT")
    outcome: list[BaseException | None] = []

    def reregister() -> None:
        try:
            slow.register("alice", "dev-slow", "apns", APNS2)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome.append(exc)

    thread = threading.Thread(target=reregister)
    thread.start()
    time.sleep(1.3)  # past the lease: the delete takes the installation over
    registry.unregister("alice", "dev-slow")
    thread.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], TransientError), outcome
    # The late PUT landed after the delete; the slow change noticed and put things back.
    assert notification_hubs_emulator.installation(nh_hub, "dev-slow") is None
    assert parts.record("dev-slow") is None and not parts.indexed("alice", "dev-slow")
