"""The delivery state machine, exhaustively: every (status, event) pair has a row; an expected-outcome
table for every pair on the canonical ``auto`` states; and invariants over every pair of (reachable state,
event) in all four delivery modes, at two moments (claims live, claims expired) with and without a TTL."""

from __future__ import annotations

import dataclasses
import itertools
from collections import deque
from collections.abc import Iterator

import pytest

from notify.delivery_machine import (
    DONE_STATUSES,
    EVENT_TYPES,
    TRANSITIONS,
    Acked,
    Action,
    Arrived,
    Channel,
    ChannelState,
    DeadlinePassed,
    DeliveryState,
    Event,
    PushOutcome,
    PushSent,
    RealtimeSent,
    Recheck,
    RecordOutcome,
    Rules,
    ScheduleDeadline,
    SendFailed,
    SendInterrupted,
    SendPush,
    SendRealtime,
    Status,
    Transition,
    decide,
    new_state,
)
from notify.model import Delivery

RULES = Rules(ack_timeout_seconds=10, claim_lease_seconds=120, recheck_seconds=5)
T0 = 1_000.0
LATER = T0 + RULES.claim_lease_seconds + 5  # every claim made at T0 has expired
CLAIMS = ("c1", "c2")


def sends(actions: tuple[Action, ...]) -> list[Action]:
    return [a for a in actions if isinstance(a, SendRealtime | SendPush)]


def effects(actions: tuple[Action, ...]) -> list[Action]:
    """Every action except the outcome log line."""
    return [a for a in actions if not isinstance(a, RecordOutcome)]


def all_events() -> list[Event]:
    events: list[Event] = [Acked()]
    for claim in CLAIMS:
        events += [
            Arrived(claim, True),
            Arrived(claim, False),
            DeadlinePassed(claim),
            RealtimeSent(claim),
            PushSent(claim, PushOutcome.PUSHED, "nh-1"),
            PushSent(claim, PushOutcome.NO_DEVICES),
        ]
        for channel in Channel:
            events += [SendFailed(channel, claim), SendInterrupted(channel, claim)]
    return events


def reachable() -> Iterator[tuple[DeliveryState, float]]:
    """Every (state, moment) reachable from a new record by any sequence of events, time moving forward."""
    seen: set[tuple[DeliveryState, float]] = set()
    queue: deque[tuple[DeliveryState, float]] = deque()
    for mode, expiry in itertools.product(Delivery, (None, T0 + 60)):
        queue.append((new_state(mode, expiry), T0))
    events = all_events()
    while queue:
        state, now = queue.popleft()
        if (state, now) in seen:
            continue
        seen.add((state, now))
        yield state, now
        for event in events:
            nxt = decide(state, event, now, RULES).state
            for moment in (now, LATER):
                if moment >= now and (nxt, moment) not in seen:
                    queue.append((nxt, moment))


REACHABLE = list(reachable())


def test_every_status_and_event_pair_has_a_row() -> None:
    missing = [(s, e.__name__) for s in Status for e in EVENT_TYPES if (s, e) not in TRANSITIONS]
    assert missing == []
    assert len(TRANSITIONS) == len(Status) * len(EVENT_TYPES)


def test_the_search_reaches_every_status_in_every_mode() -> None:
    # Events are fed in every mode, also those the notifier never produces there (a push result for a
    # realtime-only record): the invariants must hold whatever arrives.
    for mode in Delivery:
        assert {s.status for s, _ in REACHABLE if s.delivery is mode} == set(Status), mode
    assert len(REACHABLE) > 500  # the invariants below are checked on a real variety of states


@pytest.mark.parametrize("event", all_events(), ids=repr)
def test_invariants_hold_for_every_reachable_state(event: Event) -> None:
    for state, now in REACHABLE:
        step = decide(state, event, now, RULES)
        where = f"{event!r} on {state!r} at {now}"
        assert step.name and step.reason, where
        after = step.state
        assert after.delivery == state.delivery and after.expires_at == state.expires_at, where
        for action in sends(step.actions):
            channel = Channel.REALTIME if isinstance(action, SendRealtime) else Channel.PUSH
            # A send only ever happens under a claim the next state holds for the event's own handler.
            assert after.channel(channel).held_by(action.claim_id), where
            assert isinstance(event, Arrived | DeadlinePassed | SendFailed), where
            assert action.claim_id == event.claim_id, where
            assert after.status not in (Status.FAILED, Status.EXPIRED), where
        for channel in Channel:
            before_ch, after_ch = state.channel(channel), after.channel(channel)
            if before_ch.sent:  # sent stays sent, with its first time
                assert after_ch.sent_at == before_ch.sent_at, where
            live = before_ch.lease_remaining(now, RULES.claim_lease_seconds) > 0
            mine = getattr(event, "claim_id", None) == before_ch.claim_id
            if live and not mine:  # nobody takes or drops a live claim of another handler
                assert after_ch.claim_id == before_ch.claim_id, where
        kinds = {type(a) for a in sends(step.actions)}
        if state.delivery is Delivery.REALTIME:
            assert SendPush not in kinds, where
        if state.delivery is Delivery.PUSH:
            assert SendRealtime not in kinds, where
        if state.delivery is Delivery.AUTO:
            assert len(kinds) <= 1, where  # in-app or push, never both at once
            if state.acked:
                assert SendPush not in kinds, where
        if state.acked:
            assert after.acked_at == state.acked_at, where
        if state.status is Status.ACKED:
            assert after.status is Status.ACKED, where


IDEMPOTENT = (Arrived, DeadlinePassed, RealtimeSent, PushSent, SendFailed)


@pytest.mark.parametrize("event", [e for e in all_events() if isinstance(e, IDEMPOTENT)], ids=repr)
def test_deciding_an_event_again_on_its_own_result_changes_nothing(event: Event) -> None:
    """What makes a re-read after a lost answer or a conflict safe: the same sends, nothing new written."""
    for state, now in REACHABLE:
        first = decide(state, event, now, RULES)
        again = decide(first.state, event, now, RULES)
        where = f"{event!r} on {state!r} at {now}"
        assert again.state == first.state, where
        if first.state.status not in (Status.EXPIRED,):
            assert effects(again.actions) == effects(first.actions), where


def test_a_decision_is_pure() -> None:
    for state, now in REACHABLE[:200]:
        for event in all_events():
            assert decide(state, event, now, RULES) == decide(state, event, now, RULES)


# The expected outcome of every (status, event) pair on the canonical ``auto`` record of each status. ------

SENT = ChannelState("c0", T0 - 5, T0 - 4)
HELD = ChannelState("c0", T0 - 5)  # claimed by another handler, still live
AUTO = DeliveryState(Delivery.AUTO)
CANONICAL: dict[Status, DeliveryState] = {
    Status.ACCEPTED: AUTO,
    Status.SENT_REALTIME: dataclasses.replace(AUTO, status=Status.SENT_REALTIME, realtime=SENT),
    Status.ACKED: dataclasses.replace(AUTO, status=Status.ACKED, realtime=SENT, acked_at=T0 - 3),
    Status.PUSHED: dataclasses.replace(AUTO, status=Status.PUSHED, push=SENT),
    Status.NO_DEVICES: dataclasses.replace(AUTO, status=Status.NO_DEVICES, push=SENT),
    Status.FAILED: dataclasses.replace(AUTO, status=Status.FAILED, push=HELD),
    Status.EXPIRED: dataclasses.replace(AUTO, status=Status.EXPIRED),
}
EVENTS: dict[str, Event] = {
    "arrived online": Arrived("c1", True),
    "arrived offline": Arrived("c1", False),
    "deadline": DeadlinePassed("c1"),
    "acked": Acked(),
    "realtime sent": RealtimeSent("c1"),
    "pushed": PushSent("c1", PushOutcome.PUSHED),
    "no devices": PushSent("c1", PushOutcome.NO_DEVICES),
    "realtime failed": SendFailed(Channel.REALTIME, "c1"),
    "push failed": SendFailed(Channel.PUSH, "c1"),
    "interrupted": SendInterrupted(Channel.PUSH, "c1"),
}
R, P, D, LOG = SendRealtime, SendPush, ScheduleDeadline, RecordOutcome
S = Status
EXPECTED: dict[tuple[Status, str], tuple[Status, list[type]]] = {
    (S.ACCEPTED, "arrived online"): (S.ACCEPTED, [R]),
    (S.ACCEPTED, "arrived offline"): (S.ACCEPTED, [P]),
    (S.ACCEPTED, "deadline"): (S.ACCEPTED, [P]),
    (S.ACCEPTED, "acked"): (S.ACKED, [LOG]),
    (S.ACCEPTED, "realtime sent"): (S.SENT_REALTIME, [LOG, D]),
    (S.ACCEPTED, "pushed"): (S.PUSHED, [LOG]),
    (S.ACCEPTED, "no devices"): (S.NO_DEVICES, [LOG]),
    (S.ACCEPTED, "realtime failed"): (S.ACCEPTED, [LOG, P]),
    (S.ACCEPTED, "push failed"): (S.FAILED, [LOG]),
    (S.ACCEPTED, "interrupted"): (S.ACCEPTED, [LOG]),
    (S.SENT_REALTIME, "arrived online"): (S.SENT_REALTIME, [D]),
    (S.SENT_REALTIME, "arrived offline"): (S.SENT_REALTIME, [D]),
    (S.SENT_REALTIME, "deadline"): (S.SENT_REALTIME, [P]),
    (S.SENT_REALTIME, "acked"): (S.ACKED, [LOG]),
    (S.SENT_REALTIME, "realtime sent"): (S.SENT_REALTIME, [LOG, D]),
    (S.SENT_REALTIME, "pushed"): (S.PUSHED, [LOG]),
    (S.SENT_REALTIME, "no devices"): (S.NO_DEVICES, [LOG]),
    (S.SENT_REALTIME, "realtime failed"): (S.SENT_REALTIME, [LOG]),
    (S.SENT_REALTIME, "push failed"): (S.FAILED, [LOG]),
    (S.SENT_REALTIME, "interrupted"): (S.SENT_REALTIME, [LOG]),
    (S.ACKED, "arrived online"): (S.ACKED, []),
    (S.ACKED, "arrived offline"): (S.ACKED, []),
    (S.ACKED, "deadline"): (S.ACKED, []),
    (S.ACKED, "acked"): (S.ACKED, []),
    (S.ACKED, "realtime sent"): (S.ACKED, [LOG]),
    (S.ACKED, "pushed"): (S.ACKED, [LOG]),
    (S.ACKED, "no devices"): (S.ACKED, [LOG]),
    (S.ACKED, "realtime failed"): (S.ACKED, [LOG]),
    (S.ACKED, "push failed"): (S.ACKED, [LOG]),
    (S.ACKED, "interrupted"): (S.ACKED, [LOG]),
    (S.PUSHED, "arrived online"): (S.PUSHED, []),
    (S.PUSHED, "arrived offline"): (S.PUSHED, []),
    (S.PUSHED, "deadline"): (S.PUSHED, []),
    (S.PUSHED, "acked"): (S.PUSHED, [LOG]),
    (S.PUSHED, "realtime sent"): (S.PUSHED, [LOG]),
    (S.PUSHED, "pushed"): (S.PUSHED, [LOG]),
    (S.PUSHED, "no devices"): (S.NO_DEVICES, [LOG]),
    (S.PUSHED, "realtime failed"): (S.PUSHED, [LOG]),
    (S.PUSHED, "push failed"): (S.PUSHED, [LOG]),
    (S.PUSHED, "interrupted"): (S.PUSHED, [LOG]),
    (S.NO_DEVICES, "arrived online"): (S.NO_DEVICES, []),
    (S.NO_DEVICES, "arrived offline"): (S.NO_DEVICES, []),
    (S.NO_DEVICES, "deadline"): (S.NO_DEVICES, []),
    (S.NO_DEVICES, "acked"): (S.NO_DEVICES, [LOG]),
    (S.NO_DEVICES, "realtime sent"): (S.NO_DEVICES, [LOG]),
    (S.NO_DEVICES, "pushed"): (S.PUSHED, [LOG]),
    (S.NO_DEVICES, "no devices"): (S.NO_DEVICES, [LOG]),
    (S.NO_DEVICES, "realtime failed"): (S.NO_DEVICES, [LOG]),
    (S.NO_DEVICES, "push failed"): (S.NO_DEVICES, [LOG]),
    (S.NO_DEVICES, "interrupted"): (S.NO_DEVICES, [LOG]),
    (S.FAILED, "arrived online"): (S.FAILED, []),
    (S.FAILED, "arrived offline"): (S.FAILED, []),
    (S.FAILED, "deadline"): (S.FAILED, []),
    (S.FAILED, "acked"): (S.FAILED, [LOG]),
    (S.FAILED, "realtime sent"): (S.FAILED, [LOG]),
    (S.FAILED, "pushed"): (S.PUSHED, [LOG]),
    (S.FAILED, "no devices"): (S.NO_DEVICES, [LOG]),
    (S.FAILED, "realtime failed"): (S.FAILED, [LOG]),
    (S.FAILED, "push failed"): (S.FAILED, [LOG]),
    (S.FAILED, "interrupted"): (S.FAILED, [LOG]),
    (S.EXPIRED, "arrived online"): (S.EXPIRED, []),
    (S.EXPIRED, "arrived offline"): (S.EXPIRED, []),
    (S.EXPIRED, "deadline"): (S.EXPIRED, []),
    (S.EXPIRED, "acked"): (S.EXPIRED, [LOG]),
    (S.EXPIRED, "realtime sent"): (S.EXPIRED, [LOG]),
    (S.EXPIRED, "pushed"): (S.PUSHED, [LOG]),
    (S.EXPIRED, "no devices"): (S.NO_DEVICES, [LOG]),
    (S.EXPIRED, "realtime failed"): (S.EXPIRED, [LOG]),
    (S.EXPIRED, "push failed"): (S.FAILED, [LOG]),
    (S.EXPIRED, "interrupted"): (S.EXPIRED, [LOG]),
}


def test_the_expected_table_names_every_pair() -> None:
    assert set(EXPECTED) == set(itertools.product(Status, EVENTS))


@pytest.mark.parametrize(("status", "event_name"), sorted(EXPECTED), ids=lambda v: str(v))
def test_each_pair_on_the_canonical_auto_record(status: Status, event_name: str) -> None:
    step = decide(CANONICAL[status], EVENTS[event_name], T0, RULES)
    expected_status, expected_actions = EXPECTED[(status, event_name)]
    assert (step.state.status, [type(a) for a in step.actions]) == (expected_status, expected_actions)


# Behaviour worth naming on its own. ----------------------------------------------------------------------


def first(mode: Delivery, event: Event, now: float = T0, expires: float | None = None) -> Transition:
    return decide(new_state(mode, expires), event, now, RULES)


def test_a_new_record_is_inserted_with_its_first_channels_claimed() -> None:
    assert first(Delivery.AUTO, Arrived("c1", True)).actions == (SendRealtime("c1"),)
    assert first(Delivery.AUTO, Arrived("c1", False)).actions == (SendPush("c1"),)
    assert first(Delivery.BOTH, Arrived("c1")).actions == (SendRealtime("c1"), SendPush("c1"))
    step = first(Delivery.PUSH, Arrived("c1"))
    assert step.state.push == ChannelState("c1", T0) and step.name == "claim"


def test_an_expired_notification_sends_nothing() -> None:
    step = first(Delivery.AUTO, Arrived("c1", True), now=T0, expires=T0 - 1)
    assert step.state.status is Status.EXPIRED
    assert step.actions == (RecordOutcome("none", "expired"),)


def test_a_busy_channel_is_rechecked_just_after_its_lease_and_at_most_after_recheck_seconds() -> None:
    held = dataclasses.replace(AUTO, push=ChannelState("c0", T0 - RULES.claim_lease_seconds + 2.5))
    assert decide(held, Arrived("c1", False), T0, RULES).actions == (Recheck(4, (Channel.PUSH,)),)
    fresh = dataclasses.replace(AUTO, push=ChannelState("c0", T0))
    assert decide(fresh, Arrived("c1", False), T0, RULES).actions == (Recheck(5, (Channel.PUSH,)),)
    # The deadline path looks again through the deadline queue.
    sent = CANONICAL[Status.SENT_REALTIME]
    busy = dataclasses.replace(sent, push=ChannelState("c0", T0))
    assert decide(busy, DeadlinePassed("c1"), T0, RULES).actions == (ScheduleDeadline(5),)


def test_zero_ack_timeout_trusts_presence() -> None:
    trusting = Rules(ack_timeout_seconds=0)
    step = decide(AUTO, RealtimeSent("c1"), T0, trusting)
    assert step.state.status is Status.SENT_REALTIME and effects(step.actions) == []


def test_a_permanent_in_app_failure_falls_back_to_push_only_in_auto() -> None:
    for mode, expected in ((Delivery.AUTO, [SendPush("c1")]), (Delivery.BOTH, []), (Delivery.REALTIME, [])):
        state = first(mode, Arrived("c1", True)).state
        step = decide(state, SendFailed(Channel.REALTIME, "c1"), T0, RULES)
        assert effects(step.actions) == expected, mode
    realtime = first(Delivery.REALTIME, Arrived("c1")).state
    assert decide(realtime, SendFailed(Channel.REALTIME, "c1"), T0, RULES).state.status is Status.FAILED


def test_an_interrupted_send_releases_only_its_own_unsent_claims() -> None:
    both = first(Delivery.BOTH, Arrived("c1")).state
    both = decide(both, RealtimeSent("c1"), T0, RULES).state
    step = decide(both, SendInterrupted(Channel.PUSH, "c1"), T0, RULES)
    assert step.state.realtime.sent and step.state.push == ChannelState()
    other = decide(both, SendInterrupted(Channel.PUSH, "c2"), T0, RULES)
    assert other.state == both


def test_a_deadline_only_concerns_auto() -> None:
    for mode in (Delivery.PUSH, Delivery.REALTIME, Delivery.BOTH):
        assert decide(new_state(mode, None), DeadlinePassed("c1"), T0, RULES).actions == ()


def test_done_statuses_are_the_auto_end_states() -> None:
    assert {Status.ACCEPTED, Status.SENT_REALTIME}.isdisjoint(DONE_STATUSES)
    assert set(Status) - DONE_STATUSES == {Status.ACCEPTED, Status.SENT_REALTIME}
