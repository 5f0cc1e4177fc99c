"""Queue output bindings (``@app.queue_output``): ``func.Out`` parameters and ``$return``, sent on success.

Values are converted like the worker's queue converter: ``str``/``bytes`` as the message, a ``QueueMessage``
as JSON ``{"id", "body"}``, a list as one message per item. Messages are base64-encoded unless host.json says
``messageEncoding: none``. Other output binding types are refused at startup.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import azure.functions as func
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue.aio import QueueClient

from devstack.functions_host.indexing import IndexedFunction, IndexingError
from devstack.functions_host.settings_loader import connection_string_for


class OutValue(func.Out[Any]):
    """What the worker passes to a ``func.Out`` parameter."""

    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        """Set the value to write."""
        self._value = val

    def get(self) -> Any:
        """Return the value set so far."""
        return self._value


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


def _messages(value: Any) -> list[str | bytes]:
    if value is None:
        return []
    if isinstance(value, str | bytes):
        return [value]
    if isinstance(value, func.QueueMessage):
        return [json.dumps({"id": value.id, "body": value.get_body().decode("utf-8")})]
    if isinstance(value, list | tuple):
        result: list[str | bytes] = []
        for item in value:
            if isinstance(item, func.QueueMessage):
                result.append(json.dumps({"id": item.id, "body": item.get_body().decode("utf-8")}))
            elif isinstance(item, str):
                result.append(item)
            else:
                raise TypeError(f"invalid data type in output queue message list: {type(item).__name__}")
        return result
    raise TypeError(f"a queue output must be str, bytes, QueueMessage or a list, not {type(value).__name__}")


def _encode(message: str | bytes, encoding: str) -> str:
    data = message.encode("utf-8") if isinstance(message, str) else message
    if encoding == "none":
        return data.decode("utf-8")
    return base64.b64encode(data).decode("ascii")


async def write_outputs(
    function: IndexedFunction,
    out_values: Mapping[str, OutValue],
    result: Any,
    settings: Mapping[str, str],
    encoding: str,
    on_written: Callable[[str], None] | None = None,
) -> None:
    """Send the values of the function's queue output bindings; call ``on_written(queue_name)`` after each."""
    for binding in output_bindings(function):
        name = str(binding["name"])
        value = result if name == "$return" else out_values[name].get()
        messages = _messages(value)
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
