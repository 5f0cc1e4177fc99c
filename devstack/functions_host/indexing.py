"""Index a v2-model app like the Python worker: import function_app.py, find the FunctionApp, read bindings.

The worker imports the module, looks for the one top-level ``FunctionRegister`` instance and calls
``app.get_functions()``; the host then receives each function's ``function.json`` equivalent. This module does
the same and resolves ``%Setting%`` expressions in binding properties against the app settings, as the host
does.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import azure.functions as func

MODULE_NAME = "function_app"
_EXPRESSION = re.compile(r"%([^%]+)%")


class IndexingError(RuntimeError):
    """The app could not be indexed; the message names the file, function or setting at fault."""


@dataclass(frozen=True)
class IndexedFunction:
    """One function as the host sees it: name, resolved trigger, all bindings and the Python callable."""

    name: str
    trigger: dict[str, Any]
    bindings: list[dict[str, Any]]
    user_function: Callable[..., Any]
    parameters: tuple[str, ...] = field(default=())

    @property
    def trigger_type(self) -> str:
        """The trigger binding type (``httpTrigger``, ``queueTrigger``, ...)."""
        return str(self.trigger.get("type", ""))

    @property
    def is_async(self) -> bool:
        """True for ``async def`` functions."""
        return inspect.iscoroutinefunction(self.user_function)


@dataclass
class IndexedApp:
    """The imported app module and its functions."""

    module: ModuleType
    functions: list[IndexedFunction]
    _previous_module: ModuleType | None = None
    _added_path: str | None = None

    def unload(self) -> None:
        """Forget the imported module so another app (or a fresh copy of this one) can be indexed."""
        if sys.modules.get(MODULE_NAME) is self.module:
            if self._previous_module is not None:
                sys.modules[MODULE_NAME] = self._previous_module
            else:
                del sys.modules[MODULE_NAME]
        if self._added_path is not None and self._added_path in sys.path:
            sys.path.remove(self._added_path)


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


def _import_app_module(app_dir: Path) -> tuple[ModuleType, ModuleType | None, str | None]:
    script = app_dir / "function_app.py"
    if not script.is_file():
        raise IndexingError(f"no function_app.py in {app_dir}")
    added_path: str | None = None
    if str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
        added_path = str(app_dir)
    spec = importlib.util.spec_from_file_location(MODULE_NAME, script)
    if spec is None or spec.loader is None:
        raise IndexingError(f"cannot load {script}")
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(MODULE_NAME)
    # A fresh module object every time: FunctionApp.get_functions() may only run once per app instance.
    sys.modules[MODULE_NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        if previous is not None:
            sys.modules[MODULE_NAME] = previous
        else:
            sys.modules.pop(MODULE_NAME, None)
        if added_path is not None:
            sys.path.remove(added_path)
        raise IndexingError(f"importing {script} failed: {type(exc).__name__}: {exc}") from exc
    return module, previous, added_path


def _find_function_app(module: ModuleType) -> func.FunctionRegister:
    found: list[str] = []
    app: func.FunctionRegister | None = None
    for attribute in dir(module):
        candidate = getattr(module, attribute, None)
        if isinstance(candidate, func.FunctionRegister):
            found.append(attribute)
            app = candidate
    if app is None:
        raise IndexingError("could not find a top-level FunctionApp instance in function_app.py")
    if len(found) > 1:
        raise IndexingError(
            f"more than one top-level function app instance in function_app.py: {', '.join(found)}"
        )
    return app


def index_app(app_dir: Path, settings: Mapping[str, str]) -> IndexedApp:
    """Import ``app_dir/function_app.py``; return its functions with resolved bindings (or IndexingError)."""
    app_dir = app_dir.resolve()
    module, previous, added_path = _import_app_module(app_dir)
    indexed = IndexedApp(module=module, functions=[], _previous_module=previous, _added_path=added_path)
    try:
        app = _find_function_app(module)
        try:
            functions = app.get_functions()
        except Exception as exc:
            raise IndexingError(f"indexing function_app.py failed: {type(exc).__name__}: {exc}") from exc
        for function in functions:
            indexed.functions.append(_index_function(function, settings))
    except BaseException:
        indexed.unload()
        raise
    return indexed


def _index_function(function: func.Function, settings: Mapping[str, str]) -> IndexedFunction:
    name = str(function.get_function_name())
    try:
        document = json.loads(function.get_function_json())
    except Exception as exc:
        raise IndexingError(f"function '{name}': cannot build its bindings: {exc}") from exc
    bindings = [
        resolve_expressions(binding, settings, f"function '{name}'") for binding in document["bindings"]
    ]
    trigger = function.get_trigger()
    if trigger is None:
        raise IndexingError(f"function '{name}' has no trigger")
    trigger_name = trigger.name
    triggers = [
        b for b in bindings if b.get("name") == trigger_name and str(b.get("direction", "IN")).upper() == "IN"
    ]
    if not triggers:
        raise IndexingError(f"function '{name}' has no trigger binding")
    user_function = function.get_user_function()
    parameters = tuple(inspect.signature(user_function).parameters)
    if trigger_name not in parameters:
        raise IndexingError(
            f"function '{name}': trigger argument '{trigger_name}' is not a parameter of the function"
        )
    return IndexedFunction(
        name=name, trigger=triggers[0], bindings=bindings, user_function=user_function, parameters=parameters
    )
