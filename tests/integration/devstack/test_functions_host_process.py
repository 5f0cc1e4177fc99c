"""The local Functions host as a separate process: ready line, local.settings.json, clean SIGTERM, restart."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
from azure.storage.queue import QueueClient

from devstack.functions_host.process import REPO_ROOT, start_functions_host_process
from tests.integration.devstack.functions_host_support import (  # noqa: F401 - fixture
    host_storage,
    records,
    sample_app_copy,
    wait_until,
)

pytestmark = pytest.mark.integration


def _write_local_settings(app_dir: Path, values: dict[str, str]) -> None:
    (app_dir / "local.settings.json").write_text(json.dumps({"IsEncrypted": False, "Values": values}))


def _bodies(url: str, body: str) -> list[dict[str, object]]:
    return [r for r in records(url, "queue") if r["body"] == body]


def test_ready_line_serves_requests_and_sigterm_exits_cleanly(tmp_path: Path, host_storage: str) -> None:  # noqa: F811
    app_dir = sample_app_copy(tmp_path)
    _write_local_settings(
        app_dir,
        {"AzureWebJobsStorage": host_storage, "SAMPLE_QUEUE": f"q{uuid.uuid4().hex[:16]}", "SAMPLE_HUB": "h"},
    )
    host = start_functions_host_process(app_dir)
    try:
        assert host.url == f"http://127.0.0.1:{host.port}"
        response = requests.get(f"{host.url}/api/items/5", timeout=10)
        assert (response.status_code, response.json()["id"]) == (200, "5")
    finally:
        assert host.stop() == 0
    log = "\n".join(host.log_lines)
    assert (
        "Executing 'Functions.item' (Reason='This function was programmatically called via the host APIs.'"
        in log
    )
    assert "Executed 'Functions.item' (Succeeded, Id=" in log


def test_environment_wins_over_local_settings(tmp_path: Path, host_storage: str) -> None:  # noqa: F811
    app_dir = sample_app_copy(tmp_path, {"maxPollingInterval": "00:00:00.5"})
    from_file, from_env = f"qfile{uuid.uuid4().hex[:12]}", f"qenv{uuid.uuid4().hex[:12]}"
    _write_local_settings(
        app_dir, {"AzureWebJobsStorage": host_storage, "SAMPLE_QUEUE": from_file, "SAMPLE_HUB": "h"}
    )
    host = start_functions_host_process(app_dir, env={"SAMPLE_QUEUE": from_env})
    try:
        body = f"which-{uuid.uuid4()}"
        QueueClient.from_connection_string(host_storage, from_env).send_message(
            base64.b64encode(body.encode()).decode()
        )
        assert wait_until(lambda: _bodies(host.url, body))
    finally:
        host.stop()
    assert any("Skipping 'SAMPLE_QUEUE' from local settings" in line for line in host.log_lines)


def test_in_flight_message_is_released_on_sigterm_and_redelivered_after_restart(
    tmp_path: Path,
    host_storage: str,  # noqa: F811
) -> None:
    app_dir = sample_app_copy(tmp_path, {"maxPollingInterval": "00:00:00.5", "maxDequeueCount": 5})
    queue_name = f"q{uuid.uuid4().hex[:16]}"
    env = {"AzureWebJobsStorage": host_storage, "SAMPLE_QUEUE": queue_name, "SAMPLE_HUB": "h"}
    body = f"sleep:3:{uuid.uuid4()}"
    queue = QueueClient.from_connection_string(host_storage, queue_name)
    first = start_functions_host_process(app_dir, env=env, drain_timeout=0.2)
    try:
        queue.send_message(base64.b64encode(body.encode()).decode())
        wait_until(lambda: _bodies(first.url, body))
    finally:
        assert first.stop() == 0
    second = start_functions_host_process(app_dir, env=env)
    try:
        redelivered = wait_until(lambda: _bodies(second.url, body))
        assert redelivered[0]["dequeue_count"] == 2
        wait_until(lambda: body in records(second.url, "queue-done"))
    finally:
        second.stop()
    wait_until(lambda: queue.get_queue_properties().approximate_message_count == 0)


def test_indexing_failure_exits_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"no function_app\.py"):
        start_functions_host_process(tmp_path)


def test_cli_exit_code_on_indexing_failure(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "devstack.functions_host", "--app-dir", str(tmp_path), "--port", "0"],
        cwd=REPO_ROOT,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout) == (1, "")
    assert "functions host failed to start" in result.stderr
