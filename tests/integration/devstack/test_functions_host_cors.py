"""CORS of the local Functions host (``func start --cors`` / local.settings.json ``Host.CORS``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from devstack.functions_host import start_functions_host
from devstack.functions_host.process import start_functions_host_process
from devstack.net import free_port
from tests.integration.devstack.functions_host_support import (  # noqa: F401 - fixture
    host_storage,
    sample_app_copy,
    sample_environ,
)

pytestmark = pytest.mark.integration

ALLOWED = "https://app.example"


def test_allowed_origin_gets_cors_headers_and_preflight(tmp_path: Path, host_storage: str) -> None:  # noqa: F811
    running = start_functions_host(
        sample_app_copy(tmp_path), environ=sample_environ(host_storage), cors=ALLOWED
    )
    try:
        allowed = requests.get(f"{running.url}/api/items/1", headers={"Origin": ALLOWED}, timeout=10)
        other = requests.get(
            f"{running.url}/api/items/1", headers={"Origin": "https://evil.example"}, timeout=10
        )
        preflight = requests.options(
            f"{running.url}/api/items/1",
            headers={
                "Origin": ALLOWED,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
            timeout=10,
        )
    finally:
        running.stop()
    assert allowed.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert allowed.json()["id"] == "1"
    assert other.status_code == 200
    assert "Access-Control-Allow-Origin" not in other.headers
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Methods"] == "POST"
    assert preflight.headers["Access-Control-Allow-Headers"] == "content-type"


def test_no_cors_headers_without_configuration(tmp_path: Path, host_storage: str) -> None:  # noqa: F811
    running = start_functions_host(sample_app_copy(tmp_path), environ=sample_environ(host_storage))
    try:
        response = requests.get(f"{running.url}/api/items/1", headers={"Origin": ALLOWED}, timeout=10)
    finally:
        running.stop()
    assert "Access-Control-Allow-Origin" not in response.headers


def test_local_settings_host_section_sets_port_and_cors(tmp_path: Path, host_storage: str) -> None:  # noqa: F811
    app_dir = sample_app_copy(tmp_path)
    port = free_port()
    local = {
        "IsEncrypted": False,
        "Values": sample_environ(host_storage),
        "Host": {"LocalHttpPort": port, "CORS": "*", "CORSCredentials": False},
    }
    (app_dir / "local.settings.json").write_text(json.dumps(local))
    host = start_functions_host_process(app_dir, port=None)
    try:
        response = requests.get(
            f"{host.url}/api/items/3", headers={"Origin": "https://any.example"}, timeout=10
        )
    finally:
        host.stop()
    assert host.port == port
    assert response.headers["Access-Control-Allow-Origin"] == "*"
