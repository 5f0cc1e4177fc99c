"""A small static reader of Bicep files for the infra tests (the Bicep CLI cannot be installed here).

Parses with the tree-sitter Bicep grammar bundled in ``tree-sitter-language-pack==0.9.1`` (offline), and
evaluates the compile-time part of expressions: literals, strings with interpolation, arrays, objects,
parameter defaults, variables, and ``string(x)``. Anything known only at deployment time (module outputs,
resource properties, function calls) evaluates to :class:`Deferred`, which keeps the expression text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from tree_sitter import Node, Parser, Tree
from tree_sitter_language_pack import get_parser

REPO = Path(__file__).resolve().parents[3]
INFRA = REPO / "infra"

_ESCAPES = {"\\'": "'", "\\\\": "\\", "\\n": "\n", "\\r": "\r", "\\t": "\t", "\\$": "$"}


@cache
def bicep_parser() -> Parser:
    """The tree-sitter parser for Bicep."""
    return get_parser("bicep")


def parse(source: str | bytes) -> Tree:
    """Parse Bicep source text."""
    data = source.encode("utf-8") if isinstance(source, str) else source
    return bicep_parser().parse(data)


def syntax_errors(tree: Tree) -> list[str]:
    """Every ERROR or MISSING node of the tree as ``line:column: text``."""
    found: list[str] = []

    def visit(node: Node) -> None:
        if node.type == "ERROR" or node.is_missing:
            line, column = node.start_point
            text = node.text.decode("utf-8", "replace") if node.text else ""
            found.append(f"{line + 1}:{column + 1}: {node.type} {text[:60]!r}")
        for child in node.children:
            visit(child)

    visit(tree.root_node)
    return found


def text(node: Node | None) -> str:
    """The source text of a node ("" for no node)."""
    return node.text.decode("utf-8") if node is not None and node.text else ""


@dataclass(frozen=True)
class Deferred:
    """A value known only at deployment time; ``source`` is the Bicep expression."""

    source: str


@dataclass
class Declaration:
    """A top-level ``param``, ``var``, ``resource``, ``module`` or ``output`` statement."""

    kind: str
    name: str
    node: Node
    decorators: list[str] = field(default_factory=list)

    @property
    def value(self) -> Node | None:
        """The expression after ``=`` (for resources/modules: the object, loop or condition)."""
        seen_equals = False
        for child in self.node.children:
            if seen_equals:
                return child
            seen_equals = child.type == "="
        return None

    @property
    def type_string(self) -> str:
        """The quoted type of a resource (``Microsoft.X/y@version``) or the path of a module."""
        for child in self.node.children:
            if child.type == "string":
                return string_literal(child)
        return ""

    @property
    def body(self) -> Node | None:
        """The object of a resource or module, looking through ``[for ...]`` and ``if (...)``."""
        node = self.value
        while node is not None and node.type in ("for_statement", "if_statement"):
            node = next(
                (c for c in node.children if c.type in ("object", "for_statement", "if_statement")), None
            )
        return node


class BicepFile:
    """The declarations of one Bicep file and a compile-time evaluator over them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tree = parse(path.read_bytes())
        self.declarations: list[Declaration] = []
        pending: list[str] = []
        kinds = {
            "parameter_declaration": "param",
            "variable_declaration": "var",
            "resource_declaration": "resource",
            "module_declaration": "module",
            "output_declaration": "output",
        }
        for child in self.tree.root_node.children:
            if child.type == "decorators":
                pending.extend(text(d) for d in child.children if d.type == "decorator")
                continue
            if child.type in kinds:
                name = next(c for c in child.children if c.type == "identifier")
                self.declarations.append(Declaration(kinds[child.type], text(name), child, pending))
            pending = []
        self._evaluating: set[str] = set()

    def of_kind(self, kind: str) -> dict[str, Declaration]:
        """Declarations of one kind by name."""
        return {d.name: d for d in self.declarations if d.kind == kind}

    @property
    def params(self) -> dict[str, Declaration]:
        """Parameters by name."""
        return self.of_kind("param")

    @property
    def variables(self) -> dict[str, Declaration]:
        """Variables by name."""
        return self.of_kind("var")

    @property
    def resources(self) -> list[Declaration]:
        """Resources in file order."""
        return [d for d in self.declarations if d.kind == "resource"]

    @property
    def modules(self) -> dict[str, Declaration]:
        """Modules by symbolic name."""
        return self.of_kind("module")

    @property
    def outputs(self) -> dict[str, Declaration]:
        """Outputs by name."""
        return self.of_kind("output")

    def resources_of_type(self, prefix: str) -> list[Declaration]:
        """Resources whose type (without the API version) equals ``prefix``."""
        return [r for r in self.resources if r.type_string.split("@")[0] == prefix]

    def evaluate(self, node: Node | None) -> Any:
        """The compile-time value of an expression (see module docstring)."""
        if node is None:
            return None
        kind = node.type
        if kind == "string":
            return self._string(node)
        if kind == "number":
            return int(text(node))
        if kind == "boolean":
            return text(node) == "true"
        if kind == "null":
            return None
        if kind == "array":
            return [self.evaluate(c) for c in node.children if c.type not in ("[", "]", ",")]
        if kind == "object":
            return {key: self.evaluate(value) for key, value in object_items(node)}
        if kind == "identifier":
            return self._identifier(text(node))
        if kind == "parenthesized_expression":
            return self.evaluate(next(c for c in node.children if c.type not in ("(", ")")))
        if kind == "call_expression":
            return self._call(node)
        return Deferred(text(node))

    def _string(self, node: Node) -> Any:
        parts: list[str] = []
        for child in node.children:
            if child.type == "string_content":
                parts.append(text(child))
            elif child.type == "escape_sequence":
                parts.append(_ESCAPES.get(text(child), text(child)))
            elif child.type == "interpolation":
                inner = next(c for c in child.children if c.type not in ("${", "}"))
                value = self.evaluate(inner)
                if isinstance(value, Deferred):
                    return Deferred(text(node))
                parts.append(_bicep_string(value))
        return "".join(parts)

    def _identifier(self, name: str) -> Any:
        if name in self._evaluating:
            raise ValueError(f"{self.path.name}: cyclic reference to {name}")
        declaration = self.params.get(name) or self.variables.get(name)
        if declaration is None or (declaration.kind == "param" and declaration.value is None):
            return Deferred(name)
        self._evaluating.add(name)
        try:
            return self.evaluate(declaration.value)
        finally:
            self._evaluating.discard(name)

    def _call(self, node: Node) -> Any:
        function = text(node.children[0])
        arguments = [c for c in node.children[1].children if c.type not in ("(", ")", ",")]
        if function == "string" and len(arguments) == 1:
            value = self.evaluate(arguments[0])
            return value if isinstance(value, Deferred) else _bicep_string(value)
        return Deferred(text(node))


def object_items(node: Node) -> Iterator[tuple[str, Node]]:
    """The (key, value node) pairs of a Bicep object literal."""
    for prop in node.children:
        if prop.type != "object_property":
            continue
        key_node, value_node = prop.children[0], prop.children[-1]
        key = string_literal(key_node) if key_node.type == "string" else text(key_node)
        yield key, value_node


def object_property(node: Node | None, path: str) -> Node | None:
    """The value node at a dotted ``path`` inside nested object literals, or None."""
    for key in path.split("."):
        if node is None or node.type != "object":
            return None
        node = dict(object_items(node)).get(key)
    return node


def string_literal(node: Node) -> str:
    """The text of a string node without interpolation (interpolations are kept as ``${...}``)."""
    parts = []
    for child in node.children:
        if child.type == "string_content":
            parts.append(text(child))
        elif child.type == "escape_sequence":
            parts.append(_ESCAPES.get(text(child), text(child)))
        elif child.type == "interpolation":
            parts.append(text(child))
    return "".join(parts)


def _bicep_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value)


@cache
def load(relative: str) -> BicepFile:
    """The Bicep file at ``infra/<relative>``."""
    return BicepFile(INFRA / relative)


def all_bicep_files() -> list[Path]:
    """Every .bicep file under infra/."""
    return sorted(INFRA.rglob("*.bicep"))
