"""Counting at the wire is exact: a scripted sequence of exchanges, classified and tallied (pure logic).

The same sequence over real sockets, through the proxy and the official SDKs, is in
tests/integration/bench/test_wire_tap.py.
"""

import base64
import json

import pytest

from bench.request_table import PathRequests, cost_per_million, executions_per_notification, tally
from bench.wire_calls import Exchange, WireCall, classify


def _message(document: dict[str, str]) -> str:
    return base64.b64encode(json.dumps(document).encode()).decode()


def _put(queue: str, user: str, message_id: str) -> Exchange:
    body = f"<QueueMessage><MessageText>{_message({'userId': user})}</MessageText></QueueMessage>".encode()
    answer = f"<QueueMessagesList><QueueMessage><MessageId>{message_id}</MessageId></QueueMessage>"
    return Exchange(
        "queue",
        "POST",
        f"/devstoreaccount1/{queue}/messages",
        {},
        body,
        201,
        (answer + "</QueueMessagesList>").encode(),
    )


def _get(queue: str, messages: list[tuple[str, str]]) -> Exchange:
    items = "".join(
        f"<QueueMessage><MessageId>{m}</MessageId><PopReceipt>r</PopReceipt>"
        f"<MessageText>{_message({'userId': u, 'notificationId': m})}</MessageText></QueueMessage>"
        for m, u in messages
    )
    return Exchange(
        "queue",
        "GET",
        f"/devstoreaccount1/{queue}/messages?numofmessages=16",
        {},
        b"",
        200,
        f"<QueueMessagesList>{items}</QueueMessagesList>".encode(),
    )


SCRIPT = [
    # the backend enqueues one notification for alice and one for bob
    _put("notifications", "alice", "m1"),
    _put("notifications", "bob", "m2"),
    # one get returns both, then the queue is empty
    _get("notifications", [("m1", "alice"), ("m2", "bob")]),
    _get("notifications", []),
    # alice's handler: presence query, claimed insert, send, sent mark, deadline, delete
    Exchange(
        "table",
        "GET",
        "/devstoreaccount1/presence()?$filter=PartitionKey%20eq%20%27alice%27&$top=1",
        {},
        b"",
        200,
    ),
    Exchange(
        "table",
        "POST",
        "/devstoreaccount1/deliveries",
        {},
        json.dumps({"PartitionKey": "alice", "RowKey": "n1"}).encode(),
        201,
    ),
    Exchange(
        "webpubsub", "POST", "/api/hubs/notify/users/alice/:send?api-version=2024-01-01", {}, b"{}", 202
    ),
    Exchange(
        "table",
        "PATCH",
        "/devstoreaccount1/deliveries(PartitionKey='alice',RowKey='n1')",
        {"if-match": "*"},
        b"{}",
        204,
    ),
    _put("notification-deadlines", "alice", "m3"),
    Exchange("queue", "DELETE", "/devstoreaccount1/notifications/messages/m1?popreceipt=r", {}, b"", 204),
    # her ack, then the deadline: read, delete
    Exchange(
        "events",
        "POST",
        "/runtime/webhooks/webpubsub",
        {"ce-type": "azure.webpubsub.user.ack", "ce-userid": "alice"},
        b"{}",
        200,
        b'{"kind": "ackResult", "ok": true}',  # the ack answer: Web PubSub sends it to the client
    ),
    Exchange(
        "table",
        "PATCH",
        "/devstoreaccount1/deliveries(PartitionKey='alice',RowKey='n1')",
        {"if-match": "*"},
        b"{}",
        204,
    ),
    _get("notification-deadlines", [("m3", "alice")]),
    Exchange("table", "GET", "/devstoreaccount1/deliveries(PartitionKey='alice',RowKey='n1')", {}, b"", 200),
    Exchange(
        "queue", "DELETE", "/devstoreaccount1/notification-deadlines/messages/m3?popreceipt=r", {}, b"", 204
    ),
    # bob is offline: presence query, an insert that meets 409 (a duplicate) and its read, a push, delete
    Exchange(
        "table", "GET", "/devstoreaccount1/presence()?$filter=PartitionKey%20eq%20%27bob%27", {}, b"", 200
    ),
    Exchange(
        "table", "POST", "/devstoreaccount1/deliveries", {}, json.dumps({"PartitionKey": "bob"}).encode(), 409
    ),
    Exchange("table", "GET", "/devstoreaccount1/deliveries(PartitionKey='bob',RowKey='n2')", {}, b"", 200),
    Exchange(
        "notificationhubs",
        "POST",
        "/notify/messages/?api-version=2020-06",
        {"servicebusnotification-tags": "user:bob"},
        b"{}",
        201,
    ),
    Exchange("queue", "DELETE", "/devstoreaccount1/notifications/messages/m2?popreceipt=r", {}, b"", 204),
    # setup traffic nobody owns
    Exchange("table", "POST", "/devstoreaccount1/Tables", {}, b"{}", 201),
    Exchange("notificationhubs", "PUT", "/notify/installations/dev-1?api-version=2020-06", {}, b"{}", 200),
]


def _run(script: list[Exchange]) -> list[WireCall]:
    """Classify like the tap: queue message ids learnt from puts and gets name the user of a delete."""
    subjects: dict[str, str] = {}
    calls = []
    for exchange in script:
        call = classify(exchange, subjects.get)
        if call.column in ("queue put", "queue get"):
            for index, message_id in enumerate(call.message_ids):
                subjects[message_id] = call.subjects[index if call.operation == "get" else 0]
        calls.append(call)
    return calls


OWNERS = {
    "alice": ("notifier", "realtime acked"),
    "bob": ("notifier", "offline -> push"),
    "user:bob": ("notifier", "offline -> push"),
}


def test_every_call_of_the_script_is_counted_once_for_its_user() -> None:
    counts, replies, idle = tally(_run(SCRIPT), OWNERS.get)
    assert counts[("notifier", "realtime acked")] == {
        "queue put": 2,
        "queue get": 2,
        "queue delete": 2,
        "table query": 1,
        "table insert": 1,
        "table merge": 2,
        "table read": 1,
        "webpubsub send to user": 1,
        "events user.ack": 1,
    }
    assert counts[("notifier", "offline -> push")] == {
        "queue put": 1,
        "queue get": 1,
        "queue delete": 1,
        "table query": 1,
        "table insert": 1,
        "table read": 1,
        "notificationhubs send": 1,
    }
    assert idle == {"notifications": 1}
    assert replies == {("notifier", "realtime acked"): 1}
    assert len(counts) == 2  # the setup calls (create table, installation) belong to nobody


def test_classification_names_operation_resource_and_subject() -> None:
    calls = _run(SCRIPT)
    assert [c.column for c in calls[:4]] == ["queue put", "queue put", "queue get", "queue get"]
    assert calls[2].subjects == ("alice", "bob") and calls[2].message_ids == ("m1", "m2")
    assert calls[3].subjects == ()
    assert (calls[4].column, calls[4].resource, calls[4].subjects) == ("table query", "presence", ("alice",))
    assert calls[9].column == "queue delete" and calls[9].subjects == ("alice",)
    assert calls[16].status == 409 and calls[16].column == "table insert"
    assert (
        calls[-2].column == "table create table" and calls[-1].column == "notificationhubs installation put"
    )


@pytest.mark.parametrize(
    ("method", "target", "headers", "operation"),
    [
        ("PATCH", "/acct/t(PartitionKey='a',RowKey='b')", {"if-match": 'W/"1"'}, "merge"),
        ("PATCH", "/acct/t(PartitionKey='a',RowKey='b')", {}, "upsert"),
        ("PUT", "/acct/t(PartitionKey='a',RowKey='b')", {"if-match": "*"}, "replace"),
        ("PUT", "/acct/t(PartitionKey='a',RowKey='b')", {}, "upsert"),
        ("DELETE", "/acct/t(PartitionKey='a',RowKey='b')", {"if-match": "*"}, "delete"),
        ("POST", "/acct/$batch", {}, "batch"),
        ("GET", "/acct/t()?$filter=RowKey%20eq%20%27x%27", {}, "query"),
    ],
)
def test_table_operations(method: str, target: str, headers: dict[str, str], operation: str) -> None:
    call = classify(Exchange("table", method, target, headers, b"", 200))
    assert call.operation == operation


def test_keys_with_quotes_and_hashed_users_are_decoded() -> None:
    read = classify(Exchange("table", "GET", "/acct/t(PartitionKey='o''neil',RowKey='n')", {}, b"", 200))
    assert read.subjects == ("o'neil",)
    query = classify(
        Exchange(
            "table", "GET", "/acct/t()?$filter=PartitionKey%20eq%20%27user%3Asha256%3Aab%27", {}, b"", 200
        )
    )
    assert query.subjects == ("user:sha256:ab",)
    user = classify(Exchange("webpubsub", "POST", "/api/hubs/h/users/a%2Fb/:send", {}, b"", 202))
    assert (user.operation, user.subjects) == ("send to user", ("a/b",))


def test_costs_follow_the_billing_units() -> None:
    row = PathRequests(
        "notifier",
        "realtime acked",
        2,
        {
            "table read": 2,
            "table merge": 4,
            "queue put": 4,
            "queue get": 4,
            "queue delete": 4,
            "webpubsub send to user": 2,
            "events user.ack": 2,
            "events validate": 1,
        },
        replies=2,
    )
    cost = cost_per_million(row)
    assert cost["table"] == pytest.approx(3 * 0.036)
    assert cost["queue"] == pytest.approx(6 * 0.40)
    # one outbound message per send, per event and per answer to an event
    assert cost["webpubsub"] == pytest.approx(3 * 1.00)
    assert cost["notificationhubs"] == 0.0
    assert cost["total"] == pytest.approx(3 * 0.036 + 6 * 0.40 + 3.0)
    assert executions_per_notification(row) == 3  # two queue messages and one event per notification
    assert row.total == 11.5  # 23 calls for two notifications


def test_a_send_to_a_tag_expression_concerns_each_tag_in_it() -> None:
    exchange = Exchange(
        "notificationhubs", "POST", "/notify/messages/?api-version=2020-06",
        {"servicebusnotification-tags": "user:bob && !notify:retract"}, b"{}", 201,
    )
    call = classify(exchange, lambda _: None, 0.0)
    assert (call.operation, call.subjects) == ("send", ("user:bob", "notify:retract"))
