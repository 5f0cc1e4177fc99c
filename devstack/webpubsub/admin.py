"""Emulator-only endpoints under ``/_devstack``: hub settings at runtime and connection debugging."""

from __future__ import annotations

import json
import logging

from aiohttp import web

from devstack.webpubsub.rest import error_response
from devstack.webpubsub.settings import HUB_NAME_PATTERN, HubSettings, SettingsError
from devstack.webpubsub.state import EmulatorState

logger = logging.getLogger(__name__)


class AdminApi:
    """Hub settings (``/_devstack/hubs/{hub}``) and connection debugging (``/_devstack/connections``)."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def routes(self) -> list[web.RouteDef]:
        """The aiohttp route table of the admin endpoints."""
        return [
            web.put("/_devstack/hubs/{hub}", self.put_hub),
            web.get("/_devstack/hubs/{hub}", self.get_hub),
            web.get("/_devstack/connections", self.list_connections),
            web.post("/_devstack/connections/{connection_id}/drop", self.drop_connection),
        ]

    async def put_hub(self, request: web.Request) -> web.Response:
        """Replace a hub's settings with the JSON body (ARM hub properties shape)."""
        hub = request.match_info["hub"]
        if not HUB_NAME_PATTERN.match(hub):
            return error_response(400, "InvalidRequest", f"invalid hub name {hub!r}")
        try:
            settings = HubSettings.from_json(json.loads(await request.read() or b"{}"))
        except (ValueError, SettingsError) as exc:
            return error_response(400, "InvalidRequest", f"invalid hub settings: {exc}")
        self.state.configure_hub(hub, settings)
        logger.info("hub %s configured with %d event handler(s)", hub, len(settings.event_handlers))
        return web.json_response(settings.to_json())

    async def get_hub(self, request: web.Request) -> web.Response:
        """The current settings of a hub (defaults when never configured)."""
        return web.json_response(self.state.settings_for(request.match_info["hub"]).to_json())

    async def list_connections(self, request: web.Request) -> web.Response:
        """Every live (or recovering) connection, optionally of one hub (``?hub=``)."""
        hub = request.query.get("hub")
        conns = [
            c.summary() for c in self.state.all_connections() if hub is None or c.hub.lower() == hub.lower()
        ]
        return web.json_response({"value": conns})

    async def drop_connection(self, request: web.Request) -> web.Response:
        """Cut a connection's TCP stream without a close handshake, as a network failure would."""
        cid = request.match_info["connection_id"]
        conn = next((c for c in self.state.all_connections() if c.id == cid), None)
        if conn is None or conn.transport is None or conn.ws is None:
            return error_response(404, "NotFound", f"connection {cid!r} has no open socket")
        conn.transport.abort()
        return web.Response(status=204)
