"""Through the local host: forged Web PubSub events are refused; invalid queue messages go to poison once."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from typing import Any

import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from devstack.demo import DemoTarget, delivery_row, presence_count, queue_length, wait_until
from devstack.stack import HOST, HUB, RunningStack
from notify.client import NotificationClient

pytestmark = pytest.mark.e2e

WEBHOOK = "/runtime/webhooks/webpubsub"


def sign(key: str, connection_id: str) -> str:
    """``ce-signature`` as the service computes it: HMAC-SHA256 of the connection id with the access key."""
    return "sha256=" + hmac.new(key.encode(), connection_id.encode(), hashlib.sha256).hexdigest()


def post_event(
    stack: RunningStack,
    event: str,
    user_id: str,
    connection_id: str,
    signature: str | None,
    body: dict[str, Any] | None = None,
) -> requests.Response:
    """POST a CloudEvents webhook request as Web PubSub would (``connected`` or a user event)."""
    system = event == "connected"
    headers = {
        "ce-specversion": "1.0",
        "ce-type": f"azure.webpubsub.{'sys' if system else 'user'}.{event}",
        "ce-source": f"/hubs/{HUB}/client/{connection_id}",
        "ce-id": uuid.uuid4().hex,
        "ce-time": "2026-11-24T12:00:00Z",
        "ce-userId": user_id,
        "ce-connectionId": connection_id,
        "ce-hub": HUB,
        "ce-eventName": event,
        "WebHook-Request-Origin": HOST,  # the service's host: the host looks the access key up by it
        "Content-Type": "application/json",
    }
    if signature is not None:
        headers["ce-signature"] = signature
    return requests.post(
        stack.functions_host.url + WEBHOOK, data=json.dumps(body or {}), headers=headers, timeout=10
    )


def test_forged_connected_event_is_rejected_and_records_no_presence(
    e2e_stack: RunningStack, e2e_target: DemoTarget
) -> None:
    user_id = "forged-" + uuid.uuid4().hex[:12]
    connection_id = uuid.uuid4().hex
    forged = sign("an-attackers-guess-at-the-access-key", connection_id)

    assert post_event(e2e_stack, "connected", user_id, connection_id, forged).status_code == 401
    assert post_event(e2e_stack, "connected", user_id, connection_id, None).status_code == 401
    assert presence_count(e2e_target, user_id) == 0

    # The same event signed with the hub's key is accepted: the refusal above was the signature's doing.
    genuine = sign(e2e_stack.webpubsub.access_key, connection_id)
    assert post_event(e2e_stack, "connected", user_id, connection_id, genuine).status_code == 200
    assert presence_count(e2e_target, user_id) == 1


def test_forged_ack_is_rejected_and_does_not_ack(e2e_stack: RunningStack, e2e_target: DemoTarget) -> None:
    user_id = "forged-ack-" + uuid.uuid4().hex[:12]
    producer = NotificationClient.from_connection_string(
        e2e_target.storage_connection_string, e2e_target.setting("NOTIFICATIONS_QUEUE")
    )
    # A realtime-only notification to an offline user: the row exists, unacked, and nothing is pushed.
    notification_id = producer.send(user_id, "t", "b", delivery="realtime")
    wait_until(lambda: delivery_row(e2e_target, user_id, notification_id), 15, "no delivery row")
    connection_id = uuid.uuid4().hex
    ack = {"notificationId": notification_id}

    forged = sign("an-attackers-guess-at-the-access-key", connection_id)
    assert post_event(e2e_stack, "ack", user_id, connection_id, forged, ack).status_code == 401
    assert (delivery_row(e2e_target, user_id, notification_id) or {}).get("ackedAt", 0) == 0

    genuine = sign(e2e_stack.webpubsub.access_key, connection_id)
    assert post_event(e2e_stack, "ack", user_id, connection_id, genuine, ack).status_code == 200
    assert (delivery_row(e2e_target, user_id, notification_id) or {})["ackedAt"] > 0


def poison_texts(target: DemoTarget) -> list[str]:
    """The raw (wire) text of every message in ``<NOTIFICATIONS_QUEUE>-poison``, without dequeuing them."""
    with target.queue("NOTIFICATIONS_QUEUE", "-poison") as poison:
        try:
            return [str(m.content) for m in poison.peek_messages(max_messages=32)]
        except ResourceNotFoundError:
            return []


def test_raw_and_schema_invalid_messages_land_in_poison_without_retries(
    e2e_stack: RunningStack, e2e_target: DemoTarget
) -> None:
    queue_name = e2e_target.setting("NOTIFICATIONS_QUEUE")
    raw_client = QueueClient.from_connection_string(e2e_target.storage_connection_string, queue_name)
    base64_client = QueueClient.from_connection_string(
        e2e_target.storage_connection_string, queue_name, message_encode_policy=TextBase64EncodePolicy()
    )
    marker = uuid.uuid4().hex
    raw_text = f"not base64, not JSON! {marker}"
    invalid_json = json.dumps({"schemaVersion": 1, "userId": "u-" + marker, "body": "no title"})
    with raw_client, base64_client:
        raw = raw_client.send_message(raw_text)
        invalid = base64_client.send_message(invalid_json)
    invalid_wire = base64.b64encode(invalid_json.encode()).decode()

    wait_until(
        lambda: {raw_text, invalid_wire} <= set(poison_texts(e2e_target)),
        20,
        "the two messages did not both reach the poison queue",
    )
    texts = poison_texts(e2e_target)
    assert texts.count(raw_text) == 1 and texts.count(invalid_wire) == 1
    # Gone from the notifications queue, so no retry is pending ...
    wait_until(lambda: queue_length(e2e_target, "NOTIFICATIONS_QUEUE") == 0, 15, "a message stayed queued")

    # ... and each was looked at once: the host refused the undecodable one before running the function,
    # the function moved the invalid one at its first attempt (no MaxDequeueCount move).
    def logged(text: str) -> int:
        return sum(text in line for line in e2e_stack.functions_host.log_lines)

    moved_raw = f"Moved message {raw.id} from '{queue_name}' to '{queue_name}-poison'"
    refused_invalid = f"queue message {invalid.id} is invalid"
    wait_until(lambda: logged(moved_raw) and logged(refused_invalid), 10, "the host did not log the moves")
    assert logged(f"Message decoding has failed! Check MessageEncoding settings. MessageId={raw.id}") == 1
    assert logged(moved_raw) == 1
    assert logged(refused_invalid) == 1
    assert logged(f"Moved message {invalid.id}") == 0
