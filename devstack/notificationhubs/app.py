"""The aiohttp application: NH data-plane routes, the /_devstack control routes and the middlewares."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web

from devstack.notificationhubs.faults import FaultSpecError, parse_fault
from devstack.notificationhubs.installations import InstallationError, apply_patch, validate_installation
from devstack.notificationhubs.sas import LISTEN, SEND, SasError, authorize
from devstack.notificationhubs.scheduled import (
    SCHEDULE_TIME_HEADER,
    TIER_REFUSAL,
    ScheduledSend,
    parse_schedule_time,
)
from devstack.notificationhubs.sends import SendError, fan_out, outcome_xml, parse_send
from devstack.notificationhubs.state import EmulatorState, Hub

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
API_VERSIONS = frozenset(
    {
        "2013-04",
        "2013-07",
        "2013-08",
        "2013-10",
        "2014-01",
        "2014-09",
        "2015-01",
        "2015-04",
        "2016-07",
        "2017-04",
        "2020-06",
    }
)
STATE_KEY = web.AppKey("nh_state", EmulatorState)
TRACKING_KEY = web.RequestKey("nh_tracking_id", str)
DEVSTACK_PREFIX = "/_devstack/"
#: Path segments under a hub of service APIs the emulator does not have (registrations, jobs, feedback).
UNEMULATED_APIS = ("registrations", "registrationIDs", "registrationids", "jobs", "feedbackcontainer", "tags")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class NhError(Exception):
    """An error answered as the service does: XML ``<Error><Code/><Detail/></Error>``."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


def _tracking_id(request: web.Request) -> str:
    return str(request.get(TRACKING_KEY, ""))


def _error_response(request: web.Request, status: int, detail: str, headers: dict[str, str]) -> web.Response:
    stamp = datetime.now(UTC).strftime("%m/%d/%Y %I:%M:%S %p")
    text = f"{detail}.TrackingId:{_tracking_id(request)},TimeStamp:{stamp}"
    body = f"<Error><Code>{status}</Code><Detail>{escape(text)}</Detail></Error>"
    return web.Response(status=status, text=body, content_type="application/xml", headers=headers)


@web.middleware
async def tracking_and_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give every request a TrackingId and turn every error into the service's XML error body."""
    tracking_id = str(uuid.uuid4())
    request[TRACKING_KEY] = tracking_id
    try:
        response = await handler(request)
    except NhError as exc:
        response = _error_response(request, exc.status, exc.detail, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _error_response(request, exc.status, exc.reason, {})
    response.headers["TrackingId"] = tracking_id
    response.headers["x-ms-correlation-request-id"] = tracking_id
    return response


@web.middleware
async def injected_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer with an armed fault before the handler runs, so a faulted request has no side effect."""
    if not request.path.startswith(DEVSTACK_PREFIX):
        fault = request.app[STATE_KEY].faults.take(request.method, request.path_qs)
        if fault is not None:
            if fault.delay_seconds:
                await asyncio.sleep(fault.delay_seconds)
            if fault.status is not None:
                headers = {}
                if fault.retry_after is not None:
                    headers["Retry-After"] = str(int(fault.retry_after))
                raise NhError(
                    fault.status, f"Injected fault {fault.status} (devstack fault injection)", headers
                )
    return await handler(request)


def _state(request: web.Request) -> EmulatorState:
    return request.app[STATE_KEY]


def _check_api_version(request: web.Request) -> str:
    version = request.query.get("api-version")
    if not version:
        raise NhError(400, "The api-version query parameter is required (use api-version=2020-06)")
    if version not in API_VERSIONS:
        raise NhError(400, f"The api-version '{version}' is not supported; use 2020-06")
    return version


def _authorize(request: web.Request, right: str) -> None:
    try:
        authorize(request.headers.get("Authorization"), str(request.url), _state(request).rules, right)
    except SasError as exc:
        raise NhError(401, exc.detail) from exc


def _hub(request: web.Request) -> Hub:
    hub = _state(request).hub(request.match_info["hub"])
    if hub is None:
        raise NhError(404, f"The notification hub '{request.match_info['hub']}' was not found")
    return hub


async def _read_body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise NhError(413, f"The request body is {request.content_length} bytes; the limit is 64 KB")
    body = await request.read()
    if len(body) > MAX_BODY_BYTES:
        raise NhError(413, f"The request body is {len(body)} bytes; the limit is 64 KB")
    return body


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise NhError(400, f"The request body is not valid JSON: {exc}") from exc


def _guard(request: web.Request, right: str) -> Hub:
    _authorize(request, right)
    _check_api_version(request)
    return _hub(request)


async def put_installation(request: web.Request) -> web.Response:
    """PUT /{hub}/installations/{id}: create or overwrite (200)."""
    hub = _guard(request, LISTEN)
    if request.content_type != "application/json":
        raise NhError(400, f"Content-Type must be application/json, got '{request.content_type}'")
    body = _parse_json(await _read_body(request))
    installation_id = request.match_info["installation_id"]
    try:
        installation = validate_installation(body, installation_id)
    except InstallationError as exc:
        raise NhError(400, str(exc)) from exc
    with _state(request).lock:
        hub.installations[installation_id] = installation
    logger.info("installation stored hub=%s platform=%s", hub.name, installation["platform"])
    return web.Response(status=200)


async def patch_installation(request: web.Request) -> web.Response:
    """PATCH /{hub}/installations/{id}: RFC 6902 operations (200; 404 when absent)."""
    hub = _guard(request, LISTEN)
    if request.content_type not in ("application/json", "application/json-patch+json"):
        raise NhError(
            400,
            f"Content-Type must be application/json-patch+json or application/json, "
            f"got '{request.content_type}'",
        )
    operations = _parse_json(await _read_body(request))
    installation_id = request.match_info["installation_id"]
    state = _state(request)
    with state.lock:
        current = hub.installations.get(installation_id)
        if current is None:
            raise NhError(404, f"Installation '{installation_id}' was not found")
        try:
            hub.installations[installation_id] = apply_patch(current, operations)
        except InstallationError as exc:
            raise NhError(400, str(exc)) from exc
    return web.Response(status=200)


async def get_installation(request: web.Request) -> web.Response:
    """GET /{hub}/installations/{id}: 200 JSON or 404."""
    hub = _guard(request, LISTEN)
    installation_id = request.match_info["installation_id"]
    found = _state(request).installation(hub.name, installation_id)
    if found is None:
        raise NhError(404, f"Installation '{installation_id}' was not found")
    return web.json_response(found)


async def delete_installation(request: web.Request) -> web.Response:
    """DELETE /{hub}/installations/{id}: 204, also when it never existed."""
    hub = _guard(request, LISTEN)
    with _state(request).lock:
        hub.installations.pop(request.match_info["installation_id"], None)
    return web.Response(status=204)


async def send_notification(request: web.Request) -> web.Response:
    """POST /{hub}/messages[/]: template, native, direct and test sends (201 + Location)."""
    hub = _guard(request, SEND)
    version = _check_api_version(request)
    body = await _read_body(request)
    direct = "direct" in request.query and request.query.get("direct", "").lower() != "false"
    test = "test" in request.query and request.query.get("test", "").lower() != "false"
    try:
        send = parse_send(request.headers, body, direct=direct, test=test and not direct)
    except SendError as exc:
        raise NhError(exc.status, exc.detail) from exc
    notification_id = uuid.uuid4().hex
    state = _state(request)
    with state.lock:
        installations = [dict(i) for i in hub.installations.values()]
    pushes = fan_out(hub.name, notification_id, send, installations)
    for push in pushes:
        state.sink.record(push)
    logger.info(
        "send hub=%s format=%s targets=%d failed=%d",
        hub.name,
        send.format,
        len(pushes),
        sum(1 for p in pushes if p["outcome"] != "delivered"),
    )
    location = (
        f"{request.scheme}://{request.host}/{hub.name}/messages/{notification_id}?api-version={version}"
    )
    headers = {"Location": location}
    if send.test:
        return web.Response(
            status=201, text=outcome_xml(pushes), content_type="application/xml", headers=headers
        )
    return web.Response(status=201, headers=headers)


def _require_standard_tier(state: EmulatorState) -> None:
    if state.tier != "standard":
        detail = f"{TIER_REFUSAL}: scheduled notifications need the Standard tier (this hub is {state.tier})"
        raise NhError(403, detail)


async def schedule_notification(request: web.Request) -> web.Response:
    """POST /{hub}/schedulednotifications[/]: hold a send until ServiceBusNotification-ScheduleTime (201)."""
    hub = _guard(request, SEND)
    version = _check_api_version(request)
    state = _state(request)
    _require_standard_tier(state)
    body = await _read_body(request)
    try:
        due = parse_schedule_time(request.headers.get(SCHEDULE_TIME_HEADER))
        send = parse_send(request.headers, body, direct=False, test=False)
    except SendError as exc:
        raise NhError(exc.status, exc.detail) from exc

    def deliver(item: ScheduledSend) -> None:
        with state.lock:
            installations = [dict(i) for i in hub.installations.values()]
        pushes = fan_out(hub.name, item.id, item.send, installations)
        for push in pushes:
            push["scheduledTime"] = item.describe()["scheduledTime"]
            state.sink.record(push)
        logger.info("scheduled send hub=%s format=%s targets=%d", hub.name, item.send.format, len(pushes))

    item = state.scheduler.schedule(hub.name, send, due, deliver)
    location = (
        f"{request.scheme}://{request.host}/{hub.name}/schedulednotifications/{item.id}?api-version={version}"
    )
    return web.Response(status=201, headers={"Location": location})


async def cancel_scheduled_notification(request: web.Request) -> web.Response:
    """DELETE /{hub}/schedulednotifications/{id}: cancel a pending scheduled send (200; 404 if none)."""
    hub = _guard(request, SEND)
    state = _state(request)
    _require_standard_tier(state)
    notification_id = request.match_info["notification_id"]
    if not state.scheduler.cancel(hub.name, notification_id):
        detail = f"The scheduled notification '{notification_id}' was not found (already sent or cancelled)"
        raise NhError(404, detail)
    return web.Response(status=200)


async def list_scheduled(request: web.Request) -> web.Response:
    """GET /_devstack/scheduled[?hub=]: pending scheduled sends, soonest first."""
    return web.json_response(_state(request).scheduler.pending(request.query.get("hub")))


async def not_implemented(request: web.Request) -> web.Response:
    """Service routes the emulator does not implement (batch direct send, telemetry, registrations, jobs)."""
    raise NhError(501, f"{request.method} {request.path} is not implemented by the devstack emulator")


def _filters(request: web.Request) -> dict[str, str | None]:
    query = request.query
    return {
        "hub": query.get("hub"),
        "installation_id": query.get("installationId"),
        "tag": query.get("tag"),
        "notification_id": query.get("notificationId"),
        "outcome": query.get("outcome"),
    }


async def list_pushes(request: web.Request) -> web.Response:
    """GET /_devstack/pushes?hub=&installationId=&tag=&notificationId=&outcome=."""
    return web.json_response(_state(request).sink.pushes(**_filters(request)))


async def clear_pushes(request: web.Request) -> web.Response:
    """DELETE /_devstack/pushes[?hub=]."""
    removed = _state(request).sink.clear(request.query.get("hub"))
    return web.json_response({"removed": removed})


async def add_faults(request: web.Request) -> web.Response:
    """POST /_devstack/faults with one fault object or an array of them."""
    spec = _parse_json(await request.read())
    specs = spec if isinstance(spec, list) else [spec]
    try:
        faults = [parse_fault(item) for item in specs]
    except FaultSpecError as exc:
        raise NhError(400, str(exc)) from exc
    for fault in faults:
        _state(request).faults.add(fault)
    return web.json_response({"armed": _state(request).faults.armed()}, status=201)


async def list_faults(request: web.Request) -> web.Response:
    """GET /_devstack/faults."""
    return web.json_response({"armed": _state(request).faults.armed()})


async def clear_faults(request: web.Request) -> web.Response:
    """DELETE /_devstack/faults."""
    _state(request).faults.clear()
    return web.Response(status=204)


async def put_hub(request: web.Request) -> web.Response:
    """PUT /_devstack/hubs/{hub}: 201 when created, 200 when it existed."""
    try:
        created = _state(request).create_hub(request.match_info["hub"])
    except ValueError as exc:
        raise NhError(400, str(exc)) from exc
    return web.json_response({"hub": request.match_info["hub"]}, status=201 if created else 200)


async def list_hubs(request: web.Request) -> web.Response:
    """GET /_devstack/hubs."""
    return web.json_response({"hubs": _state(request).hub_names()})


async def list_installations(request: web.Request) -> web.Response:
    """GET /_devstack/hubs/{hub}/installations: every stored installation of a hub."""
    hub = _hub(request)
    with _state(request).lock:
        return web.json_response(list(hub.installations.values()))


async def health(request: web.Request) -> web.Response:
    """GET /_devstack/health."""
    state = _state(request)
    return web.json_response({"status": "ok", "hubs": state.hub_names(), "tier": state.tier})


def create_app(state: EmulatorState) -> web.Application:
    """Build the emulator's aiohttp application around ``state``."""
    app = web.Application(middlewares=[tracking_and_errors, injected_faults], client_max_size=4 * 1024 * 1024)
    app[STATE_KEY] = state
    app.router.add_get("/_devstack/health", health)
    app.router.add_get("/_devstack/pushes", list_pushes)
    app.router.add_delete("/_devstack/pushes", clear_pushes)
    app.router.add_post("/_devstack/faults", add_faults)
    app.router.add_get("/_devstack/faults", list_faults)
    app.router.add_delete("/_devstack/faults", clear_faults)
    app.router.add_get("/_devstack/hubs", list_hubs)
    app.router.add_put("/_devstack/hubs/{hub}", put_hub)
    app.router.add_get("/_devstack/hubs/{hub}/installations", list_installations)
    app.router.add_get("/_devstack/scheduled", list_scheduled)
    installation = "/{hub}/installations/{installation_id}"
    app.router.add_put(installation, put_installation)
    app.router.add_patch(installation, patch_installation)
    app.router.add_get(installation, get_installation)
    app.router.add_delete(installation, delete_installation)
    app.router.add_post("/{hub}/messages", send_notification)
    app.router.add_post("/{hub}/messages/", send_notification)
    app.router.add_route("*", "/{hub}/messages/{rest:.+}", not_implemented)
    # Service APIs the emulator does not have: a clear 501 rather than a 404 that reads as "no such hub".
    for unemulated in UNEMULATED_APIS:
        app.router.add_route("*", f"/{{hub}}/{unemulated}", not_implemented)
        app.router.add_route("*", f"/{{hub}}/{unemulated}/{{rest:.*}}", not_implemented)
    app.router.add_post("/{hub}/schedulednotifications", schedule_notification)
    app.router.add_post("/{hub}/schedulednotifications/", schedule_notification)
    app.router.add_delete("/{hub}/schedulednotifications/{notification_id}", cancel_scheduled_notification)
    return app
