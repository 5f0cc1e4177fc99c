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
from azure.core.exceptions import ResourceNotFoundError

from devstack.demo import DemoTarget, register_device, target_for_stack, wait_until
from devstack.stack import RunningStack, StackPorts, running_stack
from notify.client import NotificationClient
from shared.user_keys import user_tag

pytestmark = pytest.mark.e2e

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


@pytest.fixture(scope="module")
def target(stack: RunningStack) -> DemoTarget:
    return target_for_stack(stack, FAST_RETRIES)


def take_one(target: DemoTarget, setting: str, suffix: str = "") -> bytes | None:
    """Receive and delete one message (its decoded body), or None (also while the queue does not exist)."""
    with target.queue(setting, suffix) as queue, contextlib.suppress(ResourceNotFoundError):
        for message in queue.receive_messages(max_messages=1):
            queue.delete_message(message)
            return base64.b64decode(message.content)
    return None


def test_persistent_push_failure_ends_in_the_poison_queue_and_is_not_lost(
    stack: RunningStack, target: DemoTarget
) -> None:
    user = "outage-" + uuid.uuid4().hex[:8]
    register_device(target, user, "dev-" + uuid.uuid4().hex[:12])
    nh = stack.notification_hubs
    nh.inject_fault(status=503, count=10_000, path="/notify/messages")
    queue = target.setting("NOTIFICATIONS_QUEUE")
    producer = NotificationClient.from_connection_string(target.storage_connection_string, queue)
    notification_id = producer.send(user, "Outage", "Still there?", delivery="push")

    body = wait_until(lambda: take_one(target, "NOTIFICATIONS_QUEUE", "-poison"), 60, "nothing was poisoned")
    assert notification_id.encode() in body
    assert nh.pushes(tag=user_tag(user)) == []
    log = stack.functions_host.log_lines
    attempts = [line for line in log if "Executed 'Functions.deliver_notification' (Failed" in line]
    assert len(attempts) == 5, attempts

    nh.clear_faults()
    with target.queue("NOTIFICATIONS_QUEUE") as replay:  # an operator replays the poison message
        replay.send_message(base64.b64encode(body).decode())  # base64, as the trigger expects
    wait_until(lambda: nh.pushes(tag=user_tag(user)), 30, "the replayed message was not pushed")
    time.sleep(1)  # a second, duplicate push would show up here
    assert len(nh.pushes(tag=user_tag(user))) == 1
