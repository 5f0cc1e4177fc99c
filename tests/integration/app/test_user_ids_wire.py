"""User ids that look alike never share presence, deliveries or devices (Azurite and the NH emulator).

The mapping to table keys and tags is tested on its own in tests/unit/app/test_user_keys.py; this checks the
stores themselves, where a store that compared keys loosely (case, normalisation) would merge two users.
"""

from __future__ import annotations

import hashlib
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterator

import pytest
from azure.data.tables import TableClient

from devstack.azurite import RunningAzurite
from devstack.demo import pushed_notification_id
from devstack.notificationhubs.emulator import RunningNotificationHubs
from notify.client import NotificationClient
from notify.deliveries import DeliveryStore
from notify.delivery_machine import new_state
from notify.devices import DeviceRegistry
from notify.model import Delivery, Notification
from notify.presence import PresenceStore
from notify.push import PushSender
from notify.push_templates import PushOptions
from notify.user_state import UserDirectory
from shared.errors import InvalidMessageError
from shared.notification_hubs import NotificationHubsClient
from shared.retry import RetryPolicy
from shared.user_keys import MAX_USER_ID_LENGTH

pytestmark = pytest.mark.integration

LOOKALIKES = [
    ("alice", "Alice"),
    (unicodedata.normalize("NFC", "Zoë"), unicodedata.normalize("NFD", "Zoë")),
    ("tenant/user", "tenant\\user"),
    ("a#b", "a?b"),
    ("victim", "victim\u200b"),  # a zero-width space is allowed inside, and is a different user
    ("x" * MAX_USER_ID_LENGTH, "x" * (MAX_USER_ID_LENGTH - 1) + "y"),
    ("Alice", "sha256:" + hashlib.sha256(b"Alice").hexdigest()),  # an id that spells another's key
]
APNS = "0a" * 32


@pytest.fixture
def tables(azurite: RunningAzurite, unique_name: Callable[[str], str]) -> Iterator[dict[str, TableClient]]:
    made = {}
    for name in ("presence", "deliveries", "devices"):
        table = TableClient.from_connection_string(azurite.connection_string, unique_name(name))
        table.create_table()
        made[name] = table
    yield made
    for table in made.values():
        table.delete_table()
        table.close()


@pytest.fixture
def nh(notification_hubs_emulator: RunningNotificationHubs, nh_hub: str) -> Iterator[NotificationHubsClient]:
    client = NotificationHubsClient(
        notification_hubs_emulator.hub_connection_string(nh_hub),
        retry=RetryPolicy(attempts=2, base_delay=0.01, budget_seconds=2),
    )
    yield client
    client.close()


def _notification(user_id: str, notification_id: str) -> Notification:
    return Notification(notification_id=notification_id, user_id=user_id, title="t", body="b")


@pytest.mark.parametrize(("first", "second"), LOOKALIKES)
def test_lookalike_ids_have_separate_presence_deliveries_and_devices(
    first: str,
    second: str,
    tables: dict[str, TableClient],
    nh: NotificationHubsClient,
    notification_hubs_emulator: RunningNotificationHubs,
    nh_hub: str,
) -> None:
    presence = PresenceStore(tables["presence"])
    presence.connected(first, "conn-1")
    assert presence.is_online(first) and not presence.is_online(second)

    deliveries = DeliveryStore(tables["deliveries"])
    fresh = new_state(Delivery.AUTO, None)
    _, created_first = deliveries.insert(_notification(first, "same-id"), fresh, time.time())
    _, created_second = deliveries.insert(_notification(second, "same-id"), fresh, time.time())
    assert created_first and created_second  # two rows: neither is a "duplicate" of the other
    first_row, second_row = deliveries.get(first, "same-id"), deliveries.get(second, "same-id")
    assert first_row is not None and first_row.user_id == first
    assert second_row is not None and second_row.user_id == second

    devices = DeviceRegistry(tables["devices"], nh)
    installation_id = "dev-" + uuid.uuid4().hex[:12]
    devices.register(first, installation_id, "apns", APNS)
    assert devices.has_devices(first) and not devices.has_devices(second)
    users = UserDirectory(tables["devices"])  # what the notifier reads: one partition per user
    assert users.read(first).has_devices and not users.read(second).has_devices
    sender = PushSender(nh)
    sender.send(_notification(second, "to-second"), PushOptions())  # reaches nobody
    assert sender.send(_notification(first, "to-first"), PushOptions()).outcome == "pushed"
    reached = notification_hubs_emulator.pushes(nh_hub, installation_id=installation_id)
    assert [pushed_notification_id(p) for p in reached] == ["to-first"]


@pytest.mark.parametrize("user_id", ["victim ", "a\nb", "nul\u0000", "x" * (MAX_USER_ID_LENGTH + 1)])
def test_the_producer_refuses_ids_outside_the_rule_before_enqueueing(user_id: str) -> None:
    class NoQueue:
        def send_message(self, content: object) -> None:
            raise AssertionError("must not be enqueued")

    client = NotificationClient(NoQueue())  # type: ignore[arg-type]
    with pytest.raises(InvalidMessageError) as info:
        client.send(user_id, "t", "b")
    assert info.value.field == "userId"
