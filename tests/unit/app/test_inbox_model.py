"""The inbox's pure rules: marks, what an item adds to the counts, filters, cursors, the JSON of an item."""

from __future__ import annotations

import base64
import itertools
import json

import pytest

from notify.inbox_model import (
    NEW_ITEM,
    Counter,
    Counts,
    Cursor,
    CursorKind,
    ItemState,
    Mark,
    StatusFilter,
    change_json,
    decode_cursor,
    is_notification_id,
    is_reserved_row_key,
    item_columns,
    item_json,
    item_state,
    status_filter_clause,
)

STATES = [
    ItemState(read_at=r, seen_at=s, archived_at=a, deleted=d)
    for r, s, a, d in itertools.product((0.0, 5.0), (0.0, 4.0), (0.0, 3.0), (False, True))
    if not (r and not s)  # reading implies seeing: never read and unseen
]


@pytest.mark.parametrize("mark", list(Mark))
@pytest.mark.parametrize("state", STATES)
def test_every_mark_is_idempotent(state: ItemState, mark: Mark) -> None:
    once = state.marked(mark, 100.0)
    assert once.marked(mark, 200.0) == once


def test_marks_do_what_they_say_and_keep_the_first_time() -> None:
    read = NEW_ITEM.marked(Mark.READ, 10.0)
    assert read.read and read.seen and read.read_at == read.seen_at == 10.0
    assert read.marked(Mark.UNREAD, 20.0) == ItemState(seen_at=10.0)  # seen stays
    assert NEW_ITEM.marked(Mark.SEEN, 1.0).marked(Mark.READ, 2.0) == ItemState(read_at=2.0, seen_at=1.0)
    archived = NEW_ITEM.marked(Mark.ARCHIVE, 3.0)
    assert archived.archived and archived.marked(Mark.UNARCHIVE, 4.0) == NEW_ITEM
    assert NEW_ITEM.marked(Mark.DELETE, 5.0).deleted


def test_what_an_item_adds_to_the_counts() -> None:
    assert NEW_ITEM.counts() == Counts(1, 1, 1)
    assert ItemState(read_at=1.0, seen_at=1.0).counts() == Counts(0, 0, 1)
    assert ItemState(seen_at=1.0).counts() == Counts(1, 0, 1)
    assert ItemState(archived_at=1.0).counts() == Counts()
    assert ItemState(deleted=True).counts() == Counts()


@pytest.mark.parametrize("state", STATES)
def test_counts_agree_with_the_filters(state: ItemState) -> None:
    counts = state.counts()
    assert counts.total == int(state.matches(None))
    assert counts.unread == int(state.matches(StatusFilter.UNREAD))
    assert counts.unseen == int(state.matches(StatusFilter.UNSEEN))
    assert state.matches(StatusFilter.ALL) is not state.deleted
    assert state.matches(StatusFilter.ARCHIVED) is (state.archived and not state.deleted)


@pytest.mark.parametrize("status", [None, *StatusFilter])
@pytest.mark.parametrize("state", STATES)
def test_the_table_filter_selects_what_matches(state: ItemState, status: StatusFilter | None) -> None:
    """Evaluate the OData clause (``a eq b and …``) on the columns an item is stored with."""
    columns = item_columns(state, seq=3, created_seq=2)
    clause = status_filter_clause(status)
    terms = [term.split(" eq ") for term in clause.split(" and ")]
    selected = all(columns[name] is (value == "true") for name, value in terms)
    assert selected is state.matches(status)


def test_columns_and_state_round_trip() -> None:
    for state in STATES:
        entity = {"RowKey": "n", **item_columns(state, seq=9, created_seq=4)}
        assert item_state(entity) == state


def test_counter_round_trip() -> None:
    counter = Counter("ab12", seq=7, created_seq=5, counts=Counts(1, 2, 3))
    assert Counter.from_entity(counter.columns()) == counter
    assert set(counter.columns()) == set(Counter.COLUMNS)


def test_counts_arithmetic() -> None:
    assert Counts(1, 2, 3) + Counts(1, 1, 1) - Counts(2, 0, 1) == Counts(0, 3, 3)
    assert Counts(1, 0, 1).times(3) == Counts(3, 0, 3)
    assert Counts(1, 2, 3).to_json() == {"unread": 1, "unseen": 2, "total": 3}


@pytest.mark.parametrize("kind", list(CursorKind))
def test_cursors_round_trip(kind: CursorKind) -> None:
    cursor = Cursor(kind, "0123abcd", 41, "read" if kind is CursorKind.MARK_ALL else "", "chät:x")
    assert decode_cursor(cursor.encode(), kind) == cursor


def _b64(value: object) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "!!!",
        "a" * 600,
        _b64(b"not json"),
        _b64(b"[1]"),
        _b64({"k": "c", "e": "", "n": -1}),
        _b64({"k": "c", "e": "", "n": 2**31}),
        _b64({"k": "c", "e": "", "n": True}),
        _b64({"k": "c", "e": "XYZ", "n": 1}),
        _b64({"k": "c", "e": "", "n": 1, "z": 1}),
        _b64(b"\xff\xfe"),
        Cursor(CursorKind.PAGE, "", 3).encode(),
    ],
)
def test_anything_else_is_not_a_changes_cursor(text: str) -> None:
    with pytest.raises(ValueError):
        decode_cursor(text, CursorKind.CHANGES)


def test_ids_and_reserved_keys() -> None:
    assert is_notification_id("order-42.x:y_z") and not is_notification_id("~inbox")
    assert not is_notification_id("a" * 129) and not is_notification_id("") and not is_notification_id("a b")
    assert is_reserved_row_key("~inbox") and not is_reserved_row_key("n-1")


def test_item_json_and_tombstones() -> None:
    content = json.dumps({"title": "T", "body": "B", "type": "chat", "data": {"k": 1}}).encode()
    entity = {"RowKey": "n1", "content": content, "acceptedAt": 1_700_000_000.25, "ttlSeconds": 60,
              "inbox": True, **item_columns(ItemState(seen_at=1_700_000_001.0), seq=7, created_seq=3)}
    item = item_json(entity)
    assert item == {
        "notificationId": "n1", "title": "T", "body": "B", "type": "chat", "data": {"k": 1},
        "createdAt": "2023-11-14T22:13:20.250Z", "expiresAt": "2023-11-14T22:14:20.250Z",
        "read": False, "readAt": None, "seen": True, "seenAt": "2023-11-14T22:13:21.000Z",
        "archived": False, "archivedAt": None, "deleted": False, "version": 7,
    }
    entity.update(item_columns(ItemState(deleted=True), seq=8, created_seq=3))
    assert item_json(entity) == {"notificationId": "n1", "version": 8, "deleted": True}
    pending = {**entity, "inboxPending": True}
    assert item_json(pending)["version"] == 0 and item_json(pending)["read"] is False
    assert change_json("n1", NEW_ITEM, 4, new=True) == {
        "notificationId": "n1", "read": False, "seen": False, "archived": False, "deleted": False,
        "version": 4, "new": True,
    }
