"""What webhooks add to a notification's requests, counted on the wire like
``test_requests_per_notification.py`` (whose figures, with webhooks off, stay as they are): one enqueue on
the webhook queue per handling that changed the delivery record, after its sends."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from devstack.azurite import RunningAzurite
from devstack.notificationhubs.emulator import RunningNotificationHubs
from devstack.webpubsub.running import RunningWebPubSub
from notify.blueprints.notifier import process_deadline_message
from tests.integration.app.test_notifier import deliver_with, notification, take_deadline_from
from tests.integration.app.test_requests_per_notification import (
    Counted,
    connect,
    counted_stack,
    realtime_acked,
    register_device,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def counted(
    azurite: RunningAzurite,
    webpubsub_emulator: RunningWebPubSub,
    notification_hubs_emulator: RunningNotificationHubs,
    nh_hub: str,
    unique_name: Callable[[str], str],
) -> Iterator[Counted]:
    with counted_stack(
        azurite, webpubsub_emulator, notification_hubs_emulator, nh_hub, unique_name, webhooks=True
    ) as stack:
        yield stack


def test_realtime_acked_adds_two(counted: Counted) -> None:
    log = realtime_acked(counted, "ra")
    # The delivery's handling and the ack's; the deadline changed nothing.
    assert log.count()["webhooks POST"] == 2
    assert len(log.seen) == 6 + 2  # test_requests_per_notification's count, plus the two
    assert log.seen.index("webhooks POST") > log.seen.index("wps POST"), "after the send"


def test_not_acked_push_adds_two(counted: Counted) -> None:
    register_device(counted, "rn")
    sock = connect(counted, "rn")
    try:
        with counted.counting() as log:
            deliver_with(counted.notifier, counted.poison, notification("rn"))
            process_deadline_message(take_deadline_from(counted.deadlines), counted.notifier)
    finally:
        sock.close()
    assert log.count()["webhooks POST"] == 2
    assert len(log.seen) == 9 + 2
    assert log.seen[-1] == "webhooks POST", "after the push and its record"


@pytest.mark.parametrize(
    ("user", "delivery", "device", "without"),
    [("op", "auto", True, 4), ("nd", "auto", False, 2), ("bo", "both", True, 6)],
)
def test_single_handling_paths_add_one(
    counted: Counted, user: str, delivery: str, device: bool, without: int
) -> None:
    if device:
        register_device(counted, user)
    sock = connect(counted, user) if delivery == "both" else None
    try:
        with counted.counting() as log:
            deliver_with(counted.notifier, counted.poison, notification(user, delivery=delivery))
    finally:
        if sock is not None:
            sock.close()
    assert log.count()["webhooks POST"] == 1
    assert len(log.seen) == without + 1
    assert log.seen[-1] == "webhooks POST"
