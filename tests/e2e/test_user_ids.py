"""Through the local host: user ids that only differ in case, normalisation form or separators each get their
own presence and in-app delivery end to end (negotiate → WebSocket → ce-userId → presence row → send), and
ids outside the rule are refused at negotiate, device registration and enqueue alike."""

from __future__ import annotations

import json
import unicodedata
import uuid
from collections.abc import Iterator

import pytest
import requests
import websocket

from devstack.demo import DemoTarget, presence_count, wait_until
from notify.client import NotificationClient
from shared.errors import InvalidMessageError
from shared.user_keys import MAX_USER_ID_LENGTH

pytestmark = pytest.mark.e2e


class Socket:
    """An app's WebSocket (json.webpubsub.azure.v1) on the URL negotiate gives ``user_id``."""

    def __init__(self, target: DemoTarget, user_id: str) -> None:
        response = requests.post(
            f"{target.functions_url}/api/negotiate",
            headers={"Authorization": "Bearer " + target.token(user_id)},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        assert response.json()["userId"] == user_id
        self.ws = websocket.create_connection(
            response.json()["url"], subprotocols=["json.webpubsub.azure.v1"], timeout=15
        )
        frame = json.loads(self.ws.recv())
        assert frame["event"] == "connected" and frame["userId"] == user_id, frame

    def notification_ids(self) -> Iterator[str]:
        while True:
            frame = json.loads(self.ws.recv())
            if frame.get("type") == "message" and isinstance(frame.get("data"), dict):
                yield str(frame["data"].get("notificationId"))


def until(sock: Socket, notification_id: str) -> list[str]:
    """The notification ids the socket receives up to and including ``notification_id``."""
    seen = []
    for each in sock.notification_ids():
        seen.append(each)
        if each == notification_id:
            return seen
    raise AssertionError("unreachable")


def test_lookalike_ids_are_separate_users_end_to_end(e2e_target: DemoTarget) -> None:
    run = uuid.uuid4().hex[:6]
    users = [
        unicodedata.normalize("NFC", f"Zoë {run}"),
        unicodedata.normalize("NFD", f"Zoë {run}"),
        f"tenant/Üser#?\\{run}",
        f"tenant/üser#?\\{run}",
        (f"long-{run}-" + "x" * MAX_USER_ID_LENGTH)[:MAX_USER_ID_LENGTH],
    ]
    producer = NotificationClient.from_connection_string(
        e2e_target.storage_connection_string, e2e_target.setting("NOTIFICATIONS_QUEUE")
    )
    sockets = [Socket(e2e_target, user) for user in users]
    try:
        for user in users:  # the ce-userId header brought each id back unchanged
            online = lambda user=user: presence_count(e2e_target, user) == 1  # noqa: E731
            wait_until(online, 15, f"no presence row for {user!r}")
        sent = [producer.send(user, "t", "b", delivery="realtime") for user in users]
        received = [list(until(sock, sent[i])) for i, sock in enumerate(sockets)]
        # Markers sent after every first-round send went out: whatever a socket got before its marker
        # includes any first-round notification of another user that reached it.
        markers = [producer.send(user, "t", "b", delivery="realtime") for user in users]
        for index, sock in enumerate(sockets):
            received[index] += until(sock, markers[index])
            assert set(received[index]) == {sent[index], markers[index]}, (users[index], received[index])
    finally:
        for sock in sockets:
            sock.ws.close()


@pytest.mark.parametrize("user_id", ["victim ", " victim", "tab\tinside", "x" * (MAX_USER_ID_LENGTH + 1)])
def test_ids_outside_the_rule_are_refused_everywhere(e2e_target: DemoTarget, user_id: str) -> None:
    auth = {"Authorization": "Bearer " + e2e_target.token(user_id)}
    negotiate = requests.post(f"{e2e_target.functions_url}/api/negotiate", headers=auth, timeout=10)
    register = requests.put(
        f"{e2e_target.functions_url}/api/devices/dev-rule", headers=auth,
        json={"platform": "apns", "pushChannel": "0a" * 32}, timeout=10,
    )
    for response in (negotiate, register):
        assert response.status_code == 401
        assert "not an accepted user id" in response.json()["error"]["message"]
    producer = NotificationClient.from_connection_string(
        e2e_target.storage_connection_string, e2e_target.setting("NOTIFICATIONS_QUEUE")
    )
    with pytest.raises(InvalidMessageError):
        producer.send(user_id, "t", "b")
