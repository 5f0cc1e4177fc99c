"""The local Functions host behind the Web PubSub emulator: a real client connects and sends an event."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import websocket
from azure.messaging.webpubsubservice import WebPubSubServiceClient

from devstack.functions_host import RunningFunctionsHost, start_functions_host
from devstack.webpubsub.running import RunningWebPubSub
from devstack.webpubsub.settings import EventHandlerSettings, HubSettings
from tests.integration.devstack.functions_host_support import (  # noqa: F401 - fixture
    host_storage,
    records,
    sample_app_copy,
    sample_environ,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def hub_and_host(
    tmp_path: Path,
    host_storage: str,  # noqa: F811
    webpubsub_emulator: RunningWebPubSub,
) -> Iterator[tuple[str, RunningFunctionsHost]]:
    hub = f"hub{uuid.uuid4().hex[:12]}"
    environ = sample_environ(
        host_storage, SAMPLE_HUB=hub, WebPubSubConnectionString=webpubsub_emulator.connection_string
    )
    running = start_functions_host(sample_app_copy(tmp_path), environ=environ)
    handler = EventHandlerSettings(
        url_template=f"{running.url}/runtime/webhooks/webpubsub",
        user_event_pattern="echo",
        system_events=["connect", "connected"],
    )
    webpubsub_emulator.configure_hub(hub, HubSettings(event_handlers=[handler]))
    try:
        yield hub, running
    finally:
        running.stop()


def test_client_connect_and_user_event_go_through_the_functions(
    hub_and_host: tuple[str, RunningFunctionsHost],
    webpubsub_emulator: RunningWebPubSub,
) -> None:
    hub, running = hub_and_host
    service = WebPubSubServiceClient.from_connection_string(webpubsub_emulator.connection_string, hub=hub)
    url = service.get_client_access_token(user_id="token-user")["url"]
    client = websocket.create_connection(url, subprotocols=["json.webpubsub.azure.v1"], timeout=10)
    try:
        connected = json.loads(client.recv())
        # The connect function's userId overrides the token's.
        assert (connected["event"], connected["userId"]) == ("connected", "user-from-connect")
        client.send(
            json.dumps({"type": "event", "event": "echo", "dataType": "text", "data": "ping", "ackId": 1})
        )
        frames = [json.loads(client.recv()) for _ in range(2)]
    finally:
        client.close()
    replies = [f for f in frames if f.get("type") == "message"]
    assert replies and replies[0]["data"] == "echo:ping"
    [connect_event] = records(running.url, "connect")
    assert connect_event["connectionContext"]["userId"] == "token-user"
    assert connect_event["connectionContext"]["connectionId"] == connected["connectionId"]
