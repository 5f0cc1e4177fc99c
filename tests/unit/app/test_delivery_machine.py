"""The delivery state machine, exhaustively: every (status, event) pair has a row; an expected-outcome
table for every pair on the canonical ``auto`` states; and invariants over every pair of (reachable state,
event) in all four delivery modes, at two moments (claims live; claims expired and the retry horizon over)
with and without a TTL; and that the recovery pass never loops on a row."""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections import deque
from collections.abc import Iterator

import pytest

from notify.delivery_machine import (
    DONE_STATUSES,
    ENDED_STATUSES,
    EVENT_TYPES,
    SEND_ACTIONS,
    TRANSITIONS,
    Acked,
    Action,
    Archived,
    Arrived,
    Channel,
    ChannelState,
    DeadlinePassed,
    DeliveryState,
    Event,
    LoadUser,
    Poison,
    PushOutcome,
    PushSent,
    Read,
    RealtimeSent,
    Recheck,
    RecordOutcome,
    Recovered,
    RetractSent,
    Rules,
    ScheduleDeadline,
    ScheduleRetry,
    SendFailed,
    SendInterrupted,
    SendPush,
    SendRealtime,
    SendRetract,
    Status,
    Transition,
    UserView,
    decide,
    new_state,
    recovery_due,
    sent_ahead,
)
from notify.model import Delivery
from notify.preferences import Gate, GateKind
from shared.settings import DEFAULTS

RULES = Rules(ack_timeout_seconds=10, claim_lease_seconds=120, recheck_seconds=5, retry_horizon_seconds=60)
T0 = 1_000.0
LATER = T0 + RULES.claim_lease_seconds + 5  # every claim made at T0 has expired, and the retry horizon
CLAIMS = ("c1", "c2")
QUIET_END = T0 + 60.0
MUTED = Gate(GateKind.SUPPRESS, "preferences.types.chat.push")
QUIET = Gate(GateKind.DEFER, "preferences.quietHours", QUIET_END)
ONLINE, OFFLINE = UserView(online=True), UserView(online=False)
USERS = {
    "online": UserView(online=True),
    "offline": UserView(online=False),
    "offline, no devices": UserView(online=False, has_devices=False),
    "push muted": UserView(online=False, push=MUTED),
    "online, in-app muted": UserView(online=True, in_app=Gate(GateKind.SUPPRESS, "preferences.channels.in")),
    "quiet hours": UserView(online=False, push=QUIET),
}


def sends(actions: tuple[Action, ...]) -> list[Action]:
    return [a for a in actions if type(a) in SEND_ACTIONS]


def effects(actions: tuple[Action, ...]) -> list[Action]:
    """Every action except the outcome log line."""
    return [a for a in actions if not isinstance(a, RecordOutcome)]


def all_events() -> list[Event]:
    """Every kind of event of handler "c1"; of "c2" (another handler), those that claim or release."""
    events: list[Event] = []
    for claim in CLAIMS:
        if claim == "c2":
            events += [Arrived(claim, ONLINE), Arrived(claim, OFFLINE), DeadlinePassed(claim),
                       DeadlinePassed(claim, OFFLINE), Acked(claim),
                       SendInterrupted(Channel.PUSH, claim, "503"), Recovered(claim, OFFLINE)]
            continue
        events += [Arrived(claim, user) for user in USERS.values()]
        events += [DeadlinePassed(claim), *(DeadlinePassed(claim, user) for user in USERS.values())]
        events += [
            Acked(claim),
            Read(claim),
            Archived(claim),
            RealtimeSent(claim),
            PushSent(claim, PushOutcome.PUSHED, "nh-1"),
            PushSent(claim, PushOutcome.NO_DEVICES),
            RetractSent(claim),
            SendFailed(Channel.REALTIME, claim, USERS["offline"]),
            SendFailed(Channel.REALTIME, claim),
            Recovered(claim),
            Recovered(claim, ONLINE),
            Recovered(claim, OFFLINE),
            Recovered(claim, USERS["quiet hours"]),
        ]
        for channel in Channel:
            events += [SendFailed(channel, claim, error="refused"), SendInterrupted(channel, claim, "503")]
    return events


def _claim_of(event: Event) -> str | None:
    return getattr(event, "claim_id", None)


def user_of(event: Event) -> UserView | None:
    user: UserView | None = getattr(event, "user", None)
    return user


def _signature(state: DeliveryState, now: float) -> tuple[object, ...]:
    """What decisions can tell apart: times only as before/after the moments the tests decide at."""

    def channel(c: ChannelState) -> tuple[object, ...]:
        return (c.claim_id, c.claimed_at > T0, c.sent)

    marks = (state.acked_at > 0, state.read_at > 0, state.archived_at > 0)
    deferral = (state.deferred_until, state.deferred_by)
    retries = (state.retry_at > 0, state.failing_since > 0)  # counts, times and texts: the named tests
    return (state.delivery, state.status, state.expires_at, state.push_outcome, state.suppressed_rule, marks,
            deferral, retries, now, *(channel(state.channel(c)) for c in Channel))


def exploring_events() -> list[Event]:
    """The events the search follows: all of "c1", and "c2" claiming."""
    return [e for e in all_events() if _claim_of(e) == "c1" or isinstance(e, Arrived | DeadlinePassed)]


def reachable(depth: int = 3) -> Iterator[tuple[DeliveryState, float]]:
    """(state, moment) pairs reachable from a new record in up to ``depth`` events, time moving forward.

    One state per signature (what decisions can tell apart), so the search stays small and still reaches
    every status in every mode.
    """
    seen: set[tuple[object, ...]] = set()
    queue: deque[tuple[DeliveryState, float, int]] = deque()
    for mode, expiry in itertools.product(Delivery, (None, T0 + 60)):
        queue.append((new_state(mode, expiry), T0, 0))
        # A notification failing for the whole retry horizon already: its next failure poisons it.
        failing = dataclasses.replace(
            new_state(mode, expiry), status=Status.RETRYING, attempts=9, retry_at=T0, last_error="503",
            failing_since=T0 - RULES.retry_horizon_seconds,
        )
        queue.append((failing, T0, 0))
    events = exploring_events()
    while queue:
        state, now, steps = queue.popleft()
        signature = _signature(state, now)
        if signature in seen:
            continue
        seen.add(signature)
        yield state, now
        if steps == depth:
            continue
        for event, moment in itertools.product(events, (now, LATER)):
            if moment >= now:
                queue.append((decide(state, event, moment, RULES).state, moment, steps + 1))


REACHABLE = list(reachable(2))


def test_every_status_and_event_pair_has_a_row() -> None:
    missing = [(s, e.__name__) for s in Status for e in EVENT_TYPES if (s, e) not in TRANSITIONS]
    assert missing == []
    assert len(TRANSITIONS) == len(Status) * len(EVENT_TYPES)


def test_the_search_reaches_every_status_in_every_mode() -> None:
    # Events are fed in every mode, also those the notifier never produces there (a push result for a
    # realtime-only record): the invariants must hold whatever arrives.
    for mode in Delivery:
        found = {s.status for s, _ in REACHABLE if s.delivery is mode}
        assert found | {Status.DEFERRED} == set(Status), mode  # realtime-only may never defer a push
    assert len(REACHABLE) > 1500  # the invariants below are checked on a real variety of states


@pytest.mark.parametrize("event", all_events(), ids=repr)
def test_invariants_hold_for_every_reachable_state(event: Event) -> None:
    for state, now in REACHABLE:
        step = decide(state, event, now, RULES)
        where = f"{event!r} on {state!r} at {now}"
        assert step.name and step.reason, where
        after = step.state
        assert after.delivery == state.delivery and after.expires_at == state.expires_at, where
        for action in sends(step.actions):
            channel = SEND_ACTIONS[type(action)]
            # A send only ever happens under a claim the next state holds for the event's own handler (an
            # auto in-app send: recorded as sent by it, ahead of the send, see sent_ahead).
            assert after.may_send(channel, action.claim_id), where
            if not after.channel(channel).held_by(action.claim_id):  # recorded now, or read back (resume)
                assert sent_ahead(after, action.claim_id), where
                assert not state.realtime.sent or sent_ahead(state, action.claim_id), where
            assert action.claim_id == _claim_of(event), where
            if channel is not Channel.RETRACT:  # a retract is due whatever became of the record since
                assert after.status not in (Status.FAILED, Status.EXPIRED), where
        for channel in Channel:
            before_ch, after_ch = state.channel(channel), after.channel(channel)
            # Sent stays sent, with its first time; but for a failure reported by the handler that recorded
            # its in-app send ahead of making it.
            undone = isinstance(event, SendFailed | SendInterrupted) and event.channel is channel and (
                channel is Channel.REALTIME) and (
                sent_ahead(state, event.claim_id)
            )
            if before_ch.sent and not undone:
                assert after_ch.sent_at == before_ch.sent_at, where
            if undone and not state.seen and not any(isinstance(a, LoadUser) for a in step.actions):
                assert not after_ch.sent and after.status is not Status.SENT_REALTIME, where
            live = before_ch.lease_remaining(now, RULES.claim_lease_seconds) > 0
            if live and _claim_of(event) != before_ch.claim_id:  # nobody takes or drops another's live claim
                assert after_ch.claim_id == before_ch.claim_id, where
        kinds = {type(a) for a in sends(step.actions)}
        if SendRetract in kinds:  # never retract what was not pushed, or what the user has not seen
            assert after.pushed and after.seen, where
        if after.push.sent and not state.push.sent and not isinstance(event, PushSent):
            # Only a push send marks the push sent, except "no devices", decided without one.
            assert after.push_outcome is PushOutcome.NO_DEVICES and user_of(event) is not None, where
        if state.delivery is Delivery.REALTIME:
            assert SendPush not in kinds, where
        if state.delivery is Delivery.PUSH:
            assert SendRealtime not in kinds, where
        if state.delivery is Delivery.AUTO:
            assert len(kinds - {SendRetract}) <= 1, where  # in-app or push, never both at once
        user = user_of(event)
        claimed_push = SendPush in kinds and not state.push.held_by(_claim_of(event) or "")
        if claimed_push:  # a new push claim: allowed by the preferences, due, and unseen
            assert user is not None and user.push.kind is GateKind.ALLOW and user.has_devices, where
            assert not state.seen, where
        if SendRealtime in kinds and not state.may_send(Channel.REALTIME, _claim_of(event) or ""):
            assert isinstance(user, UserView) and user.in_app.kind is GateKind.ALLOW, where
        deferring = isinstance(user, UserView) and user.push.kind is GateKind.DEFER
        if deferring and after.status is Status.DEFERRED and user is not None:
            assert after.deferred_until == user.push.until, where
        for mark in ("acked_at", "read_at", "archived_at"):
            if getattr(state, mark):
                assert getattr(after, mark) == getattr(state, mark), where
        if state.status in (Status.ACKED, Status.READ) and after.status is not state.status:
            assert after.status in (Status.READ, Status.RETRACTED), where
        if any(isinstance(a, LoadUser) for a in step.actions):  # asked before anything is changed or sent
            assert after == state and user is None and not sends(step.actions), where
        for action in step.actions:
            if isinstance(action, ScheduleRetry):  # retries end with the horizon, and with the TTL
                assert isinstance(event, SendInterrupted) and event.channel is not Channel.RETRACT, where
                assert after.retry_at > now and after.retry_claim_id == event.claim_id, where
                assert after.retry_at <= after.failing_since + RULES.retry_horizon_seconds, where
                if after.expires_at is not None:
                    assert after.retry_at <= math.ceil(after.expires_at), where
                assert after.status not in ENDED_STATUSES, where
            if isinstance(action, Poison):  # only after the horizon, never once the TTL has run out
                assert now >= after.failing_since + RULES.retry_horizon_seconds, where
                assert after.expires_at is None or now <= after.expires_at, where
                assert after.reason == action.reason and action.reason and after.poisoned_at > 0, where
        # The row always says when the recovery pass should look at it.
        assert after.recover_at in (0.0, recovery_due(after, RULES)), where


def test_the_recovery_pass_never_loops_on_a_row() -> None:
    """Re-driving a row past its recovery moment leaves it done, or due again only later."""
    for state, now in REACHABLE:
        due = recovery_due(state, RULES)
        if due <= 0:
            continue
        at = max(now, due) + 1
        for user in (ONLINE, OFFLINE):
            step = decide(state, Recovered("c9", user), at, RULES)
            where = f"{user} on {state!r} at {at}"
            assert step.state.recover_at == 0.0 or step.state.recover_at > at, where
            if sends(step.actions):
                assert step.name == "recovered", where


def test_ended_rows_are_never_due_for_recovery() -> None:
    for state, _ in REACHABLE:
        if state.status in ENDED_STATUSES:
            assert recovery_due(state, RULES) == 0.0, state


IDEMPOTENT = (
    Arrived, DeadlinePassed, Acked, Read, Archived, RealtimeSent, PushSent, RetractSent, SendFailed,
    SendInterrupted, Recovered,
)


@pytest.mark.parametrize(
    "event", [e for e in all_events() if isinstance(e, IDEMPOTENT) and _claim_of(e) == "c1"], ids=repr
)
def test_deciding_an_event_again_on_its_own_result_changes_nothing(event: Event) -> None:
    """What makes a re-read after a lost answer or a conflict safe: the same effects, nothing new written."""
    for state, now in REACHABLE:
        first = decide(state, event, now, RULES)
        again = decide(first.state, event, now, RULES)
        where = f"{event!r} on {state!r} at {now}"
        assert again.state == first.state, where
        if first.state.status is not Status.EXPIRED:
            assert effects(again.actions) == effects(first.actions), where


def test_a_decision_is_pure() -> None:
    for state, now in REACHABLE[:200]:
        for event in all_events():
            assert decide(state, event, now, RULES) == decide(state, event, now, RULES)


# The expected outcome of every (status, event) pair on the canonical ``auto`` record of each status. ------

SENT = ChannelState("c0", T0 - 5, T0 - 4)
HELD = ChannelState("c0", T0 - 5)  # claimed by another handler, still live
AUTO = DeliveryState(Delivery.AUTO)
_PUSHED = dataclasses.replace(AUTO, status=Status.PUSHED, push=SENT, push_outcome=PushOutcome.PUSHED)
CANONICAL: dict[Status, DeliveryState] = {
    Status.ACCEPTED: AUTO,
    Status.SENT_REALTIME: dataclasses.replace(AUTO, status=Status.SENT_REALTIME, realtime=SENT),
    Status.DEFERRED: dataclasses.replace(
        AUTO, status=Status.DEFERRED, realtime=SENT, deferred_until=QUIET_END, deferred_by="c0"
    ),
    Status.ACKED: dataclasses.replace(AUTO, status=Status.ACKED, realtime=SENT, acked_at=T0 - 3),
    Status.READ: dataclasses.replace(AUTO, status=Status.READ, read_at=T0 - 3),
    Status.PUSHED: _PUSHED,
    Status.NO_DEVICES: dataclasses.replace(
        AUTO, status=Status.NO_DEVICES, push=SENT, push_outcome=PushOutcome.NO_DEVICES
    ),
    Status.SUPPRESSED: dataclasses.replace(AUTO, status=Status.SUPPRESSED, suppressed_rule=MUTED.rule),
    Status.RETRACTED: dataclasses.replace(_PUSHED, status=Status.RETRACTED, acked_at=T0 - 3, retract=SENT),
    Status.FAILED: dataclasses.replace(AUTO, status=Status.FAILED, push=HELD),
    Status.EXPIRED: dataclasses.replace(AUTO, status=Status.EXPIRED),
    Status.RETRYING: dataclasses.replace(  # the push failed transiently; its retry is due now
        AUTO, status=Status.RETRYING, retry_at=T0 - 1, attempts=1, failing_since=T0 - 11, last_error="503"
    ),
    Status.POISONED: dataclasses.replace(
        AUTO, status=Status.POISONED, attempts=9, failing_since=T0 - 4000, last_error="503",
        reason="gave up", poisoned_at=T0 - 5,
    ),
}
EVENTS: dict[str, Event] = {
    "arrived online": Arrived("c1", USERS["online"]),
    "arrived offline": Arrived("c1", USERS["offline"]),
    "arrived, no devices": Arrived("c1", USERS["offline, no devices"]),
    "arrived, push muted": Arrived("c1", USERS["push muted"]),
    "arrived, in-app muted": Arrived("c1", USERS["online, in-app muted"]),
    "arrived, quiet hours": Arrived("c1", USERS["quiet hours"]),
    "deadline": DeadlinePassed("c1"),
    "deadline, user loaded": DeadlinePassed("c1", USERS["offline"]),
    "deadline, push muted": DeadlinePassed("c1", USERS["push muted"]),
    "deadline, quiet hours": DeadlinePassed("c1", USERS["quiet hours"]),
    "acked": Acked("c1"),
    "read": Read("c1"),
    "archived": Archived("c1"),
    "realtime sent": RealtimeSent("c1"),
    "pushed": PushSent("c1", PushOutcome.PUSHED),
    "no devices": PushSent("c1", PushOutcome.NO_DEVICES),
    "retract sent": RetractSent("c1"),
    "realtime failed": SendFailed(Channel.REALTIME, "c1", USERS["offline"]),
    "push failed": SendFailed(Channel.PUSH, "c1"),
    "retract failed": SendFailed(Channel.RETRACT, "c1"),
    "push interrupted": SendInterrupted(Channel.PUSH, "c1"),
    "retract interrupted": SendInterrupted(Channel.RETRACT, "c1"),
    "recovered": Recovered("c1", USERS["offline"]),
    "recovered, user unknown": Recovered("c1"),
}
S = Status
R, P, X, D, C, U, Y, LOG = (
    SendRealtime, SendPush, SendRetract, ScheduleDeadline, Recheck, LoadUser, ScheduleRetry, RecordOutcome
)
EXPECTED: dict[tuple[Status, str], tuple[Status, list[type]]] = {
    # An auto in-app send is recorded with its claim, ahead of the send (sent_ahead): the ack that follows
    # it never meets the send's record on the ETag. Before: (S.ACCEPTED, [R]), and (S.RETRYING, [R]) below.
    (S.ACCEPTED, "arrived online"): (S.SENT_REALTIME, [R]),
    (S.ACCEPTED, "arrived offline"): (S.ACCEPTED, [P]),
    (S.ACCEPTED, "arrived, no devices"): (S.NO_DEVICES, [LOG]),
    (S.ACCEPTED, "arrived, push muted"): (S.SUPPRESSED, [LOG]),
    (S.ACCEPTED, "arrived, in-app muted"): (S.ACCEPTED, [P]),
    (S.ACCEPTED, "arrived, quiet hours"): (S.DEFERRED, [LOG, D]),
    (S.ACCEPTED, "deadline"): (S.ACCEPTED, [U]),
    (S.ACCEPTED, "deadline, user loaded"): (S.ACCEPTED, [P]),
    (S.ACCEPTED, "deadline, push muted"): (S.SUPPRESSED, [LOG]),
    (S.ACCEPTED, "deadline, quiet hours"): (S.DEFERRED, [LOG, D]),
    (S.ACCEPTED, "acked"): (S.ACKED, [LOG]),
    (S.ACCEPTED, "read"): (S.READ, [LOG]),
    (S.ACCEPTED, "archived"): (S.ACCEPTED, [LOG]),
    (S.ACCEPTED, "realtime sent"): (S.SENT_REALTIME, [LOG, D]),
    (S.ACCEPTED, "pushed"): (S.PUSHED, [LOG]),
    (S.ACCEPTED, "no devices"): (S.NO_DEVICES, [LOG]),
    (S.ACCEPTED, "retract sent"): (S.ACCEPTED, []),
    (S.ACCEPTED, "realtime failed"): (S.ACCEPTED, [LOG, P]),
    (S.ACCEPTED, "push failed"): (S.FAILED, [LOG]),
    (S.ACCEPTED, "retract failed"): (S.ACCEPTED, [LOG]),
    (S.ACCEPTED, "push interrupted"): (S.ACCEPTED, []),
    (S.ACCEPTED, "retract interrupted"): (S.ACCEPTED, [LOG, D]),
    (S.SENT_REALTIME, "arrived online"): (S.SENT_REALTIME, [D]),
    (S.SENT_REALTIME, "arrived offline"): (S.SENT_REALTIME, [D]),
    (S.SENT_REALTIME, "arrived, no devices"): (S.SENT_REALTIME, [D]),
    (S.SENT_REALTIME, "arrived, push muted"): (S.SENT_REALTIME, [D]),
    (S.SENT_REALTIME, "arrived, in-app muted"): (S.SENT_REALTIME, [D]),
    (S.SENT_REALTIME, "arrived, quiet hours"): (S.SENT_REALTIME, [D]),
    (S.SENT_REALTIME, "deadline"): (S.SENT_REALTIME, [U]),
    (S.SENT_REALTIME, "deadline, user loaded"): (S.SENT_REALTIME, [P]),
    (S.SENT_REALTIME, "deadline, push muted"): (S.SUPPRESSED, [LOG]),
    (S.SENT_REALTIME, "deadline, quiet hours"): (S.DEFERRED, [LOG, D]),
    (S.SENT_REALTIME, "acked"): (S.ACKED, [LOG]),
    (S.SENT_REALTIME, "read"): (S.READ, [LOG]),
    (S.SENT_REALTIME, "archived"): (S.SENT_REALTIME, [LOG]),
    (S.SENT_REALTIME, "realtime sent"): (S.SENT_REALTIME, [LOG, D]),
    (S.SENT_REALTIME, "pushed"): (S.PUSHED, [LOG]),
    (S.SENT_REALTIME, "no devices"): (S.NO_DEVICES, [LOG]),
    (S.SENT_REALTIME, "retract sent"): (S.SENT_REALTIME, []),
    (S.SENT_REALTIME, "realtime failed"): (S.SENT_REALTIME, [LOG]),
    (S.SENT_REALTIME, "push failed"): (S.FAILED, [LOG]),
    (S.SENT_REALTIME, "retract failed"): (S.SENT_REALTIME, [LOG]),
    (S.SENT_REALTIME, "push interrupted"): (S.SENT_REALTIME, []),
    (S.SENT_REALTIME, "retract interrupted"): (S.SENT_REALTIME, [LOG, D]),
    (S.DEFERRED, "arrived online"): (S.DEFERRED, []),
    (S.DEFERRED, "arrived offline"): (S.DEFERRED, []),
    (S.DEFERRED, "arrived, no devices"): (S.DEFERRED, []),
    (S.DEFERRED, "arrived, push muted"): (S.DEFERRED, []),
    (S.DEFERRED, "arrived, in-app muted"): (S.DEFERRED, []),
    (S.DEFERRED, "arrived, quiet hours"): (S.DEFERRED, []),
    (S.DEFERRED, "deadline"): (S.DEFERRED, [U]),
    (S.DEFERRED, "deadline, user loaded"): (S.DEFERRED, [P]),
    (S.DEFERRED, "deadline, push muted"): (S.SUPPRESSED, [LOG]),
    (S.DEFERRED, "deadline, quiet hours"): (S.DEFERRED, []),
    (S.DEFERRED, "acked"): (S.ACKED, [LOG]),
    (S.DEFERRED, "read"): (S.READ, [LOG]),
    (S.DEFERRED, "archived"): (S.DEFERRED, [LOG]),
    (S.DEFERRED, "realtime sent"): (S.DEFERRED, [LOG]),
    (S.DEFERRED, "pushed"): (S.PUSHED, [LOG]),
    (S.DEFERRED, "no devices"): (S.NO_DEVICES, [LOG]),
    (S.DEFERRED, "retract sent"): (S.DEFERRED, []),
    (S.DEFERRED, "realtime failed"): (S.DEFERRED, [LOG]),
    (S.DEFERRED, "push failed"): (S.FAILED, [LOG]),
    (S.DEFERRED, "retract failed"): (S.DEFERRED, [LOG]),
    (S.DEFERRED, "push interrupted"): (S.DEFERRED, []),
    (S.DEFERRED, "retract interrupted"): (S.DEFERRED, [LOG, D]),
    (S.ACKED, "arrived online"): (S.ACKED, []),
    (S.ACKED, "arrived offline"): (S.ACKED, []),
    (S.ACKED, "arrived, no devices"): (S.ACKED, []),
    (S.ACKED, "arrived, push muted"): (S.ACKED, []),
    (S.ACKED, "arrived, in-app muted"): (S.ACKED, []),
    (S.ACKED, "arrived, quiet hours"): (S.ACKED, []),
    (S.ACKED, "deadline"): (S.ACKED, []),
    (S.ACKED, "deadline, user loaded"): (S.ACKED, []),
    (S.ACKED, "deadline, push muted"): (S.ACKED, []),
    (S.ACKED, "deadline, quiet hours"): (S.ACKED, []),
    (S.ACKED, "acked"): (S.ACKED, []),
    (S.ACKED, "read"): (S.READ, [LOG]),
    (S.ACKED, "archived"): (S.ACKED, [LOG]),
    (S.ACKED, "realtime sent"): (S.ACKED, [LOG]),
    (S.ACKED, "pushed"): (S.ACKED, [LOG, X]),
    (S.ACKED, "no devices"): (S.ACKED, [LOG]),
    (S.ACKED, "retract sent"): (S.ACKED, []),
    (S.ACKED, "realtime failed"): (S.ACKED, [LOG]),
    (S.ACKED, "push failed"): (S.ACKED, [LOG]),
    (S.ACKED, "retract failed"): (S.ACKED, [LOG]),
    (S.ACKED, "push interrupted"): (S.ACKED, []),
    (S.ACKED, "retract interrupted"): (S.ACKED, [LOG, D]),
    (S.READ, "arrived online"): (S.READ, []),
    (S.READ, "arrived offline"): (S.READ, []),
    (S.READ, "arrived, no devices"): (S.READ, []),
    (S.READ, "arrived, push muted"): (S.READ, []),
    (S.READ, "arrived, in-app muted"): (S.READ, []),
    (S.READ, "arrived, quiet hours"): (S.READ, []),
    (S.READ, "deadline"): (S.READ, []),
    (S.READ, "deadline, user loaded"): (S.READ, []),
    (S.READ, "deadline, push muted"): (S.READ, []),
    (S.READ, "deadline, quiet hours"): (S.READ, []),
    (S.READ, "acked"): (S.READ, [LOG]),
    (S.READ, "read"): (S.READ, []),
    (S.READ, "archived"): (S.READ, [LOG]),
    (S.READ, "realtime sent"): (S.READ, [LOG]),
    (S.READ, "pushed"): (S.READ, [LOG, X]),
    (S.READ, "no devices"): (S.READ, [LOG]),
    (S.READ, "retract sent"): (S.READ, []),
    (S.READ, "realtime failed"): (S.READ, [LOG]),
    (S.READ, "push failed"): (S.READ, [LOG]),
    (S.READ, "retract failed"): (S.READ, [LOG]),
    (S.READ, "push interrupted"): (S.READ, []),
    (S.READ, "retract interrupted"): (S.READ, [LOG, D]),
    (S.PUSHED, "arrived online"): (S.PUSHED, []),
    (S.PUSHED, "arrived offline"): (S.PUSHED, []),
    (S.PUSHED, "arrived, no devices"): (S.PUSHED, []),
    (S.PUSHED, "arrived, push muted"): (S.PUSHED, []),
    (S.PUSHED, "arrived, in-app muted"): (S.PUSHED, []),
    (S.PUSHED, "arrived, quiet hours"): (S.PUSHED, []),
    (S.PUSHED, "deadline"): (S.PUSHED, []),
    (S.PUSHED, "deadline, user loaded"): (S.PUSHED, []),
    (S.PUSHED, "deadline, push muted"): (S.PUSHED, []),
    (S.PUSHED, "deadline, quiet hours"): (S.PUSHED, []),
    (S.PUSHED, "acked"): (S.PUSHED, [LOG, X]),
    (S.PUSHED, "read"): (S.READ, [LOG, X]),
    (S.PUSHED, "archived"): (S.PUSHED, [LOG, X]),
    (S.PUSHED, "realtime sent"): (S.PUSHED, [LOG]),
    (S.PUSHED, "pushed"): (S.PUSHED, [LOG]),
    (S.PUSHED, "no devices"): (S.PUSHED, [LOG]),
    (S.PUSHED, "retract sent"): (S.RETRACTED, [LOG]),
    (S.PUSHED, "realtime failed"): (S.PUSHED, [LOG]),
    (S.PUSHED, "push failed"): (S.PUSHED, [LOG]),
    (S.PUSHED, "retract failed"): (S.PUSHED, [LOG]),
    (S.PUSHED, "push interrupted"): (S.PUSHED, []),
    (S.PUSHED, "retract interrupted"): (S.PUSHED, [LOG, D]),
    (S.NO_DEVICES, "arrived online"): (S.NO_DEVICES, []),
    (S.NO_DEVICES, "arrived offline"): (S.NO_DEVICES, []),
    (S.NO_DEVICES, "arrived, no devices"): (S.NO_DEVICES, []),
    (S.NO_DEVICES, "arrived, push muted"): (S.NO_DEVICES, []),
    (S.NO_DEVICES, "arrived, in-app muted"): (S.NO_DEVICES, []),
    (S.NO_DEVICES, "arrived, quiet hours"): (S.NO_DEVICES, []),
    (S.NO_DEVICES, "deadline"): (S.NO_DEVICES, []),
    (S.NO_DEVICES, "deadline, user loaded"): (S.NO_DEVICES, []),
    (S.NO_DEVICES, "deadline, push muted"): (S.NO_DEVICES, []),
    (S.NO_DEVICES, "deadline, quiet hours"): (S.NO_DEVICES, []),
    (S.NO_DEVICES, "acked"): (S.NO_DEVICES, [LOG]),
    (S.NO_DEVICES, "read"): (S.READ, [LOG]),
    (S.NO_DEVICES, "archived"): (S.NO_DEVICES, [LOG]),
    (S.NO_DEVICES, "realtime sent"): (S.NO_DEVICES, [LOG]),
    (S.NO_DEVICES, "pushed"): (S.NO_DEVICES, [LOG]),
    (S.NO_DEVICES, "no devices"): (S.NO_DEVICES, [LOG]),
    (S.NO_DEVICES, "retract sent"): (S.NO_DEVICES, []),
    (S.NO_DEVICES, "realtime failed"): (S.NO_DEVICES, [LOG]),
    (S.NO_DEVICES, "push failed"): (S.NO_DEVICES, [LOG]),
    (S.NO_DEVICES, "retract failed"): (S.NO_DEVICES, [LOG]),
    (S.NO_DEVICES, "push interrupted"): (S.NO_DEVICES, []),
    (S.NO_DEVICES, "retract interrupted"): (S.NO_DEVICES, [LOG, D]),
    (S.SUPPRESSED, "arrived online"): (S.SUPPRESSED, []),
    (S.SUPPRESSED, "arrived offline"): (S.SUPPRESSED, []),
    (S.SUPPRESSED, "arrived, no devices"): (S.SUPPRESSED, []),
    (S.SUPPRESSED, "arrived, push muted"): (S.SUPPRESSED, []),
    (S.SUPPRESSED, "arrived, in-app muted"): (S.SUPPRESSED, []),
    (S.SUPPRESSED, "arrived, quiet hours"): (S.SUPPRESSED, []),
    (S.SUPPRESSED, "deadline"): (S.SUPPRESSED, []),
    (S.SUPPRESSED, "deadline, user loaded"): (S.SUPPRESSED, []),
    (S.SUPPRESSED, "deadline, push muted"): (S.SUPPRESSED, []),
    (S.SUPPRESSED, "deadline, quiet hours"): (S.SUPPRESSED, []),
    (S.SUPPRESSED, "acked"): (S.ACKED, [LOG]),
    (S.SUPPRESSED, "read"): (S.READ, [LOG]),
    (S.SUPPRESSED, "archived"): (S.SUPPRESSED, [LOG]),
    (S.SUPPRESSED, "realtime sent"): (S.SUPPRESSED, [LOG]),
    (S.SUPPRESSED, "pushed"): (S.PUSHED, [LOG]),
    (S.SUPPRESSED, "no devices"): (S.NO_DEVICES, [LOG]),
    (S.SUPPRESSED, "retract sent"): (S.SUPPRESSED, []),
    (S.SUPPRESSED, "realtime failed"): (S.SUPPRESSED, [LOG]),
    (S.SUPPRESSED, "push failed"): (S.FAILED, [LOG]),
    (S.SUPPRESSED, "retract failed"): (S.SUPPRESSED, [LOG]),
    (S.SUPPRESSED, "push interrupted"): (S.SUPPRESSED, []),
    (S.SUPPRESSED, "retract interrupted"): (S.SUPPRESSED, [LOG, D]),
    (S.RETRACTED, "arrived online"): (S.RETRACTED, []),
    (S.RETRACTED, "arrived offline"): (S.RETRACTED, []),
    (S.RETRACTED, "arrived, no devices"): (S.RETRACTED, []),
    (S.RETRACTED, "arrived, push muted"): (S.RETRACTED, []),
    (S.RETRACTED, "arrived, in-app muted"): (S.RETRACTED, []),
    (S.RETRACTED, "arrived, quiet hours"): (S.RETRACTED, []),
    (S.RETRACTED, "deadline"): (S.RETRACTED, []),
    (S.RETRACTED, "deadline, user loaded"): (S.RETRACTED, []),
    (S.RETRACTED, "deadline, push muted"): (S.RETRACTED, []),
    (S.RETRACTED, "deadline, quiet hours"): (S.RETRACTED, []),
    (S.RETRACTED, "acked"): (S.RETRACTED, []),
    (S.RETRACTED, "read"): (S.RETRACTED, [LOG]),
    (S.RETRACTED, "archived"): (S.RETRACTED, [LOG]),
    (S.RETRACTED, "realtime sent"): (S.RETRACTED, [LOG]),
    (S.RETRACTED, "pushed"): (S.RETRACTED, [LOG]),
    (S.RETRACTED, "no devices"): (S.RETRACTED, [LOG]),
    (S.RETRACTED, "retract sent"): (S.RETRACTED, [LOG]),
    (S.RETRACTED, "realtime failed"): (S.RETRACTED, [LOG]),
    (S.RETRACTED, "push failed"): (S.RETRACTED, [LOG]),
    (S.RETRACTED, "retract failed"): (S.RETRACTED, [LOG]),
    (S.RETRACTED, "push interrupted"): (S.RETRACTED, []),
    (S.RETRACTED, "retract interrupted"): (S.RETRACTED, [LOG, D]),
    (S.FAILED, "arrived online"): (S.FAILED, []),
    (S.FAILED, "arrived offline"): (S.FAILED, []),
    (S.FAILED, "arrived, no devices"): (S.FAILED, []),
    (S.FAILED, "arrived, push muted"): (S.FAILED, []),
    (S.FAILED, "arrived, in-app muted"): (S.FAILED, []),
    (S.FAILED, "arrived, quiet hours"): (S.FAILED, []),
    (S.FAILED, "deadline"): (S.FAILED, []),
    (S.FAILED, "deadline, user loaded"): (S.FAILED, []),
    (S.FAILED, "deadline, push muted"): (S.FAILED, []),
    (S.FAILED, "deadline, quiet hours"): (S.FAILED, []),
    (S.FAILED, "acked"): (S.FAILED, [LOG]),
    (S.FAILED, "read"): (S.FAILED, [LOG]),
    (S.FAILED, "archived"): (S.FAILED, [LOG]),
    (S.FAILED, "realtime sent"): (S.FAILED, [LOG]),
    (S.FAILED, "pushed"): (S.PUSHED, [LOG]),
    (S.FAILED, "no devices"): (S.NO_DEVICES, [LOG]),
    (S.FAILED, "retract sent"): (S.FAILED, []),
    (S.FAILED, "realtime failed"): (S.FAILED, [LOG]),
    (S.FAILED, "push failed"): (S.FAILED, [LOG]),
    (S.FAILED, "retract failed"): (S.FAILED, [LOG]),
    (S.FAILED, "push interrupted"): (S.FAILED, []),
    (S.FAILED, "retract interrupted"): (S.FAILED, [LOG, D]),
    (S.EXPIRED, "arrived online"): (S.EXPIRED, []),
    (S.EXPIRED, "arrived offline"): (S.EXPIRED, []),
    (S.EXPIRED, "arrived, no devices"): (S.EXPIRED, []),
    (S.EXPIRED, "arrived, push muted"): (S.EXPIRED, []),
    (S.EXPIRED, "arrived, in-app muted"): (S.EXPIRED, []),
    (S.EXPIRED, "arrived, quiet hours"): (S.EXPIRED, []),
    (S.EXPIRED, "deadline"): (S.EXPIRED, []),
    (S.EXPIRED, "deadline, user loaded"): (S.EXPIRED, []),
    (S.EXPIRED, "deadline, push muted"): (S.EXPIRED, []),
    (S.EXPIRED, "deadline, quiet hours"): (S.EXPIRED, []),
    (S.EXPIRED, "acked"): (S.EXPIRED, [LOG]),
    (S.EXPIRED, "read"): (S.EXPIRED, [LOG]),
    (S.EXPIRED, "archived"): (S.EXPIRED, [LOG]),
    (S.EXPIRED, "realtime sent"): (S.EXPIRED, [LOG]),
    (S.EXPIRED, "pushed"): (S.PUSHED, [LOG]),
    (S.EXPIRED, "no devices"): (S.NO_DEVICES, [LOG]),
    (S.EXPIRED, "retract sent"): (S.EXPIRED, []),
    (S.EXPIRED, "realtime failed"): (S.EXPIRED, [LOG]),
    (S.EXPIRED, "push failed"): (S.FAILED, [LOG]),
    (S.EXPIRED, "retract failed"): (S.EXPIRED, [LOG]),
    (S.EXPIRED, "push interrupted"): (S.EXPIRED, []),
    (S.EXPIRED, "retract interrupted"): (S.EXPIRED, [LOG, D]),
    (S.ACCEPTED, "recovered"): (S.ACCEPTED, [P]),
    (S.ACCEPTED, "recovered, user unknown"): (S.ACCEPTED, [U]),
    (S.SENT_REALTIME, "recovered"): (S.SENT_REALTIME, []),
    (S.SENT_REALTIME, "recovered, user unknown"): (S.SENT_REALTIME, [U]),
    (S.DEFERRED, "recovered"): (S.DEFERRED, [P]),  # the quiet hours are over for this user
    (S.DEFERRED, "recovered, user unknown"): (S.DEFERRED, [U]),
    (S.ACKED, "recovered"): (S.ACKED, []),
    (S.ACKED, "recovered, user unknown"): (S.ACKED, [U]),
    (S.READ, "recovered"): (S.READ, []),
    (S.READ, "recovered, user unknown"): (S.READ, [U]),
    (S.PUSHED, "recovered"): (S.PUSHED, []),
    (S.PUSHED, "recovered, user unknown"): (S.PUSHED, [U]),
    (S.NO_DEVICES, "recovered"): (S.NO_DEVICES, []),
    (S.NO_DEVICES, "recovered, user unknown"): (S.NO_DEVICES, [U]),
    (S.SUPPRESSED, "recovered"): (S.SUPPRESSED, []),
    (S.SUPPRESSED, "recovered, user unknown"): (S.SUPPRESSED, [U]),
    (S.RETRACTED, "recovered"): (S.RETRACTED, []),
    (S.RETRACTED, "recovered, user unknown"): (S.RETRACTED, [U]),
    (S.FAILED, "recovered"): (S.FAILED, []),
    (S.FAILED, "recovered, user unknown"): (S.FAILED, []),
    (S.EXPIRED, "recovered"): (S.EXPIRED, []),
    (S.EXPIRED, "recovered, user unknown"): (S.EXPIRED, []),
    (S.RETRYING, "arrived online"): (S.SENT_REALTIME, [R]),
    (S.RETRYING, "arrived offline"): (S.RETRYING, [P]),
    (S.RETRYING, "arrived, no devices"): (S.NO_DEVICES, [LOG]),
    (S.RETRYING, "arrived, push muted"): (S.SUPPRESSED, [LOG]),
    (S.RETRYING, "arrived, in-app muted"): (S.RETRYING, [P]),
    (S.RETRYING, "arrived, quiet hours"): (S.DEFERRED, [LOG, D]),
    (S.RETRYING, "deadline"): (S.RETRYING, [U]),
    (S.RETRYING, "deadline, user loaded"): (S.RETRYING, [P]),
    (S.RETRYING, "deadline, push muted"): (S.SUPPRESSED, [LOG]),
    (S.RETRYING, "deadline, quiet hours"): (S.DEFERRED, [LOG, D]),
    (S.RETRYING, "acked"): (S.ACKED, [LOG]),
    (S.RETRYING, "read"): (S.READ, [LOG]),
    (S.RETRYING, "archived"): (S.RETRYING, [LOG]),
    (S.RETRYING, "realtime sent"): (S.SENT_REALTIME, [LOG, D]),
    (S.RETRYING, "pushed"): (S.PUSHED, [LOG]),
    (S.RETRYING, "no devices"): (S.NO_DEVICES, [LOG]),
    (S.RETRYING, "retract sent"): (S.RETRYING, []),
    (S.RETRYING, "realtime failed"): (S.RETRYING, [LOG, P]),
    (S.RETRYING, "push failed"): (S.FAILED, [LOG]),
    (S.RETRYING, "retract failed"): (S.RETRYING, [LOG]),
    (S.RETRYING, "push interrupted"): (S.RETRYING, []),
    (S.RETRYING, "retract interrupted"): (S.RETRYING, [LOG, D]),
    (S.RETRYING, "recovered"): (S.RETRYING, [P]),
    (S.RETRYING, "recovered, user unknown"): (S.RETRYING, [U]),
    (S.POISONED, "arrived online"): (S.SENT_REALTIME, [R]),  # a replay tries once more
    (S.POISONED, "arrived offline"): (S.RETRYING, [P]),
    (S.POISONED, "arrived, no devices"): (S.NO_DEVICES, [LOG]),
    (S.POISONED, "arrived, push muted"): (S.SUPPRESSED, [LOG]),
    (S.POISONED, "arrived, in-app muted"): (S.RETRYING, [P]),
    (S.POISONED, "arrived, quiet hours"): (S.DEFERRED, [LOG, D]),
    (S.POISONED, "deadline"): (S.POISONED, []),
    (S.POISONED, "deadline, user loaded"): (S.POISONED, []),
    (S.POISONED, "deadline, push muted"): (S.POISONED, []),
    (S.POISONED, "deadline, quiet hours"): (S.POISONED, []),
    (S.POISONED, "acked"): (S.ACKED, [LOG]),
    (S.POISONED, "read"): (S.READ, [LOG]),
    (S.POISONED, "archived"): (S.POISONED, [LOG]),
    (S.POISONED, "realtime sent"): (S.POISONED, [LOG]),
    (S.POISONED, "pushed"): (S.PUSHED, [LOG]),
    (S.POISONED, "no devices"): (S.NO_DEVICES, [LOG]),
    (S.POISONED, "retract sent"): (S.POISONED, []),
    (S.POISONED, "realtime failed"): (S.POISONED, [LOG]),
    (S.POISONED, "push failed"): (S.FAILED, [LOG]),
    (S.POISONED, "retract failed"): (S.POISONED, [LOG]),
    (S.POISONED, "push interrupted"): (S.POISONED, []),
    (S.POISONED, "retract interrupted"): (S.POISONED, [LOG, D]),
    (S.POISONED, "recovered"): (S.POISONED, []),  # waits for an operator's replay
    (S.POISONED, "recovered, user unknown"): (S.POISONED, []),
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


def run(state: DeliveryState, *events: Event, now: float = T0) -> Transition:
    """Decide the events one after the other; the last transition, on the state they led to."""
    step = Transition("start", "", state)
    for event in events:
        step = decide(step.state, event, now, RULES)
    return step


def test_a_new_record_is_inserted_with_its_first_channels_claimed() -> None:
    assert first(Delivery.AUTO, Arrived("c1", ONLINE)).actions == (SendRealtime("c1"),)
    assert first(Delivery.AUTO, Arrived("c1", OFFLINE)).actions == (SendPush("c1"),)
    assert first(Delivery.BOTH, Arrived("c1", OFFLINE)).actions == (SendRealtime("c1"), SendPush("c1"))
    step = first(Delivery.PUSH, Arrived("c1", OFFLINE))
    assert step.state.push == ChannelState("c1", T0) and step.name == "claim"


def test_no_devices_is_decided_without_a_send() -> None:
    step = first(Delivery.AUTO, Arrived("c1", USERS["offline, no devices"]))
    assert step.state.status is Status.NO_DEVICES and step.state.push.sent
    assert step.actions == (RecordOutcome("push", "no_devices"),)


def test_an_expired_notification_sends_nothing() -> None:
    step = first(Delivery.AUTO, Arrived("c1", ONLINE), now=T0, expires=T0 - 1)
    assert step.state.status is Status.EXPIRED
    assert step.actions == (RecordOutcome("none", "expired"),)


def test_a_busy_channel_is_rechecked_just_after_its_lease_and_at_most_after_recheck_seconds() -> None:
    held = dataclasses.replace(AUTO, push=ChannelState("c0", T0 - RULES.claim_lease_seconds + 2.5))
    assert decide(held, Arrived("c1", OFFLINE), T0, RULES).actions == (Recheck(4, (Channel.PUSH,)),)
    fresh = dataclasses.replace(AUTO, push=ChannelState("c0", T0))
    assert decide(fresh, Arrived("c1", OFFLINE), T0, RULES).actions == (Recheck(5, (Channel.PUSH,)),)
    # The deadline path looks again through the deadline queue.
    busy = dataclasses.replace(CANONICAL[Status.SENT_REALTIME], push=ChannelState("c0", T0))
    assert decide(busy, DeadlinePassed("c1"), T0, RULES).actions == (ScheduleDeadline(5),)


def test_zero_ack_timeout_trusts_presence() -> None:
    trusting = Rules(ack_timeout_seconds=0)
    step = decide(AUTO, RealtimeSent("c1"), T0, trusting)
    assert step.state.status is Status.SENT_REALTIME and effects(step.actions) == []


def test_a_permanent_in_app_failure_falls_back_to_push_only_in_auto() -> None:
    for mode, expected in ((Delivery.AUTO, [SendPush("c1")]), (Delivery.BOTH, []), (Delivery.REALTIME, [])):
        state = first(mode, Arrived("c1", ONLINE)).state
        step = decide(state, SendFailed(Channel.REALTIME, "c1", OFFLINE), T0, RULES)
        assert effects(step.actions) == expected, mode
    realtime = first(Delivery.REALTIME, Arrived("c1", ONLINE)).state
    assert decide(realtime, SendFailed(Channel.REALTIME, "c1"), T0, RULES).state.status is Status.FAILED
    # Without the user at hand, the fallback asks for it.
    auto = first(Delivery.AUTO, Arrived("c1", ONLINE)).state
    assert LoadUser() in decide(auto, SendFailed(Channel.REALTIME, "c1"), T0, RULES).actions


def test_an_interrupted_send_releases_only_its_own_unsent_claims_and_is_re_scheduled() -> None:
    both = run(first(Delivery.BOTH, Arrived("c1", OFFLINE)).state, RealtimeSent("c1")).state
    step = decide(both, SendInterrupted(Channel.PUSH, "c1"), T0, RULES)
    assert step.state.realtime.sent and step.state.push == ChannelState()
    assert any(isinstance(a, ScheduleRetry) for a in step.actions)
    other = decide(both, SendInterrupted(Channel.PUSH, "c2"), T0, RULES)
    assert other.state == both


def test_a_deadline_concerns_auto_and_deferred_pushes_only() -> None:
    for mode in (Delivery.PUSH, Delivery.REALTIME, Delivery.BOTH):
        assert decide(new_state(mode, None), DeadlinePassed("c1"), T0, RULES).actions == ()
    deferred = first(Delivery.PUSH, Arrived("c1", USERS["quiet hours"])).state
    assert decide(deferred, DeadlinePassed("c2"), QUIET_END + 1, RULES).actions == (LoadUser(),)
    after = decide(deferred, DeadlinePassed("c2", OFFLINE), QUIET_END + 1, RULES)
    assert after.actions == (SendPush("c2"),)


def test_a_muted_push_is_suppressed_with_its_rule_and_in_app_still_goes() -> None:
    muted_online = UserView(online=True, push=MUTED)
    step = run(new_state(Delivery.AUTO, None), Arrived("c1", muted_online), RealtimeSent("c1"))
    assert step.state.status is Status.SENT_REALTIME
    late = decide(step.state, DeadlinePassed("c2", muted_online), T0 + 20, RULES)
    assert late.state.status is Status.SUPPRESSED and late.state.suppressed_rule == MUTED.rule
    assert late.actions == (RecordOutcome("push", "suppressed", detail=MUTED.rule),)
    offline = first(Delivery.AUTO, Arrived("c1", USERS["push muted"]))
    assert offline.state.status is Status.SUPPRESSED and sends(offline.actions) == []


def test_a_muted_in_app_channel_goes_straight_to_push() -> None:
    step = first(Delivery.AUTO, Arrived("c1", USERS["online, in-app muted"]))
    assert step.actions == (SendPush("c1"),) and step.state.suppressed_rule == "preferences.channels.in"


def test_quiet_hours_defer_the_push_to_the_end_with_one_delayed_deadline() -> None:
    step = first(Delivery.PUSH, Arrived("c1", USERS["quiet hours"]))
    assert step.state.status is Status.DEFERRED and step.state.deferred_until == QUIET_END
    assert step.actions == (
        RecordOutcome("push", "deferred", detail="1970-01-01T00:17:40Z"),
        ScheduleDeadline(int(QUIET_END - T0) + 1),
    )
    # A stray deadline before the end does not start a second chain; the deferral's own wake-up does.
    assert decide(step.state, DeadlinePassed("c2", USERS["quiet hours"]), T0 + 10, RULES).actions == ()
    early = decide(step.state, DeadlinePassed("c3", USERS["quiet hours"]), QUIET_END - 1, RULES)
    assert effects(early.actions) == [ScheduleDeadline(2)]


def test_seen_before_the_deferred_push_is_due_means_no_push() -> None:
    deferred = first(Delivery.PUSH, Arrived("c1", USERS["quiet hours"])).state
    read = decide(deferred, Read("c2"), T0 + 5, RULES).state
    assert read.status is Status.READ
    assert decide(read, DeadlinePassed("c3", OFFLINE), QUIET_END + 1, RULES).actions == ()


def test_a_pushed_notification_seen_later_is_retracted_once() -> None:
    pushed = run(first(Delivery.AUTO, Arrived("c1", OFFLINE)).state, PushSent("c1", PushOutcome.PUSHED)).state
    for seen in (Acked("c2"), Read("c2"), Archived("c2")):
        step = decide(pushed, seen, T0, RULES)
        assert effects(step.actions) == [SendRetract("c2")], seen
        done = decide(step.state, RetractSent("c2"), T0, RULES)
        assert done.state.status is Status.RETRACTED and done.state.retract.sent
        assert effects(decide(done.state, Read("c3"), T0, RULES).actions) == []


def test_nothing_is_retracted_that_was_not_pushed() -> None:
    in_app = run(first(Delivery.AUTO, Arrived("c1", ONLINE)).state, RealtimeSent("c1")).state
    no_devices = first(Delivery.AUTO, Arrived("c1", USERS["offline, no devices"])).state
    for state in (in_app, no_devices):
        for seen in (Acked("c2"), Read("c2"), Archived("c2")):
            assert sends(decide(state, seen, T0, RULES).actions) == [], (state, seen)


def test_a_push_that_lands_after_the_ack_is_retracted_at_once() -> None:
    claimed = first(Delivery.AUTO, Arrived("c1", OFFLINE)).state
    acked = decide(claimed, Acked("c2"), T0, RULES).state
    step = decide(acked, PushSent("c1", PushOutcome.PUSHED), T0, RULES)
    assert effects(step.actions) == [SendRetract("c1")]


def test_a_retract_interrupted_is_tried_again_by_a_deadline() -> None:
    pushed = run(first(Delivery.AUTO, Arrived("c1", OFFLINE)).state, PushSent("c1", PushOutcome.PUSHED)).state
    claiming = decide(pushed, Acked("c2"), T0, RULES).state
    step = decide(claiming, SendInterrupted(Channel.RETRACT, "c2"), T0, RULES)
    assert effects(step.actions) == [ScheduleDeadline(RULES.retract_retry_seconds)]
    assert effects(decide(step.state, DeadlinePassed("c3"), T0 + 30, RULES).actions) == [SendRetract("c3")]


def test_done_statuses_are_the_auto_end_states() -> None:
    assert set(Status) - DONE_STATUSES == {
        Status.ACCEPTED, Status.SENT_REALTIME, Status.DEFERRED, Status.RETRYING
    }
# Re-scheduled retries, the poison queue and the recovery pass. --------------------------------------------

RETRY = Rules(
    ack_timeout_seconds=10, claim_lease_seconds=60, retry_delay_seconds=10, retry_max_delay_seconds=300,
    retry_horizon_seconds=3600,
)


def interrupted_push(state: DeliveryState, now: float, claim: str = "c1", **extra: object) -> Transition:
    claimed = decide(state, Arrived(claim, OFFLINE), now, RETRY)
    assert claimed.actions == (SendPush(claim),)
    return decide(claimed.state, SendInterrupted(Channel.PUSH, claim, "nh answered 503", **extra), now, RETRY)


def test_a_transient_failure_schedules_a_retry_with_the_error_on_the_record() -> None:
    step = interrupted_push(AUTO, T0)
    [log, retry] = step.actions
    assert isinstance(log, RecordOutcome) and log.outcome == "retry"
    assert isinstance(retry, ScheduleRetry) and 7 <= retry.delay_seconds <= 10
    after = step.state
    assert after.status is Status.RETRYING and after.push == ChannelState()  # the claim is given back
    assert (after.retry_at, after.attempts, after.failing_since) == (T0 + retry.delay_seconds, 1, T0)
    assert after.last_error == "nh answered 503"
    assert after.recover_at == after.retry_at + RETRY.claim_lease_seconds  # if the retry message is lost


def test_retry_delays_grow_up_to_the_maximum_and_honour_retry_after() -> None:
    state, now, delays = AUTO, T0, []
    for attempt in range(8):
        step = interrupted_push(state, now, claim=f"c{attempt}")
        [retry] = [a for a in step.actions if isinstance(a, ScheduleRetry)]
        delays.append(retry.delay_seconds)
        state, now = step.state, step.state.retry_at
    assert delays == sorted(delays[:5]) + delays[5:] and delays[0] <= 10 < delays[2]
    assert all(d <= RETRY.retry_max_delay_seconds for d in delays) and delays[-1] > 200
    honoured = interrupted_push(AUTO, T0, retry_after=120.0)
    assert ScheduleRetry(120) in honoured.actions


def test_after_the_horizon_the_next_failure_poisons_with_the_reason() -> None:
    state = dataclasses.replace(
        CANONICAL[Status.RETRYING], failing_since=T0 - RETRY.retry_horizon_seconds, attempts=12
    )
    step = interrupted_push(state, T0)
    assert step.state.status is Status.POISONED and step.state.recover_at == 0.0
    [_, poison] = step.actions
    assert isinstance(poison, Poison) and poison.reason == step.state.reason
    assert "13 attempts" in poison.reason and "nh answered 503" in poison.reason
    # The last retry before the horizon is scheduled at the horizon, not after it.
    late = dataclasses.replace(state, failing_since=T0 - RETRY.retry_horizon_seconds + 3)
    assert ScheduleRetry(3) in interrupted_push(late, T0).actions


def test_the_ttl_wins_over_retries() -> None:
    expiring = dataclasses.replace(AUTO, expires_at=T0 + 4)
    step = interrupted_push(expiring, T0)
    assert ScheduleRetry(4) in step.actions  # the next attempt no later than the expiry ...
    after_expiry = decide(step.state, Arrived("c2", OFFLINE), T0 + 5, RETRY)
    assert after_expiry.state.status is Status.EXPIRED  # ... finds it expired
    assert sends(after_expiry.actions) == []
    claimed = decide(dataclasses.replace(AUTO, expires_at=T0 + 0.5), Arrived("c1", OFFLINE), T0, RETRY).state
    expired = decide(claimed, SendInterrupted(Channel.PUSH, "c1", "503"), T0 + 1, RETRY)  # failed at expiry
    assert expired.state.status is Status.EXPIRED
    assert not any(isinstance(a, ScheduleRetry | Poison) for a in expired.actions)


def test_a_retry_of_the_push_fallback_pushes_without_waiting_for_another_deadline() -> None:
    sent = CANONICAL[Status.SENT_REALTIME]
    claimed = decide(sent, DeadlinePassed("c1", OFFLINE), T0 + 10, RETRY)
    step = decide(claimed.state, SendInterrupted(Channel.PUSH, "c1", "503"), T0 + 10, RETRY)
    assert step.state.status is Status.RETRYING and step.state.realtime.sent
    retry = decide(step.state, Arrived("c2", ONLINE), step.state.retry_at, RETRY)
    assert retry.actions == (SendPush("c2"),) and retry.state.retry_at == 0.0


def test_a_replayed_poison_message_tries_once_more_and_poisons_again_at_once_if_still_failing() -> None:
    poisoned = CANONICAL[Status.POISONED]
    replay = decide(poisoned, Arrived("c1", OFFLINE), T0, RETRY)
    assert replay.state.status is Status.RETRYING and replay.actions == (SendPush("c1"),)
    again = decide(replay.state, SendInterrupted(Channel.PUSH, "c1", "503"), T0, RETRY)
    assert again.state.status is Status.POISONED and any(isinstance(a, Poison) for a in again.actions)
    pushed = decide(replay.state, PushSent("c1", PushOutcome.PUSHED), T0, RETRY)
    assert pushed.state.status is Status.PUSHED and pushed.state.recover_at == 0.0


def test_a_repeated_decision_after_a_lost_answer_schedules_the_same_retry() -> None:
    step = interrupted_push(AUTO, T0)
    again = decide(step.state, SendInterrupted(Channel.PUSH, "c1", "503"), T0 + 0.2, RETRY)
    assert again.state == step.state
    assert effects(again.actions) == effects(step.actions)
    late_other = decide(step.state, SendInterrupted(Channel.PUSH, "c9", "503"), T0, RETRY)
    assert late_other.actions == () and late_other.state == step.state


def test_a_dead_handlers_claim_is_due_for_recovery_after_its_lease_and_re_driven_once() -> None:
    claimed = decide(new_state(Delivery.PUSH, None), Arrived("dead", OFFLINE), T0, RETRY).state
    assert claimed.recover_at == T0 + RETRY.claim_lease_seconds
    early = decide(claimed, Recovered("c1", OFFLINE), T0 + 5, RETRY)  # still held: the pass leaves it alone
    assert sends(early.actions) == [] and early.state.push.claim_id == "dead"
    step = decide(claimed, Recovered("c1", OFFLINE), claimed.recover_at + 1, RETRY)
    assert step.name == "recovered" and step.actions == (SendPush("c1"),)
    assert step.state.recover_at == claimed.recover_at + 1 + RETRY.claim_lease_seconds


def test_a_lost_ack_deadline_is_re_driven_a_lease_after_it_was_due() -> None:
    sent = decide(decide(AUTO, Arrived("c1", ONLINE), T0, RETRY).state, RealtimeSent("c1"), T0, RETRY).state
    assert sent.recover_at == T0 + RETRY.ack_timeout_seconds + RETRY.claim_lease_seconds
    step = decide(sent, Recovered("c2", ONLINE), sent.recover_at, RETRY)
    assert step.actions == (SendPush("c2"),)
    acked = decide(sent, Acked("c3"), T0 + 1, RETRY).state
    assert acked.recover_at == 0.0


def test_nothing_left_to_do_stops_the_recovery_pass_looking() -> None:
    odd = dataclasses.replace(CANONICAL[Status.PUSHED], recover_at=T0 - 1)  # e.g. written by older code
    step = decide(odd, Recovered("c1", ONLINE), T0, RETRY)
    assert step.name == "recovery-idle" and step.state.recover_at == 0.0 and step.actions == ()


def test_a_permanent_in_app_failure_in_both_is_not_retried_by_the_recovery_pass() -> None:
    both = decide(new_state(Delivery.BOTH, None), Arrived("c1", OFFLINE), T0, RETRY).state
    failed = decide(both, SendFailed(Channel.REALTIME, "c1", "403"), T0, RETRY).state
    pushed = decide(failed, PushSent("c1", PushOutcome.PUSHED), T0, RETRY).state
    assert pushed.recover_at == 0.0


def test_a_five_minute_outage_at_the_default_settings_poisons_nothing_and_pushes_once_after_it() -> None:
    rules = Rules(
        ack_timeout_seconds=int(DEFAULTS["ACK_TIMEOUT_SECONDS"]),
        claim_lease_seconds=float(DEFAULTS["CLAIM_LEASE_SECONDS"]),
        retry_delay_seconds=int(DEFAULTS["RETRY_DELAY_SECONDS"]),
        retry_max_delay_seconds=int(DEFAULTS["RETRY_MAX_DELAY_SECONDS"]),
        retry_horizon_seconds=int(DEFAULTS["RETRY_HORIZON_SECONDS"]),
    )
    budget = float(DEFAULTS["RETRY_BUDGET_SECONDS"])  # each attempt spends its in-invocation retries
    outage_end = T0 + 300
    state, now, pushes, attempt = AUTO, T0, [], 0
    while state.status is not Status.PUSHED:
        attempt += 1
        claimed = decide(state, Arrived(f"c{attempt}", OFFLINE), now, rules)
        assert claimed.actions == (SendPush(f"c{attempt}"),), claimed
        now += budget
        if now < outage_end:
            step = decide(claimed.state, SendInterrupted(Channel.PUSH, f"c{attempt}", "503"), now, rules)
            assert step.state.status is Status.RETRYING
            assert not any(isinstance(a, Poison) for a in step.actions)
            state, now = step.state, step.state.retry_at
        else:
            pushes.append(now)
            state = decide(claimed.state, PushSent(f"c{attempt}", PushOutcome.PUSHED), now, rules).state
    assert len(pushes) == 1 and pushes[0] - outage_end <= rules.retry_max_delay_seconds + budget
    assert state.recover_at == 0.0 and attempt <= 8, (attempt, pushes[0] - outage_end)


# An auto in-app send is recorded with its claim, ahead of the send (sent_ahead). ---------------------------


def test_an_auto_in_app_send_is_recorded_with_its_claim_and_nothing_is_written_after_it() -> None:
    step = first(Delivery.AUTO, Arrived("c1", UserView(online=True, connections=2)))
    assert step.name == "claim" and step.actions == (SendRealtime("c1"),)  # the deadline: after the send
    assert step.state.status is Status.SENT_REALTIME and step.state.realtime == ChannelState("c1", T0, T0)
    entries = [(e.name, e.status) for e in step.entries]
    assert entries == [("claim", "accepted"), ("realtime-sent", "sent_realtime")]
    assert step.entries[1].details == {"connections": 2}
    assert sent_ahead(step.state, "c1") and not sent_ahead(step.state, "c2")
    # The send's own report then changes nothing (no write the ack could meet) and arms the deadline.
    sent = decide(step.state, RealtimeSent("c1", 2), T0 + 0.01, RULES)
    assert not sent.changed_from(step.state) and sent.recorded is None
    assert effects(sent.actions) == [ScheduleDeadline(RULES.ack_timeout_seconds)]
    # The ack, whenever it comes, finds the send recorded.
    acked = decide(step.state, Acked("c1"), T0 + 0.02, RULES)
    assert acked.state.status is Status.ACKED and acked.state.realtime.sent


def test_only_auto_with_an_ack_deadline_records_the_in_app_send_ahead() -> None:
    """Without a push after the deadline, a crash before the send would lose it: claim, send, then record."""
    for mode in (Delivery.REALTIME, Delivery.BOTH):
        step = first(mode, Arrived("c1", ONLINE))
        assert step.state.realtime == ChannelState("c1", T0) and step.state.status is Status.ACCEPTED, mode
        assert step.recorded_ahead is None, mode
    trusting = decide(new_state(Delivery.AUTO, None), Arrived("c1", ONLINE), T0, Rules(ack_timeout_seconds=0))
    assert trusting.state.realtime == ChannelState("c1", T0) and not trusting.state.realtime.sent


def test_a_crash_before_the_recorded_send_ends_as_a_push_after_the_deadline() -> None:
    ahead = first(Delivery.AUTO, Arrived("c1", ONLINE)).state
    # The redelivered message re-arms the deadline (another handling: it does not send in-app again).
    assert effects(decide(ahead, Arrived("c2", ONLINE), T0 + 30, RULES).actions) == [
        ScheduleDeadline(RULES.ack_timeout_seconds)
    ]
    pushed = run(ahead, DeadlinePassed("c3", OFFLINE), now=T0 + RULES.ack_timeout_seconds)
    assert pushed.actions == (SendPush("c3"),)
    # Without any message, the recovery pass does it once the deadline is a lease overdue.
    due = recovery_due(ahead, RULES)
    assert due == T0 + RULES.ack_timeout_seconds + RULES.claim_lease_seconds
    assert decide(ahead, Recovered("c4", OFFLINE), due + 1, RULES).actions == (SendPush("c4"),)


def test_the_recorded_send_read_back_by_its_own_handler_is_still_made() -> None:
    """A lost answer to the insert (409) or the claim's merge (412): the re-read row carries our record."""
    ahead = first(Delivery.AUTO, Arrived("c1", ONLINE)).state
    again = decide(ahead, Arrived("c1", ONLINE), T0, RULES)
    assert again.name == "resume" and again.actions == (SendRealtime("c1"),) and again.state == ahead
    assert decide(ahead, Recovered("c1", ONLINE), T0, RULES).actions == (SendRealtime("c1"),)


def test_a_failed_recorded_send_is_undone() -> None:
    ahead = first(Delivery.AUTO, Arrived("c1", ONLINE)).state
    failed = decide(ahead, SendFailed(Channel.REALTIME, "c1", OFFLINE, "gone"), T0 + 1, RULES)
    assert failed.name == "realtime-failed" and failed.actions[1:] == (SendPush("c1"),)
    assert not failed.state.realtime.sent and failed.state.status is Status.ACCEPTED
    assert [e.name for e in failed.state.timeline] == ["claim", "realtime-sent", "realtime-failed"]
    interrupted = decide(ahead, SendInterrupted(Channel.REALTIME, "c1", "503"), T0 + 1, RULES)
    assert interrupted.state.status is Status.RETRYING and interrupted.state.realtime == ChannelState()
    assert isinstance(interrupted.actions[-1], ScheduleRetry)
    # The user is asked for before anything changes (the push fallback needs the preferences).
    unknown = decide(ahead, SendFailed(Channel.REALTIME, "c1"), T0 + 1, RULES)
    assert unknown.actions == (LoadUser(),) and unknown.state == ahead
    # Another handler's failure report does not undo our record.
    other = decide(ahead, SendFailed(Channel.REALTIME, "c2", OFFLINE), T0 + 1, RULES)
    assert other.state.realtime.sent and other.state.status is Status.SENT_REALTIME
