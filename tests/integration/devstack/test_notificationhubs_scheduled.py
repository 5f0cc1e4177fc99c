"""Scheduled sends of the Notification Hubs emulator (Standard tier) and the tier refusal below it."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devstack.notificationhubs import RunningNotificationHubs, start_notification_hubs_emulator
from tests.integration.devstack.nh_wire import NhClient, error_detail

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
TEMPLATE = '{"message": {"notification": {"title": "$(title)"}}}'


def fcm(installation_id: str, tags: list[str]) -> dict[str, object]:
    return {
        "installationId": installation_id,
        "platform": "fcmv1",
        "pushChannel": f"fcm-{installation_id}",
        "tags": tags,
        "templates": {"main": {"body": TEMPLATE}},
    }


def in_seconds(seconds: float, js_style: bool = True) -> str:
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    if js_style:  # Date.toISOString() in @azure/notification-hubs
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%S")  # .NET / Java / REST samples: UTC, no zone


@pytest.fixture
def client(notification_hubs_emulator: RunningNotificationHubs, nh_hub: str) -> NhClient:
    return NhClient(notification_hubs_emulator.connection_string, nh_hub)


@pytest.mark.parametrize("js_style", [True, False], ids=["iso-with-z", "utc-without-zone"])
def test_a_scheduled_send_is_held_then_fanned_out_to_the_devices_matching_then(
    notification_hubs_emulator: RunningNotificationHubs, nh_hub: str, client: NhClient, js_style: bool
) -> None:
    response = client.schedule({"title": "later"}, "template", in_seconds(2.5, js_style), tags="vip")
    assert response.status_code == 201
    location = response.headers["Location"]
    notification_id = location.split("/schedulednotifications/", 1)[1].split("?", 1)[0]
    assert location.startswith(f"{client.base}{nh_hub}/schedulednotifications/")
    [pending] = notification_hubs_emulator.scheduled(nh_hub)
    assert (pending["notificationId"], pending["tags"]) == (notification_id, "vip")
    # Targets are resolved when the notification fires: a device registered after scheduling gets it.
    assert client.put_installation(fcm("late-vip", ["vip"])).status_code == 200
    assert client.put_installation(fcm("other", ["plain"])).status_code == 200
    assert notification_hubs_emulator.pushes(hub=nh_hub) == []
    [push] = notification_hubs_emulator.wait_for_pushes(1, timeout=15, hub=nh_hub)
    assert (push["installationId"], push["notificationId"]) == ("late-vip", notification_id)
    assert push["payload"]["message"]["notification"]["title"] == "later"
    assert push["scheduledTime"] == pending["scheduledTime"]
    assert push["time"] >= push["scheduledTime"][:19]
    assert notification_hubs_emulator.scheduled(nh_hub) == []


def test_a_cancelled_scheduled_send_never_fires(
    notification_hubs_emulator: RunningNotificationHubs, nh_hub: str, client: NhClient
) -> None:
    assert client.put_installation(fcm("dev", [])).status_code == 200
    doomed = client.schedule({"title": "cancelled"}, "template", in_seconds(1.0))
    doomed_id = doomed.headers["Location"].split("/schedulednotifications/", 1)[1].split("?", 1)[0]
    assert client.cancel_scheduled(doomed_id).status_code == 200
    again = client.cancel_scheduled(doomed_id)
    assert again.status_code == 404
    assert "was not found" in error_detail(again)
    # A later one fires after the cancelled one's time; only it reaches the device.
    assert client.schedule({"title": "kept"}, "template", in_seconds(1.5)).status_code == 201
    [push] = notification_hubs_emulator.wait_for_pushes(1, timeout=15, hub=nh_hub)
    assert push["payload"]["message"]["notification"]["title"] == "kept"


@pytest.mark.parametrize(
    ("schedule_time", "reason"),
    [
        (None, "ScheduleTime header is required"),
        ("tomorrow at noon", "is not a UTC date and time"),
        ("IN_8_DAYS", "at most 7 days in the future"),
    ],
)
def test_bad_schedule_times_are_400(client: NhClient, schedule_time: str | None, reason: str) -> None:
    if schedule_time == "IN_8_DAYS":
        schedule_time = in_seconds(8 * 24 * 3600)
    response = client.schedule({"title": "x"}, "template", schedule_time)
    assert response.status_code == 400
    assert reason in error_detail(response)


def test_scheduling_needs_the_send_right(
    notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    listen = NhClient(notification_hubs_emulator.listen_connection_string, nh_hub)
    response = listen.schedule({"title": "x"}, "template", in_seconds(60))
    assert response.status_code == 401
    assert error_detail(response).startswith("Send claim is required")


@pytest.fixture(params=["free", "basic"])
def lower_tier(request: pytest.FixtureRequest) -> Iterator[RunningNotificationHubs]:
    emulator = start_notification_hubs_emulator(hubs=("notify",), tier=request.param)
    try:
        yield emulator
    finally:
        emulator.stop()


def test_lower_tiers_refuse_scheduled_sends_with_403(lower_tier: RunningNotificationHubs) -> None:
    client = NhClient(lower_tier.connection_string, "notify")
    assert client.put_installation(fcm("dev", [])).status_code == 200
    refused = client.schedule({"title": "later"}, "template", in_seconds(60))
    assert refused.status_code == 403
    assert "Retry-After" not in refused.headers  # a refusal, not throttling
    assert error_detail(refused).startswith("This operation is not available for your tier")
    assert client.cancel_scheduled(uuid.uuid4().hex).status_code == 403
    assert client.send({"title": "now"}, "template").status_code == 201
    assert len(lower_tier.wait_for_pushes(1, timeout=5, hub="notify")) == 1


def test_cli_tier_option_is_validated_and_printed() -> None:
    bad = subprocess.run(
        [sys.executable, "-m", "devstack.notificationhubs", "--tier", "premium"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert "invalid choice: 'premium'" in bad.stderr
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack.notificationhubs", "--tier", "basic"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().strip() for _ in range(3)]
        assert "NOTIFICATION_HUBS_TIER=basic" in lines
        assert lines[-1].startswith("NOTIFICATION_HUBS_CONNECTION_STRING=Endpoint=http://127.0.0.1:")
    finally:
        proc.terminate()
        proc.communicate(timeout=15)
