"""Sends: validate a send request as the service does, pick the target installations and render pushes."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from devstack.notificationhubs.installations import effective_tags, utc_now_iso
from devstack.notificationhubs.tags import Node, TagExpressionError, evaluate, parse_tag_expression
from devstack.notificationhubs.templates import TemplateError, render_template

FORMAT_PLATFORM = {
    "apple": "apns",
    "fcmv1": "fcmv1",
    "windows": "wns",
    "windowsphone": "mpns",
    "adm": "adm",
    "baidu": "baidu",
    "browser": "browser",
    "xiaomi": "xiaomi",
}
JSON_FORMATS = ("template", "apple", "fcmv1")
PNS_PAYLOAD_LIMIT = {"apns": 4096, "fcmv1": 4096}
TEST_SEND_MAX_DEVICES = 10
APNS_PUSH_TYPES = (
    "alert",
    "background",
    "voip",
    "complication",
    "fileprovider",
    "mdm",
    "location",
    "liveactivity",
    "pushtotalk",
    "widgets",
    "controls",
)
OUTCOME_NAMESPACE = "http://schemas.microsoft.com/netservices/2010/10/servicebus/connect"
DELIVERED_OUTCOME = "The Notification was successfully sent to the Push Notification System"
GCM_RETIRED = (
    "FCM legacy (platform/format 'gcm') was retired by Google on 2024-06-20; Notification Hubs no longer "
    "delivers it. Use format 'fcmv1' with a payload under 'message', and installations with platform 'fcmv1'."
)


class SendError(Exception):
    """The send request is invalid; ``status`` is the HTTP status the service answers with."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass
class SendRequest:
    """A validated send: format, body, targeting and passthrough headers."""

    format: str
    body_text: str
    properties: dict[str, str] | None
    expression: Node | None
    tags_header: str | None
    pns_headers: dict[str, str] = field(default_factory=dict)
    device_handle: str | None = None
    test: bool = False


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def _check_apns_headers(headers: Mapping[str, str]) -> dict[str, str]:
    passthrough: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.lower()
        if not lower.startswith("apns-"):
            continue
        if lower == "apns-expiration" and not value.strip().lstrip("-").isdigit():
            raise SendError(400, f"apns-expiration must be an integer (unix seconds), got '{value}'.")
        if lower == "apns-priority" and not (value.strip().isdigit() and 0 <= int(value) <= 255):
            raise SendError(400, f"apns-priority must be a byte value (APNs uses 5 or 10), got '{value}'.")
        if lower == "apns-push-type" and value.strip().lower() not in APNS_PUSH_TYPES:
            raise SendError(400, f"apns-push-type '{value}' is not an APNs push type.")
        passthrough[lower] = value
    return passthrough


def parse_send(
    headers: Mapping[str, str],
    body: bytes,
    direct: bool,
    test: bool,
) -> SendRequest:
    """Validate a send request (headers are case-insensitive); raises :class:`SendError`."""
    raw_format = headers.get("ServiceBusNotification-Format")
    if not raw_format:
        raise SendError(400, "The ServiceBusNotification-Format header is required.")
    fmt = raw_format.strip().lower()
    if fmt == "gcm":
        raise SendError(400, GCM_RETIRED)
    if fmt != "template" and fmt not in FORMAT_PLATFORM:
        raise SendError(
            400,
            f"Unknown ServiceBusNotification-Format '{raw_format}'; expected template, apple, fcmv1, "
            "windows, adm, baidu, browser or xiaomi.",
        )
    if fmt in JSON_FORMATS and _media_type(headers.get("Content-Type")) != "application/json":
        raise SendError(
            400,
            f"Content-Type must be application/json (charset utf-8) for format '{fmt}', "
            f"got '{headers.get('Content-Type', '')}'.",
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SendError(400, "The notification body must be UTF-8.") from exc
    if not text.strip():
        raise SendError(400, "The notification body is empty.")
    properties: dict[str, str] | None = None
    if fmt in JSON_FORMATS:
        try:
            parsed = json.loads(text)
        except ValueError as exc:
            raise SendError(400, f"The notification body is not valid JSON: {exc}.") from exc
        if not isinstance(parsed, dict):
            raise SendError(400, "The notification body must be a JSON object.")
        if fmt == "template":
            bad = [key for key, value in parsed.items() if not isinstance(value, str)]
            if bad:
                raise SendError(
                    400,
                    "A template notification body must be a flat JSON object with string values only; "
                    f"non-string value(s) for: {', '.join(bad[:5])}.",
                )
            properties = parsed
        elif fmt == "fcmv1" and not isinstance(parsed.get("message"), dict):
            raise SendError(400, "An fcmv1 notification body must have a top-level 'message' object.")
    if direct:
        handle = headers.get("ServiceBusNotification-DeviceHandle")
        if fmt == "template":
            raise SendError(400, "Direct send needs a platform format (apple, fcmv1, ...), not 'template'.")
        if not handle:
            raise SendError(400, "Direct send requires the ServiceBusNotification-DeviceHandle header.")
        return SendRequest(fmt, text, properties, None, None, _check_apns_headers(headers), handle, False)
    tags_header = headers.get("ServiceBusNotification-Tags")
    expression: Node | None = None
    if tags_header is not None and tags_header.strip():
        try:
            expression = parse_tag_expression(tags_header)
        except TagExpressionError as exc:
            raise SendError(400, f"Invalid ServiceBusNotification-Tags: {exc}") from exc
    return SendRequest(
        fmt, text, properties, expression, tags_header, _check_apns_headers(headers), None, test
    )


def _expired(installation: dict[str, Any]) -> bool:
    expiry = installation.get("expirationTime")
    if not expiry:
        return False
    try:
        moment = datetime.fromisoformat(str(expiry).replace("Z", "+00:00"))
    except ValueError:
        return False
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment < datetime.now(UTC)


def _payload_fields(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _fcm_v1_problem(payload_text: str) -> str | None:
    """What FCM v1 would reject in a rendered payload (it answers 400 INVALID_ARGUMENT), or None."""
    payload = _payload_fields(payload_text)
    message = payload.get("message") if isinstance(payload, dict) else None
    if not isinstance(message, dict):
        return "InvalidPayload: an FCM v1 payload must be a JSON object with a top-level 'message' object."
    data = message.get("data")
    if data is not None and (
        not isinstance(data, dict) or not all(isinstance(value, str) for value in data.values())
    ):
        return "InvalidPayload: FCM v1 'message.data' must map keys to string values only."
    android = message.get("android")
    if isinstance(android, dict):
        # AndroidConfig: ttl is a google.protobuf.Duration in JSON ("3.5s"), priority NORMAL or HIGH.
        ttl = android.get("ttl")
        if ttl is not None and not (isinstance(ttl, str) and _DURATION.fullmatch(ttl)):
            return f"InvalidPayload: FCM v1 'message.android.ttl' must be a duration like '60s', got {ttl!r}."
        priority = android.get("priority")
        if priority is not None and priority not in ("NORMAL", "HIGH"):
            return f"InvalidPayload: FCM v1 'message.android.priority' must be NORMAL or HIGH: {priority!r}."
    return None


_DURATION = re.compile(r"\d{1,12}(\.\d{1,9})?s")
APNS_COLLAPSE_ID_MAX_BYTES = 64


def _apns_problem(headers: Mapping[str, str]) -> str | None:
    """What APNs would answer 400 to (BadCollapseId, BadPriority), or None."""
    collapse = headers.get("apns-collapse-id")
    if collapse is not None and len(collapse.encode("utf-8")) > APNS_COLLAPSE_ID_MAX_BYTES:
        return f"BadCollapseId: apns-collapse-id is over {APNS_COLLAPSE_ID_MAX_BYTES} bytes."
    if headers.get("apns-push-type") == "background" and headers.get("apns-priority") == "10":
        return "BadPriority: a background push must be sent with apns-priority 5."
    return None


def _push(
    hub: str,
    notification_id: str,
    send: SendRequest,
    installation: dict[str, Any] | None,
    platform: str,
    channel: Any,
    payload_text: str,
    headers: dict[str, str],
    template: str | None = None,
    failure: str | None = None,
) -> dict[str, Any]:
    limit = PNS_PAYLOAD_LIMIT.get(platform)
    size = len(payload_text.encode("utf-8"))
    if failure is None and limit is not None and size > limit:
        failure = (
            f"PayloadTooLarge: the {platform} payload is {size} bytes after rendering; the limit is {limit}."
        )
    if failure is None and platform == "fcmv1":
        failure = _fcm_v1_problem(payload_text)
    if failure is None and platform == "apns":
        failure = _apns_problem(headers)
    return {
        "id": str(uuid.uuid4()),
        "notificationId": notification_id,
        "hub": hub.lower(),
        "installationId": installation["installationId"] if installation else None,
        "platform": platform,
        "pushChannel": channel,
        "format": send.format,
        "template": template,
        "payload": _payload_fields(payload_text),
        "payloadText": payload_text,
        "headers": headers,
        "tags": sorted(installation.get("tags", [])) if installation else [],
        "userId": installation.get("userId") if installation else None,
        "direct": send.device_handle is not None,
        "test": send.test,
        "time": utc_now_iso(),
        "scheduledTime": None,
        "outcome": "failed" if failure else "delivered",
        "reason": failure,
    }


def fan_out(
    hub: str,
    notification_id: str,
    send: SendRequest,
    installations: Iterable[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Return one push record per device (and per matching template) the send reaches."""
    if send.device_handle is not None:
        platform = FORMAT_PLATFORM[send.format]
        return [
            _push(
                hub,
                notification_id,
                send,
                None,
                platform,
                send.device_handle,
                send.body_text,
                dict(send.pns_headers),
            )
        ]
    pushes: list[dict[str, Any]] = []
    for installation in installations:
        if _expired(installation):
            continue
        platform = installation["platform"]
        pns_headers = dict(send.pns_headers) if platform == "apns" else {}
        if send.format != "template":
            if FORMAT_PLATFORM[send.format] != platform:
                continue
            if send.expression is not None and not evaluate(send.expression, effective_tags(installation)):
                continue
            pushes.append(
                _push(
                    hub,
                    notification_id,
                    send,
                    installation,
                    platform,
                    installation["pushChannel"],
                    send.body_text,
                    pns_headers,
                )
            )
            continue
        for name, template in installation.get("templates", {}).items():
            if send.expression is not None and not evaluate(
                send.expression, effective_tags(installation, name)
            ):
                continue
            props = {**installation.get("pushVariables", {}), **(send.properties or {})}
            headers = {**pns_headers, **template.get("headers", {})}
            failure = GCM_RETIRED if platform == "gcm" else None
            try:
                text = render_template(template["body"], props)
            except TemplateError as exc:
                text, failure = "", f"TemplateError: {exc}"
            pushes.append(
                _push(
                    hub,
                    notification_id,
                    send,
                    installation,
                    platform,
                    installation["pushChannel"],
                    text,
                    headers,
                    name,
                    failure,
                )
            )
    if send.test:
        pushes = pushes[:TEST_SEND_MAX_DEVICES]
    return pushes


def outcome_xml(pushes: list[dict[str, Any]]) -> str:
    """The NotificationOutcome XML body a test send answers with."""
    results = "".join(
        "<RegistrationResult>"
        f"<ApplicationPlatform>{escape(push['platform'])}</ApplicationPlatform>"
        f"<PnsHandle>{escape(str(push['pushChannel']))}</PnsHandle>"
        f"<RegistrationId>{escape(push['installationId'] or '')}</RegistrationId>"
        f"<Outcome>{escape(push['reason'] or DELIVERED_OUTCOME)}</Outcome>"
        "</RegistrationResult>"
        for push in pushes
    )
    success = sum(1 for push in pushes if push["outcome"] == "delivered")
    return (
        f'<NotificationOutcome xmlns="{OUTCOME_NAMESPACE}" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">'
        f"<Success>{success}</Success><Failure>{len(pushes) - success}</Failure>"
        f"<Results>{results}</Results></NotificationOutcome>"
    )
