"""The host's half of indexing: turn the runtime's function metadata into functions the listeners can serve.

``azure-functions-runtime`` imports ``function_app.py``, finds the app, checks every function and returns one
``RpcFunctionMetadata`` per function with its bindings as JSON (``raw_bindings``), exactly what the runtime
sends the host in Azure. This module then does what the host does with it: validates binding names, the single
trigger and HTTP routes (the host reserves routes starting with ``admin`` and ``runtime``), and resolves
``%Setting%`` expressions in binding properties against the app settings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

_EXPRESSION = re.compile(r"%([^%]+)%")
# FunctionDescriptorProvider.BindingNameValidationRegex in the host
_BINDING_NAME = re.compile(r"^([a-zA-Z][a-zA-Z0-9]{0,127}|\$return)$")
# ScriptHost.ValidateHttpFunction: HTTP routes in the host's own route space (before the routePrefix is
# applied)
RESERVED_ROUTE_PREFIXES = ("admin", "runtime")
RESERVED_ROUTE_MESSAGE = "The specified route conflicts with one or more built in routes."


class IndexingError(RuntimeError):
    """The app could not be indexed or loaded; the message names the file, function or setting at fault.

    ``stack_trace`` holds the runtime's stack trace when the runtime refused the app (import or load errors).
    """

    def __init__(self, message: str, stack_trace: str = "") -> None:
        super().__init__(message)
        self.stack_trace = stack_trace


@dataclass(frozen=True)
class IndexedFunction:
    """One function as the host sees it: name, the runtime's function id, resolved trigger and bindings."""

    name: str
    function_id: str
    trigger: dict[str, Any]
    bindings: list[dict[str, Any]]
    metadata: Any = field(default=None, repr=False, compare=False)  # the runtime's RpcFunctionMetadata

    @property
    def trigger_type(self) -> str:
        """The trigger binding type (``httpTrigger``, ``queueTrigger``, ...)."""
        return str(self.trigger.get("type", ""))


def resolve_expressions(value: Any, settings: Mapping[str, str], where: str) -> Any:
    """Replace ``%Name%`` in strings (also inside lists/dicts) with app settings; IndexingError if missing."""
    if isinstance(value, str):

        def lookup(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in settings:
                raise IndexingError(f"{where}: app setting '{name}' used in {value!r} is not defined")
            return settings[name]

        return _EXPRESSION.sub(lookup, value)
    if isinstance(value, list):
        return [resolve_expressions(item, settings, where) for item in value]
    if isinstance(value, dict):
        return {key: resolve_expressions(item, settings, where) for key, item in value.items()}
    return value


def _is_trigger(binding: Mapping[str, Any]) -> bool:
    # BindingMetadata.IsTrigger: the binding type ends with "Trigger" (case-insensitive)
    return str(binding.get("type", "")).lower().endswith("trigger")


def _bindings(name: str, raw_bindings: Iterable[str]) -> list[dict[str, Any]]:
    bindings: list[dict[str, Any]] = []
    seen: set[str] = set()
    for raw in raw_bindings:
        try:
            binding = json.loads(raw)
        except ValueError as exc:
            raise IndexingError(f"function '{name}': a binding is not JSON: {raw!r}") from exc
        if not isinstance(binding, dict):
            raise IndexingError(f"function '{name}': a binding is not a JSON object: {raw!r}")
        binding_name = binding.get("name")
        if not isinstance(binding_name, str) or not _BINDING_NAME.match(binding_name):
            raise IndexingError(
                f"function '{name}': The binding name {binding_name} is invalid. "
                "Please assign a valid name to the binding."
            )
        if binding_name.lower() in seen:
            raise IndexingError(
                f"function '{name}': Multiple bindings with name '{binding_name}' discovered. "
                "Binding names must be unique."
            )
        seen.add(binding_name.lower())
        bindings.append(binding)
    return bindings


def _trigger(name: str, bindings: list[dict[str, Any]]) -> dict[str, Any]:
    triggers = [b for b in bindings if _is_trigger(b) and str(b.get("direction", "IN")).upper() == "IN"]
    if len(triggers) > 1:
        raise IndexingError(
            f"function '{name}': Multiple trigger bindings defined. "
            "A function can only have a single trigger binding."
        )
    if not triggers:
        raise IndexingError(
            f"function '{name}': No trigger binding specified. A function must have a trigger input binding."
        )
    return triggers[0]


def http_route(function: IndexedFunction) -> str:
    """An HTTP function's route template (the function name when the binding has none), no slashes."""
    return str(function.trigger.get("route") or function.name).strip("/")


def _methods(function: IndexedFunction) -> frozenset[str] | None:
    methods = function.trigger.get("methods")
    return frozenset(str(m).upper() for m in methods) if methods else None


def check_http_routes(functions: Iterable[IndexedFunction]) -> None:
    """Refuse reserved routes and routes two functions share with a common method, as the host does."""
    claimed: list[IndexedFunction] = []
    for function in functions:
        if function.trigger_type.lower() != "httptrigger":
            continue
        route = http_route(function)
        if route.lower().startswith(RESERVED_ROUTE_PREFIXES):
            raise IndexingError(f"function '{function.name}' (route '{route}'): {RESERVED_ROUTE_MESSAGE}")
        for other in claimed:
            if http_route(other).lower() != route.lower():
                continue
            mine, theirs = _methods(function), _methods(other)
            if mine is None or theirs is None or mine & theirs:
                raise IndexingError(
                    f"function '{function.name}': The route specified conflicts with the route defined by "
                    f"function '{other.name}'."
                )
        claimed.append(function)


def index_functions(metadata_results: Iterable[Any], settings: Mapping[str, str]) -> list[IndexedFunction]:
    """Build the host's view of the runtime's RpcFunctionMetadata list; IndexingError names what is wrong."""
    functions: list[IndexedFunction] = []
    for metadata in metadata_results:
        name = str(metadata.name)
        bindings = [
            resolve_expressions(binding, settings, f"function '{name}'")
            for binding in _bindings(name, metadata.raw_bindings)
        ]
        functions.append(
            IndexedFunction(
                name=name,
                function_id=str(metadata.function_id),
                trigger=_trigger(name, bindings),
                bindings=bindings,
                metadata=metadata,
            )
        )
    check_http_routes(functions)
    return functions
