"""Call user functions: sync ones in a thread pool, async ones on the loop, each invocation logged."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from devstack.functions_host.indexing import IndexedFunction
from devstack.functions_host.invocation_log import log_executed, log_executing
from devstack.functions_host.output_bindings import OutValue, output_bindings, write_outputs


@dataclass(frozen=True)
class InvocationContext:
    """What the worker passes to a ``context`` parameter (the fields apps use)."""

    invocation_id: str
    function_name: str
    function_directory: str
    trace_context: Any = None
    retry_context: Any = None
    thread_local_storage: threading.local = field(default_factory=threading.local)


class Invoker:
    """Runs functions; owns the thread pool used for sync functions."""

    def __init__(
        self,
        app_dir: str,
        settings: Mapping[str, str] | None = None,
        queue_encoding: str = "base64",
        max_workers: int = 32,
        on_queue_written: Callable[[str], None] | None = None,
    ) -> None:
        self.on_queue_written = on_queue_written
        self._app_dir = app_dir
        self._settings = dict(settings or {})
        self._queue_encoding = queue_encoding
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="functions-worker")

    async def invoke(self, function: IndexedFunction, trigger_value: Any, reason: str) -> Any:
        """Invoke ``function`` with the trigger argument; return its result or re-raise its exception."""
        invocation_id = str(uuid.uuid4())
        kwargs: dict[str, Any] = {}
        trigger_name = str(function.trigger["name"])
        outs = {str(b["name"]): OutValue() for b in output_bindings(function) if b["name"] != "$return"}
        for parameter in function.parameters:
            if parameter == trigger_name:
                kwargs[parameter] = trigger_value
            elif parameter in outs:
                kwargs[parameter] = outs[parameter]
            elif parameter == "context":
                kwargs[parameter] = InvocationContext(invocation_id, function.name, self._app_dir)
        log_executing(function.name, reason, invocation_id)
        started = time.monotonic()
        try:
            if function.is_async:
                result = await function.user_function(**kwargs)
            else:
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(self._pool, lambda: function.user_function(**kwargs))
            await write_outputs(
                function, outs, result, self._settings, self._queue_encoding, self.on_queue_written
            )
        except Exception as exc:
            log_executed(function.name, False, invocation_id, (time.monotonic() - started) * 1000, exc)
            raise
        log_executed(function.name, True, invocation_id, (time.monotonic() - started) * 1000)
        return result

    def shutdown(self) -> None:
        """Stop accepting work; running sync invocations finish in their threads without being awaited."""
        self._pool.shutdown(wait=False, cancel_futures=True)
