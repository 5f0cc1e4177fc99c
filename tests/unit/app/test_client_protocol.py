"""docs/CLIENT-PROTOCOL.md and docs/openapi.yaml agree with the code (the responses of a running stack are
checked against the same file in tests/e2e/test_client_protocol.py)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from azure.messaging.webpubsubservice import WebPubSubServiceClient
from openapi_spec_validator import validate

from notify.acks import ERROR_CODES, ack_response
from notify.devices import PLATFORM_ALIASES, validate_installation_id
from notify.model import CLIENT_PROTOCOL_VERSION, Notification
from notify.negotiate import negotiate
from notify.push_templates import PushOptions, render_payload, retract_properties, template_properties
from shared.errors import BadRequestError, ConfigurationError, NotifyError, TransientError, UpstreamError
from tests.function_index import indexed_functions
from tests.openapi_spec import REPO_ROOT, errors, resolve, schema_validator, spec, validator

PROTOCOL_DOC = REPO_ROOT / "docs" / "CLIENT-PROTOCOL.md"
_MARKED_BLOCK = re.compile(r"<!-- schema: (\w+) -->\n```json\n(.*?)\n```", re.S)
_JSON_BLOCK = re.compile(r"```json\n")
NOTIFICATION = Notification(
    notification_id="order-42-shipped",
    user_id="alice",
    title="Your order has shipped",
    body='Order 42 is on its way: "soon" ✓',
    type="order",
    data={"orderId": 42, "nested": {"a": [1, 2]}},
)


def http_routes() -> set[tuple[str, str]]:
    """(METHOD, /prefix/route) of every HTTP function in the function index."""
    host_json = json.loads((REPO_ROOT / "host.json").read_text(encoding="utf-8"))
    prefix = host_json.get("extensions", {}).get("http", {}).get("routePrefix", "api")
    routes: set[tuple[str, str]] = set()
    for function in indexed_functions():
        trigger = function.get_trigger()
        if trigger.type != "httpTrigger":
            continue
        path = "/" + "/".join(p for p in (prefix, trigger.route or function.get_function_name()) if p)
        for method in trigger.methods or ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]:
            routes.add((str(method).upper(), path))
    return routes


def openapi_routes() -> set[tuple[str, str]]:
    methods = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    return {(m.upper(), path) for path, item in spec()["paths"].items() for m in item if m in methods}


def test_the_openapi_file_is_valid_openapi_3_1() -> None:
    assert spec()["openapi"].startswith("3.1")
    validate(spec())


def test_every_http_route_is_in_the_openapi_file_and_every_path_is_a_route() -> None:
    routes = http_routes()
    assert routes, "the function index has no HTTP function"
    assert openapi_routes() == routes, (
        f"only in the app: {sorted(routes - openapi_routes())}; "
        f"only in docs/openapi.yaml: {sorted(openapi_routes() - routes)}"
    )


def test_every_json_example_in_the_protocol_doc_names_its_schema_and_validates() -> None:
    text = PROTOCOL_DOC.read_text(encoding="utf-8")
    blocks = _MARKED_BLOCK.findall(text)
    assert len(blocks) == len(_JSON_BLOCK.findall(text)), "a ```json block without <!-- schema: Name -->"
    assert len(blocks) >= 10
    for name, body in blocks:
        assert errors(json.loads(body), schema_validator(name)) == [], (name, body)


def test_the_doc_documents_every_schema_of_the_client_protocol() -> None:
    named = {name for name, _ in _MARKED_BLOCK.findall(PROTOCOL_DOC.read_text(encoding="utf-8"))}
    assert {"NotificationEnvelope", "AckEvent", "AckResult", "FcmV1Message", "ApnsPayload"} <= named


def _examples() -> list[tuple[str, Any, dict[str, Any]]]:
    found: list[tuple[str, Any, dict[str, Any]]] = []
    for path, item in spec()["paths"].items():
        for method, op in item.items():
            if not isinstance(op, dict):
                continue
            bodies = [("request", op.get("requestBody", {}))]
            bodies += [(status, resolve(r)) for status, r in op.get("responses", {}).items()]
            for where, body in bodies:
                for media in (body.get("content") or {}).values():
                    for name, example in (media.get("examples") or {}).items():
                        found.append((f"{method} {path} {where} {name}", media["schema"], example["value"]))
    for name, response in spec()["components"]["responses"].items():
        for media in (response.get("content") or {}).values():
            for example_name, example in (media.get("examples") or {}).items():
                found.append((f"response {name} {example_name}", media["schema"], example["value"]))
    return found


def test_every_example_in_the_openapi_file_validates() -> None:
    examples = _examples()
    assert len(examples) >= 6
    for where, schema, value in examples:
        assert errors(value, validator(schema)) == [], where


def test_the_envelope_the_notifier_sends_validates() -> None:
    envelope = NOTIFICATION.envelope()
    assert envelope["protocolVersion"] == CLIENT_PROTOCOL_VERSION
    assert errors(envelope, schema_validator("NotificationEnvelope")) == []
    # The envelope travels as JSON: what the client parses is what was validated.
    assert errors(json.loads(json.dumps(envelope)), schema_validator("NotificationEnvelope")) == []


@pytest.mark.parametrize("code", [None, *ERROR_CODES])
def test_every_ack_answer_validates(code: str | None) -> None:
    answer = json.loads(ack_response("n-1", code, "what went wrong")["data"])
    assert errors(answer, schema_validator("AckResult")) == []
    unnamed = json.loads(ack_response(None, "malformed", "x")["data"])
    assert errors(unnamed, schema_validator("AckResult")) == []


def test_an_ack_answer_that_contradicts_itself_does_not_validate() -> None:
    ok_with_error = json.loads(ack_response("n-1", "malformed", "x")["data"]) | {"ok": True}
    assert errors(ok_with_error, schema_validator("AckResult"))


def test_the_ack_error_codes_are_the_documented_ones() -> None:
    error = spec()["components"]["schemas"]["AckResult"]["properties"]["error"]
    assert set(error["properties"]["code"]["enum"]) == set(ERROR_CODES)


@pytest.mark.parametrize("options", [PushOptions(), PushOptions("normal", expires_at=1_900_000_060.0)])
def test_the_push_payloads_the_templates_render_validate(options: PushOptions) -> None:
    properties = template_properties(NOTIFICATION, options, now=1_900_000_000.0)
    fcm = json.loads(render_payload("fcmv1", properties))
    assert errors(fcm, schema_validator("FcmV1Message")) == []
    assert errors(fcm["message"]["data"], schema_validator("FcmV1Data")) == []
    apns = json.loads(render_payload("apns", properties))
    assert errors(apns, schema_validator("ApnsPayload")) == []
    for payload in (fcm["message"]["data"], apns):
        assert json.loads(payload["data"]) == NOTIFICATION.data


def test_the_retracts_the_templates_render_validate_and_are_not_notifications() -> None:
    properties = retract_properties(NOTIFICATION.notification_id, None, now=1_900_000_000.0)
    fcm = json.loads(render_payload("fcmv1", properties, retract=True))
    apns = json.loads(render_payload("apns", properties, retract=True))
    assert errors(fcm, schema_validator("FcmV1Retract")) == []
    assert errors(apns, schema_validator("ApnsRetract")) == []
    assert errors(fcm, schema_validator("FcmV1Message")) and errors(apns, schema_validator("ApnsPayload"))


def _error_classes() -> list[type[NotifyError]]:
    found: list[type[NotifyError]] = [NotifyError]
    for cls in found:
        found.extend(cls.__subclasses__())
    return found


def test_the_error_codes_are_the_app_error_tree() -> None:
    error = spec()["components"]["schemas"]["Error"]["properties"]["error"]
    declared = set(error["properties"]["code"]["enum"])
    assert declared == {cls.code for cls in _error_classes()}


def test_the_error_bodies_the_app_sends_validate() -> None:
    samples: list[NotifyError] = [
        NotifyError("internal error"),
        BadRequestError("platform must be one of: fcmv1 (alias fcm), apns", field="platform"),
        ConfigurationError("AUTH_OIDC_AUDIENCE", "is required"),
        UpstreamError("web pubsub", "answered 400", 400),
        TransientError("table storage", "answered 503", 503, retry_after=2),
    ]
    for error in samples:
        assert errors(error.to_dict(), schema_validator("Error")) == [], error.code


def test_the_negotiate_body_validates() -> None:
    connection = "Endpoint=http://127.0.0.1:8080;AccessKey=unit-test-access-key-not-secret-0000;Version=1.0;"
    # The SDK signs the client token locally with the key: no request is made.
    service = WebPubSubServiceClient.from_connection_string(connection, hub="notify")
    body = negotiate(service, "alice", 60)
    assert errors(body, schema_validator("NegotiateResponse")) == []


@pytest.mark.parametrize(
    "installation_id", ["phone-7f3a", "A", "x" * 128, "x" * 129, "-lead", "has space", "a/b", "é", "a_b-C9"]
)
def test_the_installation_id_schema_is_the_rule_the_app_applies(installation_id: str) -> None:
    try:
        validate_installation_id(installation_id)
        accepted = True
    except BadRequestError:
        accepted = False
    assert (errors(installation_id, schema_validator("InstallationId")) == []) is accepted


@pytest.mark.parametrize("platform", ["fcmv1", "FCMv1", "fcm", "apns", "APNS", "gcm", "wns", "", "fcmv2"])
def test_the_platform_schema_is_the_rule_the_app_applies(platform: str) -> None:
    accepted = platform.lower() in PLATFORM_ALIASES
    body = {"platform": platform, "pushChannel": "x"}
    assert (errors(body, schema_validator("DeviceRegistration")) == []) is accepted

