"""The Notification Hubs client over the wire against the local NH emulator."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from devstack.net import free_port
from devstack.notificationhubs.emulator import RunningNotificationHubs
from notify.model import Notification
from notify.push_templates import PushOptions, installation_templates, notification_tags, template_properties
from shared.errors import BadRequestError, TransientError, UpstreamError
from shared.notification_hubs import NotificationHubsClient
from shared.retry import RetryPolicy

pytestmark = pytest.mark.integration

FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02, budget_seconds=5)
APNS_TOKEN = "ab" * 32


@pytest.fixture
def client(
    notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> Iterator[NotificationHubsClient]:
    nh = NotificationHubsClient(notification_hubs_emulator.hub_connection_string(nh_hub), retry=FAST)
    yield nh
    nh.close()


def _installation(installation_id: str, tag: str = "user:alice") -> dict[str, object]:
    return {
        "installationId": installation_id,
        "platform": "apns",
        "pushChannel": APNS_TOKEN,
        "tags": [tag],
        "templates": installation_templates("apns"),
    }


def test_installation_round_trip(client: NotificationHubsClient) -> None:
    client.put_installation(_installation("dev-1"))
    stored = client.get_installation("dev-1")
    assert stored is not None
    assert stored["tags"] == ["user:alice"]
    assert stored["pushChannel"] == APNS_TOKEN
    client.delete_installation("dev-1")
    assert client.get_installation("dev-1") is None
    client.delete_installation("dev-1")  # already gone is success


def test_namespace_string_with_hub_name(
    notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    nh = NotificationHubsClient(notification_hubs_emulator.connection_string, hub_name=nh_hub, retry=FAST)
    try:
        nh.put_installation(_installation("dev-ns"))
        assert notification_hubs_emulator.installation(nh_hub, "dev-ns") is not None
    finally:
        nh.close()


def test_template_send_renders_on_the_device(
    client: NotificationHubsClient, notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    client.put_installation(_installation("dev-2"))
    notification = Notification(notification_id="nid-7", user_id="alice", title="T", body="B", data={"k": 1})
    properties = template_properties(notification, PushOptions(), now=0.0)
    result = client.send_template(properties, notification_tags("user:alice"))
    assert result.status in (200, 201)
    assert result.notification_id
    (push,) = notification_hubs_emulator.wait_for_pushes(1, timeout=5, hub=nh_hub)
    assert push["notificationId"] == result.notification_id
    assert push["installationId"] == "dev-2"
    assert push["payload"]["notificationId"] == "nid-7"
    assert push["payload"]["aps"]["alert"] == {"title": "T", "body": "B"}
    assert json.loads(push["payload"]["data"]) == {"k": 1}


def test_429_then_success_pushes_once(
    client: NotificationHubsClient, notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    client.put_installation(_installation("dev-3"))
    notification_hubs_emulator.inject_fault(status=429, count=1, retry_after=0, path="/messages")
    client.send_template({"title": "x"}, notification_tags("user:alice"))
    assert len(notification_hubs_emulator.wait_for_pushes(1, timeout=5, hub=nh_hub)) == 1
    assert len(notification_hubs_emulator.pushes(hub=nh_hub)) == 1


def test_persistent_503_raises_transient_after_budget(
    client: NotificationHubsClient, notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    client.put_installation(_installation("dev-4"))
    notification_hubs_emulator.inject_fault(status=503, count=10, path="/messages")
    with pytest.raises(TransientError) as info:
        client.send_template({"title": "x"}, notification_tags("user:alice"))
    assert info.value.upstream_status == 503
    # The policy allows 3 attempts: 3 of the 10 armed faults were used.
    assert [f["count"] for f in notification_hubs_emulator.state.faults.armed()] == [7]
    assert notification_hubs_emulator.pushes(hub=nh_hub) == []


def test_403_with_retry_after_is_retried(
    client: NotificationHubsClient, notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    client.put_installation(_installation("dev-5"))
    notification_hubs_emulator.inject_fault(status=403, count=1, retry_after=0, path="/messages")
    client.send_template({"title": "x"}, notification_tags("user:alice"))
    assert len(notification_hubs_emulator.wait_for_pushes(1, timeout=5, hub=nh_hub)) == 1


def test_403_without_retry_after_is_permanent(
    client: NotificationHubsClient, notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    client.put_installation(_installation("dev-6"))
    notification_hubs_emulator.inject_fault(status=403, count=1, path="/messages")
    with pytest.raises(UpstreamError) as info:
        client.send_template({"title": "x"}, notification_tags("user:alice"))
    assert not isinstance(info.value, TransientError)
    assert info.value.upstream_status == 403
    assert notification_hubs_emulator.pushes(hub=nh_hub) == []
    client.send_template({"title": "x"}, notification_tags("user:alice"))  # the fault was used once
    assert len(notification_hubs_emulator.wait_for_pushes(1, timeout=5, hub=nh_hub)) == 1


def test_bad_request_carries_the_xml_detail(client: NotificationHubsClient) -> None:
    too_many = " && ".join(f"t{i}" for i in range(7))
    with pytest.raises(UpstreamError) as info:
        client.send_template({"title": "x"}, too_many)
    assert not isinstance(info.value, TransientError)
    assert info.value.upstream_status == 400
    assert "<Detail>" not in info.value.message and "(no detail)" not in info.value.message


def test_missing_send_right_is_a_permanent_401(
    notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    nh = NotificationHubsClient(
        notification_hubs_emulator.hub_connection_string(nh_hub, listen_only=True), retry=FAST
    )
    try:
        nh.put_installation(_installation("dev-listen"))  # Listen suffices for installations
        with pytest.raises(UpstreamError) as info:
            nh.send_template({"title": "x"}, "user:alice")
        assert info.value.upstream_status == 401
        assert "Send claim" in info.value.message
    finally:
        nh.close()


def test_wrong_key_is_401(notification_hubs_emulator: RunningNotificationHubs, nh_hub: str) -> None:
    good = notification_hubs_emulator.hub_connection_string(nh_hub)
    bad = good.replace("SharedAccessKey=", "SharedAccessKey=x")
    nh = NotificationHubsClient(bad, retry=FAST)
    try:
        with pytest.raises(UpstreamError) as info:
            nh.get_installation("any")
        assert info.value.upstream_status == 401
    finally:
        nh.close()


def test_connection_refused_is_transient() -> None:
    port = free_port("127.0.0.1")
    nh = NotificationHubsClient(
        f"Endpoint=http://127.0.0.1:{port}/;SharedAccessKeyName=r;SharedAccessKey=k;EntityPath=h", retry=FAST
    )
    try:
        with pytest.raises(TransientError):
            nh.get_installation("any")
    finally:
        nh.close()


def test_body_over_64_kb_is_refused_before_sending(
    client: NotificationHubsClient, notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    client.put_installation(_installation("dev-7"))
    with pytest.raises(BadRequestError):
        client.send_template({"title": "x" * (65 * 1024)}, "user:alice")
    assert notification_hubs_emulator.pushes(hub=nh_hub) == []
