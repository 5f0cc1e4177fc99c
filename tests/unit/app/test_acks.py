"""The ``ack`` user event's parsing and answers (no I/O: the notifier is a recorder of calls)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from notify.acks import answer_ack, parse_ack
from notify.blueprints.presence import handle_ack
from shared.errors import TransientError


class RecordingNotifier:
    """Knows a set of (user, notificationId) pairs; or fails the way it is told to."""

    def __init__(self, known: set[tuple[str, str]] | None = None, fail: Exception | None = None) -> None:
        self.known = known or set()
        self.fail = fail
        self.calls: list[tuple[str, str]] = []
        self.connections: list[str] = []

    def handle_ack(self, user_id: str, notification_id: str, connection_id: str = "") -> bool:
        self.calls.append((user_id, notification_id))
        self.connections.append(connection_id)
        if self.fail is not None:
            raise self.fail
        return (user_id, notification_id) in self.known


def event(data: Any, user_id: str | None = "alice", data_type: str = "Json") -> str:
    """The ``request`` JSON the extension hands the function for a user event."""
    context: dict[str, Any] = {"eventType": "User", "eventName": "ack", "hub": "notify", "connectionId": "c1"}
    if user_id is not None:
        context["userId"] = user_id
    return json.dumps({"connectionContext": context, "data": data, "dataType": data_type})


def answer_of(response: dict[str, Any]) -> dict[str, Any]:
    assert response["dataType"] == "json"
    assert isinstance(response["data"], str)  # the extension accepts string data only
    answer: dict[str, Any] = json.loads(response["data"])
    assert answer["kind"] == "ackResult" and answer["protocolVersion"] == 1
    return answer


def test_a_known_notification_is_acked_and_answered_ok() -> None:
    notifier = RecordingNotifier({("alice", "n-1")})
    answer = answer_of(handle_ack(event(json.dumps({"notificationId": "n-1"})), notifier))
    assert answer == {"kind": "ackResult", "protocolVersion": 1, "notificationId": "n-1", "ok": True}
    assert notifier.calls == [("alice", "n-1")]
    assert notifier.connections == ["c1"]  # the connection that acked, for the delivery timeline


def test_an_unknown_notification_is_answered_with_its_code() -> None:
    answer = answer_of(answer_ack(event('{"notificationId": "n-2"}'), RecordingNotifier()))
    assert answer["ok"] is False
    assert answer["notificationId"] == "n-2"
    assert answer["error"]["code"] == "unknown_notification"
    assert answer["error"]["retryable"] is False


@pytest.mark.parametrize(
    "data",
    [
        '{"id": "x"}',  # the wrong field
        "{}",
        "plain text",
        '"n-1"',  # a JSON string, not an object
        '{"notificationId": ""}',
        '{"notificationId": 42}',
        '{"notificationId": "has spaces"}',
        json.dumps({"notificationId": "x" * 129}),
        "[" * 2000 + "]" * 2000,  # deeper than the JSON parser recurses, within the size limit
        "x" * 5000,  # over the size limit
        None,
    ],
)
def test_malformed_acks_get_a_malformed_answer_and_reach_no_store(data: Any) -> None:
    notifier = RecordingNotifier()
    answer = answer_of(answer_ack(event(data), notifier))
    assert answer["ok"] is False
    assert answer["error"]["code"] == "malformed"
    assert answer["error"]["message"]
    assert notifier.calls == []


def test_an_event_that_is_not_json_is_malformed() -> None:
    answer = answer_of(answer_ack("not json at all", RecordingNotifier()))
    assert answer["error"]["code"] == "malformed"
    assert answer["notificationId"] is None


def test_a_connection_without_user_is_refused_with_the_id_named() -> None:
    answer = answer_of(answer_ack(event('{"notificationId": "n-1"}', user_id=None), RecordingNotifier()))
    assert answer["error"]["code"] == "unauthenticated"
    assert answer["notificationId"] == "n-1"


def test_the_data_object_may_arrive_already_decoded() -> None:
    notifier = RecordingNotifier({("alice", "n-1")})
    assert answer_of(answer_ack(event({"notificationId": "n-1"}), notifier))["ok"] is True


def test_storage_failure_is_answered_retryable_and_not_raised() -> None:
    notifier = RecordingNotifier(fail=TransientError("table storage", "update delivery answered 503", 503))
    answer = answer_of(answer_ack(event('{"notificationId": "n-1"}'), notifier))
    assert answer["error"] == {
        "code": "unavailable",
        "message": "the ack could not be recorded; try again later",
        "retryable": True,
    }


def test_any_other_failure_is_answered_internal_and_not_raised() -> None:
    notifier = RecordingNotifier(fail=KeyError("boom"))
    answer = answer_of(answer_ack(event('{"notificationId": "n-1"}'), notifier))
    assert answer["error"]["code"] == "internal"
    assert "boom" not in answer["error"]["message"]  # no internals leak to the client


def test_parse_ack_returns_the_user_and_the_id() -> None:
    assert parse_ack(event('{"notificationId": "order-42:shipped"}')) == ("alice", "order-42:shipped")

