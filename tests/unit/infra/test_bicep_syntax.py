"""Every Bicep file under infra/ parses (tree-sitter grammar, offline) and its cross-file references hold."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from tree_sitter import Node

from tests.unit.infra.bicep import (
    INFRA,
    BicepFile,
    all_bicep_files,
    object_items,
    object_property,
    parse,
    syntax_errors,
    text,
)

BROKEN_SNIPPETS = {
    "unterminated string": "param name string = 'notify\n",
    "missing value after =": "var settings = \n",
    "unclosed object": "resource st 'Microsoft.Storage/storageAccounts@2024-01-01' = {\n  name: 'x'\n",
    "unclosed interpolation": "var url = 'https://${host/runtime'\n",
    "keyword typo": "resorce st 'Microsoft.Storage/storageAccounts@2024-01-01' = {\n  name: 'x'\n}\n",
    "property without colon": "var o = {\n  name 'x'\n}\n",
}


def test_the_deployment_is_made_of_main_and_its_modules() -> None:
    names = {path.relative_to(INFRA).as_posix() for path in all_bicep_files()}
    assert "main.bicep" in names
    assert {n for n in names if n.startswith("modules/")}, "main.bicep is split into modules/"


@pytest.mark.parametrize("path", all_bicep_files(), ids=lambda p: p.relative_to(INFRA).as_posix())
def test_bicep_file_parses_without_errors(path: Path) -> None:
    tree = parse(path.read_bytes())
    assert syntax_errors(tree) == []
    assert not tree.root_node.has_error


@pytest.mark.parametrize("source", BROKEN_SNIPPETS.values(), ids=list(BROKEN_SNIPPETS))
def test_parser_reports_broken_bicep(source: str) -> None:
    tree = parse(source)
    assert tree.root_node.has_error
    assert syntax_errors(tree)


def test_parser_accepts_the_constructs_the_templates_use() -> None:
    source = (
        "@secure()\nparam key string = ''\n"
        "var names = [\n  'a'\n  '${key}-poison'\n]\n"
        "resource q 'Microsoft.Storage/storageAccounts/queueServices/queues@2024-01-01' = "
        "[for n in names: {\n  name: n\n}]\n"
        "resource r 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(key)) {\n"
        "  name: guid(key)\n}\n"
        "output URL string = cond ? 'https://${x.properties.h}?code=${listKeys(id, v).systemKeys.k}' : ''\n"
    )
    assert syntax_errors(parse(source)) == []


# ---- what the Bicep compiler would catch: references between files, unused declarations ---------------


def identifiers(node: Node) -> Iterator[str]:
    if node.type == "identifier":
        yield text(node)
    for child in node.children:
        yield from identifiers(child)


@pytest.mark.parametrize("path", all_bicep_files(), ids=lambda p: p.relative_to(INFRA).as_posix())
def test_no_unused_parameters_or_variables(path: Path) -> None:
    bicep = BicepFile(path)
    counts = Counter(identifiers(bicep.tree.root_node))
    unused = [d.name for d in bicep.declarations if d.kind in ("param", "var") and counts[d.name] < 2]
    assert unused == []


@pytest.mark.parametrize("path", all_bicep_files(), ids=lambda p: p.relative_to(INFRA).as_posix())
def test_module_calls_match_the_modules(path: Path) -> None:
    bicep = BicepFile(path)
    for name, module in bicep.modules.items():
        target_path = path.parent / module.type_string
        assert target_path.is_file(), f"{name}: {module.type_string} does not exist"
        target = BicepFile(target_path)
        params = object_property(module.body, "params")
        given = {key for key, _ in object_items(params)} if params is not None else set()
        assert sorted(given - set(target.params)) == [], f"{name}: parameters {target_path.name} lacks"
        required = {p for p, declaration in target.params.items() if declaration.value is None}
        assert sorted(required - given) == [], f"{name}: required parameters not passed"
        for used in re.findall(rf"\b{name}\.outputs\.(\w+)", path.read_text(encoding="utf-8")):
            assert used in target.outputs, f"{name}.outputs.{used} is not an output of {target_path.name}"
