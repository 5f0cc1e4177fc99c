"""The whole local stack in one process: Azurite, both emulators and (when the app exists) the Functions host.

Ports and development keys are fixed and match ``local.settings.json.example``, so the app's settings
work unchanged. The keys are public development values: never use them for anything real.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from devstack.azurite import RunningAzurite, start_azurite
from devstack.net import port_is_open

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = REPO_ROOT / ".devstack"

HOST = "127.0.0.1"
AZURITE_PORTS = (10000, 10001, 10002)
WEBPUBSUB_PORT = 8080
NOTIFICATION_HUBS_PORT = 8081
FUNCTIONS_PORT = 7071
BROWSER_DEMO_PORT = 8082
HUB = "notify"
WEBPUBSUB_DEV_KEY = "devstack-webpubsub-access-key-not-secret-0000000000"
NOTIFICATION_HUBS_DEV_KEY = "devstack-notificationhubs-full-key-not-secret-00000"
NOTIFICATION_HUBS_DEV_LISTEN_KEY = "devstack-notificationhubs-listen-key-not-secret-000"
#: The browser origins the local host answers CORS for unless local.settings.json says ``Host.CORS``:
#: any port of the loopback hosts, so a web app served by a dev server (Vite, the browser demo) can call it.
DEV_CORS = "http://localhost:*,http://127.0.0.1:*,http://[::1]:*"


@dataclass(frozen=True)
class StackPorts:
    """Where each part of the stack listens (all on 127.0.0.1)."""

    blob: int = AZURITE_PORTS[0]
    queue: int = AZURITE_PORTS[1]
    table: int = AZURITE_PORTS[2]
    webpubsub: int = WEBPUBSUB_PORT
    notification_hubs: int = NOTIFICATION_HUBS_PORT
    functions: int = FUNCTIONS_PORT
    browser_demo: int = BROWSER_DEMO_PORT

    @classmethod
    def free(cls) -> StackPorts:
        """Ports for a private stack (tests, the benchmark) that can run beside ``make dev``.

        Azurite and the emulators bind a free port themselves (0 here; :func:`start_stack` records where
        they listen), so parallel runs cannot race for them. The Functions host's port must be known before
        it starts (Web PubSub's event handler URL names it), so it and the demo page's get free ports now.
        """
        from devstack.net import free_port

        functions = free_port(HOST)
        browser_demo = free_port(HOST)
        while browser_demo == functions:
            browser_demo = free_port(HOST)
        return cls(0, 0, 0, 0, 0, functions, browser_demo)

    def all(self) -> list[int]:
        """Every port, in start order (the last two only with the host)."""
        return [
            self.blob, self.queue, self.table, self.webpubsub, self.notification_hubs, self.functions,
            self.browser_demo,
        ]


DEV_PORTS = StackPorts()


class StackAlreadyRunning(RuntimeError):
    """Another local stack (or something else) already holds one of the stack's ports."""


@dataclass
class RunningStack:
    """What ``devstack up`` started; :meth:`stop` ends all of it in reverse order."""

    azurite: RunningAzurite
    webpubsub: Any
    notification_hubs: Any
    functions_host: Any = None
    ports: StackPorts = DEV_PORTS
    browser_demo: Any = None
    _stopped: bool = field(default=False, repr=False)

    def environment(self) -> dict[str, str]:
        """App settings pointing the function app at this stack."""
        return {
            "AzureWebJobsStorage": self.azurite.connection_string,
            "WebPubSubConnectionString": self.webpubsub.connection_string,
            "WebPubSubHub": HUB,
            "NOTIFICATION_HUBS_CONNECTION_STRING": self.notification_hubs.connection_string,
            "NOTIFICATION_HUB_NAME": HUB,
        }

    def describe(self) -> list[str]:
        """Human-readable lines: what runs where."""
        p = self.ports
        lines = [
            f"azurite            blob/queue/table on {HOST}:{p.blob}/{p.queue}/{p.table}",
            f"  AzureWebJobsStorage={self.azurite.connection_string}",
            f"web pubsub         {self.webpubsub.endpoint} (hub '{HUB}')",
            f"  WebPubSubConnectionString={self.webpubsub.connection_string}",
            f"notification hubs  {self.notification_hubs.base_url} (hub '{HUB}', pushes: "
            f"{self.notification_hubs.base_url}/_devstack/pushes)",
            f"  NOTIFICATION_HUBS_CONNECTION_STRING={self.notification_hubs.connection_string}",
        ]
        if self.functions_host is not None:
            lines.append(f"functions host     {self.functions_host.url} (API under /api/)")
        if self.browser_demo is not None:
            lines.append(f"browser demo       {self.browser_demo.url} (the client SDK in a web page)")
        return lines

    def stop(self) -> None:
        """Stop everything that was started; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        parts = (self.browser_demo, self.functions_host, self.notification_hubs, self.webpubsub, self.azurite)
        for part in parts:
            if part is not None:
                with contextlib.suppress(Exception):
                    part.stop()


def check_ports_free(with_host: bool, ports: StackPorts = DEV_PORTS) -> None:
    """Raise StackAlreadyRunning naming the first busy port."""
    wanted = ports.all() if with_host else ports.all()[:-2]
    for port in wanted:
        if port and port_is_open(HOST, port):
            raise StackAlreadyRunning(
                f"port {port} on {HOST} is already in use: is another `make dev` running? Stop it first."
            )


def start_stack(
    with_host: bool = True,
    persist: bool = True,
    ports: StackPorts = DEV_PORTS,
    app_env: Mapping[str, str] | None = None,
    settings_file: Path | None = None,
    cors: str | None = None,
) -> RunningStack:
    """Start Azurite, the emulators and (``with_host``) the Functions host.

    ``ports`` defaults to the fixed dev ports of ``make dev``; pass ``StackPorts.free()`` for a private
    stack (a 0 lets that service pick a free port; the running stack's ``ports`` say where it listens).
    ``app_env`` adds app settings for the host (they win over the settings file, as with ``func start``);
    ``settings_file`` defaults to ``local.settings.json`` when it exists, else the example.
    ``persist`` keeps Azurite's data in ``.devstack/azurite`` (only sensible on the dev ports).
    ``cors``: the host's allowed origins (default: the settings file's ``Host.CORS``, else :data:`DEV_CORS`).
    """
    from devstack.notificationhubs import start_notification_hubs_emulator
    from devstack.webpubsub import EventHandlerSettings, HubSettings, start_webpubsub_emulator

    check_ports_free(with_host, ports)
    STATE_DIR.mkdir(exist_ok=True)
    azurite = start_azurite(
        HOST, ports.blob, ports.queue, ports.table, location=STATE_DIR / "azurite", in_memory=not persist
    )
    ports = replace(
        ports, blob=azurite.blob_port, queue=azurite.queue_port, table=azurite.table_port
    )
    stack = RunningStack(azurite, None, None, ports=ports)
    try:
        handler = EventHandlerSettings(
            url_template=f"http://{HOST}:{ports.functions}/runtime/webhooks/webpubsub",
            user_event_pattern="*",
            system_events=["connected", "disconnected"],
        )
        stack.webpubsub = start_webpubsub_emulator(
            HOST, ports.webpubsub, access_key=WEBPUBSUB_DEV_KEY, hubs={HUB: HubSettings([handler])}
        )
        stack.notification_hubs = start_notification_hubs_emulator(
            HOST,
            ports.notification_hubs,
            hubs=(HUB,),
            full_key=NOTIFICATION_HUBS_DEV_KEY,
            listen_key=NOTIFICATION_HUBS_DEV_LISTEN_KEY,
        )
        stack.ports = replace(
            ports, webpubsub=stack.webpubsub.port, notification_hubs=stack.notification_hubs.port
        )
        if with_host:
            stack.functions_host = start_host(stack, app_env, settings_file, cors=cors)
            stack.browser_demo = start_demo_page(stack, app_env)
    except BaseException:
        stack.stop()
        raise
    return stack


def start_demo_page(stack: RunningStack, app_env: Mapping[str, str] | None = None) -> Any:
    """Serve the browser demo (``devstack.browser_demo``) for ``stack`` on its port."""
    from devstack.browser_demo import start_browser_demo
    from devstack.demo import target_for_stack

    return start_browser_demo(target_for_stack(stack, app_env), HOST, stack.ports.browser_demo)


def default_settings_file() -> Path:
    """``local.settings.json`` when the user has one, else the checked-in example."""
    local = REPO_ROOT / "local.settings.json"
    return local if local.exists() else REPO_ROOT / "local.settings.json.example"


def start_host(
    stack: RunningStack,
    app_env: Mapping[str, str] | None = None,
    settings_file: Path | None = None,
    port: int | None = None,
    cors: str | None = None,
) -> Any:
    """Start (or restart) the Functions host process for ``stack``; returns the FunctionsHostProcess.

    ``port`` defaults to the stack's Functions port; another one puts something else in front of the host
    (the benchmark's counting proxy, which Web PubSub's event handler then reaches). ``cors``: the host's
    allowed origins (default: the settings file's ``Host.CORS``, else :data:`DEV_CORS`).
    """
    from devstack.functions_host.process import start_functions_host_process
    from devstack.functions_host.settings_loader import load_local_host_section, load_local_settings

    settings = settings_file or default_settings_file()
    if cors is None and load_local_host_section(settings).get("CORS") is None:
        cors = DEV_CORS
    from_file = load_local_settings(settings)
    # Pass only what the settings file does not already say (unless this shell says otherwise), so the
    # host does not log "Skipping ..." for values that are the same anyway (on the dev ports they agree).
    wanted = {**stack.environment(), **(app_env or {})}
    env = {k: v for k, v in wanted.items() if from_file.get(k) != v or os.environ.get(k) not in (None, "", v)}
    return start_functions_host_process(
        REPO_ROOT,
        port=stack.ports.functions if port is None else port,
        env=env,
        settings_file=settings,
        cors=cors,
    )


@contextlib.contextmanager
def running_stack(
    with_host: bool = True,
    persist: bool = True,
    ports: StackPorts = DEV_PORTS,
    app_env: Mapping[str, str] | None = None,
    settings_file: Path | None = None,
    cors: str | None = None,
) -> Iterator[RunningStack]:
    """Context manager around :func:`start_stack` that always stops what it started."""
    stack = start_stack(with_host, persist, ports, app_env, settings_file, cors)
    try:
        yield stack
    finally:
        stack.stop()


def app_exists() -> bool:
    """True when the function app (function_app.py) is present to be hosted."""
    return (REPO_ROOT / "function_app.py").exists() and os.environ.get("DEVSTACK_NO_HOST") != "1"
