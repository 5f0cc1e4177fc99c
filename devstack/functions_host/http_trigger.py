"""HTTP triggers: route requests under the host.json route prefix to functions, map responses back.

The request goes to the runtime as the host's ``ToRpcHttp`` builds it for a worker with the runtime's
capabilities (``RawHttpBodyBytes``, ``RpcHttpBodyOnly``, ``RpcHttpTriggerMetadataRemoved``): method, absolute
URL, headers with lower-case names, query values that are not empty, route parameters, and the body as
``bytes`` when there is one; no trigger metadata. The ``RpcHttp`` (or string) the runtime returns becomes the
response.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from aiohttp import web

from devstack.functions_host import function_rpc as protos
from devstack.functions_host.http_routes import RouteTemplate
from devstack.functions_host.indexing import IndexedFunction, http_route
from devstack.functions_host.invocation_log import REASON_HTTP
from devstack.functions_host.invoker import InvocationFailed, Invoker
from devstack.functions_host.typed_data import utf8_text

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HttpRoute:
    """An HTTP-triggered function with its compiled route and allowed methods (None = any)."""

    function: IndexedFunction
    template: RouteTemplate
    methods: frozenset[str] | None


def build_routes(functions: Sequence[IndexedFunction]) -> list[HttpRoute]:
    """Compile the routes of the HTTP-triggered functions, most specific first."""
    routes: list[HttpRoute] = []
    for function in functions:
        if function.trigger_type != "httpTrigger":
            continue
        template = RouteTemplate(http_route(function))
        methods = function.trigger.get("methods")
        allowed = frozenset(str(m).upper() for m in methods) if methods else None
        routes.append(HttpRoute(function, template, allowed))
    # Literal segments beat parameters, like ASP.NET routing precedence.
    routes.sort(key=lambda r: (-r.template.literal_segments, r.template.parameter_count))
    return routes


def build_rpc_http(request: web.Request, body: bytes, route_params: dict[str, str]) -> Any:
    """The ``TypedData(http=RpcHttp)`` the host sends for ``request``."""
    # Bytes that are not UTF-8 (kept by aiohttp as surrogates) arrive as U+FFFD (utf8_text).
    http = protos.RpcHttp(method=request.method, url=utf8_text(str(request.url)))
    # Repeated headers and query keys arrive joined with ',' (.NET StringValues.ToString()).
    for key in dict.fromkeys(request.query.keys()):
        value = ",".join(request.query.getall(key))
        if value:  # without the nullable-dictionary capability, empty query values are left out
            http.query[utf8_text(key)] = utf8_text(value)
    for key in dict.fromkeys(request.headers.keys()):
        http.headers[utf8_text(key.lower())] = utf8_text(",".join(request.headers.getall(key)))
    for key, value in route_params.items():
        http.params[utf8_text(key)] = utf8_text(value)
    if body:
        http.body.CopyFrom(protos.TypedData(bytes=body))
    return protos.TypedData(http=http)


def _cookie_header(cookie: Any) -> str:
    parts = [f"{cookie.name}={cookie.value}"]
    if cookie.HasField("domain"):
        parts.append(f"domain={cookie.domain.value}")
    if cookie.HasField("path"):
        parts.append(f"path={cookie.path.value}")
    if cookie.HasField("expires"):
        expires = datetime.fromtimestamp(cookie.expires.value.seconds, UTC)
        parts.append(f"expires={format_datetime(expires, usegmt=True)}")
    if cookie.HasField("max_age"):
        parts.append(f"max-age={int(cookie.max_age.value)}")
    if cookie.HasField("secure") and cookie.secure.value:
        parts.append("secure")
    same_site = {1: "lax", 2: "strict", 3: "none"}.get(int(cookie.same_site))
    if same_site:
        parts.append(f"samesite={same_site}")
    if cookie.HasField("http_only") and cookie.http_only.value:
        parts.append("httponly")
    return "; ".join(parts)


def _body_bytes(body: Any) -> bytes:
    kind = body.WhichOneof("data")
    if kind == "string":
        return str(body.string).encode("utf-8")
    if kind in ("bytes", "stream"):
        return bytes(getattr(body, kind))
    return b""


def to_web_response(result: Any) -> web.Response:
    """Map the function's ``$return`` TypedData (RpcHttp, string or none) to an HTTP response."""
    kind = result.WhichOneof("data") if result is not None else None
    if kind is None:
        return web.Response(status=204)
    if kind == "string":
        return web.Response(
            status=200,
            body=str(result.string).encode("utf-8"),
            headers={"Content-Type": "text/plain; charset=utf-8"},
        )
    if kind == "http":
        http = result.http
        response = web.Response(status=int(http.status_code or 200), body=_body_bytes(http.body))
        for name, value in http.headers.items():
            response.headers[name] = value
        for cookie in http.cookies:
            response.headers.add("Set-Cookie", _cookie_header(cookie))
        return response
    raise TypeError(f"an HTTP function's return value arrived as TypedData '{kind}'")


class HttpTriggerDispatcher:
    """aiohttp handler for ``/<routePrefix>/...``: 404 when no route (or method) matches, like the host."""

    def __init__(self, routes: list[HttpRoute], prefix: str, invoker: Invoker) -> None:
        self._routes = routes
        self._prefix = prefix.strip("/")
        self._invoker = invoker

    def _path_under_prefix(self, path: str) -> str | None:
        path = path.strip("/")
        if not self._prefix:
            return path
        if path.lower() == self._prefix.lower():
            return ""
        if path.lower().startswith(self._prefix.lower() + "/"):
            return path[len(self._prefix) + 1 :]
        return None

    def find(self, method: str, path: str) -> tuple[HttpRoute, dict[str, str]] | None:
        """Return the route and its parameters for a request, or None."""
        relative = self._path_under_prefix(path)
        if relative is None:
            return None
        for route in self._routes:
            if route.methods is not None and method.upper() not in route.methods:
                continue
            params = route.template.match(relative)
            if params is not None:
                return route, params
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Serve one request by invoking the matching function."""
        found = self.find(request.method, request.path)
        if found is None:
            return web.Response(status=404)
        route, params = found
        body = await request.read()
        try:
            result = await self._invoker.invoke(
                route.function, build_rpc_http(request, body, params), REASON_HTTP
            )
        except InvocationFailed:  # the host answers 500 for any function failure (logged by the invoker)
            return web.Response(status=500)
        try:
            return to_web_response(result.return_value)
        except (TypeError, ValueError) as exc:
            logger.error("Function '%s' returned an unusable HTTP response: %s", route.function.name, exc)
            return web.Response(status=500)
