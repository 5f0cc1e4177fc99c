"""HTTP functions for device registration: ``PUT`` and ``DELETE /api/devices/{installationId}``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import azure.functions as func

from notify.devices import REPAIR_SCHEDULE, DeviceRegistry, get_device_registry
from shared.auth import Principal, get_authenticator
from shared.errors import BadRequestError
from shared.http import handle_errors, json_response
from shared.json_input import JsonInputError, parse_json

bp = func.Blueprint()  # type: ignore[no-untyped-call]

_ALLOWED_FIELDS = frozenset({"platform", "pushChannel"})
#: A registration is two short strings; an FCM token is at most 4096 characters.
MAX_BODY_BYTES = 16 * 1024


class RequestAuthenticator(Protocol):
    """Anything that turns request headers into a Principal (shared.auth.Authenticator)."""

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """Return the caller or raise UnauthorizedError."""
        ...


def _registration_body(req: func.HttpRequest) -> dict[str, Any]:
    content_type = (req.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise BadRequestError("Content-Type must be application/json")
    raw = req.get_body()
    if len(raw) > MAX_BODY_BYTES:
        raise BadRequestError(f"the request body is {len(raw)} bytes; the limit is {MAX_BODY_BYTES}")
    try:
        body = parse_json(raw)
    except JsonInputError as exc:
        raise BadRequestError(f"the request body {exc}") from None
    if not isinstance(body, dict):
        raise BadRequestError("the request body must be a JSON object")
    if "tags" in body:
        raise BadRequestError("tags are set by the server and may not be sent", field="tags")
    for name in body:
        if name not in _ALLOWED_FIELDS:
            raise BadRequestError(f"unknown field {name!r}; expected platform and pushChannel", field=name)
    for name in ("platform", "pushChannel"):
        if name not in body:
            raise BadRequestError(f"{name} is required", field=name)
    return body


@handle_errors
def register_device_response(
    req: func.HttpRequest, authenticator: RequestAuthenticator, registry: DeviceRegistry
) -> func.HttpResponse:
    """Handle ``PUT /api/devices/{installationId}`` with the given authenticator and registry."""
    principal = authenticator.authenticate(req.headers)
    installation_id = req.route_params.get("installationId", "")
    body = _registration_body(req)
    platform = registry.register(principal.user_id, installation_id, body["platform"], body["pushChannel"])
    return json_response({"installationId": installation_id, "platform": platform})


@handle_errors
def unregister_device_response(
    req: func.HttpRequest, authenticator: RequestAuthenticator, registry: DeviceRegistry
) -> func.HttpResponse:
    """Handle ``DELETE /api/devices/{installationId}``: 204 when deleted or already gone."""
    principal = authenticator.authenticate(req.headers)
    registry.unregister(principal.user_id, req.route_params.get("installationId", ""))
    return func.HttpResponse(status_code=204)


@bp.route(route="devices/{installationId}", methods=["PUT"])
@handle_errors
def register_device(req: func.HttpRequest) -> func.HttpResponse:
    """Register (create or replace) one of the caller's devices."""
    return register_device_response(req, get_authenticator(), get_device_registry())


@bp.route(route="devices/{installationId}", methods=["DELETE"])
@handle_errors
def unregister_device(req: func.HttpRequest) -> func.HttpResponse:
    """Unregister one of the caller's devices."""
    return unregister_device_response(req, get_authenticator(), get_device_registry())


@bp.timer_trigger(arg_name="timer", schedule=REPAIR_SCHEDULE, run_on_startup=False)
def repair_devices(timer: func.TimerRequest) -> None:
    """Complete device changes that crashed or failed halfway (see notify.devices)."""
    get_device_registry().repair()
