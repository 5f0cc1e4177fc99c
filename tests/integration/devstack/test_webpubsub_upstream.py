"""Event handler delivery of the Web PubSub emulator, checked by an independent CloudEvents receiver."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import aiohttp
import pytest
import requests
import websocket
from aiohttp import web
from azure.messaging.webpubsubservice import WebPubSubServiceClient

from devstack.webpubsub import EventHandlerSettings, HubSettings, RunningWebPubSub, start_webpubsub_emulator
from devstack.webpubsub.auth import event_signature
from tests.integration.devstack.webpubsub_receiver import EventReceiver, expected_signature

pytestmark = pytest.mark.integration

JSON_PROTOCOL = "json.webpubsub.azure.v1"
RELIABLE_PROTOCOL = "json.reliable.webpubsub.azure.v1"
ALL_SYSTEM = ["connect", "connected", "disconnected"]


@pytest.fixture
def hub() -> str:
    return "h" + uuid.uuid4().hex[:12]


@pytest.fixture
def receiver(webpubsub_emulator: RunningWebPubSub) -> Iterator[EventReceiver]:
    rec = EventReceiver(access_key=webpubsub_emulator.access_key).start()
    yield rec
    rec.stop()


@pytest.fixture
def service(
    webpubsub_emulator: RunningWebPubSub,
    hub: str,
    receiver: EventReceiver,
) -> WebPubSubServiceClient:
    handler = EventHandlerSettings(
        url_template=receiver.url, user_event_pattern="*", system_events=ALL_SYSTEM
    )
    webpubsub_emulator.configure_hub(hub, HubSettings(event_handlers=[handler]))
    return WebPubSubServiceClient.from_connection_string(
        webpubsub_emulator.connection_string, hub=hub, retry_total=0
    )


@pytest.fixture
def sockets() -> Iterator[list[websocket.WebSocket]]:
    opened: list[websocket.WebSocket] = []
    yield opened
    for ws in opened:
        ws.close()


def open_ws(
    sockets: list[websocket.WebSocket], url: str, protocol: str | None = JSON_PROTOCOL
) -> websocket.WebSocket:
    ws = websocket.create_connection(url, subprotocols=[protocol] if protocol else None, timeout=10)
    sockets.append(ws)
    return ws


def recv(ws: websocket.WebSocket) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(ws.recv())
    return frame


def handshake(url: str) -> tuple[int, str]:
    async def scenario() -> tuple[int, str]:
        async with aiohttp.ClientSession() as session:
            try:
                async with session.ws_connect(url, protocols=(JSON_PROTOCOL,)):
                    return 101, ""
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status, exc.message

    return asyncio.run(scenario())


def is_event(ce_type: str, connection_id: str | None = None) -> Any:
    return lambda e: e.ce_type == ce_type and (connection_id is None or e.connection_id == connection_id)


def test_signature_matches_the_contract_test_vector() -> None:
    vector = "sha256=b10a9cc89ec16336043e1f0ad93c17e895ef17df694131ad1ceb4198a28b73bc"
    assert event_signature("0f9c97a2f0bf4706afe87a14e0797b11", ["fakeAccessKey123"]) == vector
    assert expected_signature("fakeAccessKey123", "0f9c97a2f0bf4706afe87a14e0797b11") == vector


def test_connect_connected_disconnected_are_delivered_as_cloudevents(
    service: WebPubSubServiceClient, receiver: EventReceiver, hub: str, sockets: list[websocket.WebSocket]
) -> None:
    token = service.get_client_access_token(user_id="alice", roles=["webpubsub.sendToGroup"], groups=["g"])
    ws = open_ws(sockets, token["url"])
    cid = recv(ws)["connectionId"]
    connect = receiver.wait_for(is_event("azure.webpubsub.sys.connect", cid))
    h = connect.headers
    # One abuse-protection handshake per handler, {event} resolved to "validate", with the endpoint host.
    assert receiver.handshake_origins == ["127.0.0.1"]
    assert receiver.handshake_paths == [f"/upstream/{hub}/validate"]
    assert connect.signature_valid
    assert (h["ce-specversion"], h["ce-source"], h["ce-hub"], h["ce-eventName"]) == (
        "1.0",
        f"/hubs/{hub}/client/{cid}",
        hub,
        "connect",
    )
    assert (h["ce-userId"], h["WebHook-Request-Origin"]) == ("alice", "127.0.0.1")
    # How @azure/web-pubsub-express recognises a service request (isWebPubSubRequest), preflight included.
    assert h["ce-awpsversion"] == "1.0"
    assert {hs.get("ce-awpsversion") for hs in receiver.handshake_headers} == {"1.0"}
    assert h["Content-Type"].startswith("application/json")
    assert h["ce-id"] == "0"
    datetime.strptime(h["ce-time"], "%Y-%m-%dT%H:%M:%SZ")
    assert connect.path_qs == f"/upstream/{hub}/connect"
    body = json.loads(connect.body)
    assert body["claims"]["sub"] == ["alice"]
    assert body["claims"]["role"] == ["webpubsub.sendToGroup"]
    assert "access_token" not in body["query"]
    assert body["subprotocols"] == [JSON_PROTOCOL]
    assert body["clientCertificates"] == []
    assert "headers" in body

    connected = receiver.wait_for(is_event("azure.webpubsub.sys.connected", cid))
    assert connected.headers["ce-subprotocol"] == JSON_PROTOCOL
    assert json.loads(connected.body) == {}
    service.close_connection(cid, reason="bye now")
    disconnected = receiver.wait_for(is_event("azure.webpubsub.sys.disconnected", cid))
    assert json.loads(disconnected.body) == {"reason": "bye now"}
    assert [e.headers["ce-id"] for e in receiver.of_connection(cid)] == ["0", "1", "2"]
    order = [e.ce_type for e in receiver.of_connection(cid)]
    assert order == [
        "azure.webpubsub.sys.connect",
        "azure.webpubsub.sys.connected",
        "azure.webpubsub.sys.disconnected",
    ]


def test_connect_response_sets_user_groups_and_roles(
    service: WebPubSubServiceClient, receiver: EventReceiver, sockets: list[websocket.WebSocket]
) -> None:
    receiver.responders["connect"] = lambda e: web.json_response(
        {"userId": "from-handler", "groups": ["joined-by-handler"], "roles": ["webpubsub.sendToGroup"]}
    )
    ws = open_ws(sockets, service.get_client_access_token(user_id="from-token")["url"])
    connected = recv(ws)
    assert connected["userId"] == "from-handler"
    assert service.group_exists("joined-by-handler")
    assert service.user_exists("from-handler")
    assert not service.user_exists("from-token")
    event = receiver.wait_for(is_event("azure.webpubsub.sys.connected", connected["connectionId"]))
    assert event.headers["ce-userId"] == "from-handler"
    ws.send(
        json.dumps(
            {"type": "sendToGroup", "group": "joined-by-handler", "ackId": 1, "noEcho": True, "data": 1}
        )
    )
    assert recv(ws) == {"type": "ack", "ackId": 1, "success": True}


def test_connect_handler_can_accept_anonymous_clients_by_naming_them(
    service: WebPubSubServiceClient, receiver: EventReceiver, sockets: list[websocket.WebSocket]
) -> None:
    receiver.responders["connect"] = lambda e: web.json_response({"userId": "named-by-handler"})
    ws = open_ws(sockets, service.get_client_access_token()["url"])
    assert recv(ws)["userId"] == "named-by-handler"


def test_connect_rejection_fails_the_handshake_with_its_status(
    service: WebPubSubServiceClient, receiver: EventReceiver
) -> None:
    receiver.responders["connect"] = lambda e: web.Response(status=403, text="not you")
    status, _ = handshake(service.get_client_access_token(user_id="mallory")["url"])
    assert status == 403
    connect = receiver.wait_for(is_event("azure.webpubsub.sys.connect"))
    assert [e.ce_type for e in receiver.of_connection(connect.connection_id)] == [
        "azure.webpubsub.sys.connect"
    ]


def test_user_event_response_is_relayed_before_the_ack(
    service: WebPubSubServiceClient, receiver: EventReceiver, sockets: list[websocket.WebSocket]
) -> None:
    receiver.responders["echo"] = lambda e: web.json_response({"echoed": e.body.decode()})
    ws = open_ws(sockets, service.get_client_access_token(user_id="u")["url"])
    cid = recv(ws)["connectionId"]
    ws.send(json.dumps({"type": "event", "event": "echo", "ackId": 5, "dataType": "text", "data": "ping"}))
    assert recv(ws) == {"type": "message", "from": "server", "dataType": "json", "data": {"echoed": "ping"}}
    assert recv(ws) == {"type": "ack", "ackId": 5, "success": True}
    event = receiver.wait_for(is_event("azure.webpubsub.user.echo", cid))
    assert (event.headers["Content-Type"], event.body, event.headers["ce-eventName"]) == (
        "text/plain",
        b"ping",
        "echo",
    )


def test_failed_user_event_acks_an_error_or_drops_the_connection(
    service: WebPubSubServiceClient, receiver: EventReceiver, sockets: list[websocket.WebSocket]
) -> None:
    receiver.responders["boom"] = lambda e: web.Response(status=500, text="handler crashed")
    ws = open_ws(sockets, service.get_client_access_token(user_id="u")["url"])
    cid = recv(ws)["connectionId"]
    ws.send(json.dumps({"type": "event", "event": "boom", "ackId": 1, "dataType": "json", "data": {"a": 1}}))
    ack = recv(ws)
    assert (ack["success"], ack["error"]["name"]) == (False, "InternalServerError")
    event = receiver.wait_for(is_event("azure.webpubsub.user.boom", cid))
    assert (event.headers["Content-Type"], json.loads(event.body)) == ("application/json", {"a": 1})
    ws.send(json.dumps({"type": "event", "event": "boom", "dataType": "json", "data": {"a": 2}}))
    assert recv(ws)["event"] == "disconnected"
    assert not service.connection_exists(cid)


def test_simple_client_frames_are_message_events(
    service: WebPubSubServiceClient, receiver: EventReceiver, sockets: list[websocket.WebSocket]
) -> None:
    receiver.responders["message"] = lambda e: web.Response(
        text="pong:" + e.body.decode(), content_type="text/plain"
    )
    ws = open_ws(sockets, service.get_client_access_token(user_id="raw")["url"], protocol=None)
    ws.send("ping")
    assert ws.recv() == "pong:ping"
    event = receiver.wait_for(is_event("azure.webpubsub.user.message"))
    assert "ce-subprotocol" not in event.headers
    assert event.headers["Content-Type"] == "text/plain"


def test_first_matching_handler_wins(
    webpubsub_emulator: RunningWebPubSub,
    receiver: EventReceiver,
    hub: str,
    sockets: list[websocket.WebSocket],
) -> None:
    first = EventHandlerSettings(url_template=receiver.url + "?handler=first", user_event_pattern="a, b")
    second = EventHandlerSettings(url_template=receiver.url + "?handler=second", user_event_pattern="*")
    webpubsub_emulator.configure_hub(
        hub, HubSettings(event_handlers=[first, second], anonymous_connect_policy="allow")
    )
    service = WebPubSubServiceClient.from_connection_string(webpubsub_emulator.connection_string, hub=hub)
    ws = open_ws(sockets, service.get_client_access_token(user_id="p")["url"])
    recv(ws)
    for ack_id, name in enumerate(["b", "c"], start=1):
        ws.send(json.dumps({"type": "event", "event": name, "ackId": ack_id, "data": 1}))
        assert recv(ws)["success"] is True
    assert receiver.wait_for(is_event("azure.webpubsub.user.b")).path_qs == f"/upstream/{hub}/b?handler=first"
    assert (
        receiver.wait_for(is_event("azure.webpubsub.user.c")).path_qs == f"/upstream/{hub}/c?handler=second"
    )


def test_a_receiver_with_another_key_rejects_the_signature(
    webpubsub_emulator: RunningWebPubSub,
    hub: str,
) -> None:
    other = EventReceiver(access_key="a-different-key-than-the-emulator-uses").start()
    try:
        handler = EventHandlerSettings(url_template=other.url, system_events=["connect"])
        webpubsub_emulator.configure_hub(hub, HubSettings(event_handlers=[handler]))
        service = WebPubSubServiceClient.from_connection_string(webpubsub_emulator.connection_string, hub=hub)
        status, _ = handshake(service.get_client_access_token(user_id="u")["url"])
        assert status == 401
        assert other.wait_for(is_event("azure.webpubsub.sys.connect")).signature_valid is False
    finally:
        other.stop()


def test_secondary_key_adds_a_second_signature(sockets: list[websocket.WebSocket]) -> None:
    emulator = start_webpubsub_emulator(secondary_key="the-secondary-access-key-0123456789")
    rec = EventReceiver(access_key="the-secondary-access-key-0123456789").start()
    try:
        hub = "h" + uuid.uuid4().hex[:12]
        handler = EventHandlerSettings(url_template=rec.url, system_events=["connected"])
        emulator.configure_hub(hub, HubSettings(event_handlers=[handler]))
        service = WebPubSubServiceClient.from_connection_string(emulator.connection_string, hub=hub)
        cid = recv(open_ws(sockets, service.get_client_access_token(user_id="u")["url"]))["connectionId"]
        event = rec.wait_for(is_event("azure.webpubsub.sys.connected", cid))
        assert event.signature_valid
        assert event.headers["ce-signature"].split(",") == [
            expected_signature(emulator.access_key, cid),
            expected_signature("the-secondary-access-key-0123456789", cid),
        ]
    finally:
        rec.stop()
        emulator.stop()


def test_refused_abuse_protection_blocks_delivery(
    webpubsub_emulator: RunningWebPubSub,
    hub: str,
) -> None:
    picky = EventReceiver(
        access_key=webpubsub_emulator.access_key, allowed_origin="someone.else.example"
    ).start()
    try:
        handler = EventHandlerSettings(url_template=picky.url, system_events=["connect"])
        webpubsub_emulator.configure_hub(hub, HubSettings(event_handlers=[handler]))
        service = WebPubSubServiceClient.from_connection_string(webpubsub_emulator.connection_string, hub=hub)
        status, _ = handshake(service.get_client_access_token(user_id="u")["url"])
        assert status == 500
        assert picky.handshake_origins == ["127.0.0.1"]
        assert picky.events == []
    finally:
        picky.stop()


def test_recovered_connection_does_not_fire_connected_again(
    webpubsub_emulator: RunningWebPubSub,
    service: WebPubSubServiceClient,
    receiver: EventReceiver,
    sockets: list[websocket.WebSocket],
) -> None:
    url = service.get_client_access_token(user_id="r")["url"]
    connected = recv(open_ws(sockets, url, RELIABLE_PROTOCOL))
    cid = connected["connectionId"]
    receiver.wait_for(is_event("azure.webpubsub.sys.connected", cid))
    drop = requests.post(f"{webpubsub_emulator.endpoint}/_devstack/connections/{cid}/drop", timeout=10)
    assert drop.status_code == 204
    recovery = f"{url}&awps_connection_id={cid}&awps_reconnection_token={connected['reconnectionToken']}"
    ws = open_ws(sockets, recovery, RELIABLE_PROTOCOL)
    assert recv(ws)["connectionId"] == cid
    ws.send(json.dumps({"type": "event", "event": "after", "ackId": 1, "data": 1}))
    assert recv(ws)["success"] is True
    receiver.wait_for(is_event("azure.webpubsub.user.after", cid))
    types = [e.ce_type for e in receiver.of_connection(cid)]
    assert types == [
        "azure.webpubsub.sys.connect",
        "azure.webpubsub.sys.connected",
        "azure.webpubsub.user.after",
    ]


def test_connection_state_from_blocking_events_travels_with_later_events(
    service: WebPubSubServiceClient, receiver: EventReceiver, sockets: list[websocket.WebSocket]
) -> None:
    receiver.responders["connect"] = lambda e: web.Response(
        status=204, headers={"ce-connectionState": "c3RhdGUx"}
    )
    receiver.responders["update"] = lambda e: web.Response(
        status=204, headers={"ce-connectionState": "c3RhdGUy"}
    )
    ws = open_ws(sockets, service.get_client_access_token(user_id="s")["url"])
    cid = recv(ws)["connectionId"]
    assert receiver.wait_for(is_event("azure.webpubsub.sys.connected", cid)).headers[
        "ce-connectionState"
    ] == ("c3RhdGUx")
    for ack_id, name in enumerate(["update", "after"], start=1):
        ws.send(json.dumps({"type": "event", "event": name, "ackId": ack_id, "data": 1}))
        assert recv(ws)["success"] is True
    assert receiver.wait_for(is_event("azure.webpubsub.user.after", cid)).headers["ce-connectionState"] == (
        "c3RhdGUy"
    )


def test_simple_client_is_dropped_when_its_message_event_fails(
    service: WebPubSubServiceClient, receiver: EventReceiver, sockets: list[websocket.WebSocket]
) -> None:
    receiver.responders["message"] = lambda e: web.Response(status=400, text="bad frame")
    ws = open_ws(sockets, service.get_client_access_token(user_id="raw2")["url"], protocol=None)
    ws.send_binary(b"\x00\x01")
    opcode, _ = ws.recv_data_frame(True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    event = receiver.wait_for(is_event("azure.webpubsub.user.message"))
    assert (event.headers["Content-Type"], event.body) == ("application/octet-stream", b"\x00\x01")
    disconnected = receiver.wait_for(is_event("azure.webpubsub.sys.disconnected", event.connection_id))
    assert "400" in json.loads(disconnected.body)["reason"]


def test_a_client_close_without_status_code_fires_disconnected_at_once(
    service: WebPubSubServiceClient, receiver: EventReceiver, sockets: list[websocket.WebSocket]
) -> None:
    ws = open_ws(sockets, service.get_client_access_token(user_id="leaver")["url"], RELIABLE_PROTOCOL)
    cid = recv(ws)["connectionId"]
    receiver.wait_for(is_event("azure.webpubsub.sys.connected", cid))
    ws.send(b"", websocket.ABNF.OPCODE_CLOSE)
    # Well inside the 30 s recovery window: the close frame is a clean close, not a drop.
    disconnected = receiver.wait_for(is_event("azure.webpubsub.sys.disconnected", cid), timeout=2.0)
    assert json.loads(disconnected.body) == {"reason": "The client closed the connection."}


def test_sdk_client_close_fires_disconnected_at_once(
    service: WebPubSubServiceClient, receiver: EventReceiver
) -> None:
    from azure.messaging.webpubsubclient import WebPubSubClient, WebPubSubClientCredential

    url = service.get_client_access_token(user_id="py-sdk")["url"]
    client = WebPubSubClient(credential=WebPubSubClientCredential(lambda: url), reconnect_retry_total=0)
    client.open()
    connected = receiver.wait_for(is_event("azure.webpubsub.sys.connected"))
    client.close()
    receiver.wait_for(is_event("azure.webpubsub.sys.disconnected", connected.connection_id), timeout=2.0)
    assert not service.connection_exists(connected.connection_id)


@pytest.mark.parametrize(
    ("allowed", "passes"),
    [
        (["other.example", "127.0.0.1"], True),  # one header per origin
        (["other.example, 127.0.0.1"], True),  # a comma list in one header
        (["127.0.0.1:8080"], True),  # web-pubsub-express allowedEndpoints: URL host, port included
        (["other.example"], False),
        ([], False),
    ],
)
def test_abuse_protection_accepts_the_origin_in_any_listed_form(
    webpubsub_emulator: RunningWebPubSub, hub: str, allowed: list[str], passes: bool
) -> None:
    rec = EventReceiver(access_key=webpubsub_emulator.access_key, allowed_origin_headers=allowed).start()
    try:
        handler = EventHandlerSettings(url_template=rec.url, system_events=["connect"])
        webpubsub_emulator.configure_hub(hub, HubSettings(event_handlers=[handler]))
        service = WebPubSubServiceClient.from_connection_string(webpubsub_emulator.connection_string, hub=hub)
        status, _ = handshake(service.get_client_access_token(user_id="u")["url"])
        assert status == (101 if passes else 500)
        assert len(rec.events) == (1 if passes else 0)
    finally:
        rec.stop()


def test_invoke_returns_the_handler_response_as_invoke_response(
    service: WebPubSubServiceClient, receiver: EventReceiver, sockets: list[websocket.WebSocket]
) -> None:
    # WebPubSubClient.invokeEvent (@azure/web-pubsub-client 1.0.4): invoke -> user event -> invokeResponse.
    receiver.responders["double"] = lambda e: web.json_response({"twice": json.loads(e.body) * 2})
    receiver.responders["greet"] = lambda e: web.Response(
        text="hi " + e.body.decode(), content_type="text/plain"
    )
    receiver.responders["bytes"] = lambda e: web.Response(
        body=b"\x01\x02", content_type="application/octet-stream"
    )
    receiver.responders["quiet"] = lambda e: web.Response(status=204)
    receiver.responders["fails"] = lambda e: web.Response(status=503, text="down")
    ws = open_ws(sockets, service.get_client_access_token(user_id="caller")["url"])
    cid = recv(ws)["connectionId"]

    def invoke(event: str, **data: Any) -> dict[str, Any]:
        frame = {"type": "invoke", "invocationId": event, "target": "event", "event": event, **data}
        ws.send(json.dumps(frame))
        return recv(ws)

    assert invoke("double", dataType="json", data=21) == {
        "type": "invokeResponse",
        "invocationId": "double",
        "success": True,
        "dataType": "json",
        "data": {"twice": 42},
    }
    assert invoke("greet", dataType="text", data="bob")["data"] == "hi bob"
    assert invoke("bytes", dataType="binary", data="AAE=")["data"] == "AQI="
    assert invoke("quiet") == {"type": "invokeResponse", "invocationId": "quiet", "success": True}
    failed = invoke("fails", dataType="text", data="x")
    assert (failed["success"], failed["error"]["name"]) == (False, "InternalServerError")
    # The invocation reached the handler as an ordinary user event of that name.
    event = receiver.wait_for(is_event("azure.webpubsub.user.bytes", cid))
    assert (event.headers["Content-Type"], event.body) == ("application/octet-stream", b"\x00\x01")
    assert service.connection_exists(cid)
