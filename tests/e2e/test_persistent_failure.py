"""Through the local host: a notification whose push keeps failing is re-scheduled for the retry horizon,
then lands in the poison queue with its reason, never lost; ``python -m notify poison replay`` delivers it
exactly once when the outage is over, however often it is replayed.

The horizon is scaled down (3 s, attempts 1 s apart) so that the test takes seconds; the e2e test of a
Notification Hubs outage shorter than the horizon is ``test_crash_and_outage.py``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest
from azure.core.exceptions import ResourceNotFoundError

from devstack.demo import (
    DemoTarget,
    delivery_row,
    queue_length,
    register_device,
    target_for_stack,
    wait_until,
)
from devstack.stack import REPO_ROOT, RunningStack, StackPorts, running_stack
from notify.client import NotificationClient
from notify.poison import ENVELOPE_KEY
from shared.user_keys import user_tag

pytestmark = pytest.mark.e2e

FAST_RETRIES = {
    "AzureFunctionsJobHost__extensions__queues__maxPollingInterval": "00:00:00.200",
    "RETRY_MAX_ATTEMPTS": "1",
    "RETRY_DELAY_SECONDS": "1",
    "RETRY_MAX_DELAY_SECONDS": "1",
    "RETRY_HORIZON_SECONDS": "3",
}


@pytest.fixture(scope="module")
def stack() -> Iterator[RunningStack]:
    with running_stack(ports=StackPorts.free(), persist=False, app_env=FAST_RETRIES) as running:
        yield running


@pytest.fixture(scope="module")
def target(stack: RunningStack) -> DemoTarget:
    return target_for_stack(stack, FAST_RETRIES)


def poison_bodies(target: DemoTarget) -> list[bytes]:
    """The decoded bodies in the poison queue, without dequeuing them."""
    with target.queue("NOTIFICATIONS_QUEUE", "-poison") as queue, contextlib.suppress(ResourceNotFoundError):
        return [base64.b64decode(m.content) for m in queue.peek_messages(max_messages=32)]
    return []


def notify_cli(target: DemoTarget, *args: str) -> str:
    """``python -m notify ...`` as an operator runs it, against the test's stack."""
    result = subprocess.run(
        [sys.executable, "-m", "notify", *args, "--connection-string", target.storage_connection_string,
         "--queue", target.setting("NOTIFICATIONS_QUEUE"),
         "--deliveries-table", target.setting("DELIVERIES_TABLE")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_persistent_push_failure_is_retried_for_the_horizon_then_poisoned_with_its_reason_and_replayed_once(
    stack: RunningStack, target: DemoTarget
) -> None:
    user = "outage-" + uuid.uuid4().hex[:8]
    register_device(target, user, "dev-" + uuid.uuid4().hex[:12])
    nh = stack.notification_hubs
    nh.inject_fault(status=503, count=10_000, path="/notify/messages")
    queue = target.setting("NOTIFICATIONS_QUEUE")
    producer = NotificationClient.from_connection_string(target.storage_connection_string, queue)
    notification_id = producer.send(user, "Outage", "Still there?", delivery="push")
    started = time.monotonic()

    [body] = wait_until(lambda: poison_bodies(target), 60, "nothing was poisoned")
    assert time.monotonic() - started >= 3  # not before the horizon
    wrapped = json.loads(body)
    assert wrapped[ENVELOPE_KEY] == 1 and wrapped["notificationId"] == notification_id
    assert "retry horizon 3 s" in wrapped["reason"] and "503" in wrapped["reason"]
    row = delivery_row(target, user, notification_id) or {}
    assert row["status"] == "poisoned" and row["reason"] == wrapped["reason"] and row["attempts"] >= 3
    assert nh.pushes(tag=user_tag(user)) == []
    # Every attempt succeeded as an invocation (re-scheduled, not failed), so the host never retried.
    log = stack.functions_host.log_lines
    assert not [line for line in log if "Executed 'Functions.deliver_notification' (Failed" in line]

    listed = notify_cli(target, "poison", "list")
    assert notification_id in listed and "retry horizon 3 s" in listed and "[record: poisoned]" in listed

    nh.clear_faults()
    assert "1 replayed" in notify_cli(target, "poison", "replay", "--id", notification_id)
    wait_until(lambda: nh.pushes(tag=user_tag(user)), 30, "the replayed notification was not pushed")
    wait_until(lambda: (delivery_row(target, user, notification_id) or {}).get("status") == "pushed", 10,
               "the record does not say pushed")
    assert poison_bodies(target) == []

    # A second replay of the same message (a duplicate in the poison queue) delivers nothing twice.
    with target.queue("NOTIFICATIONS_QUEUE", "-poison") as poison:
        poison.send_message(base64.b64encode(body).decode())
    assert "1 replayed" in notify_cli(target, "poison", "replay", "--since", "5m")
    wait_until(lambda: poison_bodies(target) == [], 10, "the duplicate stayed in the poison queue")
    wait_until(lambda: queue_length(target, "NOTIFICATIONS_QUEUE") == 0, 15, "the replay was not handled")
    assert len(nh.pushes(tag=user_tag(user))) == 1
