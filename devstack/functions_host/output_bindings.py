"""Queue output bindings (``@app.queue_output``): the runtime's ``output_data`` / ``$return``, sent on
success.

The runtime encodes what the function set (``str`` as ``string``, ``bytes`` as ``bytes``, a ``QueueMessage``
as JSON ``{"id", "body"}``, a list as a JSON array); the host writes one message per value, one per array item
for an array. Messages are base64-encoded unless host.json says ``messageEncoding: none``. Other output
binding types are refused at startup.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue.aio import QueueClient

from devstack.functions_host.indexing import IndexedFunction, IndexingError
from devstack.functions_host.settings_loader import connection_string_for
from devstack.functions_host.typed_data import from_typed_data, newtonsoft_json


def output_bindings(function: IndexedFunction) -> list[dict[str, Any]]:
    """The function's OUT bindings other than an HTTP ``$return``."""
    return [
        b
        for b in function.bindings
        if str(b.get("direction", "")).upper() == "OUT"
        and not (b.get("type") == "http" and b.get("name") == "$return")
    ]


def check_bindings(functions: Sequence[IndexedFunction]) -> None:
    """Raise IndexingError for input bindings and for output bindings this host cannot write."""
    for function in functions:
        for binding in function.bindings:
            if str(binding.get("direction", "")).upper() == "IN" and binding is not function.trigger:
                raise IndexingError(
                    f"function '{function.name}': input binding '{binding.get('name')}' of type "
                    f"'{binding.get('type')}' is not supported by the local host"
                )
        for binding in output_bindings(function):
            if binding.get("type") != "queue":
                raise IndexingError(
                    f"function '{function.name}': output binding '{binding.get('name')}' of type "
                    f"'{binding.get('type')}' is not supported by the local host"
                )


def queue_messages(data: Any) -> list[str | bytes]:
    """The queue messages for one output binding's TypedData (none for an empty one)."""
    kind = data.WhichOneof("data") if data is not None else None
    if kind is None:
        return []
    if kind in ("string", "bytes"):
        return [getattr(data, kind)]
    value = from_typed_data(data)
    items = value if isinstance(value, list) else [value]
    return [item if isinstance(item, str | bytes) else newtonsoft_json(item) for item in items]


def _encode(message: str | bytes, encoding: str) -> str:
    data = message.encode("utf-8") if isinstance(message, str) else message
    if encoding == "none":
        return data.decode("utf-8")
    return base64.b64encode(data).decode("ascii")


async def write_outputs(
    function: IndexedFunction,
    outputs: Mapping[str, Any],
    return_value: Any,
    settings: Mapping[str, str],
    encoding: str,
    on_written: Callable[[str], None] | None = None,
) -> None:
    """Send the function's queue output bindings; call ``on_written(queue_name)`` after each queue."""
    for binding in output_bindings(function):
        name = str(binding["name"])
        messages = queue_messages(return_value if name == "$return" else outputs.get(name))
        if not messages:
            continue
        connection = connection_string_for(binding, settings)
        queue_name = str(binding["queueName"]).lower()
        async with QueueClient.from_connection_string(connection, queue_name) as queue:
            with contextlib.suppress(ResourceExistsError):
                await queue.create_queue()
            for message in messages:
                await queue.send_message(_encode(message, encoding))
        if on_written is not None:
            on_written(queue_name)
