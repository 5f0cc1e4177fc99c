"""Start the emulator in a background thread (tests, ``devstack up``) and talk to it from Python."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from devstack.server_thread import ServerThread
from devstack.tls import https_server
from devstack.webpubsub.app import create_app
from devstack.webpubsub.settings import (
    DEFAULT_ACK_DELAY_SECONDS,
    DEFAULT_RECOVERY_WINDOW_SECONDS,
    EmulatorConfig,
    HubSettings,
)
from devstack.webpubsub.state import EmulatorState


def public_host_for(bind_host: str) -> str:
    """The host clients should use: the bind host, or 127.0.0.1 when bound to every interface."""
    return "127.0.0.1" if bind_host in ("", "0.0.0.0", "::") else bind_host


def connection_string(endpoint: str, access_key: str) -> str:
    """A Web PubSub connection string for ``endpoint``."""
    return f"Endpoint={endpoint};AccessKey={access_key};Version=1.0;"


class RunningWebPubSub:
    """A running emulator: where it listens, its key and connection string, and runtime hub configuration."""

    def __init__(self, server: ServerThread, state: EmulatorState, cert_path: Path | None = None) -> None:
        self._server = server
        self.state = state
        self.port = server.port
        #: The self-signed certificate clients must trust in HTTPS mode (None over plain HTTP).
        self.cert_path = cert_path
        scheme = "https" if cert_path is not None else "http"
        self.endpoint = f"{scheme}://{state.config.public_host}:{self.port}"
        self.access_key = state.config.access_key
        self.connection_string = connection_string(self.endpoint, self.access_key)

    def configure_hub(self, name: str, settings: HubSettings) -> None:
        """Replace the settings of hub ``name`` (event handlers, anonymous connect policy)."""

        async def apply() -> None:
            self.state.configure_hub(name, settings)

        self._server.call(apply)

    def connections(self, hub: str | None = None) -> list[dict[str, Any]]:
        """Summaries of live connections (same data as ``GET /_devstack/connections``)."""

        async def collect() -> list[dict[str, Any]]:
            return [
                c.summary()
                for c in self.state.all_connections()
                if hub is None or c.hub.lower() == hub.lower()
            ]

        result: list[dict[str, Any]] = self._server.call(collect)
        return result

    def stop(self) -> None:
        """Close every connection and stop the server thread."""
        self._server.stop()


def start_webpubsub_emulator(
    host: str = "127.0.0.1",
    port: int = 0,
    access_key: str | None = None,
    secondary_key: str | None = None,
    hubs: dict[str, HubSettings] | None = None,
    recovery_window_seconds: float = DEFAULT_RECOVERY_WINDOW_SECONDS,
    ack_delay_seconds: float = DEFAULT_ACK_DELAY_SECONDS,
    https: bool = False,
    cert_dir: str | Path | None = None,
) -> RunningWebPubSub:
    """Start the emulator on its own thread; ``port=0`` picks a free port; the key defaults to random.

    ``https`` serves TLS (``https://`` REST, ``wss://`` clients) with a fresh self-signed certificate written
    to ``cert_dir`` (a temp folder by default); its path is ``RunningWebPubSub.cert_path``.
    """
    config = EmulatorConfig(
        access_key=access_key or secrets.token_urlsafe(32),
        secondary_key=secondary_key,
        hubs=dict(hubs or {}),
        recovery_window_seconds=recovery_window_seconds,
        ack_delay_seconds=ack_delay_seconds,
        public_host=public_host_for(host),
    )
    state = EmulatorState(config)
    cert_path, ssl_context = https_server(https, cert_dir, "devstack web pubsub emulator")
    server = ServerThread(
        create_app(state), host=host, port=port, ssl_context=ssl_context, name="webpubsub-emulator"
    )
    server.start()
    return RunningWebPubSub(server, state, cert_path)
