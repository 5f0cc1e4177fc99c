"""Device registration over the wire: Azurite for ownership, the NH emulator for installations."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import azure.functions as func
import pytest
from azure.data.tables import TableClient

from devstack.azurite import RunningAzurite
from devstack.notificationhubs.emulator import RunningNotificationHubs
from notify.blueprints.devices import register_device_response, unregister_device_response
from notify.devices import DeviceRegistry
from notify.push_templates import template_body
from shared.auth import Authenticator, make_dev_token
from shared.errors import ForbiddenError
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
