"""Stopping the Functions host in the middle of a stream and starting a new one loses and doubles nothing.

The host is stopped gracefully (SIGTERM: polling stops, in-flight invocations drain, anything still running
after the drain timeout is made visible again). A hard kill (SIGKILL), whose in-flight messages stay
invisible for the host's 10-minute receive visibility and are re-driven by the recovery pass after the
claim lease, is ``test_crash_and_outage.py``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests

from devstack.demo import (
    DemoTarget,
    delivery_row,
    pushed_notification_id,
    queue_length,
    register_device,
    wait_until,
)
from devstack.stack import RunningStack, start_host
from notify.client import NotificationClient

pytestmark = pytest.mark.e2e

BEFORE_STOP = 20
AFTER_STOP = 20
QUIET_SECONDS = 10  # the quiet hours end this long after the test starts: room for a host restart
DRAIN_TIMEOUT = 5.0  # devstack.functions_host.host.DEFAULT_DRAIN_TIMEOUT, what start_host uses


@pytest.mark.parametrize(
    ("push_seconds", "released"),
    [(1.0, False), (DRAIN_TIMEOUT + 2.0, True)],
    ids=["in-flight-pushes-drain", "drain-timeout-releases-messages"],
)
def test_graceful_host_restart_mid_stream_pushes_each_notification_exactly_once(
    e2e_stack: RunningStack,
    e2e_target: DemoTarget,
    e2e_app_env: dict[str, str],
    push_seconds: float,
    released: bool,
) -> None:
    user_id = "restart-" + uuid.uuid4().hex[:12]
    installation_id = "restart-device-" + uuid.uuid4().hex[:12]
    register_device(e2e_target, user_id, installation_id)
    producer = NotificationClient.from_connection_string(
        e2e_target.storage_connection_string, e2e_target.setting("NOTIFICATIONS_QUEUE")
    )
    sent: list[str] = []
    host_stopped = threading.Event()

    def produce() -> None:
        for index in range(BEFORE_STOP + AFTER_STOP):
            if index == BEFORE_STOP:
                host_stopped.wait(60)
            sent.append(producer.send(user_id, f"n{index}", "restart test", delivery="push"))

    def pushed() -> list[str | None]:
        recorded = e2e_stack.notification_hubs.pushes(installation_id=installation_id)
        return [pushed_notification_id(push) for push in recorded]

    # Each push of the first half is slow, so invocations are in flight when the host is stopped; slower
    # than the drain timeout, their messages are released at shutdown and redelivered to the new host.
    e2e_stack.notification_hubs.inject_fault(delay_seconds=push_seconds, count=BEFORE_STOP, path="/messages")
    old_host = e2e_stack.functions_host
    log_start = len(old_host.log_lines)  # the module's host may have run other tests' invocations
    thread = threading.Thread(target=produce, name="restart-test-producer")
    thread.start()
    try:
        started = "Executing 'Functions.deliver_notification'"
        wait_until(
            lambda: any(started in line for line in old_host.log_lines[log_start:]),
            30,
            "the host never started delivering",
        )
        pushed_before_stop = len(pushed())
        assert old_host.stop() == 0
        pushed_by_old_host = len(pushed())
        host_stopped.set()
        e2e_stack.functions_host = start_host(e2e_stack, e2e_app_env)
    finally:
        host_stopped.set()
        thread.join(60)
    e2e_stack.notification_hubs.clear_faults()

    assert len(sent) == BEFORE_STOP + AFTER_STOP
    # The stop came mid-stream: the second half was not enqueued yet, and the first was being pushed
    # (the old host finished in-flight pushes while draining).
    assert pushed_before_stop < pushed_by_old_host
    releases = [line for line in old_host.log_lines[log_start:] if "Released in-flight message" in line]
    assert bool(releases) is released
    wait_until(lambda: len(pushed()) >= len(sent), 30, "not every notification was pushed")
    wait_until(lambda: queue_length(e2e_target, "NOTIFICATIONS_QUEUE") == 0, 30, "the queue never drained")
    counts = Counter(pushed())
    assert set(counts) == set(sent)
    assert [n for n, count in counts.items() if count != 1] == []


def test_a_push_deferred_by_quiet_hours_survives_a_host_restart(
    e2e_stack: RunningStack, e2e_target: DemoTarget, e2e_app_env: dict[str, str]
) -> None:
    """Quiet hours set through PUT /api/preferences defer a push to a delayed deadline message in storage;
    the host that deferred it stops, a new one pushes it once, after the window's end."""
    user_id = "quiet-" + uuid.uuid4().hex[:12]
    installation_id = "quiet-device-" + uuid.uuid4().hex[:12]
    register_device(e2e_target, user_id, installation_id)
    zone = "Australia/Adelaide"  # UTC+09:30 / +10:30: a window read as UTC would be far off
    local = datetime.now(ZoneInfo(zone))
    window = {"start": (local - timedelta(minutes=5)).strftime("%H:%M:%S"),
              "end": (local + timedelta(seconds=QUIET_SECONDS)).strftime("%H:%M:%S")}
    response = requests.put(
        f"{e2e_target.functions_url}/api/preferences",
        headers={"Authorization": "Bearer " + e2e_target.token(user_id)},
        json={"quietHours": {"timeZone": zone, "windows": [window]}},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    producer = NotificationClient.from_connection_string(
        e2e_target.storage_connection_string, e2e_target.setting("NOTIFICATIONS_QUEUE")
    )
    notification_id = producer.send(user_id, "Later", "after quiet hours", delivery="push", ttl_seconds=600)
    row = wait_until(
        lambda: (r := delivery_row(e2e_target, user_id, notification_id)) and r["status"] == "deferred" and r,
        30, "the push was never deferred",
    )
    deferred_until = float(row["deferredUntil"])
    assert e2e_stack.notification_hubs.pushes(installation_id=installation_id) == []

    assert e2e_stack.functions_host.stop() == 0
    e2e_stack.functions_host = start_host(e2e_stack, e2e_app_env)

    [push] = wait_until(
        lambda: e2e_stack.notification_hubs.pushes(installation_id=installation_id),
        QUIET_SECONDS + 30, "the deferred push never came",
    )
    assert time.time() >= deferred_until
    assert pushed_notification_id(push) == notification_id
    android = push["payload"]["message"]["android"]
    assert android["notification"]["tag"] == notification_id and android["ttl"].endswith("s")
    assert int(android["ttl"][:-1]) <= 600
    wait_until(
        lambda: (delivery_row(e2e_target, user_id, notification_id) or {}).get("status") == "pushed",
        10, "the push was not recorded",
    )
    assert len(e2e_stack.notification_hubs.pushes(installation_id=installation_id)) == 1
