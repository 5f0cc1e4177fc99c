"""Start and drive the emulator from Python (tests, ``devstack up``)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from devstack.notificationhubs.app import create_app
from devstack.notificationhubs.faults import parse_fault
from devstack.notificationhubs.sas import FULL_RULE, LISTEN_RULE
from devstack.notificationhubs.state import EmulatorState
from devstack.server_thread import ServerThread
from devstack.tls import https_server

logger = logging.getLogger(__name__)


class RunningNotificationHubs:
    """A running emulator: its address, connection strings and the test controls (sink, faults, hubs)."""

    def __init__(self, server: ServerThread, state: EmulatorState, host: str, cert_path: Path | None) -> None:
        self._server = server
        self.state = state
        self.host = host
        self.cert_path = cert_path

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return self._server.port

    @property
    def https(self) -> bool:
        """True when serving TLS with the self-signed certificate at :attr:`cert_path`."""
        return self.cert_path is not None

    @property
    def base_url(self) -> str:
        """``http(s)://host:port`` with no trailing slash."""
        return f"{'https' if self.https else 'http'}://{self.host}:{self.port}"

    def _connection_string(self, endpoint: str, rule: str, key: str, hub: str | None) -> str:
        value = f"Endpoint={endpoint};SharedAccessKeyName={rule};SharedAccessKey={key}"
        return f"{value};EntityPath={hub}" if hub else value

    def _endpoint(self) -> str:
        # Plain HTTP: an explicit http:// endpoint (sb:// always means https:// to clients).
        return f"sb://{self.host}:{self.port}/" if self.https else f"http://{self.host}:{self.port}/"

    @property
    def connection_string(self) -> str:
        """Full-rights (Listen, Send, Manage) connection string in the form that works for this mode."""
        return self._connection_string(self._endpoint(), FULL_RULE, self.state.full_key, None)

    @property
    def sb_connection_string(self) -> str:
        """Full-rights connection string in the standard ``sb://`` form (works only in HTTPS mode)."""
        return self._connection_string(f"sb://{self.host}:{self.port}/", FULL_RULE, self.state.full_key, None)

    @property
    def listen_connection_string(self) -> str:
        """Listen-only connection string (what devices use) in the form that works for this mode."""
        return self._connection_string(self._endpoint(), LISTEN_RULE, self.state.listen_key, None)

    def hub_connection_string(self, hub: str, listen_only: bool = False) -> str:
        """Hub-level connection string (``;EntityPath=<hub>``), full rights unless ``listen_only``."""
        if listen_only:
            return self._connection_string(self._endpoint(), LISTEN_RULE, self.state.listen_key, hub)
        return self._connection_string(self._endpoint(), FULL_RULE, self.state.full_key, hub)

    def create_hub(self, name: str) -> bool:
        """Create a hub; return False when it already existed. Raises ValueError for an invalid name."""
        return self.state.create_hub(name)

    def pushes(
        self,
        hub: str | None = None,
        installation_id: str | None = None,
        tag: str | None = None,
        **filters: Any,
    ) -> list[dict[str, Any]]:
        """Recorded pushes matching the filters (also ``notification_id=``, ``outcome=``), oldest first."""
        return self.state.sink.pushes(hub=hub, installation_id=installation_id, tag=tag, **filters)

    def clear_pushes(self, hub: str | None = None) -> int:
        """Forget recorded pushes (all, or one hub's); return how many were removed."""
        return self.state.sink.clear(hub)

    clear = clear_pushes

    def wait_for_pushes(self, count: int, timeout: float = 10.0, **filters: Any) -> list[dict[str, Any]]:
        """Block until ``count`` pushes match ``filters`` (names as in :meth:`pushes`) or time out."""
        return self.state.sink.wait_for(count, timeout, **filters)

    def inject_fault(
        self,
        status: int | None = None,
        count: int = 1,
        retry_after: float | None = None,
        delay_seconds: float = 0,
        path: str | None = None,
        method: str | None = None,
    ) -> None:
        """Answer the next ``count`` matching data-plane requests with ``status`` and/or a delay."""
        spec: dict[str, Any] = {"count": count, "delaySeconds": delay_seconds}
        if status is not None:
            spec["status"] = status
        if retry_after is not None:
            spec["retryAfter"] = retry_after
        if path is not None:
            spec["path"] = path
        if method is not None:
            spec["method"] = method
        self.state.faults.add(parse_fault(spec))

    def clear_faults(self) -> None:
        """Disarm every injected fault."""
        self.state.faults.clear()

    def scheduled(self, hub: str | None = None) -> list[dict[str, Any]]:
        """Pending scheduled sends (``notificationId``, ``hub``, ``format``, ``tags``, ``scheduledTime``)."""
        return self.state.scheduler.pending(hub)

    def installation(self, hub: str, installation_id: str) -> dict[str, Any] | None:
        """The stored installation, or None."""
        return self.state.installation(hub, installation_id)

    def stop(self) -> None:
        """Stop serving and join the server thread."""
        self._server.stop()


def start_notification_hubs_emulator(
    host: str = "127.0.0.1",
    port: int = 0,
    hubs: Iterable[str] = ("notify",),
    full_key: str | None = None,
    listen_key: str | None = None,
    https: bool = False,
    cert_dir: str | Path | None = None,
    tier: str = "standard",
) -> RunningNotificationHubs:
    """Start the emulator on a background thread and return it once it accepts connections.

    ``tier`` (free, basic, standard) is the namespace tier: below Standard, scheduled sends are refused with
    the service's 403. Raises ValueError for an unknown tier.
    """
    state = EmulatorState(full_key=full_key, listen_key=listen_key, tier=tier)
    for hub in hubs:
        state.create_hub(hub)
    cert_path, ssl_context = https_server(https, cert_dir, "devstack notification hubs emulator")
    server = ServerThread(
        create_app(state), host=host, port=port, ssl_context=ssl_context, name="nh-emulator"
    )
    server.start()
    logger.info("notification hubs emulator listening host=%s port=%s https=%s", host, server.port, https)
    return RunningNotificationHubs(server, state, host, cert_path)
