"""Connections, groups and hubs held by the emulator, and how messages reach a connection."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import string
from collections import deque
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from devstack.webpubsub.protocol import (
    JSON_PROTOCOLS,
    RELIABLE_JSON_PROTOCOL,
    Payload,
    disconnected_frame,
    group_message_frame,
    server_message_frame,
)
from devstack.webpubsub.settings import EmulatorConfig, HubSettings, hub_key
from devstack.webpubsub.upstream import EventContext, UpstreamDispatcher

logger = logging.getLogger(__name__)

# The service keeps at most this many un-acked messages (or bytes) for a reliable connection.
MAX_UNACKED_MESSAGES = 1000
MAX_UNACKED_BYTES = 16 * 1024 * 1024
_ID_ALPHABET = string.ascii_letters + string.digits


def new_connection_id() -> str:
    """A random mixed-case alphanumeric connection id (the service's ids are opaque strings like this)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(32))


@dataclass
class Connection:
    """One client connection; for reliable clients it outlives its WebSocket during the recovery window."""

    id: str
    hub: str
    user_id: str | None
    roles: set[str]
    subprotocol: str | None
    groups: set[str] = field(default_factory=set)
    connection_state: str | None = None
    ws: web.WebSocketResponse | None = None
    transport: asyncio.Transport | None = None
    reconnection_token: str | None = None
    ack_ids: set[int] = field(default_factory=set)
    last_sequence_id: int = 0
    unacked: deque[tuple[int, str]] = field(default_factory=deque)
    unacked_bytes: int = 0
    recovery_task: asyncio.Task[None] | None = None
    closed: bool = False
    closing_reason: str | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # ce-id of the last event; the connect event (before the connection exists) is 0.
    events_sent: int = 0
    # Completed in order: ``connected`` must reach the handler before ``disconnected``.
    system_events: asyncio.Task[None] | None = None

    @property
    def is_json(self) -> bool:
        """True for the json subprotocols (frames), False for simple WebSocket clients (raw data)."""
        return self.subprotocol in JSON_PROTOCOLS

    @property
    def is_reliable(self) -> bool:
        """True for ``json.reliable.webpubsub.azure.v1``."""
        return self.subprotocol == RELIABLE_JSON_PROTOCOL

    @property
    def recovering(self) -> bool:
        """True while a reliable connection has no WebSocket and waits to be recovered."""
        return self.ws is None and not self.closed

    def context(self) -> EventContext:
        """CloudEvents attributes of this connection for its next event (each gets the next ce-id)."""
        self.events_sent += 1
        return EventContext(
            self.hub, self.id, self.user_id, self.subprotocol, self.connection_state, self.events_sent
        )

    def summary(self) -> dict[str, Any]:
        """A JSON-able description for the debugging endpoint (no tokens)."""
        return {
            "connectionId": self.id,
            "hub": self.hub,
            "userId": self.user_id,
            "subprotocol": self.subprotocol,
            "roles": sorted(self.roles),
            "groups": sorted(self.groups),
            "recovering": self.recovering,
            "unackedMessages": len(self.unacked),
        }

    async def send_frame(self, frame: dict[str, Any]) -> None:
        """Send a system/ack frame now (dropped while recovering, as there is no socket)."""
        async with self.lock:
            await self._write_text(json.dumps(frame, separators=(",", ":")))

    async def send_message(self, frame: dict[str, Any], payload: Payload) -> bool:
        """Deliver a ``message`` frame (json clients) or the raw payload (simple clients).

        Returns False when a reliable connection's buffer overflowed and it must be closed.
        """
        async with self.lock:
            if not self.is_json:
                await self._write_raw(payload)
                return True
            if self.is_reliable:
                self.last_sequence_id += 1
                frame = {**frame, "sequenceId": self.last_sequence_id}
                text = json.dumps(frame, separators=(",", ":"))
                self.unacked.append((self.last_sequence_id, text))
                self.unacked_bytes += len(text)
                if len(self.unacked) > MAX_UNACKED_MESSAGES or self.unacked_bytes > MAX_UNACKED_BYTES:
                    return False
            else:
                text = json.dumps(frame, separators=(",", ":"))
            await self._write_text(text)
            return True

    def acknowledge(self, sequence_id: int) -> None:
        """Drop buffered messages up to and including ``sequence_id``."""
        while self.unacked and self.unacked[0][0] <= sequence_id:
            _, text = self.unacked.popleft()
            self.unacked_bytes -= len(text)

    async def replay(self) -> None:
        """Resend every un-acked message in order (after recovery)."""
        async with self.lock:
            for _, text in list(self.unacked):
                await self._write_text(text)

    async def _write_text(self, text: str) -> None:
        if self.ws is None or self.ws.closed:
            return
        try:
            await self.ws.send_str(text)
        except (ConnectionError, RuntimeError) as exc:
            logger.info("connection %s: send failed (%s)", self.id, exc)

    async def _write_raw(self, payload: Payload) -> None:
        if self.ws is None or self.ws.closed:
            return
        try:
            if payload.data_type == "binary":
                await self.ws.send_bytes(payload.body)
            else:
                await self.ws.send_str(payload.body.decode("utf-8"))
        except (ConnectionError, RuntimeError) as exc:
            logger.info("connection %s: send failed (%s)", self.id, exc)


@dataclass
class HubState:
    """Live connections and group memberships of one hub."""

    name: str
    connections: dict[str, Connection] = field(default_factory=dict)
    groups: dict[str, set[str]] = field(default_factory=dict)

    def user_connections(self, user_id: str) -> list[Connection]:
        """Connections authenticated as ``user_id``."""
        return [c for c in self.connections.values() if c.user_id == user_id]

    def group_connections(self, group: str) -> list[Connection]:
        """Connections in ``group``."""
        return [self.connections[cid] for cid in self.groups.get(group, set()) if cid in self.connections]

    def add_to_group(self, conn: Connection, group: str) -> None:
        """Add a connection to a group."""
        conn.groups.add(group)
        self.groups.setdefault(group, set()).add(conn.id)

    def remove_from_group(self, conn: Connection, group: str) -> None:
        """Remove a connection from a group (no-op when not a member)."""
        conn.groups.discard(group)
        members = self.groups.get(group)
        if members is not None:
            members.discard(conn.id)
            if not members:
                del self.groups[group]

    def remove_from_all_groups(self, conn: Connection) -> None:
        """Remove a connection from every group."""
        for group in list(conn.groups):
            self.remove_from_group(conn, group)


class EmulatorState:
    """All hubs, their settings and the upstream dispatcher; lives on the server's event loop."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.hub_settings: dict[str, HubSettings] = {hub_key(k): v for k, v in config.hubs.items()}
        self.hubs: dict[str, HubState] = {}
        self.upstream = UpstreamDispatcher(config)
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopped = False

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
        """Run a background task that shutdown waits for (dropped once the emulator has stopped)."""
        if self._stopped:
            coro.close()
            return None
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def settings_for(self, hub: str) -> HubSettings:
        """Settings of ``hub`` (defaults when never configured)."""
        return self.hub_settings.get(hub_key(hub)) or HubSettings()

    def configure_hub(self, hub: str, settings: HubSettings) -> None:
        """Replace the settings of ``hub``; new events use them immediately."""
        self.hub_settings[hub_key(hub)] = settings

    def hub(self, name: str) -> HubState:
        """The state of hub ``name`` (created on first use: hubs are implicit in the service)."""
        key = hub_key(name)
        if key not in self.hubs:
            self.hubs[key] = HubState(name=name)
        return self.hubs[key]

    def all_connections(self) -> Iterable[Connection]:
        """Every connection of every hub."""
        for hub in self.hubs.values():
            yield from hub.connections.values()

    async def deliver_server_message(self, conns: Iterable[Connection], payload: Payload) -> None:
        """Send a server message to each connection."""
        frame = server_message_frame(payload)
        for conn in list(conns):
            await self._deliver(conn, frame, payload)

    async def deliver_group_message(
        self, conns: Iterable[Connection], group: str, from_user_id: str | None, payload: Payload
    ) -> None:
        """Send a group message to each connection."""
        frame = group_message_frame(group, from_user_id, payload)
        for conn in list(conns):
            await self._deliver(conn, frame, payload)

    async def _deliver(self, conn: Connection, frame: dict[str, Any], payload: Payload) -> None:
        if conn.closed:
            return
        if not await conn.send_message(frame, payload):
            await self.close_connection(
                conn, "The connection has too many un-acked messages and is closed.", code=1008
            )

    def start_recovery_window(self, conn: Connection) -> None:
        """Keep a dropped reliable connection for the recovery window, then finish it."""

        async def expire() -> None:
            await asyncio.sleep(self.config.recovery_window_seconds)
            if conn.recovering:
                logger.info(
                    "connection %s not recovered within %.0f s", conn.id, self.config.recovery_window_seconds
                )
                await self.finish_connection(conn, "The connection was not recovered in time.")

        conn.ws = None
        conn.recovery_task = asyncio.get_running_loop().create_task(expire())

    async def close_connection(self, conn: Connection, reason: str, code: int = 1000) -> None:
        """Close a connection from the service side: ``disconnected`` frame, close the socket, finish it."""
        if conn.closed or conn.closing_reason is not None:
            return
        # The socket's reader sees the close too; it finishes the connection with this reason, not its own.
        conn.closing_reason = reason
        ws = conn.ws
        if ws is not None and not ws.closed and conn.is_json:
            await conn.send_frame(disconnected_frame(reason))
        await self.finish_connection(conn, reason)
        if ws is not None and not ws.closed:
            await ws.close(code=code, message=reason.encode("utf-8")[:120])

    async def finish_connection(self, conn: Connection, reason: str) -> None:
        """Forget a connection and fire ``disconnected`` upstream (after ``connected`` completed)."""
        if conn.closed:
            return
        conn.closed = True
        if conn.recovery_task is not None and conn.recovery_task is not asyncio.current_task():
            conn.recovery_task.cancel()
        hub = self.hub(conn.hub)
        hub.remove_from_all_groups(conn)
        hub.connections.pop(conn.id, None)
        logger.info("connection %s in hub %s finished: %s", conn.id, conn.hub, reason)
        previous = conn.system_events
        body = json.dumps({"reason": reason}).encode("utf-8")
        handler = self.settings_for(conn.hub).handler_for_system_event("disconnected")

        async def send_disconnected() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            if handler is None:
                return
            result = await self.upstream.deliver(
                handler, conn.context(), "disconnected", True, body, "application/json; charset=utf-8"
            )
            if not result.ok:
                logger.warning("disconnected event for %s failed: %s", conn.id, result.error or result.status)

        conn.system_events = self.spawn(send_disconnected())

    async def close_all(self) -> None:
        """Close every connection (app shutdown, before the server waits for its handlers)."""
        closing = [self.close_connection(c, "The service is shutting down.") for c in self.all_connections()]
        await asyncio.gather(*closing, return_exceptions=True)

    async def shutdown(self) -> None:
        """Wait for pending upstream events, then close the upstream session (app cleanup)."""
        await self.close_all()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        self._stopped = True
        await self.upstream.close()
