"""Azure Web PubSub emulator (REST, client WebSockets, CloudEvents upstream) for local development only."""

from devstack.webpubsub.app import create_app
from devstack.webpubsub.running import RunningWebPubSub, start_webpubsub_emulator
from devstack.webpubsub.settings import EmulatorConfig, EventHandlerSettings, HubSettings
from devstack.webpubsub.state import EmulatorState

__all__ = [
    "EmulatorConfig",
    "EmulatorState",
    "EventHandlerSettings",
    "HubSettings",
    "RunningWebPubSub",
    "create_app",
    "start_webpubsub_emulator",
]
