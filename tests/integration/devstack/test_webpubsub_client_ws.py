"""Client WebSocket endpoint of the Web PubSub emulator: handshake auth, simple and json subprotocol clients,
permissions, ack semantics, reliable recovery, and the /_devstack endpoints."""

from __future__ import annotations

import asyncio
import io
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp
import jwt
import pytest
import requests
import websocket
from azure.messaging.webpubsubservice import WebPubSubServiceClient

from devstack.webpubsub import HubSettings, RunningWebPubSub, start_webpubsub_emulator

pytestmark = pytest.mark.integration

JSON_PROTOCOL = "json.webpubsub.azure.v1"
RELIABLE_PROTOCOL = "json.reliable.webpubsub.azure.v1"


@pytest.fixture
def hub() -> str:
    return "h" + uuid.uuid4().hex[:12]


@pytest.fixture
def service(webpubsub_emulator: RunningWebPubSub, hub: str) -> WebPubSubServiceClient:
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


def close_code(ws: websocket.WebSocket) -> int:
    opcode, frame = ws.recv_data_frame(True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    return int.from_bytes(frame.data[:2], "big")


def test_simple_client_gets_raw_frames(service: WebPubSubServiceClient) -> None:
    url = service.get_client_access_token(user_id="raw")["url"]

    async def scenario() -> list[tuple[aiohttp.WSMsgType, Any]]:
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            assert ws.protocol is None
            await asyncio.to_thread(service.send_to_user, "raw", "hello", content_type="text/plain")
            await asyncio.to_thread(service.send_to_user, "raw", {"a": 1})
            binary = io.BytesIO(b"\x01\x02")
            await asyncio.to_thread(
                service.send_to_user, "raw", binary, content_type="application/octet-stream"
            )
            return [((msg := await ws.receive(timeout=10)).type, msg.data) for _ in range(3)]

    frames = asyncio.run(scenario())
    assert frames == [
        (aiohttp.WSMsgType.TEXT, "hello"),
        (aiohttp.WSMsgType.TEXT, '{"a": 1}'),
        (aiohttp.WSMsgType.BINARY, b"\x01\x02"),
    ]


def _handshake_status(url: str) -> tuple[int, str]:
    async def scenario() -> tuple[int, str]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                url,
                headers={
                    "Connection": "Upgrade",
                    "Upgrade": "websocket",
                    "Sec-WebSocket-Version": "13",
                    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                },
            ) as resp,
        ):
            return resp.status, await resp.text()

    return asyncio.run(scenario())


@pytest.mark.parametrize(
    ("claims_update", "key", "reason"),
    [
        ({"exp": int(time.time()) - 120}, None, "expired"),
        ({}, "some-other-key-that-is-long-enough-32b", "signature"),
        ({"aud": "http://127.0.0.1:1/client/hubs/otherhub"}, None, "audience"),
    ],
)
def test_bad_client_tokens_fail_the_handshake_with_401(
    webpubsub_emulator: RunningWebPubSub,
    hub: str,
    claims_update: dict[str, Any],
    key: str | None,
    reason: str,
) -> None:
    base = f"http://127.0.0.1:{webpubsub_emulator.port}/client/hubs/{hub}"
    claims = {"aud": base, "exp": int(time.time()) + 60, "sub": "u", **claims_update}
    token = jwt.encode(claims, (key or webpubsub_emulator.access_key).encode(), algorithm="HS256")
    status, body = _handshake_status(f"{base}?access_token={token}")
    assert status == 401
    assert reason in body


def test_anonymous_connections_follow_the_hub_policy(
    webpubsub_emulator: RunningWebPubSub,
    service: WebPubSubServiceClient,
    hub: str,
    sockets: list[websocket.WebSocket],
) -> None:
    url = service.get_client_access_token()["url"]  # no user id
    status, body = _handshake_status(url.replace("ws://", "http://"))
    assert status == 401
    assert "anonymous" in body
    webpubsub_emulator.configure_hub(hub, HubSettings(anonymous_connect_policy="allow"))
    ws = open_ws(sockets, url)
    connected = recv(ws)
    assert connected["event"] == "connected"
    assert connected["userId"] is None


def test_group_roles_are_enforced_with_acks(
    service: WebPubSubServiceClient, sockets: list[websocket.WebSocket]
) -> None:
    roles = ["webpubsub.joinLeaveGroup.allowed", "webpubsub.sendToGroup.allowed"]
    member = open_ws(sockets, service.get_client_access_token(user_id="m", roles=roles)["url"])
    recv(member)
    member.send(json.dumps({"type": "joinGroup", "group": "allowed", "ackId": 1}))
    assert recv(member) == {"type": "ack", "ackId": 1, "success": True}
    member.send(json.dumps({"type": "joinGroup", "group": "other", "ackId": 2}))
    ack = recv(member)
    assert (ack["ackId"], ack["success"], ack["error"]["name"]) == (2, False, "Forbidden")
    member.send(
        json.dumps({"type": "sendToGroup", "group": "other", "ackId": 3, "dataType": "text", "data": "x"})
    )
    assert recv(member)["error"]["name"] == "Forbidden"
    member.send(
        json.dumps({"type": "sendToGroup", "group": "allowed", "ackId": 4, "dataType": "text", "data": "hi"})
    )
    first, second = recv(member), recv(member)
    assert first == {
        "type": "message",
        "from": "group",
        "group": "allowed",
        "fromUserId": "m",
        "dataType": "text",
        "data": "hi",
    }
    assert second == {"type": "ack", "ackId": 4, "success": True}


def test_repeated_ack_id_is_not_executed_twice(
    service: WebPubSubServiceClient, sockets: list[websocket.WebSocket]
) -> None:
    url = service.get_client_access_token(
        user_id="d", roles=["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"]
    )
    ws = open_ws(sockets, url["url"])
    recv(ws)
    ws.send(json.dumps({"type": "joinGroup", "group": "g", "ackId": 7}))
    assert recv(ws)["success"] is True
    frame = {
        "type": "sendToGroup",
        "group": "g",
        "ackId": 8,
        "noEcho": False,
        "dataType": "json",
        "data": {"k": 1},
    }
    ws.send(json.dumps(frame))
    ws.send(json.dumps(frame))
    received = [recv(ws) for _ in range(3)]
    assert [f["type"] for f in received] == ["message", "ack", "ack"]
    assert received[1]["success"] is True
    assert (received[2]["success"], received[2]["error"]["name"]) == (False, "Duplicate")


def test_no_echo_skips_the_sender(
    service: WebPubSubServiceClient, sockets: list[websocket.WebSocket]
) -> None:
    roles = ["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"]
    sender = open_ws(sockets, service.get_client_access_token(user_id="s", roles=roles, groups=["g"])["url"])
    other = open_ws(sockets, service.get_client_access_token(user_id="o", groups=["g"])["url"])
    recv(sender)
    recv(other)
    sender.send(json.dumps({"type": "sendToGroup", "group": "g", "ackId": 1, "noEcho": True, "data": [1]}))
    assert recv(sender) == {"type": "ack", "ackId": 1, "success": True}
    assert recv(other)["data"] == [1]


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("{not json", "not valid JSON"),
        ('{"type": "teleport", "ackId": 1}', "unknown frame type 'teleport'"),
        ('{"type": "joinGroup", "ackId": 1}', "'group' must be a non-empty string"),
    ],
)
def test_an_invalid_frame_closes_with_1007_and_a_reason(
    service: WebPubSubServiceClient, sockets: list[websocket.WebSocket], frame: str, reason: str
) -> None:
    # 1007 (invalid payload) as the service team's emulator; not 1008, which stops JS recovery outright.
    ws = open_ws(sockets, service.get_client_access_token(user_id="bad")["url"])
    cid = recv(ws)["connectionId"]
    ws.send(frame)
    disconnected = recv(ws)
    assert disconnected["event"] == "disconnected"
    assert reason in disconnected["message"]
    assert close_code(ws) == 1007
    assert not service.connection_exists(cid)


def test_a_forbidden_frame_without_ack_id_is_dropped_not_the_connection(
    service: WebPubSubServiceClient, sockets: list[websocket.WebSocket]
) -> None:
    ws = open_ws(sockets, service.get_client_access_token(user_id="nope")["url"])
    cid = recv(ws)["connectionId"]
    ws.send(json.dumps({"type": "joinGroup", "group": "secret"}))
    ws.send(json.dumps({"type": "sendToGroup", "group": "secret", "dataType": "text", "data": "x"}))
    ws.send(json.dumps({"type": "ping"}))
    assert recv(ws) == {"type": "pong"}
    assert service.connection_exists(cid)
    assert not service.group_exists("secret")


def test_invocation_frames_without_a_handler_answer_and_keep_the_connection(
    service: WebPubSubServiceClient, sockets: list[websocket.WebSocket]
) -> None:
    ws = open_ws(sockets, service.get_client_access_token(user_id="inv")["url"])
    cid = recv(ws)["connectionId"]
    ws.send(json.dumps({"type": "invoke", "invocationId": "1", "target": "event", "event": "calc"}))
    answer = recv(ws)
    assert (answer["type"], answer["invocationId"], answer["success"]) == ("invokeResponse", "1", False)
    assert answer["error"]["name"] == "InternalServerError"
    ws.send(json.dumps({"type": "cancelInvocation", "invocationId": "1"}))
    ws.send(json.dumps({"type": "invokeResponse", "invocationId": "9", "success": True}))
    ws.send(json.dumps({"type": "ping"}))
    assert recv(ws) == {"type": "pong"}
    assert service.connection_exists(cid)


def _drop(emulator: RunningWebPubSub, connection_id: str) -> None:
    resp = requests.post(f"{emulator.endpoint}/_devstack/connections/{connection_id}/drop", timeout=10)
    assert resp.status_code == 204


def _recovery_url(base_url: str, connected: dict[str, Any], token: str | None = None) -> str:
    return (
        f"{base_url}&awps_connection_id={connected['connectionId']}"
        f"&awps_reconnection_token={token or connected['reconnectionToken']}"
    )


def test_reliable_connection_recovers_and_replays_unacked_messages(
    webpubsub_emulator: RunningWebPubSub,
    service: WebPubSubServiceClient,
    sockets: list[websocket.WebSocket],
) -> None:
    url = service.get_client_access_token(user_id="rel")["url"]
    ws = open_ws(sockets, url, RELIABLE_PROTOCOL)
    connected = recv(ws)
    assert isinstance(connected["reconnectionToken"], str)
    service.send_to_user("rel", "one", content_type="text/plain")
    service.send_to_user("rel", "two", content_type="text/plain")
    one, two = recv(ws), recv(ws)
    assert (one["sequenceId"], two["sequenceId"]) == (1, 2)
    ws.send(json.dumps({"type": "sequenceAck", "sequenceId": 1}))
    # Round trip so the ack is processed before the drop.
    ws.send(json.dumps({"type": "event", "event": "nohandler", "ackId": 1, "data": 1}))
    assert recv(ws)["ackId"] == 1
    _drop(webpubsub_emulator, connected["connectionId"])
    service.send_to_user("rel", "three", content_type="text/plain")
    assert service.connection_exists(connected["connectionId"])

    recovered = open_ws(sockets, _recovery_url(url, connected), RELIABLE_PROTOCOL)
    again = recv(recovered)
    assert (again["event"], again["connectionId"]) == ("connected", connected["connectionId"])
    replayed = [recv(recovered) for _ in range(2)]
    assert [(f["sequenceId"], f["data"]) for f in replayed] == [(2, "two"), (3, "three")]


def test_recovery_with_a_wrong_token_closes_with_1008(
    service: WebPubSubServiceClient, sockets: list[websocket.WebSocket]
) -> None:
    url = service.get_client_access_token(user_id="rel2")["url"]
    ws = open_ws(sockets, url, RELIABLE_PROTOCOL)
    connected = recv(ws)
    bad = open_ws(sockets, _recovery_url(url, connected, token="wrong"), RELIABLE_PROTOCOL)
    assert close_code(bad) == 1008


def test_unrecovered_connection_expires_after_the_window(sockets: list[websocket.WebSocket]) -> None:
    emulator = start_webpubsub_emulator(recovery_window_seconds=0.2)
    try:
        hub = "h" + uuid.uuid4().hex[:12]
        service = WebPubSubServiceClient.from_connection_string(
            emulator.connection_string, hub=hub, retry_total=0
        )
        url = service.get_client_access_token(user_id="gone")["url"]
        connected = recv(open_ws(sockets, url, RELIABLE_PROTOCOL))
        _drop(emulator, connected["connectionId"])
        deadline = time.monotonic() + 10
        while service.connection_exists(connected["connectionId"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not service.connection_exists(connected["connectionId"])
        late = open_ws(sockets, _recovery_url(url, connected), RELIABLE_PROTOCOL)
        assert close_code(late) == 1008
    finally:
        emulator.stop()


def test_devstack_endpoints_configure_hubs_and_list_connections(
    webpubsub_emulator: RunningWebPubSub,
    service: WebPubSubServiceClient,
    hub: str,
    sockets: list[websocket.WebSocket],
) -> None:
    base = f"{webpubsub_emulator.endpoint}/_devstack"
    settings: dict[str, Any] = {
        "eventHandlers": [
            {
                "urlTemplate": "http://127.0.0.1:9/{event}",
                "userEventPattern": "*",
                "systemEvents": ["connected"],
            }
        ],
        "anonymousConnectPolicy": "allow",
    }
    put = requests.put(f"{base}/hubs/{hub}", json=settings, timeout=10)
    assert put.status_code == 200
    assert requests.get(f"{base}/hubs/{hub}", timeout=10).json() == settings
    bad = requests.put(f"{base}/hubs/{hub}", json={"eventHandlers": [{"systemEvents": ["x"]}]}, timeout=10)
    assert bad.status_code == 400
    assert "urlTemplate" in bad.json()["message"]
    connected = recv(open_ws(sockets, service.get_client_access_token(user_id="listed", groups=["g"])["url"]))
    listed = requests.get(f"{base}/connections", params={"hub": hub}, timeout=10).json()["value"]
    assert [(c["connectionId"], c["userId"], c["groups"]) for c in listed] == [
        (connected["connectionId"], "listed", ["g"])
    ]


@pytest.mark.parametrize("protocol", [JSON_PROTOCOL, RELIABLE_PROTOCOL])
def test_ping_is_answered_with_pong_and_the_connection_stays(
    service: WebPubSubServiceClient, sockets: list[websocket.WebSocket], protocol: str
) -> None:
    # The keep-alive frame @azure/web-pubsub-client sends every 20 s (protocols/jsonProtocolBase.ts).
    ws = open_ws(sockets, service.get_client_access_token(user_id="pinger")["url"], protocol)
    cid = recv(ws)["connectionId"]
    for _ in range(3):
        ws.send(json.dumps({"type": "ping"}))
        assert recv(ws) == {"type": "pong"}
    assert service.connection_exists(cid)
    service.send_to_connection(cid, "still here", content_type="text/plain")
    assert recv(ws)["data"] == "still here"


def _wait_gone(service: WebPubSubServiceClient, connection_id: str, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not service.connection_exists(connection_id):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize(
    "close_payload",
    [b"", (1000).to_bytes(2, "big"), (1001).to_bytes(2, "big") + b"away", (4000).to_bytes(2, "big")],
    ids=["no-status-code", "1000", "1001", "4000"],
)
def test_a_client_close_frame_ends_a_reliable_connection_at_once(
    service: WebPubSubServiceClient, sockets: list[websocket.WebSocket], close_payload: bytes
) -> None:
    # The recovery window is 30 s; a clean close must not enter it. JS stop() sends a close without a code.
    url = service.get_client_access_token(user_id="closer")["url"]
    ws = open_ws(sockets, url, RELIABLE_PROTOCOL)
    connected = recv(ws)
    cid = connected["connectionId"]
    ws.send(close_payload, websocket.ABNF.OPCODE_CLOSE)
    assert _wait_gone(service, cid, within=2.0)
    assert not service.user_exists("closer")
    late = open_ws(sockets, _recovery_url(url, connected), RELIABLE_PROTOCOL)
    assert close_code(late) == 1008
