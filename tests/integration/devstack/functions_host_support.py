"""Shared fixtures for the local Functions host integration tests (Azurite, sample app copies, host startup).

Storage comes from the session fixture ``azurite`` when one is registered, else from
``devstack.azurite.start_azurite``, else from the npm ``azurite-queue`` binary in ``node_modules`` (in memory,
on a free port).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack.net import free_port, wait_for_port

REPO_ROOT = Path(__file__).resolve().parents[3]
SAMPLE_APP = REPO_ROOT / "tests" / "fixtures" / "sample_app"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@pytest.fixture(scope="session")
def host_storage(request: pytest.FixtureRequest) -> Iterator[str]:
    """A storage connection string for an in-memory Azurite (queues) for the whole session."""
    try:
        shared = request.getfixturevalue("azurite")
    except pytest.FixtureLookupError:
        shared = None
    if shared is not None:
        yield str(shared.connection_string)
        return
    try:
        from devstack.azurite import start_azurite  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        start_azurite = None
    if start_azurite is not None:
        azurite = start_azurite(in_memory=True)
        try:
            yield str(azurite.connection_string)
        finally:
            azurite.stop()
        return
    binary = REPO_ROOT / "node_modules" / ".bin" / "azurite-queue"
    if not binary.exists():
        pytest.fail("Azurite is not installed: run npm install (node_modules/.bin/azurite-queue is missing)")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="azurite-")
    process = subprocess.Popen(
        [
            str(binary),
            "--inMemoryPersistence",
            "--queueHost",
            "127.0.0.1",
            "--queuePort",
            str(port),
            "--silent",
            "--skipApiVersionCheck",
            "--disableTelemetry",
        ],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port("127.0.0.1", port, timeout=30)
        yield (
            f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={ACCOUNT_KEY};"
            f"QueueEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def sample_app_copy(destination: Path, queues: dict[str, Any] | None = None) -> Path:
    """Copy the sample app to ``destination`` with ``extensions.queues`` replaced (when given)."""
    app_dir = destination / "app"
    shutil.copytree(SAMPLE_APP, app_dir, ignore=shutil.ignore_patterns("__pycache__"))
    if queues is not None:
        host_json = json.loads((app_dir / "host.json").read_text())
        host_json["extensions"]["queues"] = queues
        (app_dir / "host.json").write_text(json.dumps(host_json))
    return app_dir


def sample_environ(storage: str, **extra: str) -> dict[str, str]:
    """App settings for the sample app with uuid queue and hub names."""
    environ = {
        "AzureWebJobsStorage": storage,
        "SAMPLE_QUEUE": f"q{uuid.uuid4().hex[:20]}",
        "SAMPLE_HUB": f"hub{uuid.uuid4().hex[:12]}",
    }
    environ.update(extra)
    return environ


def records(base_url: str, kind: str) -> list[Any]:
    """What the sample app's ``kind`` trigger recorded (read over HTTP)."""
    response = requests.get(f"{base_url}/api/records/{kind}", timeout=10)
    response.raise_for_status()
    values: list[Any] = response.json()
    return values


def wait_until(condition: Any, timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Poll ``condition()`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout:.0f} s (last value: {value!r})")
        time.sleep(interval)
