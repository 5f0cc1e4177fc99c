"""The management API's handlers against Azurite: paging, the status filter, bad input, rows of other
kinds in a user's partition. (Auth is covered by test_manage_auth*.py; the routes by the e2e tests.)"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import azure.functions as func
import pytest
from azure.data.tables import TableClient, TableServiceClient

from devstack.azurite import RunningAzurite
from notify.blueprints.manage import notification_list_response, notification_status_response
from notify.deliveries import DeliveryStore
from notify.delivery_machine import Arrived, Rules, UserView, decide, new_state
from notify.model import Delivery, Notification
from shared.auth import Backend

pytestmark = pytest.mark.integration


class AnyBackend:
    def authenticate(self, headers: dict[str, str]) -> Backend:
        return Backend("test", "dev")


@pytest.fixture
def table(azurite: RunningAzurite, unique_name: Callable[[str], str]) -> Iterator[TableClient]:
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    name = unique_name("deliveries")
    client = service.create_table(name)
    try:
        yield client
    finally:
        service.delete_table(name)


def insert(store: DeliveryStore, user_id: str, notification_id: str, online: bool) -> None:
    now = time.time()
    notification = Notification(notification_id, user_id, "T", "B", delivery=Delivery.AUTO, enqueued_at=now)
    event = Arrived("c1", UserView(online=online))
    first = decide(new_state(Delivery.AUTO, None, accepted_at=now), event, now, Rules(10))
    store.insert(notification, first.state, now)


def get(path_params: dict[str, str], params: dict[str, str] | None = None) -> func.HttpRequest:
    return func.HttpRequest("GET", "http://localhost/api/manage/x", headers={}, params=params or {},
                            route_params=path_params, body=b"")


def answer(response: func.HttpResponse) -> tuple[int, dict[str, object]]:
    return response.status_code, json.loads(response.get_body())


def test_one_notification_and_unknown_ones(table: TableClient) -> None:
    store = DeliveryStore(table)
    insert(store, "alice", "n-1", online=False)
    status, body = answer(notification_status_response(
        get({"userId": "alice", "notificationId": "n-1"}), AnyBackend(), store))
    assert status == 200 and body["status"] == "accepted" and body["delivery"] == "auto"
    assert [e["name"] for e in body["timeline"]] == ["accepted", "claim"]  # type: ignore[union-attr]
    assert "title" not in body and "body" not in body  # no content, only what happened
    status, body = answer(notification_status_response(
        get({"userId": "alice", "notificationId": "n-2"}), AnyBackend(), store))
    assert status == 404 and body["error"]["code"] == "not_found"  # type: ignore[index]
    status, _ = answer(notification_status_response(
        get({"userId": "alice", "notificationId": "bad id"}), AnyBackend(), store))
    assert status == 400


def test_pages_and_the_status_filter(table: TableClient) -> None:
    store = DeliveryStore(table)
    for i in range(5):
        insert(store, "bob", f"n-{i}", online=bool(i % 2))
    table.create_entity({"PartitionKey": "bob", "RowKey": "inbox:n-0", "read": True})  # another row kind
    seen: list[str] = []
    token = None
    for _ in range(5):
        params = {"limit": "2", **({"continuationToken": token} if token else {})}
        status, body = answer(notification_list_response(get({"userId": "bob"}, params), AnyBackend(), store))
        assert status == 200
        seen += [str(item["notificationId"]) for item in body["items"]]  # type: ignore[attr-defined]
        token = body["continuationToken"]  # type: ignore[assignment]
        if token is None:
            break
    assert seen == [f"n-{i}" for i in range(5)]
    status, body = answer(notification_list_response(
        get({"userId": "bob"}, {"status": "accepted,sent_realtime"}), AnyBackend(), store))
    assert status == 200 and len(body["items"]) == 5  # type: ignore[arg-type]
    status, body = answer(notification_list_response(  # the offline ones: the push claimed, not sent
        get({"userId": "bob"}, {"status": "accepted"}), AnyBackend(), store))
    assert [item["notificationId"] for item in body["items"]] == ["n-0", "n-2", "n-4"]  # type: ignore[attr-defined]
    status, body = answer(notification_list_response(
        get({"userId": "bob"}, {"status": "acked"}), AnyBackend(), store))
    assert body["items"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "lost"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"continuationToken": "not-ours"}, "continuationToken"),
    ],
)
def test_bad_query_parameters_are_400_naming_the_field(table: TableClient, params: dict[str, str],
                                                       field: str) -> None:
    status, body = answer(notification_list_response(get({"userId": "bob"}, params), AnyBackend(),
                                                     DeliveryStore(table)))
    assert status == 400 and body["error"]["field"] == field  # type: ignore[index]


def test_closed_by_default_and_never_open_to_a_user(table: TableClient) -> None:
    """Nothing configured for backends: every request is refused, whatever it carries; a users' dev token
    is never a backend's, even where development backend tokens are configured."""
    from shared.auth import ManageAuthenticator, make_dev_manage_token, make_dev_token
    from shared.settings import AuthSettings, ManageAuthSettings

    secret = "dev-secret-for-manage-tests-0123456789"
    store = DeliveryStore(table)
    insert(store, "alice", "n-1", online=False)
    route = {"userId": "alice", "notificationId": "n-1"}

    def call(auth: ManageAuthenticator, token: str) -> tuple[int, dict[str, object]]:
        headers = {"Authorization": f"Bearer {token}"}
        request = func.HttpRequest("GET", "http://localhost/api/manage/x", headers=headers, params={},
                                   route_params=route, body=b"")
        return answer(notification_status_response(request, auth, store))

    unconfigured = ManageAuthenticator(ManageAuthSettings(), AuthSettings(dev_secret=secret))
    for token in (make_dev_manage_token(secret), make_dev_token(secret, "alice")):
        status, body = call(unconfigured, token)
        assert status == 401 and body["error"] == {
            "code": "unauthorized", "message": "the management API has no authentication configured"}
    dev = ManageAuthenticator(ManageAuthSettings(dev_secret=secret), AuthSettings(dev_secret=secret))
    assert call(dev, make_dev_token(secret, "alice"))[0] == 401
    assert call(dev, make_dev_manage_token(secret))[0] == 200
