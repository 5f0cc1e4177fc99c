"""The host's half of indexing: the runtime's RpcFunctionMetadata -> functions, with the host's own checks.

Pure logic on hand-made metadata messages; that the runtime produces this metadata (and what it refuses
itself) is tested through the host in tests/integration/devstack/test_functions_host_runtime.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from devstack.functions_host import function_rpc as protos
from devstack.functions_host.indexing import IndexingError, index_functions, resolve_expressions
from devstack.functions_host.output_bindings import check_bindings, output_bindings, queue_messages


def _metadata(name: str, *bindings: dict[str, Any]) -> Any:
    return protos.RpcFunctionMetadata(
        name=name, function_id=f"id-{name}", raw_bindings=[json.dumps(b) for b in bindings]
    )


def _http(name: str, route: str | None = None, methods: list[str] | None = None) -> Any:
    trigger: dict[str, Any] = {"direction": "IN", "type": "httpTrigger", "name": "req"}
    if route is not None:
        trigger["route"] = route
    if methods is not None:
        trigger["methods"] = methods
    return _metadata(name, trigger, {"direction": "OUT", "type": "http", "name": "$return"})


QUEUE = {"direction": "IN", "type": "queueTrigger", "name": "msg", "queueName": "%QUEUE%", "connection": "S"}


def test_functions_and_resolved_bindings() -> None:
    functions = index_functions([_metadata("handle", QUEUE), _http("ping")], {"QUEUE": "orders"})
    by_name = {f.name: f for f in functions}
    assert by_name["handle"].trigger["queueName"] == "orders"
    assert by_name["handle"].function_id == "id-handle"
    assert by_name["ping"].trigger_type == "httpTrigger"


def test_missing_setting_names_the_function_and_setting() -> None:
    with pytest.raises(IndexingError, match=r"'handle'.*'QUEUE'"):
        index_functions([_metadata("handle", QUEUE)], {})


@pytest.mark.parametrize(
    ("route", "name"),
    [
        ("admin/stats", "stats"),
        ("/Admin/users", "users"),
        ("administration", "x"),
        ("runtime/status", "status"),
        (None, "admin_report"),  # no route: the route is the function name
    ],
)
def test_routes_in_the_hosts_own_space_are_refused(route: str | None, name: str) -> None:
    with pytest.raises(IndexingError, match=r"conflicts with one or more built in routes"):
        index_functions([_http(name, route)], {})


def test_routes_that_only_contain_admin_later_are_fine() -> None:
    functions = index_functions([_http("manage", "manage/admins"), _http("x", "users/{id}/admin")], {})
    assert [f.name for f in functions] == ["manage", "x"]


def test_two_functions_on_one_route_and_method_conflict() -> None:
    with pytest.raises(IndexingError, match=r"'b': The route specified conflicts with .* function 'a'"):
        index_functions([_http("a", "items", ["GET"]), _http("b", "Items/", ["get", "POST"])], {})
    # different methods on the same route are fine (devices PUT and DELETE)
    index_functions([_http("a", "items", ["GET"]), _http("b", "items", ["DELETE"])], {})


@pytest.mark.parametrize("name", ["my_msg", "_msg", "msg-1", "1msg", ""])
def test_binding_names_must_be_alphanumeric(name: str) -> None:
    with pytest.raises(IndexingError, match=r"The binding name .* is invalid"):
        index_functions([_metadata("f", {**QUEUE, "name": name})], {"QUEUE": "q"})


def test_binding_names_must_be_unique_ignoring_case() -> None:
    output = {"direction": "OUT", "type": "queue", "name": "MSG", "queueName": "q"}
    with pytest.raises(IndexingError, match=r"Multiple bindings with name 'MSG'"):
        index_functions([_metadata("f", QUEUE, output)], {"QUEUE": "q"})


def test_exactly_one_trigger() -> None:
    timer = {"direction": "IN", "type": "timerTrigger", "name": "timer", "schedule": "0 * * * * *"}
    with pytest.raises(IndexingError, match="Multiple trigger bindings"):
        index_functions([_metadata("f", QUEUE, timer)], {"QUEUE": "q"})
    with pytest.raises(IndexingError, match="No trigger binding specified"):
        index_functions([_metadata("f", {"direction": "OUT", "type": "queue", "name": "out"})], {})


def test_expressions_inside_lists() -> None:
    assert resolve_expressions(["%A%", "x-%B%"], {"A": "1", "B": "2"}, "f") == ["1", "x-2"]


@pytest.mark.parametrize(
    ("binding", "message"),
    [
        ({"direction": "IN", "type": "blob", "name": "extra"}, "input binding 'extra' of type 'blob'"),
        ({"direction": "OUT", "type": "table", "name": "extra"}, "output binding 'extra' of type 'table'"),
    ],
)
def test_unsupported_bindings_are_refused(binding: dict[str, Any], message: str) -> None:
    functions = index_functions([_metadata("f", QUEUE, binding)], {"QUEUE": "q"})
    with pytest.raises(IndexingError, match=message):
        check_bindings(functions)


def test_queue_output_binding_is_accepted() -> None:
    output = {"direction": "OUT", "type": "queue", "name": "extra", "queueName": "q"}
    functions = index_functions([_metadata("f", QUEUE, output)], {"QUEUE": "q"})
    check_bindings(functions)
    assert [(b["name"], b["queueName"]) for b in output_bindings(functions[0])] == [("extra", "q")]


def test_queue_messages_from_what_the_runtime_encodes() -> None:
    assert queue_messages(protos.TypedData(string="a")) == ["a"]
    assert queue_messages(protos.TypedData(bytes=b"\x00b")) == [b"\x00b"]
    # a list of str and QueueMessage (JSON {"id", "body"}) becomes one message per item
    listed = protos.TypedData(json=json.dumps(["a", {"id": "1", "body": "b"}]))
    assert queue_messages(listed) == ["a", '{"id":"1","body":"b"}']
    assert queue_messages(protos.TypedData()) == []
    assert queue_messages(None) == []
