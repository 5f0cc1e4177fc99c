"""Indexing a v2 app the way the Python worker does (imports files from a temporary folder; no network)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from devstack.functions_host.indexing import MODULE_NAME, IndexingError, index_app, resolve_expressions
from devstack.functions_host.output_bindings import check_bindings, output_bindings

APP = """
import azure.functions as func
app = func.FunctionApp()

@app.queue_trigger(arg_name="msg", queue_name="%QUEUE%", connection="Storage")
def handle(msg: func.QueueMessage) -> None:
    pass

@app.route(route="ping")
def ping(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("pong")
"""


def _write(tmp_path: Path, source: str) -> Path:
    (tmp_path / "function_app.py").write_text(source)
    return tmp_path


def test_functions_and_resolved_bindings(tmp_path: Path) -> None:
    indexed = index_app(_write(tmp_path, APP), {"QUEUE": "orders"})
    try:
        by_name = {f.name: f for f in indexed.functions}
        assert set(by_name) == {"handle", "ping"}
        assert by_name["handle"].trigger["queueName"] == "orders"
        assert by_name["handle"].trigger["connection"] == "Storage"
        assert by_name["ping"].trigger_type == "httpTrigger"
    finally:
        indexed.unload()
    assert MODULE_NAME not in sys.modules or sys.modules[MODULE_NAME] is not indexed.module


def test_missing_setting_names_the_function_and_setting(tmp_path: Path) -> None:
    with pytest.raises(IndexingError, match=r"'handle'.*'QUEUE'"):
        index_app(_write(tmp_path, APP), {})


def test_same_app_can_be_indexed_twice(tmp_path: Path) -> None:
    first = index_app(_write(tmp_path, APP), {"QUEUE": "a"})
    first.unload()
    second = index_app(tmp_path, {"QUEUE": "b"})
    second.unload()
    assert second.module is not first.module
    assert {f.name: f.trigger.get("queueName") for f in second.functions}["handle"] == "b"


def test_import_error_is_reported_with_the_file(tmp_path: Path) -> None:
    with pytest.raises(IndexingError, match=r"function_app\.py failed: ZeroDivisionError"):
        index_app(_write(tmp_path, "x = 1 / 0\n"), {})


def test_no_function_app_instance(tmp_path: Path) -> None:
    with pytest.raises(IndexingError, match="could not find a top-level FunctionApp"):
        index_app(_write(tmp_path, "import azure.functions as func\n"), {})


def test_two_function_apps_are_refused(tmp_path: Path) -> None:
    source = "import azure.functions as func\na = func.FunctionApp()\nb = func.FunctionApp()\n"
    with pytest.raises(IndexingError, match="more than one"):
        index_app(_write(tmp_path, source), {})


def test_missing_app_file(tmp_path: Path) -> None:
    with pytest.raises(IndexingError, match=r"no function_app\.py"):
        index_app(tmp_path, {})


def test_expressions_inside_lists() -> None:
    assert resolve_expressions(["%A%", "x-%B%"], {"A": "1", "B": "2"}, "f") == ["1", "x-2"]


BINDINGS_APP = """
import azure.functions as func
app = func.FunctionApp()

@app.route(route="x")
@app.{decorator}
def handler(req: func.HttpRequest, extra) -> func.HttpResponse:
    return func.HttpResponse("x")
"""


@pytest.mark.parametrize(
    ("decorator", "message"),
    [
        ('blob_input(arg_name="extra", path="c/b", connection="S")', "input binding 'extra' of type 'blob'"),
        (
            'table_output(arg_name="extra", table_name="t", connection="S")',
            "output binding 'extra' of type 'table'",
        ),
    ],
)
def test_unsupported_bindings_are_refused(tmp_path: Path, decorator: str, message: str) -> None:
    indexed = index_app(_write(tmp_path, BINDINGS_APP.format(decorator=decorator)), {})
    try:
        with pytest.raises(IndexingError, match=message):
            check_bindings(indexed.functions)
    finally:
        indexed.unload()


def test_queue_output_binding_is_accepted(tmp_path: Path) -> None:
    decorator = 'queue_output(arg_name="extra", queue_name="q", connection="S")'
    indexed = index_app(_write(tmp_path, BINDINGS_APP.format(decorator=decorator)), {})
    try:
        check_bindings(indexed.functions)
        outputs = output_bindings(indexed.functions[0])
        assert [(b["name"], b["queueName"]) for b in outputs] == [("extra", "q")]
    finally:
        indexed.unload()
