"""docs/openapi.yaml for tests: its schemas as JSON Schema validators; HTTP responses checked against it."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, FormatChecker

REPO_ROOT = Path(__file__).resolve().parent.parent
OPENAPI = REPO_ROOT / "docs" / "openapi.yaml"


@functools.cache
def spec() -> dict[str, Any]:
    """The parsed OpenAPI document."""
    document: dict[str, Any] = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))
    return document


def validator(schema: Mapping[str, Any]) -> Draft202012Validator:
    """A validator for ``schema`` whose ``#/components/...`` references resolve inside the OpenAPI file."""
    # OpenAPI 3.1 schemas are JSON Schema 2020-12; the whole document as the root resolves local $refs and
    # its other members are keywords the validator ignores.
    root = {**spec(), **schema}
    return Draft202012Validator(root, format_checker=FormatChecker())


def schema_validator(name: str) -> Draft202012Validator:
    """The validator of ``components.schemas[name]``; KeyError when there is no such schema."""
    if name not in spec()["components"]["schemas"]:
        raise KeyError(f"docs/openapi.yaml has no schema {name!r}")
    return validator({"$ref": f"#/components/schemas/{name}"})


def errors(instance: Any, checker: Draft202012Validator) -> list[str]:
    """Every validation error of ``instance``, as ``path: message`` lines (empty when valid)."""
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in sorted(checker.iter_errors(instance), key=lambda e: list(map(str, e.path)))
    ]


def resolve(node: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow a ``$ref`` to a component (responses, parameters, ...)."""
    while "$ref" in node:
        parts = str(node["$ref"]).removeprefix("#/").split("/")
        target: Any = spec()
        for part in parts:
            target = target[part]
        node = target
    return node


def operation(method: str, path: str) -> Mapping[str, Any]:
    """The operation for a concrete request path such as ``/api/devices/phone-1``; KeyError if none."""
    for template, item in spec()["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method.lower() in item:
            op: Mapping[str, Any] = item[method.lower()]
            return op
    raise KeyError(f"docs/openapi.yaml has no operation {method.upper()} {path}")


def response_problems(
    method: str, path: str, status: int, headers: Mapping[str, str], body: bytes
) -> list[str]:
    """What is wrong with a real response to ``method path`` by the OpenAPI file (empty when it conforms)."""
    responses = operation(method, path)["responses"]
    declared = responses.get(str(status)) or responses.get("default")
    if declared is None:
        return [f"status {status} is not declared for {method.upper()} {path}"]
    declared = resolve(declared)
    problems: list[str] = []
    lowered = {k.lower(): v for k, v in headers.items()}
    content = declared.get("content")
    if not content:
        if body:
            problems.append(f"status {status} declares no body, got {len(body)} bytes")
        return problems
    media_type = (lowered.get("content-type") or "").split(";")[0].strip()
    if media_type not in content:
        return [f"content type {media_type!r} is not one of {sorted(content)}"]
    try:
        document = json.loads(body)
    except ValueError:
        return ["the body is not JSON"]
    problems += errors(document, validator(content[media_type]["schema"]))
    for name, header in (declared.get("headers") or {}).items():
        value = lowered.get(name.lower())
        const = resolve(header).get("schema", {}).get("const")
        if const is not None and value != const:  # a header with a fixed value must be sent
            problems.append(f"header {name} is {value!r}, declared {const!r}")
    return problems
