"""What the emulator holds: hubs with their installations, the access rules, the push sink and the faults."""

from __future__ import annotations

import base64
import copy
import re
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from devstack.notificationhubs.faults import FaultInjector
from devstack.notificationhubs.sas import FULL_RULE, LISTEN, LISTEN_RULE, MANAGE, SEND, AccessRule
from devstack.notificationhubs.scheduled import TIERS, Scheduler
from devstack.notificationhubs.sink import PushSink

HUB_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9\-./_]{0,259}$")


def random_key() -> str:
    """A random key shaped like the service's (base64 of 32 bytes)."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


@dataclass
class Hub:
    """One notification hub and its installations (keyed by installationId)."""

    name: str
    installations: dict[str, dict[str, Any]] = field(default_factory=dict)


class EmulatorState:
    """All mutable emulator state; safe to use from the server loop and from test threads."""

    def __init__(
        self, full_key: str | None = None, listen_key: str | None = None, tier: str = "standard"
    ) -> None:
        if tier not in TIERS:
            raise ValueError(f"unknown tier {tier!r}; use one of {', '.join(TIERS)}")
        #: The namespace pricing tier: Standard-only features (scheduled sends) are refused below it.
        self.tier = tier
        self.full_key = full_key or random_key()
        self.listen_key = listen_key or random_key()
        self.rules = {
            FULL_RULE: AccessRule(FULL_RULE, self.full_key, frozenset({LISTEN, SEND, MANAGE})),
            LISTEN_RULE: AccessRule(LISTEN_RULE, self.listen_key, frozenset({LISTEN})),
        }
        self.sink = PushSink()
        self.faults = FaultInjector()
        self.scheduler = Scheduler()
        self._hubs: dict[str, Hub] = {}
        self.lock = threading.RLock()

    def create_hub(self, name: str) -> bool:
        """Create hub ``name`` (hub paths are case-insensitive); return False if it already existed."""
        if not HUB_NAME.match(name):
            raise ValueError(f"invalid hub name {name!r}: start with a letter, then letters, digits, - . / _")
        with self.lock:
            if name.lower() in self._hubs:
                return False
            self._hubs[name.lower()] = Hub(name)
            return True

    def hub(self, name: str) -> Hub | None:
        """The hub called ``name`` or None."""
        with self.lock:
            return self._hubs.get(name.lower())

    def hub_names(self) -> list[str]:
        """Names of all hubs."""
        with self.lock:
            return sorted(hub.name for hub in self._hubs.values())

    def installation(self, hub: str, installation_id: str) -> dict[str, Any] | None:
        """A copy of a stored installation, or None."""
        with self.lock:
            found = self.hub(hub)
            if found is None or installation_id not in found.installations:
                return None
            return copy.deepcopy(found.installations[installation_id])
