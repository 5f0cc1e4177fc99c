"""``TypedData`` as the host builds and reads it (GrpcMessageConversionExtensions ``ToRpc`` / ``ToObject``).

Values go to the runtime as the host's .NET objects would: ``str`` as ``string``, ``bytes`` as ``bytes``, JSON
objects (``JObject``) and other objects (serialised with Newtonsoft, ``Formatting.None``) as ``json``, a float
as ``double``, ``None`` as an empty TypedData. Values coming back are read the way the host reads them:
``json`` is parsed, ``string`` stays text, ``bytes``/``stream`` stay bytes.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from devstack.functions_host import function_rpc as protos

_SURROGATES = re.compile("[\ud800-\udfff]")


def utf8_text(text: str) -> str:
    """``text`` as it survives the host's UTF-8 encoding: a lone surrogate (or an undecodable byte that Python
    kept as one) becomes U+FFFD, as .NET's UTF-8 encoder writes it; protobuf strings must be valid UTF-8."""
    return _SURROGATES.sub("\ufffd", text)


def to_typed_data(value: Any) -> Any:
    """The TypedData the host sends for ``value`` (None -> empty)."""
    if value is None:
        return protos.TypedData()
    if isinstance(value, bytes):
        return protos.TypedData(bytes=value)
    if isinstance(value, str):
        return protos.TypedData(string=utf8_text(value))
    if isinstance(value, float):
        return protos.TypedData(double=value)
    return protos.TypedData(json=newtonsoft_json(value))


def newtonsoft_json(value: Any) -> str:
    """JSON as ``JsonConvert.SerializeObject(value, Formatting.None)`` writes it (no spaces or escapes)."""
    return utf8_text(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def newtonsoft_indented(value: Any) -> str:
    """JSON text as ``JToken.ToString()`` writes it (Formatting.Indented: two spaces, ``"key": value``)."""
    return utf8_text(json.dumps(value, ensure_ascii=False, indent=2))


def from_typed_data(data: Any) -> Any:
    """The value the host reads from a TypedData the runtime returned (``ToObject``)."""
    if data is None:
        return None
    kind = data.WhichOneof("data")
    if kind is None:
        return None
    if kind == "json":
        return json.loads(data.json)
    if kind in ("bytes", "stream"):
        return bytes(getattr(data, kind))
    if kind == "collection_string":
        return list(data.collection_string.string)
    if kind == "collection_bytes":
        return [bytes(item) for item in data.collection_bytes.bytes]
    if kind == "collection_double":
        return list(data.collection_double.double)
    if kind == "collection_sint64":
        return list(data.collection_sint64.sint64)
    return getattr(data, kind)


def dotnet_iso(moment: datetime) -> str:
    """A UTC DateTimeOffset as Newtonsoft writes it: ``2026-11-24T12:00:00.5+00:00`` (fraction if any)."""
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "+00:00"


def system_metadata(function_name: str) -> Any:
    """The ``sys`` trigger metadata the host adds to every invocation (MethodName, UtcNow, RandGuid)."""
    return protos.TypedData(
        json=newtonsoft_json(
            {
                "MethodName": function_name,
                "UtcNow": dotnet_iso(datetime.now(UTC)).replace("+00:00", "Z"),
                "RandGuid": str(uuid.uuid4()),
            }
        )
    )


_JSON_LOOKING = re.compile(r"^\s*(\{.*\}|\[.*\])\s*$", re.DOTALL)


def apply_binding_data(trigger_value: str, metadata: dict[str, Any]) -> None:
    """Add the top-level properties of a JSON-object trigger value to the trigger metadata, as the host does.

    WorkerFunctionInvoker.ApplyBindingData: when the trigger value is a string that looks like JSON, each
    top-level property that is not an array becomes binding data (objects as JSON, other values as their
    string form; nulls skipped), replacing an existing entry of the same name case-insensitively (the binding
    data dictionary ignores case and keeps the first spelling of a key).
    """
    if not _JSON_LOOKING.match(trigger_value):
        return
    try:
        parsed = json.loads(trigger_value)
    except ValueError:
        return  # "it's not an error if the incoming message isn't JSON"
    if not isinstance(parsed, dict):
        return
    existing = {key.lower(): key for key in metadata}
    for key, value in parsed.items():
        if isinstance(value, list) or value is None:
            continue
        if isinstance(value, dict):
            data = protos.TypedData(json=newtonsoft_json(value))
        elif isinstance(value, bool):
            data = to_typed_data("True" if value else "False")  # (string)JValue of a bool
        elif isinstance(value, str):
            data = to_typed_data(value)
        else:
            data = to_typed_data(json.dumps(value))
        name = existing.setdefault(key.lower(), key)
        metadata[name] = data
