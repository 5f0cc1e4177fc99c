"""Data-plane REST of the Web PubSub emulator, driven by azure-messaging-webpubsubservice and raw HTTP."""

from __future__ import annotations

import base64
import io
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
import requests
import websocket
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.messaging.webpubsubservice import WebPubSubServiceClient

from devstack.webpubsub import RunningWebPubSub

pytestmark = pytest.mark.integration

JSON_PROTOCOL = "json.webpubsub.azure.v1"
API = "api-version=2024-12-01"


@pytest.fixture
def hub() -> str:
    return "h" + uuid.uuid4().hex[:12]


@pytest.fixture
def service(webpubsub_emulator: RunningWebPubSub, hub: str) -> WebPubSubServiceClient:
    return WebPubSubServiceClient.from_connection_string(
        webpubsub_emulator.connection_string, hub=hub, retry_total=0
    )


class Client:
    """A json-subprotocol client on a raw websocket-client socket."""

    def __init__(self, service: WebPubSubServiceClient, user_id: str | None, **token_args: Any) -> None:
        url = service.get_client_access_token(user_id=user_id, **token_args)["url"]
        self.ws = websocket.create_connection(url, subprotocols=[JSON_PROTOCOL], timeout=10)
        self.connected = self.recv()
        self.connection_id: str = self.connected["connectionId"]

    def recv(self) -> dict[str, Any]:
        frame: dict[str, Any] = json.loads(self.ws.recv())
        return frame

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def clients(service: WebPubSubServiceClient) -> Iterator[Any]:
    opened: list[Client] = []

    def open_client(user_id: str | None = "alice", **token_args: Any) -> Client:
        client = Client(service, user_id, **token_args)
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        client.close()


def signed_headers(url: str, key: str, exp_delta: int = 60) -> dict[str, str]:
    token = jwt.encode(
        {"aud": url, "exp": int(time.time()) + exp_delta}, key.encode("utf-8"), algorithm="HS256"
    )
    return {"Authorization": f"Bearer {token}"}


def test_connected_frame_names_user_and_connection(service: WebPubSubServiceClient, clients: Any) -> None:
    client = clients("alice")
    assert client.connected == {
        "type": "system",
        "event": "connected",
        "userId": "alice",
        "connectionId": client.connection_id,
    }
    assert service.connection_exists(client.connection_id)
    assert service.user_exists("alice")
    assert not service.user_exists("nobody")
    assert not service.connection_exists("no-such-connection")


def test_send_to_user_frames_each_content_type(service: WebPubSubServiceClient, clients: Any) -> None:
    user = "user/" + uuid.uuid4().hex  # a '/' travels percent-encoded in the path
    client = clients(user)
    service.send_to_user(user, {"n": 1})
    service.send_to_user(user, "as json string")
    service.send_to_user(user, "plain text", content_type="text/plain")
    service.send_to_user(user, io.BytesIO(b"\x00\xffbin"), content_type="application/octet-stream")
    frames = [client.recv() for _ in range(4)]
    assert frames == [
        {"type": "message", "from": "server", "dataType": "json", "data": {"n": 1}},
        {"type": "message", "from": "server", "dataType": "json", "data": "as json string"},
        {"type": "message", "from": "server", "dataType": "text", "data": "plain text"},
        {
            "type": "message",
            "from": "server",
            "dataType": "binary",
            "data": base64.b64encode(b"\x00\xffbin").decode(),
        },
    ]


def test_send_to_all_honours_excluded_and_filter(service: WebPubSubServiceClient, clients: Any) -> None:
    alice, bob = clients("alice"), clients("bob")
    service.send_to_all("not for alice", content_type="text/plain", excluded=[alice.connection_id])
    service.send_to_all("only bob", content_type="text/plain", filter="userId eq 'bob'")
    service.send_to_connection(alice.connection_id, "marker", content_type="text/plain")
    assert bob.recv()["data"] == "not for alice"
    assert bob.recv()["data"] == "only bob"
    assert alice.recv()["data"] == "marker"


@pytest.mark.parametrize(
    ("expression", "receivers"),
    [
        ("userId eq 'bob'", ["bob"]),
        ("userId ne 'bob'", ["alice", "carol"]),
        ("'vip' in groups", ["carol"]),
        ("not('vip' in groups) and (userId eq 'alice' or userId eq 'bob')", ["alice", "bob"]),
    ],
)
def test_send_filter_expressions(
    service: WebPubSubServiceClient, clients: Any, expression: str, receivers: list[str]
) -> None:
    opened = {
        name: clients(name, groups=["vip"] if name == "carol" else []) for name in ("alice", "bob", "carol")
    }
    service.send_to_all("filtered", content_type="text/plain", filter=expression)
    for name, client in opened.items():
        service.send_to_connection(client.connection_id, "marker", content_type="text/plain")
        expected = ["filtered", "marker"] if name in receivers else ["marker"]
        assert [client.recv()["data"] for _ in expected] == expected


def test_bad_filter_gets_400(service: WebPubSubServiceClient) -> None:
    with pytest.raises(HttpResponseError) as info:
        service.send_to_all("x", content_type="text/plain", filter="userId like 'a%'")
    assert info.value.status_code == 400


def test_group_membership_over_rest(service: WebPubSubServiceClient, clients: Any) -> None:
    alice, bob = clients("alice"), clients("bob")
    assert not service.group_exists("g1")
    service.add_connection_to_group("g1", alice.connection_id)
    service.add_user_to_group("g1", "bob")
    assert service.group_exists("g1")
    members = {(m.connection_id, m.user_id) for m in service.list_connections(group="g1")}
    assert members == {(alice.connection_id, "alice"), (bob.connection_id, "bob")}
    service.send_to_group("g1", {"x": 1})
    expected = {"type": "message", "from": "group", "group": "g1", "dataType": "json", "data": {"x": 1}}
    assert alice.recv() == expected
    assert bob.recv() == expected
    service.remove_connection_from_group("g1", alice.connection_id)
    service.remove_user_from_group("g1", "bob")
    assert not service.group_exists("g1")
    service.add_connection_to_group("g2", alice.connection_id)
    service.remove_connection_from_all_groups(alice.connection_id)
    service.add_user_to_group("g3", "bob")
    service.remove_user_from_all_groups("bob")
    assert not service.group_exists("g2")
    assert not service.group_exists("g3")


def test_close_connection_sends_reason_then_closes(service: WebPubSubServiceClient, clients: Any) -> None:
    client = clients("alice")
    service.close_connection(client.connection_id, reason="maintenance")
    assert client.recv() == {"type": "system", "event": "disconnected", "message": "maintenance"}
    opcode, frame = client.ws.recv_data_frame(True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    assert int.from_bytes(frame.data[:2], "big") == 1000
    assert not service.connection_exists(client.connection_id)


def test_close_user_connections(service: WebPubSubServiceClient, clients: Any) -> None:
    first, second, other = clients("carol"), clients("carol"), clients("dave")
    service.close_user_connections("carol", reason="logout")
    assert first.recv()["message"] == "logout"
    assert second.recv()["message"] == "logout"
    assert not service.user_exists("carol")
    assert service.connection_exists(other.connection_id)


def test_permissions_can_be_granted_and_revoked(service: WebPubSubServiceClient, clients: Any) -> None:
    client = clients("alice")
    assert not service.has_permission("joinLeaveGroup", client.connection_id, target_name="g")
    service.grant_permission("joinLeaveGroup", client.connection_id, target_name="g")
    assert service.has_permission("joinLeaveGroup", client.connection_id, target_name="g")
    service.revoke_permission("joinLeaveGroup", client.connection_id, target_name="g")
    assert not service.has_permission("joinLeaveGroup", client.connection_id, target_name="g")


def test_wrong_key_is_rejected_with_reason(webpubsub_emulator: RunningWebPubSub, hub: str) -> None:
    wrong = f"Endpoint={webpubsub_emulator.endpoint};AccessKey={'x' * 40};Version=1.0;"
    client = WebPubSubServiceClient.from_connection_string(wrong, hub=hub, retry_total=0)
    with pytest.raises(ClientAuthenticationError) as info:
        client.send_to_all({"a": 1})
    assert "signature" in str(info.value)


@pytest.mark.parametrize(
    ("aud_suffix", "exp_delta", "reason"),
    [("", -120, "expired"), ("&other=1", 60, "audience")],
)
def test_bad_bearer_tokens_get_401(
    webpubsub_emulator: RunningWebPubSub,
    hub: str,
    aud_suffix: str,
    exp_delta: int,
    reason: str,
) -> None:
    url = f"{webpubsub_emulator.endpoint}/api/hubs/{hub}/:send?{API}"
    headers = signed_headers(url + aud_suffix, webpubsub_emulator.access_key, exp_delta)
    resp = requests.post(url, data=b"{}", headers={**headers, "Content-Type": "application/json"}, timeout=10)
    assert resp.status_code == 401
    assert reason in resp.json()["message"]


def test_missing_authorization_gets_401(webpubsub_emulator: RunningWebPubSub, hub: str) -> None:
    resp = requests.post(f"{webpubsub_emulator.endpoint}/api/hubs/{hub}/:send?{API}", data=b"{}", timeout=10)
    assert resp.status_code == 401
    assert "Authorization" in resp.json()["message"]


def test_message_over_one_megabyte_gets_413(service: WebPubSubServiceClient) -> None:
    with pytest.raises(HttpResponseError) as info:
        service.send_to_all(io.BytesIO(b"x" * (1024 * 1024 + 1)), content_type="application/octet-stream")
    assert info.value.status_code == 413
    service.send_to_all(io.BytesIO(b"x" * (1024 * 1024)), content_type="application/octet-stream")


@pytest.mark.parametrize(
    ("content_type", "body", "reason"),
    [("application/xml", b"<a/>", "Content-Type"), ("application/json", b"{not json", "JSON")],
)
def test_bad_bodies_get_400(
    webpubsub_emulator: RunningWebPubSub,
    hub: str,
    content_type: str,
    body: bytes,
    reason: str,
) -> None:
    url = f"{webpubsub_emulator.endpoint}/api/hubs/{hub}/:send?{API}"
    headers = {**signed_headers(url, webpubsub_emulator.access_key), "Content-Type": content_type}
    resp = requests.post(url, data=body, headers=headers, timeout=10)
    assert resp.status_code == 400
    assert reason in resp.json()["message"]


def test_unknown_route_gets_404(webpubsub_emulator: RunningWebPubSub, hub: str) -> None:
    url = f"{webpubsub_emulator.endpoint}/api/hubs/{hub}/nonsense/:send?{API}"
    resp = requests.post(
        url, data=b"{}", headers=signed_headers(url, webpubsub_emulator.access_key), timeout=10
    )
    assert resp.status_code == 404
    assert "nonsense" in resp.json()["message"]


def test_generate_token_endpoint_issues_a_usable_client_token(
    webpubsub_emulator: RunningWebPubSub,
    hub: str,
) -> None:
    url = f"{webpubsub_emulator.endpoint}/api/hubs/{hub}/:generateToken?userId=erin&minutesToExpire=5&{API}"
    resp = requests.post(url, headers=signed_headers(url, webpubsub_emulator.access_key), timeout=10)
    assert resp.status_code == 200
    token = resp.json()["token"]
    client_url = f"ws://127.0.0.1:{webpubsub_emulator.port}/client/hubs/{hub}?access_token={token}"
    ws = websocket.create_connection(client_url, subprotocols=[JSON_PROTOCOL], timeout=10)
    try:
        assert json.loads(ws.recv())["userId"] == "erin"
    finally:
        ws.close()


def test_add_to_and_remove_from_groups_by_filter(service: WebPubSubServiceClient, clients: Any) -> None:
    # POST :addToGroups / :removeFromGroups (2024-12-01; the JS SDK's addConnectionsToGroups). The Python
    # SDK 1.3.0 has no method for them, so the request goes through its pipeline (same auth) by hand.
    from azure.core.rest import HttpRequest

    alice, bob, carol = clients("alice"), clients("bob"), clients("carol")

    def call(operation: str, body: Any) -> int:
        request = HttpRequest("POST", f"/api/hubs/{service._config.hub}/{operation}?{API}", json=body)
        return int(service.send_request(request).status_code)

    assert call(":addToGroups", {"groups": ["a", "b"], "filter": "userId ne 'carol'"}) == 200
    members = {m.user_id for m in service.list_connections(group="b")}
    assert members == {"alice", "bob"}
    only_bob = f"connectionId eq '{bob.connection_id}'"
    assert call(":removeFromGroups", {"groups": ["a"], "filter": only_bob}) == 200
    assert {m.user_id for m in service.list_connections(group="a")} == {"alice"}
    assert carol.connection_id not in {m.connection_id for m in service.list_connections(group="b")}
    assert alice.connection_id in {m.connection_id for m in service.list_connections(group="a")}
    assert call(":addToGroups", {"groups": []}) == 400
    assert call(":addToGroups", {"groups": ["a"], "filter": "userId eq"}) == 400
    assert call(":removeFromGroups", "not an object") == 400
