"""The official azure-messaging-webpubsubclient against the emulator: messages, groups, events, recovery."""

from __future__ import annotations

import json
import queue
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from aiohttp import web
from azure.messaging.webpubsubclient import WebPubSubClient, WebPubSubClientCredential
from azure.messaging.webpubsubclient.models import (
    CallbackType,
    OnConnectedArgs,
    OnGroupDataMessageArgs,
    OnServerDataMessageArgs,
    WebPubSubDataType,
)
from azure.messaging.webpubsubservice import WebPubSubServiceClient

from devstack.webpubsub import EventHandlerSettings, HubSettings, RunningWebPubSub
from tests.integration.devstack.webpubsub_receiver import EventReceiver

pytestmark = pytest.mark.integration

ROLES = ["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"]


@pytest.fixture
def hub() -> str:
    return "h" + uuid.uuid4().hex[:12]


@pytest.fixture
def receiver(webpubsub_emulator: RunningWebPubSub, hub: str) -> Iterator[EventReceiver]:
    rec = EventReceiver(access_key=webpubsub_emulator.access_key).start()
    handler = EventHandlerSettings(
        url_template=rec.url, user_event_pattern="*", system_events=["disconnected"]
    )
    webpubsub_emulator.configure_hub(hub, HubSettings(event_handlers=[handler]))
    yield rec
    rec.stop()


@pytest.fixture
def service(webpubsub_emulator: RunningWebPubSub, hub: str) -> Iterator[WebPubSubServiceClient]:
    before = set(threading.enumerate())
    client = WebPubSubServiceClient.from_connection_string(
        webpubsub_emulator.connection_string, hub=hub, retry_total=0
    )
    yield client
    # After close() the SDK's threads end on their own: the ack thread polls once a second, and after a
    # recovery a websocket-client reader thread can linger for several seconds. Wait for all of them.
    client.close_all_connections()
    for thread in set(threading.enumerate()) - before:
        # A thread created but not yet started (a recovery that was just stopping) has nothing to wait for.
        if thread.ident is not None and ("run_forever" in thread.name or "sequence_id_ack" in thread.name):
            thread.join(timeout=15)
            assert not thread.is_alive(), f"SDK thread {thread.name} still running"


class Recorder:
    """Collects the SDK client's callbacks in a queue."""

    def __init__(self, client: WebPubSubClient) -> None:
        self.messages: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self.connected: queue.Queue[str] = queue.Queue()
        client.subscribe(CallbackType.SERVER_MESSAGE, self._server)
        client.subscribe(CallbackType.GROUP_MESSAGE, self._group)
        client.subscribe(CallbackType.CONNECTED, self._connected)

    def _server(self, e: OnServerDataMessageArgs) -> None:
        self.messages.put(("server", e.data))

    def _group(self, e: OnGroupDataMessageArgs) -> None:
        self.messages.put(("group", e.group, e.from_user_id, e.data))

    def _connected(self, e: OnConnectedArgs) -> None:
        self.connected.put(e.connection_id)

    def next(self) -> tuple[Any, ...]:
        return self.messages.get(timeout=15)


def sdk_client(service: WebPubSubServiceClient, user_id: str) -> WebPubSubClient:
    credential = WebPubSubClientCredential(
        lambda: service.get_client_access_token(user_id=user_id, roles=ROLES)["url"]
    )
    # The SDK (1.1.0) waits on a condition variable after starting an operation; when the emulator answers
    # before the wait begins (ack frames, the WebSocket open during recovery) the notification is lost and the
    # SDK sits out the whole timeout (30 s by default) before carrying on. Short timeouts bound that.
    return WebPubSubClient(
        credential=credential,
        reconnect_retry_total=0,
        message_retry_total=0,
        ack_timeout=3.0,
        start_timeout=3.0,
    )


def test_sdk_client_gets_server_group_and_event_messages(
    service: WebPubSubServiceClient, receiver: EventReceiver
) -> None:
    receiver.responders["greet"] = lambda e: web.Response(
        text="hello " + e.body.decode(), content_type="text/plain"
    )
    client = sdk_client(service, "sdk-user")
    rec = Recorder(client)
    with client:
        assert rec.connected.get(timeout=15)
        service.send_to_user("sdk-user", {"hi": 1})
        assert rec.next() == ("server", {"hi": 1})
        client.join_group("room")
        client.send_to_group("room", "from sdk", WebPubSubDataType.TEXT)
        assert rec.next() == ("group", "room", "sdk-user", "from sdk")
        service.send_to_group("room", "from server", content_type="text/plain")
        assert rec.next() == ("group", "room", None, "from server")
        client.send_event("greet", "bob", WebPubSubDataType.TEXT)
        assert rec.next() == ("server", "hello bob")
        event = receiver.wait_for(lambda e: e.event_name == "greet")
        assert event.headers["ce-subprotocol"] == "json.reliable.webpubsub.azure.v1"
        connection_id = event.connection_id
    disconnected = receiver.wait_for(
        lambda e: e.event_name == "disconnected" and e.connection_id == connection_id
    )
    assert json.loads(disconnected.body)["reason"]
    assert not service.connection_exists(connection_id)


def test_sdk_client_recovers_a_dropped_connection_without_losing_messages(
    webpubsub_emulator: RunningWebPubSub,
    service: WebPubSubServiceClient,
    hub: str,
) -> None:
    client = sdk_client(service, "reliable-user")
    rec = Recorder(client)
    with client:
        connection_id = rec.connected.get(timeout=15)
        service.send_to_user("reliable-user", "before", content_type="text/plain")
        assert rec.next() == ("server", "before")
        drop = requests.post(
            f"{webpubsub_emulator.endpoint}/_devstack/connections/{connection_id}/drop", timeout=10
        )
        assert drop.status_code == 204
        service.send_to_user("reliable-user", "while dropped", content_type="text/plain")
        assert rec.next() == ("server", "while dropped")
        assert rec.connected.empty()
        assert [c["connectionId"] for c in webpubsub_emulator.connections(hub)] == [connection_id]
