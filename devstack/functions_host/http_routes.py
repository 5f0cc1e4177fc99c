"""ASP.NET-style route templates as used by HTTP triggers: ``items/{id:int}``, ``{name?}``, ``{*rest}``.

Literal segments match case-insensitively. Constraints ``int``, ``long``, ``bool``, ``guid``, ``alpha``,
``double``, ``float``, ``decimal``, ``datetime``, ``min``/``max``/``range``, ``length``/``minlength``/
``maxlength`` and ``regex`` are parsed; value shapes and numeric bounds are enforced (a mismatch is a 404,
as in the host).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

_PARAMETER = re.compile(r"\{([^{}]+)\}")


class RouteTemplateError(ValueError):
    """A route template that cannot be parsed."""


def _is_int(value: str) -> bool:
    return re.fullmatch(r"-?\d+", value) is not None


def _is_float(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _constraint(spec: str, template: str) -> Callable[[str], bool]:
    name, _, args_text = spec.partition("(")
    name = name.strip().lower()
    args = [a.strip() for a in args_text.rstrip(")").split(",")] if args_text else []
    simple: dict[str, Callable[[str], bool]] = {
        "int": _is_int,
        "long": _is_int,
        "bool": lambda v: v.lower() in ("true", "false"),
        "guid": _is_guid,
        "alpha": lambda v: v.isascii() and v.isalpha(),
        "double": _is_float,
        "float": _is_float,
        "decimal": _is_float,
        "datetime": _is_datetime,
    }
    if name in simple:
        return simple[name]
    try:
        if name == "min":
            low = int(args[0])
            return lambda v: _is_int(v) and int(v) >= low
        if name == "max":
            high = int(args[0])
            return lambda v: _is_int(v) and int(v) <= high
        if name == "range":
            low, high = int(args[0]), int(args[1])
            return lambda v: _is_int(v) and low <= int(v) <= high
        if name == "length":
            if len(args) == 2:
                shortest, longest = int(args[0]), int(args[1])
                return lambda v: shortest <= len(v) <= longest
            exact = int(args[0])
            return lambda v: len(v) == exact
        if name == "minlength":
            shortest = int(args[0])
            return lambda v: len(v) >= shortest
        if name == "maxlength":
            longest = int(args[0])
            return lambda v: len(v) <= longest
        if name == "regex":
            pattern = re.compile(args_text[:-1] if args_text.endswith(")") else args_text)
            return lambda v: pattern.search(v) is not None
    except (IndexError, ValueError, re.error) as exc:
        raise RouteTemplateError(f"route {template!r}: bad constraint {spec!r}") from exc
    raise RouteTemplateError(f"route {template!r}: unknown constraint {name!r}")


@dataclass(frozen=True)
class _Parameter:
    name: str
    optional: bool
    catch_all: bool
    default: str | None
    checks: tuple[Callable[[str], bool], ...]


def _parse_parameter(body: str, template: str) -> _Parameter:
    catch_all = body.startswith("*")
    body = body.lstrip("*")
    default: str | None = None
    if "=" in body:
        body, default = body.split("=", 1)
    optional = body.endswith("?")
    body = body.rstrip("?")
    # Constraints are separated by ':' but a regex(...) argument may itself contain ':'.
    name, _, rest = body.partition(":")
    specs = re.findall(r"(?:regex\(.*\)|[^:]+)", rest) if rest else []
    if not name or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise RouteTemplateError(f"route {template!r}: bad parameter name {name!r}")
    checks = tuple(_constraint(spec, template) for spec in specs)
    return _Parameter(name, optional or default is not None, catch_all, default, checks)


class RouteTemplate:
    """A compiled route template; :meth:`match` returns the route parameters or None."""

    def __init__(self, template: str) -> None:
        self.template = template.strip("/")
        self._parameters: list[_Parameter] = []
        pattern = ""
        segments = self.template.split("/") if self.template else []
        for index, segment in enumerate(segments):
            pieces = _PARAMETER.split(segment)
            segment_pattern = ""
            whole_optional = False
            for position, piece in enumerate(pieces):
                if position % 2 == 0:
                    segment_pattern += re.escape(piece)
                    continue
                parameter = _parse_parameter(piece, template)
                self._parameters.append(parameter)
                group = f"(?P<{parameter.name}>{'.*' if parameter.catch_all else '[^/]+'})"
                if parameter.optional and len(pieces) == 3 and not pieces[0] and not pieces[2]:
                    whole_optional = True
                segment_pattern += group
            separator = "/" if index else ""
            if whole_optional:
                pattern += f"(?:{separator}{segment_pattern})?"
            else:
                pattern += separator + segment_pattern
        self._regex = re.compile(f"^{pattern}$", re.IGNORECASE)
        self.literal_segments = sum(1 for s in segments if "{" not in s)
        self.parameter_count = len(self._parameters)

    def match(self, path: str) -> dict[str, str] | None:
        """Return the route parameters when ``path`` (no leading slash) matches, else None."""
        found = self._regex.match(path.strip("/"))
        if not found:
            return None
        values: dict[str, str] = {}
        for parameter in self._parameters:
            value = found.group(parameter.name)
            if value is None or value == "":
                if parameter.default is not None:
                    values[parameter.name] = parameter.default
                continue
            if not all(check(value) for check in parameter.checks):
                return None
            values[parameter.name] = value
        return values
