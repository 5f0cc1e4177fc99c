"""Invocations through the runtime: build the InvocationRequest, log the outcome, write the output bindings.

The trigger's value arrives as the TypedData the host would send; :class:`Invoker` adds the invocation id, the
function id, the trigger metadata, a W3C trace context and an empty retry context, hands it to the runtime and
reads its InvocationResponse: ``return_value`` and ``output_data`` on success, the runtime's serialised
exception (``RpcException``) on failure, which is logged like the host logs it and raised as
:class:`InvocationFailed`.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from devstack.functions_host import function_rpc as protos
from devstack.functions_host.indexing import IndexedFunction
from devstack.functions_host.invocation_log import log_executed, log_executing
from devstack.functions_host.output_bindings import write_outputs
from devstack.functions_host.python_worker import PythonWorker
from devstack.functions_host.typed_data import system_metadata

logger = logging.getLogger("devstack.functions_host.invocations")


class InvocationFailed(Exception):
    """The function failed; ``message`` and ``stack_trace`` are the runtime's serialised exception."""

    def __init__(self, function_name: str, message: str, stack_trace: str = "") -> None:
        super().__init__(message)
        self.function_name = function_name
        self.message = message
        self.stack_trace = stack_trace


@dataclass(frozen=True)
class InvocationResult:
    """What a successful invocation returned: the ``$return`` TypedData (or None) and the output bindings."""

    invocation_id: str
    return_value: Any = None
    outputs: dict[str, Any] = field(default_factory=dict)


def _trace_parent() -> str:
    return f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-00"


class Invoker:
    """Sends invocations to the Python worker and writes their queue output bindings."""

    def __init__(
        self,
        worker: PythonWorker,
        settings: Mapping[str, str] | None = None,
        queue_encoding: str = "base64",
        on_queue_written: Callable[[str], None] | None = None,
    ) -> None:
        self.on_queue_written = on_queue_written
        self._worker = worker
        self._settings = dict(settings or {})
        self._queue_encoding = queue_encoding

    async def invoke(
        self,
        function: IndexedFunction,
        trigger_value: Any,
        reason: str,
        trigger_metadata: Mapping[str, Any] | None = None,
    ) -> InvocationResult:
        """Run ``function`` with the trigger's TypedData; return its result or raise InvocationFailed."""
        invocation_id = str(uuid.uuid4())
        request = protos.InvocationRequest(
            invocation_id=invocation_id,
            function_id=function.function_id,
            input_data=[protos.ParameterBinding(name=str(function.trigger["name"]), data=trigger_value)],
            trigger_metadata={**(trigger_metadata or {}), "sys": system_metadata(function.name)},
            trace_context=protos.RpcTraceContext(trace_parent=_trace_parent()),
            retry_context=protos.RetryContext(),
        )
        log_executing(function.name, reason, invocation_id)
        started = time.monotonic()
        try:
            response = await self._worker.invoke(request)
            if response.result.status != protos.StatusResult.Success:
                exception = response.result.exception
                raise InvocationFailed(function.name, str(exception.message), str(exception.stack_trace))
            result = InvocationResult(
                invocation_id=invocation_id,
                return_value=response.return_value if response.HasField("return_value") else None,
                outputs={binding.name: binding.data for binding in response.output_data},
            )
            await write_outputs(
                function,
                result.outputs,
                result.return_value,
                self._settings,
                self._queue_encoding,
                self.on_queue_written,
            )
        except InvocationFailed as failure:
            log_executed(function.name, False, invocation_id, (time.monotonic() - started) * 1000)
            logger.error(
                "Exception while executing function: Functions.%s. Result: Failure\nException: %s\nStack: %s",
                function.name,
                failure.message,
                failure.stack_trace.rstrip(),
            )
            raise
        except Exception as exc:  # a host-side failure (e.g. writing an output) fails the invocation
            log_executed(function.name, False, invocation_id, (time.monotonic() - started) * 1000)
            logger.error(
                "Exception while executing function: Functions.%s. %s: %s",
                function.name,
                type(exc).__name__,
                exc,
                exc_info=exc,
            )
            raise InvocationFailed(function.name, f"{type(exc).__name__}: {exc}") from exc
        log_executed(function.name, True, invocation_id, (time.monotonic() - started) * 1000)
        return result
