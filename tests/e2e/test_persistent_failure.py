"""Through the local host: a notification whose push keeps failing ends in the poison queue, never lost.

The host retries the message up to host.json's ``maxDequeueCount`` (5) and then moves it to
``<queue>-poison``; re-enqueueing it once the outage is over delivers it exactly once.
"""

from __future__ import annotations

import base64
import contextlib
import time
import uuid
from collections.abc import Iterator

import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient

from devstack.stack import RunningStack, StackPorts, running_stack
from notify.client import NotificationClient
from shared.auth import make_dev_token
from shared.user_keys import user_tag

pytestmark = pytest.mark.e2e

DEV_SECRET = "devstack-auth-secret-not-for-production"  # local.settings.json.example
QUEUE = "notifications"
FAST_RETRIES = {
    # Shorten the waits between the host's attempts; the dequeue count limit stays host.json's 5.
    "AzureFunctionsJobHost__extensions__queues__visibilityTimeout": "00:00:00",
    "AzureFunctionsJobHost__extensions__queues__maxPollingInterval": "00:00:00.200",
    "RETRY_MAX_ATTEMPTS": "1",
}


@pytest.fixture(scope="module")
def stack() -> Iterator[RunningStack]:
    with running_stack(ports=StackPorts.free(), persist=False, app_env=FAST_RETRIES) as running:
        yield running


def register_device(stack: RunningStack, user_id: str) -> None:
    token = make_dev_token(DEV_SECRET, user_id)
    response = requests.put(
        f"{stack.functions_host.url}/api/devices/dev-{uuid.uuid4().hex[:12]}",
        json={"platform": "apns", "pushChannel": "0a" * 32},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text


def wait_for_message(queue: QueueClient, timeout: float) -> bytes:
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        with contextlib.suppress(ResourceNotFoundError):  # the host creates the poison queue on first use
            for message in queue.receive_messages(max_messages=1):
                queue.delete_message(message)
                return base64.b64decode(message.content)
        time.sleep(0.2)
    raise AssertionError(f"nothing arrived in {queue.queue_name} within {timeout} s")


def test_persistent_push_failure_ends_in_the_poison_queue_and_is_not_lost(stack: RunningStack) -> None:
    user = "outage-" + uuid.uuid4().hex[:8]
    register_device(stack, user)
    nh = stack.notification_hubs
    nh.inject_fault(status=503, count=10_000, path="/notify/messages")
    conn = stack.azurite.connection_string
    producer = NotificationClient.from_connection_string(conn, QUEUE)
    notification_id = producer.send(user, "Outage", "Still there?", delivery="push")

    poison = QueueClient.from_connection_string(conn, QUEUE + "-poison")
    body = wait_for_message(poison, timeout=60)
    assert notification_id.encode() in body
    assert nh.pushes(tag=user_tag(user)) == []
    log = stack.functions_host.log_lines
    attempts = [line for line in log if "Executed 'Functions.deliver_notification' (Failed" in line]
    assert len(attempts) == 5, attempts

    nh.clear_faults()
    producer_queue = QueueClient.from_connection_string(conn, QUEUE)
    producer_queue.send_message(base64.b64encode(body).decode())  # an operator replays the poison message
    nh.wait_for_pushes(1, timeout=30, tag=user_tag(user))
    time.sleep(1)  # a second, duplicate push would show up here
    assert len(nh.pushes(tag=user_tag(user))) == 1
