"""The inbox's HTTP handlers over the wire: Azurite, the Web PubSub emulator with real WebSocket clients
for the ``inbox`` envelopes, and the Notification Hubs emulator's sink for the push badge.

Requests are built as the host builds them (``func.HttpRequest``) and authenticated with development
tokens by the real Authenticator; items arrive through the real Notifier.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import azure.functions as func
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableServiceClient
from azure.messaging.webpubsubservice import WebPubSubServiceClient
from azure.storage.queue import BinaryBase64EncodePolicy, QueueClient, TextBase64EncodePolicy

from devstack.azurite import RunningAzurite
from devstack.demo import pushed_notification_id
from devstack.notificationhubs.emulator import RunningNotificationHubs
from devstack.webpubsub.running import RunningWebPubSub
from notify.blueprints import inbox as api
from notify.deliveries import DeliveryStore
from notify.devices import DeviceRegistry
from notify.inbox import Inbox, tell
from notify.inbox_model import Mark
from notify.inbox_store import InboxStore
from notify.notifier import Notifier
from notify.push import PushSender
from notify.realtime import RealtimeSender
from notify.user_state import UserDirectory
from shared.auth import Authenticator, make_dev_token
from shared.notification_hubs import NotificationHubsClient
from shared.retry import RetryPolicy
from shared.settings import AuthSettings
from tests.integration.app.test_notifier import UserSocket, deliver_with, notification

pytestmark = pytest.mark.integration

SECRET = "dev-secret-for-inbox-tests-0123456789"
RETRY = RetryPolicy(attempts=2, base_delay=0.01, budget_seconds=2)
APNS_TOKEN = "0a" * 32
FCM_TOKEN = "cZ1:APA91b" + "q" * 140


@dataclass
class Api:
    inbox: Inbox
    notifier: Notifier
    poison: QueueClient
    wps: WebPubSubServiceClient
    auth: Authenticator
    nh: RunningNotificationHubs
    hub: str
    devices: DeviceRegistry

    def call(
        self,
        handler: Callable[..., func.HttpResponse],
        user: str | None,
        method: str = "GET",
        params: dict[str, str] | None = None,
        route: dict[str, str] | None = None,
        *extra: Any,
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {make_dev_token(SECRET, user)}"} if user else {}
        request = func.HttpRequest(
            method=method, url="http://localhost/api/inbox", headers=headers, params=params or {},
            route_params=route or {}, body=b"",
        )
        response = handler(request, self.auth, self.inbox, *extra)
        body = response.get_body()
        if response.status_code != 204:
            assert response.headers.get("Cache-Control") == "no-store" or response.status_code >= 400
        return response.status_code, json.loads(body) if body else None

    def send(self, user: str, **extra: Any) -> str:
        document = notification(user, **extra)
        deliver_with(self.notifier, self.poison, document)
        return str(document["notificationId"])


@pytest.fixture
def wired(
    azurite: RunningAzurite,
    webpubsub_emulator: RunningWebPubSub,
    notification_hubs_emulator: RunningNotificationHubs,
    nh_hub: str,
    unique_name: Callable[[str], str],
) -> Iterator[Api]:
    conn = azurite.connection_string
    tables = TableServiceClient.from_connection_string(conn)
    names = [unique_name("deliveries"), unique_name("devices")]
    deliveries, devices_table = (tables.create_table(name) for name in names)
    deadlines = QueueClient.from_connection_string(conn, unique_name("deadlines"),
                                                   message_encode_policy=TextBase64EncodePolicy())
    deadlines.create_queue()
    poison = QueueClient.from_connection_string(conn, unique_name("poison"),
                                                message_encode_policy=BinaryBase64EncodePolicy())
    wps = WebPubSubServiceClient.from_connection_string(
        webpubsub_emulator.connection_string, hub=unique_name("hub"), retry_total=0
    )
    nh_client = NotificationHubsClient(notification_hubs_emulator.connection_string, nh_hub, retry=RETRY)
    realtime = RealtimeSender(wps)
    store = InboxStore(deliveries)
    registry = DeviceRegistry(devices_table, nh_client, badge=True)
    notifier = Notifier(
        deliveries=DeliveryStore(deliveries),
        users=UserDirectory(devices_table),
        realtime=realtime,
        push=PushSender(nh_client, unread_count=Inbox(store).unread_count),
        deadline_queue=deadlines,
        ack_timeout_seconds=0,
        retry=RETRY,
    )
    inbox = Inbox(store, envelopes=realtime, on_read_or_archived=tell(notifier))  # as get_inbox wires it
    try:
        yield Api(inbox, notifier, poison, wps, Authenticator(AuthSettings(dev_secret=SECRET)),
                  notification_hubs_emulator, nh_hub, registry)
    finally:
        nh_client.close()
        wps.close()
        for queue in (deadlines, poison):
            with contextlib.suppress(ResourceNotFoundError):
                queue.delete_queue()
        for name in names:
            tables.delete_table(name)


def test_list_changes_counts_marks_and_delete(wired: Api) -> None:
    first = wired.send("alice", delivery="realtime")
    second = wired.send("alice", delivery="realtime", type="news")
    status, page = wired.call(api.list_response, "alice", params={"limit": "1"})
    assert status == 200 and [i["notificationId"] for i in page["items"]] == [second]
    assert page["counts"] == {"unread": 2, "unseen": 2, "total": 2} and page["next"]
    status, rest = wired.call(api.list_response, "alice", params={"limit": "1", "before": page["next"]})
    assert [i["notificationId"] for i in rest["items"]] == [first] and rest["next"] is None
    status, listed = wired.call(api.list_response, "alice", params={"type": "news", "status": "unread"})
    assert [i["notificationId"] for i in listed["items"]] == [second]

    status, marked = wired.call(api.mark_response, "alice", "POST", route={"notificationId": first,
                                                                            "action": "read"})
    assert status == 200 and marked["item"]["read"] is True and marked["counts"]["unread"] == 1
    assert wired.call(api.counts_response, "alice") == (200, {"unread": 1, "unseen": 1, "total": 2})
    status, item = wired.call(api.item_response, "alice", route={"notificationId": first})
    assert status == 200 and item["read"] is True and item["title"] == "Hello"

    status, changes = wired.call(api.changes_response, "alice", params={"after": page["cursor"]})
    assert status == 200 and [c["notificationId"] for c in changes["changes"]] == [first]
    status, everything = wired.call(api.changes_response, "alice")
    assert {c["notificationId"] for c in everything["changes"]} == {first, second}

    status, all_read = wired.call(api.mark_all_response, "alice", "POST", None, None, Mark.READ)
    assert status == 200 and all_read["marked"] == 1 and all_read["done"] is True
    assert wired.call(api.delete_response, "alice", "DELETE", route={"notificationId": first}) == (204, None)
    assert wired.call(api.delete_response, "alice", "DELETE", route={"notificationId": first}) == (204, None)
    assert wired.call(api.item_response, "alice", route={"notificationId": first})[0] == 404
    assert wired.call(api.counts_response, "alice") == (200, {"unread": 0, "unseen": 0, "total": 1})


def test_a_user_can_neither_list_nor_mark_another_users_items(wired: Api) -> None:
    bobs = wired.send("bob", delivery="realtime")
    alices = wired.send("alice", delivery="realtime")
    _, page = wired.call(api.list_response, "alice", params={"status": "all"})
    assert [i["notificationId"] for i in page["items"]] == [alices]
    _, changes = wired.call(api.changes_response, "alice")
    assert [c["notificationId"] for c in changes["changes"]] == [alices]
    missing = wired.call(api.item_response, "alice", route={"notificationId": "never-sent"})
    for action in ("read", "unread", "seen", "archive", "unarchive"):
        route = {"notificationId": bobs, "action": action}
        answer = wired.call(api.mark_response, "alice", "POST", route=route)
        assert answer == missing  # the same 404 as for an id that does not exist
    assert wired.call(api.item_response, "alice", route={"notificationId": bobs}) == missing
    assert wired.call(api.delete_response, "alice", "DELETE", route={"notificationId": bobs}) == missing
    assert missing[0] == 404 and missing[1]["error"]["code"] == "not_found"
    wired.call(api.mark_all_response, "alice", "POST", None, None, Mark.READ)
    assert wired.call(api.counts_response, "bob") == (200, {"unread": 1, "unseen": 1, "total": 1})
    assert wired.call(api.item_response, "bob", route={"notificationId": bobs})[1]["read"] is False


@pytest.mark.parametrize(
    ("handler", "params", "field"),
    [
        (api.list_response, {"limit": "0"}, "limit"),
        (api.list_response, {"limit": "101"}, "limit"),
        (api.list_response, {"limit": "ten"}, "limit"),
        (api.list_response, {"limit": "-1"}, "limit"),
        (api.list_response, {"limit": "٣"}, "limit"),
        (api.list_response, {"status": "starred"}, "status"),
        (api.list_response, {"type": "x" * 65}, "type"),
        (api.list_response, {"type": "a\x00b"}, "type"),
        (api.list_response, {"type": "\ud800"}, "type"),
        (api.list_response, {"before": "garbage!"}, "before"),
        (api.list_response, {"before": ""}, "before"),
        (api.list_response, {"sort": "asc"}, "sort"),
        (api.changes_response, {"after": "eyJrIjoicCIsImUiOiIiLCJuIjoxfQ"}, "after"),  # a list cursor
        (api.changes_response, {"after": "eyJ9"}, "after"),
        (api.changes_response, {"limit": "1000"}, "limit"),
        (api.changes_response, {"status": "unread"}, "status"),
        (api.counts_response, {"x": "1"}, "x"),
    ],
)
def test_bad_input_is_a_400_naming_the_parameter(
    wired: Api, handler: Callable[..., func.HttpResponse], params: dict[str, str], field: str
) -> None:
    status, body = wired.call(handler, "alice", params=params)
    assert status == 400
    assert body["error"]["code"] == "bad_request" and body["error"]["field"] == field
    assert field in body["error"]["message"] or field in ("x", "sort")


def test_unknown_actions_ids_and_missing_auth(wired: Api) -> None:
    nid = wired.send("alice", delivery="realtime")
    route = {"notificationId": nid, "action": "star"}
    status, body = wired.call(api.mark_response, "alice", "POST", route=route)
    assert status == 400 and body["error"]["field"] == "action"
    for bad_id in ("nope", "~inbox", "a" * 200, "bad id", "%2e%2e"):
        route = {"notificationId": bad_id, "action": "read"}
        answer = wired.call(api.mark_response, "alice", "POST", route=route)
        assert answer[0] == 404
    status, body = wired.call(api.list_response, None)
    assert status == 401 and body["error"]["code"] == "unauthorized"
    resume = {"resume": "eyJrIjoibSIsImUiOiIiLCJuIjozLCJtIjoic2VlbiJ9"}  # a seen-all token
    status, body = wired.call(api.mark_all_response, "alice", "POST", resume, None, Mark.READ)
    assert status == 400 and body["error"]["field"] == "resume"


def test_reading_on_one_device_updates_every_connection_at_once(wired: Api) -> None:
    phone, tablet = UserSocket(wired.wps, "alice"), UserSocket(wired.wps, "alice")
    other = UserSocket(wired.wps, "bob")
    try:
        first = wired.send("alice", delivery="realtime")
        wired.send("alice", delivery="realtime")
        _, page = wired.call(api.list_response, "alice")  # the phone lists: both items are taken in
        tablet_cursor = page["cursor"]
        for sock in (phone, tablet):
            received = sock.notifications_until_marker()
            assert [m["kind"] for m in received] == ["notification", "notification", "inbox"]
            assert received[0]["inbox"] is True
            assert received[2]["reason"] == "new" and received[2]["counts"]["unread"] == 2
        assert other.notifications_until_marker() == []

        route = {"notificationId": first, "action": "read"}
        _, marked = wired.call(api.mark_response, "alice", "POST", route=route)
        for sock in (phone, tablet):
            [envelope] = sock.notifications_until_marker()
            assert envelope == {
                "kind": "inbox",
                "protocolVersion": 1,
                "reason": "read",
                "changes": [{"notificationId": first, "read": True, "seen": True, "archived": False,
                             "deleted": False, "version": marked["item"]["version"]}],
                "counts": {"unread": 1, "unseen": 1, "total": 2},
                "previousCursor": tablet_cursor,
                "cursor": marked["cursor"],
            }
        assert other.notifications_until_marker() == []
        # The tablet's cursor equals previousCursor, so it could apply the envelope; changes agree.
        _, changes = wired.call(api.changes_response, "alice", params={"after": tablet_cursor})
        assert [c["notificationId"] for c in changes["changes"]] == [first]
        assert changes["cursor"] == marked["cursor"]
    finally:
        for sock in (phone, tablet, other):
            sock.close()


def pushes_of(wired: Api, notification_id: str) -> list[dict[str, Any]]:
    return [p for p in wired.nh.pushes(hub=wired.hub) if pushed_notification_id(p) == notification_id]


def test_pushes_carry_the_unread_count_as_the_badge(wired: Api) -> None:
    wired.devices.register("alice", "iphone-" + uuid.uuid4().hex[:8], "apns", APNS_TOKEN)
    wired.devices.register("alice", "pixel-" + uuid.uuid4().hex[:8], "fcmv1", FCM_TOKEN)
    wired.send("alice", delivery="realtime")
    read_one = wired.send("alice", delivery="realtime")
    wired.inbox.mark("alice", read_one, Mark.READ)
    pushed = wired.send("alice", delivery="push")  # 1 unread before it, 2 with it
    recorded = pushes_of(wired, pushed)
    assert all(p["outcome"] == "delivered" for p in recorded)
    by_platform = {p["platform"]: p["payload"] for p in recorded}
    assert set(by_platform) == {"apns", "fcmv1"}
    assert by_platform["apns"]["aps"]["badge"] == 2
    assert by_platform["fcmv1"]["message"]["android"]["notification"]["notification_count"] == 2
    assert by_platform["fcmv1"]["message"]["data"]["badge"] == "2"
    wired.inbox.mark_all("alice", Mark.READ)
    again = wired.send("alice", delivery="push")
    payloads = {p["platform"]: p["payload"] for p in pushes_of(wired, again)}
    assert payloads["apns"]["aps"]["badge"] == 1  # itself: everything before it was read


def retracts_of(wired: Api, notification_id: str) -> list[dict[str, Any]]:
    return [p for p in pushes_of(wired, notification_id) if _kind(p["payload"]) == "retract"]


def _kind(payload: dict[str, Any]) -> object:
    message = payload.get("message")
    return message["data"].get("kind") if isinstance(message, dict) else payload.get("kind")


def test_a_push_read_archived_or_deleted_in_the_inbox_is_retracted_on_every_device(wired: Api) -> None:
    wired.devices.register("alice", "iphone-" + uuid.uuid4().hex[:8], "apns", APNS_TOKEN)
    wired.devices.register("alice", "pixel-" + uuid.uuid4().hex[:8], "fcmv1", FCM_TOKEN)
    read, archived, deleted = (wired.send("alice", delivery="push") for _ in range(3))
    in_app_only = wired.send("alice", delivery="realtime")
    for nid in (read, archived, deleted):
        assert len(pushes_of(wired, nid)) == 2 and retracts_of(wired, nid) == []
    for nid, action in ((read, "read"), (archived, "archive"), (in_app_only, "read")):
        route = {"notificationId": nid, "action": action}
        assert wired.call(api.mark_response, "alice", "POST", route=route)[0] == 200
    assert wired.call(api.delete_response, "alice", "DELETE", route={"notificationId": deleted})[0] == 204
    for nid in (read, archived, deleted):
        retracts = retracts_of(wired, nid)
        assert sorted(p["platform"] for p in retracts) == ["apns", "fcmv1"], nid  # one per device
        assert all(p["outcome"] == "delivered" for p in retracts)
    assert pushes_of(wired, in_app_only) == []  # never pushed: nothing to take back
    # Reading again (another device) sends no second retract.
    wired.call(api.mark_response, "alice", "POST", route={"notificationId": read, "action": "unread"})
    wired.call(api.mark_response, "alice", "POST", route={"notificationId": read, "action": "read"})
    assert len(retracts_of(wired, read)) == 2
