"""Pure pieces around the notifier: function bindings, outcome log lines, SDK error translation."""

from __future__ import annotations

import json
import logging
from typing import Any

import azure.functions as func
import pytest
from azure.core.exceptions import (
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from notify.blueprints import notifier as notifier_bp
from notify.blueprints import presence as presence_bp
from notify.deliveries import translate_azure_error
from shared.errors import TransientError, UpstreamError
from shared.log import log_outcome
from shared.user_keys import user_hash


def bindings() -> dict[str, dict[str, Any]]:
    app = func.FunctionApp()
    app.register_functions(notifier_bp.bp)
    app.register_functions(presence_bp.bp)
    result: dict[str, dict[str, Any]] = {}
    for function in app.get_functions():
        [binding] = json.loads(function.get_function_json())["bindings"]
        result[str(function.get_function_name())] = binding
    return result


def test_queue_triggers_use_binding_expressions() -> None:
    found = bindings()
    assert found["deliver_notification"] == {
        "direction": "IN",
        "type": "queueTrigger",
        "name": "msg",
        "queueName": "%NOTIFICATIONS_QUEUE%",
        "connection": "AzureWebJobsStorage",
    }
    assert found["push_after_deadline"]["queueName"] == "%DEADLINES_QUEUE%"


@pytest.mark.parametrize(
    ("function", "event_type", "event_name"),
    [
        ("presence_connected", "system", "connected"),
        ("presence_disconnected", "system", "disconnected"),
        ("notification_ack", "user", "ack"),
    ],
)
def test_web_pubsub_triggers_bind_the_request_argument(
    function: str, event_type: str, event_name: str
) -> None:
    binding = bindings()[function]
    # Any other argument name receives None from the extension (contracts 3.2).
    assert binding["name"] == "request"
    assert binding["type"] == "webPubSubTrigger"
    assert (binding["hub"], binding["eventType"], binding["eventName"]) == (
        "%WebPubSubHub%",
        event_type,
        event_name,
    )
    assert "connection" not in binding


def test_sweep_timer_uses_the_schedule_setting() -> None:
    binding = bindings()["presence_sweep"]
    assert binding["type"] == "timerTrigger"
    assert binding["schedule"] == "%PRESENCE_SWEEP_SCHEDULE%"


def test_outcome_log_has_fields_in_extra_and_message_and_hashes_the_user(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="notify.outcome"):
        log_outcome("n-1", "alice@example.com", "push", "pushed", 12.345)
    [record] = caplog.records
    fields = {
        k: getattr(record, k) for k in ("notificationId", "userHash", "channel", "outcome", "latencyMs")
    }
    assert fields == {
        "notificationId": "n-1",
        "userHash": user_hash("alice@example.com"),
        "channel": "push",
        "outcome": "pushed",
        "latencyMs": 12.3,
    }
    message = record.getMessage()
    assert "n-1" in message and user_hash("alice@example.com") in message and "pushed" in message
    assert "alice" not in message


class _Response:
    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.status_code = status
        self.headers = headers or {}
        self.reason = "x"
        self.request = None

    def text(self) -> str:
        return ""


@pytest.mark.parametrize("status", [408, 429, 500, 503])
def test_retryable_statuses_become_transient(status: int) -> None:
    error = HttpResponseError(response=_Response(status, {"Retry-After": "3"}))
    translated = translate_azure_error(error, "svc", "op")
    assert isinstance(translated, TransientError)
    assert translated.upstream_status == status and translated.retry_after == 3.0


@pytest.mark.parametrize("status", [400, 403, 409])
def test_other_statuses_are_permanent(status: int) -> None:
    translated = translate_azure_error(HttpResponseError(response=_Response(status)), "svc", "op")
    assert type(translated) is UpstreamError and translated.upstream_status == status


def test_not_found_is_permanent() -> None:
    translated = translate_azure_error(ResourceNotFoundError(response=_Response(404)), "svc", "op")
    assert not isinstance(translated, TransientError)


@pytest.mark.parametrize("error", [ServiceRequestError("refused"), ServiceResponseError("timed out")])
def test_network_errors_are_transient(error: Exception) -> None:
    assert isinstance(translate_azure_error(error, "svc", "op"), TransientError)  # type: ignore[arg-type]


def test_the_notifiers_attempt_count_is_host_json_max_dequeue_count() -> None:
    from pathlib import Path

    from notify.notifier import HOST_MAX_DEQUEUE_COUNT

    host = json.loads((Path(__file__).resolve().parents[3] / "host.json").read_text(encoding="utf-8"))
    assert host["extensions"]["queues"]["maxDequeueCount"] == HOST_MAX_DEQUEUE_COUNT
