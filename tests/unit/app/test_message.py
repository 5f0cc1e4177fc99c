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
    {**BASE, "userId": "Zoe\u0308 and a space inside"},  # NFD, inner space
    {**BASE, "userId": "x" * 255 + "\u00e9"},
    {**BASE, "delivery": "realtime", "body": "x" * 10_000},  # never pushed: no push size limit
    {**BASE, "critical": True},
    {**BASE, "critical": False},
    {**BASE, "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
]

INVALID: list[Any] = [
    [],
    "text",
    {"title": "t", "body": "b"},
    {**BASE, "userId": ""},
    {**BASE, "userId": "u" * 257},
    {**BASE, "userId": 5},
    {**BASE, "userId": "victim "},
    {**BASE, "userId": " victim"},
    {**BASE, "userId": "victim\u00a0"},
    {**BASE, "userId": "a\u0000b"},
    {**BASE, "userId": "a\nb"},
    {**BASE, "userId": "a\tb"},
    {**BASE, "userId": "a\u0085b"},
    {**BASE, "userId": "a\u2028b"},
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
    {**BASE, "critical": 1},
    {**BASE, "critical": "true"},
    {**BASE, "traceparent": "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"},
    {**BASE, "traceparent": "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    {**BASE, "traceparent": 7},
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
    overhead = len(json.dumps({**BASE, "body": "", "delivery": "realtime"}).encode())
    document = {**BASE, "body": "x" * (MAX_MESSAGE_BYTES - overhead), "delivery": "realtime"}
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


@pytest.mark.parametrize("delivery", ["auto", "push", "both"])
def test_a_notification_whose_push_cannot_fit_is_refused_at_parse(delivery: str) -> None:
    document = {**BASE, "body": "x" * 5000, "delivery": delivery}
    with pytest.raises(InvalidMessageError, match="4096") as info:
        parse_message(json.dumps(document).encode(), queue_message_id="m1")
    assert "realtime" in info.value.message and info.value.field == "body"


def test_the_push_limit_counts_utf8_bytes_of_the_rendered_payload() -> None:
    # FCM v1 carries the body twice (notification and data): 1100 characters are 2200 bytes as ASCII, 4400
    # as two-byte UTF-8.
    assert parse_message(json.dumps({**BASE, "body": "e" * 1100}).encode(), queue_message_id="m1")
    with pytest.raises(InvalidMessageError):
        parse_message(json.dumps({**BASE, "body": "é" * 1100}).encode(), queue_message_id="m1")


@pytest.mark.parametrize("depth", [31, 32, 33, 5000])
def test_deep_nesting_is_refused_without_recursion(depth: int) -> None:
    body = ('{"userId":"a","title":"t","body":"b","data":' + '{"k":' * (depth - 1) + "1"
            + "}" * depth).encode()
    if depth <= 32:
        assert parse_message(body, queue_message_id="m1").user_id == "a"
    else:
        with pytest.raises(InvalidMessageError, match="deeper than 32"):
            parse_message(body, queue_message_id="m1")


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    document = {**BASE, "title": "[[[[{{{{" * 10, "data": {"k": "]]]}}}" * 10}}
    assert parse_message(json.dumps(document).encode(), queue_message_id="m1").title == document["title"]


@pytest.mark.parametrize("field", ["title", "body", "type", "data"])
def test_a_lone_surrogate_anywhere_is_refused_at_once(field: str) -> None:
    value: Any = {"k\ud800": 1} if field == "data" else "x\udc00y"
    body = json.dumps({**BASE, field: value}).encode()  # ensure_ascii writes the \udc00 escape
    with pytest.raises(InvalidMessageError, match="surrogate") as info:
        parse_message(body, queue_message_id="m1")
    assert info.value.field == field
