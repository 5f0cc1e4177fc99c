"""Webhooks over the wire: the outbox and the dispatcher on an Azurite queue, POSTing to a real HTTP
receiver that verifies every signature with two independent implementations (tests/webhook_receiver.py)."""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from devstack.azurite import RunningAzurite
from notify.delivery_machine import TimelineEntry
from notify.webhooks import DispatchResult, WebhookDispatcher, WebhookOutbox, event_id, signed_request
from shared.settings import WebhookSettings, webhook_secret_key
from tests.webhook_receiver import WebhookReceiver, running_receiver

pytestmark = pytest.mark.integration
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OLD_SECRET = "whsec_" + base64.b64encode(b"an older secret of 32 bytes!!!!!").decode()


@dataclass
class Hooks:
    outbox: WebhookOutbox
    queue: QueueClient
    poison: QueueClient

    def dispatcher(self, url: str | None, retry_seconds: int = 600, secrets: tuple[str, ...] = (SECRET,),
                   clock: Callable[[], float] = time.time) -> WebhookDispatcher:
        settings = WebhookSettings(
            url=url, secrets=tuple(webhook_secret_key(s) for s in secrets), queue=self.queue.queue_name,
            retry_seconds=retry_seconds, backoff_seconds=0,
        )
        return WebhookDispatcher(settings, self.queue, self.poison, clock=clock)

    def step(self, dispatcher: WebhookDispatcher) -> DispatchResult | None:
        """Run the trigger on the next message, as the host would (None when the queue is empty)."""
        batch = list(self.queue.receive_messages(max_messages=1))
        give_up = time.monotonic() + 10
        while not batch and self.queue.get_queue_properties().approximate_message_count:
            assert time.monotonic() < give_up, "a message never became visible"
            time.sleep(0.1)  # a follow-up message, held back for a second
            batch = list(self.queue.receive_messages(max_messages=1))
        if not batch:
            return None
        [message] = batch
        result = dispatcher.dispatch(base64.b64decode(message.content))
        self.queue.delete_message(message)
        return result

    def drain(self, dispatcher: WebhookDispatcher, limit: int = 20) -> list[DispatchResult]:
        """Run the trigger on each message until the queue is empty."""
        results: list[DispatchResult] = []
        for _ in range(limit):
            result = self.step(dispatcher)
            if result is None:
                return results
            results.append(result)
        raise AssertionError("the webhook queue never drained")

    def poisoned(self) -> list[dict[str, Any]]:
        with contextlib.suppress(ResourceNotFoundError):
            messages = self.poison.receive_messages(max_messages=32)
            return [json.loads(base64.b64decode(m.content)) for m in messages]
        return []


@pytest.fixture
def hooks(azurite: RunningAzurite, unique_name: Callable[[str], str]) -> Iterator[Hooks]:
    def queue(name: str) -> QueueClient:
        return QueueClient.from_connection_string(
            azurite.connection_string, name, message_encode_policy=TextBase64EncodePolicy()
        )

    name = unique_name("webhooks")
    main, poison = queue(name), queue(name + "-poison")  # both created on first use
    try:
        yield Hooks(WebhookOutbox(main), main, poison)
    finally:
        for each in (main, poison):
            with contextlib.suppress(ResourceNotFoundError):
                each.delete_queue()


def entries(*names: str, start: int = 0) -> list[TimelineEntry]:
    now = time.time()
    return [
        TimelineEntry(start + i, now + i / 1000, name, "accepted", f"{name} happened", {"n": i})
        for i, name in enumerate(names)
    ]


def publish_two_notifications(hooks: Hooks) -> None:
    hooks.outbox.publish("alice", "n-1", entries("accepted", "claim", "realtime-sent"))
    hooks.outbox.publish("alice", "n-1", entries("acked", start=3))
    hooks.outbox.publish("bob/ü", "n-2", entries("accepted", "claim", "push-sent"))


def assert_each_event_once_in_order(receiver: WebhookReceiver, by_sequence: bool = False) -> None:
    """Each event exactly once, in order (``by_sequence``: in the order of data.sequence, after retries)."""
    ids = [e["id"] for e in receiver.events()]
    assert len(ids) == len(set(ids)) == 7, "each event exactly once"
    first = receiver.of("n-1")
    if by_sequence:
        first.sort(key=lambda e: e["data"]["sequence"])
    assert [e["data"]["sequence"] for e in first] == [0, 1, 2, 3]
    assert [e["type"] for e in first] == [
        "azure-notify.delivery.accepted", "azure-notify.delivery.claim",
        "azure-notify.delivery.realtime-sent", "azure-notify.delivery.acked",
    ]
    assert [e["id"] for e in first] == [event_id("alice", "n-1", seq) for seq in range(4)]
    second = receiver.of("n-2")
    assert [e["data"]["name"] for e in second] == ["accepted", "claim", "push-sent"]
    assert second[0]["subject"] == "users/bob%2F%C3%BC/notifications/n-2"
    assert second[0]["data"]["userId"] == "bob/ü"
    assert receiver.rejected == []


def test_every_event_arrives_signed_in_order(hooks: Hooks) -> None:
    publish_two_notifications(hooks)
    with running_receiver(SECRET) as receiver:
        results = hooks.drain(hooks.dispatcher(receiver.url))
    assert [r.delivered for r in results] == [3, 3, 1]  # n-1's follow-up (its ack) is held back a second
    assert_each_event_once_in_order(receiver)
    event = receiver.events()[0]
    assert event["specversion"] == "1.0" and event["source"] == "/azure-notify/deliveries"
    assert event["datacontenttype"] == "application/json" and event["time"].endswith("Z")
    headers = {k.lower(): v for k, v in receiver.accepted[0].headers.items()}
    assert headers["content-type"] == "application/cloudevents+json; charset=utf-8"
    assert headers["webhook-id"] == event["id"]


def test_a_receiver_failing_three_times_still_gets_each_event_exactly_once(hooks: Hooks) -> None:
    publish_two_notifications(hooks)
    # Requests 2, 3 and 4 fail: the first message fails after one accepted event, then twice more.
    with running_receiver(SECRET, fail_requests={2, 3, 4}) as receiver:
        results = hooks.drain(hooks.dispatcher(receiver.url))
    assert receiver.failed == 3
    # The first message fails after one accepted event: only the other two are retried.
    assert (results[0].delivered, results[0].retried) == (1, 2)
    assert sum(r.delivered for r in results) == 7 and sum(r.retried for r in results) >= 3
    # A retried remainder goes to the back of the queue: later messages may overtake it.
    assert_each_event_once_in_order(receiver, by_sequence=True)


def test_events_that_keep_failing_go_to_the_poison_queue_with_the_reason(hooks: Hooks) -> None:
    hooks.outbox.publish("carol", "n-3", entries("accepted", "claim"))
    offset = [0.0]
    with running_receiver(SECRET, fail_next=100) as receiver:
        dispatcher = hooks.dispatcher(receiver.url, retry_seconds=600, clock=lambda: time.time() + offset[0])
        first = hooks.step(dispatcher)
        offset[0] = 700.0  # the retry budget has run out by the next attempt
        second = hooks.step(dispatcher)
        assert hooks.step(dispatcher) is None
    assert first == DispatchResult(retried=2) and second == DispatchResult(poisoned=2)
    [poisoned] = hooks.poisoned()
    assert poisoned["reason"].startswith("gave up after 2 attempts")
    assert poisoned["lastError"] == "the receiver answered HTTP 500"
    assert (poisoned["userId"], poisoned["notificationId"]) == ("carol", "n-3")
    assert [e["name"] for e in poisoned["events"]] == ["accepted", "claim"]
    assert receiver.events() == []


def test_without_webhook_url_and_for_a_malformed_message_the_poison_queue_says_why(hooks: Hooks) -> None:
    hooks.outbox.publish("dave", "n-4", entries("accepted"))
    hooks.queue.send_message("{not json")
    hooks.drain(hooks.dispatcher(None))
    reasons = sorted(p["reason"] for p in hooks.poisoned())
    assert reasons == ["WEBHOOK_URL is not set: webhooks are off", "malformed message: not UTF-8 JSON"]


def test_rotation_signs_with_each_secret_and_stale_or_tampered_requests_are_refused(hooks: Hooks) -> None:
    hooks.outbox.publish("erin", "n-5", entries("accepted"))
    with running_receiver(OLD_SECRET) as old_side:  # a receiver that still has the previous secret
        hooks.drain(hooks.dispatcher(old_side.url, secrets=(SECRET, OLD_SECRET)))
        assert len(old_side.events()) == 1 and old_side.rejected == []
        headers = old_side.accepted[0].headers
        assert len(headers["webhook-signature"].split()) == 2
        keys = [webhook_secret_key(OLD_SECRET)]
        event = old_side.events()[0]
        stale_body, stale = signed_request(keys, event, int(time.time()) - 600)
        assert requests.post(old_side.url, data=stale_body, headers=stale, timeout=5).status_code == 401
        body, fresh = signed_request(keys, event, int(time.time()))
        assert requests.post(old_side.url, data=body.replace(b"erin", b"eve"), headers=fresh,
                             timeout=5).status_code == 401
        assert requests.post(old_side.url, data=body, headers=fresh, timeout=5).status_code == 204
    assert len(old_side.rejected) == 2 and "too old" in old_side.rejected[0]
