"""Hub and emulator settings: dataclasses, their JSON form (as ARM spells it) and the CLI syntax."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

SYSTEM_EVENTS = ("connect", "connected", "disconnected")
# The real service's documented limit on one message (REST body or client frame).
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024
DEFAULT_RECOVERY_WINDOW_SECONDS = 30.0
DEFAULT_UPSTREAM_TIMEOUT_SECONDS = 30.0
DEFAULT_ACK_DELAY_SECONDS = 0.01
HUB_NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class SettingsError(ValueError):
    """Hub settings (JSON or CLI form) that cannot be understood; the message says which part."""


@dataclass
class EventHandlerSettings:
    """One upstream event handler of a hub, as in the ARM ``eventHandlers`` list."""

    url_template: str
    user_event_pattern: str = ""
    system_events: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        unknown = [e for e in self.system_events if e not in SYSTEM_EVENTS]
        if unknown:
            raise SettingsError(f"unknown system event(s) {unknown}; allowed: {list(SYSTEM_EVENTS)}")
        if not self.url_template.startswith(("http://", "https://")):
            raise SettingsError(f"urlTemplate must be an http(s) URL, got {self.url_template!r}")

    def handles_system_event(self, event: str) -> bool:
        """True when this handler is configured for the system event ``event``."""
        return event in self.system_events

    def handles_user_event(self, event: str) -> bool:
        """True when ``userEventPattern`` (``*``, a comma list, or empty) matches ``event``."""
        pattern = self.user_event_pattern.strip()
        if not pattern:
            return False
        if pattern == "*":
            return True
        return event in {p.strip() for p in pattern.split(",") if p.strip()}

    def url_for(self, hub: str, event: str) -> str:
        """Resolve the ``{hub}`` and ``{event}`` parameters of the URL template."""
        return self.url_template.replace("{hub}", hub).replace("{event}", event)

    def to_json(self) -> dict[str, Any]:
        """The ARM JSON shape of this handler."""
        return {
            "urlTemplate": self.url_template,
            "userEventPattern": self.user_event_pattern,
            "systemEvents": list(self.system_events),
        }

    @classmethod
    def from_json(cls, data: Any) -> EventHandlerSettings:
        """Build from the ARM JSON shape; raises SettingsError naming the bad field."""
        if not isinstance(data, dict):
            raise SettingsError("each event handler must be a JSON object")
        url = data.get("urlTemplate")
        if not isinstance(url, str) or not url:
            raise SettingsError("event handler needs a string 'urlTemplate'")
        pattern = data.get("userEventPattern", "") or ""
        if not isinstance(pattern, str):
            raise SettingsError("'userEventPattern' must be a string")
        system = data.get("systemEvents", []) or []
        if not isinstance(system, list) or not all(isinstance(s, str) for s in system):
            raise SettingsError("'systemEvents' must be a list of strings")
        return cls(url_template=url, user_event_pattern=pattern, system_events=list(system))


@dataclass
class HubSettings:
    """Settings of one hub: ordered event handlers (first match wins) and the anonymous connect policy."""

    event_handlers: list[EventHandlerSettings] = field(default_factory=list)
    anonymous_connect_policy: str = "deny"

    def __post_init__(self) -> None:
        if self.anonymous_connect_policy not in ("allow", "deny"):
            raise SettingsError("anonymousConnectPolicy must be 'allow' or 'deny'")

    def handler_for_system_event(self, event: str) -> EventHandlerSettings | None:
        """The first handler configured for system event ``event``, if any."""
        return next((h for h in self.event_handlers if h.handles_system_event(event)), None)

    def handler_for_user_event(self, event: str) -> EventHandlerSettings | None:
        """The first handler whose user event pattern matches ``event``, if any."""
        return next((h for h in self.event_handlers if h.handles_user_event(event)), None)

    def to_json(self) -> dict[str, Any]:
        """The ARM JSON shape of the hub properties."""
        return {
            "eventHandlers": [h.to_json() for h in self.event_handlers],
            "anonymousConnectPolicy": self.anonymous_connect_policy,
        }

    @classmethod
    def from_json(cls, data: Any) -> HubSettings:
        """Build from ``{"eventHandlers": [...], "anonymousConnectPolicy": ...}`` (or ARM ``properties``)."""
        if isinstance(data, dict) and isinstance(data.get("properties"), dict):
            data = data["properties"]
        if not isinstance(data, dict):
            raise SettingsError("hub settings must be a JSON object")
        handlers = data.get("eventHandlers", []) or []
        if not isinstance(handlers, list):
            raise SettingsError("'eventHandlers' must be a list")
        policy = data.get("anonymousConnectPolicy", "deny") or "deny"
        if not isinstance(policy, str):
            raise SettingsError("'anonymousConnectPolicy' must be a string")
        return cls(
            event_handlers=[EventHandlerSettings.from_json(h) for h in handlers],
            anonymous_connect_policy=policy.lower(),
        )


@dataclass
class EmulatorConfig:
    """Everything the emulator needs to run; hubs not listed get default ``HubSettings()``."""

    access_key: str
    secondary_key: str | None = None
    hubs: dict[str, HubSettings] = field(default_factory=dict)
    recovery_window_seconds: float = DEFAULT_RECOVERY_WINDOW_SECONDS
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    upstream_timeout_seconds: float = DEFAULT_UPSTREAM_TIMEOUT_SECONDS
    # Delay before each ack frame (see client_ws._send_ack); acks stay in order, the reader is not blocked.
    ack_delay_seconds: float = DEFAULT_ACK_DELAY_SECONDS
    # Host part of the connection string's Endpoint; also sent as WebHook-Request-Origin (no port), which is
    # what the Functions extension compares with the host of its WebPubSubConnectionString endpoint.
    public_host: str = "127.0.0.1"

    @property
    def keys(self) -> list[str]:
        """Primary key first, then the secondary key when set."""
        return [self.access_key] + ([self.secondary_key] if self.secondary_key else [])


def hub_key(hub: str) -> str:
    """Hub names are case-insensitive in the service; this is the form used to look them up."""
    return hub.lower()


def parse_event_handler_spec(spec: str) -> tuple[str, EventHandlerSettings]:
    """Parse ``HUB=URL[;user=PATTERN][;system=a,b]`` (the ``--event-handler`` CLI syntax)."""
    hub, sep, rest = spec.partition("=")
    if not sep or not hub or not rest:
        raise SettingsError(f"expected HUB=URL[;user=PATTERN][;system=EVENTS], got {spec!r}")
    if not HUB_NAME_PATTERN.match(hub):
        raise SettingsError(f"invalid hub name {hub!r}")
    parts = rest.split(";")
    url = parts[0]
    user_pattern = ""
    system: list[str] = []
    for part in parts[1:]:
        key, eq, value = part.partition("=")
        key = key.strip().lower()
        if not eq:
            raise SettingsError(f"expected key=value in {part!r}")
        if key == "user":
            user_pattern = value.strip()
        elif key == "system":
            system = [s.strip() for s in value.split(",") if s.strip()]
        else:
            raise SettingsError(f"unknown key {key!r} in {spec!r}; use user= or system=")
    return hub, EventHandlerSettings(url_template=url, user_event_pattern=user_pattern, system_events=system)
