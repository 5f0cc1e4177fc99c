"""The delivery state machine: (delivery state, event) → next state + the actions to take.

Every delivery decision of the app is made here, by :func:`decide`, a pure function: no I/O, no clock
(``now`` is an argument), no randomness (claim ids come with the events). The store
(:mod:`notify.deliveries`) only reads and conditionally writes states; the notifier (:mod:`notify.notifier`)
only feeds events in, writes the next state and executes the actions::

    queue message ─▶ Arrived ────────┐                       ┌─▶ SendRealtime ─▶ RealtimeSent | SendFailed
    ack deadline ──▶ DeadlinePassed ─┼─▶ decide(state, event) ├─▶ SendPush ─────▶ PushSent | SendFailed
    client ack ────▶ Acked ──────────┘          │             ├─▶ ScheduleDeadline, Recheck  | SendInterrupted
                                                ▼             └─▶ RecordOutcome (the outcome log line)
                     next state, written with the ETag it was read at (conflict: read again, decide again)

**Exactly once per channel.** A send is always preceded by a state that *claims* the channel with the claim
id of the event being handled (one id per handling of a queue message). Only one writer wins a given ETag,
so only one handler holds a live claim; a state whose channel is claimed by the event's own id means "ours"
(won by the insert, or by a write whose answer was lost), so the send goes ahead. Sent channels are never
claimed again; claims expire after ``claim_lease_seconds`` so a crashed handler's channel can be taken over.
Deciding the same event again on the state it produced yields the same state and the same sends: that is
what makes re-reading after a lost answer or a conflict safe.

**The table.** :data:`TRANSITIONS` maps every (status, event type) pair to a handler. A new status or
event is an addition there: add the enum member or event class, a handler, and its rows;
``tests/unit/app/test_delivery_machine.py`` fails until every pair has a row. Each :class:`Transition`
carries a stable ``name`` and a human ``reason``, so a delivery timeline has one place to be added
(:func:`decide`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from notify.model import Delivery


class Status(StrEnum):
    """Where a notification's delivery stands (the headline of the record)."""

    ACCEPTED = "accepted"  # recorded, nothing sent yet
    SENT_REALTIME = "sent_realtime"  # in-app sent, no ack yet
    ACKED = "acked"  # the user's client acknowledged the in-app message
    PUSHED = "pushed"  # the push went out
    NO_DEVICES = "no_devices"  # a push was due but the user has no device
    FAILED = "failed"  # a send failed permanently
    EXPIRED = "expired"  # the TTL ran out before anything more was sent


#: Statuses after which an ``auto`` notification sends nothing more.
DONE_STATUSES = frozenset({Status.ACKED, Status.PUSHED, Status.NO_DEVICES, Status.FAILED, Status.EXPIRED})


class Channel(StrEnum):
    """What is sent exactly once per notification. The value is the record's column prefix."""

    REALTIME = "realtime"
    PUSH = "push"


class PushOutcome(StrEnum):
    """What a push send reported."""

    PUSHED = "pushed"
    NO_DEVICES = "no_devices"


@dataclass(frozen=True)
class ChannelState:
    """One channel of one delivery: who claimed it when, and when it was sent (unix seconds, 0 = not)."""

    claim_id: str = ""
    claimed_at: float = 0.0
    sent_at: float = 0.0

    @property
    def sent(self) -> bool:
        """True once the channel's send succeeded."""
        return self.sent_at > 0

    def held_by(self, claim_id: str) -> bool:
        """True when ``claim_id`` holds the (unsent) channel."""
        return bool(claim_id) and self.claim_id == claim_id and not self.sent

    def lease_remaining(self, now: float, lease: float) -> float:
        """Seconds until the current claim expires (0 when there is no live claim)."""
        if self.sent or self.claimed_at <= 0:
            return 0.0
        return max(0.0, self.claimed_at + lease - now)


@dataclass(frozen=True)
class DeliveryState:
    """The part of a delivery record that decisions read and write."""

    delivery: Delivery
    status: Status = Status.ACCEPTED
    realtime: ChannelState = ChannelState()
    push: ChannelState = ChannelState()
    acked_at: float = 0.0
    expires_at: float | None = None  # unix seconds; None = no TTL
    nh_notification_id: str = ""

    def channel(self, channel: Channel) -> ChannelState:
        """The state of ``channel``."""
        state: ChannelState = getattr(self, channel.value)
        return state

    def with_channel(self, channel: Channel, state: ChannelState) -> DeliveryState:
        """A copy with ``channel`` replaced."""
        changes: dict[str, Any] = {channel.value: state}
        return dataclasses.replace(self, **changes)

    @property
    def acked(self) -> bool:
        """True once the user's client acknowledged the in-app message."""
        return self.acked_at > 0


@dataclass(frozen=True)
class Rules:
    """The configuration decisions depend on."""

    ack_timeout_seconds: int
    claim_lease_seconds: float = 120.0
    recheck_seconds: int = 5  # the longest wait before looking again at a channel claimed elsewhere


# Events --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Arrived:
    """A queue message for the notification: the first, a redelivery, or a re-check."""

    claim_id: str
    online: bool | None = None  # read for ``auto`` only


@dataclass(frozen=True)
class DeadlinePassed:
    """The ack deadline of an ``auto`` notification passed (or a re-check of a busy push)."""

    claim_id: str


@dataclass(frozen=True)
class Acked:
    """The user's client acknowledged the in-app message."""


@dataclass(frozen=True)
class RealtimeSent:
    """The in-app send under ``claim_id`` succeeded."""

    claim_id: str


@dataclass(frozen=True)
class PushSent:
    """The push send under ``claim_id`` finished: pushed, or nobody to push to."""

    claim_id: str
    outcome: PushOutcome
    nh_notification_id: str | None = None


@dataclass(frozen=True)
class SendFailed:
    """A send failed permanently (a retry cannot succeed)."""

    channel: Channel
    claim_id: str


@dataclass(frozen=True)
class SendInterrupted:
    """A send failed transiently: the handler gives its claims back and the message is retried."""

    channel: Channel
    claim_id: str


Event = Arrived | DeadlinePassed | Acked | RealtimeSent | PushSent | SendFailed | SendInterrupted
EVENT_TYPES: tuple[type[Event], ...] = (
    Arrived, DeadlinePassed, Acked, RealtimeSent, PushSent, SendFailed, SendInterrupted
)


# Actions -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendRealtime:
    """Send the notification in-app, then report RealtimeSent / SendFailed / SendInterrupted."""

    claim_id: str


@dataclass(frozen=True)
class SendPush:
    """Push the notification, then report PushSent / SendFailed / SendInterrupted."""

    claim_id: str


@dataclass(frozen=True)
class ScheduleDeadline:
    """Enqueue a deadline message that becomes visible after ``delay_seconds``."""

    delay_seconds: int


@dataclass(frozen=True)
class Recheck:
    """Re-enqueue the notification to look again after ``delay_seconds`` (a claim is held elsewhere)."""

    delay_seconds: int
    channels: tuple[Channel, ...]


@dataclass(frozen=True)
class RecordOutcome:
    """Record an outcome for the operator (the structured ``delivery`` log line)."""

    channel: str  # a Channel value, or "none"
    outcome: str
    level: int = logging.INFO


Action = SendRealtime | SendPush | ScheduleDeadline | Recheck | RecordOutcome


@dataclass(frozen=True)
class Transition:
    """What :func:`decide` answers: the next state, the actions in order, and why."""

    name: str  # stable, e.g. "claim", "realtime-sent"
    reason: str
    state: DeliveryState
    actions: tuple[Action, ...] = ()

    def changed_from(self, previous: DeliveryState) -> bool:
        """True when the state must be written."""
        return self.state != previous


@dataclass(frozen=True)
class _Context:
    now: float
    rules: Rules


# Decisions -----------------------------------------------------------------------------------------------

Handler = Callable[[DeliveryState, Event, _Context], Transition]


def decide(state: DeliveryState, event: Event, now: float, rules: Rules) -> Transition:
    """The transition for ``event`` on ``state`` at ``now`` (pure; raise KeyError for an unknown pair)."""
    handler = TRANSITIONS[(state.status, type(event))]
    return handler(state, event, _Context(now, rules))


def new_state(delivery: Delivery, expires_at: float | None) -> DeliveryState:
    """The state of a record that does not exist yet (decide on it, then insert the result)."""
    return DeliveryState(delivery=delivery, expires_at=expires_at)


def _nothing(name: str, reason: str, state: DeliveryState) -> Transition:
    return Transition(name, reason, state)


def _ignore(reason: str) -> Handler:
    def handler(state: DeliveryState, event: Event, ctx: _Context) -> Transition:
        return _nothing("ignored", reason, state)

    return handler


def _expired(state: DeliveryState, ctx: _Context) -> bool:
    return state.expires_at is not None and ctx.now > state.expires_at


def _expire(state: DeliveryState) -> Transition:
    # An ack stays the headline: the user has seen the notification.
    status = state.status if state.status is Status.ACKED else Status.EXPIRED
    return Transition(
        "expired",
        "the TTL ran out before the notification was sent",
        dataclasses.replace(state, status=status),
        (RecordOutcome("none", "expired"),),
    )


def _recheck_delay(state: DeliveryState, channels: list[Channel], ctx: _Context) -> int:
    # Usually the other handler finishes within a second: look again soon, and at the latest just after its
    # lease runs out. A re-check that still finds a live claim schedules itself again.
    lease = ctx.rules.claim_lease_seconds
    remaining = max(state.channel(c).lease_remaining(ctx.now, lease) for c in channels)
    return min(math.ceil(remaining) + 1, ctx.rules.recheck_seconds)


def _claim_all(
    state: DeliveryState, channels: list[Channel], claim_id: str, ctx: _Context
) -> tuple[DeliveryState, list[Channel], list[Channel]]:
    """Claim every free channel; return (state, channels to send under ``claim_id``, channels busy)."""
    ours: list[Channel] = []
    busy: list[Channel] = []
    for channel in channels:
        current = state.channel(channel)
        if current.sent:
            continue
        if current.held_by(claim_id):
            ours.append(channel)
        elif current.lease_remaining(ctx.now, ctx.rules.claim_lease_seconds) > 0:
            busy.append(channel)
        else:
            state = state.with_channel(channel, ChannelState(claim_id, ctx.now))
            ours.append(channel)
    return state, ours, busy


def _send_actions(channels: list[Channel], claim_id: str) -> list[Action]:
    return [SendRealtime(claim_id) if c is Channel.REALTIME else SendPush(claim_id) for c in channels]


def _deliver_channels(
    state: DeliveryState, channels: list[Channel], claim_id: str, ctx: _Context, busy_action: str = "recheck"
) -> Transition:
    """Send each unsent channel once (claiming it first); look again later at channels claimed elsewhere."""
    pending = [c for c in channels if not state.channel(c).sent]
    if not pending:
        return _nothing("done", "every channel is already sent", state)
    if _expired(state, ctx) and not any(state.channel(c).held_by(claim_id) for c in pending):
        return _expire(state)
    next_state, ours, busy = _claim_all(state, pending, claim_id, ctx)
    actions = _send_actions(ours, claim_id)
    if busy:
        delay = _recheck_delay(next_state, busy, ctx)
        actions.append(
            Recheck(delay, tuple(busy)) if busy_action == "recheck" else ScheduleDeadline(delay)
        )
    names = ",".join(c.value for c in ours) or "nothing"
    reason = f"send {names}" + (f"; {','.join(c.value for c in busy)} claimed elsewhere" if busy else "")
    return Transition("claim" if next_state != state else "resume", reason, next_state, tuple(actions))


def _arrived(state: DeliveryState, event: Event, ctx: _Context) -> Transition:
    assert isinstance(event, Arrived)
    mode = state.delivery
    if mode is Delivery.PUSH:
        return _deliver_channels(state, [Channel.PUSH], event.claim_id, ctx)
    if mode is Delivery.REALTIME:
        return _deliver_channels(state, [Channel.REALTIME], event.claim_id, ctx)
    if mode is Delivery.BOTH:
        return _deliver_channels(state, [Channel.REALTIME, Channel.PUSH], event.claim_id, ctx)
    return _arrived_auto(state, event, ctx)


def _arrived_auto(state: DeliveryState, event: Arrived, ctx: _Context) -> Transition:
    if state.status in DONE_STATUSES or state.push.sent:
        return _nothing("done", f"already {state.status}", state)
    push_busy = state.push.lease_remaining(ctx.now, ctx.rules.claim_lease_seconds) > 0
    if state.push.held_by(event.claim_id) or push_busy:
        return _deliver_channels(state, [Channel.PUSH], event.claim_id, ctx)
    if state.realtime.sent:
        # A redelivery after the in-app send: the deadline may not have been enqueued (crash), so again.
        if ctx.rules.ack_timeout_seconds > 0:
            return Transition(
                "deadline-again", "in-app already sent; re-arm the ack deadline", state,
                (ScheduleDeadline(ctx.rules.ack_timeout_seconds),),
            )
        return _nothing("done", "in-app already sent; presence is trusted (no ack deadline)", state)
    if not event.online:
        return _deliver_channels(state, [Channel.PUSH], event.claim_id, ctx)
    return _deliver_channels(state, [Channel.REALTIME], event.claim_id, ctx)


def _deadline_passed(state: DeliveryState, event: Event, ctx: _Context) -> Transition:
    assert isinstance(event, DeadlinePassed)
    if state.delivery is not Delivery.AUTO:
        return _nothing("ignored", f"a {state.delivery} notification has no ack deadline", state)
    if state.acked or state.push.sent:
        return _nothing("done", "acked or pushed before the deadline", state)
    return _deliver_channels(state, [Channel.PUSH], event.claim_id, ctx, busy_action="deadline")


def _acked(state: DeliveryState, event: Event, ctx: _Context) -> Transition:
    if state.acked:
        return _nothing("ignored", "already acked", state)
    status = Status.ACKED if state.status in (Status.ACCEPTED, Status.SENT_REALTIME) else state.status
    return Transition(
        "acked",
        "the client acknowledged the in-app message",
        dataclasses.replace(state, acked_at=ctx.now, status=status),
        (RecordOutcome(Channel.REALTIME.value, "acked"),),
    )


def _mark_sent(state: DeliveryState, channel: Channel, ctx: _Context) -> DeliveryState:
    current = state.channel(channel)
    if current.sent:
        return state
    return state.with_channel(channel, dataclasses.replace(current, sent_at=ctx.now))


def _realtime_sent(state: DeliveryState, event: Event, ctx: _Context) -> Transition:
    assert isinstance(event, RealtimeSent)
    next_state = _mark_sent(state, Channel.REALTIME, ctx)
    if next_state.status is Status.ACCEPTED:
        next_state = dataclasses.replace(next_state, status=Status.SENT_REALTIME)
    actions: list[Action] = [RecordOutcome(Channel.REALTIME.value, "sent")]
    if (
        state.delivery is Delivery.AUTO
        and ctx.rules.ack_timeout_seconds > 0
        and next_state.status not in DONE_STATUSES
        and not next_state.push.sent
    ):
        actions.append(ScheduleDeadline(ctx.rules.ack_timeout_seconds))
    return Transition("realtime-sent", "the in-app message was sent", next_state, tuple(actions))


def _push_sent(state: DeliveryState, event: Event, ctx: _Context) -> Transition:
    assert isinstance(event, PushSent)
    next_state = _mark_sent(state, Channel.PUSH, ctx)
    # A late ack stays visible; a push after the ack (``both``) does not hide it.
    status = state.status if state.status is Status.ACKED else Status(event.outcome.value)
    next_state = dataclasses.replace(
        next_state, status=status, nh_notification_id=event.nh_notification_id or state.nh_notification_id
    )
    return Transition(
        "push-sent" if event.outcome is PushOutcome.PUSHED else "no-devices",
        "the push went out" if event.outcome is PushOutcome.PUSHED else "the user has no device to push to",
        next_state,
        (RecordOutcome(Channel.PUSH.value, event.outcome.value),),
    )


def _send_failed(state: DeliveryState, event: Event, ctx: _Context) -> Transition:
    assert isinstance(event, SendFailed)
    record = RecordOutcome(event.channel.value, "failed", logging.ERROR)
    if state.channel(event.channel).sent:
        return Transition("ignored", f"the {event.channel} was sent by another handler", state, (record,))
    failed = state if state.status is Status.ACKED else dataclasses.replace(state, status=Status.FAILED)
    if event.channel is Channel.PUSH or state.delivery is Delivery.REALTIME:
        return Transition("failed", f"the {event.channel} send failed permanently", failed, (record,))
    if state.delivery is Delivery.BOTH:
        return Transition("realtime-failed", "the in-app send failed; the push still goes", state, (record,))
    # auto: fall back to push, unless the user acked or something else settled it meanwhile.
    if state.acked or state.status in DONE_STATUSES:
        return Transition(
            "realtime-failed", "the in-app send failed after the delivery settled", state, (record,)
        )
    fallback = _deliver_channels(state, [Channel.PUSH], event.claim_id, ctx)
    return Transition(
        "realtime-failed", "the in-app send failed; falling back to push", fallback.state,
        (record, *fallback.actions),
    )


def _send_interrupted(state: DeliveryState, event: Event, ctx: _Context) -> Transition:
    assert isinstance(event, SendInterrupted)
    next_state = state
    for channel in Channel:
        if state.channel(channel).held_by(event.claim_id):
            next_state = next_state.with_channel(channel, ChannelState())
    return Transition(
        "released",
        f"the {event.channel} send failed transiently; claims given back for the retry",
        next_state,
        (RecordOutcome(event.channel.value, "retry", logging.WARNING),),
    )


_ANY_STATUS = tuple(Status)
_LIVE = (Status.ACCEPTED, Status.SENT_REALTIME, Status.ACKED, Status.PUSHED, Status.NO_DEVICES)
_DEADLINE_OPEN = (Status.ACCEPTED, Status.SENT_REALTIME)


def _rows(
    statuses: tuple[Status, ...], event: type[Event], handler: Handler
) -> dict[tuple[Status, type[Event]], Handler]:
    return {(status, event): handler for status in statuses}


TRANSITIONS: dict[tuple[Status, type[Event]], Handler] = {
    **_rows(_LIVE, Arrived, _arrived),
    **_rows((Status.FAILED, Status.EXPIRED), Arrived, _ignore("the delivery already ended")),
    **_rows(_DEADLINE_OPEN, DeadlinePassed, _deadline_passed),
    **_rows((Status.ACKED,), DeadlinePassed, _ignore("acked before the deadline")),
    **_rows((Status.PUSHED, Status.NO_DEVICES), DeadlinePassed, _ignore("already pushed")),
    **_rows((Status.FAILED, Status.EXPIRED), DeadlinePassed, _ignore("the delivery already ended")),
    **_rows(_ANY_STATUS, Acked, _acked),
    **_rows(_ANY_STATUS, RealtimeSent, _realtime_sent),
    **_rows(_ANY_STATUS, PushSent, _push_sent),
    **_rows(_ANY_STATUS, SendFailed, _send_failed),
    **_rows(_ANY_STATUS, SendInterrupted, _send_interrupted),
}
