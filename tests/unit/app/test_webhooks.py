"""Webhook events without a network: the CloudEvent, the Standard Webhooks signature (checked with the
``standardwebhooks`` library), backoff, message parsing, and the webhook settings."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from standardwebhooks import Webhook

from notify.delivery_machine import TimelineEntry
from notify.webhooks import (
    MAX_BACKOFF_SECONDS,
    WebhookDispatcher,
    _parse,
    cloud_event,
    event_id,
    new_secret,
    sign,
    signed_request,
)
from shared.errors import ConfigurationError
from shared.settings import Settings, WebhookSettings, webhook_secret_key

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ENTRY = TimelineEntry(
    4, 1_764_590_401.123, "push-sent", "pushed", "pushed through Notification Hubs", {"x": 1}
)
BASE_ENV = {
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "WebPubSubConnectionString": "Endpoint=http://127.0.0.1:1;AccessKey=k;Version=1.0;",
    "NOTIFICATION_HUBS_CONNECTION_STRING": "Endpoint=sb://x/;SharedAccessKeyName=n;SharedAccessKey=k",
}


def test_the_signature_is_the_one_standard_webhooks_computes() -> None:
    key = webhook_secret_key(SECRET)
    body = b'{"hello":"world"}'
    ours = sign([key], "msg_1", 1_700_000_000, body)
    theirs = Webhook(SECRET).sign("msg_1", datetime.fromtimestamp(1_700_000_000, UTC), body.decode())
    assert ours == theirs


def test_one_signature_per_secret_each_verifies_alone() -> None:
    other = new_secret()
    event = cloud_event("alice", "n-1", ENTRY)
    now = int(datetime.now(UTC).timestamp())
    body, headers = signed_request([webhook_secret_key(SECRET), webhook_secret_key(other)], event, now)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (SECRET, other):
        assert Webhook(secret).verify(body, headers) == event
    with pytest.raises(Exception, match="signature"):
        Webhook(new_secret()).verify(body, headers)


def test_the_cloud_event() -> None:
    event = cloud_event("ali ce/#", "order-42", ENTRY)
    assert event == {
        "specversion": "1.0",
        "id": event_id("ali ce/#", "order-42", 4),
        "source": "/azure-notify/deliveries",
        "type": "azure-notify.delivery.push-sent",
        "subject": "users/ali%20ce%2F%23/notifications/order-42",
        "time": "2025-12-01T12:00:01.123Z",
        "datacontenttype": "application/json",
        "data": {
            "userId": "ali ce/#", "notificationId": "order-42", "sequence": 4, "name": "push-sent",
            "status": "pushed", "reason": "pushed through Notification Hubs", "details": {"x": 1},
        },
    }
    assert event_id("a", "n", 1) == event_id("a", "n", 1) != event_id("b", "n", 1) != event_id("a", "n", 2)


def test_backoff_doubles_up_to_an_hour_with_jitter_below() -> None:
    def dispatcher(jitter: float) -> WebhookDispatcher:
        settings = WebhookSettings(url="https://example.invalid/", secrets=(b"k" * 32,), backoff_seconds=10)
        return WebhookDispatcher(settings, queue=None, poison_queue=None, jitter=lambda: jitter)  # type: ignore[arg-type]

    top = dispatcher(1.0)
    assert [top.backoff(n) for n in range(1, 11)] == [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600]
    assert top.backoff(500) == MAX_BACKOFF_SECONDS
    assert dispatcher(0.0).backoff(1) == 8  # at most a quarter earlier


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        (b"\xff", "not UTF-8 JSON"),
        ({"v": 2}, "not a version 1 webhook message"),
        ({"v": 1, "userId": "", "notificationId": "n", "events": [{}]}, "userId and notificationId"),
        ({"v": 1, "userId": "u", "notificationId": "n", "events": []}, "events must be a non-empty list"),
        ({"v": 1, "userId": "u", "notificationId": "n", "events": [{}], "attempt": -1}, "attempt"),
    ],
)
def test_malformed_messages_say_why(document: Any, problem: str) -> None:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    with pytest.raises(ValueError, match=problem):
        _parse(body)


def test_new_secrets_are_valid_settings() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    env = {**BASE_ENV, "WEBHOOK_URL": "https://hooks.example/in", "WEBHOOK_SECRET": secret}
    settings = Settings.from_environ(env)
    assert settings.webhooks.enabled and settings.webhooks.secrets == (webhook_secret_key(secret),)
    assert (settings.webhooks.queue, settings.webhooks.retry_seconds, settings.webhooks.backoff_seconds) == (
        "notification-webhooks", 86400, 10
    )


@pytest.mark.parametrize(
    ("env", "setting", "problem"),
    [
        ({"WEBHOOK_URL": "https://h.example/"}, "WEBHOOK_SECRET", "is required"),
        ({"WEBHOOK_URL": "http://h.example/", "WEBHOOK_SECRET": SECRET}, "WEBHOOK_URL", "https"),
        ({"WEBHOOK_URL": "ftp://h.example/", "WEBHOOK_SECRET": SECRET}, "WEBHOOK_URL", "https"),
        ({"WEBHOOK_URL": "https://h.example/", "WEBHOOK_SECRET": "plain"}, "WEBHOOK_SECRET", "whsec_"),
        ({"WEBHOOK_URL": "https://h.example/", "WEBHOOK_SECRET": "whsec_c2hvcnQ="}, "WEBHOOK_SECRET",
         "24 to 64"),
        ({"WEBHOOK_URL": "https://h.example/", "WEBHOOK_SECRET": "whsec_!!"}, "WEBHOOK_SECRET", "base64"),
        ({"WEBHOOK_BACKOFF_SECONDS": "0"}, "WEBHOOK_BACKOFF_SECONDS", "between"),
        ({"TELEMETRY_EXPORTER": "zipkin"}, "TELEMETRY_EXPORTER", "one of"),
        ({"TELEMETRY_EXPORTER": "otlp"}, "OTEL_EXPORTER_OTLP_ENDPOINT", "required"),
    ],
)
def test_bad_settings_name_the_setting(env: dict[str, str], setting: str, problem: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_environ({**BASE_ENV, **env})
    assert info.value.setting == setting and problem in info.value.message


def test_plain_http_webhooks_only_to_loopback_and_telemetry_auto() -> None:
    env = {**BASE_ENV, "WEBHOOK_URL": "http://127.0.0.1:9/hooks", "WEBHOOK_SECRET": SECRET}
    assert Settings.from_environ(env).webhooks.url == "http://127.0.0.1:9/hooks"
    telemetry = Settings.from_environ({
        **BASE_ENV,
        "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000-0000-0000-000000000000",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "ClientId=abc;Authorization=AAD",
    }).telemetry
    assert (telemetry.effective_exporter, telemetry.applicationinsights_client_id,
            telemetry.applicationinsights_entra) == ("azure_monitor", "abc", True)
    local = Settings.from_environ({**BASE_ENV, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318/"})
    assert (local.telemetry.effective_exporter, local.telemetry.otlp_endpoint) == ("otlp", "http://127.0.0.1:4318")
    assert Settings.from_environ(BASE_ENV).telemetry.effective_exporter == "none"
