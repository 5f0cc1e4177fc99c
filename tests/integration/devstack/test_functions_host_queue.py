"""Queue triggers through the local Functions host against Azurite."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.storage.queue import QueueClient

from devstack.functions_host import RunningFunctionsHost, start_functions_host
from tests.integration.devstack.functions_host_support import (  # noqa: F401 - fixture
    host_storage,
    records,
    sample_app_copy,
    sample_environ,
    wait_until,
)

pytestmark = pytest.mark.integration

FAST_QUEUES = {"maxPollingInterval": "00:00:00.5", "visibilityTimeout": "00:00:00", "maxDequeueCount": 3}


def _start(tmp_path: Path, storage: str, queues: dict[str, Any]) -> tuple[RunningFunctionsHost, QueueClient]:
    environ = sample_environ(storage)
    running = start_functions_host(sample_app_copy(tmp_path, queues), environ=environ)
    return running, QueueClient.from_connection_string(storage, environ["SAMPLE_QUEUE"])


@pytest.fixture
def base64_host(tmp_path: Path, host_storage: str) -> Iterator[tuple[RunningFunctionsHost, QueueClient]]:  # noqa: F811
    running, queue = _start(tmp_path, host_storage, FAST_QUEUES)
    try:
        yield running, queue
    finally:
        running.stop()


def _poison(queue: QueueClient, storage: str) -> QueueClient:
    return QueueClient.from_connection_string(storage, f"{queue.queue_name}-poison")


def _by_body(base_url: str, body: str) -> list[dict[str, Any]]:
    return [r for r in records(base_url, "queue") if r["body"] == body]


def test_success_delivers_decoded_body_and_deletes_the_message(
    base64_host: tuple[RunningFunctionsHost, QueueClient],
) -> None:
    running, queue = base64_host
    body = f"hello-{uuid.uuid4()}"
    sent = queue.send_message(base64.b64encode(body.encode()).decode())
    [seen] = wait_until(lambda: _by_body(running.url, body))
    # The runtime's queue converter built the QueueMessage from the trigger metadata the host sent.
    assert (seen["id"], seen["body"], seen["dequeue_count"]) == (sent.id, body, 1)
    assert seen["pop_receipt"]
    inserted = datetime.fromisoformat(seen["inserted"])
    assert inserted.tzinfo is not None
    assert abs((inserted - sent.inserted_on).total_seconds()) < 1
    wait_until(lambda: queue.get_queue_properties().approximate_message_count == 0)


def test_top_level_properties_of_a_json_body_become_trigger_metadata_like_the_host(
    base64_host: tuple[RunningFunctionsHost, QueueClient],
) -> None:
    # The host adds a JSON-object body's top-level properties to the binding data, replacing same-named
    # entries regardless of case (WorkerFunctionInvoker.ApplyBindingData): an "id" in the body becomes msg.id.
    running, queue = base64_host
    body = json.dumps({"id": f"from-body-{uuid.uuid4()}", "text": "x"})
    queue.send_message(base64.b64encode(body.encode()).decode())
    [seen] = wait_until(lambda: _by_body(running.url, body))
    assert seen["id"] == json.loads(body)["id"]


def test_failing_message_is_retried_then_moved_to_poison_with_its_original_body(
    base64_host: tuple[RunningFunctionsHost, QueueClient],
    host_storage: str,  # noqa: F811
) -> None:
    running, queue = base64_host
    body = f"fail-{uuid.uuid4()}"
    raw = base64.b64encode(body.encode()).decode()
    queue.send_message(raw)
    poison = _poison(queue, host_storage)
    poisoned = wait_until(lambda: _peek_if_exists(poison))
    assert [m.content for m in poisoned] == [raw]
    assert [r["dequeue_count"] for r in _by_body(running.url, body)] == [1, 2, 3]
    wait_until(lambda: queue.get_queue_properties().approximate_message_count == 0)


def test_invalid_base64_goes_to_poison_without_invoking_the_function(
    base64_host: tuple[RunningFunctionsHost, QueueClient],
    host_storage: str,  # noqa: F811
) -> None:
    running, queue = base64_host
    raw = f"not base64 {uuid.uuid4()}!"
    sent = queue.send_message(raw)
    poisoned = wait_until(lambda: _peek_if_exists(_poison(queue, host_storage)))
    assert [m.content for m in poisoned] == [raw]
    assert all(r["id"] != sent.id for r in records(running.url, "queue"))


def test_message_encoding_none_passes_raw_text(tmp_path: Path, host_storage: str) -> None:  # noqa: F811
    running, queue = _start(tmp_path, host_storage, {**FAST_QUEUES, "messageEncoding": "none"})
    try:
        body = f"plain text {uuid.uuid4()}"
        queue.send_message(body)
        assert wait_until(lambda: _by_body(running.url, body))[0]["dequeue_count"] == 1
    finally:
        running.stop()


def test_messages_already_in_the_queue_are_picked_up_on_start(tmp_path: Path, host_storage: str) -> None:  # noqa: F811
    environ = sample_environ(host_storage)
    queue = QueueClient.from_connection_string(host_storage, environ["SAMPLE_QUEUE"])
    queue.create_queue()
    bodies = [f"early-{i}-{uuid.uuid4()}" for i in range(5)]
    for body in bodies:
        queue.send_message(base64.b64encode(body.encode()).decode())
    app_dir = sample_app_copy(tmp_path, {**FAST_QUEUES, "batchSize": 2})
    running = start_functions_host(app_dir, environ=environ)
    try:
        wait_until(lambda: {r["body"] for r in records(running.url, "queue")} >= set(bodies))
    finally:
        running.stop()


def _peek_if_exists(queue: QueueClient) -> list[Any]:
    try:
        return list(queue.peek_messages(max_messages=32))
    except Exception:  # noqa: BLE001 - the poison queue does not exist yet
        return []


def test_queue_output_binding_enqueues_for_the_trigger(
    base64_host: tuple[RunningFunctionsHost, QueueClient],
) -> None:
    running, _ = base64_host
    body = f"via-output-{uuid.uuid4()}"
    response = requests.post(f"{running.url}/api/enqueue", data=body.encode(), timeout=10)
    assert response.status_code == 202
    assert wait_until(lambda: _by_body(running.url, body))[0]["dequeue_count"] == 1
