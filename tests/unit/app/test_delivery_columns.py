"""A delivery state and its row's columns (pure logic): every state the machine reaches reads back from the
columns it is written as, so a record this process wrote may carry its state instead of decoding the row;
and a state the columns cannot hold whole (a shortened error, dropped timeline entries) is not carried.
The store's use of it over the wire is in tests/integration/app/test_notifier.py and test_deliveries.py."""

from __future__ import annotations

import dataclasses
from typing import Any

from notify.deliveries import (
    MAX_ERROR_CHARS,
    MAX_TIMELINE_CHARS,
    DeliveryRecord,
    state_columns,
    state_from_entity,
    written_state,
)
from notify.delivery_machine import DeliveryState, TimelineEntry
from tests.unit.app.test_delivery_machine import REACHABLE

TTL = 60


def row_of(state: DeliveryState, columns: dict[str, Any]) -> dict[str, Any]:
    """A row holding ``columns`` and the fields the state's expiry is computed from."""
    base: dict[str, Any] = {"delivery": state.delivery.value, "acceptedAt": 1.0}
    if state.expires_at is not None:
        base.update(ttlSeconds=TTL, enqueuedAt=state.expires_at - TTL)
    return {**base, **columns}


def test_every_reachable_state_reads_back_from_its_columns() -> None:
    assert len(REACHABLE) > 1500
    for state, _ in REACHABLE:
        written = written_state(state)
        assert written.exact, state
        assert dict(written.columns) == state_columns(state)
        decoded = state_from_entity(row_of(state, dict(written.columns)))
        assert decoded == state, state
        assert decoded.timeline == state.timeline, state


def test_an_insert_leaving_out_default_columns_reads_back_the_same() -> None:
    for state, _ in REACHABLE:
        written = written_state(state)
        kept = {k: v for k, v in written.columns.items() if k == "status" or v not in ("", 0, 0.0)}
        decoded = state_from_entity(row_of(state, kept))
        assert decoded == state and decoded.timeline == state.timeline, state


def test_a_state_whose_columns_are_shortened_is_not_carried() -> None:
    state = REACHABLE[-1][0]
    assert written_state(dataclasses.replace(state, last_error="x" * MAX_ERROR_CHARS)).exact
    assert not written_state(dataclasses.replace(state, last_error="x" * (MAX_ERROR_CHARS + 1))).exact
    assert not written_state(dataclasses.replace(state, reason="y" * (MAX_ERROR_CHARS + 1))).exact
    long_entry = TimelineEntry(1, 2.0, "claim", "accepted", "r" * 5_000)
    short = (TimelineEntry(0, 1.0, "accepted", "accepted", "new"), *[long_entry] * 3)
    assert written_state(dataclasses.replace(state, timeline=short)).exact
    too_long = (short[0], *[long_entry] * (MAX_TIMELINE_CHARS // 5_000 + 1))
    shortened = written_state(dataclasses.replace(state, timeline=too_long))
    assert not shortened.exact
    # Not carried: its record decodes the row it wrote (the timeline as shortened), not the state given.
    record = DeliveryRecord(row_of(state, dict(shortened.columns)), "etag", shortened)
    assert len(record.state.timeline) < len(too_long) and record.columns is shortened.columns


def test_a_record_carrying_its_state_decodes_nothing_and_one_read_decodes_its_row() -> None:
    state = REACHABLE[-1][0]
    written = written_state(state)
    # A row whose columns say something else: a carried record must not look at them.
    entity = row_of(state, {**state_columns(state), "status": "failed", "timeline": "[]"})
    carried = DeliveryRecord(entity, "etag", written)
    assert carried.state is state and carried.columns is written.columns
    read = DeliveryRecord(entity, "etag")
    assert read.state.status.value == "failed" and read.state.timeline == ()
    assert read.columns == state_columns(read.state)


def test_the_machine_s_copies_are_what_dataclasses_replace_builds() -> None:
    from notify.delivery_machine import _evolve

    for state, now in REACHABLE[:300]:
        for changes in ({}, {"status": state.status, "acked_at": now}, {"timeline": (), "reason": "x"}):
            copy = _evolve(state, **changes)
            expected = dataclasses.replace(state, **changes)
            assert copy == expected and copy.timeline == expected.timeline and copy is not state
            assert vars(copy) == vars(expected)
    try:
        _evolve(REACHABLE[0][0], acked=1.0)
    except TypeError as exc:
        assert "acked" in str(exc)
    else:
        raise AssertionError("an unknown field must raise")
