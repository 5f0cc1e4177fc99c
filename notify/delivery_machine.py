"""The delivery state machine: (delivery state, event) → next state + the actions to take.

Every delivery decision of the app is made here, by :func:`decide`, a pure function: no I/O, no clock
(``now`` is an argument), no randomness (claim ids come with the events). The store
(:mod:`notify.deliveries`) only reads and conditionally writes states; the notifier (:mod:`notify.notifier`)
only feeds events in, writes the next state and executes the actions::

    queue message ─▶ Arrived ────────┐                       ┌─▶ SendRealtime ─▶ RealtimeSent | SendFailed
    deadline msg ──▶ DeadlinePassed ─┤                       ├─▶ SendPush ─────▶ PushSent | SendFailed
    client ack ────▶ Acked ──────────┼─▶ decide(state, event) ├─▶ SendRetract ──▶ RetractSent | SendFailed
    inbox ─────────▶ Read, Archived ─┘          │             ├─▶ ScheduleDeadline, Recheck  | SendInterrupted
                                                │             ├─▶ LoadUser, RetryByHost
                                                ▼             └─▶ RecordOutcome (the outcome log line)
                     next state, written with the ETag it was read at (conflict: read again, decide again)

**Exactly once per channel.** A send is always preceded by a state that *claims* the channel (realtime,
push, retract) with the claim id of the event being handled (one id per handling of an input). Only one
writer wins a given ETag, so only one handler holds a live claim; a state whose channel is claimed by the
event's own id means "ours" (won by the insert, or by a write whose answer was lost), so the send goes
ahead. Sent channels are never claimed again; claims expire after ``claim_lease_seconds`` so a crashed
handler's channel can be taken over. Deciding the same event again on the state it produced yields the same
state and the same effects: that is what makes re-reading after a lost answer or a conflict safe.

**Preferences.** An event that may lead to a push or an in-app send carries a :class:`UserView`: presence,
whether the user has a device, and the gates :func:`notify.preferences.channel_gates` computed (allow,
suppress with the rule, defer until a time). A deadline arrives without one; when a push decision needs it
the transition asks for it (``LoadUser``) and the notifier decides again with it. A deferred push is a
deadline message delayed to the end of the quiet hours; it comes back as ``DeadlinePassed``.

**Retract.** A notification that was pushed and is then seen (acked in-app, read or archived in the inbox)
gets one silent push that tells the app to remove it; never when no push went out.

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
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from notify.model import Delivery
from notify.preferences import ALLOW, Gate, GateKind


class Status(StrEnum):
    """Where a notification's delivery stands (the headline of the record)."""

    ACCEPTED = "accepted"  # recorded, nothing sent yet
    SENT_REALTIME = "sent_realtime"  # in-app sent, no ack yet
    DEFERRED = "deferred"  # the push waits for the end of the user's quiet hours (``deferredUntil``)
    ACKED = "acked"  # the user's client acknowledged the in-app message
    READ = "read"  # the user read it (inbox)
    PUSHED = "pushed"  # the push went out
    NO_DEVICES = "no_devices"  # a push was due but the user has no device
    SUPPRESSED = "suppressed"  # the user's preferences muted what was due (``suppressedRule``)
    RETRACTED = "retracted"  # pushed, then seen in-app: the silent retract went out
    FAILED = "failed"  # a send failed permanently
    EXPIRED = "expired"  # the TTL ran out before anything more was sent


#: Statuses after which an ``auto`` notification sends nothing more (a retract aside).
DONE_STATUSES = frozenset(
    {
        Status.ACKED,
        Status.READ,
        Status.PUSHED,
        Status.NO_DEVICES,
        Status.SUPPRESSED,
        Status.RETRACTED,
        Status.FAILED,
        Status.EXPIRED,
    }
)
_OPEN = (Status.ACCEPTED, Status.SENT_REALTIME, Status.DEFERRED)
_ENDED = (Status.FAILED, Status.EXPIRED)
#: Statuses an ack or a read replaces (the user has now seen it).
_UNSEEN = (Status.ACCEPTED, Status.SENT_REALTIME, Status.DEFERRED, Status.SUPPRESSED)


class Channel(StrEnum):
    """What is sent exactly once per notification. The value is the record's column prefix."""

    REALTIME = "realtime"
    PUSH = "push"
    RETRACT = "retract"


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
    retract: ChannelState = ChannelState()
    push_outcome: PushOutcome | None = None
    acked_at: float = 0.0
    read_at: float = 0.0
    archived_at: float = 0.0
    expires_at: float | None = None  # unix seconds; None = no TTL
    nh_notification_id: str = ""
    suppressed_rule: str = ""  # the preference that muted a channel, if one did
    deferred_until: float = 0.0  # when a deferred push is due (0 = not deferred)
    deferred_by: str = ""  # the claim id of the handling that scheduled the deferral

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

    @property
    def seen(self) -> bool:
        """True once the user saw the notification: acked in-app, read or archived."""
        return self.acked_at > 0 or self.read_at > 0 or self.archived_at > 0

    @property
    def pushed(self) -> bool:
        """True when a push actually went out (not just 'no devices')."""
        return self.push.sent and self.push_outcome is PushOutcome.PUSHED


@dataclass(frozen=True)
class Rules:
    """The configuration decisions depend on."""

    ack_timeout_seconds: int
    claim_lease_seconds: float = 120.0
    recheck_seconds: int = 5  # the longest wait before looking again at a channel claimed elsewhere
    retract_retry_seconds: int = 30  # after a retract failed transiently
    defer_slack_seconds: float = 5.0  # a deferral's own wake-up may come this early (clock skew)


@dataclass(frozen=True)
class UserView:
    """The user as one decision sees them: presence, devices, and the preference gates per channel."""

    online: bool = False
    has_devices: bool = True
    in_app: Gate = ALLOW
    push: Gate = ALLOW


# Events --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Arrived:
    """A queue message for the notification: the first, a redelivery, or a re-check."""

    claim_id: str
    user: UserView = UserView()


@dataclass(frozen=True)
class DeadlinePassed:
    """A deadline message came back: an ack deadline, the end of a deferral, or a re-check of a claim."""

    claim_id: str
    user: UserView | None = None  # loaded on request (LoadUser)


@dataclass(frozen=True)
class Acked:
    """The user's client acknowledged the in-app message."""

    claim_id: str = ""


@dataclass(frozen=True)
class Read:
    """The user read the notification (inbox)."""

    claim_id: str = ""


@dataclass(frozen=True)
class Archived:
    """The user archived the notification (inbox)."""

    claim_id: str = ""


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
class RetractSent:
    """The retract push under ``claim_id`` went out."""

    claim_id: str


@dataclass(frozen=True)
class SendFailed:
    """A send failed permanently (a retry cannot succeed); ``user`` as the handling saw them, if known."""

    channel: Channel
    claim_id: str
    user: UserView | None = None


@dataclass(frozen=True)
class SendInterrupted:
    """A send failed transiently: the handler gives its claims back."""

    channel: Channel
    claim_id: str


Event = (
    Arrived | DeadlinePassed | Acked | Read | Archived | RealtimeSent | PushSent | RetractSent | SendFailed
    | SendInterrupted
)
EVENT_TYPES: tuple[type[Event], ...] = (
    Arrived, DeadlinePassed, Acked, Read, Archived, RealtimeSent, PushSent, RetractSent, SendFailed,
    SendInterrupted,
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
class SendRetract:
    """Send the silent retract push, then report RetractSent / SendFailed / SendInterrupted."""

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
class LoadUser:
    """Read the user (presence, devices, preferences) and decide the same event again with it."""


@dataclass(frozen=True)
class RetryByHost:
    """Fail this invocation so that the queue delivers the message again (after a transient failure)."""


@dataclass(frozen=True)
class RecordOutcome:
    """Record an outcome for the operator (the structured ``delivery`` log line)."""

    channel: str  # a Channel value, or "none"
    outcome: str
    level: int = logging.INFO
    detail: str = ""  # the rule that suppressed, the time a push was deferred to


Action = (
    SendRealtime | SendPush | SendRetract | ScheduleDeadline | Recheck | LoadUser | RetryByHost
    | RecordOutcome
)
SEND_ACTIONS: dict[type[Action], Channel] = {
    SendRealtime: Channel.REALTIME, SendPush: Channel.PUSH, SendRetract: Channel.RETRACT
}


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

    def then(self, following: Transition) -> Transition:
        """This transition followed by one decided on its state."""
        return Transition(
            following.name if following.changed_from(self.state) or following.actions else self.name,
            f"{self.reason}; {following.reason}",
            following.state,
            self.actions + following.actions,
        )


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
    # A seen notification keeps its headline.
    status = state.status if state.seen else Status.EXPIRED
    return Transition(
        "expired",
        "the TTL ran out before the notification was sent",
        dataclasses.replace(state, status=status),
        (RecordOutcome("none", "expired"),),
    )


def _recheck_delay(state: DeliveryState, channel: Channel, ctx: _Context) -> int:
    # Usually the other handler finishes within a second: look again soon, and at the latest just after its
    # lease runs out. A re-check that still finds a live claim schedules itself again.
    remaining = state.channel(channel).lease_remaining(ctx.now, ctx.rules.claim_lease_seconds)
    return min(math.ceil(remaining) + 1, ctx.rules.recheck_seconds)


def _busy(state: DeliveryState, channel: Channel, ctx: _Context) -> bool:
    return state.channel(channel).lease_remaining(ctx.now, ctx.rules.claim_lease_seconds) > 0


def _send(channel: Channel, claim_id: str) -> Action:
    if channel is Channel.REALTIME:
        return SendRealtime(claim_id)
    if channel is Channel.PUSH:
        return SendPush(claim_id)
    return SendRetract(claim_id)


def _send_once(
    state: DeliveryState, channel: Channel, claim_id: str, ctx: _Context, via_deadline: bool
) -> Transition:
    """Send ``channel`` under ``claim_id``: resume our claim, claim a free channel, or look again later."""
    current = state.channel(channel)
    if current.sent:
        return _nothing("done", f"{channel} already sent", state)
    if current.held_by(claim_id):
        return Transition("resume", f"{channel} claimed by this handler", state, (_send(channel, claim_id),))
    if _busy(state, channel, ctx):
        delay = _recheck_delay(state, channel, ctx)
        later: Action = ScheduleDeadline(delay) if via_deadline else Recheck(delay, (channel,))
        return Transition("busy", f"{channel} claimed by another handler", state, (later,))
    claimed = state.with_channel(channel, ChannelState(claim_id, ctx.now))
    return Transition("claim", f"claim {channel}", claimed, (_send(channel, claim_id),))


def _with_status(state: DeliveryState, status: Status, keep: tuple[Status, ...] = ()) -> DeliveryState:
    """``state`` with ``status``, unless a seen headline (or one of ``keep``) should stay."""
    if state.status in (Status.ACKED, Status.READ, Status.RETRACTED, *keep):
        return state
    return dataclasses.replace(state, status=status)


def _suppress(state: DeliveryState, channel: Channel, gate: Gate) -> Transition:
    # A muted in-app message suppresses the delivery only when nothing else may follow (realtime only).
    only_channel = channel is Channel.PUSH or state.delivery is Delivery.REALTIME
    status = Status.SUPPRESSED if only_channel else state.status
    next_state = dataclasses.replace(_with_status(state, status), suppressed_rule=gate.rule)
    if next_state == state:
        return _nothing("suppressed", f"{channel} suppressed by {gate.rule} (recorded before)", state)
    return Transition(
        "suppressed", f"{channel} suppressed by {gate.rule}", next_state,
        (RecordOutcome(channel.value, "suppressed", detail=gate.rule),),
    )


def _defer(state: DeliveryState, gate: Gate, claim_id: str, ctx: _Context) -> Transition:
    """Defer the push to ``gate.until`` with a delayed deadline message (one chain of them at a time)."""
    own_wake = state.deferred_until > 0 and ctx.now >= state.deferred_until - ctx.rules.defer_slack_seconds
    schedule = gate.until != state.deferred_until or state.deferred_by == claim_id or own_wake
    next_state = dataclasses.replace(_with_status(state, Status.DEFERRED), deferred_until=gate.until)
    if not schedule:
        return _nothing("deferred", "push already deferred to the same time", state)
    next_state = dataclasses.replace(next_state, deferred_by=claim_id)
    # One second past the end, so that the wake-up finds the quiet hours over.
    delay = max(1, math.ceil(gate.until - ctx.now) + 1)
    return Transition(
        "deferred", f"push deferred to {gate.until:.0f} by {gate.rule}", next_state,
        (RecordOutcome(Channel.PUSH.value, "deferred", detail=_utc(gate.until)), ScheduleDeadline(delay)),
    )


def _utc(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _push_step(
    state: DeliveryState, claim_id: str, user: UserView | None, ctx: _Context, via_deadline: bool
) -> Transition:
    """The push is due: resume or wait for a claim; else gate it (mute, quiet hours, devices) and claim it."""
    current = state.push
    if current.sent:
        return _nothing("done", "push already sent", state)
    if current.held_by(claim_id) or _busy(state, Channel.PUSH, ctx):
        return _send_once(state, Channel.PUSH, claim_id, ctx, via_deadline)
    if state.seen:
        return _nothing("done", "seen by the user: no push", state)
    if user is None:
        return Transition("load-user", "the push decision needs the user's preferences", state, (LoadUser(),))
    if user.push.kind is GateKind.SUPPRESS:
        return _suppress(state, Channel.PUSH, user.push)
    if _expired(state, ctx):
        return _expire(state)
    if user.push.kind is GateKind.DEFER:
        return _defer(state, user.push, claim_id, ctx)
    if not user.has_devices:
        no_devices = state.with_channel(Channel.PUSH, ChannelState(claim_id, ctx.now, ctx.now))
        no_devices = dataclasses.replace(
            _with_status(no_devices, Status.NO_DEVICES), push_outcome=PushOutcome.NO_DEVICES
        )
        return Transition(
            "no-devices", "the user has no device to push to", no_devices,
            (RecordOutcome(Channel.PUSH.value, PushOutcome.NO_DEVICES.value),),
        )
    return _send_once(state, Channel.PUSH, claim_id, ctx, via_deadline)


def _realtime_step(state: DeliveryState, claim_id: str, user: UserView, ctx: _Context) -> Transition:
    current = state.realtime
    if current.sent or current.held_by(claim_id) or _busy(state, Channel.REALTIME, ctx):
        return _send_once(state, Channel.REALTIME, claim_id, ctx, via_deadline=False)
    if user.in_app.kind is not GateKind.ALLOW:
        return _suppress(state, Channel.REALTIME, user.in_app)
    if _expired(state, ctx):
        return _expire(state)
    return _send_once(state, Channel.REALTIME, claim_id, ctx, via_deadline=False)


def _retract_due(state: DeliveryState) -> bool:
    return state.pushed and state.seen and not state.retract.sent


def _retract_step(state: DeliveryState, claim_id: str, ctx: _Context) -> Transition:
    return _send_once(state, Channel.RETRACT, claim_id, ctx, via_deadline=True)


def _arrived(state: DeliveryState, event: Event, ctx: _Context) -> Transition:
    assert isinstance(event, Arrived)
    claim, user = event.claim_id, event.user
    if _retract_due(state):
        return _retract_step(state, claim, ctx)
    mode = state.delivery
    if mode is Delivery.PUSH:
        return _push_step(state, claim, user, ctx, via_deadline=False)
    if mode is Delivery.REALTIME:
        return _realtime_step(state, claim, user, ctx)
    if mode is Delivery.BOTH:
        first = _realtime_step(state, claim, user, ctx)
        if first.state.status is Status.EXPIRED:
            return first
        second = _push_step(first.state, claim, user, ctx, via_deadline=False)
        if second.state.status is Status.EXPIRED and any(isinstance(a, SendRealtime) for a in first.actions):
            return first  # the in-app send goes on; the push is found expired on the next look
        return first.then(second)
    return _arrived_auto(state, event, ctx)


def _arrived_auto(state: DeliveryState, event: Arrived, ctx: _Context) -> Transition:
    claim, user = event.claim_id, event.user
    if state.status in DONE_STATUSES or state.push.sent:
        return _nothing("done", f"already {state.status}", state)
    if state.push.held_by(claim) or _busy(state, Channel.PUSH, ctx):
        return _send_once(state, Channel.PUSH, claim, ctx, via_deadline=False)
    if state.realtime.sent:
        # A redelivery after the in-app send: the deadline may not have been enqueued (crash), so again.
        if state.status is Status.SENT_REALTIME and ctx.rules.ack_timeout_seconds > 0:
            return Transition(
                "deadline-again", "in-app already sent; re-arm the ack deadline", state,
                (ScheduleDeadline(ctx.rules.ack_timeout_seconds),),
            )
        return _nothing("done", "in-app already sent; the push waits for its deadline", state)
    realtime_wanted = user.online and user.in_app.kind is GateKind.ALLOW
    if realtime_wanted or state.realtime.held_by(claim) or _busy(state, Channel.REALTIME, ctx):
        return _realtime_step(state, claim, user, ctx)
    step = _push_step(state, claim, user, ctx, via_deadline=False)
    if user.online and user.in_app.kind is not GateKind.ALLOW and step.state.status is not Status.EXPIRED:
        rule = step.state.suppressed_rule or user.in_app.rule
        noted = dataclasses.replace(step.state, suppressed_rule=rule)
        return dataclasses.replace(
            step, reason=f"in-app suppressed by {user.in_app.rule}; {step.reason}", state=noted
        )
    return step


def _deadline_passed(state: DeliveryState, event: Event, ctx: _Context) -> Transition:
    assert isinstance(event, DeadlinePassed)
    if _retract_due(state):
        return _retract_step(state, event.claim_id, ctx)
    due = state.status is Status.DEFERRED or (state.delivery is Delivery.AUTO and state.status in _OPEN)
    if not due:
        return _nothing("done", f"nothing is due for a {state.delivery} notification {state.status}", state)
    return _push_step(state, event.claim_id, event.user, ctx, via_deadline=True)


def _seen(kind: str) -> Handler:
    """Acked, Read or Archived: record it, and retract a push that went out."""
    column = {"acked": "acked_at", "read": "read_at", "archived": "archived_at"}[kind]
    status = {"acked": Status.ACKED, "read": Status.READ}.get(kind)

    def handler(state: DeliveryState, event: Event, ctx: _Context) -> Transition:
        assert isinstance(event, Acked | Read | Archived)
        first: Transition
        if getattr(state, column) > 0:
            first = _nothing("ignored", f"already {kind}", state)
        else:
            changes: dict[str, Any] = {column: ctx.now}
            if status is Status.ACKED and state.status in _UNSEEN:
                changes["status"] = status
            if status is Status.READ and state.status not in (Status.RETRACTED, *_ENDED):
                changes["status"] = status
            channel = Channel.REALTIME.value if kind == "acked" else "none"
            first = Transition(kind, f"the user {kind} it", dataclasses.replace(state, **changes),
                               (RecordOutcome(channel, kind),))
        if _retract_due(first.state):
            return first.then(_retract_step(first.state, event.claim_id, ctx))
        return first

    return handler


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
        and next_state.status is Status.SENT_REALTIME
        and not next_state.push.sent
    ):
        actions.append(ScheduleDeadline(ctx.rules.ack_timeout_seconds))
    return Transition("realtime-sent", "the in-app message was sent", next_state, tuple(actions))


def _push_sent(state: DeliveryState, event: Event, ctx: _Context) -> Transition:
    assert isinstance(event, PushSent)
    record = RecordOutcome(Channel.PUSH.value, event.outcome.value)
    if state.push.sent:  # recorded already (our own write whose answer was lost, or a late duplicate)
        step = Transition("push-sent", "the push was recorded before", state, (record,))
    else:
        next_state = dataclasses.replace(
            _with_status(_mark_sent(state, Channel.PUSH, ctx), Status(event.outcome.value)),
            push_outcome=event.outcome,
            nh_notification_id=event.nh_notification_id or state.nh_notification_id,
        )
        pushed = event.outcome is PushOutcome.PUSHED
        step = Transition(
            "push-sent" if pushed else "no-devices",
            "the push went out" if pushed else "the user has no device to push to",
            next_state,
            (record,),
        )
    next_state = step.state
    if _retract_due(next_state):  # seen while the push was on its way
        return step.then(_retract_step(next_state, event.claim_id, ctx))
    return step


def _retract_sent(state: DeliveryState, event: Event, ctx: _Context) -> Transition:
    assert isinstance(event, RetractSent)
    if not state.pushed:
        return _nothing("ignored", "nothing was pushed, so nothing was retracted", state)
    next_state = dataclasses.replace(_mark_sent(state, Channel.RETRACT, ctx), status=Status.RETRACTED)
    return Transition(
        "retracted", "the silent retract push went out", next_state,
        (RecordOutcome(Channel.RETRACT.value, "retracted"),),
    )


def _send_failed(state: DeliveryState, event: Event, ctx: _Context) -> Transition:
    assert isinstance(event, SendFailed)
    record = RecordOutcome(event.channel.value, "failed", logging.ERROR)
    if state.channel(event.channel).sent:
        return Transition("ignored", f"the {event.channel} was sent by another handler", state, (record,))
    if event.channel is Channel.RETRACT:
        return Transition(
            "retract-failed", "the retract failed permanently; the push stays", state, (record,)
        )
    failed = _with_status(state, Status.FAILED)
    if event.channel is Channel.PUSH or state.delivery is Delivery.REALTIME:
        return Transition("failed", f"the {event.channel} send failed permanently", failed, (record,))
    if state.delivery is Delivery.BOTH:
        return Transition("realtime-failed", "the in-app send failed; the push still goes", state, (record,))
    # auto: fall back to push, unless the user acked or something else settled it meanwhile.
    if state.seen or state.status in DONE_STATUSES:
        return Transition(
            "realtime-failed", "the in-app send failed after the delivery settled", state, (record,)
        )
    fallback = _push_step(state, event.claim_id, event.user, ctx, via_deadline=False)
    return Transition(
        "realtime-failed", f"the in-app send failed; falling back to push: {fallback.reason}", fallback.state,
        (record, *fallback.actions),
    )


def _send_interrupted(state: DeliveryState, event: Event, ctx: _Context) -> Transition:
    assert isinstance(event, SendInterrupted)
    next_state = state
    for channel in Channel:
        if state.channel(channel).held_by(event.claim_id):
            next_state = next_state.with_channel(channel, ChannelState())
    # A push or in-app send is retried by the host redelivering the message; a retract (sent from an ack or
    # an inbox call, where no message would come back) by a deadline message.
    retry: Action = RetryByHost()
    if event.channel is Channel.RETRACT:
        retry = ScheduleDeadline(ctx.rules.retract_retry_seconds)
    return Transition(
        "released",
        f"the {event.channel} send failed transiently; claims given back for the retry",
        next_state,
        (RecordOutcome(event.channel.value, "retry", logging.WARNING), retry),
    )


_ANY = tuple(Status)
_NOT_ENDED = tuple(s for s in Status if s not in _ENDED)


def _rows(
    statuses: tuple[Status, ...], event: type[Event], handler: Handler
) -> dict[tuple[Status, type[Event]], Handler]:
    return {(status, event): handler for status in statuses}


TRANSITIONS: dict[tuple[Status, type[Event]], Handler] = {
    **_rows(_NOT_ENDED, Arrived, _arrived),
    **_rows(_ENDED, Arrived, _ignore("the delivery already ended")),
    **_rows(_ANY, DeadlinePassed, _deadline_passed),
    **_rows(_ANY, Acked, _seen("acked")),
    **_rows(_ANY, Read, _seen("read")),
    **_rows(_ANY, Archived, _seen("archived")),
    **_rows(_ANY, RealtimeSent, _realtime_sent),
    **_rows(_ANY, PushSent, _push_sent),
    **_rows(_ANY, RetractSent, _retract_sent),
    **_rows(_ANY, SendFailed, _send_failed),
    **_rows(_ANY, SendInterrupted, _send_interrupted),
}
