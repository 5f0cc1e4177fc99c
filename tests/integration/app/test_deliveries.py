"""DeliveryStore against Azurite: conditional insert, channel claims with ETags, release, acks."""

from __future__ import annotations

import pytest
from azure.data.tables import TableClient

from notify.deliveries import Channel, DeliveryStore, Status
from notify.model import Delivery, Notification

pytestmark = pytest.mark.integration


@pytest.fixture
def table(azurite_table: TableClient) -> TableClient:
    return azurite_table


@pytest.fixture
def store(table: TableClient) -> DeliveryStore:
    return DeliveryStore(table)


def make(notification_id: str = "n1", user_id: str = "Alice/Ü", **kwargs: object) -> Notification:
    fields: dict[str, object] = {
        "notification_id": notification_id,
        "user_id": user_id,
        "title": "Hello",
        "body": "ü" * 20000,  # more than a string property may hold: stored as binary content
        "type": "chat",
        "data": {"room": "r1", "n": [1, 2]},
        "delivery": Delivery.BOTH,
        "ttl_seconds": 60,
        "enqueued_at": 1000.5,
    }
    fields.update(kwargs)
    return Notification(**fields)  # type: ignore[arg-type]


def test_accept_inserts_once_and_round_trips_the_notification(store: DeliveryStore) -> None:
    notification = make()
    record, created = store.accept(notification)
    again, created_again = store.accept(notification)
    assert created and not created_again
    assert record.status == again.status == Status.ACCEPTED
    assert again.notification() == notification
    assert store.get("Alice/Ü", "n1") is not None
    assert store.get("someone-else", "n1") is None


def test_accept_and_claim_inserts_the_row_already_claimed(store: DeliveryStore) -> None:
    notification = make()
    record, claim = store.accept_and_claim(notification, Channel.PUSH)
    assert claim is not None and claim.channel is Channel.PUSH and record.claim_id(Channel.PUSH)
    again, no_claim = store.accept_and_claim(notification, Channel.PUSH)  # a redelivery
    assert no_claim is None and again.notification() == notification
    assert store.claim_is_live(again, Channel.PUSH)
    assert store.claim(again, Channel.PUSH) is None  # held by the first handler
    sent = store.mark_sent(claim, Status.PUSHED)
    assert sent.sent(Channel.PUSH) and sent.status == Status.PUSHED
    assert store.claim(sent, Channel.REALTIME) is not None  # only the first channel was claimed


def test_a_channel_is_claimed_only_once(store: DeliveryStore) -> None:
    record, _ = store.accept(make())
    first = store.claim(record, Channel.PUSH)
    # A concurrent handler holding the same (now stale) snapshot loses the ETag race.
    second = store.claim(record, Channel.PUSH)
    assert first is not None
    assert second is None
    # The other channel is independent.
    assert store.claim(record, Channel.REALTIME) is not None


def test_a_sent_channel_is_never_claimed_again(store: DeliveryStore) -> None:
    record, _ = store.accept(make())
    claim = store.claim(record, Channel.REALTIME)
    assert claim is not None
    sent = store.mark_sent(claim, Status.SENT_REALTIME)
    assert sent.sent(Channel.REALTIME) and sent.status == Status.SENT_REALTIME
    fresh = store.get("Alice/Ü", "n1")
    assert fresh is not None and fresh.status == Status.SENT_REALTIME
    assert store.claim(fresh, Channel.REALTIME) is None


def test_release_lets_a_retry_claim_again(store: DeliveryStore) -> None:
    record, _ = store.accept(make())
    claim = store.claim(record, Channel.PUSH)
    assert claim is not None
    store.release(claim)
    current = store.get("Alice/Ü", "n1")
    assert current is not None and current.claimed_at(Channel.PUSH) == 0
    assert store.claim(current, Channel.PUSH) is not None


def test_a_stale_claim_expires_after_the_lease(table: TableClient, store: DeliveryStore) -> None:
    record, _ = store.accept(make())
    assert store.claim(record, Channel.PUSH) is not None
    fresh_look = DeliveryStore(table, claim_lease_seconds=3600)
    current = fresh_look.get("Alice/Ü", "n1")
    assert current is not None and fresh_look.claim(current, Channel.PUSH) is None
    # Seen from two hours later, the claim is past its lease and may be taken over.
    two_hours_later = current.claimed_at(Channel.PUSH) + 7200
    later = DeliveryStore(table, claim_lease_seconds=3600, clock=lambda: two_hours_later)
    assert later.claim(current, Channel.PUSH) is not None


def test_claim_respects_the_allowed_predicate_on_the_current_row(store: DeliveryStore) -> None:
    record, _ = store.accept(make())
    assert store.mark_acked("Alice/Ü", "n1")
    # The snapshot predates the ack: the ETag conflict makes the store re-read and re-decide.
    assert store.claim(record, Channel.PUSH, allowed=lambda r: not r.acked) is None


def test_ack_only_for_the_owner(store: DeliveryStore) -> None:
    store.accept(make())
    assert not store.mark_acked("mallory", "n1")
    assert store.mark_acked("Alice/Ü", "n1")
    current = store.get("Alice/Ü", "n1")
    assert current is not None and current.acked and current.status == Status.ACKED


def test_push_after_ack_keeps_acked_status(store: DeliveryStore) -> None:
    record, _ = store.accept(make())
    store.mark_acked("Alice/Ü", "n1")
    claim = store.claim(record, Channel.PUSH)
    assert claim is not None
    updated = store.mark_sent(claim, Status.PUSHED, nhNotificationId="nh-1")
    assert updated.status == Status.ACKED and updated.sent(Channel.PUSH)
    assert updated.entity["nhNotificationId"] == "nh-1"
