"""Presence over the wire: trigger handlers on Azurite tables, sweep against the Web PubSub emulator."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
import websocket
from azure.data.tables import TableClient
from azure.messaging.webpubsubservice import WebPubSubServiceClient

from devstack.notificationhubs.emulator import RunningNotificationHubs
from devstack.webpubsub.running import RunningWebPubSub
from notify.blueprints.presence import handle_connected, handle_disconnected, sweep_presence
from notify.devices import DeviceRegistry
from notify.preferences import parse_preferences
from notify.presence import PresenceStore
from notify.realtime import RealtimeSender
from notify.user_state import UserDirectory, UserState
from shared.notification_hubs import NotificationHubsClient

pytestmark = pytest.mark.integration


@pytest.fixture
def table(azurite_table: TableClient) -> TableClient:
    return azurite_table


@pytest.fixture
def wps_client(
    webpubsub_emulator: RunningWebPubSub, unique_name: Callable[[str], str]
) -> Iterator[WebPubSubServiceClient]:
    client = WebPubSubServiceClient.from_connection_string(
        webpubsub_emulator.connection_string, hub=unique_name("hub"), retry_total=0
    )
    yield client
    client.close()


def event(event_name: str, user_id: str | None, connection_id: str, event_type: str = "System") -> str:
    """A ``request`` string as the Functions extension hands it to Python (contracts 3.2)."""
    return json.dumps(
        {
            "connectionContext": {
                "eventType": event_type,
                "eventName": event_name,
                "hub": "notify",
                "connectionId": connection_id,
                "userId": user_id,
                "signature": "sha256=00",
                "origin": "127.0.0.1",
                "states": {},
                "headers": {},
            },
            "reason": None,
        }
    )


def test_connected_and_disconnected_triggers_maintain_rows(table: TableClient) -> None:
    presence = PresenceStore(table)
    handle_connected(event("connected", "Alice", "c1"), presence)
    handle_connected(event("connected", "Alice", "c2"), presence)
    handle_connected(event("connected", "bob", "c3"), presence)
    assert presence.is_online("Alice") and presence.is_online("bob")
    assert sorted(presence.connections("Alice")) == ["c1", "c2"]

    handle_disconnected(event("disconnected", "Alice", "c1"), presence)
    assert presence.connections("Alice") == ["c2"]
    handle_disconnected(event("disconnected", "Alice", "c2"), presence)
    handle_disconnected(event("disconnected", "Alice", "c2"), presence)  # already gone: fine
    assert not presence.is_online("Alice")
    assert presence.is_online("bob")


def test_events_without_a_user_are_ignored(table: TableClient) -> None:
    presence = PresenceStore(table)
    handle_connected(event("connected", None, "c1"), presence)
    handle_connected("not json", presence)
    assert list(table.list_entities()) == []


def test_sweep_removes_only_old_rows_whose_connection_is_gone(
    table: TableClient, wps_client: WebPubSubServiceClient
) -> None:
    url = wps_client.get_client_access_token(user_id="carol")["url"]
    ws = websocket.create_connection(url, subprotocols=["json.webpubsub.azure.v1"], timeout=10)
    try:
        connected = json.loads(ws.recv())
        assert connected["event"] == "connected"
        live_id = connected["connectionId"]
        old = PresenceStore(table, clock=lambda: 1000.0)
        old.connected("carol", live_id)
        old.connected("carol", "gone-connection")
        old.connected("dave", "gone-too")
        recent = PresenceStore(table)
        recent.connected("erin", "not-yet-old")  # gone, but too young to sweep

        removed = sweep_presence(recent, RealtimeSender(wps_client), older_than_seconds=300)

        assert removed == 2
        assert recent.connections("carol") == [live_id]
        assert not recent.is_online("dave")
        assert recent.connections("erin") == ["not-yet-old"]
    finally:
        ws.close()


@pytest.mark.parametrize(
    ("user_id", "connection_id"),
    [
        ("victim ", "c1"),  # would come back trimmed from a real ce-userId header
        ("a\nb", "c1"),
        ("x" * 257, "c1"),
        ("alice", "has/slash"),
        ("alice", "has#hash"),
        ("alice", "q?"),
        ("alice", "back\\slash"),
        ("alice", "x" * 257),
        ("alice", ""),
    ],
)
def test_events_with_unusable_ids_are_ignored(table: TableClient, user_id: str, connection_id: str) -> None:
    presence = PresenceStore(table)
    handle_connected(event("connected", user_id, connection_id), presence)
    handle_disconnected(event("disconnected", user_id, connection_id), presence)
    assert list(table.list_entities()) == []


def test_deeply_nested_events_are_ignored(table: TableClient) -> None:
    presence = PresenceStore(table)
    nested = event("connected", "alice", "c1")[:-1] + ', "claims": ' + "[" * 5000 + "]" * 5000 + "}"
    handle_connected(nested, presence)
    assert list(table.list_entities()) == []


def test_connection_rows_share_the_user_partition_with_devices_and_preferences(
    table: TableClient, notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    """One partition per user holds device-index, connection and preferences rows; none passes for another."""
    presence = PresenceStore(table)
    directory = UserDirectory(table)
    nh = NotificationHubsClient(notification_hubs_emulator.connection_string, nh_hub)
    registry = DeviceRegistry(table, nh)
    try:
        registry.register("zoe", "zoes-phone", "apns", "0c" * 32)
        directory.replace_preferences("zoe", parse_preferences({"channels": {"push": False}}))
        assert not presence.is_online("zoe") and presence.connections("zoe") == []
        assert directory.read("zoe") == UserState(1, parse_preferences({"channels": {"push": False}}), False)

        presence.connected("zoe", "c-9")
        PresenceStore(table, clock=lambda: 1000.0).connected("zoe", "c-old")
        state = directory.read("zoe")
        assert (state.online, state.device_count) == (True, 1)
        assert sorted(presence.connections("zoe")) == ["c-9", "c-old"]

        assert presence.sweep(300, connection_exists=lambda _: False) == 1  # c-old only
        assert presence.connections("zoe") == ["c-9"]
        presence.disconnected("zoe", "c-9")
        assert not presence.is_online("zoe")
        assert registry.has_devices("zoe")  # the device row is untouched
        registry.unregister("zoe", "zoes-phone")
        assert not registry.has_devices("zoe")  # the preferences row is not a device
        assert directory.read("zoe").device_count == 0
    finally:
        nh.close()
