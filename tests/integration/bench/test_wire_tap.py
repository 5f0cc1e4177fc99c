"""The wire tap counts exactly: a scripted sequence of official-SDK calls through it, against Azurite and the
emulators, is recorded call for call with the right service, operation and subject."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from azure.core import MatchConditions
from azure.data.tables import TableServiceClient, UpdateMode
from azure.messaging.webpubsubservice import WebPubSubServiceClient
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from bench.wire import WireTap
from devstack.azurite import RunningAzurite
from shared.notification_hubs import NotificationHubsClient


class _Answer204(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, int]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer204)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_scripted_calls_are_counted_one_for_one(
    azurite: RunningAzurite,
    webpubsub_emulator,
    notification_hubs_emulator,
    nh_hub: str,  # type: ignore[no-untyped-def]
    unique_name,
    webhook: tuple[str, int],  # type: ignore[no-untyped-def]
) -> None:
    services = {
        ("127.0.0.1", azurite.table_port): "table",
        ("127.0.0.1", azurite.queue_port): "queue",
        ("127.0.0.1", webpubsub_emulator.port): "webpubsub",
        ("127.0.0.1", notification_hubs_emulator.port): "notificationhubs",
    }
    with WireTap(services, events_target=webhook) as tap:
        proxies = {"http": tap.url}
        tables = TableServiceClient.from_connection_string(azurite.connection_string, proxies=proxies)
        table = tables.create_table(unique_name("wire"))
        queue = QueueClient.from_connection_string(
            azurite.connection_string,
            unique_name("wire"),
            message_encode_policy=TextBase64EncodePolicy(),
            proxies=proxies,
        )
        queue.create_queue()
        webpubsub = WebPubSubServiceClient.from_connection_string(
            webpubsub_emulator.connection_string, hub="wirehub", proxies=proxies, retry_total=0
        )
        session = requests.Session()
        session.proxies = proxies
        nh = NotificationHubsClient(notification_hubs_emulator.hub_connection_string(nh_hub), session=session)
        start = tap.mark()

        metadata = table.create_entity({"PartitionKey": "alice", "RowKey": "n1", "status": "new"})
        entity = table.get_entity("alice", "n1")
        table.update_entity(
            {"PartitionKey": "alice", "RowKey": "n1", "status": "sent"},
            mode=UpdateMode.MERGE,
            etag=metadata["etag"],
            match_condition=MatchConditions.IfNotModified,
        )
        table.update_entity(
            {"PartitionKey": "alice", "RowKey": "n1", "ackedAt": 1.0},
            mode=UpdateMode.MERGE,
            match_condition=MatchConditions.Unconditionally,
        )
        table.upsert_entity({"PartitionKey": "bob", "RowKey": "n2", "status": "log"}, mode=UpdateMode.MERGE)
        rows = list(table.query_entities("PartitionKey eq @pk", parameters={"pk": "bob"}, results_per_page=1))
        table.delete_entity("bob", "n2")
        queue.send_message('{"userId": "alice", "notificationId": "n1"}')
        queue.send_message('{"userId": "bob", "notificationId": "n2"}')
        received = list(next(iter(queue.receive_messages(messages_per_page=32).by_page()), []))
        for message in received:
            queue.delete_message(message)
        empty = list(next(iter(queue.receive_messages(messages_per_page=32).by_page()), []))
        webpubsub.send_to_user("carol", {"kind": "notification"}, content_type="application/json")
        nh.send_template({"title": "t"}, "user:dave")
        event = requests.post(
            f"{tap.url}/runtime/webhooks/webpubsub",
            data=b"{}",
            timeout=10,
            headers={"ce-type": "azure.webpubsub.user.ack", "ce-userId": "erin"},
        )
        calls = tap.calls_since(start)

    assert entity["status"] == "new" and len(rows) == 1 and len(received) == 2 and not empty
    assert event.status_code == 204
    assert Counter(call.column for call in calls) == {
        "table insert": 1,
        "table read": 1,
        "table merge": 2,
        "table upsert": 1,
        "table query": 1,
        "table delete": 1,
        "queue put": 2,
        "queue get": 2,
        "queue delete": 2,
        "webpubsub send to user": 1,
        "notificationhubs send": 1,
        "events user.ack": 1,
    }
    subjects = Counter(subject for call in calls for subject in call.subjects)
    # alice: insert, read, 2 merges, put, her message in the get, delete; bob: upsert, query, delete, put,
    # get, delete; one subject each for the Web PubSub user, the NH tag and the event's user
    assert subjects == {"alice": 7, "bob": 6, "carol": 1, "user:dave": 1, "erin": 1}
    gets = [call for call in calls if call.column == "queue get"]
    assert [len(call.subjects) for call in gets] == [2, 0]  # one get returned both messages, one was empty
    assert all(200 <= call.status < 300 for call in calls)
    assert tap.in_flight == 0
