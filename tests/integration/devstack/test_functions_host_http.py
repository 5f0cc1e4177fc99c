"""HTTP triggers through the local Functions host, over real HTTP."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import requests

from devstack.functions_host import RunningFunctionsHost, start_functions_host
from tests.integration.devstack.functions_host_support import (  # noqa: F401 - fixture
    SAMPLE_APP,
    host_storage,
    sample_environ,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sample_host(host_storage: str) -> Iterator[RunningFunctionsHost]:  # noqa: F811
    running = start_functions_host(SAMPLE_APP, environ=sample_environ(host_storage))
    try:
        yield running
    finally:
        running.stop()


def test_route_params_query_headers_and_body_reach_the_function(sample_host: RunningFunctionsHost) -> None:
    response = requests.post(
        f"{sample_host.url}/api/items/42?color=red", data="payload", headers={"X-Sample": "abc"}, timeout=10
    )
    assert response.status_code == 201
    assert response.headers["X-Sample-Reply"] == "yes"
    assert response.headers["Content-Type"] == "application/json"
    seen = response.json()
    assert seen["id"] == "42"
    assert seen["method"] == "POST"
    assert seen["color"] == "red"
    assert seen["header"] == "abc"
    assert seen["body"] == "payload"
    assert seen["url"] == f"{sample_host.url}/api/items/42?color=red"


def test_repeated_query_keys_are_joined_with_commas(sample_host: RunningFunctionsHost) -> None:
    response = requests.get(f"{sample_host.url}/api/items/1?color=red&color=blue", timeout=10)
    assert response.json()["color"] == "red,blue"


def test_route_constraint_mismatch_is_404(sample_host: RunningFunctionsHost) -> None:
    assert requests.get(f"{sample_host.url}/api/items/not-a-number", timeout=10).status_code == 404


def test_method_not_allowed_is_404_like_the_functions_host(sample_host: RunningFunctionsHost) -> None:
    # The real host answers 404 (not 405) for a known route with another method (azure-functions-host#10098).
    assert requests.delete(f"{sample_host.url}/api/items/42", timeout=10).status_code == 404
    assert requests.get(f"{sample_host.url}/api/items/42", timeout=10).status_code == 200


def test_unknown_path_and_missing_prefix_are_404(sample_host: RunningFunctionsHost) -> None:
    assert requests.get(f"{sample_host.url}/api/nothing-here", timeout=10).status_code == 404
    assert requests.get(f"{sample_host.url}/plain", timeout=10).status_code == 404


def test_async_function_with_optional_parameter_and_charset(sample_host: RunningFunctionsHost) -> None:
    missing = requests.get(f"{sample_host.url}/api/greet", timeout=10)
    named = requests.get(f"{sample_host.url}/api/greet/bob", timeout=10)
    assert (missing.status_code, missing.text) == (200, "hello nobody")
    assert named.text == "hello bob"
    assert named.headers["Content-Type"] == "text/html; charset=utf-8"


def test_string_return_is_text_plain(sample_host: RunningFunctionsHost) -> None:
    response = requests.get(f"{sample_host.url}/api/plain", timeout=10)
    assert response.status_code == 200
    assert response.text == "just a string"
    assert response.headers["Content-Type"].startswith("text/plain")


def test_function_exception_is_500_and_logged_as_failed(
    sample_host: RunningFunctionsHost, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="devstack.functions_host.invocations"):
        response = requests.get(f"{sample_host.url}/api/boom", timeout=10)
    assert response.status_code == 500
    messages = [r.getMessage() for r in caplog.records if r.name == "devstack.functions_host.invocations"]
    executing = (
        "Executing 'Functions.boom' (Reason='This function was programmatically called via the host APIs."
    )
    assert any(m.startswith(executing) for m in messages)
    assert any(m.startswith("Executed 'Functions.boom' (Failed, Id=") and "Duration=" in m for m in messages)


def test_auth_level_keys_are_not_enforced_locally(sample_host: RunningFunctionsHost) -> None:
    # The sample app uses AuthLevel.FUNCTION; like `func start`, no key is needed locally.
    response = requests.get(f"{sample_host.url}/api/items/7", timeout=10)
    assert json.loads(response.text)["id"] == "7"


def test_status_endpoint_lists_the_indexed_functions(sample_host: RunningFunctionsHost) -> None:
    status = requests.get(f"{sample_host.url}/admin/host/status", timeout=10).json()
    assert status["state"] == "Running"
    assert {"item", "greet", "on_queue_message", "every_second", "on_connect"} <= set(status["functions"])
