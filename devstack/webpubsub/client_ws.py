"""The client WebSocket endpoint ``/client/hubs/{hub}``: handshake, connect event, frames, recovery."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from devstack.webpubsub.auth import TokenError, claim_list, verify_client_token
from devstack.webpubsub.protocol import (
    CONTENT_TYPE_TO_DATA_TYPE,
    JSON_PROTOCOLS,
    RELIABLE_JSON_PROTOCOL,
    ClientFrame,
    FrameError,
    Payload,
    PayloadError,
    ack_frame,
    connected_frame,
    invoke_response_frame,
    media_type,
    parse_client_frame,
    payload_from_http,
    pong_frame,
)
from devstack.webpubsub.settings import HUB_NAME_PATTERN, HubSettings
from devstack.webpubsub.state import Connection, EmulatorState, new_connection_id
from devstack.webpubsub.upstream import EventContext, UpstreamResult

logger = logging.getLogger(__name__)

CLIENT_CLOSED_REASON = "The client closed the connection."
# WebSocket status 1007 (invalid payload data), what the service team's emulator closes with for a frame
# that is not a valid message of the subprotocol. Not 1008: that tells the JS client not to even try recovery.
INVALID_PAYLOAD_CLOSE = 1007
# How long a service-side close waits for the client's close frame.
CLOSE_TIMEOUT_SECONDS = 2.0
_NO_HANDLER = "No event handler is registered"


@dataclass(frozen=True)
class Failure:
    """Why a client frame could not be executed: the ack error name and message, and whether the service
    drops the connection when the frame had no ackId to report it on (failed user events only)."""

    name: str
    message: str
    drops_connection: bool = False


def _text(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message)


def _multi(items: Any) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for key, value in items:
        result.setdefault(key, []).append(value)
    return result


def payload_from_upstream(result: UpstreamResult) -> Payload | None:
    """The message a user-event response carries back to the client (None for an empty body)."""
    if not result.body:
        return None
    mt = media_type(result.content_type)
    if mt in CONTENT_TYPE_TO_DATA_TYPE:
        try:
            return payload_from_http(result.body, mt)
        except PayloadError:
            logger.warning("user event response is not valid %s; relayed as binary", mt)
    return Payload(result.body, "application/octet-stream")


def _transport(request: web.Request) -> asyncio.Transport | None:
    transport = request.transport
    return transport if isinstance(transport, asyncio.Transport) else None


def _has_role(conn: Connection, permission: str, group: str) -> bool:
    return f"webpubsub.{permission}" in conn.roles or f"webpubsub.{permission}.{group}" in conn.roles


class ClientEndpoint:
    """Serves client WebSocket connections for every hub."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Entry point for ``GET /client/hubs/{hub}`` (or ``/client?hub=``)."""
        hub_name = request.match_info.get("hub") or request.query.get("hub", "")
        if not HUB_NAME_PATTERN.match(hub_name):
            return _text(400, f"invalid hub name {hub_name!r}")
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return _text(400, "expected a WebSocket upgrade request")
        offered = [
            p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()
        ]
        if "awps_connection_id" in request.query:
            return await self._recover(request, hub_name, offered)
        return await self._connect(request, hub_name, offered)

    def _audiences(self, request: web.Request, hub: str) -> list[str]:
        host = request.host
        return [f"{scheme}://{host}/client/hubs/{hub}" for scheme in ("http", "https", "ws", "wss")]

    async def _connect(self, request: web.Request, hub_name: str, offered: list[str]) -> web.StreamResponse:
        settings = self.state.settings_for(hub_name)
        claims: dict[str, Any] = {}
        token = request.query.get("access_token")
        if token:
            try:
                claims = verify_client_token(
                    token, self._audiences(request, hub_name), self.state.config.keys
                )
            except TokenError as exc:
                logger.info("client connect to hub %s rejected: %s", hub_name, exc)
                return _text(401, f"Unauthorized: {exc}")
        user_id = claims.get("sub") if isinstance(claims.get("sub"), str) else None
        roles = set(claim_list(claims, "role"))
        groups = claim_list(claims, "webpubsub.group")
        subprotocol = next((p for p in offered if p in JSON_PROTOCOLS), None)
        connection_state: str | None = None
        conn_id = new_connection_id()

        handler = settings.handler_for_system_event("connect")
        if handler is not None:
            body = {
                "claims": {k: claim_list(claims, k) for k in claims},
                "query": {k: v for k, v in _multi(request.query.items()).items() if k != "access_token"},
                "headers": _multi(request.headers.items()),
                "subprotocols": offered,
                "clientCertificates": [],
            }
            ctx = EventContext(hub_name, conn_id, user_id, None, None)
            result = await self.state.upstream.deliver(
                handler,
                ctx,
                "connect",
                True,
                json.dumps(body).encode("utf-8"),
                "application/json; charset=utf-8",
            )
            if result.status is None:
                return _text(500, f"connect event failed: {result.error}")
            if not result.ok:
                return web.Response(status=result.status, body=result.body)
            connection_state = result.connection_state
            if result.status == 200 and result.body.strip():
                try:
                    answer = json.loads(result.body)
                except ValueError:
                    return _text(500, "the connect event handler answered with invalid JSON")
                if not isinstance(answer, dict):
                    return _text(500, "the connect event handler must answer with a JSON object")
                if isinstance(answer.get("userId"), str) and answer["userId"]:
                    user_id = answer["userId"]
                groups += [g for g in answer.get("groups") or [] if isinstance(g, str)]
                roles |= {r for r in answer.get("roles") or [] if isinstance(r, str)}
                chosen = answer.get("subprotocol")
                if isinstance(chosen, str) and chosen:
                    if chosen not in offered:
                        return _text(
                            500, f"the connect event handler chose subprotocol {chosen!r}, not offered"
                        )
                    subprotocol = chosen

        if user_id is None and settings.anonymous_connect_policy != "allow":
            logger.info("anonymous client refused by hub %s (anonymousConnectPolicy deny)", hub_name)
            return _text(
                401,
                "Unauthorized: anonymous connections are not allowed in this hub (no userId in the token's "
                "'sub' claim or the connect event response; anonymousConnectPolicy is 'deny')",
            )

        ws = web.WebSocketResponse(
            protocols=(subprotocol,) if subprotocol else (),
            max_msg_size=self.state.config.max_message_bytes,
            timeout=CLOSE_TIMEOUT_SECONDS,
        )
        await ws.prepare(request)
        conn = Connection(
            id=conn_id,
            hub=hub_name,
            user_id=user_id,
            roles=roles,
            subprotocol=ws.ws_protocol,
            connection_state=connection_state,
            ws=ws,
            transport=_transport(request),
        )
        if conn.is_reliable:
            conn.reconnection_token = secrets.token_urlsafe(32)
        hub = self.state.hub(hub_name)
        hub.connections[conn.id] = conn
        for group in groups:
            hub.add_to_group(conn, group)
        logger.info("connection %s joined hub %s (subprotocol %s)", conn.id, hub_name, conn.subprotocol)
        if conn.is_json:
            await conn.send_frame(connected_frame(user_id, conn.id, conn.reconnection_token))
        self._fire_connected(conn, settings)
        await self._serve(conn, ws)
        return ws

    def _fire_connected(self, conn: Connection, settings: HubSettings) -> None:
        handler = settings.handler_for_system_event("connected")
        if handler is None:
            return
        ctx = conn.context()

        async def send() -> None:
            result = await self.state.upstream.deliver(
                handler, ctx, "connected", True, b"{}", "application/json"
            )
            if not result.ok:
                logger.warning("connected event for %s failed: %s", conn.id, result.error or result.status)

        conn.system_events = self.state.spawn(send())

    async def _recover(self, request: web.Request, hub_name: str, offered: list[str]) -> web.StreamResponse:
        hub = self.state.hub(hub_name)
        conn = hub.connections.get(request.query["awps_connection_id"])
        token = request.query.get("awps_reconnection_token", "")
        valid = (
            conn is not None
            and not conn.closed
            and conn.reconnection_token is not None
            and secrets.compare_digest(conn.reconnection_token, token)
        )
        protocol = RELIABLE_JSON_PROTOCOL if RELIABLE_JSON_PROTOCOL in offered else None
        ws = web.WebSocketResponse(
            protocols=(protocol,) if protocol else (),
            max_msg_size=self.state.config.max_message_bytes,
            timeout=CLOSE_TIMEOUT_SECONDS,
        )
        await ws.prepare(request)
        if not valid or conn is None:
            # Client spec: a failed recovery is a WebSocket close with 1008; the client then reconnects anew.
            await ws.close(code=1008, message=b"The connection cannot be recovered.")
            return ws
        if conn.recovery_task is not None:
            conn.recovery_task.cancel()
            conn.recovery_task = None
        old = conn.ws
        conn.ws = ws
        conn.transport = _transport(request)
        if old is not None and not old.closed:
            await old.close(code=1000, message=b"Replaced by a recovered connection.")
        logger.info("connection %s recovered (%d un-acked messages replayed)", conn.id, len(conn.unacked))
        await conn.send_frame(connected_frame(conn.user_id, conn.id, conn.reconnection_token))
        await conn.replay()
        await self._serve(conn, ws)
        return ws

    async def _serve(self, conn: Connection, ws: web.WebSocketResponse) -> None:
        client_close: str | None = None
        try:
            while not conn.closed:
                msg = await ws.receive()
                if msg.type == WSMsgType.CLOSE:
                    # A close frame, with or without a status code, is the client ending the connection on
                    # purpose (``WebPubSubClient.stop()`` in JS sends one without a code).
                    client_close = msg.extra or CLIENT_CLOSED_REASON
                    break
                if msg.type in (WSMsgType.CLOSING, WSMsgType.CLOSED):
                    break
                if msg.type == WSMsgType.TEXT:
                    await self._on_text(conn, msg.data)
                elif msg.type == WSMsgType.BINARY and not conn.is_json:
                    await self._user_event_raw(conn, Payload(msg.data, "application/octet-stream"))
                elif msg.type == WSMsgType.BINARY:
                    await self.state.close_connection(
                        conn, "Binary frames are not valid in the json subprotocols.", code=1003
                    )
                elif msg.type == WSMsgType.ERROR:
                    logger.info("connection %s: websocket error %s", conn.id, ws.exception())
                    break
        finally:
            await self._after_socket_closed(conn, ws, client_close)

    async def _after_socket_closed(
        self, conn: Connection, ws: web.WebSocketResponse, client_close: str | None
    ) -> None:
        if conn.closed or conn.ws is not ws:
            return
        if conn.closing_reason is not None:
            await self.state.finish_connection(conn, conn.closing_reason)
            return
        if client_close is not None:
            logger.info("connection %s closed by the client (code %s)", conn.id, ws.close_code)
            await self.state.finish_connection(conn, client_close)
            return
        if conn.is_reliable:
            # Only a drop without a close frame (network loss) keeps a reliable connection for recovery.
            logger.info("connection %s dropped (code %s); recoverable for a while", conn.id, ws.close_code)
            self.state.start_recovery_window(conn)
            return
        await self.state.finish_connection(conn, "The connection dropped.")

    async def _on_text(self, conn: Connection, text: str) -> None:
        if not conn.is_json:
            await self._user_event_raw(conn, Payload(text.encode("utf-8"), "text/plain"))
            return
        try:
            frame = parse_client_frame(text)
        except FrameError as exc:
            logger.info("connection %s sent an invalid frame: %s", conn.id, exc)
            await self.state.close_connection(conn, f"Invalid message: {exc}", code=INVALID_PAYLOAD_CLOSE)
            return
        if frame.type == "sequenceAck":
            conn.acknowledge(frame.sequence_id or 0)
            return
        if frame.type == "ping":
            await conn.send_frame(pong_frame())
            return
        if frame.type == "invoke":
            await self._invoke(conn, frame)
            return
        if frame.type in ("cancelInvocation", "invokeResponse"):
            # Invocations are answered before the next frame is read, so there is nothing left to cancel;
            # service-initiated invocations (whose answer is invokeResponse) are not made by the emulator.
            logger.info("connection %s: %s %s ignored", conn.id, frame.type, frame.invocation_id)
            return
        if frame.ack_id is not None:
            if frame.ack_id in conn.ack_ids:
                message = f"Message with ack-id '{frame.ack_id}' has been processed."
                self._send_ack(conn, ack_frame(frame.ack_id, "Duplicate", message))
                return
            conn.ack_ids.add(frame.ack_id)
        failure = await self._execute(conn, frame)
        if conn.closed:
            return
        if frame.ack_id is not None:
            if failure is None:
                self._send_ack(conn, ack_frame(frame.ack_id))
            else:
                self._send_ack(conn, ack_frame(frame.ack_id, failure.name, failure.message))
        elif failure is not None and failure.drops_connection:
            # A failed user event without an ackId cannot be reported, so the connection is dropped.
            await self.state.close_connection(conn, failure.message)

    def _send_ack(self, conn: Connection, frame: dict[str, Any]) -> None:
        delay = self.state.config.ack_delay_seconds

        async def send() -> None:
            # A little network-like latency: azure-messaging-webpubsubclient 1.1.0 loses an ack that arrives
            # before it starts waiting for it, and then blocks for its whole ack timeout.
            if delay > 0:
                await asyncio.sleep(delay)
            if not conn.closed:
                await conn.send_frame(frame)

        self.state.spawn(send())

    async def _execute(self, conn: Connection, frame: ClientFrame) -> Failure | None:
        hub = self.state.hub(conn.hub)
        group = frame.group or ""
        if frame.type in ("joinGroup", "leaveGroup"):
            if not _has_role(conn, "joinLeaveGroup", group):
                message = f"The connection has no permission to join or leave group '{group}'."
                return Failure("Forbidden", message)
            if frame.type == "joinGroup":
                hub.add_to_group(conn, group)
            else:
                hub.remove_from_group(conn, group)
            return None
        if frame.type == "sendToGroup":
            if not _has_role(conn, "sendToGroup", group):
                return Failure("Forbidden", f"The connection has no permission to send to group '{group}'.")
            assert frame.payload is not None
            members = [c for c in hub.group_connections(group) if not (frame.no_echo and c.id == conn.id)]
            await self.state.deliver_group_message(members, group, conn.user_id, frame.payload)
            return None
        assert frame.event is not None and frame.payload is not None
        failure, reply = await self._user_event(conn, frame.event, frame.payload)
        if reply is not None:
            await self.state.deliver_server_message([conn], reply)
        return failure

    async def _user_event(
        self, conn: Connection, event: str, payload: Payload
    ) -> tuple[Failure | None, Payload | None]:
        """Deliver a user event upstream; returns the failure, or the response body to relay (if any)."""
        handler = self.state.settings_for(conn.hub).handler_for_user_event(event)
        if handler is None:
            logger.info("no event handler for user event %s in hub %s", event, conn.hub)
            return Failure("InternalServerError", f"{_NO_HANDLER} for event '{event}'.", False), None
        result = await self.state.upstream.deliver(
            handler, conn.context(), event, False, payload.body, payload.content_type
        )
        if result.connection_state is not None:
            conn.connection_state = result.connection_state
        if not result.ok:
            detail = result.error or f"The event handler answered {result.status}."
            return Failure("InternalServerError", detail, True), None
        return None, payload_from_upstream(result)

    async def _invoke(self, conn: Connection, frame: ClientFrame) -> None:
        """``invoke`` (``WebPubSubClient.invokeEvent``): a user event whose response comes back as
        ``invokeResponse`` correlated by ``invocationId`` instead of as a server message."""
        assert frame.invocation_id is not None and frame.event is not None and frame.payload is not None
        failure, reply = await self._user_event(conn, frame.event, frame.payload)
        if conn.closed:
            return
        if failure is not None:
            answer = invoke_response_frame(frame.invocation_id, None, failure.name, failure.message)
        else:
            answer = invoke_response_frame(frame.invocation_id, reply)
        await conn.send_frame(answer)

    async def _user_event_raw(self, conn: Connection, payload: Payload) -> None:
        failure, reply = await self._user_event(conn, "message", payload)
        if reply is not None:
            await self.state.deliver_server_message([conn], reply)
        if failure is not None and failure.drops_connection:
            await self.state.close_connection(conn, failure.message)
