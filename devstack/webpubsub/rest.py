"""The data-plane REST API under ``/api/hubs/{hub}`` as azure-messaging-webpubsubservice calls it."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from urllib.parse import unquote

from aiohttp import web

from devstack.webpubsub.auth import TokenError, issue_client_token, verify_server_token
from devstack.webpubsub.odata_filter import FilterError, compile_filter
from devstack.webpubsub.protocol import Payload, PayloadError, payload_from_http
from devstack.webpubsub.settings import HUB_NAME_PATTERN
from devstack.webpubsub.state import Connection, EmulatorState, HubState

logger = logging.getLogger(__name__)

STATE_KEY: web.AppKey[EmulatorState] = web.AppKey("webpubsub_state", EmulatorState)
PERMISSIONS = ("joinLeaveGroup", "sendToGroup")


def error_response(status: int, code: str, message: str) -> web.Response:
    """A JSON error body ``{"code", "message"}`` with the given status."""
    return web.json_response({"code": code, "message": message}, status=status)


def _segments(request: web.Request) -> list[str]:
    path = request.raw_path.split("?", 1)[0]
    return [unquote(s) for s in path.split("/")[1:]]


def _excluded(request: web.Request) -> set[str]:
    return set(request.query.getall("excluded", []))


def _select(conns: Iterable[Connection], request: web.Request) -> list[Connection]:
    """Apply ``excluded`` and ``filter`` query parameters; raises FilterError."""
    excluded = _excluded(request)
    predicate = compile_filter(request.query.get("filter"))
    chosen = []
    for conn in conns:
        if conn.id in excluded:
            continue
        if predicate is not None and not predicate(
            {"userId": conn.user_id, "connectionId": conn.id, "groups": sorted(conn.groups)}
        ):
            continue
        chosen.append(conn)
    return chosen


async def _read_payload(request: web.Request, limit: int) -> Payload | web.Response:
    declared = request.content_length
    if declared is not None and declared > limit:
        return error_response(
            413, "RequestEntityTooLarge", f"the message is {declared} bytes; the limit is {limit}"
        )
    body = await request.read()
    if len(body) > limit:
        return error_response(
            413, "RequestEntityTooLarge", f"the message is {len(body)} bytes; the limit is {limit}"
        )
    try:
        return payload_from_http(body, request.headers.get("Content-Type"))
    except PayloadError as exc:
        return error_response(400, "InvalidRequest", str(exc))


class RestApi:
    """Dispatches ``/api/hubs/...`` requests by method and path shape."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Entry point for every ``/api/...`` request."""
        seg = _segments(request)
        if len(seg) < 3 or seg[0] != "api" or seg[1] != "hubs":
            return error_response(404, "NotFound", f"no such API: {request.method} {request.path}")
        hub_name = seg[2]
        if not HUB_NAME_PATTERN.match(hub_name):
            return error_response(
                400,
                "InvalidRequest",
                f"invalid hub name {hub_name!r}: letters, digits, underscore; letter first",
            )
        url = f"{request.scheme}://{request.host}{request.raw_path}"
        try:
            verify_server_token(request.headers.get("Authorization"), url, self.state.config.keys)
        except TokenError as exc:
            logger.info("REST %s %s rejected: %s", request.method, request.path, exc)
            return error_response(401, "Unauthorized", str(exc))
        if "api-version" not in request.query:
            return error_response(400, "InvalidRequest", "the query parameter 'api-version' is required")
        hub = self.state.hub(hub_name)
        try:
            response = await self._route(request, hub, seg[3:])
        except FilterError as exc:
            return error_response(400, "InvalidRequest", str(exc))
        if response is None:
            return error_response(404, "NotFound", f"no such API: {request.method} {request.path}")
        return response

    async def _route(self, request: web.Request, hub: HubState, rest: list[str]) -> web.StreamResponse | None:
        m = request.method
        n = len(rest)
        if n == 1 and m == "POST":
            if rest[0] == ":send":
                return await self._send(request, _select(hub.connections.values(), request))
            if rest[0] == ":closeConnections":
                return await self._close(request, hub.connections.values())
            if rest[0] == ":generateToken":
                return self._generate_token(request, hub)
            if rest[0] in (":addToGroups", ":removeFromGroups"):
                return await self._filtered_groups(request, hub, add=rest[0] == ":addToGroups")
        if n >= 2 and rest[0] == "users":
            return await self._users(request, hub, rest[1], rest[2:])
        if n >= 2 and rest[0] == "groups":
            return await self._groups(request, hub, rest[1], rest[2:])
        if n >= 2 and rest[0] == "connections":
            return await self._connections(request, hub, rest[1], rest[2:])
        if n == 4 and rest[0] == "permissions" and rest[2] == "connections":
            return self._permission(request, hub, rest[1], rest[3])
        return None

    async def _send(
        self, request: web.Request, conns: list[Connection], group: str | None = None
    ) -> web.Response:
        payload = await _read_payload(request, self.state.config.max_message_bytes)
        if isinstance(payload, web.Response):
            return payload
        if group is None:
            await self.state.deliver_server_message(conns, payload)
        else:
            await self.state.deliver_group_message(conns, group, None, payload)
        return web.Response(status=202)

    async def _close(self, request: web.Request, conns: Iterable[Connection]) -> web.Response:
        excluded = _excluded(request)
        reason = request.query.get("reason") or "The connection is closed by the server."
        for conn in list(conns):
            if conn.id not in excluded:
                await self.state.close_connection(conn, reason)
        return web.Response(status=204)

    async def _filtered_groups(self, request: web.Request, hub: HubState, add: bool) -> web.Response:
        """``:addToGroups`` / ``:removeFromGroups``: body ``{"groups": [...], "filter": "<OData>"}``; 200."""
        try:
            body = json.loads(await request.read() or b"null")
        except ValueError as exc:
            return error_response(400, "InvalidRequest", f"the body is not valid JSON: {exc}")
        groups = body.get("groups") if isinstance(body, dict) else None
        if not isinstance(groups, list) or not groups or not all(isinstance(g, str) and g for g in groups):
            return error_response(
                400, "InvalidRequest", "the body needs 'groups', a non-empty array of group names"
            )
        filter_text = body.get("filter")
        if filter_text is not None and not isinstance(filter_text, str):
            return error_response(400, "InvalidRequest", "'filter' must be an OData filter string")
        predicate = compile_filter(filter_text)
        for conn in list(hub.connections.values()):
            fields = {"userId": conn.user_id, "connectionId": conn.id, "groups": sorted(conn.groups)}
            if predicate is not None and not predicate(fields):
                continue
            for group in groups:
                if add:
                    hub.add_to_group(conn, group)
                else:
                    hub.remove_from_group(conn, group)
        return web.Response(status=200)

    def _generate_token(self, request: web.Request, hub: HubState) -> web.Response:
        client_type = (request.query.get("clientType") or "Default").lower()
        path = {"mqtt": "/clients/mqtt/hubs/", "socketio": "/clients/socketio/hubs/"}.get(
            client_type, "/client/hubs/"
        )
        try:
            minutes = int(request.query.get("minutesToExpire", "60"))
        except ValueError:
            return error_response(400, "InvalidRequest", "minutesToExpire must be an integer")
        audience = f"{request.scheme}://{request.host}".lower() + path + hub.name
        token = issue_client_token(
            audience,
            request.query.get("userId"),
            request.query.getall("role", []),
            request.query.getall("group", []),
            minutes,
            self.state.config.access_key,
        )
        return web.json_response({"token": token})

    async def _users(
        self, request: web.Request, hub: HubState, user: str, rest: list[str]
    ) -> web.Response | None:
        m = request.method
        conns = hub.user_connections(user)
        if not rest and m == "HEAD":
            return web.Response(status=200 if conns else 404)
        if rest == [":send"] and m == "POST":
            return await self._send(request, _select(conns, request))
        if rest == [":closeConnections"] and m == "POST":
            return await self._close(request, conns)
        if rest == ["groups"] and m == "DELETE":
            for conn in conns:
                hub.remove_from_all_groups(conn)
            return web.Response(status=204)
        if len(rest) == 2 and rest[0] == "groups":
            if m == "PUT":
                for conn in conns:
                    hub.add_to_group(conn, rest[1])
                return web.Response(status=200)
            if m == "DELETE":
                for conn in conns:
                    hub.remove_from_group(conn, rest[1])
                return web.Response(status=204)
        return None

    async def _groups(
        self, request: web.Request, hub: HubState, group: str, rest: list[str]
    ) -> web.Response | None:
        m = request.method
        members = hub.group_connections(group)
        if not rest and m == "HEAD":
            return web.Response(status=200 if members else 404)
        if rest == [":send"] and m == "POST":
            return await self._send(request, _select(members, request), group=group)
        if rest == [":closeConnections"] and m == "POST":
            return await self._close(request, members)
        if rest == ["connections"] and m == "GET":
            top = request.query.get("top")
            listed = [{"connectionId": c.id, "userId": c.user_id} for c in members]
            if top is not None and top.isdigit():
                listed = listed[: int(top)]
            return web.json_response({"value": listed})
        if len(rest) == 2 and rest[0] == "connections":
            conn = hub.connections.get(rest[1])
            if m == "PUT":
                if conn is None:
                    return error_response(404, "NotFound", f"connection {rest[1]!r} does not exist")
                hub.add_to_group(conn, group)
                return web.Response(status=200)
            if m == "DELETE":
                if conn is not None:
                    hub.remove_from_group(conn, group)
                return web.Response(status=204)
        return None

    async def _connections(
        self, request: web.Request, hub: HubState, connection_id: str, rest: list[str]
    ) -> web.Response | None:
        m = request.method
        conn = hub.connections.get(connection_id)
        if not rest and m == "HEAD":
            return web.Response(status=200 if conn else 404)
        if not rest and m == "DELETE":
            if conn is not None:
                await self.state.close_connection(
                    conn, request.query.get("reason") or "The connection is closed by the server."
                )
            return web.Response(status=204)
        if rest == [":send"] and m == "POST":
            return await self._send(request, [conn] if conn else [])
        if rest == ["groups"] and m == "DELETE":
            if conn is not None:
                hub.remove_from_all_groups(conn)
            return web.Response(status=204)
        return None

    def _permission(
        self, request: web.Request, hub: HubState, permission: str, connection_id: str
    ) -> web.Response:
        if permission not in PERMISSIONS:
            return error_response(
                400, "InvalidRequest", f"unknown permission {permission!r}; use {PERMISSIONS}"
            )
        conn = hub.connections.get(connection_id)
        target = request.query.get("targetName")
        role = f"webpubsub.{permission}" + (f".{target}" if target else "")
        if request.method == "HEAD":
            allowed = conn is not None and (role in conn.roles or f"webpubsub.{permission}" in conn.roles)
            return web.Response(status=200 if allowed else 404)
        if conn is None:
            return error_response(404, "NotFound", f"connection {connection_id!r} does not exist")
        if request.method == "PUT":
            conn.roles.add(role)
            return web.Response(status=200)
        if request.method == "DELETE":
            conn.roles.discard(role)
            return web.Response(status=204)
        return error_response(404, "NotFound", f"no such API: {request.method} {request.path}")
