"""DeliveryStore against Azurite, driven by the state machine as the notifier drives it: conditional insert,
channel claims that only one writer wins, release, lease expiry, acks, and conflicts decided again."""

from __future__ import annotations

import time

import pytest
from azure.data.tables import TableClient

from notify.deliveries import DeliveryRecord, DeliveryStore, expiry_of
from notify.delivery_machine import (
    Acked,
    Arrived,
    Channel,
    DeadlinePassed,
    Event,
    PushOutcome,
    PushSent,
    RealtimeSent,
    Recheck,
    Rules,
    ScheduleDeadline,
    SendInterrupted,
    SendPush,
    SendRealtime,
    Status,
    Transition,
    UserView,
    decide,
    new_state,
)
from notify.model import Delivery, Notification
from notify.notifier import advance

pytestmark = pytest.mark.integration
RULES = Rules(ack_timeout_seconds=10, claim_lease_seconds=120)


@pytest.fixture
def store(azurite_table: TableClient) -> DeliveryStore:
    return DeliveryStore(azurite_table)


def make(delivery: Delivery = Delivery.BOTH, **kwargs: object) -> Notification:
    fields: dict[str, object] = {
        "notification_id": "n1",
        "user_id": "Alice/Ü",
        "title": "Hello",
        "body": "ü" * 20000,  # more than a string property may hold: stored as binary content
        "type": "chat",
        "data": {"room": "r1", "n": [1, 2]},
        "delivery": delivery,
        "ttl_seconds": 60,
        "enqueued_at": time.time(),
    }
    fields.update(kwargs)
    return Notification(**fields)  # type: ignore[arg-type]


def insert_arrived(
    store: DeliveryStore, notification: Notification, claim_id: str, online: bool | None = None
) -> tuple[DeliveryRecord, bool]:
    """What the notifier does with a message: decide on the row to be, insert the result."""
    now = time.time()
    row_to_be = new_state(notification.delivery, expiry_of(notification, now))
    step = decide(row_to_be, Arrived(claim_id, UserView(online=bool(online))), now, RULES)
    return store.insert(notification, step.state, now)


def step(
    store: DeliveryStore, record: DeliveryRecord, event: Event, at: float | None = None
) -> tuple[DeliveryRecord, Transition]:
    """Decide and write as the notifier does (at ``at``, or now)."""
    return advance(store, record, event, RULES, lambda: at or time.time())


def test_insert_once_and_round_trip_the_notification(store: DeliveryStore) -> None:
    notification = make()
    record, created = insert_arrived(store, notification, "c1")
    again, created_again = insert_arrived(store, notification, "c2")
    assert created and not created_again
    assert again.notification() == notification
    assert again.state == record.state  # the second insert changed nothing
    assert store.get("Alice/Ü", "n1") is not None
    assert store.get("someone-else", "n1") is None


def test_the_insert_carries_the_first_claims_and_a_redelivery_finds_them_busy(store: DeliveryStore) -> None:
    record, _ = insert_arrived(store, make(), "c1")
    assert record.state.realtime.claim_id == record.state.push.claim_id == "c1"
    existing, created = insert_arrived(store, make(), "c2")
    assert not created
    _, decision = step(store, existing, Arrived("c2"))
    assert isinstance(decision.actions[-1], Recheck) and not any(
        isinstance(a, SendPush | SendRealtime) for a in decision.actions
    )
    mine, decision = step(store, existing, Arrived("c1"))  # the first handler, seeing its own claims
    assert decision.actions == (SendRealtime("c1"), SendPush("c1"))
    assert mine.etag == existing.etag  # nothing to write


def test_a_channel_is_claimed_only_once(store: DeliveryStore) -> None:
    record, _ = store.insert(make(Delivery.PUSH), new_state(Delivery.PUSH, None), time.time())
    # Two handlers hold the same snapshot: the first write wins the ETag, the second is told to look again.
    winner = decide(record.state, Arrived("c1"), time.time(), RULES)
    loser = decide(record.state, Arrived("c2"), time.time(), RULES)
    assert store.write(record, winner.state) is not None
    assert store.write(record, loser.state) is None
    _, decision = step(store, record, Arrived("c2"))  # advance reads again and decides again
    assert [type(a) for a in decision.actions] == [Recheck]


def test_a_sent_channel_is_never_claimed_again(store: DeliveryStore) -> None:
    record, _ = insert_arrived(store, make(Delivery.REALTIME), "c1")
    sent, _ = step(store, record, RealtimeSent("c1"))
    assert sent.state.realtime.sent and sent.status == Status.SENT_REALTIME
    fresh = store.get("Alice/Ü", "n1")
    assert fresh is not None and fresh.state == sent.state
    far_later = time.time() + 10 * RULES.claim_lease_seconds
    _, again = step(store, fresh, Arrived("c2"), at=far_later)
    assert again.actions == ()


def test_an_interrupted_send_gives_the_claim_back_for_the_retry(store: DeliveryStore) -> None:
    record, _ = insert_arrived(store, make(Delivery.PUSH), "c1")
    released, _ = step(store, record, SendInterrupted(Channel.PUSH, "c1"))
    current = store.get("Alice/Ü", "n1")
    assert current is not None and current.state.push.claimed_at == 0 and current.state == released.state
    _, decision = step(store, current, Arrived("c2"))
    assert decision.actions == (SendPush("c2"),)


def test_a_stale_claim_expires_after_the_lease(store: DeliveryStore) -> None:
    record, _ = insert_arrived(store, make(Delivery.PUSH, ttl_seconds=None), "dead")
    _, busy = step(store, record, Arrived("c2"))
    assert [type(a) for a in busy.actions] == [Recheck]
    later = record.state.push.claimed_at + RULES.claim_lease_seconds + 1
    taken, decision = step(store, record, Arrived("c2"), at=later)
    assert decision.actions == (SendPush("c2"),) and taken.state.push.claim_id == "c2"


def test_a_deadline_decided_on_a_snapshot_from_before_the_ack_pushes_nothing(store: DeliveryStore) -> None:
    record, _ = insert_arrived(store, make(Delivery.AUTO), "c1", online=True)
    record, decision = step(store, record, RealtimeSent("c1"))
    assert ScheduleDeadline(10) in decision.actions
    current = store.get("Alice/Ü", "n1")
    assert current is not None
    step(store, current, Acked())
    # ``record`` predates the ack: the write conflicts, the row is read again and the push is not claimed.
    after, decision = step(store, record, DeadlinePassed("c2", UserView()))
    assert decision.actions == () and after.status == Status.ACKED and not after.state.push.claim_id


def test_an_ack_is_only_for_the_owner(store: DeliveryStore) -> None:
    insert_arrived(store, make(), "c1")
    assert store.get("mallory", "n1") is None
    record = store.get("Alice/Ü", "n1")
    assert record is not None
    acked, _ = step(store, record, Acked())
    assert acked.state.acked and acked.status == Status.ACKED


def test_a_push_after_the_ack_keeps_the_acked_status(store: DeliveryStore) -> None:
    record, _ = insert_arrived(store, make(), "c1")
    record, _ = step(store, record, Acked())
    updated, _ = step(store, record, PushSent("c1", PushOutcome.PUSHED, "nh-1"))
    assert updated.status == Status.ACKED and updated.state.push.sent
    stored = store.get("Alice/Ü", "n1")
    assert stored is not None and stored.entity["nhNotificationId"] == "nh-1"
