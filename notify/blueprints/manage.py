"""The management API for backends and support (``/api/manage/...``), authorized apart from app users.

``GET /api/manage/users/{userId}/notifications/{notificationId}``: status and timeline of one notification.
``GET /api/manage/users/{userId}/notifications?status=pushed,no_devices&limit=25&continuationToken=...``:
the user's notifications, optionally of some statuses only, a page at a time.

Callers authenticate with a backend token (:class:`shared.auth.ManageAuthenticator`); app users' tokens
are refused. Not under ``admin``: the Functions host refuses, at start, any HTTP route starting with
``admin`` or ``runtime`` (a plain prefix of the route before ``api/`` is applied, so ``administration``
too; a function without a route is routed by its name); the local host applies the same rule
(devstack/functions_host/indexing.py).
"""

from __future__ import annotations

from typing import Protocol

import azure.functions as func

from notify.deliveries import DeliveryStore
from notify.manage import delivery_status, list_deliveries, parse_limit, parse_statuses, query_value
from shared.auth import Backend, get_manage_authenticator
from shared.clients import get_table_client
from shared.http import handle_errors, json_response
from shared.once import process_wide
from shared.settings import get_settings

bp = func.Blueprint()  # type: ignore[no-untyped-call]

# Answers name users and their notifications: nothing on the way may keep them.
NO_STORE = {"Cache-Control": "no-store"}


class BackendAuthenticator(Protocol):
    """Anything that turns request headers into a Backend (shared.auth.ManageAuthenticator)."""

    def authenticate(self, headers: dict[str, str]) -> Backend:
        """Return the calling backend or raise UnauthorizedError / ForbiddenError."""
        ...


@handle_errors
def notification_status_response(
    req: func.HttpRequest, authenticator: BackendAuthenticator, store: DeliveryStore
) -> func.HttpResponse:
    """Handle ``GET /api/manage/users/{userId}/notifications/{notificationId}``."""
    authenticator.authenticate(dict(req.headers))
    body = delivery_status(
        store, req.route_params.get("userId", ""), req.route_params.get("notificationId", "")
    )
    return json_response(body, headers=NO_STORE)


@handle_errors
def notification_list_response(
    req: func.HttpRequest, authenticator: BackendAuthenticator, store: DeliveryStore
) -> func.HttpResponse:
    """Handle ``GET /api/manage/users/{userId}/notifications``."""
    authenticator.authenticate(dict(req.headers))
    params = req.params
    body = list_deliveries(
        store,
        req.route_params.get("userId", ""),
        parse_statuses(query_value(params, "status")),
        parse_limit(query_value(params, "limit")),
        query_value(params, "continuationToken"),
    )
    return json_response(body, headers=NO_STORE)


@bp.route(route="manage/users/{userId}/notifications/{notificationId}", methods=["GET"])
@handle_errors
def manage_notification(req: func.HttpRequest) -> func.HttpResponse:
    """Status and timeline of one of a user's notifications (backends only)."""
    return notification_status_response(req, get_manage_authenticator(), get_manage_store())


@bp.route(route="manage/users/{userId}/notifications", methods=["GET"])
@handle_errors
def manage_notifications(req: func.HttpRequest) -> func.HttpResponse:
    """A user's notifications, optionally filtered by status (backends only)."""
    return notification_list_response(req, get_manage_authenticator(), get_manage_store())


@process_wide
def get_manage_store() -> DeliveryStore:
    """The deliveries table, as the management API reads it."""
    return DeliveryStore(get_table_client(get_settings().deliveries_table))
