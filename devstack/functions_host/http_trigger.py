"""HTTP triggers: route requests under the host.json route prefix to functions, map responses back."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import azure.functions as func
from aiohttp import web

from devstack.functions_host.http_routes import RouteTemplate
from devstack.functions_host.indexing import IndexedFunction
from devstack.functions_host.invocation_log import REASON_HTTP
from devstack.functions_host.invoker import Invoker

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
        template = RouteTemplate(str(function.trigger.get("route") or function.name))
        methods = function.trigger.get("methods")
        allowed = frozenset(str(m).upper() for m in methods) if methods else None
        routes.append(HttpRoute(function, template, allowed))
    # Literal segments beat parameters, like ASP.NET routing precedence.
    routes.sort(key=lambda r: (-r.template.literal_segments, r.template.parameter_count))
    return routes


def build_http_request(request: web.Request, body: bytes, route_params: dict[str, str]) -> func.HttpRequest:
    """Build the ``func.HttpRequest`` the worker would hand to the function."""
    # Repeated headers and query keys arrive joined with ',' (.NET StringValues.ToString()).
    return func.HttpRequest(
        method=request.method,
        url=str(request.url),
        headers={key: ",".join(request.headers.getall(key)) for key in request.headers},
        params={key: ",".join(request.query.getall(key)) for key in request.query},
        route_params=route_params,
        body=body,
    )


def to_web_response(result: object) -> web.Response:
    """Map a function's return value to an HTTP response the way the worker's HTTP converter does."""
    if result is None:
        return web.Response(status=204)
    if isinstance(result, str):
        return web.Response(
            status=200, body=result.encode("utf-8"), headers={"Content-Type": "text/plain; charset=utf-8"}
        )
    if isinstance(result, func.HttpResponse):
        headers = {key: value for key, value in result.headers.items()}
        if not any(key.lower() == "content-type" for key in headers):
            mimetype = result.mimetype
            headers["Content-Type"] = (
                f"{mimetype}; charset={result.charset}" if mimetype.startswith("text/") else mimetype
            )
        return web.Response(status=result.status_code, body=result.get_body(), headers=headers)
    raise TypeError(
        f"an HTTP function must return func.HttpResponse, str or None, not {type(result).__name__}"
    )


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
        http_request = build_http_request(request, body, params)
        try:
            result = await self._invoker.invoke(route.function, http_request, REASON_HTTP)
        except Exception:  # noqa: BLE001 - the host answers 500 for any function failure
            return web.Response(status=500)
        try:
            return to_web_response(result)
        except TypeError as exc:
            logger.error("Function '%s' returned an unusable HTTP response: %s", route.function.name, exc)
            return web.Response(status=500)
