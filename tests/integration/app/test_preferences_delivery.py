"""Preferences, quiet hours, critical notifications and retracts through the real notifier, over the wire:
Azurite, a real WebSocket client on the Web PubSub emulator, the NH emulator's push sink."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from notify.blueprints.notifier import process_deadline_message
from notify.blueprints.presence import handle_ack
from notify.delivery_machine import Status
from notify.notifier import Notifier
from notify.preferences import parse_preferences
from shared.settings import NotificationTypeSettings
from tests.integration.app import test_notifier as wire
from tests.integration.app.test_notifier import (
    ACK_TIMEOUT,
    Stack,
    deliver_with,
    notification,
    retracts,
    system_event,
    take_deadline,
)

pytestmark = pytest.mark.integration
stack = wire.stack  # the notifier's stack over the wire, and real WebSocket clients for its users
connect = wire.connect

APNS_TOKEN_FOR_TESTS = "0b" * 32
TYPES = {
    "security": NotificationTypeSettings(critical=True),
    "digest": NotificationTypeSettings(priority="normal"),
}


def notifier_for(stack: Stack) -> Notifier:
    return Notifier(
        stack.deliveries, stack.users, stack.realtime, stack.push, stack.deadlines, ACK_TIMEOUT,
        recheck_queue=stack.notifications,
        type_settings=lambda t: TYPES.get(t, NotificationTypeSettings()),
    )


def prefer(stack: Stack, user_id: str, document: dict[str, Any]) -> None:
    stack.users.replace_preferences(user_id, parse_preferences(document))


def record_of(stack: Stack, document: dict[str, Any]) -> Any:
    record = stack.deliveries.get(document["userId"], document["notificationId"])
    assert record is not None
    return record


def register_both(stack: Stack, user_id: str) -> None:
    stack.register_device(user_id)  # fcmv1
    stack.devices.register(user_id, "ios-" + uuid.uuid4().hex[:8], "apns", APNS_TOKEN_FOR_TESTS)


def alerts(stack: Stack, user_id: str) -> list[dict[str, Any]]:
    return [p for p in stack.pushes_to(user_id) if p["template"] == "notify-v1"]


def test_a_muted_type_gets_no_push_but_still_arrives_in_app(stack: Stack, connect: Any) -> None:
    notifier = notifier_for(stack)
    stack.register_device("mu")
    prefer(stack, "mu", {"types": {"promo": {"push": False}}})
    sock = connect("mu")
    online = notification("mu", type="promo")
    deliver_with(notifier, stack.poison, online)
    assert [e["notificationId"] for e in sock.notifications_until_marker()] == [online["notificationId"]]
    process_deadline_message(take_deadline(stack), notifier)  # no ack: the push would be due now
    sock.close()
    offline = notification("mu-off", type="promo")
    stack.register_device("mu-off")
    prefer(stack, "mu-off", {"types": {"promo": {"push": False}}})
    deliver_with(notifier, stack.poison, offline)

    assert stack.pushes_to("mu") == [] and stack.pushes_to("mu-off") == []
    for document in (online, offline):
        record = record_of(stack, document)
        assert record.status is Status.SUPPRESSED
        assert record.entity["suppressedRule"] == "preferences.types.promo.push"


def test_a_muted_channel_is_respected_per_type(stack: Stack, connect: Any) -> None:
    notifier = notifier_for(stack)
    stack.register_device("pc")
    prefer(stack, "pc", {
        "channels": {"push": False}, "types": {"chat": {"push": True}, "news": {"inApp": False}}
    })
    chat, news = notification("pc", type="chat"), notification("pc", type="news")
    deliver_with(notifier, stack.poison, chat)  # offline: pushes are off except for chat
    deliver_with(notifier, stack.poison, news)
    assert [p["payload"]["message"]["data"]["notificationId"] for p in alerts(stack, "pc")] == [
        chat["notificationId"]
    ]
    assert record_of(stack, news).entity["suppressedRule"] == "preferences.channels.push"
    # In-app muted for news: an online user gets no envelope, and the push (off for all but chat) neither.
    sock = connect("pc")
    online_news = notification("pc", type="news")
    deliver_with(notifier, stack.poison, online_news)
    assert sock.notifications_until_marker() == []
    assert record_of(stack, online_news).status is Status.SUPPRESSED


def quiet_window_ending_in(zone: str, seconds: int) -> dict[str, Any]:
    """Quiet hours in ``zone`` that started a minute ago and end ``seconds`` from now (local wall time)."""
    now = datetime.now(ZoneInfo(zone))
    start, end = now - timedelta(minutes=1), now + timedelta(seconds=seconds)
    return {"quietHours": {"timeZone": zone, "windows": [
        {"start": start.strftime("%H:%M:%S"), "end": end.strftime("%H:%M:%S")}
    ]}}


class Clock:
    """A clock the test moves; the queue's delays stay real."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_quiet_hours_in_a_non_utc_zone_defer_the_push_to_the_end_and_critical_goes_at_once(
    stack: Stack,
) -> None:
    kolkata = ZoneInfo("Asia/Kolkata")  # UTC+05:30: a window in UTC would be off by hours
    tomorrow = datetime.now(kolkata).date() + timedelta(days=1)
    window_end = datetime.combine(tomorrow, datetime.min.time(), kolkata).replace(hour=7).timestamp()
    clock = Clock(window_end - 3)  # 06:59:57 in Kolkata, inside 22:00-07:00
    notifier = Notifier(
        stack.deliveries, stack.users, stack.realtime, stack.push, stack.deadlines, ACK_TIMEOUT,
        recheck_queue=stack.notifications, clock=clock,
        type_settings=lambda t: TYPES.get(t, NotificationTypeSettings()),
    )
    stack.register_device("qh")
    prefer(stack, "qh", {"quietHours": {"timeZone": "Asia/Kolkata", "windows": [
        {"start": "22:00", "end": "07:00"}
    ]}})
    deferred = notification("qh", type="chat", enqueuedAt=clock.now)
    urgent = notification("qh", type="chat", critical=True, enqueuedAt=clock.now)
    by_type = notification("qh", type="security", enqueuedAt=clock.now)
    for document in (deferred, urgent, by_type):
        deliver_with(notifier, stack.poison, document)
    pushed_ids = {p["payload"]["message"]["data"]["notificationId"] for p in alerts(stack, "qh")}
    assert pushed_ids == {urgent["notificationId"], by_type["notificationId"]}
    record = record_of(stack, deferred)
    assert (record.status, record.entity["deferredUntil"]) == (Status.DEFERRED, window_end)

    deadline = take_deadline(stack)  # a real delay of the 3 s left, plus one
    clock.now = window_end + 1
    process_deadline_message(deadline, notifier)
    [late] = [p for p in alerts(stack, "qh") if deferred["notificationId"] in p["payloadText"]]
    assert record_of(stack, deferred).status is Status.PUSHED
    assert late["payload"]["message"]["android"]["priority"] == "HIGH"
    assert len(alerts(stack, "qh")) == 3


def test_drop_during_quiet_hours_records_the_rule(stack: Stack) -> None:
    notifier = notifier_for(stack)
    stack.register_device("qd")
    dropping = {"types": {"digest": {"quietHours": "drop"}}}
    prefer(stack, "qd", {**quiet_window_ending_in("America/New_York", 600), **dropping})
    document = notification("qd", type="digest")
    deliver_with(notifier, stack.poison, document)
    assert stack.pushes_to("qd") == []
    record = record_of(stack, document)
    rule = "preferences.quietHours (drop)"
    assert (record.status, record.entity["suppressedRule"]) == (Status.SUPPRESSED, rule)
    assert stack.deadlines.get_queue_properties().approximate_message_count == 0


def test_pushed_then_acked_in_app_sends_one_retract_per_device_with_the_collapse_id(
    stack: Stack, connect: Any
) -> None:
    notifier = notifier_for(stack)
    register_both(stack, "ra")
    sock = connect("ra")
    document = notification("ra", type="digest")
    deliver_with(notifier, stack.poison, document)
    assert len(sock.notifications_until_marker()) == 1
    process_deadline_message(take_deadline(stack), notifier)  # not acked in time: pushed
    pushed = alerts(stack, "ra")
    assert sorted(p["platform"] for p in pushed) == ["apns", "fcmv1"]
    apns_alert = next(p for p in pushed if p["platform"] == "apns")
    assert apns_alert["headers"]["apns-collapse-id"] == document["notificationId"]
    assert apns_alert["headers"]["apns-priority"] == "5"  # digest: normal priority
    assert retracts(stack, "ra") == []

    ack = system_event("ack", "ra", sock.connection_id, {"notificationId": document["notificationId"]})
    handle_ack(ack, notifier)
    handle_ack(ack, notifier)  # a second ack retracts nothing more

    taken_back = retracts(stack, "ra")
    assert sorted(p["platform"] for p in taken_back) == ["apns", "fcmv1"]
    assert all(p["outcome"] == "delivered" for p in taken_back), [p["reason"] for p in taken_back]
    for push in taken_back:
        payload = push["payload"] if push["platform"] == "apns" else push["payload"]["message"]["data"]
        assert (payload["kind"], payload["collapseId"]) == ("retract", document["notificationId"])
    record = record_of(stack, document)
    assert record.status is Status.RETRACTED and record.entity["retractSentAt"] > 0


def test_pushed_then_read_in_the_inbox_is_retracted(stack: Stack) -> None:
    notifier = notifier_for(stack)
    register_both(stack, "rr")
    document = notification("rr")
    deliver_with(notifier, stack.poison, document)  # offline: pushed at once
    assert len(alerts(stack, "rr")) == 2
    assert notifier.handle_read("rr", document["notificationId"])
    assert len(retracts(stack, "rr")) == 2
    assert notifier.handle_archived("rr", document["notificationId"])  # already retracted
    assert len(retracts(stack, "rr")) == 2
    assert not notifier.handle_read("someone-else", document["notificationId"])


def test_no_retract_when_nothing_was_pushed(stack: Stack, connect: Any) -> None:
    notifier = notifier_for(stack)
    register_both(stack, "nr")
    sock = connect("nr")
    document = notification("nr")
    deliver_with(notifier, stack.poison, document)
    assert len(sock.notifications_until_marker()) == 1
    handle_ack(system_event("ack", "nr", sock.connection_id, {"notificationId": document["notificationId"]}),
               notifier)
    process_deadline_message(take_deadline(stack), notifier)
    assert notifier.handle_read("nr", document["notificationId"])
    no_devices = notification("nr-nodev")
    deliver_with(notifier, stack.poison, no_devices)
    assert notifier.handle_read("nr-nodev", no_devices["notificationId"])
    assert stack.pushes_to("nr") == [] and stack.pushes_to("nr-nodev") == []
    assert record_of(stack, document).status is Status.READ
    assert record_of(stack, no_devices).status is Status.READ


def test_a_retract_that_fails_transiently_is_tried_again_from_the_deadline_queue(stack: Stack) -> None:
    notifier = notifier_for(stack)
    stack.register_device("rt")
    document = notification("rt")
    deliver_with(notifier, stack.poison, document)
    stack.nh.inject_fault(status=503, count=50, path=f"/{stack.hub}/messages")
    assert notifier.handle_read("rt", document["notificationId"])  # the inbox call itself succeeds
    stack.nh.clear_faults()
    assert retracts(stack, "rt") == []
    record = record_of(stack, document)
    assert record.entity.get("retractClaimId", "") == "" and record.status is Status.READ
    properties = stack.deadlines.get_queue_properties()
    assert properties.approximate_message_count == 1  # the retry, invisible for RETRACT_RETRY_SECONDS
