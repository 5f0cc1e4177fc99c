"""The Notification Hubs template expression language, rendered against a property bag.

Expressions live in JSON string values only: ``$(p)`` value, ``$(p, n)`` first n chars, ``.(p, n)`` clipped
with ``...`` to n chars, ``%(p)`` URI-encoded, ``#(p)`` a JSON number when the whole string is ``#(p)`` and
the value is numeric, ``'lit'``/``"lit"`` literals, and ``{a + b}`` concatenation (braces required).
Property names are case-insensitive; a missing property renders as an empty string.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

_CALL = re.compile(r"([$.%#])\(\s*([^,()]+?)\s*(?:,\s*(\d+)\s*)?\)")
_NUMBER = re.compile(r"^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$")


class TemplateError(ValueError):
    """A template body or expression is malformed (HTTP 400 when registering the template)."""


def _lookup(props: Mapping[str, str], name: str) -> str:
    return props.get(name.strip().lower(), "")


def _apply(kind: str, value: str, length: int | None) -> str:
    if kind == "$" or kind == "#":
        return value if length is None else value[:length]
    if kind == ".":
        if length is None:
            raise TemplateError(".(prop, n) needs a length n.")
        if len(value) <= length:
            return value
        return value[: max(length - 3, 0)] + "..."[:length]
    return urllib.parse.quote(value, safe="")


def _render_call(match: re.Match[str], props: Mapping[str, str]) -> str:
    kind, name, length = match.group(1), match.group(2), match.group(3)
    return _apply(kind, _lookup(props, name), int(length) if length else None)


def _split_terms(text: str) -> list[str]:
    terms: list[str] = []
    current: list[str] = []
    quote: str | None = None
    depth = 0
    for ch in text:
        if quote:
            current.append(ch)
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
            current.append(ch)
        elif ch == "(":
            depth += 1
            current.append(ch)
        elif ch == ")":
            depth -= 1
            current.append(ch)
        elif ch == "+" and depth == 0:
            terms.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    if quote:
        raise TemplateError(f"Unterminated literal in template expression {{{text}}}.")
    terms.append("".join(current).strip())
    return terms


def _render_concatenation(inner: str, props: Mapping[str, str]) -> str:
    parts: list[str] = []
    for term in _split_terms(inner):
        if len(term) >= 2 and term[0] == term[-1] and term[0] in "'\"":
            parts.append(term[1:-1])
            continue
        match = _CALL.fullmatch(term)
        if match is None:
            raise TemplateError(f"Invalid term {term!r} in template expression {{{inner}}}.")
        parts.append(_render_call(match, props))
    return "".join(parts)


def render_string(value: str, props: Mapping[str, str]) -> Any:
    """Render one JSON string value; may return a number for a bare ``#(prop)``."""
    stripped = value.strip()
    if len(stripped) >= 2 and stripped[0] == "{" and stripped[-1] == "}":
        return _render_concatenation(stripped[1:-1], props)
    whole = _CALL.fullmatch(stripped)
    if whole is not None and whole.group(1) == "#":
        rendered = _render_call(whole, props)
        if _NUMBER.match(rendered):
            return json.loads(rendered)
        return rendered
    return _CALL.sub(lambda m: _render_call(m, props), value)


def _render_node(node: Any, props: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return render_string(node, props)
    if isinstance(node, list):
        return [_render_node(item, props) for item in node]
    if isinstance(node, dict):
        return {key: _render_node(item, props) for key, item in node.items()}
    return node


def normalise_properties(props: Mapping[str, str]) -> dict[str, str]:
    """Lower-case property names so lookups are case-insensitive."""
    return {name.lower(): value for name, value in props.items()}


def render_template(body: str, props: Mapping[str, str]) -> str:
    """Render a template body (JSON text, else plain/XML text) and return the payload text."""
    bag = normalise_properties(props)
    try:
        tree = json.loads(body)
    except ValueError:
        return _CALL.sub(lambda m: _render_call(m, bag), body)
    return json.dumps(_render_node(tree, bag), ensure_ascii=False, separators=(",", ":"))


def check_template_body(body: str, json_required: bool) -> None:
    """Raise :class:`TemplateError` when a template body cannot be rendered (or is not JSON when required)."""
    if json_required:
        try:
            json.loads(body)
        except ValueError as exc:
            raise TemplateError(f"The template body is not valid JSON: {exc}.") from exc
    render_template(body, {})
