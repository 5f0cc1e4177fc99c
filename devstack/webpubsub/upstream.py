"""Delivery of events to upstream handlers: CloudEvents HTTP binary mode, abuse-protection handshake."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp

from devstack.webpubsub.auth import event_signature
from devstack.webpubsub.settings import EmulatorConfig, EventHandlerSettings

logger = logging.getLogger(__name__)

AWPS_VERSION = "1.0"


@dataclass(frozen=True)
class EventContext:
    """What the CloudEvents attributes say about the connection an event comes from."""

    hub: str
    connection_id: str
    user_id: str | None
    subprotocol: str | None
    connection_state: str | None
    # ce-id: counted per connection, 0 for connect (ce-source + ce-id identify an event, per CloudEvents).
    event_id: int = 0


@dataclass
class UpstreamResult:
    """Outcome of one event delivery; ``status`` is None when the handler could not be reached at all."""

    status: int | None
    body: bytes = b""
    content_type: str | None = None
    connection_state: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True for a 2xx answer."""
        return self.status is not None and 200 <= self.status < 300


@dataclass
class _Validation:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    passed: bool = False


class UpstreamDispatcher:
    """Posts events to handler URLs; validates each URL once with the OPTIONS handshake before first use."""

    def __init__(self, config: EmulatorConfig) -> None:
        self._config = config
        self._session: aiohttp.ClientSession | None = None
        self._validations: dict[str, _Validation] = {}

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self._config.upstream_timeout_seconds)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    @property
    def origin(self) -> str:
        """The WebHook-Request-Origin value: the host of the connection string's Endpoint, without port."""
        return self._config.public_host

    def _origin_allowed(self, values: list[str]) -> bool:
        # One header per value or a comma list; `@azure/web-pubsub-express` with `allowedEndpoints` sends the
        # endpoints' URL hosts, which here carry the emulator's port: compare without it.
        origins = {o.strip().lower() for value in values for o in value.split(",") if o.strip()}
        hosts = {o.rsplit(":", 1)[0] for o in origins}
        return "*" in origins or self.origin.lower() in origins | hosts

    async def _validate(self, url: str) -> bool:
        state = self._validations.setdefault(url, _Validation())
        async with state.lock:
            if state.passed:
                return True
            # ce-awpsversion is how handler libraries recognise the service (web-pubsub-express ignores
            # any request without it, the preflight included).
            headers = {"WebHook-Request-Origin": self.origin, "ce-awpsversion": AWPS_VERSION}
            try:
                async with self._http().options(url, headers=headers) as resp:
                    allowed = resp.headers.getall("WebHook-Allowed-Origin", [])
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                logger.warning(
                    "abuse-protection handshake with %s failed: %s; events not delivered", url, exc
                )
                return False
            if 200 <= status < 300 and self._origin_allowed(allowed):
                state.passed = True
                logger.info("abuse-protection handshake with %s passed", url)
                return True
            logger.warning(
                "abuse-protection handshake with %s refused (status %s, WebHook-Allowed-Origin %r, "
                "origin %r); "
                "events to this handler are not delivered",
                url,
                status,
                allowed,
                self.origin,
            )
            return False

    async def deliver(
        self,
        handler: EventHandlerSettings,
        ctx: EventContext,
        event_name: str,
        is_system: bool,
        body: bytes,
        content_type: str,
    ) -> UpstreamResult:
        """POST one event; returns the handler's answer or a result with ``status=None`` and an error."""
        url = handler.url_for(ctx.hub, event_name)
        # The service validates a handler once, with its {event} parameter resolved to "validate".
        check = handler.url_for(ctx.hub, "validate")
        if not await self._validate(check):
            error = f"the event handler {check} did not pass abuse protection"
            return UpstreamResult(status=None, error=error)
        kind = "sys" if is_system else "user"
        headers = {
            "Content-Type": content_type,
            "WebHook-Request-Origin": self.origin,
            "ce-specversion": "1.0",
            "ce-awpsversion": AWPS_VERSION,
            "ce-type": f"azure.webpubsub.{kind}.{event_name}",
            "ce-source": f"/hubs/{ctx.hub}/client/{ctx.connection_id}",
            "ce-id": str(ctx.event_id),
            "ce-time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ce-signature": event_signature(ctx.connection_id, self._config.keys),
            "ce-connectionId": ctx.connection_id,
            "ce-hub": ctx.hub,
            "ce-eventName": event_name,
        }
        if ctx.user_id is not None:
            headers["ce-userId"] = ctx.user_id
        if ctx.subprotocol:
            headers["ce-subprotocol"] = ctx.subprotocol
        if ctx.connection_state is not None:
            headers["ce-connectionState"] = ctx.connection_state
        try:
            async with self._http().post(url, data=body, headers=headers) as resp:
                data = await resp.read()
                result = UpstreamResult(
                    status=resp.status,
                    body=data,
                    content_type=resp.headers.get("Content-Type"),
                    connection_state=resp.headers.get("ce-connectionState"),
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            logger.warning(
                "event %s for connection %s not delivered to %s: %s", event_name, ctx.connection_id, url, exc
            )
            return UpstreamResult(status=None, error=f"the event handler {url} could not be reached: {exc}")
        logger.info(
            "event %s for connection %s -> %s answered %s", event_name, ctx.connection_id, url, result.status
        )
        return result
