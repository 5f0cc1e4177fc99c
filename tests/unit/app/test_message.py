"""Queue message parsing: the hand-written parser agrees with notification.schema.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from notify.message import MAX_MESSAGE_BYTES, notification_id_for_queue_message, parse_message
from notify.model import Delivery
from shared.errors import InvalidMessageError

SCHEMA = json.loads((Path(__file__).parents[3] / "notify" / "notification.schema.json").read_text())
BASE: dict[str, Any] = {"userId": "alice", "title": "Hi", "body": "There"}

VALID: list[dict[str, Any]] = [
    BASE,
    {**BASE, "schemaVersion": 1, "type": "chat", "data": {"k": [1, {"x": None}]}},
    {**BASE, "notificationId": "order-42:a.b_c", "delivery": "both", "ttlSeconds": 60, "enqueuedAt": 17.5},
    {**BASE, "delivery": "push", "ttlSeconds": 2419200, "enqueuedAt": 0},
    {**BASE, "delivery": "realtime", "ttlSeconds": 5.0},
    {**BASE, "userId": "u" * 256, "notificationId": "n" * 128, "title": "", "body": ""},
    {**BASE, "userId": "ünï/cødé#?"},
]

INVALID: list[Any] = [
    [],
    "text",
    {"title": "t", "body": "b"},
    {**BASE, "userId": ""},
    {**BASE, "userId": "u" * 257},
    {**BASE, "userId": 5},
    {**BASE, "title": None},
    {k: v for k, v in BASE.items() if k != "body"},
    {**BASE, "type": 3},
    {**BASE, "type": ""},
    {**BASE, "data": []},
    {**BASE, "data": "x"},
    {**BASE, "notificationId": ""},
    {**BASE, "notificationId": "n" * 129},
    {**BASE, "notificationId": "has space"},
    {**BASE, "notificationId": "slash/id"},
    {**BASE, "delivery": "email"},
    {**BASE, "delivery": None},
    {**BASE, "ttlSeconds": 0},
    {**BASE, "ttlSeconds": 2419201},
    {**BASE, "ttlSeconds": 1.5},
    {**BASE, "ttlSeconds": "60"},
    {**BASE, "ttlSeconds": True},
    {**BASE, "enqueuedAt": "now"},
    {**BASE, "enqueuedAt": -1},
    {**BASE, "schemaVersion": 2},
    {**BASE, "extra": 1},
]


@pytest.mark.parametrize("document", VALID)
def test_valid_samples_pass_schema_and_parser(document: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(SCHEMA).validate(document)
    notification = parse_message(json.dumps(document).encode(), queue_message_id="m1")
    assert notification.user_id == document["userId"]
    assert notification.title == document["title"]
    assert notification.delivery == Delivery(document.get("delivery", "auto"))
    assert notification.type == document.get("type", "default")
    assert notification.data == document.get("data", {})


@pytest.mark.parametrize("document", INVALID)
def test_invalid_samples_fail_schema_and_parser(document: Any) -> None:
    assert not jsonschema.Draft202012Validator(SCHEMA).is_valid(document)
    with pytest.raises(InvalidMessageError):
        parse_message(json.dumps(document).encode(), queue_message_id="m1")


def test_schema_itself_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("body", [b"", b"{", b"\xff\xfe", b"null", b'{"userId": "a"'])
def test_non_json_is_invalid(body: bytes) -> None:
    with pytest.raises(InvalidMessageError):
        parse_message(body, queue_message_id="m1")


def test_oversize_message_is_invalid_with_reason() -> None:
    document = {**BASE, "body": "x" * MAX_MESSAGE_BYTES}
    with pytest.raises(InvalidMessageError, match="limit"):
        parse_message(json.dumps(document).encode(), queue_message_id="m1")


def test_message_just_under_the_limit_is_accepted() -> None:
    overhead = len(json.dumps({**BASE, "body": ""}).encode())
    document = {**BASE, "body": "x" * (MAX_MESSAGE_BYTES - overhead)}
    assert len(json.dumps(document).encode()) == MAX_MESSAGE_BYTES
    assert parse_message(json.dumps(document).encode(), queue_message_id="m1").body == document["body"]


def test_missing_id_is_derived_from_the_queue_message_id() -> None:
    body = json.dumps(BASE).encode()
    first = parse_message(body, queue_message_id="queue-msg-1")
    again = parse_message(body, queue_message_id="queue-msg-1")
    other = parse_message(body, queue_message_id="queue-msg-2")
    assert first.notification_id == again.notification_id == notification_id_for_queue_message("queue-msg-1")
    assert first.notification_id != other.notification_id
    # The derived id is itself a valid notificationId.
    jsonschema.Draft202012Validator(SCHEMA).validate({**BASE, "notificationId": first.notification_id})


def test_given_id_wins_over_the_queue_message_id() -> None:
    body = json.dumps({**BASE, "notificationId": "mine"}).encode()
    assert parse_message(body, queue_message_id="queue-msg-1").notification_id == "mine"


def test_missing_id_without_queue_message_id_is_invalid() -> None:
    with pytest.raises(InvalidMessageError) as info:
        parse_message(json.dumps(BASE).encode())
    assert info.value.field == "notificationId"


def test_reason_names_the_field() -> None:
    with pytest.raises(InvalidMessageError) as info:
        parse_message(json.dumps({**BASE, "delivery": "fax"}).encode(), queue_message_id="m")
    assert info.value.field == "delivery"
    assert "auto" in info.value.message
