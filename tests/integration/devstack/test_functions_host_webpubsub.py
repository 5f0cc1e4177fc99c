"""Web PubSub triggers through the local Functions host: signed CloudEvents requests over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from devstack.functions_host import RunningFunctionsHost, start_functions_host
from tests.integration.devstack.functions_host_support import (  # noqa: F401 - fixture
    SAMPLE_APP,
    host_storage,
    records,
    sample_environ,
)

pytestmark = pytest.mark.integration

SERVICE_HOST = "sample.webpubsub.azure.com"
ACCESS_KEY = f"key-{uuid.uuid4().hex}"
SCOPED_HOST = "scoped.webpubsub.azure.com"
SCOPED_KEY = f"scoped-{uuid.uuid4().hex}"
WEBHOOK = "/runtime/webhooks/webpubsub"


@pytest.fixture(scope="module")
def wps_host(host_storage: str) -> Iterator[tuple[RunningFunctionsHost, str]]:  # noqa: F811
    environ = sample_environ(
        host_storage,
        WebPubSubConnectionString=f"Endpoint=https://{SERVICE_HOST};AccessKey={ACCESS_KEY};Version=1.0;",
        SAMPLE_WPS_CONNECTION=f"Endpoint=https://{SCOPED_HOST};AccessKey={SCOPED_KEY};Version=1.0;",
    )
    running = start_functions_host(SAMPLE_APP, environ=environ)
    try:
        yield running, environ["SAMPLE_HUB"]
    finally:
        running.stop()


def _sign(connection_id: str, key: str = ACCESS_KEY) -> str:
    digest = hmac.new(key.encode(), connection_id.encode(), hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def _post(
    host: RunningFunctionsHost,
    hub: str,
    ce_type: str,
    event_name: str,
    body: bytes = b"{}",
    content_type: str = "application/json",
    signature: str | None = None,
    extra: dict[str, str] | None = None,
) -> tuple[requests.Response, str]:
    connection_id = uuid.uuid4().hex
    headers = {
        "ce-specversion": "1.0",
        "ce-type": ce_type,
        "ce-source": f"/hubs/{hub}/client/{connection_id}",
        "ce-id": uuid.uuid4().hex,
        "ce-time": "2026-11-24T12:00:00Z",
        "ce-signature": signature if signature is not None else _sign(connection_id),
        "ce-userId": "alice",
        "ce-connectionId": connection_id,
        "ce-hub": hub,
        "ce-eventName": event_name,
        "WebHook-Request-Origin": SERVICE_HOST,
        "Content-Type": content_type,
    }
    headers.update(extra or {})
    return requests.post(f"{host.url}{WEBHOOK}", data=body, headers=headers, timeout=10), connection_id


def _recorded(host: RunningFunctionsHost, kind: str, connection_id: str) -> list[dict[str, Any]]:
    return [r for r in records(host.url, kind) if r["connectionContext"]["connectionId"] == connection_id]


def test_abuse_protection_allows_the_configured_service_host(
    wps_host: tuple[RunningFunctionsHost, str],
) -> None:
    running, _ = wps_host
    allowed = requests.options(
        f"{running.url}{WEBHOOK}", headers={"WebHook-Request-Origin": SERVICE_HOST}, timeout=10
    )
    other = requests.options(
        f"{running.url}{WEBHOOK}", headers={"WebHook-Request-Origin": "evil.example"}, timeout=10
    )
    assert allowed.status_code == 200
    assert allowed.headers["WebHook-Allowed-Origin"] == SERVICE_HOST
    assert other.status_code == 400


def test_connect_gets_the_request_json_and_its_response_is_mapped(
    wps_host: tuple[RunningFunctionsHost, str],
) -> None:
    running, hub = wps_host
    connect_body = {
        "claims": {"sub": ["alice"]},
        "query": {"lang": ["en"]},
        "headers": {"Origin": ["https://app.example"]},
        "subprotocols": ["json.webpubsub.azure.v1"],
        "clientCertificates": [{"thumbprint": "abc", "content": "pem"}],
    }
    state = base64.b64encode(json.dumps({"before": "x"}).encode()).decode()
    response, connection_id = _post(
        running,
        hub,
        "azure.webpubsub.sys.connect",
        "connect",
        json.dumps(connect_body).encode(),
        extra={"ce-connectionState": state},
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {
        "userId": "user-from-connect",
        "groups": ["g1"],
        "subprotocol": None,
        "roles": ["webpubsub.joinLeaveGroup"],
    }
    assert json.loads(base64.b64decode(response.headers["ce-connectionState"])) == {
        "before": "x",
        "counter": 1,
    }
    [event] = _recorded(running, "connect", connection_id)
    context = event["connectionContext"]
    assert context["eventType"] == "System"
    assert (context["eventName"], context["hub"], context["userId"]) == ("connect", hub, "alice")
    assert context["signature"] == _sign(connection_id)
    assert context["origin"] == SERVICE_HOST
    assert context["states"] == {"before": "x"}
    assert context["headers"]["ce-connectionId"] == [connection_id]
    for field in ("claims", "query", "headers", "subprotocols", "clientCertificates"):
        assert event[field] == connect_body[field]


def test_error_response_maps_to_its_status_with_the_message(
    wps_host: tuple[RunningFunctionsHost, str],
) -> None:
    running, hub = wps_host
    body = json.dumps({"claims": {}, "query": {"reject": ["1"]}}).encode()
    response, _ = _post(running, hub, "azure.webpubsub.sys.connect", "connect", body)
    assert (response.status_code, response.text) == (401, "rejected by sample")


def test_bad_signature_is_401_and_the_function_does_not_run(
    wps_host: tuple[RunningFunctionsHost, str],
) -> None:
    running, hub = wps_host
    response, connection_id = _post(
        running, hub, "azure.webpubsub.sys.connect", "connect", signature=_sign("someone-else")
    )
    assert response.status_code == 401
    assert _recorded(running, "connect", connection_id) == []


def test_signature_made_with_another_key_is_401(wps_host: tuple[RunningFunctionsHost, str]) -> None:
    running, hub = wps_host
    connection_id_header = {"ce-connectionId": "fixed-connection"}
    response, _ = _post(
        running,
        hub,
        "azure.webpubsub.user.echo",
        "echo",
        b"hi",
        "text/plain",
        signature=_sign("fixed-connection", key="wrong-key"),
        extra=connection_id_header,
    )
    assert response.status_code == 401


def test_unknown_event_or_hub_is_404(wps_host: tuple[RunningFunctionsHost, str]) -> None:
    running, hub = wps_host
    assert _post(running, hub, "azure.webpubsub.user.nothing", "nothing")[0].status_code == 404
    assert _post(running, "otherhub", "azure.webpubsub.sys.connect", "connect")[0].status_code == 404


def test_missing_cloudevents_header_is_400(wps_host: tuple[RunningFunctionsHost, str]) -> None:
    running, _ = wps_host
    response = requests.post(f"{running.url}{WEBHOOK}", data=b"{}", headers={"ce-type": "x"}, timeout=10)
    assert response.status_code == 400


def test_user_event_data_is_passed_and_the_reply_has_the_right_content_type(
    wps_host: tuple[RunningFunctionsHost, str],
) -> None:
    running, hub = wps_host
    response, connection_id = _post(
        running, hub.upper(), "azure.webpubsub.user.echo", "echo", b"hi there", "text/plain"
    )
    assert response.status_code == 200
    assert response.text == "echo:hi there"
    assert response.headers["Content-Type"].startswith("text/plain")
    [event] = _recorded(running, "echo", connection_id)
    assert (event["data"], event["dataType"]) == ("hi there", "Text")
    assert event["connectionContext"]["eventType"] == "User"


def test_unsupported_user_content_type_is_400(wps_host: tuple[RunningFunctionsHost, str]) -> None:
    running, hub = wps_host
    response, _ = _post(running, hub, "azure.webpubsub.user.echo", "echo", b"x", "application/xml")
    assert response.status_code == 400


def test_connected_is_answered_200_after_the_function_runs(
    wps_host: tuple[RunningFunctionsHost, str],
) -> None:
    running, hub = wps_host
    response, connection_id = _post(running, hub, "azure.webpubsub.sys.connected", "connected")
    assert (response.status_code, response.content) == (200, b"")
    [event] = _recorded(running, "connected", connection_id)
    assert set(event) == {"connectionContext"}


def test_argument_name_selects_the_value(wps_host: tuple[RunningFunctionsHost, str]) -> None:
    running, hub = wps_host
    reason = f"closed-{uuid.uuid4()}"
    response, _ = _post(
        running,
        hub,
        "azure.webpubsub.sys.disconnected",
        "disconnected",
        json.dumps({"reason": reason}).encode(),
    )
    assert response.status_code == 200
    assert reason in records(running.url, "disconnected")
    before = len(records(running.url, "badname"))
    assert (
        _post(running, hub, "azure.webpubsub.user.badname", "badname", b"x", "text/plain")[0].status_code
        == 200
    )
    assert records(running.url, "badname")[before:] == [None]


def test_trigger_connections_setting_replaces_the_default_validation(
    wps_host: tuple[RunningFunctionsHost, str],
) -> None:
    running, hub = wps_host
    cid = f"c-{uuid.uuid4().hex}"
    scoped = {"ce-connectionId": cid, "WebHook-Request-Origin": SCOPED_HOST}
    good, _ = _post(
        running,
        hub,
        "azure.webpubsub.user.scoped",
        "scoped",
        b"abc",
        "text/plain",
        signature=_sign(cid, key=SCOPED_KEY),
        extra=scoped,
    )
    default_key, _ = _post(
        running,
        hub,
        "azure.webpubsub.user.scoped",
        "scoped",
        b"abc",
        "text/plain",
        signature=_sign(cid),
        extra={"ce-connectionId": cid},
    )
    assert (good.status_code, good.text) == (200, "ABC")
    assert default_key.status_code == 401


@pytest.mark.parametrize(
    "body",
    [b"not json", b"", b"null", b"[]", b'"closed"', b"1", b'{"reason": 5}', b"[" * 70 + b"]" * 70],
    ids=["text", "empty", "null", "array", "string", "number", "reason-not-string", "too-deep"],
)
def test_signed_disconnected_with_a_body_the_extension_cannot_read_is_500_and_runs_nothing(
    wps_host: tuple[RunningFunctionsHost, str], body: bytes
) -> None:
    # System.Text.Json throws on these before any function runs; the host's webhook route answers 500.
    running, hub = wps_host
    before = len(records(running.url, "disconnected"))
    response, _ = _post(running, hub, "azure.webpubsub.sys.disconnected", "disconnected", body)
    assert response.status_code == 500
    assert len(records(running.url, "disconnected")) == before
    reason = f"after-{uuid.uuid4()}"
    healthy, _ = _post(
        running,
        hub,
        "azure.webpubsub.sys.disconnected",
        "disconnected",
        json.dumps({"reason": reason, "unknown": {"deep": [1]}}).encode(),
    )
    assert healthy.status_code == 200
    assert reason in records(running.url, "disconnected")


@pytest.mark.parametrize(
    "body", [b"{", b"[]", b'{"claims": []}', b'{"query": {"a": "not-an-array"}}', b'{"subprotocols": [1]}']
)
def test_signed_connect_with_a_body_the_extension_cannot_read_is_500(
    wps_host: tuple[RunningFunctionsHost, str], body: bytes
) -> None:
    running, hub = wps_host
    response, connection_id = _post(running, hub, "azure.webpubsub.sys.connect", "connect", body)
    assert response.status_code == 500
    assert _recorded(running, "connect", connection_id) == []


def test_user_event_without_content_type_is_500_like_the_extension(
    wps_host: tuple[RunningFunctionsHost, str],
) -> None:
    running, hub = wps_host
    connection_id = uuid.uuid4().hex
    headers = {
        "ce-specversion": "1.0",
        "ce-type": "azure.webpubsub.user.echo",
        "ce-signature": _sign(connection_id),
        "ce-connectionId": connection_id,
        "ce-hub": hub,
        "ce-eventName": "echo",
        "WebHook-Request-Origin": SERVICE_HOST,
    }
    request = requests.Request("POST", f"{running.url}{WEBHOOK}", data=b"hi", headers=headers).prepare()
    request.headers.pop("Content-Type", None)
    with requests.Session() as session:
        assert session.send(request, timeout=10).status_code == 500


def test_request_argument_is_the_indented_json_the_extension_writes(
    wps_host: tuple[RunningFunctionsHost, str],
) -> None:
    # JToken.ToString() is indented: an app that compares text (not parsed JSON) sees this layout in Azure.
    running, hub = wps_host
    response, connection_id = _post(running, hub, "azure.webpubsub.sys.connected", "connected")
    assert response.status_code == 200
    [text] = [t for t in records(running.url, "connected-text") if connection_id in t]
    assert text.startswith('{\n  "connectionContext": {\n    "eventType": "System",\n')
