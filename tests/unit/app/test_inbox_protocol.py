"""What the inbox code produces validates against docs/openapi.yaml (real responses: tests/e2e)."""

from __future__ import annotations

import json

from notify.inbox import changes_cursor, inbox_envelope
from notify.inbox_model import (
    NEW_ITEM,
    Counts,
    Cursor,
    CursorKind,
    ItemState,
    Mark,
    change_json,
    item_columns,
    item_json,
)
from notify.push_templates import PushOptions, render_payload, template_properties
from tests.openapi_spec import errors, schema_validator, spec
from tests.unit.app.test_client_protocol import NOTIFICATION

CONTENT = json.dumps({"title": "T", "body": "B", "type": "chat", "data": {"k": [1]}}).encode()


def _entity(state: ItemState, seq: int = 5) -> dict[str, object]:
    return {"RowKey": "n-1", "content": CONTENT, "acceptedAt": 1_700_000_000.5, "ttlSeconds": 0,
            "inbox": True, **item_columns(state, seq=seq, created_seq=2)}


def test_items_and_tombstones_validate() -> None:
    for state in (NEW_ITEM, NEW_ITEM.marked(Mark.READ, 1_700_000_010.0), ItemState(archived_at=9.0)):
        assert errors(item_json(_entity(state)), schema_validator("InboxItem")) == []
    tombstone = item_json(_entity(ItemState(deleted=True)))
    assert errors(tombstone, schema_validator("InboxTombstone")) == []
    assert errors(tombstone, schema_validator("InboxItem")) != []  # the two are told apart


def test_the_envelope_validates_and_its_reasons_are_documented() -> None:
    read = ItemState(read_at=1, seen_at=1)
    changes = [change_json("n-1", NEW_ITEM, 3, new=True), change_json("n-2", read, 4)]
    before, after = changes_cursor("ab12", 2), changes_cursor("ab12", 4)
    envelope = inbox_envelope("read", changes, Counts(1, 2, 3), before, after)
    assert errors(json.loads(json.dumps(envelope)), schema_validator("InboxEnvelope")) == []
    reasons = set(spec()["components"]["schemas"]["InboxEnvelope"]["properties"]["reason"]["enum"])
    assert reasons == {m.value for m in Mark} | {"new", "read-all", "seen-all", "repair"}


def test_cursors_match_the_cursor_schema() -> None:
    for kind in CursorKind:
        long_type = "a much longer type name ✓ with spaces"
        cursor = Cursor(kind, "0123456789abcdef", 2**31 - 1, "read", long_type).encode()
        assert errors(cursor, schema_validator("InboxCursor")) == []
    assert errors(changes_cursor("", 0), schema_validator("InboxCursor")) == []


def test_the_badge_payloads_validate() -> None:
    properties = template_properties(NOTIFICATION, PushOptions(), 1_900_000_000.0, badge=3)
    apns = json.loads(render_payload("apns", properties))
    assert errors(apns, schema_validator("ApnsPayload")) == [] and apns["aps"]["badge"] == 3
    fcm = json.loads(render_payload("fcmv1", properties))
    assert errors(fcm, schema_validator("FcmV1Message")) == []
    assert errors(fcm["message"]["data"], schema_validator("FcmV1Data")) == []


def test_the_envelope_of_a_notification_says_whether_it_is_listed() -> None:
    from dataclasses import replace

    for listed in (True, False):
        envelope = replace(NOTIFICATION, inbox=listed).envelope()
        assert envelope["inbox"] is listed
        assert errors(envelope, schema_validator("NotificationEnvelope")) == []
