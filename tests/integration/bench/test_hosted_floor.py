"""The guarantee floor's Functions app (bench/hosted_floor/) in the local Functions host, as the benchmark
runs it: it indexes and loads, delivers in-app, takes a client's ack through the wire tap's event route, and
pushes after a missed ack."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import websocket
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, TableServiceClient
from azure.messaging.webpubsubservice import WebPubSubServiceClient
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from bench.floor_base import floor_environment
from bench.floor_process import HostedFloor
from bench.wire import HOST, WireTap
from devstack.azurite import RunningAzurite
from devstack.notificationhubs.emulator import RunningNotificationHubs
from devstack.webpubsub.running import RunningWebPubSub
from devstack.webpubsub.settings import EventHandlerSettings, HubSettings
from notify.client import NotificationClient
from notify.push_templates import installation_templates
from notify.user_rows import connection_row_key, user_partition
from shared.notification_hubs import NotificationHubsClient
from shared.user_keys import user_key, user_tag

pytestmark = pytest.mark.integration

WAIT = 60.0  # a generous bound for each step; the test asserts outcomes, never durations


def wait_until(what: str, check: Callable[[], Any]) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"gave up waiting for {what}")


class _DefaultTarget(BaseHTTPRequestHandler):
    """Where the tap sends events it does not route (the notifier's host in the bench): it passes Web
    PubSub's abuse-protection check and refuses every event, so only a routed ack can be recorded."""

    protocol_version = "HTTP/1.1"

    def do_OPTIONS(self) -> None:
        self.send_response(200)
        self.send_header("WebHook-Allowed-Origin", "*")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def default_target() -> Iterator[tuple[str, int]]:
    server = ThreadingHTTPServer((HOST, 0), _DefaultTarget)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield HOST, int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def hub(
    notification_hubs_emulator: RunningNotificationHubs, unique_name: Callable[[str], str]
) -> Iterator[str]:
    """One name for the Web PubSub hub and the Notification Hubs hub (the floor's BENCH_HUB is both)."""
    name = unique_name("floorhub")
    notification_hubs_emulator.create_hub(name)
    try:
        yield name
    finally:
        notification_hubs_emulator.clear_pushes(name)


def test_hosted_floor_delivers_takes_the_ack_and_pushes_after_a_missed_ack(
    azurite: RunningAzurite,
    webpubsub_emulator: RunningWebPubSub,
    notification_hubs_emulator: RunningNotificationHubs,
    hub: str,
    unique_name: Callable[[str], str],
    default_target: tuple[str, int],
) -> None:
    storage = azurite.connection_string
    presence_table, records_table = unique_name("presence"), unique_name("rows")
    queue_name, deadlines = unique_name("floorq"), unique_name("floordl")
    acker, silent = f"acker-{uuid.uuid4().hex[:8]}", f"silent-{uuid.uuid4().hex[:8]}"
    tables = TableServiceClient.from_connection_string(storage)
    presence = tables.create_table(presence_table)
    rows = tables.get_table_client(records_table)
    nh = NotificationHubsClient(notification_hubs_emulator.hub_connection_string(hub))
    nh.put_installation({"installationId": f"dev-{silent}", "platform": "apns", "pushChannel": "ab" * 32,
                         "tags": [user_tag(silent)], "templates": installation_templates("apns")})
    environ = {
        **floor_environment(storage, webpubsub_emulator.connection_string,
                            notification_hubs_emulator.connection_string, hub, presence_table, records_table),
        "AzureWebJobsStorage": storage,
        "WebPubSubConnectionString": webpubsub_emulator.connection_string,
        "WebPubSubHub": hub,
    }
    floor = HostedFloor(environ, queue_name, deadlines, ack_timeout=1)
    sockets: list[websocket.WebSocket] = []
    try:
        wait_until("the indexing line", lambda: _logged(floor, "3 functions indexed"))
        # Web PubSub posts its events to the tap (in the bench: on the stack's Functions port), which routes
        # the user events of these users to the hosted floor's host, as the bench does in its phases.
        with WireTap({}, events_target=default_target) as tap:
            tap.route_events([acker, silent], (HOST, floor.webhook_port))
            handler = EventHandlerSettings(f"{tap.url}/runtime/webhooks/webpubsub", user_event_pattern="ack")
            webpubsub_emulator.configure_hub(hub, HubSettings(event_handlers=[handler]))
            for user in (acker, silent):
                client = _connect(webpubsub_emulator, hub, user)
                sockets.append(client)
                connected = json.loads(client.recv())
                presence.create_entity({"PartitionKey": user_partition(user),
                                        "RowKey": connection_row_key(connected["connectionId"])})
            producer = NotificationClient(QueueClient.from_connection_string(
                storage, queue_name, message_encode_policy=TextBase64EncodePolicy()))
            acked_id = producer.send(acker, "Hello", "acked in-app", notification_id=f"{acker}-n")
            missed_id = producer.send(silent, "Hello", "never acked", notification_id=f"{silent}-n")

            acker_socket, silent_socket = sockets
            message = json.loads(acker_socket.recv())
            assert message["type"] == "message"
            assert (message["data"]["kind"], message["data"]["notificationId"]) == ("notification", acked_id)
            acker_socket.send(json.dumps({"type": "event", "event": "ack", "dataType": "json",
                                          "data": {"notificationId": acked_id}}))
            assert json.loads(silent_socket.recv())["data"]["notificationId"] == missed_id

            acked_row = wait_until("the ack write", lambda: _acked(rows, acker, acked_id))
            [ack_event] = [call for call in tap.calls if call.column == "events user.ack"]
            assert (ack_event.status, ack_event.subjects) == (200, (acker,))
            pushes = wait_until("the push after the missed ack",
                                lambda: _pushes(notification_hubs_emulator, hub, missed_id))
            assert len(pushes) == 1
            # Both deadlines handled: the acked notification was not pushed.
            wait_until("both deadline invocations", lambda: _succeeded(floor, "deadline") == 2)
        assert not _pushes(notification_hubs_emulator, hub, acked_id)
        assert acked_row["realtimeSentAt"] and "pushSentAt" not in rows.get_entity(user_key(acker), acked_id)
    finally:
        for client in sockets:
            client.close()
        outcome = floor.stop()
        presence.delete_table()
        rows.delete_table()
        for name in (queue_name, deadlines):
            with contextlib.suppress(ResourceNotFoundError):
                QueueClient.from_connection_string(storage, name).delete_queue()
    assert outcome == {"errors": 0, "error_types": {}}
    assert _succeeded(floor, "notification") == 2 and _succeeded(floor, "ack") == 1


def _connect(emulator: RunningWebPubSub, hub: str, user: str) -> websocket.WebSocket:
    url = WebPubSubServiceClient.from_connection_string(emulator.connection_string, hub=hub)\
        .get_client_access_token(user_id=user)["url"]
    return websocket.create_connection(url, subprotocols=["json.webpubsub.azure.v1"], timeout=WAIT)


def _logged(floor: HostedFloor, text: str) -> bool:
    return any(text in line for line in floor.host.log_lines)


def _acked(rows: TableClient, user: str, notification_id: str) -> dict[str, Any] | None:
    row = rows.get_entity(user_key(user), notification_id)
    return dict(row) if row.get("ackedAt") else None


def _pushes(emulator: RunningNotificationHubs, hub: str, notification_id: str) -> list[dict[str, Any]]:
    return [push for push in emulator.pushes(hub=hub)
            if (push.get("payload") or {}).get("notificationId") == notification_id]


def _succeeded(floor: HostedFloor, function: str) -> int:
    return sum(1 for line in floor.host.log_lines if f"Executed 'Functions.{function}' (Succeeded" in line)
