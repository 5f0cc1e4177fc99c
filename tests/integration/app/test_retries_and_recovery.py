"""Re-scheduled retries, the poison queue (envelope, ``python -m notify poison``) and the recovery pass, over
the wire: Azurite tables and queues and the Notification Hubs emulator's fault injection.

Time is the notifier's injected clock, so the retry horizon and the claim lease pass without waiting; the
queue messages the notifier writes are real and read back.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient
from azure.functions.queue import QueueMessage

from devstack.azurite import RunningAzurite, connection_string
from notify.__main__ import main as notify_cli
from notify.blueprints.notifier import process_notification_message
from notify.deliveries import DeliveryStore
from notify.delivery_machine import Arrived, Rules, Status, UserView, decide, new_state
from notify.message import parse_message
from notify.notifier import Notifier
from notify.poison import ENVELOPE_KEY, PoisonQueue
from notify.recovery import RecoveryPass
from notify.user_state import UserDirectory
from shared.errors import TransientError
from tests.integration.app.test_notifier import ACK_TIMEOUT, Stack, notification, queue_message, status_of

pytestmark = pytest.mark.integration

LEASE = 5.0
HORIZON = 30


class Clock:
    """The notifier's time, moved by the test."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def notifier_for(stack: Stack, clock: Clock, recheck: bool = True) -> Notifier:
    return Notifier(
        stack.deliveries, stack.users, stack.realtime, stack.push, stack.deadlines, ACK_TIMEOUT,
        clock=clock, recheck_queue=stack.notifications if recheck else None, claim_lease_seconds=LEASE,
        retry_delay_seconds=1, retry_max_delay_seconds=4, retry_horizon_seconds=HORIZON,
        poison_queue=PoisonQueue(stack.poison),
    )


def deliver(stack: Stack, notifier: Notifier, document: dict[str, Any] | bytes) -> None:
    process_notification_message(queue_message(document), notifier, stack.poison)


def row(stack: Stack, document: dict[str, Any]) -> Any:
    record = stack.deliveries.get(document["userId"], document["notificationId"])
    assert record is not None
    return record


def take_queued(stack: Stack, timeout: float = 10) -> QueueMessage:
    """The next message of the notifications queue, as the host hands it over."""
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        for message in stack.notifications.receive_messages(max_messages=1):
            stack.notifications.delete_message(message)
            body = base64.b64decode(message.content)
            return QueueMessage(id=message.id, body=body, dequeue_count=1)  # type: ignore[no-untyped-call]
        time.sleep(0.2)
    raise AssertionError("nothing arrived on the notifications queue")


def poisoned_messages(stack: Stack) -> list[Any]:
    with contextlib.suppress(ResourceNotFoundError):  # created with the first poison message
        return list(stack.poison.peek_messages(max_messages=32))
    return []


def cli(stack: Stack, connection_string: str, *args: str) -> int:
    """``python -m notify poison ...`` against the test's queue and table."""
    queue = stack.notifications.queue_name
    table = stack.deliveries_table.table_name
    return notify_cli(
        [*args, "--connection-string", connection_string, "--queue", queue, "--deliveries-table", table]
    )


def test_each_failed_attempt_is_re_scheduled_later_with_the_error_and_then_delivered_once(
    stack: Stack,
) -> None:
    clock = Clock()
    notifier = notifier_for(stack, clock)
    stack.register_device("rita")
    document = notification("rita", delivery="push")
    stack.nh.inject_fault(status=503, count=10_000, path=f"/{stack.hub}/messages")
    deliver(stack, notifier, document)
    first = row(stack, document).state
    assert first.status is Status.RETRYING and first.attempts == 1
    assert clock.now < first.retry_at <= clock.now + 1 and "503" in first.last_error

    retry = take_queued(stack)  # the re-enqueued notification, visible after its delay
    assert json.loads(retry.get_body())["notificationId"] == document["notificationId"]
    clock.advance(2)
    process_notification_message(retry, notifier, stack.poison)
    second = row(stack, document).state
    assert second.status is Status.RETRYING and second.attempts == 2
    assert second.retry_at - clock.now >= 1  # delays grow: 1 s, then 2 s (with jitter, rounded up)

    stack.nh.clear_faults()
    clock.advance(3)
    process_notification_message(take_queued(stack), notifier, stack.poison)
    assert len(stack.pushes_to("rita")) == 1
    assert status_of(stack, document) is Status.PUSHED
    assert row(stack, document).state.recover_at == 0.0
    assert poisoned_messages(stack) == []


def test_after_the_horizon_the_notification_is_poisoned_with_its_reason_and_a_replay_delivers_it_once(
    stack: Stack, azurite: RunningAzurite, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = Clock()
    notifier = notifier_for(stack, clock)
    stack.register_device("pia")
    document = notification("pia", delivery="push")
    stack.nh.inject_fault(status=503, count=10_000, path=f"/{stack.hub}/messages")
    deliver(stack, notifier, document)
    clock.advance(HORIZON + 1)
    deliver(stack, notifier, document)  # the last retry, after the horizon

    state = row(stack, document).state
    assert state.status is Status.POISONED
    assert "gave up after 2 attempts" in state.reason and "503" in state.reason
    [poisoned] = poisoned_messages(stack)
    wrapped = json.loads(poisoned.content)
    assert wrapped[ENVELOPE_KEY] == 1 and wrapped["reason"] == state.reason
    assert wrapped["message"]["notificationId"] == document["notificationId"]

    assert cli(stack, azurite.connection_string, "poison", "list", "--json") == 0
    [listed] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert listed["notificationId"] == document["notificationId"] and listed["reason"] == state.reason
    assert listed["record"]["status"] == "poisoned"
    assert poisoned_messages(stack) != []  # listing leaves the queue as it was

    stack.nh.clear_faults()
    stack.notifications.clear_messages()  # the re-scheduled copies; only the replay should arrive
    assert cli(stack, azurite.connection_string, "poison", "replay", "--id", document["notificationId"]) == 0
    assert "1 replayed" in capsys.readouterr().out
    assert poisoned_messages(stack) == []
    process_notification_message(take_queued(stack), notifier, stack.poison)
    assert len(stack.pushes_to("pia")) == 1 and status_of(stack, document) is Status.PUSHED

    # Idempotent: the same poison message replayed again (a duplicate, a crash mid-replay) sends nothing.
    PoisonQueue(stack.poison).put(json.dumps(wrapped).encode())
    assert cli(stack, azurite.connection_string, "poison", "replay", "--since", "10m") == 0
    process_notification_message(take_queued(stack), notifier, stack.poison)
    assert len(stack.pushes_to("pia")) == 1


def test_a_replay_during_the_outage_goes_back_to_the_poison_queue_at_once(stack: Stack) -> None:
    clock = Clock()
    notifier = notifier_for(stack, clock)
    stack.register_device("pam")
    document = notification("pam", delivery="push")
    stack.nh.inject_fault(status=503, count=10_000, path=f"/{stack.hub}/messages")
    deliver(stack, notifier, document)
    clock.advance(HORIZON + 1)
    deliver(stack, notifier, document)
    assert len(poisoned_messages(stack)) == 1
    PoisonQueue(stack.poison).replay(stack.notifications)  # the test's notifications queue encodes text
    assert poisoned_messages(stack) == []
    deliver(stack, notifier, document)  # the replay: one more attempt, still failing
    assert status_of(stack, document) is Status.POISONED and len(poisoned_messages(stack)) == 1
    stack.nh.clear_faults()


def test_the_ttl_wins_over_retries(stack: Stack) -> None:
    clock = Clock()
    notifier = notifier_for(stack, clock)
    stack.register_device("tom")
    document = notification("tom", delivery="push", ttlSeconds=2, enqueuedAt=clock.now)
    stack.nh.inject_fault(status=503, count=10_000, path=f"/{stack.hub}/messages")
    deliver(stack, notifier, document)
    assert row(stack, document).state.retry_at <= clock.now + 2  # no later than the expiry
    clock.advance(3)
    process_notification_message(take_queued(stack), notifier, stack.poison)
    stack.nh.clear_faults()
    assert status_of(stack, document) is Status.EXPIRED
    assert stack.pushes_to("tom") == [] and poisoned_messages(stack) == []


def test_without_a_queue_to_re_schedule_on_the_host_retries_the_message(stack: Stack) -> None:
    notifier = notifier_for(stack, Clock(), recheck=False)
    stack.register_device("ugo")
    stack.nh.inject_fault(status=503, count=10_000, path=f"/{stack.hub}/messages")
    with pytest.raises(TransientError):
        deliver(stack, notifier, notification("ugo", delivery="push"))
    stack.nh.clear_faults()


def dead_handler_claim(stack: Stack, document: dict[str, Any], now: float) -> None:
    """What a handler that claimed the push and then died leaves behind: the row, nothing sent."""
    parsed = parse_message(json.dumps(document).encode())
    step = decide(new_state(parsed.delivery, None), Arrived("dead-handler", UserView(online=False)), now,
                  Rules(ACK_TIMEOUT, LEASE))
    _, created = stack.deliveries.insert(parsed, step.state, now)
    assert created and step.state.recover_at == now + LEASE


def test_the_recovery_pass_re_drives_a_dead_handlers_claim_after_its_lease_once(stack: Stack) -> None:
    clock = Clock()
    notifier = notifier_for(stack, clock)
    recovery = RecoveryPass(stack.deliveries, notifier, clock)
    stack.register_device("vic")
    stuck = notification("vic", delivery="push")
    dead_handler_claim(stack, stuck, clock.now)
    done = notification("vic", delivery="push", notificationId="done-" + uuid.uuid4().hex)
    deliver(stack, notifier, done)  # pushed: never due again

    assert recovery.run().due == 0  # the claim is live: its handler may still be sending
    clock.advance(LEASE + 1)
    report = recovery.run()
    assert (report.due, report.recovered, report.failed) == (1, 1, 0)
    assert status_of(stack, stuck) is Status.PUSHED
    assert recovery.run().due == 0
    clock.advance(3600)
    assert recovery.run().due == 0
    pushed = [p for p in stack.pushes_to("vic")]
    assert len(pushed) == 2  # one each


def test_the_recovery_pass_pushes_when_the_ack_deadline_was_lost(stack: Stack, connect: Any) -> None:
    clock = Clock()
    notifier = notifier_for(stack, clock)
    recovery = RecoveryPass(stack.deliveries, notifier, clock)
    stack.register_device("wes")
    connect("wes")
    document = notification("wes")
    deliver(stack, notifier, document)  # sent in-app; the deadline message is in the deadlines queue
    stack.deadlines.clear_messages()  # ... and lost with the instance that had received it
    assert status_of(stack, document) is Status.SENT_REALTIME
    clock.advance(ACK_TIMEOUT + 1)
    assert recovery.run().due == 0  # the normal deadline gets a lease of grace first
    clock.advance(LEASE)
    assert recovery.run().recovered == 1
    assert len(stack.pushes_to("wes")) == 1 and status_of(stack, document) is Status.PUSHED


def test_a_handler_that_died_before_its_recorded_in_app_send_is_pushed_not_lost(
    stack: Stack, connect: Any
) -> None:
    """An auto in-app send is recorded with its claim, before the call: a death in between leaves a row
    that says sent. Nothing is lost: the push follows the ack deadline (here: the recovery pass)."""
    clock = Clock()
    notifier = notifier_for(stack, clock)
    recovery = RecoveryPass(stack.deliveries, notifier, clock)
    stack.register_device("xia")
    connect("xia")
    document = notification("xia")
    parsed = parse_message(json.dumps(document).encode())
    step = decide(new_state(parsed.delivery, None), Arrived("dead-handler", UserView(online=True)), clock.now,
                  Rules(ACK_TIMEOUT, LEASE))
    _, created = stack.deliveries.insert(parsed, step.state, clock.now)  # ... and died before the send
    assert created and status_of(stack, document) is Status.SENT_REALTIME
    clock.advance(ACK_TIMEOUT + LEASE + 1)
    assert recovery.run().recovered == 1
    assert len(stack.pushes_to("xia")) == 1 and status_of(stack, document) is Status.PUSHED
    assert recovery.run().due == 0


def test_rows_are_found_by_their_recovery_moment_only(stack: Stack) -> None:
    store: DeliveryStore = stack.deliveries
    now = time.time()
    for offset in (-5.0, 5.0):
        dead_handler_claim(stack, notification("xia", delivery="push"), now + offset - LEASE)
    due, resume = store.due_for_recovery(now, limit=10)
    assert [record.state.push.claimed_at + LEASE for record in due] == [now - 5.0]
    assert resume is None  # the scan reached the end


def test_a_scan_stops_after_its_pages_and_the_next_resumes_where_it_stopped(stack: Stack) -> None:
    """One call costs a bounded number of requests however large the table: a large table takes several
    passes, and together they find every row due, each once."""
    store: DeliveryStore = stack.deliveries
    now = time.time()
    for user in ("yan", "yara", "yusuf"):
        dead_handler_claim(stack, notification(user, delivery="push"), now - 1.0 - LEASE)
    users = {"yan", "yara", "yusuf"}
    seen: list[str] = []
    calls = 0
    due, resume = store.due_for_recovery(now, limit=1)
    while True:
        calls += 1
        assert len(due) <= 1
        seen += [record.user_id for record in due if record.user_id in users]
        if resume is None:
            break
        due, resume = store.due_for_recovery(now, limit=1, resume=resume)
    assert calls >= 3 and sorted(seen) == sorted(users)  # each once, over several calls
    first_page, _ = store.due_for_recovery(now, limit=10, max_pages=1)
    assert {record.user_id for record in first_page} >= users


@contextlib.contextmanager
def tables_down(stack: Stack, clock: Clock) -> Iterator[Notifier]:
    """A notifier whose Table storage refuses every connection (a port held bound but not listening, so
    nothing else can take it); its queues are the stack's."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        dead = connection_string("127.0.0.1", port, port, port)
        deliveries = TableClient.from_connection_string(dead, "deliveries", retry_total=0)
        devices = TableClient.from_connection_string(dead, "devices", retry_total=0)
        with deliveries, devices:
            yield Notifier(
                DeliveryStore(deliveries), UserDirectory(devices), stack.realtime, stack.push,
                stack.deadlines, ACK_TIMEOUT, clock=clock, recheck_queue=stack.notifications,
                claim_lease_seconds=LEASE,
                retry_delay_seconds=1, retry_max_delay_seconds=4, retry_horizon_seconds=HORIZON,
                poison_queue=PoisonQueue(stack.poison),
            )


def inserted_message(document: dict[str, Any], inserted: float) -> QueueMessage:
    body = json.dumps(document).encode()
    return QueueMessage(  # type: ignore[no-untyped-call]
        id=str(uuid.uuid4()), body=body, dequeue_count=1, insertion_time=datetime.fromtimestamp(inserted, UTC)
    )


def test_a_table_storage_outage_re_schedules_the_message_instead_of_failing_it(stack: Stack) -> None:
    clock = Clock()
    stack.register_device("yan")
    document = notification("yan", delivery="push")
    del document["enqueuedAt"]  # a producer that does not stamp it: the queue's insertion time counts
    inserted = clock.now - 2
    with tables_down(stack, clock) as notifier:
        process_notification_message(inserted_message(document, inserted), notifier, stack.poison)
    assert stack.notifications.peek_messages() == []  # re-enqueued invisible, for the retry delay
    retry = take_queued(stack)
    copy = json.loads(retry.get_body())
    assert copy["notificationId"] == document["notificationId"]
    assert copy["enqueuedAt"] == pytest.approx(inserted, abs=1e-3)
    assert poisoned_messages(stack) == [] and stack.pushes_to("yan") == []

    process_notification_message(retry, notifier_for(stack, clock), stack.poison)  # the tables are back
    assert status_of(stack, document) is Status.PUSHED and len(stack.pushes_to("yan")) == 1


def test_a_table_storage_outage_past_the_horizon_poisons_with_the_reason_and_replays_once(
    stack: Stack, azurite: RunningAzurite
) -> None:
    clock = Clock()
    stack.register_device("zed")
    document = notification("zed", delivery="push", enqueuedAt=clock.now - HORIZON - 1)
    with tables_down(stack, clock) as notifier:
        process_notification_message(queue_message(document), notifier, stack.poison)
    [message] = poisoned_messages(stack)
    wrapped = json.loads(message.content)
    assert wrapped[ENVELOPE_KEY] == 1 and wrapped["notificationId"] == document["notificationId"]
    assert f"retry horizon {HORIZON} s" in wrapped["reason"] and "ServiceRequestError" in wrapped["reason"]
    assert stack.notifications.peek_messages() == []  # not re-scheduled as well

    assert cli(stack, azurite.connection_string, "poison", "replay", "--id", document["notificationId"]) == 0
    process_notification_message(take_queued(stack), notifier_for(stack, clock), stack.poison)
    assert status_of(stack, document) is Status.PUSHED and len(stack.pushes_to("zed")) == 1
    assert poisoned_messages(stack) == []


def test_an_expired_notification_is_not_re_scheduled_during_a_table_outage(stack: Stack) -> None:
    clock = Clock()
    document = notification("abe", delivery="push", ttlSeconds=60, enqueuedAt=clock.now - 61)
    with tables_down(stack, clock) as notifier:
        process_notification_message(queue_message(document), notifier, stack.poison)
    [message] = poisoned_messages(stack)
    assert "ttlSeconds ran out" in json.loads(message.content)["reason"]
    assert stack.notifications.peek_messages() == []
