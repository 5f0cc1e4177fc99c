"""The Python side of the local host: Azure's own runtime, ``azure-functions-runtime``, driven in process.

From Python 3.13 Azure Functions runs a Python app through a thin proxy worker that owns the host's gRPC
stream and calls the runtime package through five coroutines, each given a request object with the
``StreamingMessage`` and the protobuf module (``properties["protos"]``): ``worker_init_request`` (indexes
``function_app.py``), ``functions_metadata_request``, ``function_load_request``, ``invocation_request`` and
``function_environment_reload_request`` (specialisation of a placeholder worker). :class:`PythonWorker` plays
the proxy worker's part, with the messages of :mod:`devstack.functions_host.function_rpc`; everything between
the messages and the user's code (indexing, load-time checks, binding converters, ``$return`` and ``func.Out``
handling, the thread pool for sync functions, exception serialisation) is the runtime's.

The runtime keeps its state in module globals, so one worker is active per process at a time.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import azure_functions_runtime as runtime
from azure_functions_runtime.version import VERSION

from devstack.functions_host import function_rpc as protos

logger = logging.getLogger(__name__)

RUNTIME_VERSION = str(VERSION)
HOST_VERSION = "4.1000.0.0-devstack"
SCRIPT_FILE_SETTING = "PYTHON_SCRIPT_FILE_NAME"  # the runtime's own app setting for a non-default script
DEFAULT_SCRIPT_FILE = "function_app.py"
_FAILURE = protos.StatusResult.Failure


@dataclass
class WorkerRequest:
    """What the proxy worker hands each runtime coroutine: a name, the StreamingMessage and properties."""

    name: str
    request: Any
    properties: dict[str, Any] = field(default_factory=dict)


class WorkerError(RuntimeError):
    """The runtime answered a request with a Failure status; carries its serialised exception."""

    def __init__(self, step: str, exception: Any) -> None:
        self.step = step
        self.message = str(exception.message) or "(no message)"
        self.stack_trace = str(exception.stack_trace)
        super().__init__(f"{step}: {self.message}")


def script_file_name(settings: Mapping[str, str]) -> str:
    """The app's script file: ``PYTHON_SCRIPT_FILE_NAME`` (as the runtime reads it) or function_app.py."""
    return settings.get(SCRIPT_FILE_SETTING) or DEFAULT_SCRIPT_FILE


def _check(step: str, result: Any) -> None:
    if result.status == _FAILURE:
        raise WorkerError(step, result.exception)


class PythonWorker:
    """Loads one app into ``azure-functions-runtime`` and forwards invocations to it."""

    def __init__(self, app_dir: Path, script_file: str = DEFAULT_SCRIPT_FILE) -> None:
        self.app_dir = app_dir.resolve()
        self.module_name = Path(script_file).stem
        self.capabilities: dict[str, str] = {}
        self._previous_module: ModuleType | None = None
        self._added_path: str | None = None
        self._isolated = False

    @property
    def thread_count(self) -> int:
        """How many synchronous invocations the runtime's thread pool runs at once."""
        executor = runtime.get_threadpool_executor()
        return int(getattr(executor, "_max_workers", 0) or 0)

    @property
    def runtime_version(self) -> str:
        """The version of azure-functions-runtime that runs the app."""
        return RUNTIME_VERSION

    def _message(self, name: str, **content: Any) -> WorkerRequest:
        return WorkerRequest(
            name=name,
            request=protos.StreamingMessage(request_id=name, **content),
            properties={"protos": protos, "host": "127.0.0.1"},
        )

    def _isolate_app_module(self) -> None:
        # The runtime imports the script by module name from sys.path, like the proxy worker sets it up: the
        # app folder goes first, and a module of the same name from another app must not be reused.
        if self._isolated:
            return
        self._previous_module = sys.modules.pop(self.module_name, None)
        if str(self.app_dir) not in sys.path:
            sys.path.insert(0, str(self.app_dir))
            self._added_path = str(self.app_dir)
        self._isolated = True

    async def init(self) -> dict[str, str]:
        """Send WorkerInitRequest (the runtime indexes the app); return its capabilities or WorkerError."""
        self._isolate_app_module()
        runtime.start_threadpool_executor()
        init = protos.WorkerInitRequest(
            host_version=HOST_VERSION,
            worker_directory=str(Path(runtime.__file__).parent),
            function_app_directory=str(self.app_dir),
        )
        response = await runtime.worker_init_request(
            self._message("WorkerInitRequest", worker_init_request=init)
        )
        _check("worker init", response.result)
        self.capabilities = dict(response.capabilities)
        return self.capabilities

    async def functions_metadata(self) -> list[Any]:
        """Send FunctionsMetadataRequest; return the runtime's RpcFunctionMetadata list (the app's index)."""
        request = protos.FunctionsMetadataRequest(function_app_directory=str(self.app_dir))
        response = await runtime.functions_metadata_request(
            self._message("FunctionsMetadataRequest", functions_metadata_request=request)
        )
        _check("functions metadata", response.result)
        return list(response.function_metadata_results)

    async def load(self, metadata: Any) -> None:
        """Send FunctionLoadRequest for one indexed function; WorkerError if the runtime refuses it."""
        request = protos.FunctionLoadRequest(function_id=metadata.function_id, metadata=metadata)
        response = await runtime.function_load_request(
            self._message("FunctionLoadRequest", function_load_request=request)
        )
        _check(f"load of function '{metadata.name}'", response.result)

    async def invoke(self, request: Any) -> Any:
        """Send an InvocationRequest; return the runtime's InvocationResponse (success or failure)."""
        message = self._message("InvocationRequest", invocation_request=request)
        return await runtime.invocation_request(message)

    async def reload_environment(self, environment: Mapping[str, str]) -> dict[str, str]:
        """Send FunctionEnvironmentReloadRequest, as the host does to specialise a placeholder worker.

        The runtime then replaces ``os.environ`` with ``environment``, re-indexes the app and changes the
        working directory to it. Returns the capabilities it reports, or raises WorkerError.
        """
        self._isolate_app_module()
        runtime.start_threadpool_executor()
        request = protos.FunctionEnvironmentReloadRequest(
            environment_variables=dict(environment), function_app_directory=str(self.app_dir)
        )
        response = await runtime.function_environment_reload_request(
            self._message("FunctionEnvironmentReloadRequest", function_environment_reload_request=request)
        )
        _check("environment reload", response.result)
        self.capabilities = dict(response.capabilities)
        return self.capabilities

    def stop(self) -> None:
        """Stop the runtime's thread pool (running sync invocations finish unawaited) and unload the app."""
        executor = runtime.get_threadpool_executor()
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        if not self._isolated:
            return
        module = sys.modules.get(self.module_name)
        module_file = getattr(module, "__file__", None) or ""
        if module is not None and os.path.dirname(os.path.abspath(module_file)) == str(self.app_dir):
            del sys.modules[self.module_name]
        if self._previous_module is not None:
            sys.modules[self.module_name] = self._previous_module
        if self._added_path is not None and self._added_path in sys.path:
            sys.path.remove(self._added_path)
        self._isolated = False
