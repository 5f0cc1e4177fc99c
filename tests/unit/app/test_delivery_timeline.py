"""The delivery timeline that decide() writes: one entry per change, named after what happened, with its
reason and details, bounded in size (pure logic; the paths over the wire are in tests/e2e and
tests/integration/app/test_delivery_reporting.py)."""

from __future__ import annotations

import dataclasses

from notify.delivery_machine import (
    MAX_TIMELINE_ENTRIES,
    Acked,
    Archived,
    Arrived,
    DeliveryState,
    PushOutcome,
    PushSent,
    Read,
    Rules,
    SendRetract,
    Status,
    TimelineEntry,
    UserView,
    decide,
    new_state,
)
from notify.model import Delivery

NOW = 1_800_000_000.0
RULES = Rules(10)


def pushed() -> DeliveryState:
    state = new_state(Delivery.AUTO, None, accepted_at=NOW)
    state = decide(state, Arrived("c1", UserView(online=False, has_devices=True)), NOW, RULES).state
    return decide(state, PushSent("c1", PushOutcome.PUSHED, "nh-1"), NOW + 1, RULES).state


def test_each_change_is_one_entry_in_order() -> None:
    state = pushed()
    assert [(e.seq, e.name, e.status) for e in state.timeline] == [
        (0, "accepted", "accepted"), (1, "claim", "accepted"), (2, "push-sent", "pushed")]
    assert state.timeline[1].reason == "the user is offline: claim push"
    assert state.timeline[1].details == {"fallback": "offline"}
    assert state.timeline[2].details == {"nhNotificationId": "nh-1"}


def test_inbox_marks_after_a_push_are_named_after_the_mark_and_claim_the_retract() -> None:
    for event, name, reason, details in (
        (Read("c2"), "read", "the user read it in the inbox", {}),
        (Archived("c2"), "archived", "the user archived it in the inbox", {}),
        (Archived("c2", deleted=True), "archived", "the user deleted it from the inbox", {"deleted": True}),
    ):
        step = decide(pushed(), event, NOW + 5, RULES)
        entry = step.recorded
        assert entry is not None and entry.name == name and entry.at == NOW + 5
        assert entry.reason == f"{reason} (after the push went out); claim retract"
        assert dict(entry.details) == details
        assert any(isinstance(a, SendRetract) for a in step.actions)


def test_a_push_recorded_after_the_read_stays_push_sent() -> None:
    state = new_state(Delivery.AUTO, None, accepted_at=NOW)
    state = decide(state, Arrived("c1", UserView(online=False, has_devices=True)), NOW, RULES).state
    state = decide(state, Read("c2"), NOW + 1, RULES).state  # read while the push was on its way
    step = decide(state, PushSent("c1", PushOutcome.PUSHED, "nh-1"), NOW + 2, RULES)
    assert step.recorded is not None and step.recorded.name == "push-sent"
    assert any(isinstance(a, SendRetract) for a in step.actions)


def test_nothing_changed_nothing_recorded() -> None:
    state = decide(pushed(), Acked("c2", "conn-1"), NOW + 3, RULES).state
    again = decide(state, Acked("c3", "conn-2"), NOW + 4, RULES)
    assert again.recorded is None and again.state.timeline == state.timeline


def test_the_timeline_keeps_the_first_and_the_newest_entries() -> None:
    state = pushed()
    filler = tuple(TimelineEntry(i, NOW + i, "released", "accepted", "r") for i in range(3, 3 + 60))
    state = dataclasses.replace(state, timeline=(*state.timeline, *filler), status=Status.PUSHED)
    step = decide(state, Read("c9"), NOW + 100, RULES)
    timeline = step.state.timeline
    assert len(timeline) == MAX_TIMELINE_ENTRIES
    assert timeline[0].name == "accepted" and timeline[-1].name == "read"
    assert timeline[-1].seq == 63 and timeline[1].seq == 63 - MAX_TIMELINE_ENTRIES + 2


def test_entries_survive_storage_and_odd_ones_are_dropped() -> None:
    entry = pushed().timeline[-1]
    assert TimelineEntry.from_dict(entry.to_dict()) == entry
    for odd in (None, [], {"seq": "1"}, {**entry.to_dict(), "at": "noon"}):
        assert TimelineEntry.from_dict(odd) is None
