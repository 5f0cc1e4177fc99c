"""Builds the emulator's aiohttp application."""

from __future__ import annotations

from aiohttp import web

from devstack.webpubsub.admin import AdminApi
from devstack.webpubsub.client_ws import ClientEndpoint
from devstack.webpubsub.rest import STATE_KEY, RestApi
from devstack.webpubsub.settings import EmulatorConfig
from devstack.webpubsub.state import EmulatorState


def create_app(config_or_state: EmulatorConfig | EmulatorState) -> web.Application:
    """An aiohttp application serving the REST API, client WebSockets and ``/_devstack`` endpoints."""
    state = config_or_state if isinstance(config_or_state, EmulatorState) else EmulatorState(config_or_state)
    # Bodies over the message limit must reach our handler so it can answer 413 with a JSON reason.
    app = web.Application(client_max_size=state.config.max_message_bytes * 2 + 1024)
    app[STATE_KEY] = state
    rest = RestApi(state)
    client = ClientEndpoint(state)
    app.router.add_routes(AdminApi(state).routes())
    app.router.add_get("/client/hubs/{hub}", client.handle)
    app.router.add_get("/client", client.handle)
    app.router.add_route("*", "/api/{tail:.*}", rest.handle)

    async def close_connections(_: web.Application) -> None:
        await state.close_all()

    async def cleanup(_: web.Application) -> None:
        await state.shutdown()

    app.on_shutdown.append(close_connections)
    app.on_cleanup.append(cleanup)
    return app
