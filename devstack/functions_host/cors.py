"""CORS like ``func start``: ``Host.CORS``/``Host.CORSCredentials`` in local.settings.json, or ``--cors``.

Any method and header are allowed for the listed origins (``*`` = any); no CORS headers at all when no origin
is configured, as with Core Tools. Beyond Core Tools, an origin may end in ``:*`` for any port of that
scheme and host (``http://localhost:*``), which is what ``make dev`` allows by default.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class CorsSettings:
    """Allowed origins (``*`` for any) and whether credentials are allowed."""

    origins: tuple[str, ...] = ()
    credentials: bool = False

    @classmethod
    def parse(cls, origins: str | Sequence[str] | None, credentials: bool = False) -> CorsSettings:
        """Build from a comma-separated string or a list."""
        if origins is None:
            return cls((), credentials)
        items = origins.split(",") if isinstance(origins, str) else list(origins)
        return cls(tuple(o.strip().rstrip("/") for o in items if o.strip()), credentials)

    def allows(self, origin: str) -> bool:
        """True when ``origin`` may call the host."""
        origin = origin.rstrip("/")
        return "*" in self.origins or any(_matches(allowed, origin) for allowed in self.origins)


def _matches(allowed: str, origin: str) -> bool:
    if not allowed.endswith(":*"):
        return origin == allowed
    base = allowed[:-2]
    if origin == base:  # the scheme's default port
        return True
    return origin.startswith(base + ":") and origin[len(base) + 1 :].isdigit()


def cors_middleware(settings: CorsSettings) -> Middleware:
    """Return an aiohttp middleware that answers preflights and adds CORS headers for allowed origins."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if not settings.origins or not origin or not settings.allows(origin):
            return await handler(request)
        allow_origin = origin if settings.credentials or "*" not in settings.origins else "*"
        headers = {"Access-Control-Allow-Origin": allow_origin}
        if settings.credentials:
            headers["Access-Control-Allow-Credentials"] = "true"
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            headers["Access-Control-Allow-Methods"] = request.headers["Access-Control-Request-Method"]
            requested = request.headers.get("Access-Control-Request-Headers")
            if requested:
                headers["Access-Control-Allow-Headers"] = requested
            return web.Response(status=204, headers=headers)
        response = await handler(request)
        response.headers.update(headers)
        return response

    return middleware
