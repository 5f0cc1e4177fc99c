"""Fault injection, HTTPS mode and the CLI of the Notification Hubs emulator, over real HTTP(S)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack.notificationhubs import RunningNotificationHubs, start_notification_hubs_emulator
from tests.integration.devstack.nh_wire import NhClient, error_detail, parse_connection_string

pytestmark = pytest.mark.integration


REPO_ROOT = Path(__file__).resolve().parents[3]


def installation(installation_id: str) -> dict[str, Any]:
    template = json.dumps({"message": {"notification": {"title": "$(title)"}}})
    return {
        "installationId": installation_id,
        "platform": "fcmv1",
        "pushChannel": f"token-{installation_id}",
        "templates": {"t": {"body": template}},
    }


def test_429_with_retry_after_then_success(
    notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    client = NhClient(notification_hubs_emulator.connection_string, nh_hub)
    notification_hubs_emulator.inject_fault(status=429, count=2, retry_after=1)
    for _ in range(2):
        throttled = client.put_installation(installation("dev-1"))
        assert throttled.status_code == 429
        assert throttled.headers["Retry-After"] == "1"
        assert error_detail(throttled)
        assert notification_hubs_emulator.installation(nh_hub, "dev-1") is None  # no side effect
    assert client.put_installation(installation("dev-1")).status_code == 200
    assert notification_hubs_emulator.installation(nh_hub, "dev-1") is not None


def test_faults_over_http_filter_by_path_and_method(
    notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    client = NhClient(notification_hubs_emulator.connection_string, nh_hub)
    faults_url = f"{notification_hubs_emulator.base_url}/_devstack/faults"
    armed = requests.post(
        faults_url, json={"status": 503, "count": 1, "path": "/messages", "method": "POST"}, timeout=10
    )
    assert armed.status_code == 201
    assert client.put_installation(installation("dev-1")).status_code == 200  # not matched by the fault
    failed = client.send({"title": "first"}, "template")
    assert failed.status_code == 503
    assert "Retry-After" not in failed.headers
    assert notification_hubs_emulator.pushes(hub=nh_hub) == []
    assert client.send({"title": "second"}, "template").status_code == 201
    [push] = notification_hubs_emulator.pushes(hub=nh_hub)
    assert push["payload"]["message"]["notification"]["title"] == "second"
    assert requests.get(faults_url, timeout=10).json() == {"armed": []}


def test_delay_fault_then_normal_answer(
    notification_hubs_emulator: RunningNotificationHubs, nh_hub: str
) -> None:
    client = NhClient(notification_hubs_emulator.connection_string, nh_hub)
    faults_url = f"{notification_hubs_emulator.base_url}/_devstack/faults"
    requests.post(faults_url, json={"delaySeconds": 0.2, "count": 1}, timeout=10).raise_for_status()
    assert client.put_installation(installation("dev-1")).status_code == 200
    assert requests.get(faults_url, timeout=10).json() == {"armed": []}


def test_clearing_faults(notification_hubs_emulator: RunningNotificationHubs, nh_hub: str) -> None:
    client = NhClient(notification_hubs_emulator.connection_string, nh_hub)
    faults_url = f"{notification_hubs_emulator.base_url}/_devstack/faults"
    requests.post(faults_url, json={"status": 500, "count": 5}, timeout=10).raise_for_status()
    assert requests.delete(faults_url, timeout=10).status_code == 204
    assert client.put_installation(installation("dev-1")).status_code == 200


@pytest.mark.parametrize("spec", [{"count": 1}, {"status": 200}, {"status": 429, "count": 0}])
def test_invalid_fault_specs_are_400(
    notification_hubs_emulator: RunningNotificationHubs, spec: dict[str, Any]
) -> None:
    response = requests.post(f"{notification_hubs_emulator.base_url}/_devstack/faults", json=spec, timeout=10)
    assert response.status_code == 400


def test_https_mode_with_the_printed_certificate(tmp_path: Path) -> None:
    emulator = start_notification_hubs_emulator(hubs=("secure",), https=True, cert_dir=tmp_path)
    try:
        assert emulator.cert_path is not None and emulator.cert_path.parent == tmp_path
        assert emulator.connection_string.startswith(f"Endpoint=sb://127.0.0.1:{emulator.port}/;")
        assert emulator.connection_string == emulator.sb_connection_string
        client = NhClient(emulator.connection_string, "secure", verify=str(emulator.cert_path))
        assert client.base.startswith("https://")
        assert client.put_installation(installation("dev-1")).status_code == 200
        assert client.send({"title": "over tls"}, "template").status_code == 201
        [push] = emulator.wait_for_pushes(1, timeout=5, hub="secure")
        assert push["payload"]["message"]["notification"]["title"] == "over tls"
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{emulator.base_url}/_devstack/health", timeout=10)
    finally:
        emulator.stop()


def _read_lines(stream: Any, lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


def test_cli_help_lists_the_options() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "devstack.notificationhubs", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for option in ("--host", "--port", "--hub", "--full-key", "--listen-key", "--https", "--cert-dir"):
        assert option in result.stdout


def test_cli_prints_one_connection_string_line_and_stops_on_sigterm(tmp_path: Path) -> None:
    key = "Q0xJLXRlc3Qta2V5LWZvci10aGUtZW11bGF0b3ItMDE="
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devstack.notificationhubs",
            "--hub",
            "one",
            "--hub",
            "two",
            "--full-key",
            key,
            "--https",
            "--cert-dir",
            str(tmp_path),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True)
    reader.start()
    try:
        seen: list[str] = []
        while not any("Endpoint=" in line for line in seen):
            seen.append(lines.get(timeout=30))
        [connection_line] = [line for line in seen if "Endpoint=" in line]
        connection_string = connection_line.strip().split("=", 1)[1]
        fields = parse_connection_string(connection_string)
        assert fields["endpoint"].startswith("sb://127.0.0.1:")
        assert fields["sharedaccesskey"] == key
        cert = tmp_path / "cert.pem"
        assert any(str(cert) in line for line in seen)
        client = NhClient(connection_string, "two", verify=str(cert))
        assert client.put_installation(installation("dev-1")).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=20)
        reader.join(timeout=5)
    assert code == 0
    assert not any("Endpoint=" in line for line in list(lines.queue))
