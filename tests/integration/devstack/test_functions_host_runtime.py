"""The local host runs functions through Azure's Python runtime (azure-functions-runtime), not an imitation.

Each test here fails if the host called the decorated functions itself: the checks are the runtime's
(load-time annotation and parameter checks, the ``$return`` encoders, exception serialisation) or the host's
own rules that the old imitation did not know (reserved routes).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import requests

from devstack.functions_host import IndexingError, start_functions_host
from devstack.functions_host.process import REPO_ROOT, FunctionsHostStartError, start_functions_host_process
from devstack.functions_host.python_worker import RUNTIME_VERSION
from tests.integration.devstack.functions_host_support import (  # noqa: F401 - fixture
    SAMPLE_APP,
    host_storage,
    sample_environ,
)

pytestmark = pytest.mark.integration

HEADER = (
    "import azure.functions as func\n\n"
    "app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)\n"
)


def _app(tmp_path: Path, source: str) -> Path:
    (tmp_path / "function_app.py").write_text(HEADER + textwrap.dedent(source))
    return tmp_path


def test_the_installed_runtime_is_the_pinned_one() -> None:
    pinned = [
        line.split("==")[1].strip()
        for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()
        if line.startswith("azure-functions-runtime==")
    ]
    assert pinned == [RUNTIME_VERSION]


def test_a_return_annotation_the_http_binding_cannot_encode_fails_the_start(tmp_path: Path) -> None:
    app_dir = _app(
        tmp_path,
        """
        @app.route(route="count")
        def count(req: func.HttpRequest) -> int:
            return 1
        """,
    )
    with pytest.raises(IndexingError) as raised:
        start_functions_host(app_dir)
    message = str(raised.value)
    assert f"azure-functions-runtime {RUNTIME_VERSION} could not index function_app.py" in message
    assert 'FunctionLoadError: cannot load the count function: Python return annotation "int"' in message


def test_a_parameter_without_a_binding_fails_the_start(tmp_path: Path) -> None:
    app_dir = _app(
        tmp_path,
        """
        @app.route(route="extra")
        def extra(req: func.HttpRequest, tenant: str) -> func.HttpResponse:
            return func.HttpResponse("x")
        """,
    )
    with pytest.raises(IndexingError, match=r"declared in Python but not in the function definition.*tenant"):
        start_functions_host(app_dir)


def test_the_cli_exits_with_the_runtimes_message_and_stack(tmp_path: Path) -> None:
    app_dir = _app(tmp_path, "import not_an_installed_module_x\n")
    with pytest.raises(FunctionsHostStartError) as raised:
        start_functions_host_process(app_dir)
    message = str(raised.value)
    assert "ModuleNotFoundError: No module named 'not_an_installed_module_x'" in message
    # The runtime's serialised stack trace is printed before the failure line (the tail of it is kept here).
    assert 'File "' in message and "azure_functions_runtime" in message
    assert "functions host failed to start: azure-functions-runtime" in message


@pytest.mark.parametrize(
    ("route", "name"), [("admin/stats", "stats"), ("ADMIN", "upper"), (None, "admin_report")]
)
def test_routes_the_host_reserves_fail_the_start(tmp_path: Path, route: str | None, name: str) -> None:
    route_argument = f"route={route!r}" if route is not None else ""
    app_dir = _app(
        tmp_path,
        f"""
        @app.route({route_argument})
        def {name}(req: func.HttpRequest) -> func.HttpResponse:
            return func.HttpResponse("x")
        """,
    )
    with pytest.raises(IndexingError, match="conflicts with one or more built in routes"):
        start_functions_host(app_dir)


def test_an_exception_is_a_failure_with_the_runtimes_serialised_exception(
    host_storage: str,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    running = start_functions_host(SAMPLE_APP, environ=sample_environ(host_storage))
    try:
        with caplog.at_level(logging.INFO, logger="devstack.functions_host.invocations"):
            failed = requests.get(f"{running.url}/api/boom", timeout=10)
            nothing = requests.get(f"{running.url}/api/nothing", timeout=10)
    finally:
        running.stop()
    assert (failed.status_code, nothing.status_code) == (500, 500)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    [boom] = [m for m in errors if m.startswith("Exception while executing function: Functions.boom.")]
    assert "Result: Failure\nException: RuntimeError: sample failure\nStack: " in boom
    assert 'function_app.py", line' in boom and 'raise RuntimeError("sample failure")' in boom
    # Returning None for an http $return binding is refused by the runtime's encoder, not by this host.
    nothing_prefix = "Exception while executing function: Functions.returns_nothing."
    [none] = [m for m in errors if m.startswith(nothing_prefix)]
    assert 'TypeError: unable to encode outgoing TypedData: unsupported type "http"' in none


PLACEHOLDER_THEN_SPECIALISE = """
import asyncio, json, os, sys
from pathlib import Path
from devstack.functions_host import function_rpc as protos
from devstack.functions_host.python_worker import PythonWorker

async def main(placeholder, app, cwd_file):
    idle = PythonWorker(Path(placeholder))
    await idle.init()
    before = [m.name for m in await idle.functions_metadata()]
    worker = PythonWorker(Path(app))
    await worker.reload_environment({"SAMPLE_QUEUE": "q", "SAMPLE_HUB": "h", "PATH": os.environ["PATH"]})
    metadata = {m.name: m for m in await worker.functions_metadata()}
    http = protos.RpcHttp(method="GET", url="http://x/api/items/7", params={"id": "7"})
    response = await worker.invoke(protos.InvocationRequest(
        invocation_id="i1", function_id=metadata["item"].function_id,
        input_data=[protos.ParameterBinding(name="req", data=protos.TypedData(http=http))]))
    print(json.dumps({"before": before, "after": sorted(metadata), "cwd": os.getcwd(),
                      "environ": sorted(os.environ), "status": response.return_value.http.status_code,
                      "body": json.loads(response.return_value.http.body.bytes)}))

asyncio.run(main(*sys.argv[1:]))
"""


def test_environment_reload_specialises_a_placeholder_worker(tmp_path: Path) -> None:
    # In a child process: the runtime replaces os.environ and the working directory on this request.
    placeholder = tmp_path / "placeholder"
    placeholder.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", PLACEHOLDER_THEN_SPECIALISE, str(placeholder), str(SAMPLE_APP), "x"],
        cwd=REPO_ROOT,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin", "LEFTOVER": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["before"] == []
    assert {"item", "on_queue_message", "on_connect"} <= set(report["after"])
    assert report["cwd"] == str(SAMPLE_APP)
    assert "LEFTOVER" not in report["environ"] and "SAMPLE_QUEUE" in report["environ"]
    assert (report["status"], report["body"]["id"], report["body"]["method"]) == ("200", "7", "GET")
