"""The delivery state machine: (delivery state, event) → next state + the actions to take.

Every delivery decision of the app is made here, by :func:`decide`, a pure function: no I/O, no clock
(``now`` is an argument), no randomness (claim ids come with the events). The store
(:mod:`notify.deliveries`) only reads and conditionally writes states; the notifier (:mod:`notify.notifier`)
only feeds events in, writes the next state and executes the actions::

    queue message ─▶ Arrived ────────┐                       ┌─▶ SendRealtime ─▶ RealtimeSent | SendFailed
    deadline msg ──▶ DeadlinePassed ─┤                       ├─▶ SendPush ─────▶ PushSent | SendFailed
    client ack ────▶ Acked ──────────┼─▶ decide(state, event) ├─▶ SendRetract ──▶ RetractSent | SendFailed
    inbox ─────────▶ Read, Archived ─┤          │             ├─▶ ScheduleDeadline, Recheck  | SendInterrupted
    recovery pass ─▶ Recovered ──────┘          │             ├─▶ LoadUser, ScheduleRetry, Poison
                                                ▼             └─▶ RecordOutcome (the outcome log line)
                     next state, written with the ETag it was read at (conflict: read again, decide again)

**Exactly once per channel.** A send is always preceded by a state that *claims* the channel (realtime,
push, retract) with the claim id of the event being handled (one id per handling of an input). Only one
writer wins a given ETag, so only one handler holds a live claim; a state whose channel is claimed by the
event's own id means "ours" (won by the insert, or by a write whose answer was lost), so the send goes
ahead. Sent channels are never claimed again; claims expire after ``claim_lease_seconds`` so a crashed
handler's channel can be taken over. Deciding the same event again on the state it produced yields the same
state and the same effects: that is what makes re-reading after a lost answer or a conflict safe.

**An ``auto`` in-app send is recorded ahead of it.** With an ack deadline, the in-app send is recorded
as sent (its ``realtime-sent`` entry, status ``sent_realtime``) in the same write as its claim, and nothing
is written after the send (:func:`sent_ahead`). The client's ack, which can only follow the send, then
never meets the send's record on the ETag (that cost a 412, a re-read and a second write). A crash before
the send leaves a row that says sent: the ack deadline pushes it (re-armed by the redelivered message, or
the recovery pass), so nothing is lost. A failure that the recording handler reports undoes the record.
``delivery`` ``realtime`` and ``both``, which push nothing after a missed ack, claim, send, then record.

**Preferences.** An event that may lead to a push or an in-app send carries a :class:`UserView`: presence,
whether the user has a device, and the gates :func:`notify.preferences.channel_gates` computed (allow,
suppress with the rule, defer until a time). A deadline arrives without one; when a push decision needs it
the transition asks for it (``LoadUser``) and the notifier decides again with it. A deferred push is a
deadline message delayed to the end of the quiet hours; it comes back as ``DeadlinePassed``.

**Retract.** A notification that was pushed and is then seen (acked in-app, read or archived in the inbox)
gets one silent push that tells the app to remove it; never when no push went out.

**Riding out outages.** A send that fails transiently beyond the in-invocation retries
(``SendInterrupted``) gives its claims back and re-schedules the notification: status ``retrying`` with
the next attempt time (growing delays, :attr:`Rules.retry_delay_seconds` doubling up to
:attr:`Rules.retry_max_delay_seconds`) and the last error, and a delayed re-enqueue (``ScheduleRetry``).
Once the retries have run for :attr:`Rules.retry_horizon_seconds` the next failure ends in ``poisoned``
with the reason on the record and a ``Poison`` action (the poison queue's envelope carries it too). A
replayed poison message arrives as ``Arrived`` and tries once more. The TTL wins over all of it: an
expired notification is recorded ``expired``, never retried. (A retract keeps its own retry by deadline.)

**Recovery after a crash.** Every state knows when it would be stuck if nothing happened
(:func:`recovery_due`, stored with the row): a claim past its lease, an ack deadline or a deferral a lease
overdue, a retry that did not arrive. The recovery pass (:mod:`notify.recovery`) feeds ``Recovered`` to
rows past that moment; it re-drives them as the lost message or deadline would, without waiting for the
queue trigger's ten-minute receive lease to give the message back.

**The table.** :data:`TRANSITIONS` maps every (status, event type) pair to a handler. A new status or
event is an addition there: add the enum member or event class, a handler, and its rows;
``tests/unit/app/test_delivery_machine.py`` fails until every pair has a row. Each :class:`Transition`
carries a stable ``name``, a human ``reason`` and machine-readable ``details``.

**The timeline.** Every transition that changes the state is recorded in the state itself, in one place:
:func:`decide` appends a :class:`TimelineEntry` (time, name, resulting status, reason, details) to
``DeliveryState.timeline``. A new status or event therefore gets timeline entries without further work. The
timeline is bounded (:data:`MAX_TIMELINE_ENTRIES`: the first entry and the newest ones are kept) and takes no
part in state comparisons, so "did the state change" still means "did a decision-relevant field change".
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from notify.model import Delivery
from notify.preferences import ALLOW, Gate, GateKind

_FIELD_NAMES: dict[type, frozenset[str]] = {}


def _evolve[D](obj: D, **changes: Any) -> D:
    """``dataclasses.replace`` for this module's frozen dataclasses, without running ``__init__`` again.

    A decision copies its 25-field state a dozen times, and the generated ``__init__`` was most of what
    that cost. Every dataclass here sets all its fields in ``__init__`` and has no ``__post_init__``, so the
    instance's attributes with the changes applied are the object replace() would build; an unknown name
    still raises TypeError.
    """
    cls = type(obj)
    names = _FIELD_NAMES.get(cls)
    if names is None:
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]  # D is one of the dataclasses here
        names = _FIELD_NAMES.setdefault(cls, frozenset(f.name for f in fields))
    unknown = changes.keys() - names
    if unknown:
        raise TypeError(f"{cls.__name__} has no field {sorted(unknown)[0]!r}")
    copy = object.__new__(cls)
    attributes = vars(copy)
    attributes.update(vars(obj))
    attributes.update(changes)
    return copy


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
    RETRYING = "retrying"  # a send failed transiently; the next attempt is scheduled (``retryAt``)
    POISONED = "poisoned"  # retried for the whole horizon; in the poison queue (``reason``), replayable


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
        Status.POISONED,
    }
)
_OPEN = (Status.ACCEPTED, Status.SENT_REALTIME, Status.DEFERRED, Status.RETRYING)
_ENDED = (Status.FAILED, Status.EXPIRED)
#: Statuses the recovery pass never re-drives (a poisoned one waits for an operator's replay).
ENDED_STATUSES = frozenset({*_ENDED, Status.POISONED})
#: Statuses an ack or a read replaces (the user has now seen it).
_UNSEEN = (
    Status.ACCEPTED, Status.SENT_REALTIME, Status.DEFERRED, Status.SUPPRESSED, Status.RETRYING,
    Status.POISONED,
)
#: Statuses a transient failure turns into ``retrying`` (or, past the horizon, ``poisoned``).
_RETRY_HEADLINE = (Status.ACCEPTED, Status.SENT_REALTIME, Status.DEFERRED, Status.RETRYING, Status.POISONED)


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


#: Entries a timeline keeps: the first (``accepted``) and the newest ones. A normal delivery has 3 to 6;
#: the bound only matters for a record that keeps failing and being retried.
MAX_TIMELINE_ENTRIES = 40
#: Longest reason kept in an entry (errors from services can be long).
MAX_REASON_LENGTH = 300

Detail = str | int | float | bool


@dataclass(frozen=True)
class TimelineEntry:
    """One recorded transition of a delivery: when, what (``name``), the status after it, and why."""

    seq: int  # 0 for the first entry of a record, one more for each entry after it
    at: float  # unix seconds
    name: str  # the Transition's name, e.g. "accepted", "claim", "realtime-sent", "push-sent"
    status: str  # the Status value after the transition
    reason: str
    details: Mapping[str, Detail] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The entry as stored and shown: ``{"seq", "at", "name", "status", "reason", "details"?}``."""
        entry: dict[str, Any] = {
            "seq": self.seq, "at": self.at, "name": self.name, "status": self.status, "reason": self.reason,
        }
        if self.details:
            entry["details"] = dict(self.details)
        return entry

    @classmethod
    def from_dict(cls, raw: object) -> TimelineEntry | None:
        """The entry :meth:`to_dict` wrote, or None when ``raw`` is not one."""
        if not isinstance(raw, dict):
            return None
        seq, at, name, status, reason = (raw.get(k) for k in ("seq", "at", "name", "status", "reason"))
        details = raw.get("details", {})
        if not (
            isinstance(seq, int) and not isinstance(seq, bool) and isinstance(at, int | float)
            and isinstance(name, str) and isinstance(status, str) and isinstance(reason, str)
            and isinstance(details, dict)
        ):
            return None
        kept = {str(k): v for k, v in details.items() if isinstance(v, str | int | float | bool)}
        return cls(seq, float(at), name, status, reason, kept)


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
    # Re-scheduled retries (``retrying``): when the next attempt is due (0 = none pending), how many
    # transient failures so far, since when, the last error, and which handling scheduled the retry.
    retry_at: float = 0.0
    attempts: int = 0
    failing_since: float = 0.0
    last_error: str = ""
    retry_claim_id: str = ""
    reason: str = ""  # why the delivery ended as it did (failed, poisoned)
    poisoned_at: float = 0.0  # when it was last put in the poison queue (0 = never)
    recover_at: float = 0.0  # when the recovery pass looks at the row (0 = never); see recovery_due
    # What happened so far; appended by decide() only, and ignored when states are compared.
    timeline: tuple[TimelineEntry, ...] = field(default=(), compare=False)

    def channel(self, channel: Channel) -> ChannelState:
        """The state of ``channel``."""
        state: ChannelState = getattr(self, channel.value)
        return state

    def with_channel(self, channel: Channel, state: ChannelState) -> DeliveryState:
        """A copy with ``channel`` replaced."""
        changes: dict[str, Any] = {channel.value: state}
        return _evolve(self, **changes)

    def may_send(self, channel: Channel, claim_id: str) -> bool:
        """True when the handling ``claim_id`` may make ``channel``'s send: it holds the unsent claim, or
        it recorded its in-app send ahead of making it (see :func:`sent_ahead`)."""
        return self.channel(channel).held_by(claim_id) or (
            channel is Channel.REALTIME and sent_ahead(self, claim_id)
        )

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
    claim_lease_seconds: float = 60.0
    recheck_seconds: int = 5  # the longest wait before looking again at a channel claimed elsewhere
    retract_retry_seconds: int = 30  # after a retract failed transiently
    defer_slack_seconds: float = 5.0  # a deferral's own wake-up may come this early (clock skew)
    retry_delay_seconds: int = 10  # the first re-scheduled retry; doubles with each failure ...
    retry_max_delay_seconds: int = 300  # ... up to this
    retry_horizon_seconds: int = 3600  # how long after the first transient failure retries go on


@dataclass(frozen=True)
class UserView:
    """The user as one decision sees them: presence, devices, and the preference gates per channel."""

    online: bool = False
    has_devices: bool = True
    in_app: Gate = ALLOW
    push: Gate = ALLOW
    connections: int | None = None  # the user's connections as read (the in-app send's record names them)


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
    """The user's client acknowledged the in-app message (over ``connection_id`` when known)."""

    claim_id: str = ""
    connection_id: str = ""


@dataclass(frozen=True)
class Read:
    """The user read the notification (inbox)."""

    claim_id: str = ""


@dataclass(frozen=True)
class Archived:
    """The user archived the notification, or deleted it (``deleted``), in the inbox."""

    claim_id: str = ""
    deleted: bool = False


@dataclass(frozen=True)
class RealtimeSent:
    """The in-app send under ``claim_id`` succeeded (to ``connections`` connections, when known)."""

    claim_id: str
    connections: int | None = None


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
    error: str = ""


@dataclass(frozen=True)
class SendInterrupted:
    """A send failed transiently beyond the in-invocation retries: give the claims back, retry later."""

    channel: Channel
    claim_id: str
    error: str = ""
    retry_after: float | None = None  # the service's Retry-After, if it sent one


@dataclass(frozen=True)
class Recovered:
    """The recovery pass found the row past its :func:`recovery_due` moment (a handler died, or a
    deadline or retry message was lost); ``user`` as the pass read them (LoadUser when None)."""

    claim_id: str
    user: UserView | None = None


Event = (
    Arrived | DeadlinePassed | Acked | Read | Archived | RealtimeSent | PushSent | RetractSent | SendFailed
    | SendInterrupted | Recovered
)
EVENT_TYPES: tuple[type[Event], ...] = (
    Arrived, DeadlinePassed, Acked, Read, Archived, RealtimeSent, PushSent, RetractSent, SendFailed,
    SendInterrupted, Recovered,
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
class ScheduleRetry:
    """Re-enqueue the notification to be delivered again after ``delay_seconds`` (status ``retrying``)."""

    delay_seconds: int


@dataclass(frozen=True)
class Poison:
    """Put the notification in the poison queue with ``reason`` in the envelope (status ``poisoned``)."""

    reason: str


@dataclass(frozen=True)
class RecordOutcome:
    """Record an outcome for the operator (the structured ``delivery`` log line)."""

    channel: str  # a Channel value, or "none"
    outcome: str
    level: int = logging.INFO
    detail: str = ""  # the rule that suppressed, the time a push was deferred to


Action = (
    SendRealtime | SendPush | SendRetract | ScheduleDeadline | Recheck | LoadUser | ScheduleRetry | Poison
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
    details: Mapping[str, Detail] = field(default_factory=dict)  # recorded with the timeline entry
    recorded: TimelineEntry | None = None  # the entry decide() appended (None: the state did not change)
    # The ``realtime-sent`` entry of an in-app send recorded with its claim (see sent_ahead), else None.
    recorded_ahead: TimelineEntry | None = None

    @property
    def entries(self) -> tuple[TimelineEntry, ...]:
        """The timeline entries this transition appended, oldest first."""
        return tuple(e for e in (self.recorded, self.recorded_ahead) if e is not None)

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
            {**self.details, **following.details},
        )


@dataclass(frozen=True)
class _Context:
    now: float
    rules: Rules


# Decisions -----------------------------------------------------------------------------------------------

Handler = Callable[[DeliveryState, Event, _Context], Transition]


def decide(state: DeliveryState, event: Event, now: float, rules: Rules) -> Transition:
    """The transition for ``event`` on ``state`` at ``now`` (pure; raise KeyError for an unknown pair).

    A transition that changes the state also appends its timeline entry (the only place that does). An
    ``auto`` in-app send is recorded with its claim, before it is made (:func:`sent_ahead`).
    """
    step = _decide_one(state, event, now, rules)
    claim_id = _claim_to_record_ahead(step, rules)
    if claim_id is None:
        return step
    user = getattr(event, "user", None)
    connections = user.connections if isinstance(user, UserView) else None
    sent = _decide_one(step.state, RealtimeSent(claim_id, connections), now, rules)
    return _evolve(step, state=sent.state, recorded_ahead=sent.recorded)


def sent_ahead(state: DeliveryState, claim_id: str) -> bool:
    """True when the handling ``claim_id`` recorded an ``auto`` in-app send that it may not have made yet.

    In ``auto`` (with an ack deadline) the in-app send is recorded as sent in the same write as its claim,
    before the call to Web PubSub, and nothing is written after it: the client's ack, which can only come
    after the send, then always finds the send recorded, so the two writes never meet on the ETag. A
    crash before the send leaves a row that says sent: its ack deadline (re-armed by the redelivered
    message, or the recovery pass) pushes it, so nothing is lost. A send that fails undoes the record
    (:func:`_unsend_ahead`): only the handling that recorded it can report that.
    """
    realtime = state.realtime
    return (
        bool(claim_id) and realtime.claim_id == claim_id and realtime.sent
        and state.delivery is Delivery.AUTO and state.status is Status.SENT_REALTIME
    )


def _claim_to_record_ahead(step: Transition, rules: Rules) -> str | None:
    """The claim of an ``auto`` in-app send ``step`` claims, when its send is recorded ahead (else None)."""
    state = step.state
    if state.delivery is not Delivery.AUTO or rules.ack_timeout_seconds <= 0 or state.push.sent:
        return None  # without an ack deadline nothing would push after a crash before the send
    if state.status not in (Status.ACCEPTED, Status.RETRYING):
        return None
    for action in step.actions:
        if isinstance(action, SendRealtime) and state.realtime.held_by(action.claim_id):
            return action.claim_id
    return None


def _unsend_ahead(state: DeliveryState, channel: Channel, claim_id: str) -> DeliveryState:
    """``state`` as if the in-app send ``claim_id`` recorded ahead had only been claimed (its send failed)."""
    if channel is not Channel.REALTIME or not sent_ahead(state, claim_id) or state.seen:
        return state
    status = Status.RETRYING if state.failing_since > 0 else Status.ACCEPTED
    unsent = _evolve(state.realtime, sent_at=0.0)
    return _evolve(state.with_channel(Channel.REALTIME, unsent), status=status)


def _decide_one(state: DeliveryState, event: Event, now: float, rules: Rules) -> Transition:
    handler = TRANSITIONS[(state.status, type(event))]
    step = handler(state, event, _Context(now, rules))
    after = step.state
    if after is state or after == state:
        return step
    if after.recover_at != state.recover_at and (
        _evolve(after, recover_at=state.recover_at) == state
    ):
        return step  # only the recovery moment changed (the pass found nothing stuck): no timeline entry
    # Every changed state says when the recovery pass should look at it if nothing else happens.
    due = recovery_due(after, rules)
    if due != after.recover_at:
        step = _evolve(step, state=_evolve(after, recover_at=due))
    recorded = _recorded(step, now)
    return _evolve(step, state=recorded, recorded=recorded.timeline[-1])


def recovery_due(state: DeliveryState, rules: Rules) -> float:
    """When ``state`` is stuck if nothing changes it before (unix seconds; 0 = never).

    That is: a claimed, unsent channel still to send once its lease has run out (its handler died); an
    ``auto`` push once the ack deadline is a lease overdue, a deferred push once its end is (the deadline
    message was lost); a scheduled retry once it is a lease overdue (the re-enqueued message was lost). A
    lease is the grace given to the normal path.
    """
    if state.status in ENDED_STATUSES:
        return 0.0
    lease = rules.claim_lease_seconds
    moments: list[float] = []
    if _retract_due(state) and state.retract.claimed_at > 0:
        moments.append(state.retract.claimed_at + lease)
    pending = _still_pending(state)
    moments += [state.channel(c).claimed_at + lease for c in pending if state.channel(c).claimed_at > 0]
    if pending and state.retry_at > 0:
        moments.append(state.retry_at + lease)
    if pending and state.status is Status.DEFERRED and state.deferred_until > 0:
        moments.append(state.deferred_until + lease)
    if (
        Channel.PUSH in pending
        and state.delivery is Delivery.AUTO
        and state.realtime.sent
        and state.status in (Status.SENT_REALTIME, Status.RETRYING)
        and rules.ack_timeout_seconds > 0
    ):
        moments.append(state.realtime.sent_at + rules.ack_timeout_seconds + lease)
    return max(moments, default=0.0)


def _still_pending(state: DeliveryState) -> list[Channel]:
    """The channels (realtime, push) a delivery may still send, retracts aside."""
    if state.status in ENDED_STATUSES:
        return []
    if state.delivery is Delivery.AUTO:
        if state.status in DONE_STATUSES or state.push.sent or state.seen:
            return []
        return [Channel.PUSH] if state.realtime.sent else [Channel.REALTIME, Channel.PUSH]
    if state.status is Status.SUPPRESSED:
        return []
    channels = {
        Delivery.PUSH: [Channel.PUSH], Delivery.REALTIME: [Channel.REALTIME]
    }.get(state.delivery, [Channel.REALTIME, Channel.PUSH])
    # A push is not sent once the user has seen the notification (see _push_step).
    return [c for c in channels if not state.channel(c).sent and not (c is Channel.PUSH and state.seen)]


def new_state(
    delivery: Delivery, expires_at: float | None, accepted_at: float | None = None
) -> DeliveryState:
    """The state of a record that does not exist yet (decide on it, then insert the result).

    With ``accepted_at`` the timeline starts with the ``accepted`` entry.
    """
    state = DeliveryState(delivery=delivery, expires_at=expires_at)
    if accepted_at is None:
        return state
    details: dict[str, Detail] = {"delivery": delivery.value}
    reason = f"accepted for {delivery.value} delivery"
    if expires_at is not None:
        details["expiresAt"] = expires_at
        reason += f", expires {max(0.0, expires_at - accepted_at):.0f} s after acceptance"
    entry = TimelineEntry(0, accepted_at, "accepted", Status.ACCEPTED.value, reason, details)
    return _evolve(state, timeline=(entry,))


def _recorded(step: Transition, now: float) -> DeliveryState:
    """``step.state`` with the step's timeline entry appended (bounded: the first and the newest kept)."""
    timeline = step.state.timeline
    seq = timeline[-1].seq + 1 if timeline else 0
    reason = step.reason
    if len(reason) > MAX_REASON_LENGTH:
        reason = reason[: MAX_REASON_LENGTH - 1] + "…"
    entry = TimelineEntry(seq, now, step.name, step.state.status.value, reason, dict(step.details))
    kept = (*timeline, entry)
    if len(kept) > MAX_TIMELINE_ENTRIES:
        kept = (kept[0], *kept[-(MAX_TIMELINE_ENTRIES - 1):])
    return _evolve(step.state, timeline=kept)


_CHANNEL_WORDS = {Channel.REALTIME: "in-app", Channel.PUSH: "push", Channel.RETRACT: "retract"}


def _words(channels: list[Channel]) -> str:
    return " and ".join(_CHANNEL_WORDS[c] for c in channels)


def _because(step: Transition, why: str, details: Mapping[str, Detail] | None = None) -> Transition:
    """``step`` with why it happened in front of its reason, and ``details`` added."""
    merged = {**step.details, **(details or {})}
    return _evolve(step, reason=f"{why}: {step.reason}", details=merged)


def _nothing(name: str, reason: str, state: DeliveryState) -> Transition:
    return Transition(name, reason, state)


def _ignore(reason: str) -> Handler:
    def handler(state: DeliveryState, event: Event, ctx: _Context) -> Transition:
        return _nothing("ignored", reason, state)

    return handler


def _expired(state: DeliveryState, ctx: _Context) -> bool:
    return state.expires_at is not None and ctx.now > state.expires_at


def _expire(state: DeliveryState, ctx: _Context) -> Transition:
    # A seen notification keeps its headline.
    status = state.status if state.seen else Status.EXPIRED
    late = ctx.now - (state.expires_at or ctx.now)
    return Transition(
        "expired",
        f"the time to live ran out {late:.0f} s before the notification could be sent",
        _evolve(state, status=status),
        (RecordOutcome("none", "expired"),),
        {"expiresAt": state.expires_at or 0.0},
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
    if claimed.retry_at and channel is not Channel.RETRACT:  # the scheduled retry is being made now
        claimed = _evolve(claimed, retry_at=0.0)
    return Transition("claim", f"claim {channel}", claimed, (_send(channel, claim_id),))


def _with_status(state: DeliveryState, status: Status, keep: tuple[Status, ...] = ()) -> DeliveryState:
    """``state`` with ``status``, unless a seen headline (or one of ``keep``) should stay."""
    if state.status in (Status.ACKED, Status.READ, Status.RETRACTED, *keep):
        return state
    return _evolve(state, status=status)


def _suppress(state: DeliveryState, channel: Channel, gate: Gate) -> Transition:
    # A muted in-app message suppresses the delivery only when nothing else may follow (realtime only).
    only_channel = channel is Channel.PUSH or state.delivery is Delivery.REALTIME
    status = Status.SUPPRESSED if only_channel else state.status
    next_state = _evolve(_with_status(state, status), suppressed_rule=gate.rule)
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
    next_state = _evolve(_with_status(state, Status.DEFERRED), deferred_until=gate.until)
    if not schedule:
        return _nothing("deferred", "push already deferred to the same time", state)
    next_state = _evolve(next_state, deferred_by=claim_id)
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
        return _expire(state, ctx)
    if user.push.kind is GateKind.DEFER:
        return _defer(state, user.push, claim_id, ctx)
    if not user.has_devices:
        no_devices = state.with_channel(Channel.PUSH, ChannelState(claim_id, ctx.now, ctx.now))
        no_devices = _evolve(
            _with_status(no_devices, Status.NO_DEVICES), push_outcome=PushOutcome.NO_DEVICES
        )
        return Transition(
            "no-devices", "not pushed: the user has no device registered for push", no_devices,
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
        return _expire(state, ctx)
    return _send_once(state, Channel.REALTIME, claim_id, ctx, via_deadline=False)


def _retract_due(state: DeliveryState) -> bool:
    return state.pushed and state.seen and not state.retract.sent


def _retract_step(state: DeliveryState, claim_id: str, ctx: _Context) -> Transition:
    return _send_once(state, Channel.RETRACT, claim_id, ctx, via_deadline=True)


def _and_retract(step: Transition, claim_id: str, ctx: _Context) -> Transition:
    """``step`` followed by the retract's claim, named after ``step``: the timeline and the webhooks show
    what happened (``read``, ``acked``, ``push-sent``), the reason adds the retract."""
    return _evolve(step.then(_retract_step(step.state, claim_id, ctx)), name=step.name)


def _arrived(state: DeliveryState, event: Event, ctx: _Context) -> Transition:
    assert isinstance(event, Arrived)
    claim, user = event.claim_id, event.user
    if _retract_due(state):
        return _retract_step(state, claim, ctx)
    mode = state.delivery
    why = f"delivery {mode.value}"
    if mode is Delivery.PUSH:
        return _because(_push_step(state, claim, user, ctx, via_deadline=False), why)
    if mode is Delivery.REALTIME:
        return _because(_realtime_step(state, claim, user, ctx), why)
    if mode is Delivery.BOTH:
        first = _realtime_step(state, claim, user, ctx)
        if first.state.status is Status.EXPIRED:
            return _because(first, why)
        second = _push_step(first.state, claim, user, ctx, via_deadline=False)
        if second.state.status is Status.EXPIRED and any(isinstance(a, SendRealtime) for a in first.actions):
            return _because(first, why)  # the in-app send goes on; the push is found expired on the next look
        return _because(first.then(second), why)
    return _arrived_auto(state, event, ctx)


def _arrived_auto(state: DeliveryState, event: Arrived, ctx: _Context) -> Transition:
    claim, user = event.claim_id, event.user
    if state.status in DONE_STATUSES or state.push.sent:
        return _nothing("done", f"already {state.status}", state)
    if state.push.held_by(claim) or _busy(state, Channel.PUSH, ctx):
        return _send_once(state, Channel.PUSH, claim, ctx, via_deadline=False)
    if sent_ahead(state, claim):  # our own record read back (a lost answer): the send is still to make
        return Transition("resume", "in-app recorded by this handler, not sent yet", state,
                          (SendRealtime(claim),))
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
        return _because(_realtime_step(state, claim, user, ctx), "the user is online")
    step = _push_step(state, claim, user, ctx, via_deadline=False)
    if not user.online:
        step = _because(step, "the user is offline", {"fallback": "offline"})
    if user.online and user.in_app.kind is not GateKind.ALLOW and step.state.status is not Status.EXPIRED:
        rule = step.state.suppressed_rule or user.in_app.rule
        noted = _evolve(step.state, suppressed_rule=rule)
        return _evolve(
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
    step = _push_step(state, event.claim_id, event.user, ctx, via_deadline=True)
    if state.status is Status.DEFERRED:
        return _because(step, "the quiet hours are over")
    if not state.realtime.sent:
        return _because(step, "the ack deadline passed before the in-app send was recorded",
                        {"fallback": "ack-deadline"})
    return _because(step, f"no ack within the {ctx.rules.ack_timeout_seconds} s ack deadline",
                    {"fallback": "ack-deadline"})


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
            reason = f"the user {kind} it in the inbox"
            details: dict[str, Detail] = {}
            if isinstance(event, Archived) and event.deleted:
                reason = "the user deleted it from the inbox"
                details["deleted"] = True
            if isinstance(event, Acked):
                reason = "the client acknowledged the in-app message"
                if event.connection_id:
                    reason += f" on connection {event.connection_id}"
                    details["connectionId"] = event.connection_id
            if state.pushed:
                reason += " (after the push went out)"
            first = Transition(kind, reason, _evolve(state, **changes),
                               (RecordOutcome(channel, kind),), details)
        if _retract_due(first.state):
            return _and_retract(first, event.claim_id, ctx)
        return first

    return handler


def _mark_sent(state: DeliveryState, channel: Channel, ctx: _Context) -> DeliveryState:
    current = state.channel(channel)
    if current.sent:
        return state
    return state.with_channel(channel, _evolve(current, sent_at=ctx.now))


def _realtime_sent(state: DeliveryState, event: Event, ctx: _Context) -> Transition:
    assert isinstance(event, RealtimeSent)
    next_state = _mark_sent(state, Channel.REALTIME, ctx)
    if next_state.status in (Status.ACCEPTED, Status.RETRYING):
        next_state = _evolve(next_state, status=Status.SENT_REALTIME)
    actions: list[Action] = [RecordOutcome(Channel.REALTIME.value, "sent")]
    if (
        state.delivery is Delivery.AUTO
        and ctx.rules.ack_timeout_seconds > 0
        and next_state.status is Status.SENT_REALTIME
        and not next_state.push.sent
    ):
        actions.append(ScheduleDeadline(ctx.rules.ack_timeout_seconds))
    reason = "sent in-app"
    details: dict[str, Detail] = {}
    if event.connections is not None:
        plural = "" if event.connections == 1 else "s"
        reason += f" to {event.connections} connection{plural}"
        details["connections"] = event.connections
    return Transition("realtime-sent", reason, next_state, tuple(actions), details)


def _push_sent(state: DeliveryState, event: Event, ctx: _Context) -> Transition:
    assert isinstance(event, PushSent)
    record = RecordOutcome(Channel.PUSH.value, event.outcome.value)
    if state.push.sent:  # recorded already (our own write whose answer was lost, or a late duplicate)
        step = Transition("push-sent", "the push was recorded before", state, (record,))
    else:
        next_state = _evolve(
            _with_status(_mark_sent(state, Channel.PUSH, ctx), Status(event.outcome.value)),
            push_outcome=event.outcome,
            nh_notification_id=event.nh_notification_id or state.nh_notification_id,
        )
        pushed = event.outcome is PushOutcome.PUSHED
        details: dict[str, Detail] = {}
        reason = "not pushed: the user has no device registered for push"
        if pushed:
            reason = "pushed through Notification Hubs"
            if event.nh_notification_id:
                reason += f" (notification id {event.nh_notification_id})"
                details["nhNotificationId"] = event.nh_notification_id
        step = Transition("push-sent" if pushed else "no-devices", reason, next_state, (record,), details)
    next_state = step.state
    if _retract_due(next_state):  # seen while the push was on its way
        return _and_retract(step, event.claim_id, ctx)
    return step


def _retract_sent(state: DeliveryState, event: Event, ctx: _Context) -> Transition:
    assert isinstance(event, RetractSent)
    if not state.pushed:
        return _nothing("ignored", "nothing was pushed, so nothing was retracted", state)
    next_state = _evolve(_mark_sent(state, Channel.RETRACT, ctx), status=Status.RETRACTED)
    return Transition(
        "retracted", "the silent retract push went out", next_state,
        (RecordOutcome(Channel.RETRACT.value, "retracted"),),
    )


def _send_failed(state: DeliveryState, event: Event, ctx: _Context) -> Transition:
    assert isinstance(event, SendFailed)
    step = _send_failed_step(state, event, ctx)
    details: dict[str, Detail] = {"channel": event.channel.value}
    if event.error:
        details["error"] = event.error
    if step.name == "realtime-failed" and step.state != state:
        details["fallback"] = "realtime-failed"
    error = f" ({event.error})" if event.error else ""
    return _evolve(step, reason=step.reason.replace("permanently", f"permanently{error}", 1)
                               if "permanently" in step.reason else step.reason + error,
                               details={**step.details, **details})


def _send_failed_step(state: DeliveryState, event: SendFailed, ctx: _Context) -> Transition:
    record = RecordOutcome(event.channel.value, "failed", logging.ERROR)
    recorded_ahead = state
    state = _unsend_ahead(state, event.channel, event.claim_id)
    if state.channel(event.channel).sent:
        return Transition("ignored", f"the {event.channel} was sent by another handler", state, (record,))
    # A failed channel that stays open gives its claim back: it is not stuck, so the recovery pass leaves it.
    released = state
    if state.channel(event.channel).held_by(event.claim_id):
        released = state.with_channel(event.channel, ChannelState())
    if event.channel is Channel.RETRACT:
        return Transition(
            "retract-failed", "the retract failed permanently; the push stays", released, (record,)
        )
    reason = f"the {event.channel} send failed permanently" + (f": {event.error}" if event.error else "")
    failed = _evolve(
        _with_status(state, Status.FAILED), reason=reason, last_error=event.error or state.last_error
    )
    if event.channel is Channel.PUSH or state.delivery is Delivery.REALTIME:
        return Transition("failed", reason, failed, (record,))
    if state.delivery is Delivery.BOTH:
        return Transition(
            "realtime-failed", "the in-app send failed; the push still goes", released, (record,)
        )
    # auto: fall back to push, unless the user acked or something else settled it meanwhile.
    if state.seen or state.status in DONE_STATUSES:
        return Transition(
            "realtime-failed", "the in-app send failed after the delivery settled", state, (record,)
        )
    fallback = _push_step(state, event.claim_id, event.user, ctx, via_deadline=False)
    if any(isinstance(a, LoadUser) for a in fallback.actions):  # asked before anything is changed
        return Transition("load-user", fallback.reason, recorded_ahead, (LoadUser(),))
    return Transition(
        "realtime-failed", f"the in-app send failed permanently; falling back to push: {fallback.reason}",
        fallback.state, (record, *fallback.actions), fallback.details,
    )


def _send_interrupted(state: DeliveryState, event: Event, ctx: _Context) -> Transition:
    assert isinstance(event, SendInterrupted)
    state = _unsend_ahead(state, event.channel, event.claim_id)
    released = state
    for channel in Channel:
        if state.channel(channel).held_by(event.claim_id):
            released = released.with_channel(channel, ChannelState())
    if event.channel is Channel.RETRACT:
        # A retract (sent from an ack or an inbox call, where no message would come back) is tried again
        # by a deadline message.
        return Transition(
            "released", "the retract failed transiently; claims given back for the retry", released,
            (RecordOutcome(event.channel.value, "retry", logging.WARNING),
             ScheduleDeadline(ctx.rules.retract_retry_seconds)),
        )
    if released == state:
        # Our own decision read back (a lost answer, a conflict) asks for the same action once more.
        ours = state.retry_claim_id == event.claim_id and state.status not in (Status.FAILED, Status.EXPIRED)
        if ours and state.retry_at > ctx.now:
            delay = max(1, math.ceil(state.retry_at - ctx.now))
            return Transition("retry-scheduled", f"retry in {delay} s", state, (ScheduleRetry(delay),))
        if ours and state.poisoned_at > 0:
            return Transition("poisoned", state.reason, state, (Poison(state.reason),))
        return _nothing("ignored", "the interrupted handler holds no claim any more", state)
    error = event.error or f"the {event.channel} send failed transiently"
    failing_since = state.failing_since or ctx.now
    attempts = state.attempts + 1
    base = _evolve(
        released, last_error=error, failing_since=failing_since, attempts=attempts, retry_at=0.0
    )
    if _expired(state, ctx):  # the TTL wins: an expired notification is not retried
        return _expire(base, ctx)
    if not _still_to_send(base):
        return Transition("released", "the send failed transiently, but nothing is left to send", base,
                          (RecordOutcome(event.channel.value, "retry", logging.WARNING),))
    horizon_end = failing_since + ctx.rules.retry_horizon_seconds
    headline = state.status in _RETRY_HEADLINE
    if ctx.now >= horizon_end:
        reason = (
            f"gave up after {attempts} attempts in {ctx.now - failing_since:.0f} s (retry horizon "
            f"{ctx.rules.retry_horizon_seconds} s); last error: {error}"
        )
        poisoned = _evolve(
            base, reason=reason, retry_claim_id=event.claim_id, poisoned_at=ctx.now
        )
        if headline:
            poisoned = _evolve(poisoned, status=Status.POISONED)
        return Transition(
            "poisoned", reason, poisoned,
            (RecordOutcome(event.channel.value, "poisoned", logging.ERROR), Poison(reason)),
            {"channel": event.channel.value, "error": error, "attempts": attempts, "poisoned": True},
        )
    delay = _retry_delay(state, event, ctx)
    latest = min(horizon_end, state.expires_at if state.expires_at is not None else math.inf)
    delay = max(1, min(delay, math.ceil(latest - ctx.now)))
    retrying = _evolve(base, retry_at=ctx.now + delay, retry_claim_id=event.claim_id)
    if headline:
        retrying = _evolve(retrying, status=Status.RETRYING)
    return Transition(
        "retry-scheduled",
        f"the {event.channel} send failed transiently ({error}); attempt {attempts + 1} in {delay} s",
        retrying,
        (RecordOutcome(event.channel.value, "retry", logging.WARNING), ScheduleRetry(delay)),
        {"channel": event.channel.value, "error": error, "attempt": attempts, "retryInSeconds": delay},
    )


def _still_to_send(state: DeliveryState) -> bool:
    if state.status in _ENDED:
        return False
    if state.status is Status.POISONED:
        return bool(_still_pending(_evolve(state, status=Status.RETRYING)))
    return bool(_still_pending(state))


def _retry_delay(state: DeliveryState, event: SendInterrupted, ctx: _Context) -> int:
    """Growing delays with a jitter drawn from the claim id (so retries after an outage spread out)."""
    rules = ctx.rules
    backoff = float(rules.retry_delay_seconds * 2 ** min(state.attempts, 30))
    jitter = 0.75 + 0.25 * (int(hashlib.sha256(event.claim_id.encode()).hexdigest()[:8], 16) / 2**32)
    delay = min(float(rules.retry_max_delay_seconds), backoff) * jitter
    if event.retry_after is not None:
        delay = max(delay, event.retry_after)
    return max(1, math.ceil(delay))


def _retry_due(state: DeliveryState, event: Event, ctx: _Context) -> Transition:
    """A retry (or a replay of a poisoned notification) arrived: send what is still to send."""
    assert isinstance(event, Arrived)
    base = _evolve(state, status=Status.RETRYING)
    if state.delivery is Delivery.AUTO and state.realtime.sent and not state.seen and not _retract_due(state):
        step = _push_step(base, event.claim_id, event.user, ctx, via_deadline=False)  # the push fallback
    else:
        step = _arrived(base, event, ctx)
    if step.state == base and not step.actions:
        return _nothing(step.name, step.reason, state)
    return step


def _recovered(state: DeliveryState, event: Event, ctx: _Context) -> Transition:
    """The recovery pass found the row stuck: re-drive it as the lost message or deadline would."""
    assert isinstance(event, Recovered)
    if event.user is None:
        return Transition("load-user", "re-driving needs the user's preferences", state, (LoadUser(),))
    arrived = Arrived(event.claim_id, event.user)
    deadline = DeadlinePassed(event.claim_id, event.user)
    step: Transition
    if state.status is Status.RETRYING:
        step = _retry_due(state, arrived, ctx)
    elif state.status is Status.DEFERRED and state.delivery is Delivery.AUTO:
        step = _deadline_passed(state, deadline, ctx)  # the user's gates say whether the quiet hours ended
    elif sent_ahead(state, event.claim_id):  # our own record read back: the in-app send is still to make
        step = _arrived(state, arrived, ctx)
    elif state.delivery is Delivery.AUTO and state.realtime.sent and state.status is Status.SENT_REALTIME:
        timeout = ctx.rules.ack_timeout_seconds
        if timeout > 0 and ctx.now >= state.realtime.sent_at + timeout:
            step = _deadline_passed(state, deadline, ctx)
        else:
            step = _nothing("not-due", "the ack deadline has not passed", state)
    else:
        step = _arrived(state, arrived, ctx)
    if not step.changed_from(state) and all(isinstance(a, RecordOutcome) for a in step.actions):
        # Nothing to re-drive now: look again when the row is due (if it is due later), else stop looking
        # until the next change says when.
        due = recovery_due(state, ctx.rules)
        idle = _evolve(state, recover_at=due if due > ctx.now else 0.0)
        return Transition("recovery-idle", f"nothing to re-drive ({step.reason})", idle, step.actions)
    return Transition("recovered", f"re-driven by the recovery pass: {step.reason}", step.state, step.actions)


_ANY = tuple(Status)
_NOT_ENDED = tuple(s for s in Status if s not in _ENDED)


def _rows(
    statuses: tuple[Status, ...], event: type[Event], handler: Handler
) -> dict[tuple[Status, type[Event]], Handler]:
    return {(status, event): handler for status in statuses}


_RECOVERABLE = tuple(s for s in Status if s not in ENDED_STATUSES)

TRANSITIONS: dict[tuple[Status, type[Event]], Handler] = {
    **_rows(tuple(s for s in _NOT_ENDED if s not in (Status.RETRYING, Status.POISONED)), Arrived, _arrived),
    **_rows((Status.RETRYING, Status.POISONED), Arrived, _retry_due),
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
    **_rows(_RECOVERABLE, Recovered, _recovered),
    **_rows(_ENDED, Recovered, _ignore("the delivery already ended")),
    **_rows((Status.POISONED,), Recovered, _ignore("in the poison queue; a replay re-drives it")),
}
