"""POST /api/negotiate over the wire: the official client connects with its URL to the emulator."""

from __future__ import annotations

import json
import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
import jwt
import pytest
from azure.messaging.webpubsubclient import WebPubSubClient, WebPubSubClientCredential
from azure.messaging.webpubsubclient.models import (
    CallbackType,
    OnConnectedArgs,
    SendMessageError,
)
from azure.messaging.webpubsubservice import WebPubSubServiceClient

from devstack.webpubsub import RunningWebPubSub
from notify.blueprints import negotiate as negotiate_blueprint
from notify.blueprints.negotiate import negotiate_response
from notify.negotiate import negotiate
from notify.realtime import build_webpubsub_client
from shared.auth import Authenticator, make_dev_token
from shared.settings import Settings

pytestmark = pytest.mark.integration

SECRET = "negotiate-test-secret-long-enough-for-hs256"
TOKEN_MINUTES = 7


@pytest.fixture
def settings(webpubsub_emulator: RunningWebPubSub, unique_name: Callable[[str], str]) -> Settings:
    return Settings.from_environ(
        {
            "AzureWebJobsStorage": "UseDevelopmentStorage=true",
            "NOTIFICATION_HUBS_CONNECTION_STRING": "Endpoint=sb://x/;SharedAccessKeyName=n;SharedAccessKey=k",
            "WebPubSubConnectionString": webpubsub_emulator.connection_string,
            "WebPubSubHub": unique_name("hub"),
            "AUTH_DEV_SECRET": SECRET,
            "CLIENT_TOKEN_MINUTES": str(TOKEN_MINUTES),
        }
    )


@pytest.fixture
def service(settings: Settings) -> Iterator[WebPubSubServiceClient]:
    client = build_webpubsub_client(settings.webpubsub)
    yield client
    client.close()


def post(headers: dict[str, str]) -> func.HttpRequest:
    return func.HttpRequest("POST", "http://localhost:7071/api/negotiate", headers=headers, body=b"")


def call(settings: Settings, service: WebPubSubServiceClient, headers: dict[str, str]) -> func.HttpResponse:
    auth = Authenticator(settings.auth)
    return negotiate_response(post(headers), auth, service, settings.client_token_minutes)


def sdk_client(url: str) -> WebPubSubClient:
    # Short timeouts: SDK 1.1.0 can miss a fast ack and then waits 30 s (devstack/webpubsub/README.md).
    return WebPubSubClient(
        credential=WebPubSubClientCredential(lambda: url),
        reconnect_retry_total=0,
        message_retry_total=0,
        ack_timeout=3.0,
        start_timeout=3.0,
    )


def wait_for_sdk_threads(before: set[threading.Thread]) -> None:
    for thread in set(threading.enumerate()) - before:
        if "run_forever" in thread.name or "sequence_id_ack" in thread.name:
            thread.join(timeout=15)
            assert not thread.is_alive(), f"SDK thread {thread.name} still running"


@pytest.mark.parametrize("user_id", ["alice", "Tenant/Ünïcode user#1"])
def test_negotiated_url_connects_the_official_client_as_the_user(
    webpubsub_emulator: RunningWebPubSub,
    settings: Settings,
    service: WebPubSubServiceClient,
    user_id: str,
) -> None:
    before_call = datetime.now(UTC)
    response = call(settings, service, {"Authorization": "Bearer " + make_dev_token(SECRET, user_id)})
    after_call = datetime.now(UTC)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body: dict[str, Any] = json.loads(response.get_body())
    assert set(body) == {"url", "baseUrl", "token", "expiresAt", "expiresInSeconds", "userId"}
    assert body["userId"] == user_id
    assert body["url"] == f"{body['baseUrl']}?access_token={body['token']}"
    assert body["baseUrl"].endswith(f"/client/hubs/{settings.webpubsub.hub}")

    expires_at = datetime.fromisoformat(body["expiresAt"])
    assert body["expiresAt"].endswith("Z") and expires_at.tzinfo is not None
    window = timedelta(minutes=TOKEN_MINUTES)
    assert before_call + window - timedelta(seconds=1) <= expires_at <= after_call + window
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert claims["sub"] == user_id
    assert "role" not in claims and "webpubsub.group" not in claims
    assert expires_at.timestamp() <= claims["exp"]
    assert body["expiresInSeconds"] == TOKEN_MINUTES * 60

    before = set(threading.enumerate())
    client = sdk_client(body["url"])
    connected: queue.Queue[OnConnectedArgs] = queue.Queue()
    messages: queue.Queue[Any] = queue.Queue()
    client.subscribe(CallbackType.CONNECTED, connected.put)
    client.subscribe(CallbackType.SERVER_MESSAGE, lambda e: messages.put(e.data))
    try:
        with client:
            event = connected.get(timeout=15)
            assert event.user_id == user_id
            summaries = webpubsub_emulator.connections(settings.webpubsub.hub)
            assert [(c["connectionId"], c["userId"]) for c in summaries] == [(event.connection_id, user_id)]
            assert summaries[0]["roles"] == [] and summaries[0]["groups"] == []

            marker = uuid.uuid4().hex
            service.send_to_user(user_id, {"marker": marker})
            assert messages.get(timeout=15) == {"marker": marker}

            # No roles in the token: the client may not join groups of its choosing.
            with pytest.raises(SendMessageError) as info:
                client.join_group("someone-elses-group")
            assert info.value.error_detail is not None
            assert info.value.error_detail.name == "Forbidden"
    finally:
        wait_for_sdk_threads(before)


def _error(response: func.HttpResponse) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(response.get_body())
    return body["error"]  # type: ignore[no-any-return]


def test_missing_or_bad_token_is_401_json(settings: Settings, service: WebPubSubServiceClient) -> None:
    missing = call(settings, service, {})
    assert missing.status_code == 401
    assert missing.mimetype == "application/json"
    assert _error(missing) == {"code": "unauthorized", "message": "missing Authorization header"}

    forged = make_dev_token("some-other-secret-long-enough-for-hs256", "alice")
    bad = call(settings, service, {"Authorization": "Bearer " + forged})
    assert bad.status_code == 401
    assert _error(bad) == {"code": "unauthorized", "message": "token signature is invalid"}
    assert forged not in bad.get_body().decode()

    expired = call(settings, service, {"Authorization": "Bearer " + make_dev_token(SECRET, "a", minutes=-5)})
    assert _error(expired)["message"] == "token has expired"


def test_without_auth_settings_everything_is_refused(
    settings: Settings, service: WebPubSubServiceClient
) -> None:
    unconfigured = Settings.from_environ(
        {
            "AzureWebJobsStorage": "UseDevelopmentStorage=true",
            "NOTIFICATION_HUBS_CONNECTION_STRING": "Endpoint=sb://x/;SharedAccessKeyName=n;SharedAccessKey=k",
            "WebPubSubConnectionString": settings.webpubsub.connection_string or "",
        }
    )
    response = call(unconfigured, service, {"Authorization": "Bearer " + make_dev_token(SECRET, "alice")})
    assert response.status_code == 401
    assert "not configured" in _error(response)["message"]


def test_domain_rejects_an_empty_user(service: WebPubSubServiceClient) -> None:
    with pytest.raises(ValueError, match="empty"):
        negotiate(service, "", 5)


def test_blueprint_registers_post_api_negotiate() -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    app.register_functions(negotiate_blueprint.bp)
    (function,) = app.get_functions()
    trigger = json.loads(function.get_raw_bindings()[0])
    assert function.get_function_name() == "negotiate"
    assert (trigger["type"], trigger["route"], trigger["methods"]) == ("httpTrigger", "negotiate", ["POST"])
